"""AWS Elemental MediaConvert for tests: as strict as the service, doing what jobs ask with ffmpeg.

moto does not implement MediaConvert. `FakeMediaConvert(s3, scratch)` stands in for the boto3
`mediaconvert` client a hook gets (`create_job`, `get_job`, `list_jobs`, `probe`), answering
through a real botocore client and `Stubber`, so its responses are checked against the API model
too.

- Every request is validated in full against the botocore model (`tests/aws_strict.py`: enums,
  ranges, patterns, ... not only what botocore checks); a violation is a BadRequestException.
- Documented rules the model cannot hold are enforced at CreateJob, each quoting its source
  (`rule_violations`); `ClientRequestToken` dedupes for one minute of an injectable clock.
- A job's effect is made by `tests/mediaconvert_jobs.py` with its own timecode decoding and
  ffmpeg commands: frame captures, clips and reels from the job's settings. Settings it does not
  act on fail the job, and a job that fails there ends in ERROR with the reason.

Usage (as tests/test_dag_aws.py routes the hook's client to it):

    fake = FakeMediaConvert(s3_client, tmp_path, clock=clock)   # clock: seconds, monotonic
    fake.create_job(Role=..., Settings=..., ClientRequestToken=..., UserMetadata=...)
    fake.requests      # every CreateJob request, as sent
    fake.fail["frames"] = "message"   # jobs with UserMetadata purpose "frames" end in ERROR

Documentation quoted:
  [API]   https://docs.aws.amazon.com/mediaconvert/latest/apireference/ (the botocore model's
          member documentation is the same text)
  [IDEM]  https://docs.aws.amazon.com/mediaconvert/latest/apireference/idempotency.html
  [FCAP]  https://docs.aws.amazon.com/mediaconvert/latest/ug/file-group-with-frame-capture-output.html
  [ASSY]  https://docs.aws.amazon.com/mediaconvert/latest/ug/setting-up-an-assembly-workflow-job.html
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from tests.aws_strict import request_violations
from tests.mediaconvert_jobs import (
    FRAME_CAPTURE,
    JobError,
    Source,
    codec_of,
    not_modelled,
    read_source,
    run_job,
)

ACCOUNT = "123456789012"

# [IDEM] "If you reuse a client request token within one minute of a successful request, the
# API returns the job details of the original request instead."
TOKEN_WINDOW_SECONDS = 60.0
# [IDEM] "A client request token can be any string that includes up to 64 ASCII characters."
MAX_TOKEN_LENGTH = 64
# [ASSY] "You can have up to 150 inputs in a job."
MAX_INPUTS = 150
# [API ListJobs] "Retrieve a JSON array of up to twenty of your most recently created jobs."
LIST_PAGE = 20


# --- documented rules checked at CreateJob ---------------------------------------------------


def _outputs(settings: dict[str, Any]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    for g, group in enumerate(settings.get("OutputGroups") or []):
        for o, output in enumerate(group.get("Outputs") or []):
            yield g, o, output


def rule_violations(request: dict[str, Any]) -> list[str]:
    """Documented CreateJob rules that the API model cannot express, broken by `request`."""
    problems = []
    settings = request.get("Settings") or {}
    token = request.get("ClientRequestToken")
    if token is not None and (len(token) > MAX_TOKEN_LENGTH or not token.isascii()):
        problems.append(
            "ClientRequestToken: [IDEM] 'A client request token can be any string that "
            f"includes up to 64 ASCII characters.' Got {len(token)} characters"
        )
    inputs = settings.get("Inputs") or []
    if len(inputs) > MAX_INPUTS:
        problems.append(
            f"Settings.Inputs: [ASSY] 'You can have up to 150 inputs in a job.' Got {len(inputs)}"
        )
    outputs = list(_outputs(settings))
    codecs = {codec_of(output) for _, _, output in outputs}
    if FRAME_CAPTURE in codecs and not codecs - {None, FRAME_CAPTURE}:
        # Not documented: whether a video-only output satisfies "audio and video" for a silent
        # source; the fake accepts any non-frame-capture video output.
        problems.append(
            "Settings.OutputGroups: [FCAP] 'You can create frame capture outputs only in jobs "
            "that also have a regular audio and video output. MediaConvert doesn't support jobs "
            "that consist only of a frame capture output.'"
        )
    for g, group in enumerate(settings.get("OutputGroups") or []):
        group_outputs = group.get("Outputs") or []
        if len(group_outputs) > 1:
            for o, output in enumerate(group_outputs):
                if not output.get("NameModifier"):
                    problems.append(
                        f"Settings.OutputGroups[{g}].Outputs[{o}].NameModifier: [API Output] "
                        "'When you create multiple outputs in the same output group, Name "
                        "modifier is required.'"
                    )
    clipped = False
    for i, item in enumerate(inputs):
        for c, clipping in enumerate(item.get("InputClippings") or []):
            clipped = True
            if not clipping.get("StartTimecode") and not clipping.get("EndTimecode"):
                problems.append(
                    f"Settings.Inputs[{i}].InputClippings[{c}]: [API InputClipping] 'Start "
                    "timecode or End timecode may be left blank, but not both.'"
                )
    if clipped:
        for g, o, output in outputs:
            if not output.get("VideoDescription"):
                problems.append(
                    f"Settings.OutputGroups[{g}].Outputs[{o}]: [ASSY] 'You can't use input "
                    "clipping for audio-only jobs. All job outputs must have video.'"
                )
    return problems


# --- the service --------------------------------------------------------------------------------


@dataclass
class _TokenUse:
    job_id: str
    at: float  # clock() when the request that created the job succeeded


class FakeMediaConvert:
    """The `mediaconvert` client a hook gets: strict requests, documented rules, ffmpeg effects.

    `clock` (seconds, monotonic) times the one-minute ClientRequestToken window; pass a
    controllable one to test it without sleeping. `fail[purpose] = message` makes jobs whose
    `UserMetadata["purpose"]` matches end in ERROR with that message.
    """

    def __init__(
        self,
        s3: Any,
        scratch: Path,
        *,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s3 = s3
        self.scratch = Path(scratch)
        self.region = region
        self.clock = clock
        self.client = boto3.client(
            "mediaconvert", region_name=region,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        self.stub = Stubber(self.client)
        self.stub.activate()
        self.requests: list[dict[str, Any]] = []  # every CreateJob request, as sent
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> job
        self.tokens: dict[str, _TokenUse] = {}
        self.fail: dict[str, str] = {}
        self.lock = threading.RLock()

    # --- API

    def create_job(self, **params: Any) -> dict[str, Any]:
        with self.lock:
            self.requests.append(params)
            problems = [
                str(v)
                for v in request_violations(self.client.meta.service_model, "CreateJob", params)
            ]
            problems += rule_violations(params)
            if problems:
                return self._refuse("create_job", params, "BadRequestException", problems)
            token = params.get("ClientRequestToken")
            now = self.clock()
            earlier = self.tokens.get(token) if token else None
            if earlier is not None and now - earlier.at < TOKEN_WINDOW_SECONDS:
                # Not documented: whether "the job details of the original request" are the
                # job as it is now or as first returned; the fake answers as first returned.
                job = self.jobs[earlier.job_id]
            else:
                job = self._start(params)
                if token:
                    self.tokens[token] = _TokenUse(job["Id"], now)
            return self._answer("create_job", {"Job": _as_submitted(job)}, params)

    def get_job(self, **params: Any) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get(params.get("Id", ""))
            if job is None:
                return self._refuse(
                    "get_job",
                    params,
                    "NotFoundException",
                    [f"job {params.get('Id')} not found"],
                    404,
                )
            return self._answer("get_job", {"Job": job}, params)

    def list_jobs(self, **params: Any) -> dict[str, Any]:
        """[API ListJobs] "Retrieve a JSON array of up to twenty of your most recently created
        jobs. This array includes in-process, completed, and errored jobs. This will return the
        jobs themselves, not just a list of the jobs." Not documented: the default Order; the
        fake lists newest first unless ASCENDING is asked for."""
        with self.lock:
            problems = [
                str(v)
                for v in request_violations(self.client.meta.service_model, "ListJobs", params)
            ]
            if problems:
                return self._refuse("list_jobs", params, "BadRequestException", problems)
            jobs = [
                job
                for job in self.jobs.values()
                if params.get("Status") in (None, job["Status"])
                and params.get("Queue") in (None, job["Queue"], job["Queue"].rsplit("/", 1)[-1])
            ]
            jobs.sort(  # ids count up, so jobs made within one clock tick keep their order
                key=lambda job: (job["CreatedAt"], job["Id"]),
                reverse=params.get("Order") != "ASCENDING",
            )
            start = int(params["NextToken"].removeprefix("page-")) if "NextToken" in params else 0
            end = start + params.get("MaxResults", LIST_PAGE)
            response: dict[str, Any] = {"Jobs": jobs[start:end]}
            if end < len(jobs):
                response["NextToken"] = f"page-{end}"
            return self._answer("list_jobs", response, params)

    def probe(self, **params: Any) -> dict[str, Any]:
        with self.lock:
            problems = [
                str(v) for v in request_violations(self.client.meta.service_model, "Probe", params)
            ]
            if problems:
                return self._refuse("probe", params, "BadRequestException", problems)
            try:
                results = [self._probe_one(item["FileUrl"]) for item in params["InputFiles"]]
            except JobError as exc:
                return self._refuse(
                    "probe", params, "UnprocessableEntityException", [str(exc)], 422
                )
            return self._answer("probe", {"ProbeResults": results}, params)

    # --- stubbed answers

    def _answer(self, operation: str, response: dict[str, Any], params: dict[str, Any]) -> Any:
        self.stub.add_response(operation, response, params)
        return getattr(self.client, operation)(**params)

    def _refuse(
        self,
        operation: str,
        params: dict[str, Any],
        code: str,
        problems: list[str],
        status: int = 400,
    ) -> Any:
        message = "; ".join(problems)
        self.stub.add_client_error(operation, code, message, status, expected_params=params)
        return getattr(self.client, operation)(**params)

    # --- jobs

    def _start(self, params: dict[str, Any]) -> dict[str, Any]:
        number = len(self.jobs) + 1
        job_id = f"{1_700_000_000_000 + number}-{number:06d}"
        job: dict[str, Any] = {
            "Id": job_id,
            "Arn": f"arn:aws:mediaconvert:{self.region}:{ACCOUNT}:jobs/{job_id}",
            "Role": params["Role"],
            "Settings": params["Settings"],
            "UserMetadata": dict(params.get("UserMetadata") or {}),
            "Queue": params.get("Queue")
            or f"arn:aws:mediaconvert:{self.region}:{ACCOUNT}:queues/Default",
            "CreatedAt": datetime.now(UTC),
        }
        if params.get("ClientRequestToken"):
            job["ClientRequestToken"] = params["ClientRequestToken"]
        self.jobs[job_id] = job
        purpose = job["UserMetadata"].get("purpose")
        if purpose in self.fail:
            job.update(Status="ERROR", ErrorCode=1010, ErrorMessage=self.fail[purpose])
            return job
        try:
            settings = params["Settings"]
            sources = [self._source(item["FileInput"]) for item in settings["Inputs"]]
            details, files = run_job(settings, sources, self.scratch / job_id)
            for made in files:
                self._upload(made.local, made.url)
        except JobError as exc:
            job.update(Status="ERROR", ErrorMessage=str(exc))
            return job
        job.update(Status="COMPLETE", OutputGroupDetails=details)
        return job

    def _source(self, url: str) -> Source:
        if not url.startswith("s3://"):
            raise not_modelled(f"input {url} (only s3:// inputs)")
        bucket, key = url[5:].split("/", 1)
        local = self.scratch / "sources" / bucket / key
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.s3.download_file(bucket, key, str(local))
            except ClientError as exc:
                raise JobError(f"Unable to open input file [{url}]: {exc}") from None
        return read_source(url, local)

    def _upload(self, local: Path, url: str) -> None:
        bucket, key = url[5:].split("/", 1)
        self.s3.upload_file(str(local), bucket, key)

    # --- probe

    def _probe_one(self, url: str) -> dict[str, Any]:
        """[API Probe] "Probe returns a JSON that includes container, codec, frame rate,
        resolution, track count, audio layout, ..." Only what the fake can read is returned:
        "A field isn't returned when the source doesn't contain it"."""
        source = self._source(url)
        rate = source.rate
        video: dict[str, Any] = {
            "TrackType": "video",
            "Index": 1,
            "Codec": {
                "h264": "AVC",
                "hevc": "HEVC",
                "mpeg4": "MP4V",
                "vp9": "VP9",
                "av1": "AV1",
            }.get(source.codec, "UNKNOWN"),
            "Duration": float(source.end),
            "VideoProperties": {
                "FrameRate": {"Numerator": rate.numerator, "Denominator": rate.denominator},
                "Width": source.width,
                "Height": source.height,
            },
        }
        rotation = source.clockwise_rotation()
        if rotation:
            # [API VideoProperties.Rotation] "The clockwise rotation angle of the video track ...
            # This field is null when no rotation metadata is present or when the rotation is 0"
            video["VideoProperties"]["Rotation"] = rotation
        tracks = [video]
        if source.has_audio:
            tracks.append({"TrackType": "audio", "Index": 2})
        container: dict[str, Any] = {"Duration": float(source.end), "Tracks": tracks}
        formats = {
            ".mp4": "mp4",
            ".mov": "quicktime",
            ".mkv": "matroska",
            ".webm": "webm",
            ".avi": "avi",
        }
        suffix = PurePosixPath(url).suffix.lower()
        if suffix in formats:
            container["Format"] = formats[suffix]
        if source.timecode:
            container["StartTimecode"] = source.timecode
        return {"Container": container, "Metadata": {"FileSize": source.file_size}}


def _as_submitted(job: dict[str, Any]) -> dict[str, Any]:
    """CreateJob answers before the job runs."""
    submitted = {
        k: v for k, v in job.items() if k not in ("ErrorCode", "ErrorMessage", "OutputGroupDetails")
    }
    submitted["Status"] = "SUBMITTED"
    return submitted
