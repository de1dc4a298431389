"""A 29.97 fps drop-frame video: clips start on the right frame locally and in MediaConvert.

The video is 62 s of 30000/1001 fps with a drop-frame timecode track, long enough to pass the
first minute, where drop-frame labels skip ;00 and ;01. Frame k is a flat grey of luma
16 + 8 x (k mod 28), so a decoded picture says which frame it is (to within 28 frames, and a
lossy re-encode moves luma by far less than the 8 between neighbours).

The truth: a range starting at 60.07 s starts on frame 1800, the frame on screen then
(1800 x 1001/30000 = 60.06 s; frame 1801 starts at 60.093 s). Drop-frame calls it 00:01:00;02.
The editor timelines name the same frames as the clips.
"""

from __future__ import annotations

from pathlib import Path

import av
import boto3
import numpy as np
import pytest
from moto import mock_aws

from highlights.aws import mediaconvert
from highlights.outputs.clips import cut_clip
from highlights.outputs.timelines import TIMELINE_FILES, read_timeline, write_timelines
from highlights.segments import Segment
from highlights.timecode import clip_frames
from highlights.video import probe
from tests.fake_mediaconvert import FakeMediaConvert
from tests.media import run_ffmpeg

NTSC = "30000/1001"
SECONDS = 62
PERIOD = 28  # frames before the grey ramp repeats
SEGMENT = Segment(60.07, 61.0, 0.9, "Goal")
FIRST = 1800  # the frame on screen at 60.07 s
LAST = 1828  # starts at 60.994 s, the last frame that starts before 61.0 s
BUCKET = "media-bucket"


def ramp_video(path: Path, rate: str, seconds: int, timecode: str) -> Path:
    """Frame k a flat grey of luma 16 + 8 x (k mod PERIOD), losslessly coded."""
    run_ffmpeg(["-f", "lavfi", "-i", f"nullsrc=s=64x48:r={rate}:d={seconds},"
                f"geq=lum=16+8*mod(N\\,{PERIOD}):cb=128:cr=128", "-c:v", "libx264", "-qp", "0",
                "-pix_fmt", "yuv420p", "-timecode", timecode, str(path)])  # fmt: skip
    return path


@pytest.fixture(scope="module")
def drop_frame_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ramp_video(tmp_path_factory.mktemp("drop-frame") / "ntsc-df.mp4", NTSC, SECONDS,
                      "00:00:00;00")  # fmt: skip


@pytest.fixture(scope="module")
def pal_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ramp_video(tmp_path_factory.mktemp("pal") / "pal.mp4", "25", 4, "00:00:00:00")


def ramp_phase(frame: av.VideoFrame) -> int:
    """k mod PERIOD of the source frame this picture shows."""
    plane = np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)
    luma = plane[: frame.height, : frame.width].astype(float).mean()
    return round((luma - 16) / 8) % PERIOD


def phases(video: Path) -> list[int]:
    with av.open(str(video)) as container:
        return [ramp_phase(frame) for frame in container.decode(video=0)]


def test_the_test_video_is_29_97_with_a_drop_frame_timecode(drop_frame_video: Path) -> None:
    assert str(av.open(str(drop_frame_video)).streams.video[0].average_rate) == NTSC
    with av.open(str(drop_frame_video)) as container:
        assert container.streams.video[0].metadata.get("timecode", "") == "00:00:00;00" or (
            container.metadata.get("timecode") == "00:00:00;00"
        )


def test_a_local_clip_starts_on_the_frame_on_screen_at_its_start(
    drop_frame_video: Path, tmp_path: Path
) -> None:
    clip = cut_clip(drop_frame_video, SEGMENT, tmp_path / "clip.mp4")
    assert phases(clip) == [k % PERIOD for k in range(FIRST, LAST + 1)]
    assert probe(clip).duration == pytest.approx((LAST + 1 - FIRST) * 1001 / 30000, abs=1e-3)


def test_the_mediaconvert_clip_names_the_same_frames_in_drop_frame(
    drop_frame_video: Path, tmp_path: Path, aws_credentials: None
) -> None:
    info = probe(drop_frame_video)
    settings = mediaconvert.clip_settings(
        f"s3://{BUCKET}/in/ntsc-df.mp4", SEGMENT, f"s3://{BUCKET}/clips/c", info.rate, False
    )
    clipping = settings["Inputs"][0]["InputClippings"][0]
    assert clipping == {"StartTimecode": "00:01:00;02", "EndTimecode": "00:01:01;00"}
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(drop_frame_video), BUCKET, "in/ntsc-df.mp4")
        fake = FakeMediaConvert(s3, tmp_path / "mediaconvert")
        job = fake.create_job(
            Role="arn:aws:iam::123456789012:role/mediaconvert",
            Settings=settings,
            ClientRequestToken="drop-frame",
            UserMetadata={"purpose": "clip-000"},
        )["Job"]
        assert fake.get_job(Id=job["Id"])["Job"]["Status"] == "COMPLETE"
        s3.download_file(BUCKET, "clips/c.mp4", str(tmp_path / "c.mp4"))
    assert phases(tmp_path / "c.mp4") == [k % PERIOD for k in range(FIRST, LAST + 1)]


@pytest.mark.parametrize(
    ("video", "segment", "first", "stop"),
    [
        ("drop_frame_video", SEGMENT, FIRST, LAST + 1),
        # frame 50 starts at 2.0 s, 51 at 2.04 s; 3.01 x 25 = 75.25: frame 75 is the last
        ("pal_video", Segment(2.03, 3.01, 0.9, "Goal"), 50, 76),
    ],
)
def test_each_timeline_clip_holds_the_frames_of_the_cut_clip(
    video: str,
    segment: Segment,
    first: int,
    stop: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """A start between two frames: the timeline starts on the cut clip's first frame, the one
    on screen at the start (not the next one, which starts after it)."""
    source = request.getfixturevalue(video)
    info = probe(source)
    frames = clip_frames(segment.start, segment.end, info.rate, info.duration)
    assert (frames[0].frame, frames[1].frame) == (first, stop)
    clip = cut_clip(source, segment, tmp_path / "clip.mp4")
    assert phases(clip) == [k % PERIOD for k in range(first, stop)]  # what the clip shows
    write_timelines(info, [segment], tmp_path, ["clip.mp4"])
    for name in TIMELINE_FILES:
        timeline = read_timeline(tmp_path / name, info.rate)  # held: it owns its clips
        [track] = [t for t in timeline.tracks if t.kind == "Video"]
        [timeline_clip] = track.find_clips()
        span = timeline_clip.source_range
        assert span.start_time.rate == pytest.approx(float(info.rate), rel=1e-9), name
        assert (span.start_time.value, span.end_time_exclusive().value) == (first, stop), name
