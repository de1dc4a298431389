"""Probing videos and sampling frames from them."""

from __future__ import annotations

import gc
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from highlights.damage import TimeRange, clip_ranges, merge_ranges
from highlights.errors import VideoError
from highlights.sampling import sample_frames
from highlights.video import FrameGeometry, VideoInfo, probe
from tests.media import (
    SHARED_VIDEOS_DIR,
    damaged_copy,
    make_event_video,
    make_split_colour_video,
    make_video,
    mid_gop_cut,
    require_shared,
    run_ffmpeg,
    shared_video_params,
)

SMALL = FrameGeometry(resize_short=64, crop=64)
RED = np.array([255, 0, 0])
BLUE = np.array([0, 0, 255])


def mean_colour(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3).mean(axis=0)


def is_colour(image: np.ndarray, colour: np.ndarray) -> bool:
    return bool(np.abs(mean_colour(image) - colour).max() < 40)


# --- probe -----------------------------------------------------------------------------


def test_probe_reads_duration_rate_size_and_codec(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=3, fps=25, size=(320, 240))
    info = probe(video)
    assert info == VideoInfo(
        path=video,
        duration=pytest.approx(3.0, abs=0.04),
        fps=25.0,
        width=320,
        height=240,
        rotation=0,
        codec="h264",
        has_audio=False,
        rate=Fraction(25),
    )


def test_probe_sees_audio(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=2, audio=True)
    assert probe(video).has_audio


def test_probe_reads_an_avi_with_mpeg4(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.avi", seconds=2, fps=30, codec="mpeg4")
    info = probe(video)
    assert (info.codec, info.fps) == ("mpeg4", 30.0)
    assert info.duration == pytest.approx(2.0, abs=0.04)


@pytest.mark.parametrize(
    ("counter_clockwise", "clockwise", "size"),
    [(90, 270, (240, 320)), (-90, 90, (240, 320)), (180, 180, (320, 240))],
)
def test_probe_applies_display_rotation(
    tmp_path: Path, counter_clockwise: int, clockwise: int, size: tuple[int, int]
) -> None:
    video = make_split_colour_video(tmp_path / "phone.mp4", 1, rotation=counter_clockwise)
    info = probe(video)
    assert (info.rotation, (info.width, info.height)) == (clockwise, size)


def test_probe_survives_non_utf8_metadata(tmp_path: Path) -> None:
    video = tmp_path / "latin1.mp4"
    run_ffmpeg(
        [b"-f", b"lavfi", b"-i", b"testsrc2=size=160x120:rate=10:duration=1"]
        + [b"-metadata", b"title=Fu\xdfball \xe9t\xe9", b"-c:v", b"libx264", str(video).encode()]
    )
    with pytest.raises(UnicodeDecodeError):  # the file really carries the latin-1 bytes
        av.open(str(video)).close()
    assert probe(video).duration == pytest.approx(1.0, abs=0.1)
    assert len(list(sample_frames(video, 5, SMALL))) == 5


def test_probe_measures_a_stream_that_starts_late(tmp_path: Path) -> None:
    """Duration runs from the container start, the timeline sample_frames uses."""
    video = late_start_video(tmp_path)
    assert probe(video).duration == pytest.approx(3.5, abs=0.04)


def test_probe_measures_a_raw_stream_without_timestamps(tmp_path: Path) -> None:
    source = make_video(tmp_path / "clip.mp4", seconds=2)
    raw = tmp_path / "clip.h264"
    run_ffmpeg(["-i", str(source), "-c", "copy", "-f", "h264", str(raw)])
    assert probe(raw).duration == pytest.approx(2.0, abs=0.08)


def test_relative_name_with_a_colon_is_a_file_not_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_video(tmp_path / "half2:30.mp4", seconds=1)
    monkeypatch.chdir(tmp_path)
    assert probe(Path("half2:30.mp4")).duration == pytest.approx(1.0, abs=0.04)
    assert len(list(sample_frames(Path("half2:30.mp4"), 5, SMALL))) == 5


def late_start_video(tmp_path: Path) -> Path:
    """Audio from 0 s to 3.5 s, video from 0.5 s to 3.5 s."""
    base = make_video(tmp_path / "base.mp4", seconds=3)
    video = tmp_path / "late.mp4"
    run_ffmpeg(
        ["-itsoffset", "0.5", "-i", str(base), "-f", "lavfi", "-i", "sine=duration=3.5"]
        + ["-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(video)]
    )
    return video


# --- bad inputs: each names the file ------------------------------------------------------


def assert_video_error(path: Path, problem: str) -> None:
    with pytest.raises(VideoError) as caught:
        probe(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_missing_file_is_a_video_error(tmp_path: Path) -> None:
    assert_video_error(tmp_path / "nope.mp4", "not found")


def test_directory_is_a_video_error(tmp_path: Path) -> None:
    assert_video_error(tmp_path, "directory")


def test_empty_file_is_a_video_error(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    assert_video_error(tmp_path / "empty.mp4", "empty")


def test_text_file_named_mp4_is_a_video_error(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("these are not the frames you are looking for\n" * 50)
    assert_video_error(tmp_path / "notes.mp4", "not a readable video")


def test_audio_only_file_is_a_video_error(tmp_path: Path) -> None:
    audio = tmp_path / "commentary.m4a"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=2", str(audio)])
    assert_video_error(audio, "no video stream")


def test_audio_file_with_cover_art_is_a_video_error(tmp_path: Path) -> None:
    cover = tmp_path / "cover.png"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120", "-frames:v", "1", str(cover)])
    audio = tmp_path / "podcast.m4a"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "sine=duration=2", "-i", str(cover), "-map", "0", "-map", "1"]
        + ["-c:a", "aac", "-c:v", "png", "-disposition:v:0", "attached_pic", str(audio)]
    )
    with av.open(str(audio)) as container:
        assert container.streams.video  # the cover is a "video" stream to the demuxer
    assert_video_error(audio, "no video stream")


def test_video_without_frames_is_a_video_error(tmp_path: Path) -> None:
    video = tmp_path / "zero.avi"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2", "-frames:v", "0", "-c:v", "mpeg4", str(video)])
    assert_video_error(video, "zero duration")


def test_truncated_file_with_index_at_the_end_is_a_video_error(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=3)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    assert_video_error(cut, "not a readable video")


def test_truncated_file_with_index_at_the_start_is_a_video_error(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=3, extra=["-movflags", "+faststart"])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    assert_video_error(cut, "truncated")


# --- sampling --------------------------------------------------------------------------


def test_frames_are_square_rgb_crops_at_k_over_rate(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=2, size=(320, 240))
    frames = list(sample_frames(video, 5, FrameGeometry(resize_short=256, crop=224)))
    assert [f.index for f in frames] == list(range(10))
    assert [f.time for f in frames] == pytest.approx([k / 5 for k in range(10)])
    assert {(f.image.shape, f.image.dtype) for f in frames} == {((224, 224, 3), np.dtype(np.uint8))}


def test_short_side_is_resized_then_centre_cropped(tmp_path: Path) -> None:
    """A 400x200 frame: blue sides, red centre 200 px wide. Resized to 200x100 and cropped to
    the middle 100x100, only red remains; any other crop would show blue."""
    video = tmp_path / "wide.mp4"
    graph = (
        "color=c=blue:size=400x200:rate=25:duration=1[bg];"
        "color=c=red:size=200x200:rate=25:duration=1[fg];"
        "[bg][fg]overlay=x=100:y=0,format=yuv420p[v]"
    )
    run_ffmpeg(["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", str(video)])
    frame = next(iter(sample_frames(video, 5, FrameGeometry(resize_short=100, crop=100))))
    assert frame.image.shape == (100, 100, 3)
    assert is_colour(frame.image[:, :8], RED) and is_colour(frame.image[:, -8:], RED)


def test_frame_k_shows_the_picture_on_screen_at_k_over_rate(tmp_path: Path) -> None:
    """Each 25 fps source frame has its own grey level; compare against PyAV's decode."""
    video = tmp_path / "numbered.mkv"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=black:size=64x64:rate=25:duration=4"]
        + ["-vf", "geq=lum='N*2+20':cb=128:cr=128", "-c:v", "libx264", "-qp", "0"]
        + ["-pix_fmt", "yuv444p", str(video)]
    )
    with av.open(str(video)) as container:
        levels = np.array([f.to_ndarray(format="rgb24").mean() for f in container.decode(video=0)])
    for rate in (5, 3, 7.5):
        for frame in sample_frames(video, rate, SMALL):
            shown = int(np.abs(levels - frame.image.mean()).argmin())
            assert shown == int(frame.time * 25 + 1e-6), (rate, frame.time)


def test_frames_follow_the_look_of_event_spans(tmp_path: Path) -> None:
    video = make_event_video(tmp_path / "match.mp4", events=[(1.0, 2.0), (3.4, 4.0)], total=5)
    frames = list(sample_frames(video, 5, SMALL))
    busy = [f.time for f in frames if f.image.std() > 80]  # the test card, not the flat pitch
    assert busy == pytest.approx([1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 3.4, 3.6, 3.8, 4.0])


def test_sampled_frames_come_out_rotated(tmp_path: Path) -> None:
    """Left red, right blue, turned 90 degrees counter-clockwise: red ends up at the bottom."""
    video = make_split_colour_video(tmp_path / "phone.mp4", 1, rotation=90)
    frame = next(iter(sample_frames(video, 5, SMALL)))
    assert is_colour(frame.image[-10:], RED) and is_colour(frame.image[:10], BLUE)


def variable_rate_video(path: Path) -> Path:
    """Two seconds of red at 10 fps, then two of blue at 30 fps, in one VFR file."""
    graph = (
        "color=c=red:size=160x120:rate=10:duration=2[a];"
        "color=c=blue:size=160x120:rate=30:duration=2[b];"
        "[a][b]concat=n=2:v=1,format=yuv420p[v]"
    )
    run_ffmpeg(["-filter_complex", graph, "-map", "[v]", "-fps_mode", "vfr", str(path)])
    return path


def test_late_starting_stream_is_sampled_from_time_zero(tmp_path: Path) -> None:
    video = late_start_video(tmp_path)
    frames = list(sample_frames(video, 5, SMALL))
    assert len(frames) == 18  # 0.0 .. 3.4 s
    assert frames[0].time == 0.0
    assert np.array_equal(frames[0].image, frames[2].image)  # padded with the first picture


def test_variable_frame_rate_video_is_sampled_on_a_regular_grid(tmp_path: Path) -> None:
    """Two seconds of red at 10 fps, then two of blue at 30 fps, in one VFR file."""
    video = variable_rate_video(tmp_path / "vfr.mp4")
    with av.open(str(video)) as container:
        steps = np.diff([f.time for f in container.decode(video=0)]).round(3)
    assert steps.max() == 0.1 and steps.min() < 0.04  # really variable
    frames = list(sample_frames(video, 5, SMALL))
    assert [f.time for f in frames[:20]] == pytest.approx([k / 5 for k in range(20)])
    assert len(frames) in (20, 21)  # ffmpeg may add one at t = duration, showing the last picture
    assert all(is_colour(f.image, RED) for f in frames if f.time < 2)
    assert all(is_colour(f.image, BLUE) for f in frames if f.time >= 2)


def decoding_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("decode ")]


def test_closing_early_stops_decoding(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=10)
    frames = sample_frames(video, 25, SMALL)
    next(frames)
    assert decoding_threads()  # decoding runs ahead while frames are read
    frames.close()
    assert decoding_threads() == []


def test_dropping_the_frames_early_stops_decoding(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=10)
    next(iter(sample_frames(video, 25, SMALL)))
    gc.collect()
    for _ in range(50):
        if not decoding_threads():
            break
        time.sleep(0.05)
    assert decoding_threads() == []


def test_sampling_probes_the_file_when_no_info_is_given(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not found"):
        sample_frames(tmp_path / "nope.mp4", 5, SMALL)


# --- damaged recordings: decoding carries on and says what it could not read -------------


def keyframed_video(path: Path, seconds: float = 12) -> Path:
    """25 fps H.264 with B-frames and a key frame every second exactly."""
    return make_video(
        path, seconds=seconds, extra=["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"]
    )


def within(ranges: tuple[TimeRange, ...], time: float) -> bool:
    return any(r.start <= time < r.end for r in ranges)


def test_damaged_bytes_mark_frames_and_sampling_carries_on(tmp_path: Path) -> None:
    clean = keyframed_video(tmp_path / "clean.mp4")
    damaged = damaged_copy(clean, tmp_path / "damaged.mp4")
    frames = sample_frames(damaged, 5, SMALL)
    sampled = list(frames)
    ranges = frames.damaged_ranges()
    assert len(sampled) == 60
    assert len(ranges) >= 1 and ranges[0].start > 2 and ranges[-1].end < 10
    for r in ranges:  # a damaged stretch ends at the next key frame (one per second)
        assert r.end == pytest.approx(round(r.end), abs=1e-6)
    assert any(f.damaged for f in sampled)
    assert [f.damaged for f in sampled] == [within(ranges, f.time) for f in sampled]


def test_a_clean_video_has_no_damage(tmp_path: Path) -> None:
    frames = sample_frames(keyframed_video(tmp_path / "clean.mp4"), 5, SMALL)
    assert not any(f.damaged for f in frames)
    assert frames.damaged_ranges() == ()


def test_a_recording_that_starts_mid_gop_is_damaged_up_to_its_first_key_frame(
    tmp_path: Path,
) -> None:
    cut = mid_gop_cut(keyframed_video(tmp_path / "clean.mp4"), tmp_path / "dvr.ts", at=4.4)
    with av.open(str(cut)) as container:
        packets = list(container.demux(video=0))
        origin = container.start_time / av.time_base
    assert not packets[0].is_keyframe  # really starts between key frames
    key = next(float(p.pts * p.time_base) - origin for p in packets if p.is_keyframe)
    frames = sample_frames(cut, 5, SMALL)
    sampled = list(frames)
    assert frames.damaged_ranges() == (TimeRange(0.0, pytest.approx(key, abs=1e-6)),)
    assert [f.damaged for f in sampled] == [f.time < key for f in sampled]
    # the frames before the first clean picture all show it, never a half-decoded one
    early = [f.image for f in sampled if f.damaged]
    assert len(early) == 3 and all(np.array_equal(early[0], image) for image in early)


def test_a_video_with_no_decodable_picture_is_a_video_error(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=2, extra=["-movflags", "+faststart"])
    data = bytearray(video.read_bytes())
    for offset in range(data.index(b"mdat") + 8, len(data), 3):
        data[offset] = 0
    ruined = tmp_path / "ruined.mp4"
    ruined.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="ruined.mp4: no video frame could be decoded"):
        list(sample_frames(ruined, 5, SMALL))


RESUMABLE = ["keyframed", "damaged", "mid-gop", "variable-rate", "rotated"]


def resumable_video(case: str, tmp_path: Path) -> Path:
    clean = keyframed_video(tmp_path / "clean.mp4")
    if case == "keyframed":
        return clean
    if case == "damaged":
        return damaged_copy(clean, tmp_path / "damaged.mp4")
    if case == "mid-gop":
        return mid_gop_cut(clean, tmp_path / "dvr.ts", at=2.4)
    if case == "rotated":
        return make_split_colour_video(tmp_path / "phone.mp4", 4, rotation=90)
    return variable_rate_video(tmp_path / "vfr.mp4")


@pytest.mark.parametrize("case", RESUMABLE)
def test_resuming_gives_the_frames_of_a_run_from_the_start(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = resumable_video(case, tmp_path)
    whole = sample_frames(video, 5, SMALL)
    frames = list(whole)
    for start in (1, 7, len(frames) // 2 + 1, len(frames) - 1):
        resumed = sample_frames(video, 5, SMALL, start_frame=start)
        rest = list(resumed)
        assert [f.index for f in rest] == [f.index for f in frames[start:]]
        assert [f.time for f in rest] == [f.time for f in frames[start:]]
        assert [f.damaged for f in rest] == [f.damaged for f in frames[start:]]
        for got, want in zip(rest, frames[start:], strict=True):
            assert np.array_equal(got.image, want.image), (start, got.index)
        before = clip_ranges(whole.damaged_ranges(), 0, frames[start - 1].time)
        assert merge_ranges(before + resumed.damaged_ranges()) == whole.damaged_ranges()
    assert "from the start instead" not in caplog.text  # seeking found the place each time


# --- every real video in the shared folder ----------------------------------------------

@pytest.mark.parametrize("video", shared_video_params())
def test_every_shared_video_can_be_probed_and_sampled(video: Path | None) -> None:
    video = require_shared(video or SHARED_VIDEOS_DIR)
    info = probe(video)
    assert info.duration > 0 and info.fps > 0 and min(info.width, info.height) > 0
    rate = 5.0
    frames = sample_frames(video, rate, SMALL, info)
    times = [f.time for f in frames]
    assert np.all(np.diff(times) > 0)
    assert abs(len(times) - info.duration * rate) <= 1
    assert frames.damaged_ranges() == ()  # every shared clip decodes cleanly
