"""Linear regression in original units on the UCI wine data (shipped in the package).

Proline content (mg/L; 278–1,680, mean 747) of 178 wines regressed on four chemical
measurements left in their own units, as an applied user fits it before thinking of scaling::

    x = (alcohol [% vol], flavanoids [g/L], color intensity [absorbance], magnesium [mg/L])
    α_c ~ N(ȳ, (2.5 s_y)²)                 intercept at the predictors' means, α_c = α + x̄ · β
    β_k ~ N(0, (2.5 s_y / s_k)²)           k = 1..4
    σ ~ Exponential(rate = 1 / s_y)
    proline_i ~ N(α + x_i · β, σ)

``ȳ``, ``s_y`` and ``s_k`` are the sample mean and standard deviations of the response and the
predictors: rstanarm's default weakly informative priors for a Gaussian GLM (Gabry & Goodrich,
"Prior Distributions for rstanarm Models", rstanarm vignette; Gelman, Hill & Vehtari,
*Regression and Other Stories*, 2020, §9.5), which put each coefficient's prior scale in the
units of its predictor: ``2.5 s_y / s_k`` is 970 mg/L per % alcohol, 790 per g/L of flavanoids,
340 per unit of colour intensity and 55 per mg/L of magnesium; the intercept prior (on centred
predictors, as in rstanarm) is N(747, 785²) mg/L; σ has prior mean ``s_y`` = 314 mg/L.  The
event is the *uncentred* ``[α, β_1..4, σ]`` (6 coordinates), ``σ`` through ``exp``; the
density of the centred intercept in terms of ``(α, β)`` has unit Jacobian.

Why it is hard (an ordinary posterior): the posterior mean is far from the origin and on very
different scales: α ≈ −2,250 (sd ≈ 300), β ≈ (177, 116, 13, 4) (sds 25, 18, 9, 1.2) and
σ ≈ 208 (log σ has sd ≈ 0.05), with |correlation| up to 0.93 between α and the alcohol slope.
The posterior covariance of the unconstrained event has condition number ≈ 3·10⁷.  A
surrogate started within (−2, 2) with unit scales must move its intercept by ~2,250 (Adam
moves a location by at most about its learning rate per step) while its scales stretch from
0.05 (log σ) to 300 (α).

Reference: NUTS run by ``harness reference unscaled_regression_wine``
(``harness/data/references/unscaled_regression_wine.npz``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, Reference, nuts_reference
from harness.models.datasets import load_csv

tfb = tfp.bijectors
tfd = tfp.distributions

RESPONSE = "proline"
PREDICTORS = ("alcohol", "flavanoids", "color_intensity", "magnesium")
# rstanarm's autoscale factor: prior sd = 2.5 response sds (per predictor sd for slopes).
PRIOR_SCALE_FACTOR = 2.5


def unscaled_regression_wine(dtype: str = "float32") -> Model:
    """Build the original-units regression of wine proline content (d = 6).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    columns = load_csv("wine")
    return original_units_regression(
        x=np.stack([columns[p] for p in PREDICTORS], axis=1),
        y=columns[RESPONSE],
        name="unscaled_regression_wine",
        pretty_name="Unscaled regression (wine)",
        description=(
            "proline (mg/L) on 4 predictors in original units, 178 wines; coefficients "
            "~100; NUTS reference"
        ),
        dtype=dtype,
        reference=nuts_reference("unscaled_regression_wine", missing_ok=True),
    )


def original_units_regression(
    *,
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    pretty_name: str,
    description: str,
    dtype: str,
    reference: Reference | None,
) -> Model:
    """Gaussian linear regression on raw (uncentred, unscaled) predictors with rstanarm's
    autoscaled priors (see the module docstring); event ``[α, β_1..k, σ]``.

    The prior's hyperparameters come from ``x`` and ``y`` as given; the models that
    :attr:`Model.simulate` returns keep them (fresh responses do not move the prior).

    Args:
      x: Predictors ``[n, k]`` in their own units.
      y: Response ``[n]``.
      name: Model name.
      pretty_name: Figure label.
      description: One line for ``harness list``.
      dtype: ``float32`` or ``float64``.
      reference: The model's reference (None while it is being made).
    """
    k = x.shape[1]
    x_mean, x_scale = x.mean(axis=0), x.std(axis=0)
    y_mean, y_scale = float(y.mean()), float(y.std())
    slope_scale = PRIOR_SCALE_FACTOR * y_scale / x_scale
    return _build(
        x,
        y,
        hyper=dict(
            x_mean=x_mean,
            intercept_loc=y_mean,
            intercept_scale=PRIOR_SCALE_FACTOR * y_scale,
            slope_scale=slope_scale,
            noise_rate=1.0 / y_scale,
        ),
        labels=(name, pretty_name, description),
        dtype=dtype,
        reference=reference,
        k=k,
    )


def _build(x, y, *, hyper, labels, dtype, reference, k) -> Model:
    name, pretty_name, description = labels
    tf_dtype = tf.as_dtype(dtype)
    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    x_mean = tf.constant(hyper["x_mean"], tf_dtype)
    intercept_prior = tfd.Normal(
        tf.constant(hyper["intercept_loc"], tf_dtype),
        tf.constant(hyper["intercept_scale"], tf_dtype),
    )
    slope_prior = tfd.Normal(tf.zeros([k], tf_dtype), tf.constant(hyper["slope_scale"], tf_dtype))
    noise_prior = tfd.Exponential(tf.constant(hyper["noise_rate"], tf_dtype))

    def split(z):
        z = tf.convert_to_tensor(z, tf_dtype)
        return z[..., 0], z[..., 1 : 1 + k], z[..., 1 + k]

    def prior_log_prob(z):
        intercept, slopes, sigma = split(z)
        centred_intercept = intercept + tf.einsum("...k,k->...", slopes, x_mean)
        return (
            intercept_prior.log_prob(centred_intercept)
            + tf.reduce_sum(slope_prior.log_prob(slopes), -1)
            + noise_prior.log_prob(sigma)
        )

    def log_likelihood(z):
        intercept, slopes, sigma = split(z)
        predicted = intercept[..., tf.newaxis] + tf.einsum("...k,nk->...n", slopes, x_t)
        return tf.reduce_sum(tfd.Normal(predicted, sigma[..., tf.newaxis]).log_prob(y_t), -1)

    def unnormalized_log_prob(z):
        return prior_log_prob(z) + log_likelihood(z)

    def simulate(seed):
        # Parameters from the prior, responses for the same predictors; no reference.
        rng = np.random.default_rng(seed)
        slopes = rng.normal(0.0, hyper["slope_scale"])
        centred_intercept = rng.normal(hyper["intercept_loc"], hyper["intercept_scale"])
        intercept = centred_intercept - hyper["x_mean"] @ slopes
        sigma = rng.exponential(1.0 / hyper["noise_rate"])
        fresh = rng.normal(intercept + x @ slopes, sigma)
        truth = np.concatenate([[intercept], slopes, [sigma]])
        return truth, _build(x, fresh, hyper=hyper, labels=labels, dtype=dtype, reference=None, k=k)

    return Model(
        name=name,
        pretty_name=pretty_name,
        dimension=k + 2,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Blockwise(
            [tfb.Identity(), tfb.Exp()], block_sizes=[k + 1, 1]
        ),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=description,
        log_likelihood=log_likelihood,
        simulate=simulate,
        data={"x": x, "y": y},
    )
