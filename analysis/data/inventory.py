"""What is on this machine: per-dataset status and a re-hash of every file found."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from analysis.data import sources
from analysis.data.sources import DATASETS
from analysis.errors import UserError


@dataclass(frozen=True)
class DatasetStatus:
    """One dataset as ``load`` would see it now (without downloading).

    ``available`` means usable at all (real, offline default or stand-in);
    ``real`` means the genuine dataset. ``hint`` says how to get the real
    files (empty when they are here); ``error`` holds the one-line problem
    that stops the dataset from resolving, if any.
    """

    dataset: str
    available: bool
    real: bool
    source_kind: str | None
    source_name: str | None
    counts: dict | None
    fingerprint: str | None
    files: tuple
    hint: str
    error: str | None = None
    provenance: sources.Provenance | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        result = {key: value for key, value in vars(self).items() if key not in ("files", "provenance")}
        result["files"] = [record.to_dict() for record in self.files]
        result["provenance"] = self.provenance.to_dict() if self.provenance else None
        return result


def _status_of(name: str) -> DatasetStatus:
    notes = []
    try:
        notes = sources.incomplete_sets(name)
        provenance = sources.resolve(name)
    except UserError as error:
        hint = "; ".join(notes + [sources.how_to_get_real(name)])
        return DatasetStatus(name, False, False, None, None, None, None, (), hint, str(error))
    hint = "" if not provenance.substitute else "; ".join(notes + [provenance.how_to_get_real])
    return DatasetStatus(
        name, True, not provenance.substitute, provenance.source_kind, provenance.source_name,
        dict(provenance.counts), provenance.fingerprint, provenance.files, hint, None, provenance,
    )


def status() -> list[DatasetStatus]:
    """Each dataset: available or not, from where, counts, fingerprint, how to get the real one."""
    return [_status_of(name) for name in DATASETS]


@dataclass(frozen=True)
class FileCheck:
    """One file re-hashed by :func:`verify`."""

    dataset: str
    path: str
    role: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def verify() -> list[FileCheck]:
    """Re-read every dataset file in the data directory, Keras cache and Debian's folder.

    Digests are recomputed from the bytes (not taken from the in-process
    memo), so bit rot shows up. Files are only read, never changed.
    """
    checks, seen = [], set()
    for name in DATASETS:
        for _, _, layout, paths, present in sources.candidate_sets(name):
            for path, (_, key), here in zip(paths, layout.files, present):
                if not here or path in seen:
                    continue
                seen.add(path)
                try:
                    record = sources.check_file(path, key, name, fresh=True)
                    checks.append(FileCheck(name, str(path), key, True, f"sha256 {record.sha256}"))
                except UserError as error:
                    checks.append(FileCheck(name, str(path), key, False, str(error)))
    return checks
