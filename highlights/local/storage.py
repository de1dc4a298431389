"""`Storage` in a local folder: keys are files under a root, URLs are file:// URLs."""

from __future__ import annotations

import shutil
from pathlib import Path

from highlights.errors import InputError
from highlights.files import atomic_path
from highlights.storage import check_key, check_local_file


def _is_partial(path: Path) -> bool:
    """A temporary file of highlights.files.atomic_path, still being written."""
    return path.name.startswith(".") and ".partial" in path.name


class LocalStorage:
    """Keys are files under `root`; URLs are file:// URLs (they do not expire)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink inside the root may point outside
            raise InputError(f"storage key {key!r} leads outside {self.root}")
        return path

    def put_file(self, local: Path, key: str) -> None:
        source = check_local_file(local)
        with atomic_path(self.path(key)) as tmp:
            shutil.copyfile(source, tmp)

    def get_file(self, key: str, local: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise InputError(f"{key}: not found in storage {self.root}")
        with atomic_path(Path(local)) as tmp:
            shutil.copyfile(source, tmp)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not _is_partial(path)
        )
        return sorted(key for key in keys if key.startswith(prefix))

    def url(self, key: str, expires: int) -> str:
        return self.path(key).as_uri()
