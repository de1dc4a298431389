"""A watched folder of videos: each settled file version gets runs until one succeeds, or is parked.

Files are processed where they lie; nothing is moved on success. A file counts once it is
settled: not written to (nor its metadata changed) for `settle_seconds`, so its size and
modification time have been stable that long and a copy in progress is never picked up. A
file replaced by new content (new size or modification time) is a new version and starts over.
A version whose runs failed `max_attempts` times moves to `failed/` inside the folder, with its
errors written beside it; moving it back into the folder tries it again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from highlights.claims import Claim, run_note
from highlights.errors import InputError
from highlights.local.claims import FileClaims
from highlights.matches import is_video_key, match_id

LOCAL_RUN_PREFIX = "local__"
FAILED_DIR = "failed"
ERROR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class InboxVideo:
    """One version of one video in the folder."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def version(self) -> str:
        return f"{self.size}-{self.mtime_ns}"

    @property
    def first_run_id(self) -> str:
        """`local__<file slug>-<digest of name and version>`: the same version, the same id."""
        return f"{LOCAL_RUN_PREFIX}{match_id(self.name, self.version)}"

    def fresh_claim(self) -> Claim:
        return Claim(input=str(self.path), version=self.version)

    def conf(self) -> dict[str, Any]:
        return {"backend": "local", "video": str(self.path), "etag": self.version}

    def note(self) -> str:
        return run_note(self.name, self.size, str(self.path))


class LocalInbox:
    """The watched folder `incoming` and the claim records of its files in `ledger`."""

    def __init__(self, incoming: Path, ledger: Path, settle_seconds: float = 5.0) -> None:
        self.incoming = Path(incoming)
        self.claims = FileClaims(ledger)
        self.settle_seconds = settle_seconds

    @property
    def failed_dir(self) -> Path:
        return self.incoming / FAILED_DIR

    def holds(self, path: Path) -> bool:
        return Path(path).parent.resolve() == self.incoming.resolve()

    def video(self, path: Path) -> InboxVideo:
        try:
            stat = Path(path).stat()
        except FileNotFoundError:
            raise InputError(f"{path}: video file not found") from None
        return InboxVideo(Path(path), stat.st_size, stat.st_mtime_ns)

    def settled(self, now: float | None = None) -> list[InboxVideo]:
        """The videos in the folder that nobody is writing to, oldest first."""
        if not self.incoming.is_dir():
            raise InputError(f"{self.incoming}: watched folder not found; create it first")
        now = time.time() if now is None else now
        found = []
        for path in self.incoming.iterdir():
            if path.name.startswith(".") or not is_video_key(path.name) or not path.is_file():
                continue
            stat = path.stat()
            # ctime too: `cp -p` and `mv` set an old mtime, but their ctime is now.
            if now - max(stat.st_mtime, stat.st_ctime) >= self.settle_seconds:
                found.append(InboxVideo(path, stat.st_size, stat.st_mtime_ns))
        return sorted(found, key=lambda v: (v.mtime_ns, v.name))

    def park(self, video: InboxVideo, claim: Claim) -> Path:
        """Move a video whose runs all failed to `failed/`, its errors in a text file beside it."""
        self.failed_dir.mkdir(exist_ok=True)
        target = _free_name(self.failed_dir / video.name)
        errors = "\n".join(
            f"- {a.run_id}: {a.outcome}\n  " + a.error.replace("\n", "\n  ") for a in claim.attempts
        )
        report = (
            f"{video.name} failed {claim.failures} times and was moved here from "
            f"{self.incoming}. Move it back into that folder to try again.\n\n"
            f"Last error:\n{claim.last_error or '(none recorded; see the runs in Airflow)'}\n\n"
            f"Attempts:\n{errors}\n"
        )
        target.with_name(target.name + ERROR_SUFFIX).write_text(report)
        os.replace(video.path, target)
        self.claims.remove(video.name)
        return target


def _free_name(path: Path) -> Path:
    """`path`, or `name-2.ext`, `name-3.ext`... if taken: a parked file never replaces another."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
