"""The output folder of a run: who holds it, what this program wrote there, and how a new
result replaces the old one.

Two kinds of names in the folder belong to this program:
- `.highlights-run.json`, the manifest: the match whose results the folder holds, every file
  this program wrote there (paths relative to the folder), and the state of an unfinished run.
  It is rewritten through `.highlights-run.json.partial`.
- `.highlights-staging-<id>/`: a run writes its whole new result here first. Once every file is
  there, the manifest records the swap (the journal); then the files are moved into place and
  the earlier files that are no longer part of the result are deleted.

A run holds an OS lock (`flock`) on the folder itself while it writes there; the OS drops it when
the process ends, however it ends, so a crash never leaves a stale lock (and a refused folder
gets no lock file).

A run that dies while staging leaves the old result untouched, and the next run deletes the
staging folder (roll back). A run that dies during the swap leaves the journal, and the next run
finishes the swap (roll forward). Either way the folder then holds one complete result, never a
mix. Only files named in the manifest are ever replaced or deleted: anything else in the folder
(a user's notes, a folder that happens to be called `clip-001`) is left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from highlights.errors import OutputBusyError, OutputExistsError

MANIFEST_FILE = ".highlights-run.json"
MANIFEST_PARTIAL = f"{MANIFEST_FILE}.partial"  # the next manifest, before it is renamed
STAGING_PREFIX = ".highlights-staging-"
CONTROL_FILES = frozenset({MANIFEST_FILE, MANIFEST_PARTIAL})
LOCK_WAIT_SECONDS = 60.0  # how long a stage waits to record its files while another holds the lock
_STAGING_NAME = re.compile(re.escape(STAGING_PREFIX) + r"[0-9a-f]{12}")


@dataclass(frozen=True)
class Swap:
    """The journal of a swap: enough to finish it after a crash."""

    staging: str  # the staging folder's name
    moves: tuple[str, ...]  # files moving from the staging folder into place
    files: tuple[str, ...]  # the folder's files once the swap is done
    dropped: tuple[str, ...]  # earlier files that are not part of the new result


@dataclass(frozen=True)
class Manifest:
    match_id: str | None = None
    files: tuple[str, ...] = ()
    staging: str | None = None  # a staging folder being filled (deleted if the run died)
    swap: Swap | None = None  # a swap under way (finished if the run died)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Raise ValueError for anything but a manifest this program wrote."""
        document = json.loads(text)
        if not isinstance(document, dict) or not isinstance(document.get("match_id"), str):
            raise ValueError("no match id")
        swap = document.get("swap")
        staging = document.get("staging")
        return cls(
            match_id=document["match_id"],
            files=_relative_paths(document.get("files", [])),
            staging=_staging_name(staging) if staging is not None else None,
            swap=None
            if swap is None
            else Swap(
                staging=_staging_name(swap["staging"]),
                moves=_relative_paths(swap["moves"]),
                files=_relative_paths(swap["files"]),
                dropped=_relative_paths(swap["dropped"]),
            ),
        )


def _relative_paths(values: Any) -> tuple[str, ...]:
    """Paths inside the folder only: a damaged manifest must never point us elsewhere."""
    if not isinstance(values, list):
        raise ValueError("not a list of paths")
    for value in values:
        path = PurePosixPath(value) if isinstance(value, str) else None
        if path is None or path.is_absolute() or ".." in path.parts or str(path) in ("", "."):
            raise ValueError(f"{value!r} is not a path inside the folder")
    return tuple(values)


def _staging_name(value: Any) -> str:
    if not isinstance(value, str) or not _STAGING_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a staging folder name")
    return value


class OutputFolder:
    """One output folder. `lock()` is re-entrant for the same object, not across objects."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    # --- the lock ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[OutputFolder]:
        """Hold the folder's lock; OutputBusyError if another process holds it past `wait` s."""
        if self._lock_fd is not None:
            yield self
            return
        self._make()
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._acquire(fd, wait)
            self._lock_fd = fd
            try:
                yield self
            finally:
                self._lock_fd = None
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise OutputBusyError(
                    f"{self.path}: another highlights run is writing into this folder; "
                    "wait for it to finish or choose another --out"
                )
            time.sleep(0.1)

    def _make(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputExistsError(f"{self.path}: exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)

    # --- the manifest --------------------------------------------------------------------------

    def read(self) -> Manifest | None:
        """The manifest, or None if there is none this program could have written."""
        try:
            return Manifest.from_json((self.path / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return None

    def files(self) -> tuple[str, ...]:
        manifest = self.read()
        return manifest.files if manifest else ()

    def _write(self, manifest: Manifest) -> Manifest:
        """Replace the manifest atomically and durably: it is the journal of a swap."""
        partial = self.path / MANIFEST_PARTIAL
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path / MANIFEST_FILE)
        directory = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return manifest

    def _relative(self, path: Path) -> str:
        return Path(path).relative_to(self.path).as_posix()

    def is_staging(self) -> bool:
        return _STAGING_NAME.fullmatch(self.path.name) is not None

    def record(self, written: Iterable[Path] = (), removed: Iterable[Path] = ()) -> None:
        """Note files a stage wrote into (or removed from) this folder in its manifest.

        Only a claimed folder keeps a manifest; a staging folder is all new result anyway.
        """
        if self.is_staging() or not (self.path / MANIFEST_FILE).exists():
            return
        with self.lock(wait=LOCK_WAIT_SECONDS):
            manifest = self.read() or Manifest()
            gone = {self._relative(p) for p in removed}
            files = (set(manifest.files) - gone) | {self._relative(p) for p in written}
            self._write(dataclasses.replace(manifest, files=tuple(sorted(files))))

    def discard(self, paths: Iterable[Path]) -> None:
        """Delete those of `paths` that this program wrote (the manifest lists them)."""
        ours = set(self.files())
        gone = [p for p in paths if self._relative(p) in ours]
        for path in gone:
            _unlink_file(path)
        if gone:
            self.record(removed=gone)

    # --- claiming, staging, swapping -----------------------------------------------------------

    def claim(self, match_id: str, force: bool = False) -> None:
        """Settle an unfinished run, then take the folder for `match_id`.

        Refused (OutputExistsError) when it holds anything but this match's results, unless
        `force`: then this program's earlier files are replaced and everything else is kept.
        """
        with self.lock():
            manifest = self.recover()
            if not force and manifest.match_id != match_id and self._holds_anything():
                what = "another video's results" if manifest.match_id else "files that are not ours"
                raise OutputExistsError(
                    f"{self.path}: holds {what}; choose another --out, or pass --force to write "
                    f"here anyway (only files listed in {MANIFEST_FILE} are ever replaced)"
                )
            self._write(dataclasses.replace(manifest, match_id=match_id))

    def adopt(self, name: str) -> None:
        """Count `name` (say a database this run will create) among this program's files;
        OutputExistsError if something else already has that name."""
        with self.lock():
            manifest = self.read() or Manifest()
            if name in manifest.files:
                return
            if os.path.lexists(self.path / name):
                raise self._in_the_way(name)
            self._write(dataclasses.replace(manifest, files=tuple(sorted({*manifest.files, name}))))

    def recover(self) -> Manifest:
        """Roll an interrupted run forward (swap journaled) or back (only staged)."""
        with self.lock():
            (self.path / MANIFEST_PARTIAL).unlink(missing_ok=True)
            manifest = self.read()
            if manifest is None:
                return Manifest()
            if manifest.swap is not None:
                return self._finish(manifest, manifest.swap)
            if manifest.staging is not None:
                shutil.rmtree(self.path / manifest.staging, ignore_errors=True)
                return self._write(dataclasses.replace(manifest, staging=None))
            return manifest

    def begin_staging(self) -> Path:
        """A new, empty staging folder for this run's result (the lock must be held)."""
        self._require_lock()
        manifest = self.recover()
        name = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        self._write(dataclasses.replace(manifest, staging=name))
        staging = self.path / name
        staging.mkdir()
        return staging

    def publish(self, staging: Path, kept: Iterable[str] = ()) -> None:
        """Swap the staged result in; `kept` are files of ours updated in place (a database).

        OutputExistsError, with the old result untouched, if a staged file would land on
        something this program did not write.
        """
        self._require_lock()
        manifest = self.read() or Manifest()
        if manifest.staging != staging.name:
            raise ValueError(f"{staging} is not this folder's staging folder")
        moves = tuple(sorted(_files_under(staging)))
        files = tuple(sorted({*moves, *kept}))
        blocked = [rel for rel in moves if self._blocked(rel, set(manifest.files))]
        if blocked:
            shutil.rmtree(staging, ignore_errors=True)
            self._write(dataclasses.replace(manifest, staging=None))
            raise self._in_the_way(blocked[0])
        dropped = tuple(sorted(set(manifest.files) - set(files)))
        swap = Swap(staging=staging.name, moves=moves, files=files, dropped=dropped)
        self._write(dataclasses.replace(manifest, swap=swap))  # the journal
        self._finish(manifest, swap)

    def _finish(self, manifest: Manifest, swap: Swap) -> Manifest:
        """Carry out a journaled swap. Every step may be repeated, so a crash anywhere in here
        is finished by running this again; the journal goes last."""
        staging = self.path / swap.staging
        for rel in swap.moves:
            source = staging / rel
            if os.path.lexists(source):
                target = self.path / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
        for rel in swap.dropped:
            _unlink_file(self.path / rel)
        shutil.rmtree(staging, ignore_errors=True)
        return self._write(Manifest(manifest.match_id, swap.files))

    def _blocked(self, rel: str, ours: set[str]) -> bool:
        """Whether moving `rel` into place would replace or shadow something not ours."""
        target = self.path / rel
        for parent in target.relative_to(self.path).parents:
            folder = self.path / parent
            if parent != Path(".") and os.path.lexists(folder) and not folder.is_dir():
                return True
        return os.path.lexists(target) and (rel not in ours or target.is_dir())

    def _in_the_way(self, rel: str) -> OutputExistsError:
        return OutputExistsError(
            f"{self.path / rel}: is where this run's result goes, but highlights did not write "
            f"it (it is not listed in {self.path / MANIFEST_FILE}); move it away and run again "
            "(nothing in the folder was changed)"
        )

    def _holds_anything(self) -> bool:
        return any(entry.name not in CONTROL_FILES for entry in self.path.iterdir())

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"{self.path}: the folder's lock must be held")


def _files_under(folder: Path) -> Iterator[str]:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            yield (Path(root) / name).relative_to(folder).as_posix()


def _unlink_file(path: Path) -> None:
    """Delete a file (or symlink); never a folder that has taken its name."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
