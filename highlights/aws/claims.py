"""Claim records as S3 objects beside a match's results: `run.json`, and `failed.json` for
a parked upload."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from highlights.claims import Claim


class S3Claims:
    """Claim records as `<prefix><match id>/run.json` objects; `failed.json` marks a parked one."""

    RECORD = "run.json"
    FAILED_MARKER = "failed.json"

    def __init__(self, bucket: str, client: Any, prefix: str) -> None:
        self.bucket = bucket
        self.client = client
        self.prefix = prefix

    def key(self, match_id: str, name: str = RECORD) -> str:
        return f"{self.prefix}{match_id}/{name}"

    def read(self, match_id: str) -> Claim | None:
        key = self.key(match_id)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return Claim.from_json(body.decode("utf-8"), f"s3://{self.bucket}/{key}")

    def write(self, match_id: str, claim: Claim) -> None:
        self._put(self.key(match_id), claim.to_json())

    def park(self, match_id: str, claim: Claim) -> str:
        """Mark the upload failed: a marker with the error beside the match's outputs.

        The upload itself is the user's and stays where it is.
        """
        self.write(match_id, claim)
        marker = self.key(match_id, self.FAILED_MARKER)
        record = {
            "input": claim.input,
            "version": claim.version,
            "error": claim.last_error or "the runs failed without a recorded error",
            "attempts": [asdict(a) for a in claim.attempts],
        }
        self._put(marker, json.dumps(record, indent=1))
        return f"s3://{self.bucket}/{marker}"

    def _put(self, key: str, text: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/json"
        )
