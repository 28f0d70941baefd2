"""Evaluate a fitted q: fresh draws and the log densities every posterior metric needs
(:class:`Evaluator`), then the metrics themselves (:func:`score`).  Shared by the engines whose
result is a distribution (variational fits, Laplace, CAVI) and, for draws alone, NUTS."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.metrics.summary import posterior_metrics
from harness.records import Cell


def score(
    cell: Cell, model, evaluation: dict[str, Any], bad_reason: str
) -> tuple[str, str, dict[str, float], np.ndarray | None]:
    """``(status, reason, metrics, kept draws)`` of one evaluation (an :class:`Evaluator`
    dict, or ``{"draws": ...}`` alone for a method without a density, whose log-weight metrics
    are then absent).

    The first ``fit.elbo_sample_size`` draws are the ELBO's; all of them feed ``iw_elbo``.
    Non-finite draws or log densities make the cell ``diverged`` with ``bad_reason``.
    """
    draws = np.asarray(evaluation["draws"], np.float64)
    log_weights = evaluation.get("log_weights")
    if not np.all(np.isfinite(draws)) or (
        log_weights is not None and not np.all(np.isfinite(log_weights))
    ):
        return "diverged", bad_reason, {}, None
    if log_weights is None:
        metrics = posterior_metrics(
            model,
            draws,
            np.full(draws.shape[0], np.nan),  # no density: log-weight metrics absent
            importance_sample_size=cell.metrics.iw_elbo_k,
        )
    else:
        n = cell.fit.elbo_sample_size
        metrics = posterior_metrics(
            model,
            draws[:n],
            log_weights[:n],
            gaussian=evaluation["gaussian"],
            importance_sample_size=cell.metrics.iw_elbo_k,
            iw_log_weights=log_weights,
            log_likelihood=evaluation["log_likelihood"],
            kl_to_prior=evaluation["kl_to_prior"],
        )
    return "ok", "", metrics, draws[: cell.fit.num_draws_kept].astype(np.float32)


class Evaluator:
    """Fresh draws from a fitted q and the log densities the metrics need.

    ``evaluator(seed)`` returns one dict per replicate (one, unless q has ``batch_shape
    [replicates]``) with ``draws`` ``[n, d]`` and ``log_weights`` ``log p̃(z) − log q(z)``
    ``[n]`` (float64), where ``n = iw_draws_needed(elbo_sample_size, K)`` and the first
    ``elbo_sample_size`` draws are the ELBO's; ``log_likelihood`` ``log p(x | z)`` for those
    first draws and ``kl_to_prior`` (exact ``KL(q ‖ prior)``) when the model splits into prior
    and likelihood and TFP has an analytic KL for the pair (else None); and ``gaussian``, q's
    exact ``(mean, covariance)`` when q is Gaussian on the model's scale (else None).

    With ``traced=True`` the computation is one graph-mode ``tf.function`` (not XLA: on CPU its
    random number generation is slower than the graph kernels' and compiling costs more than it
    saves), traced at the first call and kept with the compiled fitting loop, so cells that
    differ only in seed evaluate without retracing.  The first call runs twice: the first run's
    excess over the second is reported by :attr:`compile_seconds` (NaN after any other call)
    and the second run's time, :attr:`seconds` (as after every call), is the one that counts as
    metric cost.  ``traced=False`` runs eagerly, for one-off evaluations where tracing would
    cost more than it saves.
    """

    def __init__(
        self,
        model,
        surrogate_posterior,
        cell: Cell,
        *,
        replicates: int | None = None,
        traced: bool = True,
    ):
        import tensorflow as tf

        from harness.metrics.quality import iw_draws_needed

        self.model = model
        self.surrogate_posterior = surrogate_posterior
        self.replicates = replicates
        self.num_draws = iw_draws_needed(cell.fit.elbo_sample_size, cell.metrics.iw_elbo_k)
        self.num_elbo_draws = cell.fit.elbo_sample_size
        self.compile_seconds = float("nan")
        self.seconds = float("nan")
        self._calls = 0
        self._run = (
            tf.function(
                self._tensors,
                input_signature=[tf.TensorSpec([2], tf.int32)],
                autograph=False,
                reduce_retracing=True,
            )
            if traced
            else self._tensors
        )
        self.traced = traced

    def __call__(self, seed) -> list[dict[str, Any]]:
        import tensorflow as tf

        seed = tf.convert_to_tensor(seed, tf.int32)
        self.compile_seconds = float("nan")
        first = None
        if self.traced and self._calls == 0:
            first = time.perf_counter()
            self._run(seed)
            first = time.perf_counter() - first
        t0 = time.perf_counter()
        out = self._split(self._run(seed))
        self.seconds = time.perf_counter() - t0
        if first is not None:
            self.compile_seconds = max(0.0, first - self.seconds)
        self._calls += 1
        return out

    def _tensors(self, seed):
        import tensorflow as tf

        q, model = self.surrogate_posterior, self.model
        z, log_q = q.experimental_sample_and_log_prob(self.num_draws, seed=seed)
        # Models take [n, d]: replicates' draws [n, B, d] are evaluated as n·B points.
        flat = tf.reshape(z, [-1, model.dimension])
        log_p = tf.reshape(model.unnormalized_log_prob(flat), tf.shape(log_q))
        out = {"draws": z, "log_weights": log_p - log_q}
        if model.log_likelihood is not None and model.prior_distribution is not None:
            kl = kl_to_prior(q, model.prior_distribution)
            if kl is not None:
                first = tf.reshape(z[: self.num_elbo_draws], [-1, model.dimension])
                out["kl_to_prior"] = kl
                out["log_likelihood"] = tf.reshape(
                    model.log_likelihood(first), tf.shape(log_q[: self.num_elbo_draws])
                )
        moments = gaussian_moments(q, self.replicates)
        if moments is not None:
            out["mean"], out["covariance"] = moments
        return out

    def _split(self, out) -> list[dict[str, Any]]:
        """Tensors → one float64 NumPy dict per replicate."""
        arrays = {k: np.asarray(v, np.float64) for k, v in out.items()}

        def one(i):
            def take(name, axis):
                if name not in arrays:
                    return None
                a = arrays[name]
                return a if i is None else np.take(a, i, axis=axis)

            kl = take("kl_to_prior", 0)
            mean = take("mean", 0)
            return {
                "draws": take("draws", 1),
                "log_weights": take("log_weights", 1),
                "log_likelihood": take("log_likelihood", 1),
                "kl_to_prior": None if kl is None else float(kl),
                "gaussian": None if mean is None else (mean, take("covariance", 0)),
            }

        if self.replicates is None:
            return [one(None)]
        return [one(i) for i in range(self.replicates)]


def kl_to_prior(surrogate_posterior, prior):
    """Exact ``KL(q ‖ prior)`` (a tensor, per replicate) from TFP's registered analytic KLs,
    else None.

    A q pushed through an identity bijector is compared through its base distribution, so a
    Gaussian q and a Gaussian prior on the same space find TFP's Gaussian–Gaussian KL.
    """
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    candidates = [surrogate_posterior]
    if isinstance(surrogate_posterior, tfd.TransformedDistribution) and isinstance(
        surrogate_posterior.bijector, tfb.Identity
    ):
        candidates.append(surrogate_posterior.distribution)
    for q in candidates:
        try:
            return tfd.kl_divergence(q, prior)
        except (NotImplementedError, TypeError, ValueError):
            continue
    return None


def gaussian_moments(surrogate_posterior, replicates: int | None = None):
    """q's ``(mean, covariance)`` tensors when q is exactly Gaussian on the model's own scale
    (with a leading replicate axis when q has ``batch_shape [replicates]``), else None."""
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    gaussians = (
        tfd.MultivariateNormalLinearOperator,
        tfd.MultivariateNormalDiagPlusLowRankCovariance,
    )
    base = surrogate_posterior
    if isinstance(base, tfd.TransformedDistribution) and isinstance(base.bijector, tfb.Identity):
        base = base.distribution
    batch = [] if replicates is None else [replicates]
    if isinstance(base, gaussians) and base.batch_shape.as_list() == batch:
        return base.mean(), base.covariance()
    return None
