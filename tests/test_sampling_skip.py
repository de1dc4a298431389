"""Decoding only the pictures sampling needs gives exactly the frames of decoding them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from highlights.sampling import sample_frames
from highlights.video import FrameGeometry
from tests.media import make_video, shared_videos

GEOMETRY = FrameGeometry(resize_short=40, crop=32)
B_FRAMES = ("-bf", "3", "-g", "25")


def frames_of(video: Path, rate: float, skip: bool, start_frame: int = 0) -> list[tuple]:
    with sample_frames(
        video, rate, GEOMETRY, skip_unshown=skip, start_frame=start_frame
    ) as frames:
        return [(f.index, f.time, f.damaged, f.image.tobytes()) for f in frames]


@pytest.mark.parametrize(
    ("fps", "rate", "container"),
    [(25, 5, "mp4"), (30, 5, "mkv"), (25, 2, "ts"), (29.97, 5, "mp4"), (25, 25, "mp4"),
     (25, 7.3, "mp4"), (24, 10, "mov")],
)  # fmt: skip
def test_skipping_unshown_pictures_gives_the_same_frames(
    tmp_path: Path, fps: float, rate: float, container: str
) -> None:
    video = make_video(tmp_path / f"b.{container}", seconds=4, fps=fps, extra=B_FRAMES)
    exact = frames_of(video, rate, skip=False)
    assert len(exact) >= 4 * rate - 1
    assert frames_of(video, rate, skip=True) == exact


def test_a_resumed_run_that_skips_gives_the_same_frames(tmp_path: Path) -> None:
    video = make_video(tmp_path / "b.mp4", seconds=6, extra=B_FRAMES)
    exact = frames_of(video, 5, skip=False)
    assert frames_of(video, 5, skip=True, start_frame=17) == exact[17:]


def decoded_pictures(video: Path, rate: float, skip: bool, container: str = "mp4") -> int:
    with sample_frames(video, rate, GEOMETRY, skip_unshown=skip) as frames:
        for _ in frames:
            pass
        return frames.decoded_pictures


def test_pictures_no_frame_shows_are_not_decoded(tmp_path: Path) -> None:
    video = make_video(tmp_path / "b.mp4", seconds=4, extra=B_FRAMES)
    assert decoded_pictures(video, 5, skip=False) == 100
    # 4 in 5 pictures are not shown; about half of those are non-reference B-pictures
    assert decoded_pictures(video, 5, skip=True) <= 75
    assert decoded_pictures(video, 25, skip=True) == 100  # every picture shown: none skipped


def test_avi_is_decoded_whole(tmp_path: Path) -> None:
    """AVI packets carry decode order, not display times: nothing is skipped."""
    video = make_video(tmp_path / "b.avi", seconds=2, codec="mpeg4", extra=B_FRAMES)
    assert decoded_pictures(video, 5, skip=True) == decoded_pictures(video, 5, skip=False)


@pytest.mark.slow
@pytest.mark.parametrize("video", shared_videos(), ids=lambda p: p.name)
def test_real_videos_give_the_same_frames(video: Path) -> None:
    assert frames_of(video, 5, skip=True) == frames_of(video, 5, skip=False)
