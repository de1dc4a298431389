"""Naming one uploaded match: a stable id from its object key and ETag.

The id is derived from what S3 says about the object, so the same upload always gets the same
id (a re-run or retried task writes to the same places), while a new upload under the same key
(new content, new ETag) gets a new one. Where a run's outputs go is `highlights/aws/plan.py`:
below the id, named by what determines them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from highlights.errors import InputError
from highlights.video import VIDEO_SUFFIXES

_STEM_CHARS = 20  # keeps "<purpose>-<id>-<timestamp>" job names within SageMaker's 63
_DIGEST_CHARS = 12


@dataclass(frozen=True)
class Match:
    """One uploaded video and the id all of its outputs are filed under."""

    match_id: str
    key: str  # object key in the input bucket
    etag: str  # S3 ETag without quotes


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


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"
