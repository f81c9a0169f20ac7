"""Downloading the official files into the data directory, safely.

A download lands in a temporary folder next to its destination, is checked
against its pin (by ``keras.utils.get_file``'s ``file_hash`` and again by us),
and only then is linked into place under its canonical name. An existing file
is never overwritten or deleted: if it matches its pin there is nothing to
do, and if it does not, :func:`fetch` refuses and says how to proceed.
Keras (and with it TensorFlow) is imported only here, when a download really
happens, so ``import analysis.data`` stays fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from analysis import config
from analysis.data import hashing, registry, sources
from analysis.errors import UserError

#: The files ``fetch`` downloads per dataset (pin keys = paths in data/).
FETCH_FILES = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": sources.FASHION_IDX,
    "cifar10": (sources.CIFAR_ARCHIVE,),
    "svhn": sources.SVHN_MATS,
}


@dataclass(frozen=True)
class Fetched:
    """One file of a fetch: where it is and whether this call downloaded it."""

    path: Path
    downloaded: bool


def _prepare_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise UserError(
            f"NNSTUDY_DATA_DIR points to {directory}, which is not a directory; point it to a directory"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create the data directory {directory} ({error.strerror}); "
            "set NNSTUDY_DATA_DIR to a writable directory"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write to the data directory {directory}: permission denied; "
            "set NNSTUDY_DATA_DIR to a writable directory"
        )


def _already_present(name: str, key: str, target: Path) -> bool:
    """True if ``target`` holds the official file; an error if it holds anything else."""
    if not target.exists():
        return False
    digests = hashing.file_digests(target, fresh=True)
    pin = registry.PINS[key]
    try:
        sources.check_file(target, key, name, fresh=True)
    except UserError:
        raise UserError(
            f"{target} exists but does not match its pinned checksum (expected {pin.expected()}; "
            f"got sha256 {digests.sha256}, md5 {digests.md5}); fetch never replaces a file: "
            "move it away yourself, then fetch again"
        ) from None
    return True


def _get_file(pin: registry.Pin, scratch: Path, file_name: str) -> Path:
    """Keras's download with progress bar, into ``scratch``; a one-line error on failure."""
    import keras

    try:
        return Path(
            keras.utils.get_file(
                fname=file_name,
                origin=pin.origin,
                file_hash=pin.sha256 or pin.md5,
                cache_dir=str(scratch),
                cache_subdir=str(scratch),
            )
        )
    except ValueError as error:
        # A .gz whose compressed bytes differ from the published md5 may still
        # hold the official content (its decompressed sha256 is pinned too);
        # the file stays in scratch, so let our own check decide.
        if pin.content_sha256 and (scratch / file_name).is_file():
            return scratch / file_name
        raise UserError(f"the download from {pin.origin} failed its checksum ({error})") from None
    except Exception as error:  # urllib, SSL, DNS and HTTP errors all end up here.
        raise UserError(f"could not download {pin.origin} ({error})") from None


def _place(downloaded: Path, target: Path) -> None:
    """Move a verified download into place without ever replacing an existing file."""
    try:
        os.link(downloaded, target)
    except FileExistsError:
        raise UserError(
            f"{target} appeared while downloading; it was left untouched; run the fetch again"
        ) from None
    except OSError:
        # Some filesystems have no hard links; the lock in fetch() keeps this safe.
        if target.exists():
            raise UserError(f"{target} appeared while downloading; it was left untouched") from None
        os.replace(downloaded, target)


def _download(name: str, key: str, target: Path) -> None:
    pin = registry.PINS[key]
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        downloaded = _get_file(pin, scratch, target.name)
        sources.check_file(downloaded, key, name, fresh=True)
        _place(downloaded, target)
    finally:
        # Only our own temporary folder is removed, never a user's file.
        shutil.rmtree(scratch, ignore_errors=True)


def fetch(name: str) -> list[Fetched]:
    """Download ``name``'s official files into the data directory (``NNSTUDY_DATA_DIR``).

    Files already there and matching their pins are kept; a file there that
    does not match makes this refuse (it is never replaced). Raises a one-line
    :class:`UserError` when ``NNSTUDY_OFFLINE=1`` or the network fails, saying
    how to place the files by hand.
    """
    from filelock import FileLock

    sources.check_name(name)
    by_hand = sources.how_to_get_real(name).split(", or ", 1)[-1]
    if sources.offline():
        raise UserError(f"NNSTUDY_OFFLINE=1 forbids downloading {name}; unset it, or {by_hand}")
    directory = config.data_dir()
    _prepare_directory(directory)
    results = []
    # Two renders (HTML and PDF) may ask for the same dataset at once.
    with FileLock(str(directory / f".fetch-{name}.lock")):
        for key in FETCH_FILES[name]:
            target = directory / key
            if _already_present(name, key, target):
                results.append(Fetched(target, downloaded=False))
                continue
            try:
                _download(name, key, target)
            except UserError as error:
                raise UserError(f"{error}; to get {name} by hand, {by_hand}") from None
            results.append(Fetched(target, downloaded=True))
    return results
