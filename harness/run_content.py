"""What the driver prepares for a cell's MLflow run, apart from writing it
(:mod:`harness.tracking` does the I/O): tags (labels from the registries, the verdict note,
the k̂ band), params, metrics and the thinned loss points, the text artifacts, the model's
data as a dataset input, the per-cell figure and draws file, and the loss curve kept for the
sweep's ``loss_curves.json``.

Preparing needs the registries (model pretty names, references) and matplotlib; writing needs
only MLflow.  :func:`prepare` is the one entry point.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.records import Cell, FitResult

# Tags the driver sets on a cell's run (besides the display labels).
FIT_PARAMS_TAG = "harness.fit_params"
NOTE_TAG = "mlflow.note.content"
MAX_LOSS_POINTS = 1000
DRAWS_ARTIFACT = "draws.npz"
CELL_FIGURE_ARTIFACT = "cell.png"
MAX_LOGGED_DRAWS = 1000  # q draws and reference draws kept per cell (float32): enough for a
# histogram overlay, small enough (≤ 4 kB per coordinate) that 500 runs stay cheap.
LOSS_CURVE_POINTS = 64
# The per-step loss is a `sample_size`-particle estimate: a moving average over 2 % of the steps
# shows the trend without hiding the convergence time.
LOSS_CURVE_SMOOTHING = 0.02
_MAX_TAG_CHARS = 5000


@dataclasses.dataclass
class RunContent:
    """Everything one cell's run holds, ready to write.

    Attributes:
      run_name: ``model/family/seed``, or the cell's label in its grid.
      started_ms: The cell's start (Unix ms), or None.
      tags: Run tags (the parent-run tag is the writer's).
      params: Param name → string value.
      metrics: Final metrics (name → float).
      loss_points: ``(step, loss, seconds since start)`` of the thinned finite loss trace.
      texts: Text artifacts, file name → content (``loss_trace.csv``, ``traceback.txt``).
      files: Binary artifacts, file name → bytes (``draws.npz``, ``cell.png``).
      dataset: ``(name, arrays)`` of the data the model conditions on, or None.
      terminal_status: ``FINISHED`` or ``FAILED`` (the cell raised).
      loss_curve: The cell's entry of ``loss_curves.json``, or None without a loss trace.
    """

    run_name: str
    started_ms: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    loss_points: list[tuple[int, float, float]]
    texts: dict[str, str]
    files: dict[str, bytes]
    dataset: tuple[str, dict[str, np.ndarray]] | None
    terminal_status: str
    loss_curve: dict[str, list[float]] | None


def prepare(
    result: FitResult, *, extra_tags: dict[str, str] | None = None, run_name: str | None = None
) -> RunContent:
    """The run of ``result``'s cell.  ``extra_tags`` are added (a journal replay adds
    ``harness.journal_entry``); ``run_name`` replaces ``model/family/seed`` (a sweep passes
    :func:`harness.spec.cell_labels`'s label, so that two configurations of one family never
    share a name on the dashboard)."""
    cell = result.cell
    tags = run_tags(result)
    tags.update(extra_tags or {})
    if run_name:
        tags["mlflow.runName"] = run_name
    texts = {}
    if result.losses.size:
        texts["loss_trace.csv"] = loss_trace_csv(result)
    if result.traceback:
        texts["traceback.txt"] = result.traceback
    steps = thin_steps(result.losses.size, MAX_LOSS_POINTS)
    params = {k: str(v) for k, v in cell_params(cell).items()}
    params.update({k: str(v)[:500] for k, v in result.fit_params.items()})
    return RunContent(
        run_name=run_name or cell.run_name,
        started_ms=int(result.started_at * 1000) or None,
        tags=tags,
        params=params,
        metrics=dict(result.metrics),
        loss_points=[
            (int(i), float(result.losses[i]), float(result.loss_seconds[i]))
            for i in steps
            if np.isfinite(result.losses[i])
        ],
        texts=texts,
        files=cell_files(result),
        dataset=model_dataset(cell.model, tuple(cell.model_args)),
        terminal_status="FAILED" if result.status == "error" else "FINISHED",
        loss_curve=(
            loss_curve_record(result.losses, result.loss_seconds) if result.losses.size else None
        ),
    )


def run_tags(result: FitResult) -> dict[str, str]:
    """The tags of a cell's run: identity, status, verdict, display labels and the note."""
    from harness.verdicts import cell_verdict

    cell = result.cell
    tags = {
        "mlflow.runName": cell.run_name,
        "harness.cell_id": cell.cell_id,
        "harness.status": result.status,
        "harness.reason": result.reason[:_MAX_TAG_CHARS],
        "harness.model": cell.model,
        "harness.family": cell.family,
        "harness.seed": str(cell.seed),
        "harness.fit_mode": result.fit_mode,
        "harness.device": result.device,
    }
    if result.fallback_reason:
        tags["harness.jit_fallback_reason"] = result.fallback_reason[:_MAX_TAG_CHARS]
    if result.diverged_step is not None:
        tags["harness.diverged_step"] = str(result.diverged_step)
    if result.fit_params:
        # Values the fit chose (logged as params): the report must not read them as settings.
        tags[FIT_PARAMS_TAG] = ",".join(sorted(result.fit_params))
    if result.converged is not None:
        tags["harness.converged"] = str(bool(result.converged)).lower()
        tags["harness.convergence_reason"] = result.convergence_reason[:_MAX_TAG_CHARS]
    tags.update(display_tags(cell))
    if "khat" in result.metrics:
        from harness.metrics.calibration import khat_band

        tags["harness.khat_band"] = khat_band(result.metrics["khat"])
    tags[NOTE_TAG] = cell_verdict(result, tags.get("harness.khat_band"))
    return tags


def cell_params(cell: Cell) -> dict[str, Any]:
    """The params of a cell's run: model, family, seed, model args, hyperparameters, fit and
    metric settings."""
    params: dict[str, Any] = {"model": cell.model, "family": cell.family, "seed": cell.seed}
    params.update({f"model.{k}": v for k, v in cell.model_args})
    params.update({f"family.{k}": v for k, v in cell.hyperparameters})
    params.update(dataclasses.asdict(cell.fit))
    params.update({f"metrics.{k}": v for k, v in dataclasses.asdict(cell.metrics).items()})
    return params


def thin_steps(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced step indices of ``n``, always with first and last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def loss_trace_csv(result: FitResult) -> str:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(
        {
            "step": np.arange(result.losses.size),
            "seconds": result.loss_seconds,
            "loss": result.losses,
        }
    ).to_csv(buffer, index=False)
    return buffer.getvalue()


@functools.lru_cache(maxsize=64)
def _model(name: str, args: tuple):
    """The registry's model of a cell (driver side, cached per sweep); None if it cannot be
    built here (the cell's own error is then in its run)."""
    try:
        from harness.models import build_model

        return build_model(name, **dict(args))
    except Exception:  # noqa: BLE001 - figures are optional, the cell's result is not
        return None


def model_dataset(name: str, args: tuple) -> tuple[str, dict[str, np.ndarray]] | None:
    """The data a model conditions on, ``(model name, arrays)``, for the runs' Dataset column;
    None for models without data (analytic targets)."""
    model = _model(name, args)
    data = getattr(model, "data", None)
    if not data:
        return None
    return model.name, {k: np.atleast_1d(np.asarray(v)) for k, v in data.items()}


def display_tags(cell: Cell) -> dict[str, str]:
    """Labels the report needs without importing the registries (or TensorFlow): the model's and
    family's pretty names, the family's kind and its registry position (fixes its colour)."""
    from harness.families import FAMILIES

    tags = {}
    model = _model(cell.model, tuple(cell.model_args))
    if model is not None:
        tags["harness.model_pretty_name"] = model.pretty_name
    if cell.family in FAMILIES:
        family = FAMILIES[cell.family]
        tags["harness.family_pretty_name"] = family.pretty_name
        tags["harness.family_kind"] = family.kind
        tags["harness.family_order"] = str(list(FAMILIES).index(cell.family))
    return tags


def cell_files(result: FitResult) -> dict[str, bytes]:
    """``draws.npz`` (≤ 1,000 q draws and the reference's mean, std and ≤ 1,000 draws, all
    float32) and ``cell.png`` (q's marginals over the reference and the loss curve)."""
    from harness.figures import cell as cell_figures

    cell = result.cell
    model = _model(cell.model, tuple(cell.model_args))
    ref = model.reference if model is not None else None
    reference = None
    arrays = {}
    if ref is not None:
        reference = {
            "mean": np.asarray(ref.mean, np.float32),
            "standard_deviation": np.asarray(ref.standard_deviation, np.float32),
            "draws": (
                None if ref.draws is None else np.asarray(ref.draws[:MAX_LOGGED_DRAWS], np.float32)
            ),
        }
        arrays.update({f"reference_{k}": v for k, v in reference.items() if v is not None})
    draws = (
        None if result.draws is None else np.asarray(result.draws[:MAX_LOGGED_DRAWS], np.float32)
    )
    if draws is not None:
        arrays["draws"] = draws
    if draws is None and not result.losses.size:
        return {}
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        if draws is not None:
            np.savez(Path(tmp) / DRAWS_ARTIFACT, **arrays)
        title = (
            f"{model.pretty_name if model is not None else cell.model} · {cell.family} · "
            f"seed {cell.seed}"
        )
        if getattr(model, "kind", "posterior") == "amortized":  # a VAE: draws are images
            cell_figures.vae_cell_figure(
                Path(tmp) / CELL_FIGURE_ARTIFACT,
                draws=draws,
                losses=result.losses,
                loss_seconds=result.loss_seconds,
                title=title,
            )
        else:
            cell_figures.cell_figure(
                Path(tmp) / CELL_FIGURE_ARTIFACT,
                draws=draws,
                losses=result.losses,
                loss_seconds=result.loss_seconds,
                reference=reference,
                title=title,
            )
        for path in sorted(Path(tmp).iterdir()):
            files[path.name] = path.read_bytes()
    return files


def loss_curve(
    losses: np.ndarray, seconds: np.ndarray, points: int = LOSS_CURVE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, smoothed loss) at ≤ ``points`` steps log-spaced in fit time (first and last
    kept); non-finite losses and steps at time 0 are dropped."""
    from harness.figures.style import smooth

    losses, seconds = np.asarray(losses, float), np.asarray(seconds, float)
    keep = np.isfinite(losses) & (seconds > 0)
    losses, seconds = losses[keep], seconds[keep]
    if losses.size == 0:
        return seconds, losses
    smoothed = smooth(losses, max(1, int(round(LOSS_CURVE_SMOOTHING * losses.size))))
    if losses.size <= points:
        return seconds, smoothed
    targets = np.geomspace(seconds[0], seconds[-1], points)
    index = np.unique(np.clip(np.searchsorted(seconds, targets), 0, seconds.size - 1))
    return seconds[index], smoothed[index]


def loss_curve_record(losses: np.ndarray, seconds: np.ndarray) -> dict[str, list[float]]:
    """A cell's entry of ``loss_curves.json``: ``{"seconds": [...], "loss": [...]}``."""
    t, loss = loss_curve(losses, seconds)
    return {"seconds": [float(f"{v:.6g}") for v in t], "loss": [float(f"{v:.7g}") for v in loss]}
