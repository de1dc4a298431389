"""The model image run for real in Docker, the way SageMaker runs it (tests/sagemaker_emulator.py).

A training job trains on real clips (soccer juggling against tennis, as tests/test_real_videos.py)
and leaves model.tar.gz in S3; an endpoint serves that model; the features job (two instances,
frames sharded by S3 key) and the scores job (through the endpoint, and with the model in the
job) run on frames captured from a real "match" (tennis, juggling, soccer broadcast footage
joined), from the very requests `highlights.aws.sagemaker_jobs` builds for the DAG. Their
segments.json must match what the local pipeline (`highlights detect`) writes for the same video.

The image is $HIGHLIGHTS_IMAGE (default sports-highlights:dev; `make image` builds it). Without
Docker or the image these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config as BotoConfig

from highlights.aws.dynamodb import DynamoDBResults
from highlights.aws.frame_capture import list_captured_frames
from highlights.aws.sagemaker_jobs import ProcessingSettings, features_job, scores_job
from highlights.aws.serving import encode_windows
from highlights.cli import main as highlights_main
from highlights.outputs.segments_json import SegmentsFile, read_segments_json
from highlights.segments import target_scores
from highlights.video import probe
from processing.score_windows import EndpointScorer
from tests.media import SHARED_VIDEOS_DIR, shared_videos
from tests.sagemaker_emulator import (
    ACCOUNT,
    REGION,
    Endpoint,
    JobResult,
    docker_problem,
    image_exists,
    run_processing_job,
    run_training_job,
    split_s3_uri,
    upload_folder,
)
from tests.test_processing import capture_frames
from tests.test_real_videos import TRAINING, _join

pytestmark = pytest.mark.slow

IMAGE = os.environ.get("HIGHLIGHTS_IMAGE", "sports-highlights:dev")
TARGET = "SoccerJuggling"
MATCH_PARTS = [  # 20 s: tennis, the juggling, soccer broadcast
    "tennis-tracking/video_input1.mp4",
    "vision/v_SoccerJuggling_g23_c01.avi",
    "Football_analysis_system/08fd33_4.mp4",
]
MATCH = "real-match"
BUCKET = "highlights-work"
TABLE = "highlights-results"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/highlights-sagemaker"
ENDPOINT = "highlights-endpoint"
# Window scores of the jobs (features of MediaConvert-style JPEG captures) against the local
# pipeline's (frames decoded straight from the video), in log-odds: JPEG at quality 2 moved
# them by up to 0.35 on this match (0.015 in probability); segments must come out the same.
LOGIT_TOLERANCE = 0.75
# The endpoint and the job's own model run the same network on the same features.
SAME_MODEL_LOGIT_TOLERANCE = 1e-3


def require(problem: str | None) -> None:
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must run the image tests)")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def image() -> str:
    require(docker_problem())
    require(None if image_exists(IMAGE) else f"image {IMAGE} is not built (run `make image`)")
    return IMAGE


@dataclass
class Aws:
    url: str
    s3: Any
    dynamodb: Any

    def container_environment(self, runtime_url: str | None = None) -> dict[str, str]:
        """What points the job's boto3 at the moto server (and the endpoint's runtime front)."""
        environment = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }
        if runtime_url:
            environment["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = runtime_url
        return environment


@pytest.fixture(scope="module")
def aws(image: str) -> Iterator[Aws]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    options = {"region_name": REGION, "endpoint_url": url, "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing"}
    try:
        s3 = boto3.client("s3", **options)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.client("dynamodb", **options)
        DynamoDBResults(TABLE, dynamodb).create_table()
        yield Aws(url, s3, dynamodb)
    finally:
        server.stop()


def read_object(aws: Aws, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys_under(aws: Aws, uri: str) -> list[str]:
    bucket, prefix = split_s3_uri(uri)
    listing = aws.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


# --- training ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> None:
    require(None if shared_videos() else f"shared real videos not found at {SHARED_VIDEOS_DIR}")


@pytest.fixture(scope="module")
def dataset_uri(aws: Aws, shared: None) -> str:
    """TRAINING's real clips as a folder-per-class data set in S3."""
    uri = f"s3://{BUCKET}/datasets/real/"
    for label, names in TRAINING.items():
        for name in names:
            bucket, prefix = split_s3_uri(uri)
            aws.s3.upload_file(str(SHARED_VIDEOS_DIR / name), bucket,
                               f"{prefix}{label}/{Path(name).name}")
    return uri


def training_request(name: str, dataset_uri: str, hyperparameters: dict[str, str]) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [{
            "ChannelName": "training",
            "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": dataset_uri,
                "S3DataDistributionType": "FullyReplicated",
            }},
            "ContentType": "video/mp4",
        }],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/training/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
    }


@pytest.fixture(scope="module")
def training(aws: Aws, dataset_uri: str, tmp_path_factory: pytest.TempPathFactory) -> JobResult:
    request = training_request(
        "hl-train-real", dataset_uri,
        {"train.epochs": "20", "train.seed": "7", "train.preset": '"compact"'},
    )
    return run_training_job(request, aws.s3, tmp_path_factory.mktemp("training")).check()


@pytest.fixture(scope="module")
def model_dir(aws: Aws, training: JobResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    with tarfile.open(fileobj=io.BytesIO(read_object(aws, training.model_artifacts))) as tar:
        tar.extractall(folder, filter="data")
    return folder


def read_manifest(model_dir: Path) -> Any:
    from highlights.model import ModelManifest

    return ModelManifest.from_json((model_dir / "manifest.json").read_text(encoding="utf-8"))


def test_the_training_job_leaves_a_model_the_library_reads(
    training: JobResult, model_dir: Path, aws: Aws
) -> None:
    assert training.model_artifacts.endswith("/hl-train-real/output/model.tar.gz")
    assert {"model.keras", "manifest.json"} <= {p.name for p in model_dir.iterdir()}
    manifest = read_manifest(model_dir)
    assert set(manifest.classes) == set(TRAINING)
    # the backbone features it made are the job's output data, uploaded as output.tar.gz
    output = training.model_artifacts.replace("model.tar.gz", "output.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(read_object(aws, output))) as tar:
        assert any(name.endswith(".npz") for name in tar.getnames())


def test_an_unknown_hyperparameter_fails_the_training_job_with_its_name(
    aws: Aws, dataset_uri: str, image: str, tmp_path: Path
) -> None:
    request = training_request("hl-train-bad", dataset_uri, {"train.epochz": "3"})
    result = run_training_job(request, aws.s3, tmp_path)
    assert result.status == "Failed"
    assert "train.epochz" in result.failure_reason
    assert not keys_under(aws, f"s3://{BUCKET}/training/hl-train-bad/")


# --- hosting -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    aws: Aws, training: JobResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoint]:
    model = {
        "ModelName": "highlights-model",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": training.model_artifacts,
                             "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}},
    }
    with Endpoint(ENDPOINT, model, aws.s3, tmp_path_factory.mktemp("endpoint")) as endpoint:
        yield endpoint


def runtime_client(endpoint: Endpoint) -> Any:
    return boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=endpoint.runtime_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=BotoConfig(retries={"max_attempts": 1}))


def test_the_endpoint_serves_the_trained_model_to_the_scoring_client(
    served: Endpoint, model_dir: Path
) -> None:
    manifest = read_manifest(model_dir)
    scorer = EndpointScorer(runtime_client(served), ENDPOINT, manifest.recipe)
    windows = np.random.default_rng(3).random((5, manifest.steps, manifest.feature_dim))
    probabilities = scorer.predict(windows.astype(np.float32))
    assert probabilities.shape == (5, len(manifest.classes))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert scorer.classes == tuple(manifest.classes)
    assert served.pings >= 1 and served.invocations[-1] == ("application/x-npy", 200)


def test_windows_of_another_feature_recipe_are_refused_by_the_container(
    served: Endpoint, model_dir: Path
) -> None:
    manifest = read_manifest(model_dir)
    client = runtime_client(served)
    windows = np.zeros((1, manifest.steps, manifest.feature_dim), dtype=np.float32)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/x-npy",
                               CustomAttributes="feature-recipe=0123456789ab",
                               Body=encode_windows(windows, "application/x-npy"))
    assert caught.value.response["OriginalStatusCode"] == 400
    assert "0123456789ab" in caught.value.response["OriginalMessage"]


def test_a_window_of_the_wrong_shape_is_a_model_error_with_the_container_s_400(
    served: Endpoint,
) -> None:
    client = runtime_client(served)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                               Body=json.dumps([[[0.0, 1.0]]]))
    assert caught.value.response["OriginalStatusCode"] == 400
    assert "shape" in caught.value.response["OriginalMessage"]


# --- the processing jobs on a real clip, against the local pipeline -------------------------------


@pytest.fixture(scope="module")
def real_clip(shared: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    parts = [SHARED_VIDEOS_DIR / name for name in MATCH_PARTS]
    return _join(parts, tmp_path_factory.mktemp("match") / "match.mp4")


def detect_locally(clip: Path, model: Path, out: Path, cache: Path, threshold: float) -> Path:
    assert highlights_main(
        ["detect", str(clip), "--model", str(model), "--target", TARGET, "--out", str(out),
         "--cache-dir", str(cache), "--threshold", f"{threshold:g}", "--no-reel", "--quiet"]
    ) == 0
    return out / "segments.json"


def logit(probabilities: np.ndarray) -> np.ndarray:
    """Log-odds; segments.json keeps 6 decimals, so scores are clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def robust_threshold(values: np.ndarray, margin: float) -> float:
    """A threshold in the widest gap between window scores (in log-odds), at least `margin` from
    every score there, so that scores moved by less than `margin` make the same segments."""
    levels = np.unique(logit(values))
    assert len(levels) > 1, f"every window scored {levels}: nothing to tell segments apart"
    gaps = np.diff(levels)
    widest = int(np.argmax(gaps))
    assert gaps[widest] > 2 * margin, f"window log-odds {levels} leave no gap over {2 * margin}"
    middle = levels[widest] + gaps[widest] / 2
    return float(f"{1 / (1 + np.exp(-middle)):.3g}")  # printed alike by the CLI and the job


@dataclass
class LocalRun:
    threshold: float
    segments: SegmentsFile


@pytest.fixture(scope="module")
def local(real_clip: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    work = tmp_path_factory.mktemp("local")
    first = read_segments_json(detect_locally(real_clip, model_dir, work / "probe",
                                              work / "cache", 0.5))
    values, _ = target_scores(first.scores, [TARGET])
    threshold = robust_threshold(values, LOGIT_TOLERANCE)
    final = read_segments_json(detect_locally(real_clip, model_dir, work / "out",
                                              work / "cache", threshold))
    assert final.segments, "the chosen threshold must leave segments to compare"
    return LocalRun(threshold, final)


def settings() -> ProcessingSettings:
    return ProcessingSettings(role_arn=ROLE, image_uri=IMAGE, features_instance_count=2)


@dataclass
class FeaturesRun:
    result: JobResult
    uri: str
    frames: int


@pytest.fixture(scope="module")
def features(
    aws: Aws, real_clip: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FeaturesRun:
    manifest = read_manifest(model_dir)
    frames = capture_frames(real_clip, tmp_path_factory.mktemp("capture"), rate=manifest.rate,
                            name=real_clip.stem)
    frames_uri = f"s3://{BUCKET}/frames/{MATCH}/"
    upload_folder(aws.s3, frames, frames_uri)
    uri = f"s3://{BUCKET}/features/{MATCH}/"
    request = features_job(MATCH, frames_uri, uri, settings(), capture_rate=manifest.rate,
                           backbone=manifest.backbone)
    result = run_processing_job(request, aws.s3, tmp_path_factory.mktemp("features-job"))
    return FeaturesRun(result.check(), uri, len(list_captured_frames(frames)))


def test_the_features_job_shares_the_frames_between_two_instances(
    features: FeaturesRun, aws: Aws
) -> None:
    keys = keys_under(aws, features.uri)
    assert [key.rsplit("/", 1)[1] for key in keys] == ["features-algo-1.npz", "features-algo-2.npz"]
    shards = []
    for key in keys:
        with np.load(io.BytesIO(read_object(aws, f"s3://{BUCKET}/{key}"))) as data:
            shards.append({int(i) for i in data["indices"]})
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == features.frames


def score(
    aws: Aws, features: FeaturesRun, local: LocalRun, clip: Path, work: Path, *,
    endpoint: Endpoint | None = None, model_uri: str | None = None,
) -> tuple[JobResult, str]:
    uri = f"s3://{BUCKET}/scores/{MATCH}/{'endpoint' if endpoint else 'model'}/"
    request = scores_job(
        MATCH, features.uri, uri, settings(), table=TABLE, region=REGION, targets=[TARGET],
        threshold=local.threshold, duration=probe(clip).duration, video_name=clip.name,
        model_uri=model_uri, endpoint=ENDPOINT if endpoint else None,
    )
    # The job calls DynamoDB (and the endpoint): the one container that needs a network.
    environment = aws.container_environment(endpoint.runtime_url if endpoint else None)
    result = run_processing_job(request, aws.s3, work, network="host",
                                aws_environment=environment)
    return result, uri


@pytest.fixture(scope="module")
def scored_by_endpoint(
    aws: Aws, features: FeaturesRun, local: LocalRun, real_clip: Path, served: Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> SegmentsFile:
    before = len(served.invocations)
    result, uri = score(aws, features, local, real_clip, tmp_path_factory.mktemp("scores-e"),
                        endpoint=served)
    result.check()
    assert len(served.invocations) > before  # the windows went through the endpoint
    return segments_at(aws, uri, tmp_path_factory.mktemp("segments-e"))


@pytest.fixture(scope="module")
def scored_in_job(
    aws: Aws, features: FeaturesRun, local: LocalRun, real_clip: Path, training: JobResult,
    tmp_path_factory: pytest.TempPathFactory,
) -> SegmentsFile:
    result, uri = score(aws, features, local, real_clip, tmp_path_factory.mktemp("scores-m"),
                        model_uri=training.model_artifacts)
    result.check()
    return segments_at(aws, uri, tmp_path_factory.mktemp("segments-m"))


def segments_at(aws: Aws, uri: str, folder: Path) -> SegmentsFile:
    path = folder / "segments.json"
    path.write_bytes(read_object(aws, uri + "segments.json"))
    return read_segments_json(path)


def assert_same_segments(found: SegmentsFile, expected: SegmentsFile, tolerance: float) -> None:
    """The same windows scored within `tolerance`, and the same segments."""
    assert found.scores.classes == expected.scores.classes
    assert np.allclose(found.scores.starts, expected.scores.starts, atol=1e-6)
    assert np.allclose(found.scores.ends, expected.scores.ends, atol=1e-6)
    difference = np.abs(logit(found.scores.probabilities)
                        - logit(expected.scores.probabilities)).max()
    assert difference <= tolerance, f"window log-odds differ by up to {difference:.5f}"
    assert ranges(found) == ranges(expected)
    assert found.duration == pytest.approx(expected.duration)
    assert found.policy.threshold == pytest.approx(expected.policy.threshold)


def ranges(found: SegmentsFile) -> list[tuple[float, float, str]]:
    return [(round(s.start, 6), round(s.end, 6), s.label) for s in found.segments]


def test_scores_through_the_endpoint_match_the_local_pipeline(
    scored_by_endpoint: SegmentsFile, local: LocalRun
) -> None:
    assert_same_segments(scored_by_endpoint, local.segments, LOGIT_TOLERANCE)
    assert scored_by_endpoint.model == {"endpoint": ENDPOINT}
    starts = np.cumsum([0.0] + [probe(SHARED_VIDEOS_DIR / name).duration for name in MATCH_PARTS])
    juggling = (starts[1], starts[2])  # the second part
    assert any(s.start < juggling[1] and juggling[0] < s.end for s in scored_by_endpoint.segments)


def test_scores_with_the_model_in_the_job_match_the_endpoint_s_and_the_local_pipeline(
    scored_in_job: SegmentsFile, scored_by_endpoint: SegmentsFile, local: LocalRun, aws: Aws
) -> None:
    assert_same_segments(scored_in_job, local.segments, LOGIT_TOLERANCE)
    assert_same_segments(scored_in_job, scored_by_endpoint, SAME_MODEL_LOGIT_TOLERANCE)
    items = DynamoDBResults(TABLE, aws.dynamodb).get(MATCH)
    assert len(items) == len(local.segments.scores)


def test_a_scores_job_that_exits_non_zero_fails_and_uploads_nothing(
    aws: Aws, features: FeaturesRun, training: JobResult, real_clip: Path, tmp_path: Path
) -> None:
    uri = f"s3://{BUCKET}/scores/{MATCH}/refused/"
    request = scores_job(
        MATCH, features.uri, uri, settings(), table=TABLE, region=REGION, targets=["NoSuchClass"],
        threshold=0.5, duration=probe(real_clip).duration, video_name=real_clip.name,
        model_uri=training.model_artifacts,
    )
    result = run_processing_job(request, aws.s3, tmp_path)  # --network none: fails before AWS
    assert result.status == "Failed"
    assert "exited with status 2" in result.failure_reason
    assert "NoSuchClass" in result.logs["algo-1"]
    assert "NoSuchClass" in result.exit_message  # the job's /opt/ml/output/message
    assert not keys_under(aws, uri)


# --- what users expect of an image -------------------------------------------------------------


def run_image(image: str, *command: str, entrypoint: str | None = None) -> Any:
    prefix = ["--entrypoint", entrypoint] if entrypoint else []
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *prefix, image, *command],
        capture_output=True, text=True, timeout=300,
    )


def test_the_image_run_without_a_command_prints_its_usage(image: str) -> None:
    finished = run_image(image)
    assert finished.returncode == 2
    output = finished.stdout + finished.stderr
    assert "Traceback" not in output
    for command in ("train", "serve", "processing.extract_features", "processing.score_windows"):
        assert command in output


def test_the_image_holds_the_program_and_cpu_only_packages(image: str) -> None:
    finished = run_image(image, "-c", "ls -A /opt/program; pip list --format=freeze",
                         entrypoint="sh")
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.split()
    program = {line for line in lines if "==" not in line}
    assert program == {"README.md", "pyproject.toml", "highlights", "processing", "train", "serve",
                       "usage"}
    packages = {line.split("==")[0].lower().replace("_", "-") for line in lines if "==" in line}
    assert "tensorflow-cpu" in packages and "sports-highlights" in packages
    gpu = {name for name in packages
           if name in ("tensorflow", "torch") or name.startswith(("nvidia-", "tensorflow-gpu"))}
    assert not gpu, f"GPU or unneeded frameworks in the image: {gpu}"


def test_the_endpoint_s_request_workers_do_not_run_as_root(served: Endpoint) -> None:
    table = subprocess.run(["docker", "top", served.container_id, "-eo", "pid,uid,args"],
                           capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    workers = [line.split(None, 2)[1:] for line in table if "serve" in line]
    assert len(workers) >= 2, table  # the master and at least one worker
    assert any(uid != "0" for uid, _ in workers), table
    assert sum(uid == "0" for uid, _ in workers) <= 1, table  # only the master keeps root
