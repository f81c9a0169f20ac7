"""A content-addressed store of experiment results, safe to copy and to share.

One entry is a directory ``<cache>/<experiment>/<key>/`` holding

* ``result.json``   -- metrics, provenance and a manifest (sha256 of every file);
* ``arrays.npz``    -- NumPy arrays, read back with ``allow_pickle=False``;
* anything the experiment saved itself (``models/*.keras``, a tuner directory).

Only JSON, ``.npz`` and ``.keras`` are ever read, and models are loaded in
Keras's safe mode, so a cache directory copied from elsewhere cannot run code.

Writes are atomic: an entry is built in a ``.partial-*`` directory and renamed
into place only once complete, so Ctrl-C or a crash leaves no entry. A lock per
key keeps two renders at once from computing (or clobbering) the same entry.
A corrupted entry is reported in one line and recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from analysis import config

RESULT_FILE = "result.json"
ARRAYS_FILE = "arrays.npz"
PARTIAL_PREFIX = ".partial-"
FORMAT_VERSION = 1


class CorruptEntry(Exception):
    """An entry that fails its checks; the store recomputes it."""


def root() -> Path:
    return config.cache_dir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_checksum(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Entry:
    """A finished entry as read back from disk."""

    path: Path
    record: dict                 # the content of result.json
    arrays: dict[str, np.ndarray]


def entry_dir(experiment: str, key: str) -> Path:
    return root() / experiment / key


@contextlib.contextmanager
def lock(experiment: str, key: str):
    """Hold the per-key lock: a second render waits, then finds the entry."""
    directory = root() / experiment
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / f"{key}.lock")):
        yield


def read(experiment: str, key: str) -> Entry | None:
    """The entry, None if there is none; :class:`CorruptEntry` if it is damaged."""
    path = entry_dir(experiment, key)
    if not path.is_dir():
        return None
    try:
        record = json.loads((path / RESULT_FILE).read_text(encoding="utf-8"))
        checksum = record.pop("checksum")
    except FileNotFoundError:
        raise CorruptEntry(f"{RESULT_FILE} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError, TypeError):
        raise CorruptEntry(f"{RESULT_FILE} is not valid") from None
    if _json_checksum(record) != checksum:
        raise CorruptEntry(f"{RESULT_FILE} does not match its checksum")
    for relative, expected in record["manifest"].items():
        file = path / relative
        if not file.is_file():
            raise CorruptEntry(f"{relative} is missing")
        if _sha256(file) != expected:
            raise CorruptEntry(f"{relative} does not match its checksum")
    record["checksum"] = checksum
    return Entry(path=path, record=record, arrays=_load_arrays(path / ARRAYS_FILE))


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise CorruptEntry(f"{ARRAYS_FILE} cannot be read ({error})") from None


def discard(experiment: str, key: str, reason: str) -> None:
    """Report a damaged entry in one line and remove it (it is ours to remove)."""
    path = entry_dir(experiment, key)
    print(f"cache: entry {experiment}/{key[:12]} is corrupted ({reason}); recomputing",
          file=sys.stderr)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def building(experiment: str, key: str):
    """A scratch directory for a new entry; removed unless :func:`commit` moved it."""
    parent = root() / experiment
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{key[:12]}-", dir=parent))
    try:
        yield scratch
    finally:
        # Reached on success too, when commit() has already renamed it away.
        shutil.rmtree(scratch, ignore_errors=True)


def _to_json(value):
    """NumPy scalars and small arrays become plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def commit(scratch: Path, experiment: str, key: str, metrics: dict,
           arrays: dict[str, np.ndarray], provenance: dict) -> Entry:
    """Write result files into ``scratch`` and rename it to the entry atomically."""
    if arrays:
        with open(scratch / ARRAYS_FILE, "wb") as handle:
            # Object arrays would be pickled: refuse them rather than store one.
            np.savez_compressed(handle, allow_pickle=False, **arrays)
    manifest = {
        str(file.relative_to(scratch)): _sha256(file)
        for file in sorted(scratch.rglob("*"))
        if file.is_file()
    }
    record = {
        "format": FORMAT_VERSION,
        "experiment": experiment,
        "key": key,
        "metrics": _to_json(metrics),
        "provenance": _to_json(provenance),
        "manifest": manifest,
    }
    # Round-trip through JSON first, so the checksum is of what will be read.
    record = json.loads(json.dumps(record, allow_nan=True))
    record["checksum"] = _json_checksum(record)
    (scratch / RESULT_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    target = entry_dir(experiment, key)
    if target.exists():  # a damaged leftover, already reported by the caller
        shutil.rmtree(target)
    os.replace(scratch, target)
    return read(experiment, key)


def entries(experiment: str | None = None):
    """Every finished entry directory (optionally of one experiment)."""
    base = root()
    if not base.is_dir():
        return []
    parents = [base / experiment] if experiment else sorted(p for p in base.iterdir() if p.is_dir())
    return [
        path
        for parent in parents if parent.is_dir()
        for path in sorted(parent.iterdir())
        if path.is_dir() and not path.name.startswith(PARTIAL_PREFIX)
    ]


def partials():
    """Leftovers of killed runs (a SIGKILL skips every cleanup)."""
    base = root()
    return sorted(base.glob(f"*/{PARTIAL_PREFIX}*")) if base.is_dir() else []


def clear(experiment: str | None = None) -> int:
    """Remove every entry (of one experiment) and leftovers; returns the count."""
    removed = entries(experiment)
    for path in removed:
        shutil.rmtree(path)
    for path in partials():
        if experiment is None or path.parent.name == experiment:
            shutil.rmtree(path, ignore_errors=True)
    return len(removed)


def verify() -> list[tuple[Path, str | None]]:
    """Check every entry; (path, None) when sound, (path, reason) when damaged."""
    report = []
    for path in entries():
        try:
            read(path.parent.name, path.name)
            report.append((path, None))
        except CorruptEntry as problem:
            report.append((path, str(problem)))
    return report


def size_bytes(path: Path) -> int:
    """Bytes an entry directory holds, models and tuner files included."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def age_seconds(path: Path) -> float:
    return time.time() - (path / RESULT_FILE).stat().st_mtime
