"""
### AWS backend: one highlights run per upload, from the SQS upload queue

The input bucket notifies the upload queue of every new object under `input_prefix`. This DAG
waits for messages (deferrable `SqsSensor`, no worker slot held), turns them into one run of
`highlights_pipeline` per uploaded video with the run id `upload__<match id>` (match id from
key and ETag) and a note with the file's name, size and location, and deletes the messages
only once those runs exist. Test events and anything that is not a video upload are deleted
and logged.

Delivery is at least once: a message is deleted after its run exists, so a crash in between
delivers it again, and the second trigger is skipped because the run id exists. Received
messages stay hidden for `upload_visibility_seconds`; one that keeps failing moves to the
dead-letter queue after the queue's `maxReceiveCount` receives. `highlights_upload_sweep`
catches every upload whose message was lost, and retries failed runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dispatch_steps
import highlights_steps as steps
from airflow.providers.amazon.aws.sensors.sqs import SqsSensor
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.task.trigger_rule import TriggerRule
from highlights_airflow import (
    AWS_CONN,
    aws,
    aws_var,
    client,
    dispatch,
    pipeline_run_state,
    s3,
    start_match_runs,
)

from highlights.aws.uploads import uploads_from_messages

SETTINGS = dispatch()
WAIT_TASK = "wait_for_uploads"


def _run_state(ti: Any) -> dispatch_steps.RunState:
    return lambda run_id: pipeline_run_state(ti, run_id)


@dag(
    dag_id="highlights_uploads",
    schedule="@continuous",
    max_active_runs=1,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    is_paused_upon_creation=True,
    doc_md=__doc__,
    tags=["highlights", "dispatcher", "aws"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
)
def highlights_uploads() -> None:
    wait = SqsSensor(
        task_id=WAIT_TASK,
        sqs_queue=aws_var("upload_queue_url"),
        max_messages=10,
        wait_time_seconds=20,
        visibility_timeout=SETTINGS.upload_visibility_seconds,
        delete_message_on_reception=False,
        deferrable=True,
        poke_interval=5,
        timeout=24 * 3600,
        soft_fail=True,
        aws_conn_id=AWS_CONN,
        region_name=aws_var("region"),
        doc_md="Waits (in the triggerer) for up to ten upload messages; deletes none of them.",
    )

    @task
    def plan_runs(ti: Any = None) -> list[dict]:
        """The runs to start for the received uploads; what each message waits for goes to
        the XCom `acks`."""
        settings = aws()
        messages = ti.xcom_pull(task_ids=WAIT_TASK, key="messages") or []
        batch = uploads_from_messages(messages, settings.input_bucket, settings.input_prefix)
        for reason in batch.dropped:
            dispatch_steps.log.info("ignored: %s", reason)
        plan = dispatch_steps.dispatch_uploads(
            batch.uploads,
            steps.upload_claims(s3(), settings),
            _run_state(ti),
            SETTINGS.max_attempts,
        )
        ti.xcom_push(key="acks", value=dispatch_steps.acks_with_runs(batch.acks, plan.required))
        return plan.requests

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def delete_messages(ti: Any = None) -> int:
        """Delete each message once every run it asked for exists (batch delete, failures
        checked); the others come back after the visibility timeout."""
        acks = ti.xcom_pull(task_ids="plan_runs", key="acks")
        if acks is None:
            raise AirflowSkipException("no messages were planned")
        return dispatch_steps.delete_messages(
            client("sqs"),
            aws().upload_queue_url,
            acks,
            lambda run_id: pipeline_run_state(ti, run_id) is not None,
        )

    runs = plan_runs()
    wait >> runs
    delete = delete_messages()
    start_match_runs(runs) >> delete
    runs >> delete


@dag(
    dag_id="highlights_upload_sweep",
    schedule="@hourly",
    max_active_runs=1,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    is_paused_upon_creation=True,
    doc_md="""
### AWS backend: hourly catch-up over the input prefix

Lists every video under `input_prefix` and starts a run for each one that has none yet (its
message was lost, or went to the dead-letter queue), with the same run ids as
`highlights_uploads`, so uploads it already started are skipped. It also retries uploads whose
run failed (`upload__<match id>__try2`, ...), and after `max_attempts` failed runs marks the
upload failed: `highlights/<match id>/failed.json` beside its outputs, with the error. The
upload itself is never deleted.
""",
    tags=["highlights", "dispatcher", "aws"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
)
def highlights_upload_sweep() -> None:
    @task
    def find_unfinished_uploads(ti: Any = None) -> list[dict]:
        """Uploads with no run yet, and retries of failed ones; parks those failed too often."""
        settings, client_s3 = aws(), s3()
        uploads = dispatch_steps.list_uploads(
            client_s3, settings.input_bucket, settings.input_prefix
        )
        plan = dispatch_steps.dispatch_uploads(
            uploads,
            steps.upload_claims(client_s3, settings),
            _run_state(ti),
            SETTINGS.max_attempts,
            claimed=steps.claimed_match_ids(client_s3, settings),
        )
        return plan.requests

    start_match_runs(find_unfinished_uploads())


highlights_uploads()
highlights_upload_sweep()
