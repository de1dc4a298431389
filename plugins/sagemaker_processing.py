"""A SageMaker Processing operator that starts a named job at most once.

The provider's operator, on finding a job of the same name, either fails or starts a second job
with a timestamped name. Our job names come from the match id, so an existing job *is* this
task's job from an earlier try: reuse it when it completed or is still running, and start a new
(timestamped) one only when the earlier one failed or was stopped.

Every wait, for a new job or an adopted one, lasts as long as the job may run: its
`StoppingCondition.MaxRuntimeInSeconds` plus a margin (`max_wait_seconds`). The provider's
default (60 polls) gives up after 30 minutes on a job allowed three hours.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerProcessingOperator,
    serialize,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.sdk.exceptions import AirflowException
from aws_links import MatchResultsLink, SageMakerProcessingJobLink

from highlights.aws.sagemaker_jobs import max_wait_seconds


class SageMakerProcessingOnceOperator(SageMakerProcessingOperator):
    """`SageMakerProcessingOperator` that adopts an earlier try's job of the same name."""

    template_fields = (
        *SageMakerProcessingOperator.template_fields,
        "results_url",
        "done_when_present",
    )
    operator_extra_links = (SageMakerProcessingJobLink(), MatchResultsLink())

    def __init__(
        self,
        *,
        results_url: str | None = None,
        done_when_present: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("action_if_job_exists", "timestamp")
        super().__init__(**kwargs)
        self.results_url = results_url  # s3:// folder of the match's results, for a UI link
        # s3:// key of what is made from the job's output: when it exists, no job is needed.
        self.done_when_present = done_when_present

    def execute(self, context: Any) -> dict:
        self._wait_as_long_as_the_job_may_run()
        name = self.config["ProcessingJobName"]
        if self.done_when_present and self._present(self.done_when_present):
            self.log.info("%s exists: job %s is not needed", self.done_when_present, name)
            return {"Processing": {"ProcessingJobName": name, "ProcessingJobStatus": "NotNeeded"}}
        earlier = self._describe_or_none(name)
        if earlier is None or earlier["ProcessingJobStatus"] in ("Failed", "Stopped"):
            return super().execute(context)
        if earlier["ProcessingJobStatus"] == "Completed" and not self._outputs_present(earlier):
            self.log.info("Job %s completed but its outputs are gone: running it again", name)
            return super().execute(context)
        self.log.info(
            "Processing job %s exists (%s): reusing it", name, earlier["ProcessingJobStatus"]
        )
        if earlier["ProcessingJobStatus"] == "Completed":
            return {"Processing": serialize(earlier)}
        if not self.deferrable:
            self.hook.check_status(
                name,
                "ProcessingJobStatus",
                self.hook.describe_processing_job,
                self.check_interval,
                self.max_ingestion_time,
            )
            return {"Processing": serialize(self.hook.describe_processing_job(name))}
        self.defer(
            trigger=SageMakerTrigger(
                job_name=name,
                job_type="Processing",
                waiter_delay=self.check_interval,
                waiter_max_attempts=self.max_attempts,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.max_ingestion_time),
        )
        return {}

    def _wait_as_long_as_the_job_may_run(self) -> None:
        wait = max_wait_seconds(self.config)
        self.max_ingestion_time = wait
        self.max_attempts = math.ceil(wait / max(1, self.check_interval))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict:
        validated = validate_execute_complete_event(event)
        if validated["status"] != "success":
            name = validated.get("job_name") or self.config["ProcessingJobName"]
            job = self._describe_or_none(name) or {}
            reason = job.get("FailureReason") or validated.get("message") or validated
            raise AirflowException(f"SageMaker processing job {name} failed: {reason}")
        return super().execute_complete(context, event)

    def _present(self, url: str) -> bool:
        """Whether an object exists at the s3:// key, or under it when it ends in '/'."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, _, key = url.removeprefix("s3://").partition("/")
        s3 = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).get_conn()
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents") or []
        return any(item["Key"] == key or key.endswith("/") for item in listed)

    def _outputs_present(self, job: dict[str, Any]) -> bool:
        outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        uris = [o["S3Output"]["S3Uri"] for o in outputs if o.get("S3Output")]
        return all(self._present(uri if uri.endswith("/") else f"{uri}/") for uri in uris)

    def _describe_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.describe_processing_job(name)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ValidationException":
                return None
            raise
