"""Experiment specs: load a TOML file, validate it, expand it into cells.

A spec is data.  The only code it can bring in is a user model named explicitly as
``"package.module:attr"`` or ``"path/to/file.py:attr"`` (a table may add ``reference =
"draws.npz"`` or ``.csv``; paths are relative to the spec's folder; see
:mod:`harness.models.user`).  Every error names the file, the key and what is allowed, and is
raised before anything is fitted or logged.

Format::

    name = "quickstart"                 # experiment name (MLflow experiment, results/<name>/)
    description = "..."                 # optional
    seeds = [0, 1]                      # replicate seeds
    models = ["banana", { name = "correlated_gaussian", dimension = 5 }]
    families = ["mean_field", { name = "iaf", num_layers = 2 }]

    [fit]                               # a list value makes that setting a grid axis
    num_steps = 1000
    learning_rate = [0.01, 0.003]

    [metrics]                           # how fits are evaluated (single values, optional)
    iw_elbo_k = 64                      # K of iw_elbo
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import itertools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import limits
from harness.limits import cut, show
from harness.records import Cell, FitSettings, MetricSettings  # noqa: F401 - part of the spec API

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SpecError(ValueError):
    """A spec that cannot be run; the message is one line naming file, key and what is allowed."""


_FIT_BOUNDS: dict[str, tuple[type, float | None]] = {
    # name: (type, exclusive lower bound or None)
    "num_steps": (int, 0),
    "stopping": (str, None),
    "convergence_tolerance": (float, 0.0),
    "sample_size": (int, 0),
    "learning_rate": (float, 0.0),
    "jit_compile": (bool, None),
    "elbo_sample_size": (int, 999),  # at least 1,000 fresh draws for the final ELBO
    "num_draws_kept": (int, 0),
    "learning_rate_schedule": (str, None),
    "importance_sample_size": (int, 0),
    "gradient_estimator": (str, None),
    "initialization": (str, None),
    "vectorize_seeds": (bool, None),
    "optimizer": (str, None),
    "saa_initial_sample_size": (int, 0),
    "saa_max_sample_size": (int, 0),
    "saa_tolerance": (float, 0.0),
}
# Upper bounds (inclusive) of fit settings, besides INT32_MAX for every integer; the resource
# limits of a whole step (harness.limits) are checked once the models are known.
_FIT_UPPER: dict[str, float] = {"num_steps": limits.MAX_NUM_STEPS}
# Allowed values of the string-valued fit settings.
_FIT_CHOICES: dict[str, tuple[str, ...]] = {
    "stopping": ("converged", "budget"),
    "initialization": ("mode", "pathfinder", "uniform"),
    "learning_rate_schedule": ("adaptive", "constant", "cosine", "exponential"),
    "gradient_estimator": ("reparameterization", "sticking_the_landing"),
    "optimizer": ("adam", "saa"),
}
# Numeric fit settings that also take a word.
_FIT_WORDS: dict[str, tuple[str, ...]] = {"learning_rate": ("auto",)}
# Keys that were renamed or replaced: a spec that uses one gets a one-line error naming the new.
_RENAMED: dict[str, str] = {
    "fit.early_stopping_tolerance": "fit.stopping (converged | budget) and "
    "fit.convergence_tolerance",
    "metrics.convergence_tolerance": "fit.convergence_tolerance",
    "metrics.importance_sample_size": "metrics.iw_elbo_k (K of iw_elbo; fit.importance_sample_size "
    "is the K of the training objective)",
}


_METRIC_BOUNDS: dict[str, tuple[type, float | None]] = {
    # name: (type, exclusive lower bound or None)
    "iw_elbo_k": (int, 0),
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated experiment spec."""

    path: Path
    name: str
    description: str
    seeds: tuple[int, ...]
    models: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    families: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    fit_grid: tuple[FitSettings, ...]
    raw: Mapping[str, Any]
    resources: Resources = dataclasses.field(default_factory=lambda: Resources())
    metrics: MetricSettings = MetricSettings()
    # (model entry, family entry) pairs whose family does not apply to the model
    # (Family.supports): left out of the grid.
    excluded: frozenset = frozenset()
    # Family entries left out of the grid's ``optimizer = "saa"`` settings when the grid has
    # another optimizer too: baselines (no optimizer: their other cells stand for them) and
    # variational families that SAA does not fit (Family.fixed_draws false).
    no_saa: frozenset = frozenset()

    def cells(self) -> list[Cell]:
        """Expand the grid: models × families × fit settings × seeds, in that order, without
        the (model, family) pairs in ``excluded`` and the ``saa`` settings of ``no_saa``."""
        return [
            Cell(self.name, model, margs, family, hps, fit, seed, metrics=self.metrics)
            for (model, margs), (family, hps), fit, seed in itertools.product(
                self.models, self.families, self.fit_grid, self.seeds
            )
            if ((model, margs), (family, hps)) not in self.excluded
            and not (fit.optimizer == "saa" and (family, hps) in self.no_saa)
        ]


_TOP_KEYS = {"name", "description", "seeds", "models", "families", "fit", "resources", "metrics"}


@dataclasses.dataclass(frozen=True)
class Resources:
    """Resources each cell asks for on a Ray cluster (``[resources]`` table of a spec).

    The local executor ignores them: it splits this machine's cores evenly among its workers.
    """

    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0


def cell_labels(cells: Sequence[Cell]) -> dict[str, str]:
    """A console label per cell id: ``model/family/seed``, followed, where several cells of the
    grid share that name, by what differs between them (model arguments, hyperparameters, fit
    settings), e.g. ``wine/pathfinder/0 (num_paths=4)`` beside ``wine/pathfinder/0
    (num_paths=1)``, or ``(optimizer=saa)``: no two lines of a run read the same."""

    def settings(cell: Cell) -> dict[str, Any]:
        return {
            **dict(cell.model_args),
            **dict(cell.hyperparameters),
            **dataclasses.asdict(cell.fit),
            **({"metrics": cell.metrics} if cell.metrics != MetricSettings() else {}),
        }

    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.run_name, []).append(cell)
    labels = {}
    for name, group in groups.items():
        values = [settings(c) for c in group]
        varying = [
            k
            for k in dict.fromkeys(k for v in values for k in v)
            if len({repr(v.get(k)) for v in values}) > 1
        ]
        for cell, value in zip(group, values, strict=True):
            detail = ", ".join(f"{k}={value.get(k)}" for k in varying)
            labels[cell.cell_id] = f"{name} ({detail})" if detail else name
    return labels


def _resources(raw, where) -> Resources:
    table = raw.get("resources", {})
    if not isinstance(table, dict):
        raise SpecError(f"{where}: key 'resources': expected a table")
    values = {}
    for key, value in table.items():
        if key not in ("cpus_per_task", "gpus_per_task"):
            raise SpecError(
                f"{where}: unknown key 'resources.{cut(key)}'"
                f"{_suggest(key, ('cpus_per_task', 'gpus_per_task'))}"
            )
        value = _check_type(value, float, where, f"resources.{key}")
        if value < 0 or (key == "cpus_per_task" and value == 0) or value > 1024:
            raise SpecError(
                f"{where}: key 'resources.{key}': must be "
                f"{'> 0' if key == 'cpus_per_task' else '>= 0'} and <= 1024, got {show(value)}"
            )
        values[key] = value
    return Resources(**values)


def load(path: str | Path, overrides: Sequence[str] = ()) -> Spec:
    """Load, override (``key=value`` strings, dotted keys) and validate a spec file.

    Raises:
      SpecError: with a one-line message naming the file and the key.
    """
    path = Path(path)
    return validate(_read(path, overrides), path)


def _read(path: Path, overrides: Sequence[str]) -> dict:
    """The spec file's TOML with the overrides applied, unchecked."""
    where = str(path)
    if not path.is_file():
        raise SpecError(f"{where}: no such spec file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{where}: malformed TOML: {e}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{where}: not a UTF-8 text file") from None
    for override in overrides:
        _apply_override(raw, override, where)
    return raw


def cells_bound(path: str | Path, overrides: Sequence[str] = ()) -> int | None:
    """models × families × fit grid × seeds, read from the spec (overrides applied) without
    checking it: no registries, so no TensorFlow.  Equal to ``len(load(...).cells())`` unless
    (model, family) pairs are excluded; None where the file cannot be read that far."""
    try:
        raw = _read(Path(path), overrides)
        seeds = raw.get("seeds", [0])
        count = len(raw["models"]) * len(raw["families"])
        count *= len(seeds) if isinstance(seeds, list) else 1
        for value in raw.get("fit", {}).values():
            count *= len(value) if isinstance(value, list) else 1
    except (SpecError, KeyError, TypeError, AttributeError):
        return None
    return count or None


def _apply_override(raw: dict, override: str, where: str) -> None:
    if "=" not in override:
        raise SpecError(
            f"{where}: --set {show(override)}: expected key=value, e.g. fit.num_steps=100"
        )
    key, _, text = override.partition("=")
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word is a string
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"{where}: --set {cut(key)}: '{cut(part)}' is not a table")
    node[parts[-1]] = value


def _suggest(word: str, choices) -> str:
    """ " (did you mean 'x'?)" when a valid choice is close, else "; valid: a, b, c" (cut
    short to keep the message on one line)."""
    close = difflib.get_close_matches(str(word)[:100], list(choices), n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f"; valid: {_listing(choices)}"


def _listing(choices) -> str:
    """The sorted choices, comma-separated, cut to about 70 characters."""
    valid = sorted(choices)
    text = ", ".join(valid)
    while len(text) > 70 and len(valid) > 1:
        valid = valid[:-1]
        text = ", ".join(valid) + f", … ({len(choices)} in all)"
    return text


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[t]


def _check_type(value, t: type, where: str, key: str):
    ok = (
        isinstance(value, bool)
        if t is bool
        else isinstance(value, int) and not isinstance(value, bool)
        if t is int
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if t is float
        else isinstance(value, t)
    )
    if not ok:
        raise SpecError(f"{where}: key '{key}': expected {_type_name(t)}, got {show(value)}")
    if t is float and not math.isfinite(value):
        raise SpecError(f"{where}: key '{key}': expected a finite number, got {value!r}")
    if t is int and abs(value) > limits.INT32_MAX:
        raise SpecError(
            f"{where}: key '{key}': must be <= {limits.INT32_MAX} (an int32), got {show(value)}"
        )
    return float(value) if t is float else value


def check_experiment_name(name: Any, where: str) -> str:
    """Return ``name`` if it is safe as an experiment name and a folder name under results/.

    Letters, digits, ``_``, ``-`` and ``.``, at most 100, starting with a letter or digit, no
    ``..``: no path separator, no absolute path, no way out of ``results/``.

    Raises:
      SpecError: ``"{where}: expected a name of ..., got ..."``.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or ".." in name:
        raise SpecError(
            f"{where}: expected a name of letters, digits, '_', '-', '.' "
            f"(no path separators), got {show(name)}"
        )
    return name


def validate(raw: Mapping[str, Any], path: Path) -> Spec:
    """Validate a parsed spec mapping (see the module docstring for the format)."""
    where = str(path)
    for key in raw:
        if key not in _TOP_KEYS:
            raise SpecError(f"{where}: unknown key '{cut(key)}'{_suggest(key, _TOP_KEYS)}")
    name = check_experiment_name(raw.get("name", path.stem), f"{where}: key 'name'")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"{where}: key 'description': expected a string, got {show(description)}")
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= limits.INT32_MAX
            for s in seeds
        )
    ):
        raise SpecError(
            f"{where}: key 'seeds': expected a non-empty list of integers >= 0 and "
            f"<= {limits.INT32_MAX}, got {show(seeds)}"
        )
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"{where}: key 'seeds': duplicate seeds in {show(seeds)}")
    # The registries import TensorFlow: imported here, so that importing this module (and
    # harness.executors, for a worker pool started before the spec is checked) stays light.
    from harness.families import FAMILIES, hyperparameter_ranges
    from harness.models import ARGUMENT_RANGES, MODELS

    dimensions: dict = {}  # user model entry -> its dimension (they are built now)
    models = tuple(
        _entries(
            raw,
            "models",
            MODELS,
            _model_parameters,
            lambda name: ARGUMENT_RANGES.get(name, {}),
            where,
            dimensions,
        )
    )
    families = tuple(
        _entries(
            raw,
            "families",
            FAMILIES,
            lambda n: dict(FAMILIES[n].hyperparameters),
            hyperparameter_ranges,
            where,
        )
    )
    fit_grid = tuple(_fit_grid(raw.get("fit", {}), where))
    resources = _resources(raw, where)
    metrics = _metric_settings(raw.get("metrics", {}), where)
    no_saa = _check_optimizer(families, fit_grid, where)
    _check_resources(models, families, fit_grid, metrics, dimensions, where, no_saa)
    return Spec(
        path=path,
        name=name,
        description=description,
        seeds=tuple(seeds),
        models=models,
        families=families,
        fit_grid=fit_grid,
        raw=dict(raw),
        resources=resources,
        metrics=metrics,
        excluded=_inapplicable(models, families, where),
        no_saa=no_saa,
    )


def _inapplicable(models, families, where) -> frozenset:
    """(model, family) entries where the family does not apply to the model.

    Only families with a ``requirement`` (e.g. ``cavi``, ``asvi``) are checked, by building each
    listed model once, and every family when an amortized model (a VAE) is listed: it takes
    encoder families (kind ``amortized``) only.  A family that applies to none of the listed
    models is an error.
    """
    from harness.families import FAMILIES
    from harness.models import AMORTIZED_MODELS

    amortized = {m for m in models if m[0] in AMORTIZED_MODELS}
    restricted = [
        (i, entry)
        for i, entry in enumerate(families)
        if FAMILIES[entry[0]].requirement or amortized
    ]
    if not restricted:
        return frozenset()
    from harness.models import build_model

    built = {}
    for j, entry in enumerate(models):
        try:
            built[entry] = build_model(entry[0], **dict(entry[1]))
        except (Exception, SystemExit) as e:  # noqa: BLE001 - one line, whatever the model raised
            raise SpecError(
                f"{where}: key 'models[{j}]': cannot build {show(entry[0])}: "
                f"{type(e).__name__}: {cut((str(e).splitlines() or [''])[0])}"
            ) from None
    excluded = set()
    for i, entry in restricted:
        family = FAMILIES[entry[0]]
        rejected = [
            m
            for m in models
            if not family.supports(built[m]) or (m in amortized and family.kind != "amortized")
        ]
        if len(rejected) == len(models):
            need = (
                family.requirement
                or "a model that is not amortized (a VAE takes encoder_* families)"
            )
            raise SpecError(
                f"{where}: key 'families[{i}]': '{entry[0]}' applies to none of the "
                f"listed models: it needs {need}"
            )
        excluded.update((m, entry) for m in rejected)
    return frozenset(excluded)


def _model_parameters(name: str) -> dict[str, Any]:
    from harness.models import MODELS

    signature = inspect.signature(MODELS[name])
    return {k: p.default for k, p in signature.parameters.items()}


def _entries(raw, key, registry, parameters, ranges, where, dimensions=None):
    """Validate a list of registry entries: strings or tables ``{name = ..., arg = ...}``.

    ``parameters(name)`` gives an entry's arguments with their defaults, ``ranges(name)`` their
    declared allowed values (a :class:`harness.limits.Range` or a tuple of strings); numbers
    without a declared range must be finite and > 0.  ``dimensions`` receives the dimension
    of each user model (built here).
    """
    entries = raw.get(key)
    if entries is None:
        raise SpecError(f"{where}: missing key '{key}': list at least one of {_listing(registry)}")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{where}: key '{key}': expected a non-empty list of names or tables")
    seen = set()
    for i, entry in enumerate(entries):
        item = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise SpecError(f"{where}: key '{item}': expected a name or a table with 'name'")
        name = entry["name"]
        if not isinstance(name, str):
            raise SpecError(f"{where}: key '{item}.name': expected a string, got {show(name)}")
        if key == "models" and _user_models().is_user_model(name):
            ident, dimension = _user_model_entry(entry, item, where)
            if ident in seen:
                raise SpecError(f"{where}: key '{item}': duplicate entry {show(name)}")
            seen.add(ident)
            if dimensions is not None:
                dimensions[ident] = dimension
            yield ident
            continue
        if name not in registry:
            raise SpecError(
                f"{where}: key '{item}': unknown {key[:-1].replace('ie', 'y')} "
                f"{show(name)}{_suggest(name, registry)}"
            )
        allowed = parameters(name)
        declared = ranges(name)
        args = {}
        for arg, value in entry.items():
            if arg == "name":
                continue
            if arg not in allowed:
                raise SpecError(
                    f"{where}: key '{item}.{cut(arg)}': unknown argument of '{name}'"
                    f"{_suggest(arg, allowed) if allowed else '; it takes none'}"
                )
            default = allowed[arg]
            if default is not None and default is not inspect.Parameter.empty:
                value = _check_argument(value, type(default), declared.get(arg), where, item, arg)
            args[arg] = value
        # Defaults are filled in, so a cell's identity (and its MLflow params) is its whole
        # configuration, not just what the spec happened to spell out.
        full = {k: v for k, v in allowed.items() if v is not inspect.Parameter.empty}
        full.update(args)
        ident = (name, tuple(sorted(full.items())))
        if ident in seen:
            raise SpecError(f"{where}: key '{item}': duplicate entry {show(name)}")
        seen.add(ident)
        yield ident


def _check_argument(value, t: type, allowed, where: str, item: str, arg: str):
    """A model argument or hyperparameter of type ``t`` (its default's), in its declared range
    (``allowed``: a Range, a tuple of strings, or None: numbers finite and > 0)."""
    key = f"{item}.{arg}"
    value = _check_type(value, t, where, key)
    if t is str and isinstance(allowed, tuple) and value not in allowed:
        raise SpecError(
            f"{where}: key '{key}': unknown value {show(value)}{_suggest(value, allowed)}"
        )
    if t in (int, float):
        allowed = allowed if isinstance(allowed, limits.Range) else limits.POSITIVE
        if value not in allowed:
            raise SpecError(f"{where}: key '{key}': must be {allowed}, got {show(value)}")
    return value


def _check_resources(
    models, families, fit_grid, metrics, dimensions, where, no_saa=frozenset()
) -> None:
    """Refuse a spec whose steps or final evaluation would exceed the memory limits of
    :mod:`harness.limits` (checked per model × family × fit setting, before anything runs)."""
    from harness.families import FAMILIES
    from harness.families import particle_size as family_particle_size
    from harness.metrics.quality import IW_MIN_GROUPS
    from harness.models import particle_size as model_particle_size

    for i, (model, margs) in enumerate(models):
        args = dict(margs)
        if (model, margs) in dimensions:
            size = dimension = dimensions[(model, margs)]
        else:
            size = model_particle_size(model, args)
            if size is None:
                continue  # a model registered without its particle size (tests' stand-ins)
            dimension = args.get("dimension", args.get("num_features", size))
        evaluation = max(fit.elbo_sample_size for fit in fit_grid)
        evaluation = max(evaluation, IW_MIN_GROUPS * metrics.iw_elbo_k)
        # An amortized model (a VAE) evaluates its test images one batch of K draws at a time
        # (harness.engines.amortized.evaluate), not all of its particles at once.
        from harness.models import AMORTIZED_MODELS

        if model not in AMORTIZED_MODELS and evaluation * size > limits.MAX_EVALUATION_ELEMENTS:
            raise SpecError(
                f"{where}: key 'models[{i}]': its evaluation needs {evaluation * size:.2g} > "
                f"{limits.MAX_EVALUATION_ELEMENTS:.2g} elements: lower fit.elbo_sample_size "
                "or metrics.iw_elbo_k"
            )
        for family, hps in families:
            if FAMILIES[family].kind not in ("svi", "amortized"):
                continue  # baselines do not draw sample_size particles per step
            per_particle = max(size, family_particle_size(dict(hps), dimension))
            for fit in fit_grid:
                if fit.optimizer == "saa" and (family, hps) in no_saa:
                    continue  # left out of the grid (Spec.no_saa)
                particles = fit.sample_size * fit.importance_sample_size
                key = "sample_size"
                if fit.optimizer == "saa":  # an L-BFGS evaluation of the largest stage
                    particles, key = fit.saa_max_sample_size, "saa_max_sample_size"
                if particles * per_particle > limits.MAX_STEP_ELEMENTS:
                    raise SpecError(
                        f"{where}: key 'fit.{key}': a step of models[{i}] x {family} "
                        f"needs {particles * per_particle:.2g} > {limits.MAX_STEP_ELEMENTS:.2g} "
                        "elements: lower sample_size, importance_sample_size or "
                        "saa_max_sample_size"
                    )


def _user_models():
    from harness.models import user

    return user


def _user_model_entry(entry, item, where):
    """A user model ``{name = "module:attr" | "file.py:attr", reference = "draws.npz"}``:
    resolved against the spec's folder, imported, built and checked against the contract now,
    before anything is fitted."""
    user = _user_models()
    for arg in entry:
        if arg not in ("name", "reference"):
            raise SpecError(
                f"{where}: key '{item}.{arg}': a user model takes only 'reference' "
                "(a .npz or .csv file of posterior draws)"
            )
    try:
        args = user.resolve(entry["name"], Path(where).parent, entry.get("reference"))
        model = user.load(entry["name"], **args)
    except ValueError as e:
        raise SpecError(f"{where}: key '{item}': {e}") from None
    return (entry["name"], tuple(sorted(args.items()))), model.dimension


def _metric_settings(table, where) -> MetricSettings:
    """Validate the ``[metrics]`` table (single values: metric settings are not a grid axis)."""
    if not isinstance(table, dict):
        raise SpecError(f"{where}: key 'metrics': expected a table")
    values = {}
    for key, value in table.items():
        if f"metrics.{key}" in _RENAMED:
            raise SpecError(f"{where}: key 'metrics.{key}' is now {_RENAMED[f'metrics.{key}']}")
        if key not in _METRIC_BOUNDS:
            raise SpecError(
                f"{where}: unknown key 'metrics.{cut(key)}'{_suggest(key, _METRIC_BOUNDS)}"
            )
        t, lower = _METRIC_BOUNDS[key]
        value = _check_type(value, t, where, f"metrics.{key}")
        if lower is not None and value <= lower:
            raise SpecError(f"{where}: key 'metrics.{key}': must be > {lower:g}, got {show(value)}")
        values[key] = value
    return MetricSettings(**values)


def _fit_grid(fit, where):
    if not isinstance(fit, dict):
        raise SpecError(f"{where}: key 'fit': expected a table")
    axes = {}
    for key, value in fit.items():
        if f"fit.{key}" in _RENAMED:
            raise SpecError(f"{where}: key 'fit.{key}' is now {_RENAMED[f'fit.{key}']}")
        if key not in _FIT_BOUNDS:
            raise SpecError(f"{where}: unknown key 'fit.{cut(key)}'{_suggest(key, _FIT_BOUNDS)}")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise SpecError(f"{where}: key 'fit.{key}': empty list")
        t, lower = _FIT_BOUNDS[key]
        upper = _FIT_UPPER.get(key)
        checked = []
        for v in values:
            if v in _FIT_WORDS.get(key, ()):
                checked.append(v)
                continue
            v = _check_type(v, t, where, f"fit.{key}")
            if lower is not None and v <= lower:
                raise SpecError(f"{where}: key 'fit.{key}': must be > {lower:g}, got {show(v)}")
            if upper is not None and v > upper:
                raise SpecError(f"{where}: key 'fit.{key}': must be <= {upper:,}, got {show(v)}")
            if key in _FIT_CHOICES and v not in _FIT_CHOICES[key]:
                raise SpecError(
                    f"{where}: key 'fit.{key}': unknown value {show(v)}"
                    f"{_suggest(v, _FIT_CHOICES[key])}"
                )
            checked.append(v)
        axes[key] = checked
    keys = list(axes)
    for combo in itertools.product(*(axes[k] for k in keys)):
        settings = FitSettings(**dict(zip(keys, combo, strict=True)))
        if settings.learning_rate == "auto" and settings.learning_rate_schedule not in (
            "adaptive",
            "constant",
        ):
            raise SpecError(
                f"{where}: key 'fit.learning_rate': 'auto' needs learning_rate_schedule "
                f"'adaptive' or 'constant' (a {settings.learning_rate_schedule} schedule is "
                "fixed at its initial rate): give a number"
            )
        _check_saa(settings, where)
        yield settings


# Adam-only settings that an ``saa`` fit cannot honour: (key, its default, why).
_NOT_SAA = (
    ("learning_rate", "auto", "takes no learning rate (L-BFGS's line search sets the steps)"),
    ("learning_rate_schedule", "adaptive", "takes no learning-rate schedule"),
    (
        "gradient_estimator",
        "reparameterization",
        "needs the exact gradient of its fixed-draw objective",
    ),
    ("importance_sample_size", 1, "minimises the ELBO (K = 1)"),
    ("vectorize_seeds", False, "fits one seed at a time"),
)


def _check_saa(settings: FitSettings, where: str) -> None:
    """One line for a fit setting that contradicts ``optimizer = "saa"``."""
    if settings.optimizer != "saa":
        return
    for key, default, why in _NOT_SAA:
        if getattr(settings, key) != default:
            raise SpecError(
                f"{where}: key 'fit.{key}': optimizer 'saa' {why}: leave it at "
                f"{show(default)}, got {show(getattr(settings, key))}"
            )
    if settings.saa_initial_sample_size > settings.saa_max_sample_size:
        raise SpecError(
            f"{where}: key 'fit.saa_initial_sample_size': must be <= fit.saa_max_sample_size "
            f"({settings.saa_max_sample_size}), got {settings.saa_initial_sample_size}"
        )


def _check_optimizer(families, fit_grid, where) -> frozenset:
    """The family entries whose ``saa`` cells are left out (see :attr:`Spec.no_saa`) when the
    grid has another optimizer too; with ``saa`` alone, a variational family it does not fit
    is refused."""
    from harness.families import FAMILIES

    if not any(fit.optimizer == "saa" for fit in fit_grid):
        return frozenset()
    if any(fit.optimizer != "saa" for fit in fit_grid):
        return frozenset(
            (name, hps)
            for name, hps in families
            if FAMILIES[name].kind not in ("svi", "amortized") or not FAMILIES[name].fixed_draws
        )
    supported = [name for name, family in FAMILIES.items() if family.fixed_draws]
    for i, (name, _) in enumerate(families):
        if FAMILIES[name].kind in ("svi", "amortized") and not FAMILIES[name].fixed_draws:
            raise SpecError(
                f"{where}: key 'families[{i}]': optimizer 'saa' fits "
                f"{', '.join(supported)}, not {show(name)}"
            )
    return frozenset()
