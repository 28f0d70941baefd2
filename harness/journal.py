"""Local journal of results that could not be written to MLflow.

When the tracking store stays unreachable after retries, the driver appends each finished
cell's :class:`~harness.records.FitResult` to ``results/<experiment>/journal.jsonl`` instead: one
JSON object per line holding everything :func:`harness.tracking.log_cell` needs (cell, status,
reason, losses and their times, timings, metrics, tags, traceback and the kept draws).  The next
``harness run`` of the experiment, or ``harness sync``, replays the journal into MLflow and then
removes the replayed lines.

Arrays (losses, draws) are stored bit-exactly as base64 ``.npy`` blobs, so NaN and ±Inf losses of
diverged fits survive the round trip.  A line cut short by a crash is ignored on reading (its
cell has no FINISHED run, so the next run recomputes it).  Appends and rewrites hold an
exclusive lock on the journal's folder (no lock file is left behind), so a ``harness sync``
running next to a ``harness run`` of the same experiment loses no line.

Pure data and files: this module does not import MLflow or TensorFlow.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import io
import json
import os
import typing
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

JOURNAL_NAME = "journal.jsonl"
# Bump when the line format changes incompatibly; readers skip lines of other versions.
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Entry:
    """One journal line.

    Attributes:
      entry_id: Unique id of this line; MLflow runs replayed from it carry it as the tag
        ``harness.journal_entry``, which makes replay idempotent.
      kind: ``cell`` (a cell's result) or ``sweep_end`` (a parent run to terminate).
      parent_run_id: The parent (sweep) run the result belongs to.
      result: The cell's result (``kind = cell``), draws included when they were kept.
      sweep_status: ``FINISHED`` or ``FAILED`` (``kind = sweep_end``).
    """

    entry_id: str
    kind: str
    parent_run_id: str
    result: Any = None
    sweep_status: str = ""


def journal_path(results_dir: Path, experiment: str) -> Path:
    """Where the journal of ``experiment`` lives: ``results_dir/experiment/journal.jsonl``."""
    return Path(results_dir) / experiment / JOURNAL_NAME


def append_result(path: Path, result, *, parent_run_id: str) -> Entry:
    """Append one cell's result (a :class:`~harness.records.FitResult`) as one line."""
    entry = Entry(uuid.uuid4().hex, "cell", parent_run_id, result=result)
    _append(path, entry)
    return entry


def append_sweep_end(path: Path, *, parent_run_id: str, status: str) -> Entry:
    """Append a note that the parent run ``parent_run_id`` ended with ``status``."""
    entry = Entry(uuid.uuid4().hex, "sweep_end", parent_run_id, sweep_status=status)
    _append(path, entry)
    return entry


def read(path: Path) -> list[Entry]:
    """All complete entries of a journal, oldest first (none when the file does not exist).

    Lines that do not parse (a line cut short by a crash) or of another format version are
    skipped.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with _locked(path):
        return list(_parse(path.read_text(encoding="utf-8").splitlines()))


def remove(path: Path, entry_ids: Sequence[str]) -> int:
    """Remove the entries ``entry_ids`` (replayed ones); deletes the file when none is left.

    The file is rewritten atomically (temporary file + rename) under the lock, so entries
    appended meanwhile are kept.  Returns how many entries are left.
    """
    path = Path(path)
    drop = set(entry_ids)
    with _locked(path):
        if not path.is_file():
            return 0
        lines = path.read_text(encoding="utf-8").splitlines()
        keep = [line for line in lines if _entry_id(line) not in drop]
        kept = sum(1 for line in keep if _entry_id(line) is not None)
        if kept == 0:
            path.unlink()
            return 0
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in keep))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return kept


def _append(path: Path, entry: Entry) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_encode_entry(entry), separators=(",", ":"), allow_nan=False)
    with _locked(path), open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        # The journal is the only copy of a result while the tracking store is down.
        os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the journal's folder itself: no lock file is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(folder, fcntl.LOCK_UN)
        os.close(folder)


def _entry_id(line: str) -> str | None:
    try:
        return json.loads(line).get("entry_id")
    except (ValueError, AttributeError):
        return None


def _parse(lines: list[str]) -> Iterator[Entry]:
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("version") != FORMAT_VERSION:
            continue
        try:
            yield _decode_entry(record)
        except (KeyError, TypeError, ValueError):
            continue  # written by an incompatible version: left in the file, reported as left


# --- encoding ------------------------------------------------------------------------------------


def _encode_entry(entry: Entry) -> dict[str, Any]:
    record: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "entry_id": entry.entry_id,
        "kind": entry.kind,
        "parent_run_id": entry.parent_run_id,
    }
    if entry.kind == "cell":
        record["result"] = encode_result(entry.result)
    else:
        record["sweep_status"] = entry.sweep_status
    return record


def _decode_entry(record: dict[str, Any]) -> Entry:
    result = decode_result(record["result"]) if record["kind"] == "cell" else None
    return Entry(
        record["entry_id"],
        record["kind"],
        record["parent_run_id"],
        result=result,
        sweep_status=record.get("sweep_status", ""),
    )


def encode_result(result) -> dict[str, Any]:
    """A :class:`~harness.records.FitResult` as a JSON-ready dict (arrays as base64 ``.npy``)."""
    out: dict[str, Any] = {"cell": result.cell.identity, "cell_id": result.cell.cell_id}
    for field in dataclasses.fields(result):
        if field.name == "cell":
            continue
        out[field.name] = _encode_value(getattr(result, field.name))
    return out


def decode_result(record: dict[str, Any]):
    """Inverse of :func:`encode_result`.

    Raises:
      ValueError: when the rebuilt cell's id differs from the recorded one (the cell format
        changed since the line was written).
    """
    from harness.records import FitResult

    cell = _decode_cell(record["cell"])
    if cell.cell_id != record["cell_id"]:
        raise ValueError(
            f"journal entry of cell {record['cell_id']} rebuilds as cell {cell.cell_id}"
        )
    names = {f.name for f in dataclasses.fields(FitResult)}
    values = {k: _decode_value(v) for k, v in record.items() if k in names and k != "cell"}
    return FitResult(cell=cell, **values)


def _decode_cell(identity: dict[str, Any]):
    from harness import records

    hints = typing.get_type_hints(records.Cell, vars(records))
    kwargs = {}
    for field in dataclasses.fields(records.Cell):
        if field.name not in identity:
            continue
        value = identity[field.name]
        hint = hints.get(field.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            # The identity keeps settings' first names (records.IDENTITY_NAMES).
            renamed = records.IDENTITY_NAMES.get(field.name, {})
            current = {first: now for now, first in renamed.items()}
            value = hint(**{current.get(k, k): v for k, v in value.items()})
        elif isinstance(value, dict):  # model_args, hyperparameters: sorted (key, value) pairs
            value = tuple(sorted(value.items()))
        kwargs[field.name] = value
    return records.Cell(**kwargs)


def _encode_value(value):
    if isinstance(value, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"__npy__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {k: _encode_value(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return _encode_value(value.item())
    return value


def _decode_value(value):
    if isinstance(value, dict):
        if "__npy__" in value:
            return np.load(io.BytesIO(base64.b64decode(value["__npy__"])), allow_pickle=False)
        if "__float__" in value:
            return float(value["__float__"])
        return {k: _decode_value(v) for k, v in value.items()}
    return value


__all__ = [
    "JOURNAL_NAME",
    "Entry",
    "append_result",
    "append_sweep_end",
    "decode_result",
    "encode_result",
    "journal_path",
    "read",
    "remove",
]
