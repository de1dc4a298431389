"""Every AWS request of one match's run, built without AWS: the DAG's tasks and `highlights
aws-plan` both use these builders, so the dry run shows exactly what a run would send.

A run's outputs are named by what determines them, so a re-run with new settings never adopts
an old result and a re-run with nothing changed makes nothing new:

- the features recipe (`features_recipe`): the match, backbone, its weights, the capture rate
  and the frame size; it names the frames, the proxy, the features and the features job;
- the decision (`decision_digest`): the recipe, the model (its S3 ETags, or the endpoint) and
  the decision settings (targets, and the threshold if one is given: without one the model's
  calibrated settings decide, and the model's ETags pin them); it names the scores, the scores
  job and the results folder (segments.json, clips, reel, the email marker).

A new threshold therefore re-scores only: the capture and the features of the recipe are found
and kept. Scratch data is removed only once the steps that read it succeeded; whatever a failed
run leaves is expired by the work bucket's lifecycle rule.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from highlights.aws.mediaconvert import (
    SourceInfo,
    at_standard_rate,
    capture_short_side,
    clip_settings,
    frame_capture_settings,
    needs_normalizing,
    normalize_settings,
    normalized_info,
    reel_settings,
    scaled_size,
)
from highlights.aws.sagemaker_jobs import ProcessingSettings, features_job, job_name, scores_job
from highlights.errors import ConfigError, InputError
from highlights.matches import HIGHLIGHTS_ROOT, Match, s3_url
from highlights.segments import Segment
from highlights.timecode import frames_before

AWS_VARIABLE = "highlights_aws"
AWS_KEYS = (
    "region", "input_bucket", "input_prefix", "work_bucket", "highlights_bucket",
    "results_table", "upload_queue_url", "mediaconvert_role_arn", "mediaconvert_endpoint",
    "sagemaker_role_arn", "processing_image_uri", "endpoint_name", "model_data_uri",
    "sender_email", "recipient_emails", "link_expiry_seconds",
)  # fmt: skip
AWS_REQUIRED = (
    "region", "input_bucket", "work_bucket", "highlights_bucket", "results_table",
    "mediaconvert_role_arn", "sagemaker_role_arn", "processing_image_uri", "sender_email",
    "recipient_emails",
)  # fmt: skip
MODEL_ARCHIVE = "model.tar.gz"  # the name processing/score_windows.py unpacks
DIGEST_CHARS = 10
# Processing volume sizing: JPEG frames at quality 80 take about 0.3 bytes per pixel; the
# volume holds an instance's share of them plus the features, with room to spare.
JPEG_BYTES_PER_PIXEL = 0.3
MIN_VOLUME_GB = 10
MAX_VOLUME_GB = 16384  # ProcessingClusterConfig.VolumeSizeInGB's maximum


@dataclass(frozen=True)
class AwsSettings:
    """The `highlights_aws` Variable (Terraform's `airflow_variables` output), checked."""

    region: str
    input_bucket: str
    work_bucket: str
    highlights_bucket: str
    results_table: str
    mediaconvert_role_arn: str
    sagemaker_role_arn: str
    processing_image_uri: str
    sender_email: str
    recipient_emails: tuple[str, ...]
    input_prefix: str = ""
    link_expiry_seconds: int = 7 * 24 * 3600
    upload_queue_url: str = ""
    mediaconvert_endpoint: str = ""
    endpoint_name: str = ""
    model_data_uri: str = ""

    def processing(
        self, instance_type: str, instance_count: int, volume_gb: int = 30
    ) -> ProcessingSettings:
        return ProcessingSettings(
            role_arn=self.sagemaker_role_arn,
            image_uri=self.processing_image_uri,
            instance_type=instance_type,
            features_instance_count=instance_count,
            volume_gb=volume_gb,
        )


def aws_settings(variable: Mapping[str, Any] | None) -> AwsSettings:
    if not variable:
        raise ConfigError(f"the `{AWS_VARIABLE}` Variable is not set (JSON, see dags/README.md)")
    unknown = sorted(set(variable) - set(AWS_KEYS))
    if unknown:
        raise ConfigError(f"`{AWS_VARIABLE}`: unknown keys {unknown}")
    missing = [k for k in AWS_REQUIRED if not variable.get(k)]
    if missing:
        raise ConfigError(f"`{AWS_VARIABLE}`: missing {', '.join(missing)}")
    values = dict(variable)
    recipients = values.get("recipient_emails") or []
    values["recipient_emails"] = tuple([recipients] if isinstance(recipients, str) else recipients)
    values["link_expiry_seconds"] = int(values.get("link_expiry_seconds") or 7 * 24 * 3600)
    values["input_prefix"] = _folder(values.get("input_prefix") or "")
    settings = AwsSettings(**{k: v for k, v in values.items() if v is not None})
    if not settings.endpoint_name and not settings.model_data_uri:
        raise ConfigError(f"`{AWS_VARIABLE}`: set model_data_uri or endpoint_name")
    check_model_uri(settings.model_data_uri)
    return settings


def check_model_uri(uri: str) -> None:
    """The model is a folder (`s3://.../`) or an archive named model.tar.gz: the scoring job
    looks for exactly that name and would not find `final-model.tar.gz`."""
    if not uri or uri.endswith("/"):
        return
    if not uri.startswith("s3://") or PurePosixPath(uri).name != MODEL_ARCHIVE:
        raise ConfigError(
            f"`{AWS_VARIABLE}`: model_data_uri {uri} must be an s3:// folder ending in '/' or an "
            f"archive named {MODEL_ARCHIVE} (the scoring job unpacks only that name)"
        )


def _folder(prefix: str) -> str:
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else f"{prefix}/"


def check_upload_key(settings: AwsSettings, key: str) -> None:
    """MediaConvert's role may read only the input prefix: refuse any other key up front,
    instead of an AccessDenied from MediaConvert minutes later."""
    if settings.input_prefix and not key.startswith(settings.input_prefix):
        raise InputError(
            f"s3://{settings.input_bucket}/{key}: not under the input prefix "
            f"{settings.input_prefix!r}, which is all MediaConvert may read; upload it there"
        )


# --- what names a run's outputs ------------------------------------------------------------------


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def features_recipe(match_id: str, backbone: str, capture_rate: float) -> str:
    """The digest of what determines a match's features: the match, the backbone and its weights
    (the packaged ones the processing image holds), the capture rate and the frame size."""
    return _digest(
        "features", match_id, backbone, "packaged-weights", repr(float(capture_rate)),
        capture_short_side(backbone),
    )  # fmt: skip


def decision_digest(
    recipe: str, model: str, targets: Sequence[str], threshold: float | None
) -> str:
    """The digest of what determines the ranges: the features recipe, the model and the
    decision settings (`None`: the model's calibrated ones)."""
    given = "calibrated" if threshold is None else repr(float(threshold))
    return _digest("decision", recipe, model, list(targets), given)


def model_digest_of(listing: Sequence[tuple[str, str]]) -> str:
    """A model's digest from its objects' (key, ETag) pairs, as S3 lists them."""
    if not listing:
        raise ConfigError("the model archive or folder is empty or missing")
    return _digest("model", sorted(listing))


def model_digest(s3: Any, settings: AwsSettings) -> str:
    """The model the scoring job will use: its S3 objects' ETags, or the endpoint's name."""
    if not settings.model_data_uri:
        return _digest("endpoint", settings.endpoint_name)
    bucket, _, key = settings.model_data_uri.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
    listing = [
        (item["Key"], item["ETag"])
        for page in pages
        for item in page.get("Contents", [])
        if key.endswith("/") or item["Key"] == key
    ]
    if not listing:
        raise ConfigError(f"{settings.model_data_uri}: no model there")
    return model_digest_of(listing)


# --- one run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """Where one run of one match reads and writes, and its jobs' names (JSON-safe: XCom)."""

    match_id: str
    key: str
    etag: str
    source_url: str
    highlights_bucket: str
    work_bucket: str
    features_recipe: str
    decision: str
    normalized_url: str  # work bucket: a variable-rate source at a constant rate (no '.mp4')
    frames_url: str  # work bucket: the recipe's JPEG frames
    proxy_url: str  # work bucket: the frame-capture job's proxy MP4 (key without '.mp4')
    features_url: str  # work bucket: the recipe's feature shards (kept for re-scoring)
    scores_url: str  # work bucket: the decision's scoring output
    results_url: str  # highlights bucket: the decision's segments.json, clips, reel, marker
    features_job_name: str
    scores_job_name: str

    def key_of(self, url: str) -> str:
        return url.removeprefix("s3://").partition("/")[2]

    @property
    def results_prefix(self) -> str:
        return self.key_of(self.results_url)

    def clip_base(self, index: int) -> str:
        """Key of clip `index` without its extension (MediaConvert appends '.mp4')."""
        return f"{self.results_prefix}clips/clip-{index:03d}"

    @property
    def reel_base(self) -> str:
        return f"{self.results_prefix}reel"

    @property
    def segments_key(self) -> str:
        return f"{self.results_prefix}segments.json"

    @property
    def email_marker(self) -> str:
        return f"{self.results_prefix}email-sent.json"

    def scratch(self, folder: str) -> str:
        """The work-bucket prefix of one scratch folder: frames, proxy or scores."""
        urls = {
            "frames": self.frames_url,
            "proxy": self.proxy_url,
            "scores": self.scores_url,
            "normalized": self.normalized_url,
        }
        key = self.key_of(urls[folder])
        return key if key.endswith("/") else key.rsplit("/", 1)[0] + "/"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_run(
    settings: AwsSettings,
    match: Match,
    *,
    backbone: str,
    capture_rate: float,
    targets: Sequence[str],
    threshold: float | None,
    model: str,
) -> RunPlan:
    recipe = features_recipe(match.match_id, backbone, capture_rate)
    decision = decision_digest(recipe, model, targets, threshold)
    mid = match.match_id
    work = settings.work_bucket
    return RunPlan(
        match_id=mid,
        key=match.key,
        etag=match.etag,
        source_url=s3_url(settings.input_bucket, match.key),
        highlights_bucket=settings.highlights_bucket,
        work_bucket=work,
        features_recipe=recipe,
        decision=decision,
        normalized_url=s3_url(work, f"normalized/{mid}/source"),
        frames_url=s3_url(work, f"frames/{mid}/{recipe}/"),
        proxy_url=s3_url(work, f"proxies/{mid}/{recipe}/proxy"),
        features_url=s3_url(work, f"features/{mid}/{recipe}/"),
        scores_url=s3_url(work, f"scores/{mid}/{decision}/"),
        results_url=s3_url(settings.highlights_bucket, f"{HIGHLIGHTS_ROOT}{mid}/{decision}/"),
        features_job_name=job_name(mid, "features", recipe),
        scores_job_name=job_name(mid, "scores", decision),
    )


def run_plan(run: Mapping[str, Any] | RunPlan) -> RunPlan:
    return run if isinstance(run, RunPlan) else RunPlan(**run)


# --- the requests -------------------------------------------------------------------------------


def media(run: RunPlan, source: SourceInfo) -> tuple[str, SourceInfo]:
    """What the capture and clipping jobs read: the upload, or for a variable-frame-rate source
    its constant-rate copy (`normalize_request`), and what that file is."""
    if needs_normalizing(source):
        return f"{run.normalized_url}.mp4", normalized_info(source)
    return run.source_url, at_standard_rate(source)


def normalize_request(run: RunPlan, source: SourceInfo) -> dict | None:
    """The job converting a variable-frame-rate upload to a constant rate, or None."""
    if not needs_normalizing(source):
        return None
    return normalize_settings(run.source_url, run.normalized_url, source)


def capture_request(run: RunPlan, source: SourceInfo, backbone: str, rate: float) -> dict:
    """The frame-capture job's settings (MediaConvert CreateJob `Settings`)."""
    url, info = media(run, source)
    return frame_capture_settings(
        url, run.frames_url, run.proxy_url, rate, info, capture_short_side(backbone)
    )


def volume_gb(source: SourceInfo, backbone: str, rate: float, instances: int) -> int:
    """A processing volume for one instance's share of the frames, sized from the match."""
    short = capture_short_side(backbone)
    width, height = scaled_size(source.display_size, short) or source.display_size
    pixels = max(width * height, short * short)
    frames = math.ceil(frames_before(source.duration, rate) / max(1, instances)) + 1
    need = frames * pixels * JPEG_BYTES_PER_PIXEL * 2 / 1e9  # frames and room as much again
    return int(min(MAX_VOLUME_GB, max(MIN_VOLUME_GB, math.ceil(need) + MIN_VOLUME_GB)))


def features_request(
    run: RunPlan, processing: ProcessingSettings, *, backbone: str, rate: float
) -> dict:
    """The features job's CreateProcessingJob request."""
    return features_job(
        run.match_id, run.frames_url, run.features_url, processing,
        capture_rate=rate, backbone=backbone, name=run.features_job_name,
    )  # fmt: skip


def scores_request(
    run: RunPlan,
    settings: AwsSettings,
    processing: ProcessingSettings,
    source: SourceInfo,
    *,
    targets: Sequence[str],
    threshold: float | None,
) -> dict:
    """The scoring job's CreateProcessingJob request."""
    return scores_job(
        run.match_id,
        run.features_url,
        run.scores_url,
        replace(processing, features_instance_count=1),
        table=settings.results_table,
        region=settings.region,
        targets=list(targets),
        threshold=threshold,
        duration=source.duration,
        video_name=PurePosixPath(run.key).name,
        model_uri=settings.model_data_uri or None,
        endpoint=None if settings.model_data_uri else settings.endpoint_name,
        name=run.scores_job_name,
    )


def clip_requests(
    run: RunPlan, source: SourceInfo, segments: Sequence[Segment]
) -> list[dict[str, Any]]:
    """One clip job per range: its settings and purpose."""
    url, info = media(run, source)
    return [
        {
            "settings": clip_settings(
                url,
                segment,
                s3_url(run.highlights_bucket, run.clip_base(index)),
                info.rate,
                info.has_audio,
            ),
            "purpose": f"clip-{index:03d}",
            # a clip of this decision that exists is this clip: a re-run does not cut it again
            "skip_when_present": s3_url(run.highlights_bucket, f"{run.clip_base(index)}.mp4"),
        }
        for index, segment in enumerate(segments)
    ]


def reel_request(run: RunPlan, source: SourceInfo, segments: Sequence[Segment]) -> dict | None:
    """The reel job's settings, or None when nothing was detected."""
    if not segments:
        return None
    url, info = media(run, source)
    return reel_settings(
        url,
        list(segments),
        s3_url(run.highlights_bucket, run.reel_base),
        info.rate,
        info.has_audio,
    )


def link_keys(run: RunPlan, count: int) -> list[tuple[str, str]]:
    """(label, key) of every link the email sends: each clip, the reel, segments.json."""
    clips = [(f"clip-{i:03d}.mp4", f"{run.clip_base(i)}.mp4") for i in range(count)]
    reel = [("Highlight reel", f"{run.reel_base}.mp4")] if count else []
    return [*clips, *reel, ("segments.json", run.segments_key)]
