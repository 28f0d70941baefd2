"""The ``pathfinder`` baseline: Pathfinder variational inference (Zhang et al., JMLR 2022).

Pathfinder (Zhang, Carpenter, Gelman and Vehtari, "Pathfinder: Parallel quasi-Newton
variational inference", JMLR 23(306), 2022) runs L-BFGS on ``f(u) = −log p̃(b(u)) −
log |det J_b(u)|`` (the unconstrained scale ``u`` of the model's event-space bijector ``b``) and,
at every iterate ``θ_l`` of the path, forms the normal ``N(μ_l, Σ_l)`` whose covariance is the
L-BFGS inverse-Hessian estimate there:

* **Inverse Hessian** (the paper's Algorithm 3 and eq. II.1): the diagonal ``α`` is updated
  from each accepted correction pair ``(s, y)`` (``s = θ_l − θ_{l−1}``, ``y = ∇f(θ_l) −
  ∇f(θ_{l−1})``, accepted when ``sᵀy > ε ‖y‖²`` with ε = 2.2·10⁻¹⁶, the curvature condition);
  with the last ``J`` (``history_size``) accepted pairs ``S, Y`` (d × m) the estimate is the
  compact BFGS form ``Σ = diag(α) + β γ βᵀ``, ``β = [diag(α) Y, S]`` and
  ``γ = [[0, −R⁻¹], [−R⁻ᵀ, R⁻ᵀ (D + Yᵀ diag(α) Y) R⁻¹]]`` (``R`` the upper triangle of
  ``SᵀY``, ``D`` its diagonal), a diagonal plus rank-2m matrix.  A pair is also skipped when
  its step lowered ``f`` by less than ``f``'s round-off (10 machine epsilons of the model's
  dtype, relative): float32 paths end with such steps, whose ``y`` is round-off.
* **Local normal**: ``μ_l = θ_l − Σ_l ∇f(θ_l)`` (one quasi-Newton step from the iterate).
* **Draws and log q** (Algorithm 4, BFGS-Sample): with the thin QR ``Q R̃ = diag(α)^{-1/2} β``
  and ``L = chol(I + R̃ γ R̃ᵀ)``, a draw is ``μ + diag(α)^{1/2} (Q (L − I) Qᵀ ε + ε)``, ε
  standard normal, and ``log det Σ = Σ log α + 2 Σ log L_ii``: O(d m²) per iterate, no d × d
  matrix.
* **Choice**: the ELBO of each iterate's normal is estimated from ``K`` (``num_elbo_draws``)
  draws; the normal with the largest estimate is Pathfinder's approximation.

**Multi-path** (``num_paths > 1``, the paper's Algorithm 2): independent paths from
``u ~ U(−2, 2)`` each (Stan's initialisation) give one chosen normal each; ``num_draws`` draws
from every path's normal are pooled with log weights ``log p̃ − log q_path``, the weights are
Pareto-smoothed (PSIS, Vehtari et al., 2024), and ``num_draws`` draws are resampled from the
pool in proportion to them, with replacement (as Stan).

On the harness's axes: a single path returns its chosen normal as a density (pushed through
``b``), evaluated like every variational fit (ELBO, k̂, KL and the draw metrics); multi-path
returns the resampled draws (no density: no ELBO), with ``khat`` the PSIS k̂ of the pooled
importance weights.  Every point at which the log density was evaluated counts as a gradient
evaluation (the traced target computes both at once): L-BFGS's, the ELBO draws' and the
multi-path draws'.  The verdict ``converged`` is L-BFGS's own (a convergence test ended every
path, not the iteration limit or a failed line search), as for ``laplace``.

The paths run in float64, as Stan's do (``precise_model``: the model rebuilt in float64 when
its factory takes ``dtype``); in float32, L-BFGS's relative-decrease test fires on round-off
short of a badly scaled regression's mode.  Where this differs from the reference
implementations is in ``docs/pathfinder.md``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from harness.baselines.base import BaselineFit

# The paper's curvature threshold ε for accepting a correction pair (float64 machine epsilon).
_CURVATURE_EPSILON = 2.2e-16
# A correction pair is kept only when its step lowered f by more than this many units of f's
# round-off (machine epsilon of the model's dtype times max(|f|, 1)).  Below that, in float32,
# the step is at the mode to within round-off and y = ∇f(θ_l) − ∇f(θ_{l−1}) is round-off too: such
# a pair corrupts the inverse-Hessian estimate (on an isotropic Gaussian, whose estimate is
# exact after one pair, the last round-off pair of a converged run makes the covariance 30 %
# wrong).  In float64 the threshold is ~10⁻¹⁵ relative, below Stan's own tolerance.
_ROUNDOFF_UNITS = 10.0
# Stan's L-BFGS tolerances for Pathfinder: relative decrease of f below 10⁴ machine epsilons
# (tol_rel_obj = 10⁴) and gradient below 10⁻⁸ (tol_grad).
_FTOL = 1e4 * 2.2e-16
_GTOL = 1e-8
# Stan's initialisation radius: starting points uniform on (−2, 2) on the unconstrained scale.
_INIT_RADIUS = 2.0


@dataclasses.dataclass(frozen=True)
class PathNormal:
    """A Pathfinder normal ``N(loc, diag(alpha) + beta gamma betaᵀ)`` on the unconstrained scale.

    Attributes:
      loc: ``μ`` ``[d]``.
      alpha: Diagonal of the initial inverse Hessian ``[d]``.
      beta: ``[d, 2m]`` (``m`` accepted correction pairs, at most ``history_size``).
      gamma: ``[2m, 2m]``.
      elbo: The ``K``-draw ELBO estimate that chose it.
      iteration: Its iterate's index on the L-BFGS path (0: the start).
    """

    loc: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    elbo: float = float("nan")
    iteration: int = 0

    def covariance(self) -> np.ndarray:
        """The dense covariance ``[d, d]``."""
        cov = np.diag(self.alpha) + self.beta @ self.gamma @ self.beta.T
        return 0.5 * (cov + cov.T)

    def variance(self) -> np.ndarray:
        """The covariance's diagonal ``[d]`` without forming it."""
        return self.alpha + np.einsum("ij,jk,ik->i", self.beta, self.gamma, self.beta)

    def _factors(self):
        """``(Q, L − I, log det Σ)`` of BFGS-Sample, or None when ``Σ`` is not positive
        definite."""
        if not np.all(self.alpha > 0) or not np.all(np.isfinite(self.alpha)):
            return None
        if self.beta.shape[1] == 0:
            return None, None, float(np.sum(np.log(self.alpha)))
        q, r = np.linalg.qr(self.beta / np.sqrt(self.alpha)[:, None])
        inner = np.eye(r.shape[0]) + r @ self.gamma @ r.T
        try:
            chol = np.linalg.cholesky(0.5 * (inner + inner.T))
        except np.linalg.LinAlgError:
            return None
        log_det = float(np.sum(np.log(self.alpha)) + 2 * np.sum(np.log(np.diag(chol))))
        return q, chol - np.eye(r.shape[0]), log_det

    def sample(self, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Draws ``[n, d]`` and their ``log q`` ``[n]`` from standard normal ``noise`` ``[n, d]``
        (BFGS-Sample); None when the covariance is not positive definite."""
        factors = self._factors()
        if factors is None:
            return None
        q, l_minus_i, log_det = factors
        white = noise if q is None else noise + ((noise @ q) @ l_minus_i.T) @ q.T
        draws = self.loc + white * np.sqrt(self.alpha)
        d = noise.shape[1]
        log_q = -0.5 * (log_det + np.sum(noise**2, axis=1) + d * np.log(2 * np.pi))
        return draws, log_q


def _update_alpha(alpha: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The paper's diagonal update of the inverse Hessian from one accepted pair."""
    a = float(y @ (alpha * y))
    b = float(y @ s)
    c = float(s @ (s / alpha))
    inverse = a / (b * alpha) + y**2 / b - a * s**2 / (b * c * alpha**2)
    return 1.0 / inverse


def _local_normal(position, gradient, alpha, pairs) -> PathNormal:
    """The normal at an iterate from its gradient (of ``f``), ``α`` and the accepted pairs."""
    d = len(position)
    if not pairs:
        beta, gamma = np.zeros((d, 0)), np.zeros((0, 0))
    else:
        s = np.stack([p[0] for p in pairs], axis=1)
        y = np.stack([p[1] for p in pairs], axis=1)
        sty = s.T @ y
        r_inverse = np.linalg.inv(np.triu(sty))
        m = len(pairs)
        beta = np.concatenate([alpha[:, None] * y, s], axis=1)
        lower = r_inverse.T @ (np.diag(np.diag(sty)) + y.T @ (alpha[:, None] * y)) @ r_inverse
        gamma = np.block([[np.zeros((m, m)), -r_inverse], [-r_inverse.T, lower]])
    step = alpha * gradient + beta @ (gamma @ (beta.T @ gradient))
    return PathNormal(loc=position - step, alpha=alpha, beta=beta, gamma=gamma)


@dataclasses.dataclass(frozen=True)
class PathResult:
    """One Pathfinder path.

    Attributes:
      normal: The chosen normal (largest ELBO estimate), or None when no iterate had a
        positive-definite covariance and a finite ELBO.
      success: L-BFGS's verdict (a convergence test ended the run).
      message: L-BFGS's reason for stopping.
      iterations: L-BFGS iterations.
      elbos: The ELBO estimate at every iterate ``1..L`` (−inf where undefined).
      normals: The normal of every iterate ``1..L`` with its ELBO estimate (None where its
        covariance was not positive definite).
    """

    normal: PathNormal | None
    success: bool
    message: str
    iterations: int
    elbos: np.ndarray
    normals: tuple = ()


def single_path(
    target,
    start: np.ndarray,
    rng: np.random.Generator,
    *,
    history_size: int = 6,
    num_elbo_draws: int = 25,
    max_iterations: int = 1000,
) -> PathResult:
    """Single-path Pathfinder from ``start`` (the paper's Algorithm 1).

    Args:
      target: A :class:`harness.mode.Target` (its evaluations count every log density).
      start: Starting point ``[d]`` on the unconstrained scale.
      rng: NumPy generator of the ELBO draws.
      history_size: ``J``: correction pairs of the inverse-Hessian estimate (and of L-BFGS).
      num_elbo_draws: ``K``: draws per ELBO estimate.
      max_iterations: L-BFGS iteration limit.

    Returns:
      A :class:`PathResult`.
    """
    from harness.mode import lbfgs

    path = lbfgs(
        target,
        start,
        max_iterations=max_iterations,
        history_size=history_size,
        gtol=_GTOL,
        ftol=_FTOL,
    )
    d = len(start)
    resolution = _ROUNDOFF_UNITS * float(np.finfo(target.dtype).eps)
    alpha = np.ones(d)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    best, elbos, normals = None, [], []
    for i in range(1, len(path.positions)):
        s = path.positions[i] - path.positions[i - 1]
        y = path.gradients[i] - path.gradients[i - 1]
        decrease = path.values[i - 1] - path.values[i]
        resolved = decrease > resolution * max(abs(path.values[i]), 1.0)
        if resolved and np.all(np.isfinite(y)) and s @ y > _CURVATURE_EPSILON * (y @ y):
            updated = _update_alpha(alpha, s, y)
            if np.all(np.isfinite(updated)) and np.all(updated > 0):
                alpha = updated
                pairs = (pairs + [(s, y)])[-history_size:]
        if not np.all(np.isfinite(path.gradients[i])):
            elbos.append(-np.inf)
            normals.append(None)
            continue
        normal = _local_normal(path.positions[i], path.gradients[i], alpha, pairs)
        drawn = normal.sample(rng.standard_normal((num_elbo_draws, d)))
        if drawn is None:
            elbos.append(-np.inf)
            normals.append(None)
            continue
        draws, log_q = drawn
        log_weights = -target.values(draws) - log_q
        elbo = float(np.mean(log_weights)) if np.all(np.isfinite(log_weights)) else -np.inf
        elbos.append(elbo)
        normals.append(dataclasses.replace(normal, elbo=elbo, iteration=i))
        if np.isfinite(elbo) and (best is None or elbo > best.elbo):
            best = dataclasses.replace(normal, elbo=elbo, iteration=i)
    return PathResult(
        normal=best,
        success=path.success,
        message=path.message,
        iterations=path.iterations,
        elbos=np.asarray(elbos, np.float64),
        normals=tuple(normals),
    )


@dataclasses.dataclass(frozen=True)
class Pathfinder:
    """The outcome of (multi-path) Pathfinder on the unconstrained scale.

    Attributes:
      paths: Every path's :class:`PathResult`.
      draws: Multi-path: the importance-resampled draws ``[num_draws, d]``; single path: None
        (the chosen normal is the approximation).
      khat: Multi-path: PSIS k̂ of the pooled importance weights (NaN for one path).
      effective_sample_size: Multi-path: ``1 / Σ w̃²`` of the smoothed normalised weights
        (NaN for one path).
      num_gradient_evaluations: Log-density-and-gradient evaluations in all.
      seconds: Wall-clock seconds (tracing excluded when the target was traced before).
      converged: L-BFGS converged on every path.
      reason: One line: the verdict and the chosen normal(s).
    """

    paths: tuple[PathResult, ...]
    draws: np.ndarray | None
    khat: float
    effective_sample_size: float
    num_gradient_evaluations: int
    seconds: float
    converged: bool
    reason: str

    @property
    def normal(self) -> PathNormal:
        """The chosen normal with the largest ELBO over the paths."""
        usable = [p.normal for p in self.paths if p.normal is not None]
        return max(usable, key=lambda n: n.elbo)


def run_pathfinder(
    model,
    seed,
    *,
    num_paths: int = 1,
    history_size: int = 6,
    num_elbo_draws: int = 25,
    num_draws: int = 1000,
    max_iterations: int = 1000,
    target=None,
) -> Pathfinder:
    """Run Pathfinder on ``model`` (see the module docstring).

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Two integers: the starting points, ELBO draws and resampling derive from them.
      num_paths: Independent paths (1: single-path Pathfinder).
      history_size: ``J``.
      num_elbo_draws: ``K``.
      num_draws: Multi-path: draws per path pooled for resampling, and draws resampled.
      max_iterations: L-BFGS iteration limit per path.
      target: A prepared :class:`harness.mode.Target` of ``model``.

    Returns:
      A :class:`Pathfinder`.

    Raises:
      ValueError: when no path found a normal with a finite ELBO.
    """
    from harness.mode import Target

    started = time.perf_counter()
    target = target or Target(model)
    first = target.evaluations
    words = [int(w) & 0x7FFFFFFF for w in np.asarray(seed).reshape(-1)[:2]]
    rng = np.random.default_rng([*words, 0x9A7F])
    d = model.dimension
    paths = tuple(
        single_path(
            target,
            rng.uniform(-_INIT_RADIUS, _INIT_RADIUS, d),
            rng,
            history_size=history_size,
            num_elbo_draws=num_elbo_draws,
            max_iterations=max_iterations,
        )
        for _ in range(num_paths)
    )
    usable = [p for p in paths if p.normal is not None]
    if not usable:
        raise ValueError(
            f"pathfinder: no iterate of {num_paths} path(s) gave a normal with a finite ELBO "
            f"(L-BFGS: {paths[0].message})"
        )
    draws, khat, ess = None, float("nan"), float("nan")
    if num_paths > 1:
        from arviz_stats.base import array_stats

        pooled, log_weights = [], []
        for p in usable:
            drawn, log_q = p.normal.sample(rng.standard_normal((num_draws, d)))
            pooled.append(drawn)
            log_weights.append(-target.values(drawn) - log_q)
        pooled, log_weights = np.concatenate(pooled), np.concatenate(log_weights)
        finite = np.isfinite(log_weights)
        pooled, log_weights = pooled[finite], log_weights[finite]
        # arviz-stats' psislw smooths the weights 1/exp(input): pass −log w (see
        # harness.metrics.calibration.khat).  It returns normalised smoothed log weights.
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed, khat = array_stats.psislw(-log_weights)
        probabilities = np.exp(np.asarray(smoothed, np.float64))
        picks = rng.choice(len(pooled), size=num_draws, p=probabilities / probabilities.sum())
        draws, khat = pooled[picks], float(np.asarray(khat))
        ess = float(1.0 / np.sum((probabilities / probabilities.sum()) ** 2))
    converged = all(p.success for p in paths)
    best = max(usable, key=lambda p: p.normal.elbo).normal
    failed = [p.message for p in paths if not p.success]
    verdict = (
        f"L-BFGS converged on {len(paths)}/{len(paths)} path(s)"
        if converged
        else f"L-BFGS converged on {len(paths) - len(failed)}/{len(paths)} path(s) ({failed[0]})"
    )
    return Pathfinder(
        paths=paths,
        draws=draws,
        khat=khat,
        effective_sample_size=ess,
        num_gradient_evaluations=target.evaluations - first,
        seconds=time.perf_counter() - started,
        converged=converged,
        reason=f"{verdict}; best normal at iterate {best.iteration} of "
        f"{max(p.iterations for p in paths)}, ELBO {best.elbo:.4g}",
    )


def build_pathfinder(
    model,
    *,
    seed,
    num_paths: int = 1,
    history_size: int = 6,
    num_elbo_draws: int = 25,
    num_draws: int = 1000,
    max_iterations: int = 1000,
    precise_model=None,
) -> BaselineFit:
    """Pathfinder (single- or multi-path) as a baseline on the harness's axes.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32).
      precise_model: ``model`` in float64 (the engine passes it when the model can be rebuilt
        so): the paths run on it, as Stan's run in double precision.  In float32 the relative
        decrease of ``f`` falls to round-off long before the mode of a badly scaled regression
        (L-BFGS then stops "converged" 7.5 posterior sds from it) and the last correction
        pairs are round-off.  The approximation is returned in ``model``'s dtype.
      num_paths: Independent L-BFGS paths: 1 is single-path Pathfinder (its chosen normal is
        returned as a density); more is multi-path (importance-resampled draws).
      history_size: ``J``: L-BFGS correction pairs, also those of each local normal's
        covariance (6, the paper's default; Stan's is 5).
      num_elbo_draws: ``K``: draws per ELBO estimate along the path (25, Stan's default).
      num_draws: Multi-path: draws per path pooled for importance resampling, and draws
        resampled (1,000, Stan's default); a single path's normal is evaluated with the fit's
        ``elbo_sample_size`` fresh draws instead, like every density.
      max_iterations: L-BFGS iteration limit per path (1,000, Stan's default).

    Returns:
      A :class:`BaselineFit`: single path, ``surrogate_posterior`` the chosen normal pushed
      through the event-space bijector; multi-path, ``draws`` on the constrained scale and the
      metric ``khat``.  Metrics ``pathfinder_elbo`` (the chosen normal's K-draw ELBO) and
      ``pathfinder_iteration`` (its iterate's index).

    Raises:
      ValueError: when no path found a normal with a finite ELBO.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    from harness.mode import traced_target

    tfd = tfp.distributions
    dtype, bijector = model.dtype, model.default_event_space_bijector
    # Trace first, so that fit_seconds is the method's own time (as for laplace).
    searched = model if precise_model is None else precise_model
    target, compile_seconds = traced_target(searched)
    outcome = run_pathfinder(
        searched,
        seed,
        num_paths=num_paths,
        history_size=history_size,
        num_elbo_draws=num_elbo_draws,
        num_draws=num_draws,
        max_iterations=max_iterations,
        target=target,
    )
    normal = outcome.normal
    metrics = {
        "pathfinder_elbo": normal.elbo,
        "pathfinder_iteration": float(normal.iteration),
    }
    common = dict(
        fit_seconds=outcome.seconds,
        compile_seconds=compile_seconds,
        num_steps_run=sum(p.iterations for p in outcome.paths),
        num_gradient_evaluations=float(outcome.num_gradient_evaluations),
        mode="graph",
        converged=outcome.converged,
        convergence_reason=outcome.reason
        + ("" if searched is model else "; paths in float64 (the model is float32)"),
    )
    if outcome.draws is None:
        q = tfd.TransformedDistribution(
            tfd.MultivariateNormalTriL(
                loc=tf.constant(normal.loc, dtype),
                scale_tril=tf.constant(np.linalg.cholesky(normal.covariance()), dtype),
            ),
            bijector,
            name="pathfinder_surrogate",
        )
        return BaselineFit(surrogate_posterior=q, metrics=metrics, **common)
    draws = bijector.forward(tf.constant(outcome.draws, dtype)).numpy().astype(np.float64)
    if np.isfinite(outcome.khat):
        metrics["khat"] = outcome.khat
    return BaselineFit(draws=draws, metrics=metrics, **common)


def initial_gaussian(model, seed=None, *, precise_model=None):
    """Single-path Pathfinder's normal as the start of a variational fit
    (``fit.initialization = "pathfinder"``).

    Full-rank families start at ``N(μ, Σ)`` exactly (``scale_tril = chol(Σ)``); the diagonal
    families at ``N(μ, diag(s₀²))`` with ``s₀ = diag(Σ⁻¹)^{-1/2}`` (for a Gaussian target whose
    precision Pathfinder recovered, the mean-field optimum, as the ``mode`` initialisation's
    ``diag(H)^{-1/2}``).  Above :data:`harness.mode.MAX_HESSIAN_DIMENSION` no dense ``Σ`` is
    formed: ``scale_tril`` is None and ``s₀`` the marginal standard deviations.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Two integers (None: ``(0, 0)``).
      precise_model: ``model`` in float64, on which the path runs when given (see
        :func:`build_pathfinder`).

    Returns:
      A :class:`harness.mode.InitialGaussian`, or None when Pathfinder found no normal with a
      finite ELBO (callers fall back to the uniform initialisation).
    """
    from harness.mode import MAX_HESSIAN_DIMENSION, InitialGaussian

    started = time.perf_counter()
    try:
        outcome = run_pathfinder(
            model if precise_model is None else precise_model, [0, 0] if seed is None else seed
        )
    except ValueError:
        return None
    normal = outcome.normal
    if model.dimension <= MAX_HESSIAN_DIMENSION:
        covariance = normal.covariance()
        scale_tril = np.linalg.cholesky(covariance)
        scale_diag = 1.0 / np.sqrt(np.diag(np.linalg.inv(covariance)))
    else:
        scale_tril, scale_diag = None, np.sqrt(normal.variance())
    return InitialGaussian(
        loc=normal.loc,
        scale_tril=scale_tril,
        scale_diag=scale_diag,
        elbo=normal.elbo,
        reason=f"pathfinder: {outcome.reason}",
        num_gradient_evaluations=outcome.num_gradient_evaluations,
        seconds=time.perf_counter() - started,
        reason_mode_found=outcome.converged,
    )
