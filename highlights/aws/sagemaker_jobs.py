"""SageMaker Processing job configurations (CreateProcessingJob request dicts), built without AWS.

Two jobs per match: `features` turns the captured frames into feature shards, sharded by S3
key over a configurable number of instances; `scores` merges the shards in time order, scores
every window with the sequence model (or an endpoint) and writes one DynamoDB item per window.
Job names come from the match and a digest of what determines the job's output
(`highlights.aws.plan`), so a retried task finds the job it started instead of starting
another, and a run with other settings never adopts a job made for different ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from highlights.errors import ConfigError

PROCESSING_ROOT = "/opt/ml/processing"
FRAMES_DIR = f"{PROCESSING_ROOT}/input/frames"
FEATURES_IN_DIR = f"{PROCESSING_ROOT}/input/features"
MODEL_DIR = f"{PROCESSING_ROOT}/input/model"
FEATURES_OUT_DIR = f"{PROCESSING_ROOT}/output/features"
SCORES_OUT_DIR = f"{PROCESSING_ROOT}/output/scores"

# A job may queue for instances and upload its outputs besides running MaxRuntimeInSeconds.
WAIT_MARGIN_SECONDS = 3600
MAX_JOB_NAME = 63
# The provider appends "-<13-digit ms timestamp>" when it must start a second job of one name.
_TIMESTAMP_SUFFIX = 14
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class ProcessingSettings:
    """Where and how processing jobs run: one per deployment (the `highlights_aws` Variable)."""

    role_arn: str
    image_uri: str
    instance_type: str = "ml.m5.xlarge"
    features_instance_count: int = 1
    volume_gb: int = 30
    max_runtime_seconds: int = 3 * 3600
    python: tuple[str, ...] = ("python3", "-m")
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.role_arn or not self.image_uri:
            raise ConfigError("sagemaker_role_arn and processing_image_uri must be set")
        if self.features_instance_count < 1:
            raise ConfigError(
                f"features_instance_count must be at least 1, got {self.features_instance_count}"
            )


def job_name(match_id: str, purpose: str, digest: str = "") -> str:
    """`hl-<purpose>-<digest>-<match id>`, valid for SageMaker (63 characters of
    `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`) with room for the provider's timestamp suffix.

    The digest names what determines the job's output; the match id, cut if need be, keeps the
    name readable in the console (the digest already covers the match)."""
    parts = [p for p in ("hl", purpose, digest, match_id) if p]
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", "-".join(parts)).strip("-")
    name = name[: MAX_JOB_NAME - _TIMESTAMP_SUFFIX].rstrip("-")
    if not _JOB_NAME.match(name):
        raise ConfigError(f"cannot make a SageMaker job name from {match_id!r} and {purpose!r}")
    return name


def features_job(
    match_id: str,
    frames_uri: str,
    features_uri: str,
    settings: ProcessingSettings,
    *,
    capture_rate: float,
    backbone: str,
    batch_size: int = 32,
    checkpoint_uri: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Backbone features of the captured frames; each instance gets a disjoint set of frames.

    `checkpoint_uri` (an s3:// prefix the job's role may list, read and write): where the job
    keeps its progress, so a retry resumes what any attempt finished.
    """
    checkpoint = ["--checkpoint-uri", checkpoint_uri] if checkpoint_uri else []
    return _job(
        name=name or job_name(match_id, "features"),
        module="processing.extract_features",
        arguments=[
            "--input",
            FRAMES_DIR,
            "--output",
            FEATURES_OUT_DIR,
            "--capture-rate",
            _number(capture_rate),
            "--backbone",
            backbone,
            "--batch-size",
            str(batch_size),
            *checkpoint,
        ],
        inputs=[_input("frames", frames_uri, FRAMES_DIR, sharded=True)],
        outputs=[_output("features", features_uri, FEATURES_OUT_DIR)],
        instance_count=settings.features_instance_count,
        settings=settings,
        match_id=match_id,
    )


def scores_job(
    match_id: str,
    features_uri: str,
    scores_uri: str,
    settings: ProcessingSettings,
    *,
    table: str,
    region: str,
    targets: Sequence[str],
    threshold: float | None,
    duration: float,
    video_name: str,
    model_uri: str | None = None,
    endpoint: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Merge the feature shards, score every window, write the DynamoDB items and segments.json.

    The model comes from `model_uri` (copied into the container) or, when only `endpoint` is
    given, from a SageMaker endpoint. Without a `threshold` the job decides with the model's
    calibrated settings.
    """
    if not targets:
        raise ConfigError("scores job: give at least one target class")
    if bool(model_uri) == bool(endpoint):
        raise ConfigError("scores job: give exactly one of model_data_uri and endpoint_name")
    inputs = [_input("features", features_uri, FEATURES_IN_DIR, sharded=False)]
    model_args = ["--endpoint", endpoint] if endpoint else ["--model", MODEL_DIR]
    threshold_args = [] if threshold is None else ["--threshold", _number(threshold)]
    if model_uri:
        inputs.append(_input("model", model_uri, MODEL_DIR, sharded=False))
    return _job(
        name=name or job_name(match_id, "scores"),
        module="processing.score_windows",
        arguments=[
            "--features",
            FEATURES_IN_DIR,
            "--output",
            SCORES_OUT_DIR,
            *model_args,
            "--match-id",
            match_id,
            "--table",
            table,
            "--targets",
            ",".join(targets),
            *threshold_args,
            "--duration",
            _number(duration),
            "--video-name",
            video_name,
            "--region",
            region,
        ],
        inputs=inputs,
        outputs=[_output("scores", scores_uri, SCORES_OUT_DIR)],
        instance_count=1,
        settings=settings,
        match_id=match_id,
    )


def _job(
    *,
    name: str,
    module: str,
    arguments: list[str],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    instance_count: int,
    settings: ProcessingSettings,
    match_id: str,
) -> dict[str, Any]:
    tags = {**settings.tags, "match_id": match_id}
    return {
        "ProcessingJobName": name,
        "RoleArn": settings.role_arn,
        "AppSpecification": {
            "ImageUri": settings.image_uri,
            "ContainerEntrypoint": [*settings.python, module],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": settings.instance_type,
                "VolumeSizeInGB": settings.volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }


def _input(name: str, uri: str, local_path: str, *, sharded: bool) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
        },
    }


def _output(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def _number(value: float) -> str:
    """The exact value as text: whole numbers without a point, others in the shortest form that
    reads back as the same float (never `:g`, which keeps 6 digits: 5400.123 -> 5400.12)."""
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"a job argument must be a finite number, got {value}")
    return str(int(number)) if number.is_integer() else repr(number)


def max_wait_seconds(config: dict[str, Any]) -> int:
    """How long to wait for a processing job: its MaxRuntimeInSeconds plus a margin.

    "MaxRuntimeInSeconds: Specifies the maximum runtime in seconds" (API_StoppingCondition);
    a wait shorter than that gives up on a job that is still allowed to run.
    """
    runtime = (config.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    if not runtime:
        raise ConfigError(f"{config.get('ProcessingJobName')}: the job has no MaxRuntimeInSeconds")
    return int(runtime) + WAIT_MARGIN_SECONDS
