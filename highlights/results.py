"""Per-window results of a match: one record per window, kept in SQLite locally or DynamoDB on AWS.

Both stores key a record by (match_id, start_ms), so writing the same match again updates its
windows in place instead of adding copies. Times are stored as whole milliseconds.
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
from highlights.windows import WindowScores


@dataclass(frozen=True)
class WindowRecord:
    """One scored window of one match, and whether it lies in a detected highlight."""

    match_id: str
    start: float  # seconds
    end: float  # seconds
    scores: dict[str, float]  # class name -> probability
    picked: bool

    @property
    def start_ms(self) -> int:
        return round(self.start * 1000)

    @property
    def end_ms(self) -> int:
        return round(self.end * 1000)


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
            )
        )
    return records


class ResultsStore(Protocol):
    def put(self, records: Sequence[WindowRecord]) -> None:
        """Insert or replace records, keyed by (match_id, start_ms)."""

    def get(self, match_id: str) -> list[WindowRecord]:
        """All records of a match, in start order."""


def _from_row(
    match_id: str, start_ms: int, end_ms: int, scores: dict[str, Any], picked: bool
) -> WindowRecord:
    return WindowRecord(
        match_id=match_id,
        start=start_ms / 1000,
        end=end_ms / 1000,
        scores={name: float(value) for name, value in scores.items()},
        picked=bool(picked),
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    match_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    scores TEXT NOT NULL,
    picked INTEGER NOT NULL,
    PRIMARY KEY (match_id, start_ms)
)
"""

_UPSERT = """
INSERT INTO windows (match_id, start_ms, end_ms, scores, picked) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (match_id, start_ms) DO UPDATE SET
    end_ms = excluded.end_ms, scores = excluded.scores, picked = excluded.picked
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
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise InputError(f"{self.path}: not a usable SQLite results database: {exc}") from None
        return connection

    def put(self, records: Sequence[WindowRecord]) -> None:
        rows = [
            (
                r.match_id,
                r.start_ms,
                r.end_ms,
                json.dumps(r.scores, allow_nan=False),
                int(r.picked),
            )
            for r in records
        ]
        connection = self._connect()
        try:
            with connection:  # one transaction: all records or none
                connection.executemany(_UPSERT, rows)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: could not write results: {exc}") from None
        finally:
            connection.close()

    def get(self, match_id: str) -> list[WindowRecord]:
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT start_ms, end_ms, scores, picked FROM windows WHERE match_id = ? "
                "ORDER BY start_ms",
                (match_id,),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: could not read results: {exc}") from None
        finally:
            connection.close()
        return [_from_row(match_id, s, e, json.loads(scores), p) for s, e, scores, p in rows]


def dynamodb_item(record: WindowRecord) -> dict[str, Any]:
    """The item for one record: match_id S, start_ms N, end_ms N, scores M of N, picked BOOL."""
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

    def get(self, match_id: str) -> list[WindowRecord]:
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="match_id = :m",
            ExpressionAttributeValues={":m": {"S": match_id}},
            ScanIndexForward=True,
        )
        with self._errors("read"):
            return [_from_item(item) for page in pages for item in page.get("Items", [])]

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
