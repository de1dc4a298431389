"""The DAG's aws backend under real Airflow (`dag.test()`), against a local moto server.

What stands in for AWS, and why:
- S3, DynamoDB, SageMaker and SES are moto, run as a threaded server on 127.0.0.1 (deferrable
  operators and sensors use aiobotocore, which in-process `mock_aws` cannot serve).
- moto does not implement MediaConvert. `tests/fake_mediaconvert.py` stands in for it: as strict
  as the service (the full botocore model, the documented CreateJob rules, the one-minute
  request-token window) and doing what each job asks with its own ffmpeg commands.
- Every request any client makes during the module (the DAG's tasks, the provider's operators
  and triggers, the processing entrypoints, and the test's own) is validated against its
  botocore model in full by `strict_aws()` (tests/aws_strict.py); one violation fails the run.
- moto records SageMaker processing jobs but runs no containers. `LocalProcessing` gives each
  job its effect by running the real `processing/*.py` entrypoint in this process on the job's
  inputs, downloaded from moto S3 per instance (ShardedByS3Key splits the frames), and uploads
  the outputs, as SageMaker would. A job it is told to crash is marked Failed in moto.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import json
import re
import threading
import urllib.parse
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

import boto3
import pytest

from highlights.matches import match_for_object
from tests import airflow_env
from tests.aws_rules import presigned_link_problems, unique_processing_job_names
from tests.aws_strict import strict_aws
from tests.calibrated import assert_calibrated
from tests.fake_mediaconvert import FakeMediaConvert
from tests.mediaconvert_jobs import timecode_frames

airflow_env.configure()

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
TARGET = "PenaltyKick"
SENDER = "highlights@example.com"
RECIPIENT = "coach@example.com"
UPLOAD = "incoming/cup-final.mp4"


# --- SageMaker Processing: the real entrypoints, run here ---------------------------------------


class LocalProcessing:
    """Runs a processing job's container command in this process, one pass per instance."""

    def __init__(self, s3: Any, scratch: Path) -> None:
        self.s3 = s3
        self.scratch = scratch
        self.crash: set[tuple[str, str]] = set()  # (purpose, match id) of jobs that crash
        self.configs: dict[str, dict] = {}  # job name -> the CreateProcessingJob request
        self.uploaded: list[str] = []  # s3://bucket/key of every output file
        self.workers: list[threading.Thread] = []

    def run(self, config: dict) -> tuple[bool, str]:
        name = config["ProcessingJobName"]
        self.configs[name] = config
        tags = {tag["Key"]: tag["Value"] for tag in config.get("Tags", [])}
        if any(
            name.startswith(f"hl-{purpose}-") and tags.get("match_id") == match_id
            for purpose, match_id in self.crash
        ):
            return False, "AlgorithmError: the container exited with code 137 (out of memory)"
        count = config["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
        module = importlib.import_module(config["AppSpecification"]["ContainerEntrypoint"][-1])
        for host in range(count):
            root = self.scratch / name / f"algo-{host + 1}"
            paths = self._inputs(config["ProcessingInputs"], root, host, count)
            outputs = config["ProcessingOutputConfig"]["Outputs"]
            for output in outputs:
                local = root / output["S3Output"]["LocalPath"].lstrip("/")
                local.mkdir(parents=True, exist_ok=True)
                paths[output["S3Output"]["LocalPath"]] = local
            args = [
                str(paths.get(arg, arg)) for arg in config["AppSpecification"]["ContainerArguments"]
            ]
            if module.__name__.endswith("extract_features"):
                resource = root / "resourceconfig.json"
                resource.write_text(json.dumps({"current_host": f"algo-{host + 1}"}))
                args += ["--resource-config", str(resource)]
            code = module.main(args)
            if code != 0:
                return False, f"AlgorithmError: {module.__name__} exited with code {code}"
            for output in outputs:
                self._upload(paths[output["S3Output"]["LocalPath"]], output["S3Output"]["S3Uri"])
        return True, ""

    def _inputs(self, inputs: list[dict], root: Path, host: int, count: int) -> dict[str, Path]:
        paths = {}
        for item in inputs:
            spec = item["S3Input"]
            bucket, prefix = spec["S3Uri"][5:].split("/", 1)
            keys = sorted(
                obj["Key"]
                for page in self.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix
                )
                for obj in page.get("Contents", [])
            )
            if spec["S3DataDistributionType"] == "ShardedByS3Key":
                keys = keys[host::count]
            local = root / spec["LocalPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            for key in keys:
                target = local / key[len(prefix) :].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(target))
            paths[spec["LocalPath"]] = local
        return paths

    def _upload(self, folder: Path, url: str) -> None:
        bucket, prefix = url[5:].split("/", 1)
        prefix = prefix if prefix.endswith("/") else f"{prefix}/"
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = f"{prefix}{path.relative_to(folder).as_posix()}"
            self.s3.upload_file(str(path), bucket, key)
            self.uploaded.append(f"s3://{bucket}/{key}")


def sagemaker_job(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].processing_jobs[name]


# --- the world: moto server, buckets, table, model, Variables -----------------------------------


class World:
    def __init__(self, endpoint: str, scratch: Path, model_dir: Path) -> None:
        self.endpoint = endpoint
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.s3 = session.client("s3", endpoint_url=endpoint)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        self.ses = session.client("ses", endpoint_url=endpoint)
        self.sagemaker = session.client("sagemaker", endpoint_url=endpoint)
        self.mediaconvert = FakeMediaConvert(self.s3, scratch / "mediaconvert", region=REGION)
        self.deferred: dict[str, int] = {}  # SageMaker job -> seconds its trigger waits at most
        self.processing = LocalProcessing(self.s3, scratch / "processing")
        self.variable = {
            "region": REGION,
            "input_bucket": "match-uploads",
            "input_prefix": "incoming/",
            "work_bucket": "match-work",
            "highlights_bucket": "match-highlights",
            "results_table": "highlight-windows",
            "upload_queue_url": f"{endpoint}/{ACCOUNT}/uploads",
            "mediaconvert_role_arn": f"arn:aws:iam::{ACCOUNT}:role/mediaconvert",
            "mediaconvert_endpoint": "",
            "sagemaker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
            "processing_image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/highlights:1",
            "endpoint_name": "",
            "model_data_uri": "s3://match-work/models/synthetic/",
            "sender_email": SENDER,
            "recipient_emails": [RECIPIENT],
            "link_expiry_seconds": 3600,
        }
        for bucket in ("match-uploads", "match-work", "match-highlights"):
            self.s3.create_bucket(Bucket=bucket)
        from highlights.aws.dynamodb import DynamoDBResults

        DynamoDBResults("highlight-windows", self.dynamodb).create_table()
        self.ses.verify_email_identity(EmailAddress=SENDER)
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            key = f"models/synthetic/{path.relative_to(model_dir).as_posix()}"
            self.s3.upload_file(str(path), "match-work", key)

    def upload(self, key: str, video: Path) -> str:
        self.s3.upload_file(str(video), "match-uploads", key)
        etag = self.s3.head_object(Bucket="match-uploads", Key=key)["ETag"]
        return match_for_object(key, etag).match_id

    def keys(self, bucket: str, prefix: str) -> list[str]:
        response = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in response.get("Contents", []))

    def items(self, match_id: str) -> list[dict]:
        response = self.dynamodb.query(
            TableName="highlight-windows",
            KeyConditionExpression="match_id = :m",
            ExpressionAttributeValues={":m": {"S": match_id}},
        )
        return response["Items"]

    def sent_mail(self) -> list[Any]:
        from moto.ses.models import ses_backends

        return list(ses_backends[ACCOUNT][REGION].sent_messages)


@pytest.fixture(scope="module")
def world(tmp_path_factory, trained_model):
    airflow_env.migrate()
    patch = pytest.MonkeyPatch()
    with (
        airflow_env.moto_aws(patch, REGION) as endpoint,
        unique_processing_job_names(),
        strict_aws() as requests,
    ):
        patch.setenv("AWS_ENDPOINT_URL", endpoint)  # for boto3 inside the processing entrypoints
        scratch = tmp_path_factory.mktemp("aws-backend")
        world = World(endpoint, scratch, trained_model)
        world.requests = requests
        airflow_env.set_variable(patch, "highlights_aws", world.variable)
        airflow_env.set_variable(patch, "highlights_backend", "aws")
        airflow_env.set_variable(patch, "highlights_targets", [TARGET])
        _route_clients_to_fakes(patch, world)
        yield world
        patch.undo()


def _route_clients_to_fakes(patch: pytest.MonkeyPatch, world: World) -> None:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    # Patched on the provider's base class: Airflow's plugin loader executes plugins/*.py a
    # second time as fresh modules, so the trigger may see another MediaConvertHook class.
    client_type = AwsBaseHook.get_client_type

    def route(self, *args, **kwargs):
        if self.client_type == "mediaconvert":
            return world.mediaconvert
        return client_type(self, *args, **kwargs)

    patch.setattr(AwsBaseHook, "get_client_type", route)
    create = SageMakerHook.create_processing_job

    def create_and_run(self, config, wait_for_completion=True, **kwargs):
        # The job is InProgress while the entrypoint runs in a thread, so the operator defers
        # and SageMaker's trigger polls moto until the job completes or fails.
        response = create(self, config, wait_for_completion=False, **kwargs)
        job = sagemaker_job(config["ProcessingJobName"])
        job.processing_job_status = "InProgress"

        def finish() -> None:
            try:
                ok, reason = world.processing.run(config)
            except Exception as exc:
                ok, reason = False, f"AlgorithmError: {exc}"
            if not ok:
                job.failure_reason = reason
            job.processing_job_status = "Completed" if ok else "Failed"

        worker = threading.Thread(target=finish, name=config["ProcessingJobName"])
        world.processing.workers.append(worker)
        worker.start()
        return response

    patch.setattr(SageMakerHook, "create_processing_job", create_and_run)

    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    trigger_run = SageMakerTrigger.run

    def recorded_run(self):
        world.deferred[self.job_name] = self.waiter_delay * self.attempts
        return trigger_run(self)

    patch.setattr(SageMakerTrigger, "run", recorded_run)


def pipeline_dag() -> Any:
    dag = airflow_env.load_dag()
    airflow_env.no_retries(dag)
    for task_id in ("aws.extract_features", "aws.score_windows"):
        dag.get_task(task_id).check_interval = 1
    return dag


def run_dag(world: World, conf: dict | None = None, run_id: str | None = None) -> Any:
    """A pipeline run started by hand with `conf`, or the dispatcher-triggered run `run_id`."""
    dag = pipeline_dag()
    try:
        if run_id:
            return airflow_env.run_triggered(dag, run_id)
        return dag.test(run_conf={"features_instances": 2, **(conf or {})})
    finally:
        for worker in world.processing.workers:
            worker.join()


def plan(dag_run: Any) -> dict:
    """The run's plan: where it read and wrote, and its jobs' names (task aws.plan_upload)."""
    return airflow_env.xcom(dag_run, "aws.plan_upload")


def results(plan: dict) -> str:
    """The run's results folder (a key prefix in the highlights bucket)."""
    return plan["results_url"].removeprefix("s3://match-highlights/")


def read_json(world: World, bucket: str, key: str) -> Any:
    return json.loads(world.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def requests_for(world: World, match_id: str, purpose: str | None = None) -> list[dict]:
    return [
        r
        for r in world.mediaconvert.requests
        if r["UserMetadata"]["match_id"] == match_id
        and (purpose is None or r["UserMetadata"]["purpose"] == purpose)
    ]


@pytest.fixture(scope="module")
def first_run(world, synthetic_match):
    """A match uploaded and its run started as the dispatcher starts it: key, ETag, backend."""
    match_id = world.upload(UPLOAD, synthetic_match[0])
    etag = world.s3.head_object(Bucket="match-uploads", Key=UPLOAD)["ETag"].strip('"')
    dag_run = run_dag(world, {"backend": "aws", "key": UPLOAD, "etag": etag})
    return dag_run, match_id


# --- the successful run -------------------------------------------------------------------------


def test_upload_runs_the_pipeline_to_success(first_run):
    dag_run, _ = first_run
    states = airflow_env.task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert {s for t, s in states.items() if t.startswith("local.")} == {"skipped"}


def test_the_upload_is_done_in_its_claim_record(world, first_run):
    dag_run, match_id = first_run
    record = json.loads(
        world.s3.get_object(Bucket="match-highlights", Key=f"highlights/{match_id}/run.json")[
            "Body"
        ].read()
    )
    assert record["state"] == "done"
    assert record["input"] == f"s3://match-uploads/{UPLOAD}"
    assert [(a["run_id"], a["outcome"]) for a in record["attempts"]] == [(dag_run.run_id, "done")]


def test_finished_match_is_announced_with_its_clips_and_reel(world, first_run):
    dag_run, match_id = first_run
    folder = results(plan(dag_run))
    assert folder.startswith(f"highlights/{match_id}/")
    extra = airflow_env.xcom(dag_run, "aws.finish_upload")
    assert extra["match_id"] == match_id
    assert extra["folder"] == f"s3://match-highlights/{folder}"
    clip_keys = world.keys("match-highlights", f"{folder}clips/")
    assert [c.split("/", 3)[3] for c in extra["clips"]] == [
        k for k in clip_keys if k.endswith(".mp4")
    ]
    assert extra["reel"] == f"s3://match-highlights/{folder}reel.mp4"


def test_a_run_for_a_replaced_upload_is_skipped_cleanly(world, synthetic_match, tmp_path):
    from highlights import synthetic

    key = "incoming/replaced.mp4"
    world.upload(key, synthetic_match[0])
    old = world.s3.head_object(Bucket="match-uploads", Key=key)["ETag"].strip('"')
    world.upload(key, synthetic.make_match(tmp_path / "newer.mp4", 4.0, []))
    jobs_before = len(world.mediaconvert.requests)
    dag_run = run_dag(world, {"backend": "aws", "key": key, "etag": old})
    states = airflow_env.task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["aws.claim_upload"] == "skipped"
    assert states["aws.capture_frames"] == "skipped"
    assert len(world.mediaconvert.requests) == jobs_before
    stale_id = match_for_object(key, old).match_id
    assert world.keys("match-highlights", f"highlights/{stale_id}/") == []


def test_aws_tasks_link_to_their_jobs_and_the_match_results(world, first_run):
    dag_run, match_id = first_run
    capture = airflow_env.xcom(dag_run, "aws.capture_frames", key="_link_MediaConvertJobLink")
    job_id = airflow_env.xcom(dag_run, "aws.capture_frames")["id"]
    assert capture == (
        f"https://{REGION}.console.aws.amazon.com/mediaconvert/home?region={REGION}"
        f"#/jobs/summary/{job_id}"
    )
    features = airflow_env.xcom(
        dag_run, "aws.extract_features", key="_link_SageMakerProcessingJobLink"
    )
    assert features.endswith(f"#/processing-jobs/{plan(dag_run)['features_job_name']}")
    results = airflow_env.xcom(dag_run, "aws.cut_clip", 0, key="_link_MatchResultsLink")
    assert results == (
        f"https://{REGION}.console.aws.amazon.com/s3/buckets/match-highlights"
        f"?region={REGION}&prefix=highlights/{match_id}/"
    )


def test_clip_jobs_are_labelled_with_their_time_range(first_run):
    dag_run, _ = first_run
    labels = airflow_env.map_labels(dag_run, "aws.cut_clip")
    assert labels and all(
        re.fullmatch(r"clip-\d{3} \d\d:\d\d:\d\d:\d\d-\d\d:\d\d:\d\d:\d\d", label)
        for label in labels
    ), labels


def test_frame_capture_job_samples_the_upload_at_the_capture_rate(world, first_run):
    dag_run, match_id = first_run
    (capture,) = requests_for(world, match_id, "frames")
    settings = capture["Settings"]
    assert settings["Inputs"][0]["FileInput"] == f"s3://match-uploads/{UPLOAD}"
    group = settings["OutputGroups"][0]
    destination = group["OutputGroupSettings"]["FileGroupSettings"]["Destination"]
    assert destination == f"{plan(dag_run)['frames_url']}frame"
    assert destination.startswith(f"s3://match-work/frames/{match_id}/")
    frames = group["Outputs"][0]["VideoDescription"]["CodecSettings"]["FrameCaptureSettings"]
    assert (frames["FramerateNumerator"], frames["FramerateDenominator"]) == (5, 1)
    assert frames["MaxCaptures"] == 150  # 30 s at 5 frames/s: the frames that start before the end
    assert capture["Role"] == world.variable["mediaconvert_role_arn"]


def test_frame_capture_writes_its_proxy_apart_from_the_frames(world, first_run):
    dag_run, match_id = first_run
    (capture,) = requests_for(world, match_id, "frames")
    groups = capture["Settings"]["OutputGroups"]
    proxy = groups[1]["OutputGroupSettings"]["FileGroupSettings"]["Destination"]
    assert proxy == plan(dag_run)["proxy_url"]
    assert proxy.startswith(f"s3://match-work/proxies/{match_id}/")
    job = next(j for j in world.mediaconvert.jobs.values() if j["Settings"] == capture["Settings"])
    assert job["Status"] == "COMPLETE"


def test_every_job_turns_phone_video_upright(world, first_run):
    _, match_id = first_run
    selectors = [
        item["VideoSelector"]
        for request in requests_for(world, match_id)
        for item in request["Settings"]["Inputs"]
    ]
    assert selectors and all(s == {"Rotate": "AUTO"} for s in selectors)


def test_features_ran_sharded_over_two_instances(world, first_run):
    dag_run, _ = first_run
    job = world.processing.configs[plan(dag_run)["features_job_name"]]
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    prefix = plan(dag_run)["features_url"]
    shards = sorted(u[len(prefix) :] for u in world.processing.uploaded if u.startswith(prefix))
    assert shards == ["features-algo-1.npz", "features-algo-2.npz"]


def test_processing_waits_were_deferred_to_the_trigger(world, first_run):
    dag_run, _ = first_run
    assert plan(dag_run)["features_job_name"] in world.deferred
    assert plan(dag_run)["scores_job_name"] in world.deferred


def test_processing_waits_last_as_long_as_each_job_may_run(world, first_run):
    assert world.deferred
    for name, wait in world.deferred.items():
        runtime = world.processing.configs[name]["StoppingCondition"]["MaxRuntimeInSeconds"]
        assert wait >= runtime, f"{name}: the trigger gives up after {wait} s of {runtime} s"


def test_one_dynamodb_item_per_window(world, first_run):
    _, match_id = first_run
    items = world.items(match_id)
    assert len(items) >= 28  # 30 s, 2 s windows every 1 s
    starts = sorted(int(i["start_ms"]["N"]) for i in items)
    assert starts == sorted(set(starts))
    assert set(items[0]["scores"]["M"]) >= {TARGET}
    assert any(i["picked"]["BOOL"] for i in items)


def test_one_clipping_job_per_range_at_source_timecodes(world, first_run):
    dag_run, match_id = first_run
    folder = results(plan(dag_run))
    ranges = read_json(world, "match-highlights", f"{folder}segments.json")["predictions"]
    clips = sorted(
        (
            r
            for r in world.mediaconvert.requests
            if r["UserMetadata"]["purpose"].startswith("clip-")
        ),
        key=lambda r: r["UserMetadata"]["purpose"],
    )  # mapped tasks may run in any order
    assert len(clips) == len(ranges) >= 1
    for index, request in enumerate(clips):
        item = request["Settings"]["Inputs"][0]
        assert item["TimecodeSource"] == "ZEROBASED"
        assert re.fullmatch(r"\d\d:\d\d:\d\d:\d\d", item["InputClippings"][0]["StartTimecode"])
        destination = request["Settings"]["OutputGroups"][0]["OutputGroupSettings"][
            "FileGroupSettings"
        ]["Destination"]
        assert destination == f"s3://match-highlights/{folder}clips/clip-{index:03d}"
    # Each clip starts within one frame of its range: on the frame on screen at its start,
    # read back with the MediaConvert fake's own timecode parser.
    for request, prediction in zip(clips, ranges, strict=True):
        clipping = request["Settings"]["Inputs"][0]["InputClippings"][0]
        start = timecode_frames(clipping["StartTimecode"], Fraction(25)) / Fraction(25)
        assert prediction["start"] - Fraction(1, 25) < start <= prediction["start"]


def test_reel_joins_every_range_in_one_job(world, first_run):
    reel = [r for r in world.mediaconvert.requests if r["UserMetadata"]["purpose"] == "reel"]
    clips = [
        r for r in world.mediaconvert.requests if r["UserMetadata"]["purpose"].startswith("clip-")
    ]
    assert len(reel) == 1
    assert len(reel[0]["Settings"]["Inputs"]) == len(clips)


def mail_links(message: Any) -> list[str]:
    """Every URL in the plain-text part of a sent raw message."""
    parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content()
    return re.findall(r"https?://\S+", text)


def test_email_goes_to_the_recipients_with_expiring_links(world, first_run):
    dag_run, _ = first_run
    folder = results(plan(dag_run))
    sent = world.sent_mail()
    assert len(sent) == 1
    assert RECIPIENT in sent[0].destinations
    links = mail_links(sent[0])
    clip = next(u for u in links if f"{folder}clips/clip-000.mp4" in u)
    assert "X-Amz-Expires=3600" in clip and "X-Amz-Signature=" in clip
    assert any(f"{folder}reel.mp4" in u for u in links)


def test_every_link_is_signed_for_the_buckets_regional_host(world, first_run):
    links = mail_links(world.sent_mail()[0])
    assert len(links) >= 3  # clips, reel, segments.json
    for link in links:
        assert presigned_link_problems(link, bucket="match-highlights", region=REGION) == []


def test_presigned_clip_link_downloads_the_clip(world, first_run):
    dag_run, _ = first_run
    links = mail_links(world.sent_mail()[0])
    clip = next(u for u in links if f"{results(plan(dag_run))}clips/clip-000.mp4" in u)
    # The link names S3's regional host; the request goes to moto with that Host header.
    parts = urllib.parse.urlsplit(clip)
    request = urllib.request.Request(
        f"{world.endpoint}{parts.path}?{parts.query}", headers={"Host": parts.netloc}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert len(response.read()) > 1000


def test_cleanup_deletes_frames_proxy_and_scores_and_keeps_features(world, first_run):
    dag_run, match_id = first_run
    assert world.keys("match-work", f"frames/{match_id}/") == []
    assert world.keys("match-work", f"proxies/{match_id}/") == []
    assert world.keys("match-work", f"scores/{match_id}/") == []
    # kept for a re-run with other decision settings; the lifecycle rule expires them
    assert world.keys("match-work", f"features/{match_id}/")
    assert world.keys("match-highlights", f"{results(plan(dag_run))}clips/")


# --- re-runs and failures -----------------------------------------------------------------------


def test_rerun_of_a_match_duplicates_nothing(world, first_run):
    _, match_id = first_run
    before = {
        "items": len(world.items(match_id)),
        "mail": len(world.sent_mail()),
        "jobs": len(world.sagemaker.list_processing_jobs()["ProcessingJobSummaries"]),
        "clips": world.keys("match-highlights", f"highlights/{match_id}/"),
        "tokens": {r["ClientRequestToken"] for r in world.mediaconvert.requests},
        "mediaconvert jobs": len(world.mediaconvert.jobs),
    }
    dag_run = run_dag(world, {"key": UPLOAD})
    assert str(dag_run.state) == "success", airflow_env.task_states(dag_run)
    assert len(world.items(match_id)) == before["items"]
    assert len(world.sent_mail()) == before["mail"]
    assert len(world.sagemaker.list_processing_jobs()["ProcessingJobSummaries"]) == before["jobs"]
    assert world.keys("match-highlights", f"highlights/{match_id}/") == before["clips"]
    assert {r["ClientRequestToken"] for r in world.mediaconvert.requests} == before["tokens"]
    assert len(world.mediaconvert.jobs) == before["mediaconvert jobs"]


def test_a_run_without_a_threshold_decides_with_the_model_s_calibrated_settings(
    world, first_run, trained_model
):
    from highlights.config import SegmentConfig

    dag_run, _ = first_run
    run = plan(dag_run)
    job = world.sagemaker.describe_processing_job(ProcessingJobName=run["scores_job_name"])
    assert "--threshold" not in job["AppSpecification"]["ContainerArguments"]
    document = read_json(world, "match-highlights", f"{results(run)}segments.json")
    decided = {t: SegmentConfig(**p) for t, p in document["decisions"].items()}
    assert_calibrated(decided, trained_model)


def test_rerun_with_a_new_threshold_rescores_only(world, first_run):
    first, match_id = first_run
    jobs_before = {j["ProcessingJobName"] for j in world.sagemaker.list_processing_jobs()[
        "ProcessingJobSummaries"]}  # fmt: skip
    captures = len(requests_for(world, match_id, "frames"))
    mail = len(world.sent_mail())
    dag_run = run_dag(world, {"key": UPLOAD, "threshold": 0.95})
    assert str(dag_run.state) == "success", airflow_env.task_states(dag_run)
    new, old = plan(dag_run), plan(first)
    assert new["features_url"] == old["features_url"]
    assert new["results_url"] != old["results_url"]
    jobs_after = {j["ProcessingJobName"] for j in world.sagemaker.list_processing_jobs()[
        "ProcessingJobSummaries"]}  # fmt: skip
    assert jobs_after - jobs_before == {new["scores_job_name"]}
    assert len(requests_for(world, match_id, "frames")) == captures  # no new capture
    fewer = read_json(world, "match-highlights", f"{results(new)}segments.json")["predictions"]
    earlier = read_json(world, "match-highlights", f"{results(old)}segments.json")["predictions"]
    assert len(fewer) <= len(earlier)
    assert len(world.sent_mail()) == mail + 1  # the new decision is sent once


def test_mediaconvert_error_fails_the_task_with_its_message(world, synthetic_match, capfd):
    key = "incoming/broken-feed.mp4"
    world.upload(key, synthetic_match[0])
    world.mediaconvert.fail["frames"] = "Unable to open input file [s3://match-uploads/x]"
    try:
        dag_run = run_dag(world, {"key": key})
    finally:
        del world.mediaconvert.fail["frames"]
    states = airflow_env.task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["aws.capture_frames"] == "failed"
    assert states["aws.send_email"] == "upstream_failed"
    assert "Unable to open input file" in capfd.readouterr().out


def test_failed_sagemaker_job_fails_the_run_and_keeps_its_input(world, synthetic_match):
    key = "incoming/semi-final.mp4"
    match_id = world.upload(key, synthetic_match[0])
    world.processing.crash.add(("features", match_id))
    mail_before = len(world.sent_mail())
    try:
        dag_run = run_dag(world, {"key": key})
    finally:
        world.processing.crash.discard(("features", match_id))
    states = airflow_env.task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["aws.extract_features"] == "failed"
    assert states["aws.delete_frames"] == "upstream_failed"  # kept for a re-run
    assert world.keys("match-work", f"frames/{match_id}/")
    assert len(world.sent_mail()) == mail_before
    assert world.items(match_id) == []


def test_a_manual_rerun_after_a_failed_scoring_job_succeeds(world, synthetic_match):
    key = "incoming/quarter-final.mp4"
    match_id = world.upload(key, synthetic_match[0])
    world.processing.crash.add(("scores", match_id))
    try:
        failed = run_dag(world, {"key": key})
    finally:
        world.processing.crash.discard(("scores", match_id))
    states = airflow_env.task_states(failed)
    assert str(failed.state) == "failed"
    assert states["aws.score_windows"] == "failed"
    captures = len(requests_for(world, match_id, "frames"))
    rerun = run_dag(world, {"key": key})
    assert str(rerun.state) == "success", airflow_env.task_states(rerun)
    assert len(requests_for(world, match_id, "frames")) == captures  # features were kept
    assert world.keys("match-highlights", f"{results(plan(rerun))}clips/")
    assert world.items(match_id)


def test_match_without_highlights_is_still_reported(world, tmp_path):
    from highlights import synthetic

    video = synthetic.make_match(tmp_path / "quiet.mp4", 8.0, [])
    key = "incoming/quiet-half.mp4"
    match_id = world.upload(key, video)
    mail_before = len(world.sent_mail())
    dag_run = run_dag(world, {"key": key, "threshold": 1.0})
    states = airflow_env.task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["aws.make_reel"] == "skipped"
    jobs = [r for r in world.mediaconvert.requests if r["UserMetadata"]["match_id"] == match_id]
    assert [r["UserMetadata"]["purpose"] for r in jobs] == ["frames"]
    assert world.items(match_id)  # every window is still recorded
    sent = world.sent_mail()
    assert len(sent) == mail_before + 1
    assert "0 highlights" in sent[-1].raw_data


# --- an upload that cannot be processed -----------------------------------------------------------


def sweep() -> Any:
    return airflow_env.load_dag("highlights_upload_sweep").test()


def test_a_failing_upload_is_retried_then_marked_failed_and_kept(
    world, monkeypatch, tmp_path, strict_requests
):
    monkeypatch.setenv("AIRFLOW__HIGHLIGHTS__MAX_ATTEMPTS", "2")
    key = "incoming/unreadable feed.mp4"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 1000)
    match_id = world.upload(key, junk)
    first = f"upload__{match_id}"

    assert str(sweep().state) == "success"
    assert str(run_dag(world, run_id=first).state) == "failed"
    sweep()
    retry = f"{first}__try2"
    assert retry in airflow_env.dag_runs()
    assert str(run_dag(world, run_id=retry).state) == "failed"
    assert world.keys("match-highlights", f"highlights/{match_id}/failed.json") == []

    sweep()
    marker = json.loads(
        world.s3.get_object(Bucket="match-highlights", Key=f"highlights/{match_id}/failed.json")[
            "Body"
        ].read()
    )
    assert marker["input"] == f"s3://match-uploads/{key}"
    assert "aws.probe_upload" in marker["error"]
    assert [a["run_id"] for a in marker["attempts"]] == [first, retry]
    record = json.loads(
        world.s3.get_object(Bucket="match-highlights", Key=f"highlights/{match_id}/run.json")[
            "Body"
        ].read()
    )
    assert record["state"] == "failed"
    assert world.keys("match-uploads", key) == [key]  # the user's upload is never deleted
    sweep()
    assert f"{first}__try3" not in airflow_env.dag_runs()
    etag = world.s3.head_object(Bucket="match-uploads", Key=key)["ETag"]
    claims = [r for r in strict_requests.calls("s3", "HeadObject") if "IfMatch" in r.params]
    assert [(r.params["Key"], r.params["IfMatch"]) for r in claims] == [(key, etag)] * 2


# --- variable frame rate ------------------------------------------------------------------------


def test_a_constant_rate_upload_is_not_converted(first_run):
    dag_run, _ = first_run
    assert airflow_env.task_states(dag_run)["aws.normalize_rate"] == "skipped"


def test_a_variable_frame_rate_upload_is_converted_first(world, synthetic_match, tmp_path):
    from tests.media import run_ffmpeg

    vfr = tmp_path / "phone.mp4"
    run_ffmpeg(["-i", str(synthetic_match[0]), "-vf", "select='not(mod(n\\,5))+not(mod(n\\,7))'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-an", str(vfr)])  # fmt: skip
    key = "incoming/phone-vfr.mp4"
    match_id = world.upload(key, vfr)
    dag_run = run_dag(world, {"key": key, "threshold": 0.3})
    assert str(dag_run.state) == "success", airflow_env.task_states(dag_run)
    (normalize,) = requests_for(world, match_id, "normalize")
    rate = normalize["Settings"]["OutputGroups"][0]["Outputs"][0]["VideoDescription"][
        "CodecSettings"]["H264Settings"]  # fmt: skip
    assert rate["FramerateControl"] == "SPECIFIED"
    normalized = plan(dag_run)["normalized_url"] + ".mp4"
    readers = [
        r for r in requests_for(world, match_id) if r["UserMetadata"]["purpose"] != "normalize"
    ]
    assert readers
    assert all(item["FileInput"] == normalized for r in readers for item in r["Settings"]["Inputs"])
