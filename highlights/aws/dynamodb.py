"""`ResultsStore` in DynamoDB: one item per window, keyed by match_id and start_ms.

DynamoDB has no atomicity across more items than one TransactWriteItems call takes (100), and a
match has thousands of windows: `replace_match` writes the new items first (batched,
unprocessed items retried), then deletes the stale ones, so a reader may briefly see the union
of both sets, and a run that dies in between leaves stale windows until the next run removes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from highlights.errors import ConfigError
from highlights.results import WindowRecord, check_one_match, record_from_row


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
    return record_from_row(
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
        check_one_match(match_id, records)
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
