"""The AWS operators' promises against strict simulated services: a MediaConvert job is submitted
once however late a task is retried, and a SageMaker wait lasts as long as the job may run.

MediaConvert is `tests/fake_mediaconvert.py` (its one-minute ClientRequestToken window runs on a
clock the test moves); S3 and SageMaker are moto. Every request is validated in full against its
botocore model (`strict_requests`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from highlights.aws.mediaconvert import clip_settings
from highlights.aws.sagemaker_jobs import ProcessingSettings, features_job, max_wait_seconds
from highlights.segments import Segment
from tests import airflow_env
from tests.fake_mediaconvert import TOKEN_WINDOW_SECONDS, FakeMediaConvert
from tests.media import make_video

airflow_env.configure()

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/mediaconvert"
BUCKET = "uploads"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TaskInstance:
    def xcom_push(self, key: str, value: object) -> None:
        pass


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("op") / "match.mp4", 2.0, size=(64, 48))


@pytest.fixture
def aws(aws_credentials, strict_requests, tmp_path, video, monkeypatch):
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(video), BUCKET, "in/match.mp4")
        clock = Clock()
        fake = FakeMediaConvert(s3, tmp_path / "mc", region=REGION, clock=clock)
        original = AwsBaseHook.get_client_type

        def route(self, *args, **kwargs):
            if self.client_type == "mediaconvert":
                return fake
            return original(self, *args, **kwargs)

        monkeypatch.setattr(AwsBaseHook, "get_client_type", route)
        yield s3, fake, clock


def clip_operator(**kwargs):
    import mediaconvert

    settings = clip_settings(
        f"s3://{BUCKET}/in/match.mp4", Segment(0.2, 1.0, 0.9, "Goal"), f"s3://{BUCKET}/c/clip",
        25.0, False,
    )  # fmt: skip
    return mediaconvert.MediaConvertCreateJobOperator(
        task_id="cut_clip", settings=settings, role_arn=ROLE, match_id="m-1", purpose="clip-000",
        region_name=REGION, aws_conn_id=None, deferrable=False, poll_interval=0, **kwargs,
    )  # fmt: skip


def test_a_retry_after_the_token_window_adopts_the_earlier_job(aws):
    _, fake, clock = aws
    first = clip_operator().execute({"ti": TaskInstance()})
    clock.now += 5 * TOKEN_WINDOW_SECONDS  # the retry comes minutes later
    again = clip_operator().execute({"ti": TaskInstance()})
    assert again["id"] == first["id"]
    assert len(fake.jobs) == 1


def test_a_failed_job_is_submitted_again(aws):
    _, fake, _ = aws
    import mediaconvert

    fake.fail["clip-000"] = "Unable to open input file"
    with pytest.raises(mediaconvert.MediaConvertJobFailed):
        clip_operator().execute({"ti": TaskInstance()})
    del fake.fail["clip-000"]
    done = clip_operator().execute({"ti": TaskInstance()})  # within the token's minute
    assert done["status"] == "COMPLETE"
    assert [job["Status"] for job in fake.jobs.values()] == ["ERROR", "COMPLETE"]


def test_changed_settings_are_a_new_job(aws):
    _, fake, _ = aws
    clip_operator().execute({"ti": TaskInstance()})
    changed = clip_operator()
    changed.settings["Inputs"][0]["InputClippings"][0]["EndTimecode"] = "00:00:01:10"
    changed.execute({"ti": TaskInstance()})
    assert len(fake.jobs) == 2


def test_no_job_when_its_output_is_present(aws):
    s3, fake, _ = aws
    s3.put_object(Bucket=BUCKET, Key="features/m-1/features-algo-1.npz", Body=b"x")
    result = clip_operator(skip_when_present=f"s3://{BUCKET}/features/m-1/").execute(
        {"ti": TaskInstance()}
    )
    assert result["status"] == "NOT_NEEDED"
    assert fake.jobs == {}


def test_an_absent_output_does_not_skip_the_job(aws):
    _, fake, _ = aws
    clip_operator(skip_when_present=f"s3://{BUCKET}/features/m-1/").execute({"ti": TaskInstance()})
    assert len(fake.jobs) == 1


# --- SageMaker: waits as long as the job may run -------------------------------------------------

PROCESSING = ProcessingSettings(
    role_arn="arn:aws:iam::123456789012:role/sagemaker",
    image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/highlights:1",
    max_runtime_seconds=3 * 3600,
)


def features_config() -> dict:
    return features_job(
        "final-0123456789ab", "s3://w/frames/m/", "s3://w/features/m/", PROCESSING,
        capture_rate=5.0, backbone="efficientnet_lite0",
    )  # fmt: skip


def test_max_wait_covers_the_jobs_runtime():
    assert max_wait_seconds(features_config()) >= 3 * 3600


@pytest.fixture
def jobs_keep_running(monkeypatch):
    """moto completes a processing job at once; a real one runs for a while."""
    from moto.sagemaker.models import SageMakerModelBackend

    create = SageMakerModelBackend.create_processing_job

    def create_running(self, *args, **kwargs):
        job = create(self, *args, **kwargs)
        job.processing_job_status = "InProgress"
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_processing_job", create_running)


@pytest.mark.parametrize("earlier_try", [False, True])
def test_every_processing_wait_lasts_as_long_as_the_job_may_run(
    aws_credentials, strict_requests, jobs_keep_running, earlier_try
):
    from airflow.sdk.exceptions import TaskDeferred
    from sagemaker_processing import SageMakerProcessingOnceOperator

    with mock_aws():
        config = features_config()
        if earlier_try:  # a job of this name is running: the operator adopts it
            boto3.client("sagemaker", region_name=REGION).create_processing_job(**config)
        op = SageMakerProcessingOnceOperator(
            task_id="extract_features", config=config, aws_conn_id=None, region_name=REGION,
            deferrable=True, check_interval=30,
        )  # fmt: skip
        with pytest.raises(TaskDeferred) as deferred:
            op.execute({"ti": TaskInstance()})
    trigger = deferred.value.trigger
    assert trigger.waiter_delay * trigger.attempts >= 3 * 3600
    assert deferred.value.timeout >= timedelta(hours=3)
