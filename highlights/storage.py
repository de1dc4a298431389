"""Where outputs live, behind one small interface: `Storage`, implemented by a local folder
(`highlights.local.storage`) and an S3 bucket (`highlights.aws.s3`).

Keys are POSIX-style relative paths ("match-1/clips/clip-001.mp4"). A key never reaches
outside the storage root: absolute keys and `..` parts are refused.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Protocol

from highlights.errors import InputError


class Storage(Protocol):
    def put_file(self, local: Path, key: str) -> None:
        """Copy a local file to `key`, replacing what was there."""

    def get_file(self, key: str, local: Path) -> None:
        """Copy `key` to a local file (written atomically)."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys that start with `prefix` (a plain string prefix, as S3 has), sorted."""

    def url(self, key: str, expires: int) -> str:
        """A link someone can open to read `key`, valid for `expires` seconds where that applies."""


def check_key(key: str) -> str:
    """The key in normal form; InputError if it is empty, absolute or climbs out with `..`."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or "\\" in key or any(part == ".." for part in path.parts):
        raise InputError(f"storage key {key!r} must be a relative path without '..'")
    normal = path.as_posix()
    if normal in ("", "."):
        raise InputError(f"storage key {key!r} names no file")
    return normal


def check_local_file(local: Path) -> Path:
    local = Path(local)
    if not local.is_file():
        raise InputError(f"{local}: file to store not found")
    return local
