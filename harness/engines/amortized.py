"""Amortized VI: the engine of variational autoencoder cells, ``run(cell, model, family, started) -> FitResult``.

A VAE is variational inference with one network, the *encoder*, mapping each data point ``x``
to its approximate posterior ``q(z | x)``.  Here the encoder family is the grid axis (the
``encoder_*`` families, ``Family.kind == "amortized"``) and the model (an
:class:`~harness.models.vae_digits.AmortizedModel`) fixes the data and the Bernoulli MLP decoder.
The cell is fitted like any other: full-batch Adam (``tf_keras``) on the training −ELBO with
``fit.sample_size`` reparameterized draws per image, ``fit.num_steps`` steps in chunks of one
XLA-compiled loop each (graph mode where XLA fails, recorded in ``fit_mode``), seeds from the
cell's identity; the result is a plain :class:`~harness.records.FitResult`.

Encoder families (one encoder MLP ``x → relu(hidden_units) → local parameters``):

* ``diagonal``: ``q(z | x) = Normal(μ(x), diag σ(x)²)``;
* ``full_covariance``: ``Normal(μ(x), L(x) L(x)ᵀ)`` with ``L`` lower triangular;
* ``iaf``: inverse autoregressive flow of Kingma et al. (2016): the encoder outputs a diagonal
  Gaussian ``(μ, σ)`` *and a context* ``h``; ``num_layers`` IAF steps
  ``z ← s ⊙ z + (1 − s) ⊙ m``, ``(m, logit s) = MADE(z, h)`` (their numerically stable,
  gated form of the update), with the order of ``z`` reversed between steps.  The MADE weights are shared
  by all images (they are global parameters, like the encoder's); only ``μ, σ, h`` are per
  image.

Metrics (besides the fit timings every cell has), on the fixed test set, with K =
``cell.metrics.iw_elbo_k`` draws of ``q(z | x)`` per test image:

* ``test_elbo``: mean over test images of ``E_q[log p(x, z) − log q(z | x)]`` (Monte Carlo);
* ``test_elbo_likelihood_kl``: the same bound as ``E_q[log p(x | z)] − KL(q(z | x) ‖ p(z))``
  with the KL analytic (Gaussian encoders only; absent for IAF);
* ``test_iw_elbo``: the importance-weighted bound ``E log (1/K) Σ_k p(x, z_k)/q(z_k | x)``
  (Burda et al., 2016), the estimate of the test log-likelihood ``log p(x)``;
* ``amortization_gap``: on the first ``model.gap_num_points`` test images, the ELBO of a q
  optimized for each image alone (its local parameters, started at the encoder's output,
  ``model.gap_num_steps`` Adam steps; for IAF the shared flow weights stay fixed, so the
  optimum is over what the encoder could output) minus the encoder's ELBO (Cremer, Li &
  Duvenaud, 2018, "Inference suboptimality in variational autoencoders");

each with ``_standard_error``: the Monte Carlo error for this fitted model and test set.
``FitResult.draws`` holds images as pixel probabilities (rows: see :data:`DRAW_ROWS`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from harness import convergence
from harness.engines.common import (
    CompiledLoop,
    Trainable,
    cost_metrics,
    divergence,
    learning_rate,
    minimize,
    result,
    timings,
)
from harness.families.encoders import dense, prior, split_seeds, supports_amortized
from harness.metrics import runtime

# The learning rate of ``learning_rate = "auto"`` for a VAE: its training runs no pilots (each
# would train the networks), so auto is Adam's customary rate for such networks.
AUTO_LEARNING_RATE = 0.01

# Layout of FitResult.draws for a VAE cell ([sum, 64] pixel probabilities, float32): the first
# test images, their reconstructions (Bernoulli means at one z ~ q(z | x)), and decoded prior
# draws (Bernoulli means at z ~ p(z)).  16 of each fill a 2 × 8 grid per figure panel
# (harness.figures.vae_images.VAE_IMAGE_ROWS splits them again).
DRAW_ROWS = {"test_images": 16, "reconstructions": 16, "prior_samples": 16}
# Test images per evaluation batch: K × batch × 64 pixel logits stay around 16 MB at K = 1000.
_EVAL_BATCH = 64


class Decoder:
    """``p(x | z)``: Bernoulli over 64 pixels with logits from a one-hidden-layer relu MLP."""

    def __init__(self, latent_size: int, hidden_units: int, num_pixels: int, *, seed):
        s = split_seeds(seed, 2)
        self.w1, self.b1 = dense((latent_size, hidden_units), s[0], "decoder_1")
        self.w2, self.b2 = dense((hidden_units, num_pixels), s[1], "decoder_2")
        self.trainable_variables = (self.w1, self.b1, self.w2, self.b2)

    def logits(self, z):
        import tensorflow as tf

        return tf.nn.relu(z @ self.w1 + self.b1) @ self.w2 + self.b2

    def log_likelihood(self, x, z):
        """``log p(x | z)``: ``x`` ``[N, 64]``, ``z`` ``[..., N, d]`` → ``[..., N]``."""
        import tensorflow_probability as tfp

        tfd = tfp.distributions
        return tfd.Independent(tfd.Bernoulli(logits=self.logits(z), dtype=x.dtype), 1).log_prob(x)


# --- fitting ----------------------------------------------------------------------------------------


def run(cell, model, family, started: float, *, reuse: bool = True):
    """Fit a VAE cell: encoder ``family`` × amortized ``model``; see the module docstring.

    Raises:
      ValueError: the model is not amortized or the family is not an encoder family.
    """
    import tensorflow as tf

    del reuse  # a VAE cell trains its own networks: nothing compiled is shared
    if not supports_amortized(model):
        raise ValueError(
            f"family '{family.name}' does not apply to model '{model.name}': "
            "it needs an amortized model (e.g. vae_digits)"
        )
    if family.kind != "amortized":
        raise ValueError(
            f"family '{family.name}' does not apply to model '{model.name}': "
            "an amortized model needs an encoder family (encoder_diagonal, "
            "encoder_full_covariance, encoder_iaf)"
        )
    if cell.fit.importance_sample_size != 1 or cell.fit.gradient_estimator != "reparameterization":
        raise ValueError(
            "a VAE cell trains on the ELBO with the reparameterization gradient: "
            "fit.importance_sample_size must be 1 and fit.gradient_estimator "
            "'reparameterization'"
        )
    eval_seed = split_seeds(cell.stateless_seed, 3)[2]
    trained = train(cell, model, family)
    encoder, decoder, losses = trained["encoder"], trained["decoder"], trained["losses"]
    chunk_seconds, mode = trained["chunk_seconds"], trained["mode"]
    x_test = tf.constant(model.data["x_test"], tf.float32)

    calls = [(len(c), seconds, True) for c, seconds in zip(losses, chunk_seconds, strict=True)]
    compile_seconds, fit_seconds, loss_seconds = timings(calls)
    all_losses = np.concatenate(losses).astype(np.float64)
    num_steps_run = int(all_losses.size)
    metrics: dict[str, float] = {
        "fit_seconds": fit_seconds,
        "steps_per_second": runtime.steps_per_second(num_steps_run, fit_seconds),
        "num_steps_run": float(num_steps_run),
        # Each step differentiates log p(x_n, z) at sample_size draws for every training image.
        "num_gradient_evaluations": runtime.num_gradient_evaluations(
            num_steps_run, cell.fit.sample_size, 1
        )
        * len(model.data["x_train"]),
        "compile_seconds": compile_seconds,
    }
    status, reason, diverged_step, draws = "ok", "", None, None
    evaluation_seconds = None
    diverged = divergence(all_losses)
    if diverged is not None:
        status, (diverged_step, reason) = "diverged", diverged
    else:
        t0 = time.perf_counter()
        evaluation = evaluate(encoder, decoder, x_test, cell, model, eval_seed, jit=mode == "xla")
        draws = evaluation.pop("draws")
        if not all(np.isfinite(v) for v in evaluation.values()) or not np.all(np.isfinite(draws)):
            status, reason, diverged_step = (
                "diverged",
                "non-finite test metrics after fitting",
                num_steps_run,
            )
            draws = None
        metrics.update(evaluation)
        evaluation_seconds = time.perf_counter() - t0
    # No initialisation search; the evaluation includes the per-image optimisation.
    metrics.update(
        cost_metrics(
            compile_seconds=compile_seconds,
            initialization_seconds=0.0,
            optimization_seconds=fit_seconds,
            evaluation_seconds=evaluation_seconds,
        )
    )
    # The training runs its whole budget (no pilots, no rate decreases): the verdict is the
    # stationarity of its last half (harness.convergence.stationary_verdict).
    verdict = convergence.stationary_verdict(all_losses, cell.fit.convergence_tolerance)
    metrics["converged"] = float(verdict.converged)
    if verdict.converged:
        metrics["seconds_to_converge"] = float(loss_seconds[-1])
    return result(
        cell,
        started,
        status=status,
        reason=reason,
        verdict=verdict,
        metrics=metrics,
        losses=all_losses,
        loss_seconds=loss_seconds,
        compile_seconds=compile_seconds,
        fit_seconds=fit_seconds,
        num_steps_run=num_steps_run,
        fit_mode=mode,
        draws=draws,
        fallback_reason=trained["fallback_reason"],
        diverged_step=diverged_step,
    )


def _chunk_plan(num_steps: int) -> list[int]:
    """``num_steps`` in about ten equal chunks (plus at most one remainder chunk): enough for
    a steady-state speed estimate and timely divergence detection."""
    size = max(1, -(-num_steps // 10))
    chunks = [size] * (num_steps // size)
    if num_steps % size:
        chunks.append(num_steps % size)
    return chunks


def train(cell, model, family=None) -> dict[str, Any]:
    """Train a VAE cell's encoder and decoder in a
    :class:`~harness.engines.common.CompiledLoop` (XLA where it compiles, else graph mode).

    Args:
      cell: The cell (its fit settings, hyperparameters and seed are used).
      model: The amortized model.
      family: The encoder :class:`~harness.families.base.Family` (default: the cell's).

    Returns:
      ``encoder``, ``decoder``, ``losses`` (list of per-chunk arrays of training −ELBO per
      image), ``chunk_seconds``, ``mode`` (``xla`` or ``graph``), ``fallback_reason``.
    """
    import tensorflow as tf

    if family is None:
        from harness.families import FAMILIES

        family = FAMILIES[cell.family]
    init_seed, fit_seed, _ = split_seeds(cell.stateless_seed, 3)
    decoder_seed, encoder_seed = split_seeds(init_seed, 2)
    x_train = tf.constant(model.data["x_train"], tf.float32)
    chunks = _chunk_plan(cell.fit.num_steps)
    chunk_seeds = split_seeds(fit_seed, len(chunks))
    sample_size = cell.fit.sample_size

    def build() -> Trainable:
        # Fresh weights per build: a failed XLA attempt may have run some steps.
        encoder = family.build(model, seed=encoder_seed, **dict(cell.hyperparameters))
        decoder = Decoder(
            model.dimension, model.decoder_hidden_units, x_train.shape[1], seed=decoder_seed
        )

        def loss_fn(seed=None):
            params = encoder.local_parameters(x_train)
            log_likelihood, log_prior, log_q = _elbo_terms(
                encoder, decoder, x_train, params, sample_size, seed
            )
            return -tf.reduce_mean(log_likelihood + log_prior - log_q)

        variables = list(encoder.trainable_variables) + list(decoder.trainable_variables)
        return Trainable((encoder, decoder), variables, loss_fn)

    settings = cell.fit
    if settings.learning_rate == "auto":
        settings = dataclasses.replace(settings, learning_rate=AUTO_LEARNING_RATE)
    loop = CompiledLoop(
        build, chunks[0], cell.fit.jit_compile, learning_rate(settings, AUTO_LEARNING_RATE)
    )
    losses, chunk_seconds = [], []
    for size, seed in zip(chunks, chunk_seeds, strict=True):
        t0 = time.perf_counter()
        losses.append(loop(seed, size))
        chunk_seconds.append(time.perf_counter() - t0)
        if not np.all(np.isfinite(losses[-1])):
            break
    encoder, decoder = loop.owner
    return {
        "encoder": encoder,
        "decoder": decoder,
        "losses": losses,
        "chunk_seconds": chunk_seconds,
        "mode": loop.mode,
        "fallback_reason": loop.fallback_reason,
    }


def _elbo_terms(encoder, decoder, x, params, sample_size: int, seed):
    """Per-draw ``log p(x | z)``, ``log p(z)`` and ``log q(z | x)``, each ``[S, N]``."""
    z, log_q = encoder.sample_and_log_prob(params, sample_size, seed)
    return decoder.log_likelihood(x, z), prior(encoder.latent_size).log_prob(z), log_q


# --- evaluation --------------------------------------------------------------------------------------


def test_log_weights(encoder, decoder, x, params, num_draws: int, seed) -> dict[str, Any]:
    """Per-draw terms of the test bounds, in batches of images (eager: one call per cell).

    Returns:
      ``log_weights`` ``log p(x, z) − log q(z | x)`` and ``log_likelihood`` ``log p(x | z)``,
      both ``[num_draws, N]`` float64, and ``kl_to_prior`` ``[N]`` (None for IAF).
    """
    import tensorflow as tf

    seeds = split_seeds(seed, max(1, math.ceil(x.shape[0] / _EVAL_BATCH)))
    log_weights, log_likelihood, kl = [], [], []
    for b, start in enumerate(range(0, x.shape[0], _EVAL_BATCH)):
        xb, pb = x[start : start + _EVAL_BATCH], params[start : start + _EVAL_BATCH]
        ll, lp, lq = _elbo_terms(encoder, decoder, xb, pb, num_draws, seeds[b])
        log_weights.append((ll + lp - lq).numpy())
        log_likelihood.append(ll.numpy())
        k = encoder.kl_to_prior(pb)
        kl.append(None if k is None else tf.convert_to_tensor(k).numpy())
    return {
        "log_weights": np.concatenate(log_weights, axis=1).astype(np.float64),
        "log_likelihood": np.concatenate(log_likelihood, axis=1).astype(np.float64),
        "kl_to_prior": None if kl[0] is None else np.concatenate(kl).astype(np.float64),
    }


def mean_bound(per_draw: np.ndarray, offset: np.ndarray | None = None) -> tuple[float, float]:
    """Mean over images of the per-image Monte Carlo mean of ``per_draw`` ``[K, N]`` (minus a
    per-image exact ``offset``), with the Monte Carlo standard error for this test set."""
    k, n = per_draw.shape
    value = per_draw.mean(axis=0) - (0.0 if offset is None else offset)
    variance = per_draw.var(axis=0, ddof=1) / k
    return float(value.mean()), float(np.sqrt(variance.sum()) / n)


def iw_bound(log_weights: np.ndarray, importance_sample_size: int) -> tuple[float, float]:
    """Test importance-weighted bound: mean over images of ``log (1/K) Σ_k w_k``.

    The draws of each image (``log_weights`` ``[num_draws, N]``) are split into
    ``num_draws // K`` groups of K; each image's estimate is the mean over its groups.  The
    standard error is across groups where there are at least 2, else (one group of all the
    draws) the delta method, ``sd(w) / (√K · mean(w))``.
    """
    from scipy.special import logsumexp

    num_draws, n = log_weights.shape
    k = int(importance_sample_size)
    groups = num_draws // k
    if groups < 1:
        raise ValueError(f"importance_sample_size {k} exceeds the {num_draws} draws per image")
    grouped = log_weights[: groups * k].reshape(groups, k, n)
    bounds = logsumexp(grouped, axis=1) - np.log(k)  # [groups, N]
    if groups >= 2:
        variance = bounds.var(axis=0, ddof=1) / groups
    else:
        w = np.exp(log_weights - log_weights.max(axis=0))
        variance = w.var(axis=0, ddof=1) / (k * w.mean(axis=0) ** 2)
    return float(bounds.mean()), float(np.sqrt(variance.sum()) / n)


def evaluate(encoder, decoder, x_test, cell, model, seed, *, jit: bool) -> dict[str, Any]:
    """Every VAE metric of a fitted encoder and decoder on the test set, plus the kept images
    (``draws``, see :data:`DRAW_ROWS`)."""
    num_draws = cell.metrics.iw_elbo_k
    if num_draws < 2:
        raise ValueError(
            "a VAE cell needs metrics.iw_elbo_k >= 2 (draws per test "
            "image for the test bounds and their standard errors)"
        )
    test_seed, gap_seed, draws_seed = split_seeds(seed, 3)
    params = encoder.local_parameters(x_test)
    terms = test_log_weights(encoder, decoder, x_test, params, num_draws, test_seed)
    out: dict[str, Any] = {}
    out["test_elbo"], out["test_elbo_standard_error"] = mean_bound(terms["log_weights"])
    if terms["kl_to_prior"] is not None:
        (out["test_elbo_likelihood_kl"], out["test_elbo_likelihood_kl_standard_error"]) = (
            mean_bound(terms["log_likelihood"], terms["kl_to_prior"])
        )
    out["test_iw_elbo"], out["test_iw_elbo_standard_error"] = iw_bound(
        terms["log_weights"], num_draws
    )
    m = min(model.gap_num_points, x_test.shape[0])
    gap, gap_se = amortization_gap(
        encoder,
        decoder,
        x_test[:m],
        terms["log_weights"][:, :m],
        cell,
        model.gap_num_steps,
        gap_seed,
        jit=jit,
    )
    out["amortization_gap"], out["amortization_gap_standard_error"] = gap, gap_se
    out["draws"] = kept_images(encoder, decoder, x_test, params, draws_seed)
    return out


def optimize_local(encoder, decoder, x, cell, num_steps: int, seed, *, jit: bool):
    """Each image's own q: its local parameters (started at the encoder's output) fitted by
    ``num_steps`` Adam steps on its ELBO with ``cell.fit.sample_size`` draws, the networks held
    fixed.  Returns the optimized parameters ``[N, num_local_parameters]``."""
    import tensorflow as tf
    import tf_keras

    local = tf.Variable(encoder.local_parameters(x))
    rate = cell.fit.learning_rate
    optimizer = tf_keras.optimizers.Adam(
        learning_rate=AUTO_LEARNING_RATE if rate == "auto" else rate
    )
    optimizer.build([local])
    sample_size = cell.fit.sample_size

    def loss_fn(seed=None):
        ll, lp, lq = _elbo_terms(encoder, decoder, x, local, sample_size, seed)
        # A sum over images: each image's parameters get its own ELBO's gradient.
        return -tf.reduce_sum(tf.reduce_mean(ll + lp - lq, axis=0))

    @tf.function(jit_compile=jit, autograph=False)
    def run(seed):
        return minimize(loss_fn, num_steps, optimizer, [local], seed)

    run(seed)
    return tf.convert_to_tensor(local)


def amortization_gap(
    encoder, decoder, x, amortized_log_weights: np.ndarray, cell, num_steps: int, seed, *, jit: bool
) -> tuple[float, float]:
    """Mean over images ``x`` of ELBO(optimized own q) − ELBO(encoder's q), with its standard
    error (the two ELBOs are estimated from independent draws).

    Args:
      amortized_log_weights: ``[K, N]`` log weights of the encoder's q on ``x``.
    """
    fit_seed, eval_seed = split_seeds(seed, 2)
    local = optimize_local(encoder, decoder, x, cell, num_steps, fit_seed, jit=jit)
    optimized = test_log_weights(
        encoder, decoder, x, local, amortized_log_weights.shape[0], eval_seed
    )["log_weights"]
    k = amortized_log_weights.shape[0]
    n = x.shape[0]
    gap = optimized.mean(axis=0) - amortized_log_weights.mean(axis=0)
    variance = (optimized.var(axis=0, ddof=1) + amortized_log_weights.var(axis=0, ddof=1)) / k
    return float(gap.mean()), float(np.sqrt(variance.sum()) / n)


def kept_images(encoder, decoder, x_test, params, seed) -> np.ndarray:
    """``[48, 64]`` float32 pixel probabilities: test images, reconstructions, prior draws."""
    import tensorflow as tf

    n_test, n_recon, n_prior = DRAW_ROWS.values()
    recon_seed, prior_seed = split_seeds(seed, 2)
    z, _ = encoder.sample_and_log_prob(params[:n_recon], 1, recon_seed)
    reconstructions = tf.sigmoid(decoder.logits(z[0]))
    z_prior = prior(encoder.latent_size).sample(n_prior, seed=prior_seed)
    samples = tf.sigmoid(decoder.logits(z_prior))
    return np.concatenate(
        [np.asarray(x_test[:n_test]), reconstructions.numpy(), samples.numpy()]
    ).astype(np.float32)
