"""Pretrained weights, found and verified like the datasets.

:func:`resolve` looks for each file of :data:`registry.MODEL_PINS` in the data
directory (``NNSTUDY_DATA_DIR``, default ``data/``), then in Keras's model
cache (``$KERAS_HOME/models`` or ``~/.keras/models``), and downloads it with
its pinned hash only when asked to and the machine is not offline
(``NNSTUDY_OFFLINE``). A file that is there but does not match its pin (a
truncated download, say) is a one-line :class:`UserError`, never a silent
fallback; a file that is nowhere is ``None``, and the chapter says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from analysis import config
from analysis.data import hashing, registry
from analysis.data.sources import offline
from analysis.errors import UserError

VGG16_FILES = ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "imagenet_class_index.json")


@dataclass(frozen=True)
class WeightsFile:
    name: str
    path: Path
    md5: str
    source: str            # "data_dir", "keras_cache" or "download"


def keras_models_dir() -> Path:
    keras_home = os.environ.get("KERAS_HOME", "").strip()
    return (Path(keras_home).expanduser() if keras_home else Path.home() / ".keras") / "models"


def _verified(name: str, path: Path, source: str) -> WeightsFile:
    pin = registry.MODEL_PINS[name]
    digests = hashing.file_digests(path)
    if digests.md5 != pin.md5:
        raise UserError(f"{path} does not match its pinned checksum (md5 {digests.md5}, expected {pin.md5}; "
                        f"{digests.size:,} bytes): it is truncated or not the official file; delete it "
                        "and let the book download it again, or put the official file there")
    return WeightsFile(name, path, digests.md5, source)


def find(name: str) -> WeightsFile | None:
    """The verified file from the data directory or Keras's cache; None if in neither."""
    if name not in registry.MODEL_PINS:
        raise UserError(f"no pinned weights file named {name!r}; known: {', '.join(registry.MODEL_PINS)}")
    for source, directory in (("data_dir", config.data_dir()), ("keras_cache", keras_models_dir())):
        path = directory / name
        if path.is_file():
            return _verified(name, path, source)
    return None


def download(name: str) -> WeightsFile:
    """Keras's download into its model cache, checked against the pin."""
    import keras

    pin = registry.MODEL_PINS[name]
    try:
        path = keras.utils.get_file(fname=name, origin=pin.origin, file_hash=pin.md5, cache_subdir="models")
    except Exception as error:  # network, SSL and checksum errors alike
        raise UserError(f"could not download {pin.origin} ({error})") from None
    return _verified(name, Path(path), "download")


def resolve(names=VGG16_FILES, allow_download: bool = True) -> dict[str, WeightsFile] | None:
    """Every file of ``names``, verified; None when one is missing and cannot be downloaded."""
    found = {}
    for name in names:
        file = find(name)
        if file is None:
            if not allow_download or offline():
                return None
            try:
                file = download(name)
            except UserError:
                return None
        found[name] = file
    return found
