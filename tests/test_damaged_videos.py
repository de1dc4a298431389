"""Real recordings have glitches: `highlights detect` decodes past them, says what it lost, and
refuses a video only when too much of it is lost. A long run killed part way resumes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from highlights.backbones import load_backbone
from highlights.cli import main
from highlights.features import extract_features, load_features
from highlights.model import MANIFEST_FILE, ModelManifest
from highlights.synthetic import EVENT_CLASS, Event, make_match
from tests.media import (
    REAL_SOCCER_CLIP,
    damaged_copy,
    looped,
    mid_gop_cut,
    real_clip,
)

REPO = Path(__file__).resolve().parents[1]


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


# --- a long run killed part way ------------------------------------------------------------


@pytest.fixture(scope="module")
def long_match(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two minutes of synthetic match: 600 frames at 5 frames/s."""
    folder = tmp_path_factory.mktemp("long-match")
    return make_match(folder / "long-match.mp4", 120.0, [Event(30.0, 36.0), Event(80.0, 86.0)])


def wait_for(pattern: str, folder: Path, process: subprocess.Popen[str], seconds: float) -> Path:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = sorted(folder.rglob(pattern))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} under {folder} after {seconds} s")


def test_a_killed_detect_resumes_from_its_checkpoint_with_the_same_features(
    long_match: Path, trained_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    settings = tmp_path / "settings.toml"
    settings.write_text("checkpoint_frames = 64\n")
    command = [sys.executable, "-m", "highlights.cli", "detect", str(long_match)]
    command += ["--model", str(trained_model), "--target", EVENT_CLASS, "--quiet"]
    command += ["--out", str(tmp_path / "first"), "--cache-dir", str(cache)]
    first = subprocess.Popen(
        [*command, "--config", str(settings)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("*.checkpoints/frames-*.npz", cache, first, seconds=300)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    assert first.returncode == -signal.SIGKILL
    # Entries are <cache>/<xx>/<video>.<recipe>.npz; checkpoint parts lie a folder deeper.
    assert not list(cache.glob("*/*.npz"))  # killed before the features were done

    with caplog.at_level(logging.INFO):
        code = detect(
            long_match, trained_model, tmp_path / "second", cache, "--config", str(settings)
        )
    assert code == 0
    resumed = [r.getMessage() for r in caplog.records if "resuming from checkpoint" in r.message]
    assert len(resumed) == 1
    start = int(resumed[0].split(" at frame ")[1].split()[0])
    assert start >= 64 and start % 64 == 0

    (entry,) = cache.glob("*/*.npz")
    assert not list(cache.rglob("*.checkpoints"))  # removed once the entry is written
    manifest = ModelManifest.read(trained_model / MANIFEST_FILE)
    clean = extract_features(long_match, load_backbone(manifest.backbone), manifest.rate)
    cached = load_features(entry)
    assert len(cached) == 600
    assert np.array_equal(cached.times, clean.times)
    assert np.array_equal(cached.features, clean.features)
    assert np.array_equal(cached.damaged, clean.damaged)
