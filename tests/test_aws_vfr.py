"""Variable-frame-rate video on AWS: converted to a constant rate first, its clips agree with the
local path's within one frame (a real clip made VFR with ffmpeg, MediaConvert as the strict fake).

Why convert: clipping timecodes count frames at the source's rate, and a VFR source has none
(frame k is not at k / average); how MediaConvert numbers the frames of such a source is not
documented, so the fake refuses to guess (and so should we).
"""

from __future__ import annotations

from pathlib import Path

import av
import boto3
import numpy as np
import pytest
from moto import mock_aws

from highlights.aws import plan as aws_plan
from highlights.aws.mediaconvert import clip_settings, needs_normalizing
from highlights.matches import match_for_object
from highlights.outputs.clips import cut_clip
from highlights.segments import Segment
from tests.fake_mediaconvert import FakeMediaConvert
from tests.media import real_clip, run_ffmpeg
from tests.test_aws_plan import VARIABLE

REGION = "eu-west-1"
NTSC = "vision/basketball.mp4"  # real footage, 29.97 frames/s
ROLE = VARIABLE["mediaconvert_role_arn"]



@pytest.fixture(scope="module")
def vfr(tmp_path_factory) -> Path:
    """Frames dropped unevenly (every 5th and every 7th kept), their timestamps kept."""
    path = tmp_path_factory.mktemp("vfr") / "phone.mp4"
    run_ffmpeg(["-i", str(real_clip(NTSC)), "-vf", "select='not(mod(n\\,5))+not(mod(n\\,7))'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-an", str(path)])  # fmt: skip
    return path


@pytest.fixture
def world(aws_credentials, strict_requests, tmp_path, vfr):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (VARIABLE["input_bucket"], VARIABLE["work_bucket"],
                       VARIABLE["highlights_bucket"]):  # fmt: skip
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        s3.upload_file(str(vfr), VARIABLE["input_bucket"], "incoming/phone.mp4")
        yield s3, FakeMediaConvert(s3, tmp_path / "mc", region=REGION, clock=lambda: 0.0)


def submit(fake: FakeMediaConvert, settings: dict, purpose: str) -> dict:
    job = fake.create_job(Role=ROLE, Settings=settings, UserMetadata={"purpose": purpose})["Job"]
    return fake.get_job(Id=job["Id"])["Job"]


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as video:
        return [f.to_ndarray(format="gray")[::8, ::8].astype(float) for f in video.decode(video=0)]


def source_frames(picture_list: list[np.ndarray], source: list[np.ndarray]) -> list[int]:
    """Which source frame each picture shows (the closest one)."""
    return [int(np.argmin([((p - s) ** 2).mean() for s in source])) for p in picture_list]


def test_a_vfr_source_is_clipped_from_its_constant_rate_copy_within_one_frame(world, vfr, tmp_path):
    from highlights.aws.dry_run import source_of

    s3, fake = world
    info = source_of(vfr)
    assert needs_normalizing(info), info.rate
    run = aws_plan.plan_run(
        aws_plan.aws_settings(VARIABLE), match_for_object("incoming/phone.mp4", '"e"'),
        backbone="efficientnet_lite0", capture_rate=5.0, targets=["Goal"], threshold=0.5,
        model="m",
    )  # fmt: skip
    assert submit(fake, aws_plan.normalize_request(run, info), "normalize")["Status"] == "COMPLETE"
    source = pictures(vfr)
    for n, (start, end) in enumerate([(2.0, 3.0), (4.3, 6.1), (0.0, 1.5)]):
        segment = Segment(start, end, 0.9, "Goal")
        (job,) = aws_plan.clip_requests(run, info, [segment])
        done = submit(fake, job["settings"], f"clip-{n}")
        assert done["Status"] == "COMPLETE", done.get("ErrorMessage")
        key = run.key_of(job["settings"]["OutputGroups"][0]["OutputGroupSettings"][
            "FileGroupSettings"]["Destination"]) + ".mp4"  # fmt: skip
        on_aws = tmp_path / f"aws-{n}.mp4"
        s3.download_file(run.highlights_bucket, key, str(on_aws))
        local = cut_clip(vfr, segment, tmp_path / f"local-{n}.mp4")
        aws_frames = source_frames(pictures(on_aws), source)
        local_frames = source_frames(pictures(local), source)
        assert abs(aws_frames[0] - local_frames[0]) <= 1, (start, aws_frames, local_frames)
        assert abs(aws_frames[-1] - local_frames[-1]) <= 1, (end, aws_frames, local_frames)


def test_clipping_the_vfr_source_at_its_average_rate_is_not_documented(world, vfr):
    """What the pipeline did before: timecodes at the average rate of the VFR upload."""
    from highlights.aws.dry_run import source_of

    _, fake = world
    info = source_of(vfr)
    url = f"s3://{VARIABLE['input_bucket']}/incoming/phone.mp4"
    settings = clip_settings(
        url, Segment(2.0, 3.0, 0.9, "Goal"), "s3://x-bucket/c", info.rate, False
    )
    job = submit(fake, settings, "clip")
    assert job["Status"] == "ERROR"
    assert "Not documented" in job["ErrorMessage"]
