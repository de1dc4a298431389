"""Extra links on the AWS tasks: the job in the AWS console, and the match's results in S3.

Airflow 3 computes a task's extra links on the worker when the task ends and keeps them with the
task instance, so the links below read what the operators recorded while they ran: the
MediaConvert job (`mediaconvert_job` XCom), the SageMaker job's name (its return value, or the
requested name), and the operator's `results_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

MEDIACONVERT_JOB_XCOM = "mediaconvert_job"


def console(region: str, path: str) -> str:
    return f"https://{region}.console.aws.amazon.com/{path}"


def mediaconvert_job_url(region: str, job_id: str) -> str:
    return console(region, f"mediaconvert/home?region={region}#/jobs/summary/{job_id}")


def processing_job_url(region: str, name: str) -> str:
    return console(region, f"sagemaker/home?region={region}#/processing-jobs/{name}")


def s3_folder_url(region: str, url: str) -> str:
    """The S3 console's view of the folder `s3://bucket/prefix/`."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return console(region, f"s3/buckets/{bucket}?region={region}&prefix={quote(prefix)}")


class MediaConvertJobLink(BaseOperatorLink):
    name = "MediaConvert job"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        job = XCom.get_value(ti_key=ti_key, key=MEDIACONVERT_JOB_XCOM)
        return mediaconvert_job_url(job["region"], job["id"]) if job else ""


class SageMakerProcessingJobLink(BaseOperatorLink):
    name = "SageMaker processing job"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = XCom.get_value(ti_key=ti_key, key="return_value") or {}
        name = (result.get("Processing") or {}).get("ProcessingJobName")
        name = name or (operator.config or {}).get("ProcessingJobName")
        region = operator.region_name or operator.hook.conn_region_name
        return processing_job_url(region, name) if name and region else ""


class MatchResultsLink(BaseOperatorLink):
    name = "Match results (S3)"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        url = getattr(operator, "results_url", None)
        region = getattr(operator, "region_name", None)
        return s3_folder_url(region, url) if url and region else ""
