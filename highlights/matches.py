"""Naming one uploaded match: a stable id from its object key and ETag, and where its outputs go.

The id is derived from what S3 says about the object, so the same upload always gets the same
id (a re-run or retried task writes to the same places), while a new upload under the same key
(new content, new ETag) gets a new one. Every output location is a pure function of the id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from highlights.errors import InputError
from highlights.files import write_text_atomic
from highlights.video import VIDEO_SUFFIXES

_STEM_CHARS = 20  # keeps "<purpose>-<id>-<timestamp>" job names within SageMaker's 63
_DIGEST_CHARS = 12


@dataclass(frozen=True)
class Match:
    """One uploaded video and the id all of its outputs are filed under."""

    match_id: str
    key: str  # object key in the input bucket
    etag: str  # S3 ETag without quotes


@dataclass(frozen=True)
class MatchPrefixes:
    """Deterministic S3 prefixes (no bucket, each ending in '/') for one match."""

    frames: str  # work bucket: JPEG frames captured by MediaConvert
    features: str  # work bucket: feature shards written by the features job
    scores: str  # work bucket: what the scoring job writes besides DynamoDB items
    highlights: str  # highlights bucket: clips, reel, segments.json, report, email marker

    def clip_base(self, index: int) -> str:
        """Key of clip `index` without its extension (MediaConvert appends '.mp4')."""
        return f"{self.highlights}clips/clip-{index:03d}"

    @property
    def reel_base(self) -> str:
        return f"{self.highlights}reel"

    @property
    def email_marker(self) -> str:
        return f"{self.highlights}email-sent.json"


def is_video_key(key: str) -> bool:
    """True for keys that name a video file we would process (not a folder marker or a sidecar)."""
    return not key.endswith("/") and PurePosixPath(key).suffix.lower() in VIDEO_SUFFIXES


def match_id(key: str, etag: str) -> str:
    """A short, readable, deterministic id: a slug of the file name plus a digest of key and ETag.

    Only [a-z0-9-], at most 33 characters, so it can be used in S3 keys, DynamoDB keys,
    SageMaker job names and MediaConvert tokens alike.
    """
    clean_etag = etag.strip().strip('"')
    if not key or key.endswith("/"):
        raise InputError(f"{key!r}: not an object key of a video")
    if not clean_etag:
        raise InputError(f"{key}: the object has no ETag")
    ascii_stem = unicodedata.normalize("NFKD", PurePosixPath(key).stem).encode("ascii", "ignore")
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_stem.decode().lower()).strip("-")
    stem = stem[:_STEM_CHARS].strip("-") or "match"
    digest = hashlib.sha256(f"{key}\0{clean_etag}".encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{stem}-{digest}"


def match_for_object(key: str, etag: str) -> Match:
    return Match(match_id=match_id(key, etag), key=key, etag=etag.strip().strip('"'))


HIGHLIGHTS_ROOT = "highlights/"  # one folder per match below it, in the highlights bucket


def prefixes(match: Match | str) -> MatchPrefixes:
    """Where every output of the match lives; the same id always gives the same prefixes."""
    mid = match.match_id if isinstance(match, Match) else match
    return MatchPrefixes(
        frames=f"frames/{mid}/",
        features=f"features/{mid}/",
        scores=f"scores/{mid}/",
        highlights=f"{HIGHLIGHTS_ROOT}{mid}/",
    )


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


class LocalInbox:
    """A watched folder: videos dropped into `incoming` are handed out once each.

    A file counts as new until it is claimed; the claim is a small JSON file in `ledger` that
    records the file's size and modification time, so replacing a video with new content makes it
    new again. Files changed less than `settle_seconds` ago are still being copied and wait.
    """

    def __init__(self, incoming: Path, ledger: Path, settle_seconds: float = 5.0) -> None:
        self.incoming = Path(incoming)
        self.ledger = Path(ledger)
        self.settle_seconds = settle_seconds

    def next_new(self, now: float | None = None) -> Path | None:
        """The oldest settled, unclaimed video in the folder, or None."""
        if not self.incoming.is_dir():
            raise InputError(f"{self.incoming}: watched folder not found; create it first")
        now = time.time() if now is None else now
        candidates = []
        for path in self.incoming.iterdir():
            if not path.is_file() or not is_video_key(path.name) or path.name.startswith("."):
                continue
            stat = path.stat()
            if now - stat.st_mtime >= self.settle_seconds and not self._claimed(path, stat):
                candidates.append((stat.st_mtime, path.name, path))
        return min(candidates)[2] if candidates else None

    def claim(self, path: Path) -> None:
        stat = Path(path).stat()
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        write_text_atomic(self._entry(Path(path)), json.dumps(record))

    def _claimed(self, path: Path, stat: os.stat_result) -> bool:
        try:
            record = json.loads(self._entry(path).read_text())
        except (OSError, ValueError):
            return False
        return record == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def _entry(self, path: Path) -> Path:
        return self.ledger / f"{path.name}.json"
