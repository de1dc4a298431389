"""`highlights aws-plan VIDEO` on real clips: it prints every request a run would send, each valid
for its service, with the same builders the DAG uses; it exits 2 when a request would be refused.
Cases: a phone video, the same video with rotation metadata, 29.97 frames/s, variable frame rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from highlights.aws.dry_run import s3_etag
from tests.aws_strict import check_request
from tests.media import real_clip, run_ffmpeg

PHONE = "penalty-kick-prediction/test_video.mp4"  # 360x640, 30 frames/s, with sound
NTSC = "vision/basketball.mp4"  # 640x360, 29.97 frames/s



def aws_plan(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "highlights.cli", "aws-plan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def planned(*args: str | Path) -> dict:
    result = aws_plan(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def request(plan: dict, task: str) -> dict:
    return next(r for r in plan["requests"] if r["task"] == task)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> Path:
    """The phone clip with display-matrix rotation (as a phone held sideways writes it)."""
    path = tmp_path_factory.mktemp("rotated") / "rotated.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(real_clip(PHONE)), "-c", "copy", str(path)])
    return path


@pytest.fixture(scope="module")
def vfr(tmp_path_factory) -> Path:
    """A real clip made variable-frame-rate: frames dropped unevenly, timestamps kept."""
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    run_ffmpeg(["-i", str(real_clip(NTSC)), "-vf", "select='not(mod(n\\,5))+not(mod(n\\,7))'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-an", str(path)])  # fmt: skip
    return path


def test_plan_of_a_phone_clip_lists_every_request_valid(tmp_path):
    video = real_clip(PHONE)
    plan = planned(video, "--range", "6-9.5", "--range", "1-2.5")
    assert plan["valid"] is True
    tasks = [r["task"] for r in plan["requests"]]
    assert tasks == [
        "aws.probe_upload", "aws.capture_frames", "aws.extract_features", "aws.score_windows",
        "aws.cut_clip", "aws.cut_clip", "aws.make_reel",
    ]  # fmt: skip
    for item in plan["requests"]:  # checked here independently of the command's own check
        check_request(item["service"], item["operation"], item["params"])
        assert item["violations"] == []
    clip = request(plan, "aws.cut_clip")["params"]["Settings"]["Inputs"][0]
    assert clip["InputClippings"][0] == {
        "StartTimecode": "00:00:01:00",
        "EndTimecode": "00:00:02:14",
    }
    assert plan["upload"]["etag"] == s3_etag(video)
    hosts = {link["host"] for link in plan["links"]}
    assert hosts == {f"{plan['plan']['highlights_bucket']}.s3.eu-west-1.amazonaws.com"}


def test_plan_of_a_rotated_clip_turns_it_upright(rotated):
    plan = planned(rotated)
    assert plan["source"]["rotation"] in (90, 270)
    capture = request(plan, "aws.capture_frames")["params"]["Settings"]
    assert capture["Inputs"][0]["VideoSelector"] == {"Rotate": "AUTO"}
    frames = capture["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
    # stored 360x640 turned a quarter: shown 640x360, short side at the backbone's 256
    assert (frames["Width"], frames["Height"]) == (456, 256)


def test_plan_of_a_2997_clip_counts_30_timecode_frames_a_second():
    plan = planned(real_clip(NTSC), "--range", "10-11")
    clipping = request(plan, "aws.cut_clip")["params"]["Settings"]["Inputs"][0]["InputClippings"]
    # 10 s at 30000/1001 is frame 299.7 -> 299; 11 s ends after frame 329. At 29.97 the
    # timecodes are drop-frame (';'), which skips no label in the first minute.
    assert clipping == [{"StartTimecode": "00:00:09;29", "EndTimecode": "00:00:10;29"}]


def test_plan_reads_the_ranges_of_a_segments_file(tmp_path):
    import numpy as np

    from highlights.config import SegmentConfig
    from highlights.outputs.segments_json import write_segments_json
    from highlights.segments import Segment
    from highlights.windows import WindowScores

    segments = tmp_path / "segments.json"
    scores = WindowScores(
        np.array([2.0, 3.0]), np.array([4.0, 5.0]), np.array([[0.9, 0.1], [0.2, 0.8]], np.float32),
        ("Goal", "Other"),
    )  # fmt: skip
    write_segments_json(segments, "x.mp4", 12.0, [Segment(2.0, 4.0, 0.9, "Goal")], scores,
                        ["Goal"], SegmentConfig())  # fmt: skip
    plan = planned(real_clip(PHONE), "--segments", segments)
    assert [r["task"] for r in plan["requests"]].count("aws.cut_clip") == 1


def test_plan_of_a_variable_frame_rate_clip_converts_it_first(vfr):
    plan = planned(vfr, "--range", "2-3")
    assert plan["valid"] is True
    normalize = request(plan, "aws.normalize_rate")["params"]["Settings"]
    h264 = normalize["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"]
    assert h264["H264Settings"]["FramerateControl"] == "SPECIFIED"
    copy = plan["plan"]["normalized_url"] + ".mp4"
    for task in ("aws.capture_frames", "aws.cut_clip", "aws.make_reel"):
        assert request(plan, task)["params"]["Settings"]["Inputs"][0]["FileInput"] == copy


def test_a_constant_rate_clip_is_not_converted():
    plan = planned(real_clip(NTSC))
    assert "aws.normalize_rate" not in [r["task"] for r in plan["requests"]]


def test_a_request_the_service_would_refuse_fails_the_plan(tmp_path):
    settings = tmp_path / "aws.json"
    settings.write_text(
        json.dumps(
            {
                "region": "eu-west-1", "input_bucket": "in", "input_prefix": "incoming/",
                "work_bucket": "work-bucket", "highlights_bucket": "hl-bucket",
                "results_table": "t", "mediaconvert_role_arn": "arn:aws:iam::123456789012:role/m",
                "sagemaker_role_arn": "not-an-arn",
                "processing_image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/h:1",
                "model_data_uri": "s3://hl-bucket/models/model.tar.gz",
                "sender_email": "a@example.com", "recipient_emails": ["b@example.com"],
            }
        )
    )  # fmt: skip
    result = aws_plan(real_clip(PHONE), "--aws-settings", settings)
    assert result.returncode == 2
    assert "aws.extract_features sagemaker CreateProcessingJob: RoleArn" in result.stderr
    assert json.loads(result.stdout)["valid"] is False


def test_a_video_that_is_not_there_is_named(tmp_path):
    result = aws_plan(tmp_path / "missing.mp4")
    assert result.returncode == 2
    assert "missing.mp4" in result.stderr
