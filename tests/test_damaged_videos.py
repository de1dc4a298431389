"""Real recordings have glitches: `highlights detect` decodes past them, says what it lost, and
refuses a video only when too much of it is lost."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from highlights.cli import main
from highlights.synthetic import EVENT_CLASS
from tests.media import (
    REAL_SOCCER_CLIP,
    SHARED_VIDEOS_DIR,
    damaged_copy,
    looped,
    mid_gop_cut,
)

REPO = Path(__file__).resolve().parents[1]


def real_clip(name: str) -> Path:
    path = SHARED_VIDEOS_DIR / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"shared real video {path} is missing (CI must have it)")
        pytest.skip(f"shared real video not found at {path}")
    return path


@pytest.fixture(scope="module")
def long_real_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 s of a real soccer clip played four times over, stream-copied (real H.264)."""
    folder = tmp_path_factory.mktemp("real")
    return looped(real_clip(REAL_SOCCER_CLIP), folder / "penalty-24s.mp4", seconds=24)


def detect(video: Path, model: Path, out: Path, cache: Path, *extra: str) -> int:
    """The real command, every window passing (`--threshold 0`) so that clips are cut."""
    return main(
        ["detect", str(video), "--model", str(model), "--target", EVENT_CLASS]
        + ["--out", str(out), "--cache-dir", str(cache), "--threshold", "0", "--quiet", *extra]
    )


def test_damaged_bytes_in_the_middle_are_reported_and_the_clips_come_out(
    long_real_video: Path, trained_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = damaged_copy(long_real_video, tmp_path / "glitch.mp4", size=4096, at=0.5)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert detect(video, trained_model, out, tmp_path / "cache") == 0
    assert "glitch.mp4: could not decode all of it" in caplog.text
    document = json.loads((out / "segments.json").read_text())
    damage = document["damage"]
    (lost,) = damage["ranges"]
    assert 6 < lost["start"] < lost["end"] < 18  # in the middle, where the bytes were hit
    assert damage["damaged_frames"] > 0 and damage["share"] < 0.05
    marked = [w for w in document["windows"] if w["damaged"] > 0]
    assert marked and all(w["start"] < lost["end"] and lost["start"] < w["end"] for w in marked)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert 'class="damaged"' in report and f"{lost['start']:.1f}–{lost['end']:.1f} s" in report
    clips = sorted((out / "clips").glob("clip-*.mp4"))
    assert clips and all(clip.stat().st_size > 0 for clip in clips)
    assert (out / "highlights-reel.mp4").stat().st_size > 0


def test_a_recording_that_starts_mid_gop_is_processed(
    long_real_video: Path, trained_model: Path, tmp_path: Path
) -> None:
    recording = mid_gop_cut(long_real_video, tmp_path / "dvr.ts", at=5.5)
    out = tmp_path / "out"
    assert detect(recording, trained_model, out, tmp_path / "cache") == 0
    damage = json.loads((out / "segments.json").read_text())["damage"]
    (lost,) = damage["ranges"]  # only the pictures before the first key frame
    assert lost["start"] == 0 and 0 < lost["end"] < 1.1
    assert sorted((out / "clips").glob("clip-*.mp4"))


def test_a_video_damaged_past_the_limit_exits_two_with_one_line(
    long_real_video: Path, trained_model: Path, tmp_path: Path
) -> None:
    video = long_real_video
    for number, at in enumerate((0.15, 0.3, 0.45, 0.6, 0.75, 0.9)):
        video = damaged_copy(video, tmp_path / f"ruined-{number}.mp4", at=at, seed=number)
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [sys.executable, "-m", "highlights.cli", "detect", str(video)]
    command += ["--model", str(trained_model), "--target", EVENT_CLASS, "--quiet"]
    result = subprocess.run(
        [*command, "--out", str(out), "--cache-dir", str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"highlights: error: {video}: too damaged to use:")
    assert "decode.max_damaged_share" in lines[0]
    assert list(cache.rglob("*.npz"))  # the features are kept: a higher limit needs no new run
