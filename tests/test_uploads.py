"""S3 event notifications (as SQS delivers them) -> one run request per upload."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

from highlights.aws.uploads import Upload, upload_run_id, uploads_from_messages
from highlights.matches import match_for_object

BUCKET = "match-uploads"
PREFIX = "incoming/"


def record(key: str, etag: str = "abc123", size: int = 1000, event: str = "ObjectCreated:Put"):
    """One record as S3 writes it: the key URL-encoded with `+` for spaces."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": event,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "match-uploaded",
            "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag},
        },
    }


def message(*records, message_id: str = "m1", body: str | None = None) -> dict:
    text = body if body is not None else json.dumps({"Records": list(records)})
    return {"MessageId": message_id, "ReceiptHandle": f"rh-{message_id}", "Body": text}


def keys(batch) -> list[str]:
    return [u.key for u in batch.uploads]


def test_an_upload_becomes_one_run_request():
    batch = uploads_from_messages([message(record("incoming/cup.mp4", size=1234))], BUCKET, PREFIX)
    assert batch.uploads == [Upload(BUCKET, "incoming/cup.mp4", "abc123", 1234)]
    upload = batch.uploads[0]
    assert upload.conf() == {"backend": "aws", "key": "incoming/cup.mp4", "etag": "abc123"}
    assert (
        upload_run_id(upload.match)
        == f"upload__{match_for_object('incoming/cup.mp4', 'abc123').match_id}"
    )
    assert "cup.mp4" in upload.note() and "1.2 KB" in upload.note()
    assert "s3://match-uploads/incoming/cup.mp4" in upload.note()


def test_the_test_event_is_dropped_and_its_message_deleted():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    batch = uploads_from_messages([message(body=json.dumps(test_event))], BUCKET, PREFIX)
    assert batch.uploads == []
    assert [(a.message_id, a.match_ids) for a in batch.acks] == [("m1", ())]
    assert any("TestEvent" in reason for reason in batch.dropped)


def test_keys_are_url_decoded_like_s3_encodes_them():
    names = [
        "incoming/cup final.mp4",
        "incoming/a+b.mp4",
        "incoming/sub/dir.mp4",
        "incoming/Ünïcødé ⚽.mov",
    ]
    batch = uploads_from_messages([message(*(record(n) for n in names))], BUCKET, PREFIX)
    assert keys(batch) == names


def test_encoded_slash_and_plus_are_decoded():
    raw = record("x")
    raw["s3"]["object"]["key"] = "incoming%2Fcup+final%2B2.mp4"
    batch = uploads_from_messages([message(raw)], BUCKET, PREFIX)
    assert keys(batch) == ["incoming/cup final+2.mp4"]


def test_other_prefixes_and_buckets_are_dropped():
    elsewhere = record("archive/cup.mp4")
    other_bucket = record("incoming/cup.mp4")
    other_bucket["s3"]["bucket"]["name"] = "someone-else"
    batch = uploads_from_messages([message(elsewhere, other_bucket)], BUCKET, PREFIX)
    assert batch.uploads == []
    assert len(batch.dropped) == 2


def test_non_video_keys_and_folder_markers_are_dropped():
    records = [record("incoming/notes.txt"), record("incoming/"), record("incoming/cup.MP4")]
    batch = uploads_from_messages([message(*records)], BUCKET, PREFIX)
    assert keys(batch) == ["incoming/cup.MP4"]


def test_deletions_and_other_events_are_dropped():
    removed = record("incoming/cup.mp4", event="ObjectRemoved:Delete")
    batch = uploads_from_messages([message(removed)], BUCKET, PREFIX)
    assert batch.uploads == []


def test_junk_bodies_are_dropped_not_raised():
    junk = [
        message(body="not json", message_id="a"),
        message(body="[1, 2]", message_id="b"),
        message(body=json.dumps({"Records": "nope"}), message_id="c"),
        message(body=json.dumps({"Records": [1, {"eventSource": "aws:s3"}]}), message_id="d"),
        message(body=json.dumps({"Records": [record("incoming/x.mp4", etag="")]}), message_id="e"),
    ]
    batch = uploads_from_messages(junk, BUCKET, PREFIX)
    assert batch.uploads == []
    assert [a.message_id for a in batch.acks] == ["a", "b", "c", "d", "e"]


def test_duplicates_in_a_batch_run_once_and_every_message_is_acknowledged():
    first = message(record("incoming/cup.mp4"), message_id="m1")
    again = message(record("incoming/cup.mp4"), record("incoming/cup.mp4"), message_id="m2")
    batch = uploads_from_messages([first, again], BUCKET, PREFIX)
    assert keys(batch) == ["incoming/cup.mp4"]
    match_id = batch.uploads[0].match.match_id
    assert [(a.message_id, a.match_ids) for a in batch.acks] == [
        ("m1", (match_id,)),
        ("m2", (match_id,)),
    ]


def test_a_new_upload_under_the_same_key_is_a_new_run():
    old, new = record("incoming/cup.mp4", etag="v1"), record("incoming/cup.mp4", etag="v2")
    batch = uploads_from_messages([message(old, new)], BUCKET, PREFIX)
    assert [u.etag for u in batch.uploads] == ["v1", "v2"]
    assert len({upload_run_id(u.match) for u in batch.uploads}) == 2


def test_etag_quotes_are_removed():
    batch = uploads_from_messages([message(record("incoming/a.mp4", etag='"q1"'))], BUCKET, PREFIX)
    assert batch.uploads[0].etag == "q1"
