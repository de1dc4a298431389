"""Per-window results of a match: one record per window, kept in SQLite locally or DynamoDB on AWS.

Both stores key a record by (match_id, start_ms), so writing the same match again updates its
windows in place instead of adding copies. Times are stored as whole milliseconds.

`replace_match` makes a set of records the match's whole set: windows of an earlier run that
the new one does not have (another window stride, say) are deleted. SQLite does that in one
transaction. DynamoDB has no atomicity across more items than one TransactWriteItems call takes
(100), and a match has thousands of windows: there the new items are written first (batched,
unprocessed items retried), then the stale ones deleted, so a reader may briefly see the union
of both sets, and a run that dies in between leaves stale windows until the next run removes them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from highlights.errors import ConfigError, InputError
from highlights.segments import Segment
from highlights.timecode import from_milliseconds, milliseconds
from highlights.windows import WindowScores


@dataclass(frozen=True)
class WindowRecord:
    """One scored window of one match, and whether it lies in a detected highlight."""

    match_id: str
    start: float  # seconds
    end: float  # seconds
    scores: dict[str, float]  # class name -> probability
    picked: bool
    damaged: float = 0.0  # share of the window's frames that could not be decoded

    @property
    def start_ms(self) -> int:
        return milliseconds(self.start)

    @property
    def end_ms(self) -> int:
        return milliseconds(self.end)


def window_records(
    match_id: str, scores: WindowScores, segments: Sequence[Segment]
) -> list[WindowRecord]:
    """A record for every window; `picked` when the window overlaps any segment."""
    records = []
    for i in range(len(scores)):
        start, end = float(scores.starts[i]), float(scores.ends[i])
        records.append(
            WindowRecord(
                match_id=match_id,
                start=start,
                end=end,
                scores={
                    c: float(p)
                    for c, p in zip(scores.classes, scores.probabilities[i], strict=True)
                },
                picked=any(s.start < end and start < s.end for s in segments),
                damaged=float(scores.damaged[i]),
            )
        )
    return records


class ResultsStore(Protocol):
    def put(self, records: Sequence[WindowRecord]) -> None:
        """Insert or replace records, keyed by (match_id, start_ms)."""

    def replace_match(self, match_id: str, records: Sequence[WindowRecord]) -> None:
        """Make `records` the match's whole set: its other windows are deleted."""

    def get(self, match_id: str) -> list[WindowRecord]:
        """All records of a match, in start order."""


def _check_one_match(match_id: str, records: Sequence[WindowRecord]) -> None:
    others = sorted({r.match_id for r in records} - {match_id})
    if others:
        raise ValueError(f"records of matches {others} given as the set of match {match_id!r}")


def _from_row(
    match_id: str,
    start_ms: int,
    end_ms: int,
    scores: dict[str, Any],
    picked: bool,
    damaged: Any = 0.0,
) -> WindowRecord:
    return WindowRecord(
        match_id=match_id,
        start=from_milliseconds(start_ms),
        end=from_milliseconds(end_ms),
        scores={name: float(value) for name, value in scores.items()},
        picked=bool(picked),
        damaged=float(damaged),
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    match_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    scores TEXT NOT NULL,
    picked INTEGER NOT NULL,
    damaged REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (match_id, start_ms)
)
"""

# Files made before windows recorded damage lack the column; their windows were all whole.
_ADD_DAMAGED = "ALTER TABLE windows ADD COLUMN damaged REAL NOT NULL DEFAULT 0"

_UPSERT = """
INSERT INTO windows (match_id, start_ms, end_ms, scores, picked, damaged) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (match_id, start_ms) DO UPDATE SET
    end_ms = excluded.end_ms, scores = excluded.scores, picked = excluded.picked,
    damaged = excluded.damaged
"""


class SQLiteResults:
    """Results in a SQLite file (created with its table if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path)
        try:
            connection.execute(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(windows)")}
            if "damaged" not in columns:
                connection.execute(_ADD_DAMAGED)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise InputError(f"{self.path}: not a usable SQLite results database: {exc}") from None
        return connection

    def put(self, records: Sequence[WindowRecord]) -> None:
        self._write(records, replacing=None)

    def replace_match(self, match_id: str, records: Sequence[WindowRecord]) -> None:
        _check_one_match(match_id, records)
        self._write(records, replacing=match_id)

    def _write(self, records: Sequence[WindowRecord], replacing: str | None) -> None:
        rows = [
            (
                r.match_id,
                r.start_ms,
                r.end_ms,
                json.dumps(r.scores, allow_nan=False),
                int(r.picked),
                r.damaged,
            )
            for r in records
        ]
        connection = self._connect()
        try:
            with connection:  # one transaction: all records or none, the old set gone or not
                if replacing is not None:
                    connection.execute("DELETE FROM windows WHERE match_id = ?", (replacing,))
                connection.executemany(_UPSERT, rows)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: could not write results: {exc}") from None
        finally:
            connection.close()

    def get(self, match_id: str) -> list[WindowRecord]:
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT start_ms, end_ms, scores, picked, damaged FROM windows "
                "WHERE match_id = ? ORDER BY start_ms",
                (match_id,),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: could not read results: {exc}") from None
        finally:
            connection.close()
        return [_from_row(match_id, s, e, json.loads(scores), p, d) for s, e, scores, p, d in rows]


def dynamodb_item(record: WindowRecord) -> dict[str, Any]:
    """The item: match_id S, start_ms N, end_ms N, scores M of N, picked BOOL, damaged N."""
    # boto3 is in the `aws` extra only, so the local pipeline never imports it.
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    plain = {
        "match_id": record.match_id,
        "start_ms": record.start_ms,
        "end_ms": record.end_ms,
        # repr() of a float round-trips exactly through Decimal
        "scores": {k: Decimal(repr(float(v))) for k, v in record.scores.items()},
        "picked": record.picked,
        "damaged": Decimal(repr(float(record.damaged))),
    }
    return {name: serializer.serialize(value) for name, value in plain.items()}


def _from_item(item: dict[str, Any]) -> WindowRecord:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    plain = {name: deserializer.deserialize(value) for name, value in item.items()}
    return _from_row(
        plain["match_id"],
        int(plain["start_ms"]),
        int(plain["end_ms"]),
        plain["scores"],
        plain["picked"],
        plain.get("damaged", 0),  # items written before damage was recorded have none
    )


class DynamoDBResults:
    """Results in a DynamoDB table keyed by match_id (S, partition) and start_ms (N, sort).

    `client` is a low-level boto3 DynamoDB client (`boto3.client("dynamodb")`).
    """

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    def create_table(self) -> None:
        """Create the table, billed on demand (on AWS Terraform creates it; tests call this)."""
        self.client.create_table(
            TableName=self.table_name,
            KeySchema=[
                {"AttributeName": "match_id", "KeyType": "HASH"},
                {"AttributeName": "start_ms", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "match_id", "AttributeType": "S"},
                {"AttributeName": "start_ms", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client.get_waiter("table_exists").wait(TableName=self.table_name)

    def put(self, records: Sequence[WindowRecord]) -> None:
        from boto3.dynamodb.table import BatchWriter

        # overwrite_by_pkeys drops an earlier duplicate key inside one batch, which
        # BatchWriteItem would otherwise reject.
        writer = BatchWriter(
            self.table_name, self.client, overwrite_by_pkeys=["match_id", "start_ms"]
        )
        with self._errors("write"), writer:
            for record in records:
                writer.put_item(Item=dynamodb_item(record))

    def replace_match(self, match_id: str, records: Sequence[WindowRecord]) -> None:
        """Write the new set, then delete the match's other windows (see the module's note)."""
        _check_one_match(match_id, records)
        with self._errors("read"):
            earlier = {
                int(item["start_ms"]["N"])
                for page in self._query(match_id, ProjectionExpression="start_ms")
                for item in page.get("Items", [])
            }
        self.put(records)
        stale = sorted(earlier - {r.start_ms for r in records})
        from boto3.dynamodb.table import BatchWriter

        # BatchWriter sends 25 requests per BatchWriteItem and re-sends unprocessed ones.
        writer = BatchWriter(self.table_name, self.client)
        with self._errors("write"), writer:
            for start_ms in stale:
                writer.delete_item(
                    Key={"match_id": {"S": match_id}, "start_ms": {"N": str(start_ms)}}
                )

    def get(self, match_id: str) -> list[WindowRecord]:
        with self._errors("read"):
            return [
                _from_item(item) for page in self._query(match_id) for item in page.get("Items", [])
            ]

    def _query(self, match_id: str, **extra: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("query")
        return paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="match_id = :m",
            ExpressionAttributeValues={":m": {"S": match_id}},
            ScanIndexForward=True,
            **extra,
        )

    @contextlib.contextmanager
    def _errors(self, verb: str) -> Iterator[None]:
        """A missing table becomes our own error naming it; other AWS errors pass unchanged."""
        try:
            yield
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code != "ResourceNotFoundException":
                raise
            raise ConfigError(
                f"DynamoDB table {self.table_name!r} not found: cannot {verb} results "
                "(check the results_table setting)"
            ) from None
