"""`highlights aws-plan VIDEO`: every AWS request a run of the DAG would send for a local video,
built by the DAG's own builders (`highlights/aws/plan.py`) and checked against the botocore
service models in full (`highlights/aws/validation.py`), before anything is uploaded or paid for.

The video is probed here (PyAV) and stands for the upload: its match id comes from the key it
would be uploaded under and the ETag S3 would give it (boto3's and the AWS CLI's 8 MiB parts).
Clipping jobs are planned for the ranges given (`--range`), or those of a local segments.json.
The email's links are presigned with placeholder credentials: only their host and form matter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from highlights.aws.mediaconvert import SourceInfo
from highlights.aws.plan import (
    AwsSettings,
    aws_settings,
    capture_request,
    check_upload_key,
    clip_requests,
    features_request,
    link_keys,
    normalize_request,
    plan_run,
    reel_request,
    scores_request,
    volume_gb,
)
from highlights.errors import InputError
from highlights.matches import match_for_object
from highlights.segments import Segment

MULTIPART_CHUNK = 8 * 1024 * 1024  # boto3's and the AWS CLI's default part size and threshold
ACCOUNT = "123456789012"  # placeholder account of the example settings
PLACEHOLDER_MODEL = "unknown-model"


def example_settings(region: str) -> AwsSettings:
    """What Terraform's `airflow_variables` output looks like, for a plan without one."""
    name = f"highlights-{ACCOUNT}-{region}"
    return aws_settings(
        {
            "region": region,
            "input_bucket": f"{name}-input",
            "input_prefix": "incoming/",
            "work_bucket": f"{name}-work",
            "highlights_bucket": f"{name}-highlights",
            "results_table": "highlights-windows",
            "mediaconvert_role_arn": f"arn:aws:iam::{ACCOUNT}:role/highlights-mediaconvert",
            "sagemaker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/highlights-sagemaker",
            "processing_image_uri": f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/highlights:model-1",
            "model_data_uri": f"s3://{name}-highlights/models/model.tar.gz",
            "sender_email": "highlights@example.com",
            "recipient_emails": ["coach@example.com"],
        }
    )


def s3_etag(path: Path, chunk: int = MULTIPART_CHUNK) -> str:
    """The ETag S3 gives `path` uploaded by boto3 or the AWS CLI with default settings: the MD5
    of the file, or beyond one part the MD5 of the parts' MD5s and the part count."""
    parts = []
    with Path(path).open("rb") as file:
        while block := file.read(chunk):
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    if not parts:
        return hashlib.md5(b"", usedforsecurity=False).hexdigest()
    if Path(path).stat().st_size < chunk:  # below the multipart threshold: one PutObject
        return parts[0].hex()
    joined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(parts)}"


def source_of(video: Path) -> SourceInfo:
    """What MediaConvert's Probe would say, read locally: stored size, rotation, rate, audio."""
    from highlights.video import probe

    info = probe(video)
    turned = info.rotation in (90, 270)
    return SourceInfo(
        duration=info.duration,
        rate=info.rate,
        has_audio=info.has_audio,
        width=info.height if turned else info.width,
        height=info.width if turned else info.height,
        rotation=info.rotation,
    )


@dataclass(frozen=True)
class PlannedRequest:
    task: str  # the DAG task that sends it
    service: str
    operation: str
    params: dict[str, Any]
    violations: list[str]


def _request(task: str, service: str, operation: str, params: dict[str, Any]) -> PlannedRequest:
    from highlights.aws.validation import request_violations

    problems = [str(v) for v in request_violations(service, operation, params)]
    return PlannedRequest(task, service, operation, params, problems)


def dry_run(
    video: Path,
    *,
    settings: AwsSettings,
    key: str,
    segments: Sequence[Segment],
    targets: Sequence[str],
    threshold: float | None,
    backbone: str,
    capture_rate: float,
    instance_type: str = "ml.m5.xlarge",
    features_instances: int = 1,
    model: str = PLACEHOLDER_MODEL,
) -> dict[str, Any]:
    """The plan as JSON-safe data: the source, the run's names and every request, checked."""
    check_upload_key(settings, key)
    source = source_of(video)
    match = match_for_object(key, s3_etag(video))
    run = plan_run(
        settings, match, backbone=backbone, capture_rate=capture_rate, targets=targets,
        threshold=threshold, model=model,
    )  # fmt: skip
    size = volume_gb(source, backbone, capture_rate, features_instances)
    processing = settings.processing(instance_type, features_instances, size)
    role = settings.mediaconvert_role_arn

    def create_job(purpose: str, job_settings: dict[str, Any]) -> dict[str, Any]:
        # What the operator sends; its ClientRequestToken is a uuid (shape checked here).
        from highlights.aws.mediaconvert import client_request_token, request_key

        request = request_key(match.match_id, purpose, job_settings)
        return {
            "Role": role,
            "Settings": job_settings,
            "ClientRequestToken": client_request_token(request),
            "UserMetadata": {"match_id": match.match_id, "purpose": purpose, "request": request},
        }

    requests = [
        _request("aws.probe_upload", "mediaconvert", "Probe",
                 {"InputFiles": [{"FileUrl": run.source_url}]}),
    ]  # fmt: skip
    normalize = normalize_request(run, source)
    if normalize is not None:
        requests.append(
            _request("aws.normalize_rate", "mediaconvert", "CreateJob",
                     create_job("normalize", normalize))
        )  # fmt: skip
    requests += [
        _request("aws.capture_frames", "mediaconvert", "CreateJob",
                 create_job("frames", capture_request(run, source, backbone, capture_rate))),
        _request("aws.extract_features", "sagemaker", "CreateProcessingJob",
                 features_request(run, processing, backbone=backbone, rate=capture_rate)),
        _request("aws.score_windows", "sagemaker", "CreateProcessingJob",
                 scores_request(run, settings, processing, source, targets=targets,
                                threshold=threshold)),
    ]  # fmt: skip
    for job in clip_requests(run, source, segments):
        requests.append(
            _request("aws.cut_clip", "mediaconvert", "CreateJob",
                     create_job(job["purpose"], job["settings"]))
        )  # fmt: skip
    reel = reel_request(run, source, segments)
    if reel is not None:
        requests.append(
            _request("aws.make_reel", "mediaconvert", "CreateJob", create_job("reel", reel))
        )
    links = _links(settings, run.highlights_bucket, link_keys(run, len(segments)))
    return {
        "video": str(video),
        "source": asdict(source),
        "upload": {"bucket": settings.input_bucket, "key": key, "etag": match.etag},
        "plan": run.as_dict(),
        "model": model,
        "requests": [asdict(r) for r in requests],
        "links": links,
        "valid": not any(r.violations for r in requests)
        and not any(link["problems"] for link in links),
    }


def _links(settings: AwsSettings, bucket: str, keys: list[tuple[str, str]]) -> list[dict]:
    """The email's links as the DAG signs them (placeholder credentials), and their hosts."""
    import boto3

    from highlights.aws.s3 import S3Storage, link_client
    from highlights.aws.validation import request_violations

    session = boto3.session.Session(  # placeholders from the AWS docs: links are not used
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    storage = S3Storage(bucket, link_client(session, settings.region))
    expected = f"{bucket}.{urlsplit(_endpoint(settings.region)).hostname}"
    found = []
    for label, key in keys:
        url = storage.url(key, settings.link_expiry_seconds)
        host = urlsplit(url).hostname
        problems = [
            str(v) for v in request_violations("s3", "GetObject", {"Bucket": bucket, "Key": key})
        ]
        if host != expected:
            problems.append(f"host {host} is not the bucket's regional endpoint {expected}")
        found.append({"label": label, "host": host, "key": key, "problems": problems})
    return found


def _endpoint(region: str) -> str:
    from highlights.aws.s3 import regional_s3_endpoint

    return regional_s3_endpoint(region)


def read_settings(path: Path | None, region: str) -> AwsSettings:
    if path is None:
        return example_settings(region)
    try:
        return aws_settings(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise InputError(f"{path}: settings file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON file: {exc}") from None
