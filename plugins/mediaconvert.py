"""AWS Elemental MediaConvert for Airflow: hook, create-job operator and trigger.

The Amazon provider has no MediaConvert support. Since 2024 MediaConvert accepts requests on
its regional endpoint (`DescribeEndpoints` is deprecated), so the hook uses the regional
endpoint unless an account endpoint is given (`mediaconvert_endpoint` in the `highlights_aws`
Variable) or the connection's `service_config.mediaconvert.endpoint_url` names one.

Waiting is deferrable: the operator hands the job id to `MediaConvertJobTrigger`,
which polls `GetJob` from the triggerer and frees the worker slot meanwhile.

Each job is submitted once. MediaConvert dedupes a `ClientRequestToken` for one minute only
("If you reuse a client request token within one minute of a successful request, the API
returns the job details of the original request", API reference, Idempotency), so a task
retried minutes later would start a second job. Before CreateJob the operator therefore looks
for the job an earlier try made: every job carries `UserMetadata["request"]`, a digest of the
match, purpose and settings, and `ListJobs` (newest first, back to `lookback`) finds it. A job
still running or complete is adopted; only a failed one is submitted again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async
from aws_links import MEDIACONVERT_JOB_XCOM, MatchResultsLink, MediaConvertJobLink

from highlights.aws.mediaconvert import client_request_token, request_key

DONE_STATES = ("COMPLETE",)
FAILED_STATES = ("ERROR", "CANCELED")


class MediaConvertJobFailed(AirflowException):
    """A MediaConvert job ended in ERROR or CANCELED; the message is MediaConvert's."""


class MediaConvertHook(AwsBaseHook):
    """boto3 `mediaconvert` client from an Airflow AWS connection."""

    def __init__(self, *args: Any, endpoint_url: str | None = None, **kwargs: Any) -> None:
        kwargs["client_type"] = "mediaconvert"
        super().__init__(*args, **kwargs)
        self.endpoint_url = endpoint_url or None

    def get_client_type(
        self, region_name: str | None = None, config: Any = None, deferrable: bool = False
    ) -> Any:
        if not self.endpoint_url:
            return super().get_client_type(region_name, config, deferrable)
        session = self.get_session(region_name=region_name)
        return session.client(
            "mediaconvert",
            endpoint_url=self.endpoint_url,
            config=self._get_config(config),
            verify=self.verify,
        )

    def create_job(
        self,
        settings: dict[str, Any],
        role_arn: str,
        token: str,
        user_metadata: dict[str, str] | None = None,
        queue: str | None = None,
    ) -> dict[str, Any]:
        """Submit a job; the same `token` returns the job already made instead of a second one."""
        request: dict[str, Any] = {
            "Role": role_arn,
            "Settings": settings,
            "ClientRequestToken": token,
            "UserMetadata": dict(user_metadata or {}),
        }
        if queue:
            request["Queue"] = queue
        return self.conn.create_job(**request)["Job"]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.conn.get_job(Id=job_id)["Job"]

    def jobs_for_request(
        self, key: str, since: datetime, queue: str | None = None
    ) -> list[dict[str, Any]]:
        """Jobs of `queue` (default: Default) created since `since` whose
        `UserMetadata["request"]` is `key`, newest first."""
        queue = queue or "Default"
        found = []
        params: dict[str, Any] = {"MaxResults": 20, "Order": "DESCENDING", "Queue": queue}
        while True:
            page = self.conn.list_jobs(**params)
            for job in page.get("Jobs") or []:
                created = job.get("CreatedAt")
                if created is not None and created < since:
                    return found
                if (job.get("UserMetadata") or {}).get("request") == key:
                    found.append(job)
            if not page.get("NextToken"):
                return found
            params["NextToken"] = page["NextToken"]

    def probe(self, url: str) -> dict[str, Any]:
        """MediaConvert's `Probe` of one file (duration, frame rate, tracks)."""
        return self.conn.probe(InputFiles=[{"FileUrl": url}])


def job_outcome(job: dict[str, Any]) -> bool:
    """True when the job is COMPLETE, False while it runs; raises with its message on failure."""
    status = job.get("Status")
    if status in DONE_STATES:
        return True
    if status in FAILED_STATES:
        raise MediaConvertJobFailed(failure_message(job))
    return False


def failure_message(job: dict[str, Any]) -> str:
    reason = job.get("ErrorMessage") or "no error message"
    code = f" (code {job['ErrorCode']})" if job.get("ErrorCode") else ""
    return f"MediaConvert job {job.get('Id')} ended {job.get('Status')}{code}: {reason}"


class MediaConvertJobTrigger(BaseTrigger):
    """Polls a MediaConvert job until it leaves SUBMITTED/PROGRESSING."""

    def __init__(
        self,
        job_id: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        endpoint_url: str | None = None,
        poll_interval: float = 15.0,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.endpoint_url = endpoint_url
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "endpoint_url": self.endpoint_url,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = MediaConvertHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
        )
        get_job = sync_to_async(hook.get_job)
        while True:
            job = await get_job(self.job_id)
            status = job.get("Status")
            if status in DONE_STATES:
                yield TriggerEvent(
                    {"status": "success", "job_id": self.job_id, "job": _summary(job)}
                )
                return
            if status in FAILED_STATES:
                yield TriggerEvent(
                    {"status": "error", "job_id": self.job_id, "message": failure_message(job)}
                )
                return
            self.log.info("MediaConvert job %s is %s", self.job_id, status)
            await asyncio.sleep(self.poll_interval)


class MediaConvertCreateJobOperator(BaseOperator):
    """Submit a MediaConvert job from a settings dict and wait until it is COMPLETE.

    Idempotent: the ClientRequestToken is derived from `match_id` and `purpose`, so a retried
    task gets back the job it already submitted. Returns a summary of the finished job.
    """

    template_fields: Sequence[str] = (
        "settings",
        "role_arn",
        "match_id",
        "purpose",
        "endpoint_url",
        "region_name",
        "job_queue",
        "results_url",
        "skip_when_present",
    )
    template_fields_renderers = {"settings": "json"}
    ui_color = "#f6a04d"
    operator_extra_links = (MediaConvertJobLink(), MatchResultsLink())

    def __init__(
        self,
        *,
        settings: dict[str, Any],
        role_arn: str,
        match_id: str,
        purpose: str,
        job_queue: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        endpoint_url: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = True,
        poll_interval: float = 15.0,
        max_wait: timedelta = timedelta(hours=6),
        lookback: timedelta | None = None,
        results_url: str | None = None,
        skip_when_present: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # s3:// key or prefix: when something is there, the job's work is already done (its
        # outputs, or what was made from them) and no job is submitted.
        self.skip_when_present = skip_when_present
        # How far back ListJobs looks for an earlier try's job; default: the longest wait.
        self.lookback = lookback or max_wait
        self.results_url = results_url  # s3:// folder of the match's results, for a UI link
        self.settings = settings
        self.role_arn = role_arn
        self.match_id = match_id
        self.purpose = purpose
        self.job_queue = job_queue
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.endpoint_url = endpoint_url
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_wait = max_wait

    def execute(self, context: Any) -> dict[str, Any]:
        if self.skip_when_present and _present(self.skip_when_present, self.aws_conn_id):
            self.log.info("%s exists: no %s job needed", self.skip_when_present, self.purpose)
            return {"id": None, "status": "NOT_NEEDED", "destinations": [], "durations_ms": [],
                    "user_metadata": {}}  # fmt: skip
        hook = self._hook()
        job = self._submit_once(hook)
        self.log.info("MediaConvert job %s (%s) is %s", job["Id"], self.purpose, job.get("Status"))
        region = self.region_name or hook.conn_region_name
        job_link = {"id": job["Id"], "region": region}
        context["ti"].xcom_push(key=MEDIACONVERT_JOB_XCOM, value=job_link)
        if not self.wait_for_completion or job_outcome(job):
            return _summary(job)
        if self.deferrable:
            self.defer(
                trigger=self._trigger(job["Id"]),
                method_name="execute_complete",
                timeout=self.max_wait,
            )
        return _summary(_poll(hook, job["Id"], self.poll_interval, self.max_wait))

    def _submit_once(self, hook: MediaConvertHook) -> dict[str, Any]:
        """The job an earlier try submitted for this request, unless it failed; else a new one."""
        key = request_key(self.match_id, self.purpose, self.settings)
        earlier = hook.jobs_for_request(key, datetime.now(UTC) - self.lookback, self.job_queue)
        live = [job for job in earlier if job.get("Status") not in FAILED_STATES]
        if live:
            self.log.info("Adopting MediaConvert job %s of an earlier try", live[0]["Id"])
            return live[0]
        return hook.create_job(
            self.settings,
            self.role_arn,
            client_request_token(key, attempt=len(earlier)),
            user_metadata={"match_id": self.match_id, "purpose": self.purpose, "request": key},
            queue=self.job_queue,
        )

    def _hook(self) -> MediaConvertHook:
        return MediaConvertHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
        )

    def _trigger(self, job_id: str) -> MediaConvertJobTrigger:
        return MediaConvertJobTrigger(
            job_id=job_id,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            poll_interval=self.poll_interval,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            raise MediaConvertJobFailed(event.get("message") or f"MediaConvert trigger: {event}")
        return event["job"]


def _present(url: str, aws_conn_id: str | None) -> bool:
    """Whether an object exists at the s3:// key, or under it when it ends in '/'."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket, _, key = url.removeprefix("s3://").partition("/")
    listed = (
        S3Hook(aws_conn_id=aws_conn_id)
        .get_conn()
        .list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    )
    return any(item["Key"] == key or key.endswith("/") for item in listed.get("Contents") or [])


def _poll(hook: MediaConvertHook, job_id: str, interval: float, max_wait: timedelta) -> dict:
    deadline = time.monotonic() + max_wait.total_seconds()
    while True:
        job = hook.get_job(job_id)
        if job_outcome(job):
            return job
        if time.monotonic() > deadline:
            raise AirflowException(f"MediaConvert job {job_id} not done after {max_wait}")
        time.sleep(interval)


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of a job that later tasks need (XCom cannot hold datetimes)."""
    outputs = [
        detail
        for group in job.get("OutputGroupDetails") or []
        for detail in group.get("OutputDetails") or []
    ]
    return {
        "id": job.get("Id"),
        "status": job.get("Status"),
        "destinations": [
            group.get("OutputGroupSettings", {}).get("FileGroupSettings", {}).get("Destination")
            for group in (job.get("Settings") or {}).get("OutputGroups") or []
        ],
        "durations_ms": [detail.get("DurationInMs") for detail in outputs],
        "user_metadata": job.get("UserMetadata") or {},
    }
