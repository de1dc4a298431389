"""The bodies of the dispatcher DAGs' tasks: which pipeline runs to start, which failed inputs to
park, which queue messages to delete. Clients and the run-state lookup are passed in.

Every input (a video in the watched folder, a version of an S3 upload) has deterministic run ids:
`local__<id>` / `upload__<match id>` for its first attempt, `...__try<n>` for the n-th. Starting a
run that exists already is skipped by Airflow, so a dispatcher that sees an input twice (a
re-delivered message, a second pass over the folder) never starts it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from highlights.aws.claims import S3Claims
from highlights.aws.uploads import Ack, Upload, upload_run_id
from highlights.claims import Claim, next_step
from highlights.errors import QueueError
from highlights.local.inbox import LocalInbox
from highlights.matches import is_video_key

log = logging.getLogger(__name__)

RunState = Callable[[str], "str | None"]
SQS_BATCH = 10  # DeleteMessageBatch takes at most ten entries


def trigger_kwargs(run_id: str, conf: dict[str, Any], note: str) -> dict[str, Any]:
    """One mapped `TriggerDagRunOperator`'s arguments."""
    return {"trigger_run_id": run_id, "conf": conf, "note": note}


def dispatch_inbox(inbox: LocalInbox, run_state: RunState, max_attempts: int) -> list[dict]:
    """One pass over the watched folder: the runs to start; parks videos that failed too often."""
    if not inbox.incoming.is_dir():
        inbox.incoming.mkdir(parents=True)
        log.warning("%s: created the watched folder; drop videos here", inbox.incoming)
    requests = []
    for video in inbox.settled():
        claim = inbox.claims.read(video.name)
        step = next_step(claim, video.fresh_claim(), video.first_run_id, run_state, max_attempts)
        if step.action == "park" and step.claim is not None:
            parked = inbox.park(video, step.claim)
            log.warning(
                "%s: failed %d times, moved to %s (errors in %s.error.txt); last error: %s",
                video.name,
                step.claim.failures,
                parked,
                parked.name,
                step.claim.last_error or "none recorded",
            )
        elif step.action == "trigger" and step.run_id:
            if step.claim is not None:
                inbox.claims.write(video.name, step.claim)
                log.warning("%s: run failed; retrying as %s", video.name, step.run_id)
            requests.append(trigger_kwargs(step.run_id, video.conf(), video.note()))
    return requests


@dataclass(frozen=True)
class UploadPlan:
    """What the dispatcher does for a list of uploads."""

    requests: list[dict]  # runs to start (mapped TriggerDagRunOperator arguments)
    required: dict[str, str]  # match id -> the run that must exist before its message goes


def dispatch_uploads(
    uploads: Iterable[Upload],
    claims: S3Claims,
    run_state: RunState,
    max_attempts: int,
    claimed: set[str] | None = None,
) -> UploadPlan:
    """The runs to start for these uploads; marks uploads that failed too often as failed.

    `claimed`, when given, is the set of match ids that have a claim record (one LIST), so
    unclaimed uploads cost no GET.
    """
    plan = UploadPlan(requests=[], required={})
    for upload in uploads:
        match = upload.match
        claim = None
        if claimed is None or match.match_id in claimed:
            claim = claims.read(match.match_id)
        fresh = Claim(input=upload.location, version=match.etag)
        step = next_step(claim, fresh, upload_run_id(match), run_state, max_attempts)
        if step.action == "park" and step.claim is not None:
            marker = claims.park(match.match_id, step.claim)
            log.warning(
                "%s: failed %d times; marked failed in %s (the upload is kept); last error: %s",
                upload.location,
                step.claim.failures,
                marker,
                step.claim.last_error or "none recorded",
            )
        elif step.action in ("trigger", "wait") and step.run_id:
            # A run that exists is asked for again all the same: its trigger is skipped, which
            # shows a duplicate message in the UI for what it is.
            plan.required[match.match_id] = step.run_id
            if step.claim is not None:
                claims.write(match.match_id, step.claim)
                log.warning("%s: run failed; retrying as %s", upload.location, step.run_id)
            plan.requests.append(trigger_kwargs(step.run_id, upload.conf(), upload.note()))
    return plan


def list_uploads(s3: Any, bucket: str, prefix: str) -> list[Upload]:
    """Every video under the input prefix, as the sweep sees them (one LIST, paginated)."""
    paginator = s3.get_paginator("list_objects_v2")
    return [
        Upload(bucket=bucket, key=item["Key"], etag=item["ETag"].strip('"'), size=item["Size"])
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if is_video_key(item["Key"])
    ]


def acks_with_runs(acks: Sequence[Ack], required: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each message with the runs that must exist before it is deleted (JSON, for XCom)."""
    return [
        {
            "message_id": ack.message_id,
            "receipt_handle": ack.receipt_handle,
            "run_ids": [required[m] for m in ack.match_ids if m in required],
        }
        for ack in acks
    ]


def delete_messages(
    sqs: Any, queue_url: str, acks: Sequence[Mapping[str, Any]], run_exists: Callable[[str], bool]
) -> int:
    """Delete every message whose runs all exist; raise naming the ones left in the queue.

    A message left behind becomes visible again after the visibility timeout and is dispatched
    again (its runs are then skipped as existing); after the queue's maxReceiveCount receives
    it goes to the dead-letter queue, and the hourly sweep still finds its upload.
    """
    ready = [a for a in acks if all(run_exists(r) for r in a["run_ids"])]
    missing = [a["message_id"] for a in acks if a not in ready]
    failed: list[str] = []
    for start in range(0, len(ready), SQS_BATCH):
        entries = [
            {"Id": str(index), "ReceiptHandle": ack["receipt_handle"]}
            for index, ack in enumerate(ready[start : start + SQS_BATCH])
        ]
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            ack = ready[start + int(failure["Id"])]
            failed.append(f"{ack['message_id']} ({failure.get('Code')}: {failure.get('Message')})")
    deleted = len(ready) - len(failed)
    if missing or failed:
        problems = []
        if missing:
            problems.append(f"kept {', '.join(missing)}: their runs were not started")
        if failed:
            problems.append(f"could not delete {', '.join(failed)}")
        raise QueueError(
            f"{queue_url}: deleted {deleted} of {len(acks)} messages; {'; '.join(problems)}. "
            "They come back after the visibility timeout and are dispatched again."
        )
    return deleted
