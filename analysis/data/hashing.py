"""File digests, memoised per process so resolving a dataset twice is cheap.

A digest is remembered under the file's path, size and modification time, so
a file that is replaced or rewritten is hashed again; :func:`verify` callers
pass ``fresh=True`` to re-read the bytes regardless (bit rot keeps the mtime).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import UserError

_BLOCK_SIZE = 1 << 20


@dataclass(frozen=True)
class Digests:
    """What we know about one file's bytes."""

    sha256: str
    md5: str
    size: int


_file_memo: dict[tuple[str, int, int], Digests] = {}
_content_memo: dict[tuple[str, int, int], str] = {}


def _identity(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied; make it readable") from None
    return (str(path), stat.st_size, stat.st_mtime_ns)


def file_digests(path: Path, fresh: bool = False) -> Digests:
    """sha256 and md5 of the file, in one pass over its bytes."""
    identity = _identity(path)
    if not fresh and identity in _file_memo:
        return _file_memo[identity]
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as stream:
            while block := stream.read(_BLOCK_SIZE):
                sha256.update(block)
                md5.update(block)
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied; make it readable") from None
    digests = Digests(sha256.hexdigest(), md5.hexdigest(), identity[1])
    _file_memo[identity] = digests
    return digests


def content_sha256(path: Path, fresh: bool = False) -> str | None:
    """sha256 of a gzip file's decompressed content; None if it is not valid gzip."""
    identity = _identity(path)
    if not fresh and identity in _content_memo:
        return _content_memo[identity]
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            while block := stream.read(_BLOCK_SIZE):
                digest.update(block)
    except (OSError, EOFError, zlib.error):
        # A truncated or non-gzip file simply has no content digest; the
        # caller reports the mismatch of the file's own digests instead.
        return None
    _content_memo[identity] = digest.hexdigest()
    return _content_memo[identity]


def clear() -> None:
    """Forget every remembered digest (tests; long sessions that edit files)."""
    _file_memo.clear()
    _content_memo.clear()


def sha256_of_text(*parts: str) -> str:
    """A digest over several strings, unambiguous about where each one ends."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()

