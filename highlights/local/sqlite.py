"""`ResultsStore` in SQLite, a local file: one row per window; `replace_match` is one
transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from highlights.errors import InputError
from highlights.results import WindowRecord, check_one_match, record_from_row

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
        check_one_match(match_id, records)
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
        return [
            record_from_row(match_id, s, e, json.loads(scores), p, d)
            for s, e, scores, p, d in rows
        ]
