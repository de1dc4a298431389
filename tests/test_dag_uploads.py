"""The SQS dispatcher under real Airflow (`dag.test()`), against a local moto server.

The input bucket is configured to notify the queue, so the messages are the S3 event JSON moto
itself sends (including the `s3:TestEvent` sent when the notification is configured). The
dispatcher's triggered pipeline runs are only queued here; `test_dag_aws.py` runs the pipeline.
Every S3 and SQS request (boto3 and the triggerer's aiobotocore) is validated in full against its
botocore model (`tests/aws_strict.py`).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from highlights.matches import match_for_object
from tests import airflow_env
from tests.aws_strict import strict_aws

airflow_env.configure()

REGION = "us-east-1"
ACCOUNT = "123456789012"
INPUT, RESULTS = "upload-inbox", "upload-results"
PREFIX = "incoming/"
KEYS = ("incoming/cup final.mp4", "incoming/Derby ⚽ 2-1.mov", "incoming/league+cup.mkv")
VISIBILITY = 3  # seconds a received message stays hidden in these tests


class Queue:
    """A moto world: the input bucket notifying the upload queue, and the results bucket."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.s3 = session.client("s3", endpoint_url=endpoint)
        self.sqs = session.client("sqs", endpoint_url=endpoint)
        for bucket in (INPUT, RESULTS):
            self.s3.create_bucket(Bucket=bucket)
        self.url = self.sqs.create_queue(QueueName="uploads")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.s3.put_bucket_notification_configuration(
            Bucket=INPUT,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "match-uploaded",
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": PREFIX}]}},
                    }
                ]
            },
        )
        self.variable = {
            "region": REGION,
            "input_bucket": INPUT,
            "input_prefix": PREFIX,
            "work_bucket": "unused-work",
            "highlights_bucket": RESULTS,
            "results_table": "unused",
            "upload_queue_url": self.url,
            "mediaconvert_role_arn": f"arn:aws:iam::{ACCOUNT}:role/mediaconvert",
            "sagemaker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
            "processing_image_uri": "image",
            "model_data_uri": "s3://unused-work/model/",
            "sender_email": "highlights@example.com",
            "recipient_emails": ["coach@example.com"],
        }
        self.fail_next_delete = False
        self.requests: Any = None  # the strict RequestLog, set by the fixture

    def upload(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=INPUT, Key=key, Body=body)
        etag = self.s3.head_object(Bucket=INPUT, Key=key)["ETag"]
        return match_for_object(key, etag).match_id

    def messages_in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def peek(self) -> list[dict]:
        """Every message in the queue, left visible."""
        return self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])

    def corrupt_receipts_once(self, params: dict, **_: Any) -> None:
        """botocore hook: the next DeleteMessageBatch fails for every entry (stale receipts),
        answered by moto with a partial-failure response as SQS does."""
        if self.fail_next_delete:
            self.fail_next_delete = False
            for entry in params["Entries"]:
                entry["ReceiptHandle"] += "-stale"


@pytest.fixture(scope="module")
def queue():
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    airflow_env.migrate()
    patch = pytest.MonkeyPatch()
    with airflow_env.moto_aws(patch, REGION) as endpoint:
        world = Queue(endpoint)
        airflow_env.set_variable(patch, "highlights_aws", world.variable)
        airflow_env.set_variable(patch, "highlights_backend", "aws")
        patch.setattr(AwsBaseHook, "get_client_type", _failing_deletes(world))
        try:
            with strict_aws() as requests:
                world.requests = requests
                yield world
        finally:
            patch.undo()


def _failing_deletes(world: Queue) -> Any:
    """`AwsBaseHook.get_client_type` whose SQS clients fail a delete when `world` asks."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    client_type = AwsBaseHook.get_client_type

    def with_failure_hook(self, region_name=None, config=None, deferrable=False):
        client = client_type(self, region_name, config, deferrable)
        if self.client_type == "sqs" and not deferrable:
            client.meta.events.register(
                "before-parameter-build.sqs.DeleteMessageBatch", world.corrupt_receipts_once
            )
        return client

    return with_failure_hook


def dispatch() -> Any:
    """One run of the SQS dispatcher, polling every second."""
    dag = airflow_env.load_dag("highlights_uploads")
    airflow_env.no_retries(dag)
    sensor = dag.get_task("wait_for_uploads")
    sensor.poke_interval, sensor.wait_time_seconds, sensor.visibility_timeout = 1, 1, VISIBILITY
    return dag.test()


def upload_runs() -> dict[str, Any]:
    return {
        run_id: run
        for run_id, run in airflow_env.dag_runs().items()
        if run.run_id.startswith("upload__")
        and run.conf.get("key", "").startswith(PREFIX)
        and (run.conf.get("key") in KEYS or run.conf.get("key", "").endswith("late.mp4"))
    }


@pytest.fixture(scope="module")
def first_batch(queue):
    """Three videos and a text file uploaded at once, then one dispatcher run."""
    match_ids = {key: queue.upload(key, f"video {key}".encode()) for key in KEYS}
    queue.upload(f"{PREFIX}notes.txt", b"not a video")
    bodies = [m["Body"] for m in queue.peek()]
    return dispatch(), match_ids, bodies


def test_the_queue_holds_what_s3_sent(first_batch):
    _, _, bodies = first_batch
    assert any(json.loads(b).get("Event") == "s3:TestEvent" for b in bodies)
    uploads = [json.loads(b) for b in bodies if "Records" in json.loads(b)]
    assert len(uploads) == 4  # three videos and the text file
    assert any("+" in u["Records"][0]["s3"]["object"]["key"] for u in uploads)  # URL-encoded


def test_three_uploads_start_three_runs_with_their_ids_conf_and_notes(queue, first_batch):
    dispatcher_run, match_ids, _ = first_batch
    assert str(dispatcher_run.state) == "success", airflow_env.task_states(dispatcher_run)
    runs = upload_runs()
    assert set(runs) == {f"upload__{match_ids[key]}" for key in KEYS}
    for key in KEYS:
        run = runs[f"upload__{match_ids[key]}"]
        etag = queue.s3.head_object(Bucket=INPUT, Key=key)["ETag"].strip('"')
        assert run.conf == {"backend": "aws", "key": key, "etag": etag}
        assert key.rsplit("/", 1)[1] in run.note
        assert f"s3://{INPUT}/{key}" in run.note
        assert "bytes" in run.note
    assert airflow_env.map_labels(dispatcher_run, "start_match_run") == sorted(runs)


def test_every_message_is_deleted_test_event_and_junk_included(queue, first_batch):
    states = airflow_env.task_states(first_batch[0])
    assert states["delete_messages"] == "success"
    assert queue.messages_in_queue() == 0
    [delete] = queue.requests.calls("sqs", "DeleteMessageBatch")
    assert len(delete.params["Entries"]) == 5  # test event, three videos, the text file


def test_messages_are_received_without_deletion_and_hidden_for_the_dispatch(queue, first_batch):
    receives = [
        r
        for r in queue.requests.calls("sqs", "ReceiveMessage")
        if r.params.get("VisibilityTimeout") == VISIBILITY
    ]
    assert receives and all(r.params["MaxNumberOfMessages"] == 10 for r in receives)
    assert queue.requests.calls("sqs", "DeleteMessage") == []  # only the checked batch delete


def test_a_resent_message_is_a_skipped_trigger(queue, first_batch):
    _, match_ids, bodies = first_batch
    cup = next(b for b in bodies if "cup+final" in b)
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=cup)
    again = dispatch()
    states = airflow_env.task_states(again)
    assert str(again.state) == "success", states
    assert states["start_match_run[0]"] == "skipped"
    assert len(upload_runs()) == 3
    assert queue.messages_in_queue() == 0


def test_an_ack_that_fails_once_is_redelivered_without_new_runs(queue, first_batch):
    late = f"{PREFIX}late.mp4"
    match_id = queue.upload(late, b"a late upload")
    queue.fail_next_delete = True
    failed = dispatch()
    states = airflow_env.task_states(failed)
    assert states["start_match_run[0]"] == "success"
    assert states["delete_messages"] == "failed"
    assert str(failed.state) == "failed"
    assert queue.messages_in_queue() == 1  # hidden for the visibility timeout, then back
    assert len(upload_runs()) == 4

    redelivered = dispatch()
    states = airflow_env.task_states(redelivered)
    assert str(redelivered.state) == "success", states
    assert states["start_match_run[0]"] == "skipped"
    assert set(upload_runs()) == {f"upload__{m}" for m in first_batch[1].values()} | {
        f"upload__{match_id}"
    }
    assert queue.messages_in_queue() == 0
