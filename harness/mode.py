"""Find the mode of a target on the unconstrained scale, with the Hessian there.

One mode finder serves the ``laplace`` baseline and the default initialisation of the
variational families (:mod:`harness.families.gaussian`, :mod:`harness.families.flows`).  On the
unconstrained scale ``u`` (``z = b(u)`` with the model's event-space bijector ``b``) it
minimises ``f(u) = −log p̃(b(u)) − log |det J_b(u)|``:

1. **L-BFGS from several starts** (SciPy's L-BFGS-B, float64 iterates, the model's own dtype
   for ``f`` and ``∇f``): ``u = 0`` first (the centre of every default event-space bijector),
   then points uniform on (−2, 2) (Stan's initialisation) drawn from the seed.  The best end
   point wins.
2. **Newton polish with the exact Hessian** on the diagonally rescaled problem
   (``D = diag(H)^{-1/2}``; the rescaled Hessian ``D H D`` has unit diagonal, so a regression
   whose coefficients differ by 10⁵ in scale is as easy as a standardised one).  Each step is
   ``u ← u − t D (D H D)⁻¹ D ∇f`` with backtracking on ``t``.  L-BFGS alone stalls on such
   problems in float32 (its line search cannot resolve changes below float32's resolution of
   ``f``); Newton's step does not need ``f`` to change to be right.
3. **Verdict**: the mode is accepted when the Hessian is positive definite there and the
   Newton decrement ``½ ∇fᵀ H⁻¹ ∇f`` (the log-density still to gain by moving to the exact
   mode of the local quadratic) is below :data:`DECREMENT_TOLERANCE` nats.  This criterion is
   scale-free, unlike a gradient norm, which for log densities of size 10⁴ in float32 never
   falls below round-off.

A model whose factory takes ``dtype`` is searched again in float64 when the float32 search
fails (:func:`initial_gaussian_of_cell`); a target with no mode (a funnel whose density is unbounded, as
the centered eight schools) is reported as such, and callers fall back.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

# Nats: the log density the polished mode may still be short of its exact local maximum.  A
# thousandth of a nat is far below any difference the harness reports (ELBOs are compared to
# within Monte Carlo errors of ~0.01 nats at best).
DECREMENT_TOLERANCE = 1e-3

# Starting points: u = 0 plus this many uniform(−2, 2) draws.  Three L-BFGS runs cost a few
# hundred gradient evaluations on the zoo's regressions: negligible next to a VI fit.
_NUM_RANDOM_STARTS = 2

# Full Hessians (d backward passes) up to this dimension; above it only L-BFGS's inverse
# Hessian diagonal is used (its d × d Hessian would cost more than the fit it initialises).
MAX_HESSIAN_DIMENSION = 1000

_MAX_NEWTON_STEPS = 30
# Points per batched gradient call of the finite-difference Hessian (bounds its memory).
_HESSIAN_BATCH = 256
_LBFGS_MAX_ITERATIONS = 1000
# The random restarts look for a better mode than u = 0's; a few hundred iterations reach any
# mode of the zoo's regressions, and bound the cost on targets with none.
_RESTART_MAX_ITERATIONS = 300

# |u| beyond this on the unconstrained scale means exp/softplus bijectors are at e^±50: the
# optimiser is running away along a direction with no mode (a funnel's neck) when, there, the
# bijector's log-Jacobian still changes by more than _RUNAWAY_NATS between u/2 and u (a
# constrained parameter heading for its boundary).  On an identity coordinate it does not
# change: a regression coefficient of 156 is a mode, not a runaway.
_RUNAWAY = 50.0
_RUNAWAY_NATS = 10.0


@dataclasses.dataclass(frozen=True)
class Mode:
    """The result of a mode search on the unconstrained scale.

    Attributes:
      position: The mode ``û`` ``[d]`` (float64).
      found: Whether a mode was found (Hessian positive definite, decrement small).
      reason: One line: how it was found, or why not.
      negative_log_density: ``f(û)``.
      covariance: ``H⁻¹`` ``[d, d]`` (float64) when the Hessian was computed and positive
        definite; else None.
      scale_diag: ``diag(H)^{-1/2}`` ``[d]``: the mean-field Laplace scale (for a Gaussian
        target, the optimal mean-field standard deviations); L-BFGS's inverse-Hessian diagonal
        square-rooted when no Hessian was computed.
      num_gradient_evaluations: Gradients of the log density evaluated (Hessian rows included).
      seconds: Wall-clock seconds of the search, tracing included.
      iterations: L-BFGS iterations plus Newton steps.
      decrement: The final Newton decrement (nats); NaN without a Hessian.
      path: The L-BFGS iterates from ``u = 0``.
      local_optima: ``(end point [d], f there)`` of every start's L-BFGS run with a finite
        value, in the order of the starts (``u = 0`` first): on a multimodal target, the
        distinct local modes the search saw (used to spread a mixture's components).
    """

    position: np.ndarray
    found: bool
    reason: str
    negative_log_density: float
    covariance: np.ndarray | None
    scale_diag: np.ndarray
    num_gradient_evaluations: int
    seconds: float
    iterations: int
    decrement: float = float("nan")
    path: tuple = ()
    local_optima: tuple = ()
    target: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def scale_tril(self) -> np.ndarray | None:
        """Cholesky factor of the covariance (``H⁻¹``), or None."""
        return None if self.covariance is None else np.linalg.cholesky(self.covariance)


class Target:
    """``f``, ``∇f`` and ``∇²f`` of a model on the unconstrained scale, as traced graph
    functions (graph mode: XLA would compile for longer than these few calls take).

    ``evaluations`` counts the points at which ``f`` and ``∇f`` were evaluated (both come from
    one traced call): the gradient evaluations charged to a method that uses it.
    """

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        self.dtype = np.dtype(getattr(model.dtype, "as_numpy_dtype", model.dtype))
        bijector = model.default_event_space_bijector

        def f(u):
            return -(
                model.unnormalized_log_prob(bijector.forward(u))
                + bijector.forward_log_det_jacobian(u, event_ndims=1)
            )

        # Batched over a leading axis (the model contract): L-BFGS calls it with one point, the
        # Hessian with 2d points at once.  One trace serves both.
        @tf.function(
            autograph=False, input_signature=[tf.TensorSpec([None, model.dimension], model.dtype)]
        )
        def value_and_gradient(u):
            with tf.GradientTape() as tape:
                tape.watch(u)
                value = f(u)
            return value, tape.gradient(value, u)

        self._value_and_gradient = value_and_gradient
        self.evaluations = 0

    def log_det_jacobian(self, u: np.ndarray) -> float:
        """``log |det J_b(u)|`` at one point ``[d]`` (eager: called once per search)."""
        import tensorflow as tf

        point = tf.constant(np.asarray(u)[None], self.model.dtype)
        bijector = self.model.default_event_space_bijector
        value = bijector.forward_log_det_jacobian(point, event_ndims=1)
        return float(np.reshape(np.asarray(value), -1)[0])  # Identity's is a scalar 0

    def runs_away(self, u: np.ndarray) -> bool:
        """Whether ``u`` is a runaway, not a mode (see :data:`_RUNAWAY`)."""
        u = np.asarray(u, np.float64)
        if not np.max(np.abs(u)) > _RUNAWAY:
            return False
        change = self.log_det_jacobian(u) - self.log_det_jacobian(u / 2)
        return not abs(change) <= _RUNAWAY_NATS

    def value_and_gradient(self, u: np.ndarray) -> tuple[float, np.ndarray]:
        """``(f(u), ∇f(u))`` at one point ``[d]`` (float64 out)."""
        self.evaluations += 1
        value, gradient = self._value_and_gradient(np.asarray(u, self.dtype)[None])
        return float(value[0]), np.asarray(gradient[0], np.float64)

    def values(self, points: np.ndarray) -> np.ndarray:
        """``f`` at ``points`` ``[n, d]`` (float64 out), in batches of :data:`_HESSIAN_BATCH`;
        each point counts as one evaluation (its gradient is computed with the value)."""
        points = np.asarray(points, self.dtype)
        out = [
            np.asarray(self._value_and_gradient(points[i : i + _HESSIAN_BATCH])[0], np.float64)
            for i in range(0, len(points), _HESSIAN_BATCH)
        ]
        self.evaluations += len(points)
        return np.concatenate(out) if out else np.zeros(0)

    def hessian(self, u: np.ndarray, scale: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``(f, ∇f, ∇²f)`` at ``u``; the Hessian by central differences of the exact gradient.

        Differences of autodiff gradients at ``u ± h_j e_j`` with ``h_j = 10⁻³ scale_j`` (the
        coordinate's posterior scale, so the step is small against the curvature's own
        length): exact for quadratic targets up to round-off, and relative error ~10⁻⁴
        otherwise.  Autodiff's exact Hessian (a loop of d second-order backward passes) costs
        more to trace (3 s for the centered eight schools) than the whole search takes.
        """
        d = len(u)
        h = 1e-3 * np.asarray(scale, np.float64)
        points = np.concatenate([u[None], u + np.diag(h), u - np.diag(h)])
        values, gradients = [], []
        for start in range(0, len(points), _HESSIAN_BATCH):
            value, gradient = self._value_and_gradient(
                np.asarray(points[start : start + _HESSIAN_BATCH], self.dtype)
            )
            values.append(np.asarray(value, np.float64))
            gradients.append(np.asarray(gradient, np.float64))
        self.evaluations += len(points)
        values, gradients = np.concatenate(values), np.concatenate(gradients)
        hessian = (gradients[1 : d + 1] - gradients[d + 1 :]) / (2 * h[:, None])
        return float(values[0]), gradients[0], 0.5 * (hessian + hessian.T)


@dataclasses.dataclass(frozen=True)
class LbfgsPath:
    """An L-BFGS run on ``f`` (SciPy's L-BFGS-B, float64 iterates).

    Attributes:
      position: The end point ``[d]``.
      value: ``f`` there.
      success: SciPy's verdict: a convergence test (``ftol`` on the relative decrease of
        ``f``, ``gtol`` on the largest gradient component) ended the run.
      message: SciPy's one-line reason for stopping.
      iterations: Iterations run.
      inverse_hessian: SciPy's L-BFGS inverse-Hessian operator at the end (``matvec``).
      positions: ``[L + 1, d]``: the start and every accepted iterate, when recorded (else
        the start only).
      values: ``f`` at ``positions`` ``[L + 1]``.
      gradients: ``∇f`` at ``positions`` ``[L + 1, d]``.
    """

    position: np.ndarray
    value: float
    success: bool
    message: str
    iterations: int
    inverse_hessian: object
    positions: np.ndarray
    values: np.ndarray
    gradients: np.ndarray


# Evaluations remembered by lbfgs() so that the iterates' values and gradients are recorded
# without evaluating them again (the accepted point is one of the line search's last trials).
_RECENT_EVALUATIONS = 32


def lbfgs(
    target: Target,
    start: np.ndarray,
    *,
    max_iterations: int = 1000,
    history_size: int = 10,
    gtol: float = 1e-10,
    ftol: float = 1e-14,
) -> LbfgsPath:
    """Minimise ``f`` from ``start`` with SciPy's L-BFGS-B, recording the path.

    The one L-BFGS of the harness: the mode search (:func:`find_mode`) and Pathfinder
    (:mod:`harness.baselines.pathfinder`) both run it.  A non-finite ``f`` is returned to SciPy
    as ``+inf`` (its line search then backs off).

    Args:
      target: The :class:`Target` (its evaluations are counted there).
      start: Starting point ``[d]``.
      max_iterations: SciPy's ``maxiter``.
      history_size: Correction pairs kept (SciPy's ``maxcor``; Pathfinder's ``J``).
      gtol: SciPy's projected-gradient tolerance (largest component of ``∇f``).
      ftol: SciPy's relative-decrease tolerance ``(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1)``.

    Returns:
      An :class:`LbfgsPath` with every accepted iterate, its value and gradient.
    """
    from scipy.optimize import minimize

    recent: dict[bytes, tuple[float, np.ndarray]] = {}

    def fun(u):
        value, gradient = target.value_and_gradient(u)
        if len(recent) >= _RECENT_EVALUATIONS:
            recent.pop(next(iter(recent)))
        recent[np.asarray(u, np.float64).tobytes()] = (value, gradient)
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            # L-BFGS-B's line search backs off from an infinite value.
            return np.inf, np.zeros_like(u)
        return value, gradient

    start = np.asarray(start, np.float64)
    positions, values, gradients = [start], [], []

    def record(u):
        u = np.array(u, np.float64)
        found = recent.get(u.tobytes())
        if found is None:  # not among the recent trials (never seen with SciPy 1.17)
            found = target.value_and_gradient(u)
        positions.append(u)
        values.append(found[0])
        gradients.append(found[1])

    outcome = minimize(
        fun,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "gtol": gtol, "ftol": ftol, "maxcor": history_size},
        callback=record,
    )
    first = recent.get(start.tobytes()) or target.value_and_gradient(start)
    return LbfgsPath(
        position=np.asarray(outcome.x, np.float64),
        value=float(outcome.fun),
        success=bool(outcome.success),
        message=str(outcome.message),
        iterations=int(outcome.nit),
        inverse_hessian=outcome.hess_inv,
        positions=np.stack(positions),
        values=np.asarray([first[0], *values], np.float64),
        gradients=np.stack([first[1], *gradients]),
    )


def _scaled_inverse(hessian: np.ndarray):
    """``(D, cholesky of D H D)`` with ``D = diag(H)^{-1/2}``, or None when H is not positive
    definite (a non-positive diagonal or a failed Cholesky)."""
    diagonal = np.diag(hessian)
    if not np.all(diagonal > 0) or not np.all(np.isfinite(hessian)):
        return None
    scale = 1.0 / np.sqrt(diagonal)
    try:
        return scale, np.linalg.cholesky(hessian * scale[:, None] * scale[None, :])
    except np.linalg.LinAlgError:
        return None


def _local_curvature(target, point):
    """:func:`_scaled_inverse` of the Hessian at ``point``, its difference steps sized by the
    point's own curvature (a first pass at unit scale, a second at ``|H_jj|^{-1/2}``)."""
    _, _, hessian = target.hessian(point, np.ones(len(point)))
    diagonal = np.abs(np.diag(hessian))
    if not np.all(np.isfinite(diagonal)) or not np.all(diagonal > 0):
        return None
    _, _, hessian = target.hessian(point, np.clip(diagonal**-0.5, 1e-8, 1e8))
    return _scaled_inverse(hessian)


def _local_covariance(target, point):
    """``H(point)⁻¹`` when the local Hessian is positive definite, else ``diag(1/|H_jj|)``
    when its diagonal is finite and non-zero (a saddle's curvature magnitudes), else None."""
    factorised = _local_curvature(target, point)
    if factorised is not None:
        scale, factor = factorised
        inverse_factor = np.linalg.inv(factor)
        return scale[:, None] * (inverse_factor.T @ inverse_factor) * scale[None, :]
    _, _, hessian = target.hessian(point, np.ones(len(point)))
    diagonal = np.abs(np.diag(hessian))
    if np.all(np.isfinite(diagonal)) and np.all(diagonal > 0):
        return np.diag(1.0 / diagonal)
    return None


def _newton_direction(gradient, scale, factor):
    """``H⁻¹ ∇f`` through the rescaled factorisation, and the Newton decrement (nats)."""
    from scipy.linalg import cho_solve

    scaled = cho_solve((factor, True), scale * gradient)
    direction = scale * scaled
    return direction, 0.5 * float(np.dot(gradient, direction))


def find_mode(
    model,
    seed=None,
    *,
    num_random_starts: int = _NUM_RANDOM_STARTS,
    max_iterations: int = _LBFGS_MAX_ITERATIONS,
    tolerance: float = DECREMENT_TOLERANCE,
    target: Target | None = None,
) -> Mode:
    """Find the mode of ``model`` on its unconstrained scale (see the module docstring).

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (``[2]`` int) for the random starting points; None uses only
        ``u = 0`` and fixed draws from seed ``(0, 0)``.
      num_random_starts: Uniform(−2, 2) starting points besides ``u = 0``.
      max_iterations: Iterations of the search from ``u = 0`` in all: its L-BFGS iterations,
        then Newton steps (at most ``_MAX_NEWTON_STEPS``).  The restarts take at most
        ``_RESTART_MAX_ITERATIONS`` L-BFGS iterations each.
      tolerance: Newton decrement (nats) below which the mode is accepted.
      target: A prepared :class:`Target` of ``model`` (its functions already traced).

    Returns:
      A :class:`Mode`; ``found`` is False (with the reason) when no start led to a point with
      a positive-definite Hessian and a small Newton decrement.
    """
    import tensorflow as tf

    started = time.perf_counter()
    target = target or Target(model)
    dim = model.dimension
    seed = tf.constant([0, 0] if seed is None else seed, tf.int32)
    starts = [np.zeros(dim)] + [
        np.asarray(tf.random.stateless_uniform([dim], s, -2.0, 2.0, dtype=tf.float64))
        for s in tf.unstack(tf.random.experimental.stateless_split(seed, num_random_starts))
    ]
    iterations = 0
    best = None
    optima = []
    for start in starts:
        outcome = lbfgs(
            target,
            start,
            max_iterations=max_iterations
            if start is starts[0]
            else min(max_iterations, _RESTART_MAX_ITERATIONS),
        )
        iterations += outcome.iterations
        if start is starts[0]:
            first_iterations = outcome.iterations
            path = list(outcome.positions)
        if np.isfinite(outcome.value):
            optima.append((np.asarray(outcome.position, np.float64), float(outcome.value)))
        if np.isfinite(outcome.value) and (best is None or outcome.value < best.value):
            best = outcome
    if best is None:
        return _failed(target, starts[0], "the log density is not finite at any start", started)
    position = np.asarray(best.position, np.float64)
    if target.runs_away(position):
        return _failed(
            target,
            position,
            f"no mode: the optimiser ran away to |u| = {np.max(np.abs(position)):.3g} "
            "(the density grows without bound, e.g. a funnel's neck)",
            started,
            iterations,
            path,
        )
    # L-BFGS's own inverse-Hessian estimate: its diagonal, from d cheap products.
    inverse = best.inverse_hessian
    lbfgs_scale = np.sqrt(
        np.clip([inverse.matvec(e)[i] for i, e in enumerate(np.eye(dim))], 1e-12, 1e12)
    )
    if dim > MAX_HESSIAN_DIMENSION:
        return Mode(
            position=position,
            found=bool(best.success),
            reason=f"L-BFGS ({best.message}); d = {dim} > {MAX_HESSIAN_DIMENSION}: "
            "no Hessian, diagonal from L-BFGS",
            negative_log_density=best.value,
            covariance=None,
            scale_diag=lbfgs_scale,
            num_gradient_evaluations=target.evaluations,
            seconds=time.perf_counter() - started,
            iterations=iterations,
            path=tuple(path),
            local_optima=tuple(optima),
            target=target,
        )
    # Newton polish with backtracking on the rescaled problem.
    value, gradient, hessian = target.hessian(position, lbfgs_scale)
    decrement = float("nan")
    # max_iterations bounds the search from u = 0 in all: its L-BFGS iterations, then Newton's.
    for _ in range(min(_MAX_NEWTON_STEPS, max(0, max_iterations - first_iterations))):
        factorised = _scaled_inverse(hessian)
        if factorised is None:
            return _failed(
                target,
                position,
                "the Hessian at the end of the search is not positive definite "
                "(a saddle, a ridge or an unbounded direction)",
                started,
                iterations,
                path,
            )
        direction, decrement = _newton_direction(gradient, *factorised)
        if decrement < tolerance:
            break
        step, moved = 1.0, False
        for _ in range(30):
            candidate = position - step * direction
            new_value, _ = target.value_and_gradient(candidate)
            if np.isfinite(new_value) and new_value <= value + 1e-4 * step * -decrement:
                moved = True
                break
            step *= 0.5
        if not moved:
            break  # f cannot resolve further progress: judged by the decrement below
        position = candidate
        iterations += 1
        value, gradient, hessian = target.hessian(position, factorised[0])
    factorised = _scaled_inverse(hessian)
    if factorised is None:
        return _failed(
            target,
            position,
            "the Hessian at the mode is not positive definite",
            started,
            iterations,
            path,
        )
    _, decrement = _newton_direction(gradient, *factorised)
    scale, factor = factorised
    inverse_factor = np.linalg.inv(factor)  # (D H D)⁻¹ = L⁻ᵀ L⁻¹
    covariance = scale[:, None] * (inverse_factor.T @ inverse_factor) * scale[None, :]
    found = decrement < tolerance
    return Mode(
        position=position,
        found=found,
        reason=(
            f"mode found: Newton decrement {decrement:.2g} nats"
            if found
            else f"no mode to {tolerance:g} nats in {iterations} iterations: Newton "
            f"decrement {decrement:.3g} nats"
        ),
        negative_log_density=value,
        covariance=0.5 * (covariance + covariance.T),
        scale_diag=1.0 / np.sqrt(np.diag(hessian)),
        num_gradient_evaluations=target.evaluations,
        seconds=time.perf_counter() - started,
        iterations=iterations,
        decrement=decrement,
        path=tuple(path),
        local_optima=tuple(optima),
        target=target,
    )


def _failed(target, position, reason, started, iterations=0, path=()) -> Mode:
    try:
        value = target.value_and_gradient(position)[0]
    except Exception:  # noqa: BLE001 - only for the record
        value = float("nan")
    return Mode(
        position=np.asarray(position, np.float64),
        found=False,
        reason=reason,
        negative_log_density=value,
        covariance=None,
        scale_diag=np.ones(len(position)),
        num_gradient_evaluations=target.evaluations,
        seconds=time.perf_counter() - started,
        iterations=iterations,
        path=tuple(path),
        target=target,
    )


@dataclasses.dataclass(frozen=True)
class InitialGaussian:
    """The Gaussian the variational families start from, on the unconstrained scale.

    Attributes:
      loc: Centre ``[d]`` (float64).
      scale_tril: Cholesky factor of its covariance ``[d, d]``, or None above
        :data:`MAX_HESSIAN_DIMENSION` (then only ``scale_diag`` is known).
      scale_diag: Per-coordinate scale ``[d]``: the mean-field Laplace scale
        ``diag(H)^{-1/2}`` (for a Gaussian target, the optimal mean-field standard deviations).
      elbo: Monte Carlo ELBO of ``N(loc, scale_tril scale_trilᵀ)`` (NaN when not estimated).
      reason: One line: which point was chosen and why.
      num_gradient_evaluations: Spent by the search and the selection.
      seconds: Wall-clock seconds of the search and the selection.
      reason_mode_found: Whether the mode search itself found a mode.
      local_optima: The mode search's :attr:`Mode.local_optima` (every start's end point and
        ``f`` there), for families that place several components.
    """

    loc: np.ndarray
    scale_tril: np.ndarray | None
    scale_diag: np.ndarray
    elbo: float
    reason: str
    num_gradient_evaluations: int
    seconds: float
    reason_mode_found: bool = False
    local_optima: tuple = ()


# Points of the L-BFGS path considered besides the mode, and draws per ELBO estimate: enough
# to tell a Gaussian in a funnel's neck (ELBO off by tens of nats) from one in its bulk.
_PATH_CANDIDATES = 6
_SELECTION_DRAWS = 64
# Each candidate is also tried with its scale shrunk: a local Hessian can be far too wide for
# the ELBO where curvature changes fast (at the centre of a funnel, Laplace's scale is the
# neck's width e^{±3σ} times too large); VI then adapts the scale from the best of them.
_SHRINKS = (1.0, 0.5, 0.25, 0.1)


def initial_gaussian(model, seed=None) -> InitialGaussian | None:
    """A Gaussian to start variational families from: the Laplace approximation at the mode,
    or a local Gaussian on the optimiser's path when that has the better ELBO.

    Like Pathfinder (Zhang et al., JMLR 2022), the candidates are the points of the L-BFGS
    path from ``u = 0`` (up to :data:`_PATH_CANDIDATES`, evenly spaced, and the polished mode),
    each with the Gaussian ``N(u, H(u)⁻¹)`` of its exact local Hessian where that is positive
    definite; the one with the largest Monte Carlo ELBO (common draws for all) wins.  At a
    regression's mode the Laplace Gaussian wins; in a funnel whose mode lies in the neck
    (Neal's funnel, centered eight schools), a point in the bulk does.

    Returns:
      None when no candidate has a positive-definite Hessian and a finite ELBO (callers fall
      back to the uniform initialisation).
    """
    started = time.perf_counter()
    mode = find_mode(model, seed)
    target = mode.target
    if target is None:
        return None
    dim = model.dimension
    if dim > MAX_HESSIAN_DIMENSION:
        return InitialGaussian(
            loc=mode.position,
            scale_tril=None,
            scale_diag=mode.scale_diag,
            elbo=float("nan"),
            reason=f"mode search: {mode.reason}",
            num_gradient_evaluations=mode.num_gradient_evaluations,
            seconds=time.perf_counter() - started,
            reason_mode_found=mode.found,
            local_optima=mode.local_optima,
        )
    rng = np.random.default_rng(0 if seed is None else [int(s) for s in np.ravel(seed)])
    noise = rng.standard_normal((_SELECTION_DRAWS, dim))
    path = list(mode.path)
    picks = sorted({int(round(i)) for i in np.linspace(0, len(path) - 1, _PATH_CANDIDATES)})
    # The mode first: on a tie (a Gaussian target, whose path ends at the mode) it is kept.
    candidates = [("the mode (Laplace)", mode.position)] if mode.covariance is not None else []
    candidates += [(f"point {i} of {len(path) - 1} on the L-BFGS path", path[i]) for i in picks]
    best = None
    for label, point in candidates:
        if label == "the mode (Laplace)":
            covariance = mode.covariance
        else:
            covariance = _local_covariance(target, point)
            if covariance is None:
                continue
        try:
            scale_tril = np.linalg.cholesky(0.5 * (covariance + covariance.T))
        except np.linalg.LinAlgError:
            continue
        hessian_diag = np.diag(np.linalg.inv(covariance))
        for shrink in _SHRINKS:
            draws = point + shrink * noise @ scale_tril.T
            values, _ = target._value_and_gradient(np.asarray(draws, target.dtype))
            target.evaluations += len(draws)
            values = np.asarray(values, np.float64)
            if not np.all(np.isfinite(values)):
                continue
            # log q at the draws rather than q's analytic entropy: the estimate of log p̃ − log q
            # then has no variance when q is exact (a Gaussian target at its mode).
            log_q = (
                -0.5 * np.sum(noise**2, axis=1)
                - 0.5 * dim * np.log(2 * np.pi)
                - np.sum(np.log(shrink * np.diag(scale_tril)))
            )
            log_weights = -values - log_q
            elbo = float(np.mean(log_weights))
            error = float(np.std(log_weights) / np.sqrt(len(log_weights)))
            # A later candidate must beat the best so far by two standard errors (and by more
            # than float32 round-off, 10⁻³ nats): the mode (first) is kept against points
            # whose estimate is higher only by chance.
            if best is None or elbo - best[0] > max(2 * np.hypot(error, best[5]), 1e-3):
                name = label if shrink == 1 else f"{label}, covariance shrunk by {shrink**2:g}"
                best = (
                    elbo,
                    name,
                    point,
                    shrink * scale_tril,
                    shrink / np.sqrt(hessian_diag),
                    error,
                )
    if best is None:
        return None
    elbo, label, point, scale_tril, scale_diag, _ = best
    return InitialGaussian(
        loc=np.asarray(point, np.float64),
        scale_tril=scale_tril,
        scale_diag=scale_diag,
        elbo=elbo,
        reason=f"{label}, ELBO {elbo:.4g} (mode search: {mode.reason})",
        num_gradient_evaluations=target.evaluations,
        seconds=time.perf_counter() - started,
        reason_mode_found=mode.found,
        local_optima=mode.local_optima,
    )


def initial_gaussian_of_cell(cell, model, seed=None) -> InitialGaussian | None:
    """:func:`initial_gaussian`, searched again in float64 when the model is float32, its
    factory takes ``dtype`` and the float32 search found no mode (the result of the wider
    search is kept when its ELBO is the better one).

    Round-off of float32 log densities (about 10⁻⁷ of their size) can hide the last steps to
    the mode of a badly scaled regression; float64 does not.
    """
    found = initial_gaussian(model, seed)
    if found is not None and found.reason_mode_found:
        return found
    from harness.models import in_float64

    precise = in_float64(cell.model, cell.model_args, model)
    if precise is None or precise is model:
        return found
    wide = initial_gaussian(precise, seed)
    if wide is None or (found is not None and not wide.elbo > found.elbo):
        return found
    return dataclasses.replace(
        wide,
        reason=f"{wide.reason} [float64: the float32 search found no mode]",
        num_gradient_evaluations=wide.num_gradient_evaluations
        + (found.num_gradient_evaluations if found else 0),
        seconds=wide.seconds + (found.seconds if found else 0.0),
    )


def traced_target(model) -> tuple[Target, float]:
    """A :class:`Target` with its function traced, and the seconds tracing took: a method that
    runs on it reports that as ``compile_seconds``, apart from its own time (its evaluation
    count starts at zero after the trace)."""
    t0 = time.perf_counter()
    target = Target(model)
    target.value_and_gradient(np.zeros(model.dimension))
    target.evaluations = 0
    return target, time.perf_counter() - t0
