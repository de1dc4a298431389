"""Specification of per-window result records and the two stores (SQLite, DynamoDB via moto)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from highlights.aws.dynamodb import DynamoDBResults
from highlights.config import SegmentConfig
from highlights.decisions import decide
from highlights.errors import ConfigError, InputError
from highlights.local.sqlite import SQLiteResults
from highlights.results import ResultsStore, WindowRecord, window_records
from highlights.segments import Segment
from highlights.windows import WindowScores

CLASSES = ("Background", "SoccerPenalty")


def scores(count: int) -> WindowScores:
    rng = np.random.default_rng(7)
    p = rng.random(count).astype(np.float32)
    return WindowScores(
        starts=np.arange(count, dtype=np.float64),
        ends=np.arange(count, dtype=np.float64) + 2.0,
        probabilities=np.stack([1 - p, p], axis=1),
        classes=CLASSES,
    )


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, aws_credentials: None
) -> Iterator[ResultsStore]:
    if request.param == "sqlite":
        yield SQLiteResults(tmp_path / "results.sqlite")
        return
    with mock_aws():
        dynamo = DynamoDBResults(
            "highlights-results", boto3.client("dynamodb", region_name="us-east-1")
        )
        dynamo.create_table()
        yield dynamo


# --- window_records ---------------------------------------------------------------------------


def test_every_window_becomes_a_record_with_all_class_scores() -> None:
    records = window_records("m1", scores(5), [])
    assert [(r.start, r.end) for r in records] == [(float(i), i + 2.0) for i in range(5)]
    assert set(records[0].scores) == set(CLASSES)
    assert records[3].scores["SoccerPenalty"] == pytest.approx(float(scores(5).probabilities[3, 1]))


def test_a_window_is_picked_when_it_overlaps_a_segment() -> None:
    records = window_records("m1", scores(10), [Segment(4.5, 6.0, 0.9, "SoccerPenalty")])
    assert [r.start for r in records if r.picked] == [3.0, 4.0, 5.0]


def test_a_window_that_only_touches_a_segment_is_not_picked() -> None:
    records = window_records("m1", scores(10), [Segment(6.0, 8.0, 0.9, "SoccerPenalty")])
    assert [r.start for r in records if r.picked] == [5.0, 6.0, 7.0]


def test_a_window_over_undecodable_frames_says_how_much_of_it() -> None:
    damaged = replace(scores(4), damaged=np.array([0.0, 0.25, 1.0, 0.0], dtype=np.float32))
    assert [r.damaged for r in window_records("m1", damaged, [])] == [0.0, 0.25, 1.0, 0.0]


# --- behaviour shared by both stores ----------------------------------------------------------


def test_damage_shares_are_stored(store: ResultsStore) -> None:
    damaged = replace(scores(3), damaged=np.array([0.0, 0.4, 1.0], dtype=np.float32))
    store.put(window_records("m1", damaged, []))
    assert [r.damaged for r in store.get("m1")] == pytest.approx([0.0, 0.4, 1.0])


def test_records_come_back_as_they_were_put(store: ResultsStore) -> None:
    records = window_records("m1", scores(4), [Segment(0.0, 2.5, 0.9, "SoccerPenalty")])
    store.put(records)
    assert store.get("m1") == records


def test_putting_a_match_twice_does_not_duplicate_windows(store: ResultsStore) -> None:
    records = window_records("m1", scores(30), [])
    store.put(records)
    store.put(records)
    assert len(store.get("m1")) == 30


def test_the_second_put_wins(store: ResultsStore) -> None:
    store.put(window_records("m1", scores(3), []))
    updated = [
        replace(r, picked=True, scores={"Background": 0.0, "SoccerPenalty": 1.0})
        for r in window_records("m1", scores(3), [])
    ]
    store.put(updated)
    assert store.get("m1") == updated


def test_records_are_returned_in_start_order(store: ResultsStore) -> None:
    records = window_records("m1", scores(12), [])
    store.put(list(reversed(records)))
    assert [r.start for r in store.get("m1")] == [float(i) for i in range(12)]


def test_matches_are_kept_apart(store: ResultsStore) -> None:
    store.put(window_records("m1", scores(3), []))
    store.put(window_records("m2", scores(5), []))
    assert len(store.get("m1")) == 3
    assert {r.match_id for r in store.get("m2")} == {"m2"}


def test_an_unknown_match_has_no_records(store: ResultsStore) -> None:
    assert store.get("never-seen") == []


def test_duplicate_keys_within_one_put_keep_the_last(store: ResultsStore) -> None:
    first = WindowRecord("m1", 1.0, 3.0, {"Background": 0.7, "SoccerPenalty": 0.3}, False)
    second = replace(first, scores={"Background": 0.2, "SoccerPenalty": 0.8}, picked=True)
    store.put([first, second])
    assert store.get("m1") == [second]


# --- SQLite specifics -------------------------------------------------------------------------


def test_sqlite_stores_one_row_per_window_with_scores_as_json(tmp_path: Path) -> None:
    SQLiteResults(tmp_path / "r.sqlite").put(window_records("m1", scores(4), []))
    SQLiteResults(tmp_path / "r.sqlite").put(window_records("m1", scores(4), []))
    with sqlite3.connect(tmp_path / "r.sqlite") as connection:
        rows = connection.execute("SELECT match_id, start_ms, scores FROM windows").fetchall()
    assert len(rows) == 4
    assert rows[1][:2] == ("m1", 1000)
    assert rows[1][2].startswith('{"Background": ')


def test_sqlite_keeps_the_models_class_order(tmp_path: Path) -> None:
    record = WindowRecord("m1", 0.0, 2.0, {"Zebra": 0.1, "Apple": 0.9}, False)
    SQLiteResults(tmp_path / "r.sqlite").put([record])
    assert list(SQLiteResults(tmp_path / "r.sqlite").get("m1")[0].scores) == ["Zebra", "Apple"]


def test_a_results_file_from_before_damage_was_recorded_is_upgraded(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "r.sqlite") as connection:
        connection.execute(
            "CREATE TABLE windows (match_id TEXT NOT NULL, start_ms INTEGER NOT NULL, "
            "end_ms INTEGER NOT NULL, scores TEXT NOT NULL, picked INTEGER NOT NULL, "
            "PRIMARY KEY (match_id, start_ms))"
        )
        connection.execute("INSERT INTO windows VALUES ('old', 0, 2000, '{\"x\": 0.5}', 0)")
    connection.close()
    store = SQLiteResults(tmp_path / "r.sqlite")
    assert store.get("old")[0].damaged == 0.0
    store.put([WindowRecord("new", 0.0, 2.0, {"x": 0.5}, False, damaged=0.5)])
    assert store.get("new")[0].damaged == 0.5


def test_sqlite_creates_missing_folders(tmp_path: Path) -> None:
    SQLiteResults(tmp_path / "a" / "b" / "r.sqlite").put(window_records("m1", scores(1), []))
    assert (tmp_path / "a" / "b" / "r.sqlite").is_file()


def test_a_file_that_is_not_sqlite_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n" * 100)
    with pytest.raises(InputError, match="notes.txt: not a usable SQLite results database"):
        SQLiteResults(path).put(window_records("m1", scores(1), []))
    assert path.read_text() == "my notes, not a database\n" * 100


def test_a_failed_put_writes_nothing(tmp_path: Path) -> None:
    good = window_records("m1", scores(3), [])
    too_late = WindowRecord("m1", 1e17, 1e17 + 2, {"x": 0.5}, False)  # ms beyond SQLite's int64
    with pytest.raises(OverflowError):
        SQLiteResults(tmp_path / "r.sqlite").put([*good, too_late])
    assert SQLiteResults(tmp_path / "r.sqlite").get("m1") == []


def strided(count: int, stride: float) -> WindowScores:
    """`count` 2 s windows every `stride` seconds."""
    starts = np.arange(count, dtype=np.float64) * stride
    p = np.linspace(0.1, 0.9, count, dtype=np.float32)
    return WindowScores(starts, starts + 2.0, np.stack([1 - p, p], axis=1), CLASSES)


def test_deciding_again_with_another_stride_leaves_no_stale_windows(
    store: ResultsStore, tmp_path: Path
) -> None:
    # 100 windows a second apart, then 50 two seconds apart: 50 stale windows to delete,
    # more than one DynamoDB batch
    for stride, count in ((1.0, 100), (2.0, 50)):
        decide(
            strided(count, stride), ["SoccerPenalty"], SegmentConfig(), 200.0,
            tmp_path / "segments.json", video_name="m.mp4", match_id="m1", store=store,
        )  # fmt: skip
    assert [r.start for r in store.get("m1")] == [2.0 * i for i in range(50)]


def test_replacing_a_match_keeps_the_other_matches(store: ResultsStore) -> None:
    store.put(window_records("m2", scores(3), []))
    store.replace_match("m1", window_records("m1", scores(5), []))
    store.replace_match("m1", window_records("m1", scores(2), []))
    assert len(store.get("m1")) == 2
    assert store.get("m2") == window_records("m2", scores(3), [])


def test_a_set_of_another_match_is_refused(store: ResultsStore) -> None:
    with pytest.raises(ValueError, match="m2"):
        store.replace_match("m1", window_records("m2", scores(2), []))
    assert store.get("m1") == [] and store.get("m2") == []


# --- DynamoDB specifics -----------------------------------------------------------------------


@pytest.fixture
def dynamodb(aws_credentials: None) -> Iterator[DynamoDBResults]:
    with mock_aws():
        store = DynamoDBResults("results", boto3.client("dynamodb", region_name="us-east-1"))
        store.create_table()
        yield store


def test_dynamodb_item_shape(dynamodb: DynamoDBResults) -> None:
    dynamodb.put([WindowRecord("m1", 1.5, 3.5, {"SoccerPenalty": 0.25}, True, damaged=0.5)])
    [item] = dynamodb.client.scan(TableName="results")["Items"]
    assert item == {
        "match_id": {"S": "m1"},
        "start_ms": {"N": "1500"},
        "end_ms": {"N": "3500"},
        "scores": {"M": {"SoccerPenalty": {"N": "0.25"}}},
        "picked": {"BOOL": True},
        "damaged": {"N": "0.5"},
    }


def test_a_dynamodb_item_without_damage_reads_as_whole(dynamodb: DynamoDBResults) -> None:
    dynamodb.client.put_item(
        TableName="results",
        Item={
            "match_id": {"S": "m1"},
            "start_ms": {"N": "0"},
            "end_ms": {"N": "2000"},
            "scores": {"M": {"SoccerPenalty": {"N": "0.25"}}},
            "picked": {"BOOL": False},
        },
    )
    assert dynamodb.get("m1")[0].damaged == 0.0


def test_dynamodb_reads_every_page_of_a_long_match(dynamodb: DynamoDBResults) -> None:
    # ~200 KB per item (long class names): 8 windows are more than one 1 MB query page
    wide = {f"{i:03d}" + "x" * 5000: 0.123456789 for i in range(40)}
    records = [WindowRecord("long", float(i), i + 2.0, wide, False) for i in range(8)]
    dynamodb.put(records)
    paginator = dynamodb.client.get_paginator("query")
    pages = list(
        paginator.paginate(
            TableName="results",
            KeyConditionExpression="match_id = :m",
            ExpressionAttributeValues={":m": {"S": "long"}},
        )
    )
    assert len(pages) > 1
    assert dynamodb.get("long") == records


def test_a_missing_dynamodb_table_is_named(aws_credentials: None) -> None:
    with mock_aws():
        store = DynamoDBResults("no-such-table", boto3.client("dynamodb", region_name="us-east-1"))
        with pytest.raises(ConfigError, match="'no-such-table' not found"):
            store.get("m1")
        with pytest.raises(ConfigError, match="'no-such-table' not found"):
            store.put(window_records("m1", scores(2), []))
