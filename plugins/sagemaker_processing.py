"""A SageMaker Processing operator that starts a named job at most once.

The provider's operator, on finding a job of the same name, either fails or starts a second job
with a timestamped name. Our job names come from the match id, so an existing job *is* this
task's job from an earlier try: reuse it when it completed or is still running, and start a new
(timestamped) one only when the earlier one failed or was stopped.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerProcessingOperator,
    serialize,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.sdk.exceptions import AirflowException
from aws_links import MatchResultsLink, SageMakerProcessingJobLink

RUNNING_STATES = ("InProgress", "Stopping")


class SageMakerProcessingOnceOperator(SageMakerProcessingOperator):
    """`SageMakerProcessingOperator` that adopts an earlier try's job of the same name."""

    template_fields = (*SageMakerProcessingOperator.template_fields, "results_url")
    operator_extra_links = (SageMakerProcessingJobLink(), MatchResultsLink())

    def __init__(self, *, results_url: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("action_if_job_exists", "timestamp")
        super().__init__(**kwargs)
        self.results_url = results_url  # s3:// folder of the match's results, for a UI link

    def execute(self, context: Any) -> dict:
        name = self.config["ProcessingJobName"]
        earlier = self._describe_or_none(name)
        if earlier is None or earlier["ProcessingJobStatus"] in ("Failed", "Stopped"):
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
        )
        return {}

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict:
        validated = validate_execute_complete_event(event)
        if validated["status"] != "success":
            name = validated.get("job_name") or self.config["ProcessingJobName"]
            job = self._describe_or_none(name) or {}
            reason = job.get("FailureReason") or validated.get("message") or validated
            raise AirflowException(f"SageMaker processing job {name} failed: {reason}")
        return super().execute_complete(context, event)

    def _describe_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.describe_processing_job(name)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ValidationException":
                return None
            raise
