"""What the highlights DAGs read from Airflow: Variables, the `[highlights]` config section, AWS
clients from the `aws_default` connection, and the state of pipeline runs.

Shared by the pipeline DAG and the dispatcher DAGs; the task bodies themselves live in
`highlights_steps.py` and `dispatch_steps.py` and get these passed in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import highlights_steps as steps
from airflow.sdk import Variable, conf

PIPELINE_DAG_ID = "highlights_pipeline"
AWS_CONN = "aws_default"
SECTION = "highlights"  # [highlights] in airflow.cfg, or AIRFLOW__HIGHLIGHTS__<KEY>
# Pools that must exist (dags/pools.json): `airflow pools import dags/pools.json`.
MEDIACONVERT_POOL = "mediaconvert"
SAGEMAKER_POOL = "sagemaker"
CPU_POOL = "highlights_cpu"


def aws_var(key: str) -> str:
    """A template for one key of the `highlights_aws` Variable, rendered when the task runs."""
    return "{{ var.json.highlights_aws.%s }}" % key  # noqa: UP031 (braces of Jinja)


def dispatch() -> steps.DispatchSettings:
    """The `[highlights]` section of the Airflow configuration (read when a DAG file is parsed)."""
    default = steps.DispatchSettings()
    return steps.DispatchSettings(
        max_active_runs=conf.getint(SECTION, "max_active_runs", fallback=default.max_active_runs),
        max_attempts=conf.getint(SECTION, "max_attempts", fallback=default.max_attempts),
        inbox_poll_seconds=conf.getfloat(
            SECTION, "inbox_poll_seconds", fallback=default.inbox_poll_seconds
        ),
        upload_visibility_seconds=conf.getint(
            SECTION, "upload_visibility_seconds", fallback=default.upload_visibility_seconds
        ),
    )


def aws() -> steps.AwsSettings:
    return steps.aws_settings(Variable.get(steps.AWS_VARIABLE, default=None, deserialize_json=True))


def local() -> steps.LocalSettings:
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    variable = Variable.get(steps.LOCAL_VARIABLE, default=None, deserialize_json=True)
    return steps.local_settings(variable, home)


def backend(params: dict) -> str:
    return steps.choose_backend(params.get("backend"), Variable.get(steps.BACKEND_VARIABLE, None))


def targets(params: dict) -> list[str]:
    variable = Variable.get(steps.TARGETS_VARIABLE, default=None, deserialize_json=True)
    return steps.choose_targets(params.get("targets"), variable)


def s3() -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    # Signature Version 4: S3 refuses version-2 presigned links for buckets made since 2020.
    config = {"signature_version": "s3v4"}
    return S3Hook(aws_conn_id=AWS_CONN, region_name=aws().region, config=config).get_conn()


def s3_links() -> Any:
    """The S3 client that signs the email's links: the regional virtual-hosted endpoint."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from highlights.aws.s3 import link_client

    region = aws().region
    return link_client(S3Hook(aws_conn_id=AWS_CONN, region_name=region).get_session(), region)


def client(name: str) -> Any:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=AWS_CONN, client_type=name, region_name=aws().region).conn


def start_match_runs(requests: Any) -> Any:
    """One `highlights_pipeline` run per request (mapped `TriggerDagRunOperator`); a request for
    a run id that exists is skipped, so an input seen twice never starts twice."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    return TriggerDagRunOperator.partial(
        task_id="start_match_run",
        trigger_dag_id=PIPELINE_DAG_ID,
        logical_date=None,
        skip_when_already_exists=True,
        map_index_template="{{ task.trigger_run_id }}",
        doc_md="One `highlights_pipeline` run per input; skipped if that run exists already.",
    ).expand_kwargs(requests)


def pipeline_run_state(ti: Any, run_id: str) -> str | None:
    """State of the pipeline run `run_id` (`queued`, `running`, `success`, `failed`), None if
    there is no such run. Asked through the task's own Execution API (a task has no database)."""
    if not ti.get_dr_count(dag_id=PIPELINE_DAG_ID, run_ids=[run_id]):
        return None
    state = ti.get_dagrun_state(dag_id=PIPELINE_DAG_ID, run_id=run_id)
    return str(getattr(state, "value", state))  # an Enum of the Execution API's model
