"""User-supplied models: ``"package.module:attr"`` or ``"path/to/file.py:attr"`` in a spec.

``attr`` is a :class:`~harness.models.base.Model` or a zero-argument factory returning one.  An
optional reference file gives the true posterior as draws: a ``.npz`` with a ``draws`` array
``[n, d]`` (or a file written by ``harness reference``), or a ``.csv`` with one column per
coordinate (an optional header row is skipped).  Draws from a file are treated as independent
(thin MCMC output first): their mean's standard error is ``sd/sqrt(n)``.

The model is checked against the contract (:func:`check_contract`) when the spec is loaded,
before anything is fitted; every problem is a one-line :class:`ValueError`.  In a cell the
model's ``name`` is the string as written in the spec; its ``model_args`` carry the resolved
``source`` and ``reference`` paths so that worker processes can load it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path

import numpy as np

from harness.models.base import Model, Reference, load_reference_file

# Random points for the contract check: a [3, 4] batch exercises batching over two leading
# dimensions; the standard normals are mapped through the model's event-space bijector.
_CHECK_BATCH = (3, 4)
_CHECK_SEED = (20_240_701, 1)


def is_user_model(name: str) -> bool:
    """Whether a spec's model name refers to user code (``module:attr`` or ``file.py:attr``)."""
    return isinstance(name, str) and ":" in name


def _split(name: str) -> tuple[str, str]:
    location, _, attr = name.rpartition(":")
    if not location or not attr or not attr.isidentifier():
        raise ValueError(
            f"model '{name}': expected 'package.module:attr' or 'path/to/file.py:attr'"
        )
    return location, attr


def _is_file(location: str) -> bool:
    return location.endswith(".py") or "/" in location or "\\" in location


def resolve(name: str, base_dir: str | Path, reference: str | None = None) -> dict[str, str]:
    """The ``model_args`` of a user model: ``source`` and ``reference`` resolved to absolute
    paths (relative paths are taken against ``base_dir``, the spec file's folder).

    Raises:
      ValueError: malformed name, missing file, or a reference that is not .npz/.csv.
    """
    location, attr = _split(name)
    base_dir = Path(base_dir)
    if _is_file(location):
        path = Path(location)
        path = (path if path.is_absolute() else base_dir / path).resolve()
        if not path.is_file():
            raise ValueError(f"model '{name}': no such file {path}")
        source = f"{path}:{attr}"
    else:
        source = name
    ref = ""
    if reference is not None:
        if not isinstance(reference, str):
            raise ValueError(f"model '{name}': reference must be a path string, got {reference!r}")
        ref_path = Path(reference)
        ref_path = (ref_path if ref_path.is_absolute() else base_dir / ref_path).resolve()
        if ref_path.suffix not in (".npz", ".csv"):
            raise ValueError(f"model '{name}': reference {reference!r} must be a .npz or .csv file")
        if not ref_path.is_file():
            raise ValueError(f"model '{name}': no such reference file {ref_path}")
        ref = str(ref_path)
    return {"reference": ref, "source": source}


def load(name: str, *, source: str, reference: str = "") -> Model:
    """Import, build and check a user model (see :func:`resolve` for the arguments).

    Raises:
      ValueError: one line naming what is wrong.
    """
    location, attr = _split(source)
    if _is_file(location):
        module = _import_file(Path(location))
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as e:
            raise ValueError(f"model '{name}': cannot import module '{location}': {e}") from None
        except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of user code
            raise user_code_error(f"model '{name}': importing '{location}'", e) from None
    if not hasattr(module, attr):
        raise ValueError(f"model '{name}': '{location}' has no attribute '{attr}'")
    value = getattr(module, attr)
    if not isinstance(value, Model):
        if not callable(value):
            raise ValueError(
                f"model '{name}': '{attr}' is a {type(value).__name__}, expected a "
                "Model or a zero-argument factory returning one"
            )
        try:
            value = value()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of user code
            raise user_code_error(f"model '{name}': calling '{attr}()'", e) from None
        if not isinstance(value, Model):
            raise ValueError(
                f"model '{name}': '{attr}()' returned a {type(value).__name__}, "
                "expected a harness.models.Model"
            )
    model = dataclasses.replace(value, name=name)
    if reference:
        model = dataclasses.replace(model, reference=reference_file(reference, model.dimension))
    check_contract(model)
    return model


def _import_file(path: Path):
    module_name = "harness_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running so that dataclasses and pickling inside it can find it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - SystemExit too: a module may exit
        del sys.modules[module_name]
        raise user_code_error(f"cannot import {path.name}", e) from None
    return module


# Frames in these folders are the harness's or Python's own, not the user's.
_NOT_USER = tuple(
    str(Path(p).resolve())
    for p in {
        Path(__file__).resolve().parents[1],  # the harness package
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
)


def user_code_error(what: str, error: BaseException) -> ValueError:
    """A one-line ``ValueError`` for an exception (or ``SystemExit``) raised by user code:
    ``"{what} raised {type}: {first line of the message} ({file}:{line})"``, the location
    being the deepest frame of the traceback in the user's own files (a ``SyntaxError``'s
    own line)."""
    message = (str(error).splitlines() or [""])[0]
    if isinstance(error, SystemExit):
        message = f"exit code {error.code!r}"
    if len(message) > 80:
        message = message[:80] + "…"
    where = ""
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{Path(error.filename).name}:{error.lineno}"
        message = error.msg
    else:
        frames = traceback.extract_tb(error.__traceback__)
        user = [f for f in frames if not str(Path(f.filename).resolve()).startswith(_NOT_USER)]
        if user:
            where = f"{Path(user[-1].filename).name}:{user[-1].lineno}"
    location = f" ({where})" if where else ""
    return ValueError(f"{what} raised {type(error).__name__}: {message}{location}")


def reference_file(path: str | Path, dimension: int) -> Reference:
    """A reference from a file of draws (``.npz`` with ``draws`` [n, d], or ``.csv``).

    Raises:
      ValueError: unreadable file, wrong shape, non-finite values or too few draws.
    """
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                if "metadata" in f.files:
                    ref = load_reference_file(path)
                    if ref.dimension != dimension:
                        raise ValueError(
                            f"reference {path.name} has dimension {ref.dimension}, "
                            f"the model has {dimension}"
                        )
                    return ref
                if "draws" not in f.files:
                    raise ValueError(
                        f"reference {path.name} has no 'draws' array (it has "
                        f"{', '.join(f.files) or 'nothing'})"
                    )
                draws = np.asarray(f["draws"], np.float64)
        except (OSError, ValueError) as e:
            if str(e).startswith("reference"):
                raise
            raise ValueError(f"reference {path.name}: not a readable .npz file: {e}") from None
    else:
        try:
            draws = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError:
            try:  # a header row
                draws = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1, dtype=np.float64)
            except ValueError as e:
                raise ValueError(f"reference {path.name}: not a numeric CSV: {e}") from None
    if draws.ndim != 2 or draws.shape[1] != dimension:
        raise ValueError(
            f"reference {path.name}: draws have shape {list(draws.shape)}, "
            f"expected [n, {dimension}] (the model's dimension)"
        )
    if draws.shape[0] < 2:
        raise ValueError(f"reference {path.name}: needs at least 2 draws, got {draws.shape[0]}")
    if not np.all(np.isfinite(draws)):
        raise ValueError(f"reference {path.name}: draws contain NaN or Inf")
    return reference_from_draws(draws, provenance=f"draws from {path}")


def reference_from_draws(draws: np.ndarray, *, provenance: str) -> Reference:
    """Moments of independent draws with their standard errors (normal-theory for the mean;
    ``sd·sqrt((κ − 1)/(4n))`` for the sd, κ the sample kurtosis)."""
    n = draws.shape[0]
    mean = draws.mean(axis=0)
    std = draws.std(axis=0, ddof=1)
    centred = draws - mean
    kurtosis = np.mean(centred**4, axis=0) / np.maximum(
        np.mean(centred**2, axis=0) ** 2, np.finfo(float).tiny
    )
    return Reference(
        mean=mean,
        standard_deviation=std,
        mean_standard_error=std / np.sqrt(n),
        standard_deviation_standard_error=std * np.sqrt(np.maximum(kurtosis - 1, 0) / (4 * n)),
        kind="draws",
        provenance=provenance,
        draws=draws,
    )


def check_contract(model: Model) -> None:
    """Check a model against the contract on a batch of bijected random points.

    Raises:
      ValueError: one line naming the model and what is wrong.
    """
    import tensorflow as tf

    name = model.name
    if not isinstance(model.dimension, int) or model.dimension < 1:
        raise ValueError(
            f"model '{name}': dimension must be a positive integer, got {model.dimension!r}"
        )
    d = model.dimension
    try:
        dtype = tf.as_dtype(model.dtype)
    except TypeError:
        raise ValueError(
            f"model '{name}': dtype {model.dtype!r} is not a TensorFlow dtype"
        ) from None
    if not dtype.is_floating:
        raise ValueError(f"model '{name}': dtype must be floating point, got {dtype.name}")
    u = tf.random.stateless_normal([*_CHECK_BATCH, d], seed=_CHECK_SEED, dtype=dtype)
    try:
        x = model.default_event_space_bijector(u)
    except Exception as e:  # noqa: BLE001 - any failure of user code is a contract error
        raise ValueError(
            f"model '{name}': default_event_space_bijector fails on a "
            f"[{_CHECK_BATCH[0]}, {_CHECK_BATCH[1]}, {d}] batch: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    if tuple(x.shape) != (*_CHECK_BATCH, d):
        raise ValueError(
            f"model '{name}': default_event_space_bijector maps a "
            f"[3, 4, {d}] batch to shape {list(x.shape)}, expected [3, 4, {d}]"
        )
    try:
        log_prob = model.unnormalized_log_prob(x)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"model '{name}': unnormalized_log_prob fails on a [3, 4, {d}] batch: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    shape = list(np.shape(log_prob))
    if shape != list(_CHECK_BATCH):
        raise ValueError(
            f"model '{name}': unnormalized_log_prob of a [3, 4, {d}] batch has "
            f"shape {shape}, expected [3, 4] (is the dimension {d} right, and "
            "does it sum over the event?)"
        )
    if hasattr(log_prob, "dtype") and tf.as_dtype(log_prob.dtype) != dtype:
        raise ValueError(
            f"model '{name}': unnormalized_log_prob returns {log_prob.dtype.name}, "
            f"the model's dtype is {dtype.name}"
        )
    values = np.asarray(log_prob, np.float64)
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        raise ValueError(
            f"model '{name}': unnormalized_log_prob is not finite at {bad} of "
            f"{values.size} random points of the support"
        )
    ref = model.reference
    if ref is not None and ref.dimension != d:
        raise ValueError(
            f"model '{name}': reference has dimension {ref.dimension}, the model has {d}"
        )
