"""The bodies of the highlights DAG's tasks: one function per task, clients passed in.

Kept out of the DAG file so the file holds only wiring, and so these can be called (and read)
without Airflow. Nothing here creates an AWS client; the DAG makes them from `aws_default`.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from highlights.aws import plan as aws_plan
from highlights.aws.claims import S3Claims
from highlights.aws.mediaconvert import SourceInfo
from highlights.aws.plan import (  # noqa: F401 (the DAG files read these from here)
    AWS_KEYS,
    AWS_REQUIRED,
    AWS_VARIABLE,
    AwsSettings,
    RunPlan,
    aws_settings,
    run_plan,
)
from highlights.aws.s3 import S3Storage
from highlights.claims import Claim
from highlights.config import Config
from highlights.errors import ConfigError, InputError, SupersededError
from highlights.local.inbox import LocalInbox
from highlights.matches import HIGHLIGHTS_ROOT, Match, match_for_object, s3_url
from highlights.outputs.segments_json import read_segments_json
from highlights.segments import Segment

LOCAL_VARIABLE = "highlights_local"
TARGETS_VARIABLE = "highlights_targets"
BACKEND_VARIABLE = "highlights_backend"
BACKENDS = ("local", "aws")


def choose_backend(param: str | None, variable: str | None) -> str:
    """The run's `backend` param, else the `highlights_backend` Variable, else local."""
    backend = (param or variable or "local").strip().lower()
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def choose_targets(param: Sequence[str] | None, variable: Sequence[str] | str | None) -> list[str]:
    """The run's `targets` param, else the `highlights_targets` Variable (JSON list or CSV)."""
    chosen: Sequence[str] | str = param or variable or []
    if isinstance(chosen, str):
        chosen = chosen.split(",")
    targets = [str(t).strip() for t in chosen if str(t).strip()]
    if not targets:
        raise ConfigError(
            "no target classes: set the run's `targets` param or the "
            f"`{TARGETS_VARIABLE}` Variable (a JSON list of class names)"
        )
    return targets


@dataclass(frozen=True)
class DispatchSettings:
    """The `[highlights]` section of the Airflow configuration: how matches are dispatched."""

    max_active_runs: int = 3  # pipeline runs (matches) processed at once
    max_attempts: int = 3  # failed runs of one input before it is parked
    inbox_poll_seconds: float = 15.0  # how often the local dispatcher looks at the folder
    upload_visibility_seconds: int = 900  # received messages stay hidden this long (SQS)

    def __post_init__(self) -> None:
        if self.max_active_runs < 1 or self.max_attempts < 1:
            raise ConfigError("[highlights] max_active_runs and max_attempts must be at least 1")
        if self.inbox_poll_seconds <= 0:
            raise ConfigError("[highlights] inbox_poll_seconds must be positive")
        if not 30 <= self.upload_visibility_seconds <= 43200:
            raise ConfigError(
                "[highlights] upload_visibility_seconds must be between 30 and 43200 (an SQS limit)"
            )


@dataclass(frozen=True)
class LocalSettings:
    """The `highlights_local` Variable: the watched folder, where results go, the model."""

    incoming_dir: Path
    output_dir: Path
    model_dir: Path
    settle_seconds: float = 5.0

    @property
    def inbox(self) -> LocalInbox:
        return LocalInbox(self.incoming_dir, self.output_dir / ".claimed", self.settle_seconds)


def local_settings(variable: Mapping[str, Any] | None, home: Path) -> LocalSettings:
    """Defaults live under `home` (AIRFLOW_HOME): highlights/incoming, highlights/out, model."""
    variable = dict(variable or {})
    unknown = sorted(set(variable) - {"incoming_dir", "output_dir", "model_dir", "settle_seconds"})
    if unknown:
        raise ConfigError(f"`{LOCAL_VARIABLE}`: unknown keys {unknown}")
    base = Path(home) / "highlights"
    return LocalSettings(
        incoming_dir=Path(variable.get("incoming_dir", base / "incoming")),
        output_dir=Path(variable.get("output_dir", base / "out")),
        model_dir=Path(variable.get("model_dir", base / "model")),
        settle_seconds=float(variable.get("settle_seconds", 5.0)),
    )


# --- local backend ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalRun:
    """What every local task needs to find the files of one match."""

    match_id: str
    digest: str  # the video's sha256, so the features task need not hash it again
    video: str
    out_dir: str
    work_dir: str
    model_dir: str
    targets: list[str]
    threshold: float | None  # None: the model's calibrated thresholds


def claim_local_video(
    settings: LocalSettings,
    video: str,
    etag: str,
    run_id: str,
    targets: list[str],
    threshold: float | None,
) -> dict[str, Any]:
    """Record this run's attempt at the video and give the video its own output folder.

    A video in the watched folder must still be the version the run was started for (`etag`:
    size and modification time); a replaced one raises `SupersededError`, since the run
    started for the new version processes it.
    """
    from highlights.files import file_sha256
    from highlights.pipeline import claim_output_dir, match_id_for_digest

    if not video:
        raise ConfigError(
            "the run has no `video` param: the highlights_inbox DAG starts one run per file, "
            "or trigger highlights_pipeline with `video` set to a file"
        )
    path = Path(video)
    if not path.is_file():
        raise InputError(f"{path}: video file not found")
    if not settings.model_dir.is_dir():
        raise ConfigError(
            f"{settings.model_dir}: model folder not found; set model_dir in the "
            f"`{LOCAL_VARIABLE}` Variable to a folder made by `highlights train`"
        )
    inbox = settings.inbox
    if inbox.holds(path):
        current = inbox.video(path)
        if etag and etag != current.version:
            raise SupersededError(
                f"{path}: replaced since this run was started (version {etag}, now "
                f"{current.version}); the run started for the new version processes it"
            )
        claim = inbox.claims.read(path.name)
        if claim is None or claim.version != current.version:
            claim = current.fresh_claim()
        inbox.claims.write(path.name, claim.started(run_id))
    digest = file_sha256(path)
    match_id = match_id_for_digest(digest)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "match"
    out_dir = settings.output_dir / f"{stem}-{match_id}"
    claim_output_dir(out_dir, match_id)
    work_dir = out_dir / "work"
    work_dir.mkdir(exist_ok=True)
    run = LocalRun(
        match_id=match_id,
        digest=digest,
        video=str(path),
        out_dir=str(out_dir),
        work_dir=str(work_dir),
        model_dir=str(settings.model_dir),
        targets=targets,
        threshold=threshold,
    )
    return asdict(run)


def _update_local_claim(settings: LocalSettings, video: str, change: Any) -> None:
    """Apply `change` to the claim record of a video in the watched folder (others have none)."""
    if not video or not settings.inbox.holds(Path(video)):
        return
    inbox = settings.inbox
    name = Path(video).name
    claim = inbox.claims.read(name)
    if claim is None and Path(video).is_file():
        claim = inbox.video(Path(video)).fresh_claim()
    if claim is not None:
        inbox.claims.write(name, change(claim))


def finish_local_video(settings: LocalSettings, video: str, run_id: str) -> None:
    """The run succeeded: the video is done and no dispatcher pass will start it again."""
    _update_local_claim(settings, video, lambda claim: claim.succeeded(run_id))


def note_local_error(settings: LocalSettings, video: str, run_id: str, error: str) -> None:
    """A task of the run failed: keep its error with the attempt (the dispatcher decides)."""
    _update_local_claim(settings, video, lambda claim: claim.noted_error(run_id, error))


def local_config(run: Mapping[str, Any]) -> Config:
    """The detect config of a local run: the model's own rate, window and calibrated decisions,
    with the run's threshold (if it has one) on top."""
    from highlights.model import MANIFEST_FILE, ModelManifest
    from highlights.pipeline import config_for_model

    config = Config(cache_dir=Path(run["out_dir"]).parent / ".cache").replace(
        **{"segments.threshold": run["threshold"]}
    )
    return config_for_model(config, ModelManifest.read(Path(run["model_dir"]) / MANIFEST_FILE))


# --- aws backend: uploads ---------------------------------------------------------------------


def upload_claims(s3: Any, settings: AwsSettings) -> S3Claims:
    """Claim records live beside each match's outputs: `highlights/<match id>/run.json`."""
    return S3Claims(settings.highlights_bucket, s3, HIGHLIGHTS_ROOT)


def claimed_match_ids(s3: Any, settings: AwsSettings) -> set[str]:
    """Matches some run has claimed: the claim record is the first object in a match's folder,
    so the folders under `highlights/` are the claimed ids (one LIST, not a GET per upload)."""
    paginator = s3.get_paginator("list_objects_v2")
    return {
        folder["Prefix"][len(HIGHLIGHTS_ROOT) :].rstrip("/")
        for page in paginator.paginate(
            Bucket=settings.highlights_bucket, Prefix=HIGHLIGHTS_ROOT, Delimiter="/"
        )
        for folder in page.get("CommonPrefixes", [])
    }


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def claim_upload(
    s3: Any, settings: AwsSettings, key: str, etag: str, run_id: str
) -> dict[str, Any]:
    """Record this run's attempt at the upload; it must still be the version it was started for.

    `HeadObject` with `IfMatch` on the ETag: a newer upload under the same key (or a deleted
    one) raises `SupersededError`, since the newer upload has its own run.
    """
    if not key:
        raise ConfigError(
            "the run has no `key` param: the highlights_uploads DAG starts one run per upload, "
            "or trigger highlights_pipeline with `key` (and `etag`) set"
        )
    aws_plan.check_upload_key(settings, key)
    where = s3_url(settings.input_bucket, key)
    condition = {"IfMatch": f'"{etag.strip(chr(34))}"'} if etag else {}
    try:
        head = s3.head_object(Bucket=settings.input_bucket, Key=key, **condition)
    except Exception as exc:
        code = _error_code(exc)
        if code in ("412", "PreconditionFailed"):
            raise SupersededError(
                f"{where}: a newer upload replaced version {etag}; the newer upload's own run "
                "processes it"
            ) from None
        if code in ("404", "NoSuchKey", "NotFound"):
            raise SupersededError(f"{where}: deleted since this run was started") from None
        raise InputError(f"{where}: cannot read the upload: {exc}") from None
    match = match_for_object(key, head["ETag"])
    claims = upload_claims(s3, settings)
    claim = claims.read(match.match_id) or Claim(input=where, version=match.etag)
    claims.write(match.match_id, claim.started(run_id))
    return match_info(settings, match)


def _update_upload_claim(s3: Any, settings: AwsSettings, key: str, etag: str, change: Any) -> None:
    if not key or not etag:
        return
    match = match_for_object(key, etag)
    claims = upload_claims(s3, settings)
    claim = claims.read(match.match_id) or Claim(
        input=s3_url(settings.input_bucket, key), version=match.etag
    )
    claims.write(match.match_id, change(claim))


def finish_upload(s3: Any, settings: AwsSettings, match: Mapping[str, Any], run_id: str) -> None:
    """The run succeeded: the upload is done."""
    _update_upload_claim(
        s3, settings, match["key"], match["etag"], lambda claim: claim.succeeded(run_id)
    )


def note_upload_error(
    s3: Any, settings: AwsSettings, key: str, etag: str, run_id: str, error: str
) -> None:
    """A task of the run failed: keep its error with the attempt (the dispatcher decides)."""
    _update_upload_claim(s3, settings, key, etag, lambda claim: claim.noted_error(run_id, error))


def match_info(settings: AwsSettings, match: Match) -> dict[str, Any]:
    """The JSON-safe description of a match that the run's later tasks read from XCom."""
    return {
        "match_id": match.match_id,
        "key": match.key,
        "etag": match.etag,
        "source_url": s3_url(settings.input_bucket, match.key),
        "highlights_url": s3_url(settings.highlights_bucket, f"{HIGHLIGHTS_ROOT}{match.match_id}/"),
        "highlights_bucket": settings.highlights_bucket,
    }


def plan_upload(
    s3: Any,
    settings: AwsSettings,
    match: Mapping[str, Any],
    *,
    backbone: str,
    capture_rate: float,
    targets: Sequence[str],
    threshold: float | None,
) -> dict[str, Any]:
    """Where this run reads and writes and its jobs' names, from what determines each output
    (the model by its S3 ETags)."""
    plan = aws_plan.plan_run(
        settings,
        Match(match["match_id"], match["key"], match["etag"]),
        backbone=backbone,
        capture_rate=capture_rate,
        targets=targets,
        threshold=threshold,
        model=aws_plan.model_digest(s3, settings),
    )
    return plan.as_dict()


# --- aws backend: ranges and clips ------------------------------------------------------------


def publish_ranges(s3: Any, settings: AwsSettings, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ranges the scoring job decided: its segments.json, copied into the results folder.

    A re-run of the same decision finds the published copy (the scoring job is not run again,
    and its work copy is gone).
    """
    plan = run_plan(run)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "segments.json"
        try:
            S3Storage(settings.work_bucket, s3).get_file(
                f"{plan.key_of(plan.scores_url)}segments.json", path
            )
        except InputError:
            S3Storage(settings.highlights_bucket, s3).get_file(plan.segments_key, path)
        else:
            s3.upload_file(
                str(path),
                settings.highlights_bucket,
                plan.segments_key,
                ExtraArgs={"ContentType": "application/json"},
            )
        segments = read_segments_json(path).segments
    return [asdict(s) for s in segments]


def clip_jobs(
    run: Mapping[str, Any], source: Mapping[str, Any], segments: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One MediaConvert job request per range, for `.expand_kwargs`: settings and purpose."""
    return aws_plan.clip_requests(
        run_plan(run), SourceInfo(**source), [Segment(**s) for s in segments]
    )


def reel_job(
    run: Mapping[str, Any], source: Mapping[str, Any], segments: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The reel's job settings, or None when nothing was detected."""
    return aws_plan.reel_request(
        run_plan(run), SourceInfo(**source), [Segment(**s) for s in segments]
    )


def upload_results(run: Mapping[str, Any], count: int) -> dict[str, Any]:
    """Where a finished match's clips and reel are (the asset event's `extra`)."""
    plan = run_plan(run)
    bucket = plan.highlights_bucket
    return {
        "match_id": plan.match_id,
        "clips": [s3_url(bucket, f"{plan.clip_base(i)}.mp4") for i in range(count)],
        "reel": s3_url(bucket, f"{plan.reel_base}.mp4") if count else None,
        "folder": plan.results_url,
    }


# --- aws backend: email and cleanup -----------------------------------------------------------


def presigned_links(
    links: Any, settings: AwsSettings, run: Mapping[str, Any], count: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Expiring links (the bucket is private): one per clip, then the reel and segments.json.

    `links` is an S3 client from `highlights.aws.s3.link_client` (regional host)."""
    storage = S3Storage(settings.highlights_bucket, links)
    every = [
        (label, storage.url(key, settings.link_expiry_seconds))
        for label, key in aws_plan.link_keys(run_plan(run), count)
    ]
    return every[:count], every[count:]


def send_email_once(
    s3: Any,
    links: Any,
    ses: Any,
    settings: AwsSettings,
    run: Mapping[str, Any],
    segments: Sequence[Mapping[str, Any]],
) -> str:
    """Email the links unless this decision's email was already sent (a marker records it)."""
    from highlights.aws.ses import SesNotifier
    from highlights.outputs.notification import build_notification

    plan = run_plan(run)
    marker = plan.email_marker
    if S3Storage(settings.highlights_bucket, s3).exists(marker):
        sent = _read_json(s3, settings.highlights_bucket, marker)
        return f"already sent: {sent.get('message')}"
    clips, extra = presigned_links(links, settings, run, len(segments))
    notification = build_notification(
        Path(plan.key).name,
        [Segment(**s) for s in segments],
        clips,
        None,
        sender=settings.sender_email,
        recipients=settings.recipient_emails,
        extra_links=extra,
    )
    message = SesNotifier(ses, settings.sender_email).send(notification)
    record = {"message": message, "recipients": list(settings.recipient_emails)}
    s3.put_object(Bucket=settings.highlights_bucket, Key=marker, Body=json.dumps(record).encode())
    return message


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix` (one match's folder); returns how many."""
    if prefix.count("/") < 2 or not prefix.endswith("/"):
        raise ConfigError(f"refusing to delete s3://{bucket}/{prefix}: not a match folder")
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
