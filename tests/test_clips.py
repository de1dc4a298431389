"""Cutting clips, joining them into a reel and taking thumbnails, with the real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from highlights.errors import InputError, OutputExistsError, VideoError
from highlights.outputs.clips import cut_clip, make_reel, thumbnail
from highlights.sampling import sample_frames
from highlights.segments import Segment
from highlights.video import FrameGeometry, probe
from tests.media import make_event_video, make_split_colour_video, make_video

FPS = 25
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def match(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s with audio; test card during 1-2 s and 6-7 s, a green pitch elsewhere."""
    folder = tmp_path_factory.mktemp("match")
    return make_event_video(
        folder / "match.mp4", events=[(1.0, 2.0), (6.0, 7.0)], total=10, fps=FPS, audio=True
    )


def segment(start: float, end: float) -> Segment:
    return Segment(start=start, end=end, score=0.9, label="SoccerPenalty")


def busy_times(video: Path) -> list[float]:
    """Times of the frames that show the test card rather than the flat pitch."""
    frames = sample_frames(video, FPS, FrameGeometry(64, 64))
    return [round(f.time, 3) for f in frames if f.image.std() > 80]


def video_packet_sizes(video: Path) -> list[int]:
    with av.open(str(video)) as container:
        return [p.size for p in container.demux(video=0) if p.size]


# --- cut_clip --------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [(0.5, 2.3), (3.17, 5.0), (7.0, 9.96), (0.0, 0.4)])
def test_reencoded_clip_lasts_its_range_within_one_frame(
    tmp_path: Path, match: Path, start: float, end: float
) -> None:
    clip = cut_clip(match, segment(start, end), tmp_path / "clip.mp4")
    info = probe(clip)
    assert abs(info.duration - (end - start)) <= FRAME + 1e-6
    assert (info.codec, info.has_audio) == ("h264", True)


def test_reencoded_clip_starts_on_the_requested_frame(tmp_path: Path, match: Path) -> None:
    clip = cut_clip(match, segment(0.6, 1.4), tmp_path / "clip.mp4")
    busy = busy_times(clip)
    assert busy[0] == pytest.approx(0.4, abs=FRAME + 1e-6)  # the card appears at 1.0 s
    assert busy[-1] >= 0.76


def test_reencoded_clip_of_an_event_shows_only_the_event(tmp_path: Path, match: Path) -> None:
    clip = cut_clip(match, segment(6.0, 7.0), tmp_path / "clip.mp4")
    assert len(busy_times(clip)) >= FPS - 1


def test_range_past_the_end_is_clamped_to_the_video(tmp_path: Path, match: Path) -> None:
    clip = cut_clip(match, segment(9.0, 12.0), tmp_path / "clip.mp4")
    assert probe(clip).duration == pytest.approx(1.0, abs=FRAME + 1e-6)


def test_copied_clip_starts_at_a_keyframe_before_the_range(tmp_path: Path) -> None:
    video = make_video(tmp_path / "gop.mp4", seconds=10, audio=True, extra=["-g", str(FPS)])
    clip = cut_clip(video, segment(3.3, 5.3), tmp_path / "clip.mp4", copy=True)
    info = probe(clip)
    assert info.codec == "h264" and info.has_audio
    assert 2.0 - FRAME <= info.duration <= 2.0 + 1.0  # at most one keyframe interval more


def test_copied_clip_keeps_the_original_video_stream(tmp_path: Path) -> None:
    video = make_video(tmp_path / "gop.mp4", seconds=4, extra=["-g", str(FPS)])
    clip = cut_clip(video, segment(0.0, 4.0), tmp_path / "clip.mp4", copy=True)
    assert video_packet_sizes(clip) == video_packet_sizes(video)


def test_clip_of_a_rotated_phone_video_is_upright(tmp_path: Path) -> None:
    video = make_split_colour_video(tmp_path / "phone.mp4", 2, rotation=90)
    clip = cut_clip(video, segment(0.5, 1.5), tmp_path / "clip.mp4")
    info = probe(clip)
    assert ((info.width, info.height), info.rotation) == ((240, 320), 0)


def test_clip_of_a_silent_video_has_no_audio(tmp_path: Path) -> None:
    video = make_video(tmp_path / "silent.mp4", seconds=3)
    assert not probe(cut_clip(video, segment(1, 2), tmp_path / "clip.mp4")).has_audio


def test_cutting_twice_replaces_the_clip(tmp_path: Path, match: Path) -> None:
    out = tmp_path / "clip.mp4"
    cut_clip(match, segment(0, 3), out)
    cut_clip(match, segment(0, 1), out)
    assert probe(out).duration == pytest.approx(1.0, abs=FRAME + 1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_relative_names_with_colons_work(
    tmp_path: Path, match: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    clip = cut_clip(match, segment(0, 1), Path("pipe:1.mp4"))
    reel = make_reel([clip, clip], Path("reel:all.mp4"))
    assert probe(reel).duration == pytest.approx(2.0, abs=2 * FRAME)
    assert thumbnail(clip, 0.5, Path("thumb:1.jpg")).stat().st_size > 0


def test_clip_of_a_missing_video_is_a_video_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="nope.mp4.*not found"):
        cut_clip(tmp_path / "nope.mp4", segment(0, 1), tmp_path / "clip.mp4")


def test_empty_or_outside_range_is_an_input_error(tmp_path: Path, match: Path) -> None:
    with pytest.raises(InputError, match="outside"):
        cut_clip(match, segment(11, 12), tmp_path / "clip.mp4")
    with pytest.raises(InputError, match="empty"):
        cut_clip(match, segment(2, 2), tmp_path / "clip.mp4")


def test_clip_never_overwrites_its_input(tmp_path: Path) -> None:
    video = make_video(tmp_path / "game.mp4", seconds=2)
    before = video.read_bytes()
    with pytest.raises(OutputExistsError):
        cut_clip(video, segment(0, 1), video)
    assert video.read_bytes() == before


def test_ffmpeg_failure_reports_its_stderr_and_leaves_no_file(tmp_path: Path, match: Path) -> None:
    out = tmp_path / "clip.notaformat"
    with pytest.raises(VideoError) as caught:
        cut_clip(match, segment(0, 1), out)
    assert str(match) in str(caught.value)
    assert "output format" in str(caught.value).lower()  # ffmpeg's own words
    assert list(tmp_path.iterdir()) == []


# --- make_reel -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(match: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    ranges = [(0.5, 2.5), (5.5, 7.5), (8.0, 9.0)]
    return [
        cut_clip(match, segment(a, b), folder / f"clip{i}.mp4") for i, (a, b) in enumerate(ranges)
    ]


def test_reel_lasts_the_sum_of_its_clips(tmp_path: Path, clips: list[Path]) -> None:
    reel = make_reel(clips, tmp_path / "reel.mp4")
    total = sum(probe(clip).duration for clip in clips)
    info = probe(reel)
    assert info.duration == pytest.approx(total, abs=2 * FRAME)
    assert info.has_audio


def test_reel_of_our_own_clips_is_a_stream_copy(tmp_path: Path, clips: list[Path]) -> None:
    """Copied packets keep their sizes; only a clip's first packet may carry its parameter sets."""
    reel = make_reel(clips, tmp_path / "reel.mp4")
    joined = [size for clip in clips for size in video_packet_sizes(clip)]
    sizes = video_packet_sizes(reel)
    assert len(sizes) == len(joined)
    assert sum(a != b for a, b in zip(sizes, joined, strict=True)) <= len(clips)


def test_reel_keeps_clip_order(tmp_path: Path, clips: list[Path]) -> None:
    reel = make_reel(clips, tmp_path / "reel.mp4")
    busy = busy_times(reel)
    # clip0 starts on frame 12 (0.48 s, on screen at 0.5 s) and shows the card from 0.52 s;
    # clip1 starts on frame 137 (5.48 s) after clip0's 51 frames and shows it until 1.52 s in;
    # clip2 never. Copying joins clips at their AAC-primed lengths: up to a frame later.
    assert min(busy) == pytest.approx(0.52, abs=2 * FRAME)
    assert max(busy) == pytest.approx(probe(clips[0]).duration + 1.48, abs=3 * FRAME)


def test_reel_of_mixed_formats_is_reencoded(tmp_path: Path, clips: list[Path]) -> None:
    other = make_video(tmp_path / "other.avi", seconds=2, fps=30, size=(160, 90), codec="mpeg4")
    reel = make_reel([clips[0], other], tmp_path / "reel.mp4")
    info = probe(reel)
    assert (info.codec, info.width, info.height, info.has_audio) == ("h264", 320, 240, True)
    assert info.duration == pytest.approx(probe(clips[0]).duration + 2.0, abs=3 * FRAME)


def test_reel_of_no_clips_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no clips"):
        make_reel([], tmp_path / "reel.mp4")


def test_reel_with_a_missing_clip_names_it(tmp_path: Path, clips: list[Path]) -> None:
    with pytest.raises(VideoError, match="gone.mp4"):
        make_reel([clips[0], tmp_path / "gone.mp4"], tmp_path / "reel.mp4")
    assert not (tmp_path / "reel.mp4").exists()


# --- thumbnail -------------------------------------------------------------------------


def decode_jpeg(path: Path) -> np.ndarray:
    assert path.read_bytes()[:2] == b"\xff\xd8"  # JPEG start-of-image marker
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_thumbnail_shows_the_frame_at_the_requested_time(tmp_path: Path, match: Path) -> None:
    event = decode_jpeg(thumbnail(match, 1.5, tmp_path / "event.jpg"))
    pitch = decode_jpeg(thumbnail(match, 4.0, tmp_path / "pitch.jpg"))
    assert event.shape == (240, 320, 3)
    assert event.std() > 80 > pitch.std()


def test_thumbnail_past_the_end_shows_the_last_frame(tmp_path: Path, match: Path) -> None:
    image = decode_jpeg(thumbnail(match, 99.0, tmp_path / "late.jpg"))
    assert image.shape == (240, 320, 3)


def test_thumbnail_of_a_large_video_is_at_most_640_wide(tmp_path: Path) -> None:
    video = make_video(tmp_path / "hd.mp4", seconds=1, size=(1280, 720))
    image = decode_jpeg(thumbnail(video, 0.5, tmp_path / "hd.jpg"))
    assert image.shape == (360, 640, 3)


def test_thumbnail_of_a_broken_video_is_a_video_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="broken.mp4"):
        thumbnail(broken, 0, tmp_path / "thumb.jpg")
    assert not (tmp_path / "thumb.jpg").exists()
