"""S3 upload notifications (as SQS delivers them) turned into one pipeline run request per upload.

Pure functions, no AWS client: the dispatcher DAG receives the messages, calls
`uploads_from_messages`, starts one run per `Upload` and deletes each message only once every
run it asked for exists. S3 event format:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from highlights.claims import run_note
from highlights.matches import Match, is_video_key, match_for_object

UPLOAD_RUN_PREFIX = "upload__"


@dataclass(frozen=True)
class Upload:
    """One version of one uploaded video: what a pipeline run is started for."""

    bucket: str
    key: str
    etag: str  # without quotes
    size: int

    @property
    def match(self) -> Match:
        return match_for_object(self.key, self.etag)

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def conf(self) -> dict[str, Any]:
        return {"backend": "aws", "key": self.key, "etag": self.etag}

    def note(self) -> str:
        return run_note(self.name, self.size, self.location)


@dataclass(frozen=True)
class Ack:
    """A received message and the matches it announced (none for a test event or junk)."""

    message_id: str
    receipt_handle: str
    match_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class UploadBatch:
    """What one batch of messages asks for: uploads to run (deduplicated) and messages to delete."""

    uploads: list[Upload] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # why each ignored record/message was ignored


def upload_run_id(match: Match) -> str:
    """The first run of an upload; the same upload always gets the same run id."""
    return f"{UPLOAD_RUN_PREFIX}{match.match_id}"


def uploads_from_messages(
    messages: Sequence[Mapping[str, Any]], bucket: str, prefix: str
) -> UploadBatch:
    """The uploads a batch of SQS messages announces, and what each message announced.

    Kept: `ObjectCreated:*` records of video keys under `prefix` in `bucket` (keys URL-decoded
    as S3 encodes them, `+` for space). Everything else (the `s3:TestEvent` S3 sends when the
    notification is configured, deletions, other buckets/prefixes, sidecar files, bodies that are
    not S3 events) is dropped and its message deleted too, so it never reaches the dead-letter
    queue. An upload announced twice in the batch is run once.
    """
    batch = UploadBatch()
    seen: dict[tuple[str, str], Upload] = {}
    for message in messages:
        match_ids: list[str] = []
        for upload in _message_uploads(message, bucket, prefix, batch.dropped):
            if (upload.key, upload.etag) not in seen:
                seen[upload.key, upload.etag] = upload
                batch.uploads.append(upload)
            match_ids.append(upload.match.match_id)
        batch.acks.append(
            Ack(
                message_id=str(message.get("MessageId", "")),
                receipt_handle=str(message.get("ReceiptHandle", "")),
                match_ids=tuple(dict.fromkeys(match_ids)),
            )
        )
    return batch


def _message_uploads(
    message: Mapping[str, Any], bucket: str, prefix: str, dropped: list[str]
) -> list[Upload]:
    message_id = message.get("MessageId", "?")
    try:
        body = json.loads(message.get("Body") or "")
    except (TypeError, ValueError):
        dropped.append(f"message {message_id}: body is not JSON")
        return []
    if not isinstance(body, dict):
        dropped.append(f"message {message_id}: body is not an S3 event")
        return []
    if body.get("Event") == "s3:TestEvent":
        dropped.append(f"message {message_id}: s3:TestEvent")
        return []
    records = body.get("Records")
    if not isinstance(records, list):
        dropped.append(f"message {message_id}: no Records")
        return []
    uploads = []
    for record in records:
        upload, reason = _record_upload(record, bucket, prefix)
        if upload is None:
            dropped.append(f"message {message_id}: {reason}")
        else:
            uploads.append(upload)
    return uploads


def _record_upload(record: Any, bucket: str, prefix: str) -> tuple[Upload | None, str]:
    if not isinstance(record, dict):
        return None, "a record that is not an object"
    event = str(record.get("eventName", ""))
    if record.get("eventSource") != "aws:s3" or not event.startswith("ObjectCreated:"):
        return None, f"not an upload ({record.get('eventSource')} {event or 'no eventName'})"
    s3 = record.get("s3") if isinstance(record.get("s3"), dict) else {}
    source = (s3.get("bucket") or {}).get("name")
    item = s3.get("object") or {}
    if not isinstance(item, dict) or not item.get("key") or not item.get("eTag"):
        return None, f"{event} without an object key and ETag"
    key = unquote_plus(str(item["key"]))
    where = f"s3://{source}/{key}"
    if source != bucket:
        return None, f"{where}: not the input bucket {bucket}"
    if not key.startswith(prefix):
        return None, f"{where}: outside the input prefix {prefix!r}"
    if not is_video_key(key):
        return None, f"{where}: not a video file"
    try:
        size = int(item.get("size") or 0)
    except (TypeError, ValueError):
        size = 0
    return Upload(bucket=source, key=key, etag=str(item["eTag"]).strip('"'), size=size), ""
