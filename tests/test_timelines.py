"""Editor timelines: every file reads back with OpenTimelineIO to the same frames of the match.

The expected frames are worked out by hand here: a range [start, end) seconds covers the cut
clip's frames, from the frame on screen at start, floor(start x rate), to the last frame that
starts before end, ceil(end x rate) excluded; frame k starts at k / rate seconds.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from highlights.errors import InputError
from highlights.outputs.timelines import (
    TIMELINE_FILES,
    read_timeline,
    write_timelines,
)
from highlights.segments import Segment
from highlights.video import probe
from tests.media import make_video

NTSC = Fraction(30000, 1001)
NTSC_60 = Fraction(60000, 1001)
FILM = Fraction(24000, 1001)


def match(folder: Path, rate: Fraction, seconds: float, audio: bool = False) -> Path:
    return make_video(
        folder / f"match-{rate.numerator}-{rate.denominator}.mp4",
        seconds=seconds,
        fps=f"{rate.numerator}/{rate.denominator}",
        size=(64, 48),
        audio=audio,
        extra=["-preset", "ultrafast"],
    )


def written(folder: Path, video: Path, segments: list[Segment], clips=()) -> list[Path]:
    out = folder / "out"
    out.mkdir(exist_ok=True)
    return write_timelines(probe(video), segments, out, clips)


def video_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    """The clips of the video track (keep `timeline` while using them: it owns them)."""
    [track] = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    return list(track.find_clips())


def frames(clip: otio.schema.Clip, rate: Fraction) -> tuple[int, int]:
    """(first frame, frame count) of a clip's source range, checked to be whole frames."""
    source = clip.source_range
    assert source.start_time.rate == pytest.approx(float(rate), rel=1e-9)
    assert source.duration.rate == pytest.approx(float(rate), rel=1e-9)
    first, count = source.start_time.value, source.duration.value
    assert first == int(first) and count == int(count), f"not whole frames: {source}"
    return int(first), int(count)


@pytest.fixture(scope="module")
def ntsc_match(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """62 s at 29.97 fps with sound: long enough for the first minute's dropped frame numbers."""
    return match(tmp_path_factory.mktemp("ntsc"), NTSC, 62.0, audio=True)


# Frame 1800 at 29.97 starts at 1800 * 1001 / 30000 = 60.06 s; in drop-frame timecode it is
# 00:01:00;02 (frames ;00 and ;01 of minute 1 are skipped: SMPTE 12M).
NTSC_SEGMENTS = [
    Segment(2.0, 3.5, 0.93, "TennisRally"),  # frames floor(59.94) = 59 to ceil(104.895) = 105
    Segment(60.06, 61.0, 0.71, "SoccerJuggling"),  # frames 1800 to ceil(1828.17) = 1829
]
NTSC_FRAMES = [(59, 46), (1800, 29)]


def test_the_rate_of_an_ntsc_video_is_exact(ntsc_match: Path) -> None:
    assert probe(ntsc_match).rate == NTSC


@pytest.mark.parametrize("name", TIMELINE_FILES)
def test_every_file_reads_back_frame_exactly_at_29_97(
    ntsc_match: Path, tmp_path: Path, name: str
) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    timeline = read_timeline(tmp_path / "out" / name, NTSC)
    assert [frames(c, NTSC) for c in video_clips(timeline)] == NTSC_FRAMES


@pytest.mark.parametrize(
    ("rate", "segment", "expected"),
    [
        (Fraction(25), Segment(2.0, 3.5, 0.8, "Goal"), (50, 38)),  # 3.5 * 25 = 87.5 -> 88
        (FILM, Segment(2.0, 3.5, 0.8, "Goal"), (47, 37)),  # 47.95 -> 47, 83.92 -> 84
        (NTSC_60, Segment(2.0, 3.5, 0.8, "Goal"), (119, 91)),  # 119.88 -> 119, 209.79 -> 210
        (Fraction(25), Segment(2.03, 3.5, 0.8, "Goal"), (50, 38)),  # 50.75 -> 50: on screen
        (Fraction(30), Segment(1.0, 2.0, 0.8, "Goal"), (30, 30)),  # on frame boundaries
    ],
)
def test_every_file_reads_back_frame_exactly_at_other_rates(
    tmp_path: Path, rate: Fraction, segment: Segment, expected: tuple[int, int]
) -> None:
    video = match(tmp_path, rate, 4.0)
    assert probe(video).rate == rate
    for path in written(tmp_path, video, [segment]):
        timeline = read_timeline(path, rate)
        [clip] = video_clips(timeline)
        assert frames(clip, rate) == expected, path.name


@pytest.mark.parametrize(
    ("rate", "counted", "exact", "in_timecode"),
    [
        # 2.0 * 15 = 30, 3.5 * 15 = 52.5 -> 53; at 23.976: 47.95 -> 47, 83.92 -> 84
        (Fraction(15), FILM, (30, 23), (47, 37)),
        # a phone's average rate: 50.05 -> 50, 87.59 -> 88; at 25: 50, 87.5 -> 88
        (Fraction(25350, 1013), Fraction(25), (50, 38), (50, 38)),
        # 240 and 420; at 60: 120 and 210
        (Fraction(120), Fraction(60), (240, 180), (120, 90)),
        # 16 and 28; OpenTimelineIO has no nearest rate this low, we count at 24: 48 and 84
        (Fraction(8), Fraction(24), (16, 12), (48, 36)),
    ],
)
def test_a_rate_without_timecode_is_kept_in_otio_and_counted_at_the_nearest_in_edl_and_xml(
    tmp_path: Path,
    rate: Fraction,
    counted: Fraction,
    exact: tuple[int, int],
    in_timecode: tuple[int, int],
) -> None:
    video = match(tmp_path, rate, 4.0)
    assert probe(video).rate == rate
    for path in written(tmp_path, video, [Segment(2.0, 3.5, 0.8, "Goal")]):
        timeline = read_timeline(path, rate)
        [clip] = video_clips(timeline)
        expected = (exact, rate) if path.suffix == ".otio" else (in_timecode, counted)
        assert frames(clip, expected[1]) == expected[0], path.name


def test_the_edl_counts_ntsc_in_drop_frame_timecode(ntsc_match: Path, tmp_path: Path) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    lines = (tmp_path / "out" / "highlights.edl").read_text().splitlines()
    assert lines[:2] == ["TITLE: Highlights of match-30000-1001.mp4", "FCM: DROP FRAME"]
    events = [line.split() for line in lines if line[:3].isdigit()]
    # event, reel, track, cut, source in, source out, record in, record out
    assert events[1][:6] == ["002", "AX", "V", "C", "00:01:00;02", "00:01:01;01"]
    assert events[0][4:] == ["00:00:01;29", "00:00:03;15", "00:00:00;00", "00:00:01;16"]


def test_the_fcp_xml_marks_its_source_timecode_drop_frame(ntsc_match: Path, tmp_path: Path) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    xml = (tmp_path / "out" / "highlights.xml").read_text()
    assert "<displayformat>DF</displayformat>" in xml
    assert "<displayformat>NDF</displayformat>" not in xml
    assert "<timebase>30</timebase>" in xml and "<ntsc>TRUE</ntsc>" in xml


def test_a_25_fps_edl_is_non_drop_frame(tmp_path: Path) -> None:
    video = match(tmp_path, Fraction(25), 4.0)
    written(tmp_path, video, [Segment(2.0, 3.5, 0.8, "Goal")])
    lines = (tmp_path / "out" / "highlights.edl").read_text().splitlines()
    assert lines[1] == "FCM: NON-DROP FRAME"
    assert not any(";" in line for line in lines if line[:3].isdigit())


@pytest.mark.parametrize("name", ["highlights.otio", "highlights.xml"])
def test_each_clip_is_marked_with_its_class_and_score(
    ntsc_match: Path, tmp_path: Path, name: str
) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    timeline = read_timeline(tmp_path / "out" / name, NTSC)
    clips = video_clips(timeline)
    assert [[m.name for m in c.markers] for c in clips] == [
        ["TennisRally 0.93"],
        ["SoccerJuggling 0.71"],
    ]
    starts = [[int(m.marked_range.start_time.value) for m in c.markers] for c in clips]
    assert starts == [[59], [1800]]


def test_the_edl_marks_each_clip_with_its_class_and_score(tmp_path: Path) -> None:
    video = match(tmp_path, Fraction(25), 4.0)
    written(tmp_path, video, [Segment(1.0, 2.0, 0.8, "Goal"), Segment(3.0, 3.5, 0.6, "Save")])
    timeline = read_timeline(tmp_path / "out" / "highlights.edl", Fraction(25))
    clips = video_clips(timeline)
    assert [[(m.name, int(m.marked_range.start_time.value)) for m in c.markers] for c in clips] == [
        [("GOAL 0.80", 25)],  # an EDL's locators are upper case
        [("SAVE 0.60", 75)],
    ]


def test_the_edl_locators_of_ntsc_clips_are_in_drop_frame(ntsc_match: Path, tmp_path: Path) -> None:
    """The CMX adapter reads locators with `:` only (not `;`), so these are checked as text."""
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    edl = (tmp_path / "out" / "highlights.edl").read_text().splitlines()
    assert [line.split() for line in edl if line.startswith("* LOC:")] == [
        ["*", "LOC:", "00:00:01;29", "GREEN", "TENNISRALLY", "0.93"],
        ["*", "LOC:", "00:01:00;02", "GREEN", "SOCCERJUGGLING", "0.71"],
    ]


def test_the_otio_file_keeps_class_score_seconds_and_clip_file(
    ntsc_match: Path, tmp_path: Path
) -> None:
    clips = ["clips/clip-001.mp4", "clips/clip-002.mp4"]
    written(tmp_path, ntsc_match, NTSC_SEGMENTS, clips)
    timeline = read_timeline(tmp_path / "out" / "highlights.otio", NTSC)
    details = [dict(c.metadata["highlights"]) for c in video_clips(timeline)]
    assert [(d["label"], d["score"], d["start"], d["end"], d["clip"]) for d in details] == [
        ("TennisRally", 0.93, 2.0, 3.5, "clips/clip-001.mp4"),
        ("SoccerJuggling", 0.71, 60.06, 61.0, "clips/clip-002.mp4"),
    ]
    assert timeline.metadata["highlights"]["rate"] == "30000/1001"
    assert timeline.metadata["highlights"]["drop_frame"] is True


@pytest.mark.parametrize("name", ["highlights.otio", "highlights.xml"])
def test_sound_comes_on_its_own_track_with_the_same_ranges(
    ntsc_match: Path, tmp_path: Path, name: str
) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    timeline = read_timeline(tmp_path / "out" / name, NTSC)
    [audio] = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [frames(c, NTSC) for c in audio.find_clips()] == NTSC_FRAMES


@pytest.mark.parametrize("name", TIMELINE_FILES)
def test_every_clip_points_at_the_match_file(ntsc_match: Path, tmp_path: Path, name: str) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    timeline = read_timeline(tmp_path / "out" / name, NTSC)
    for clip in video_clips(timeline):
        reference = clip.media_reference
        if isinstance(reference, otio.schema.ExternalReference):
            assert reference.target_url == ntsc_match.resolve().as_uri()
        assert clip.name == ntsc_match.name


def test_clips_follow_each_other_on_the_record_side(ntsc_match: Path, tmp_path: Path) -> None:
    written(tmp_path, ntsc_match, NTSC_SEGMENTS)
    timeline = read_timeline(tmp_path / "out" / "highlights.edl", NTSC)
    [track] = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    placed = [track.range_of_child(c) for c in track.find_clips()]
    assert [(int(r.start_time.value), int(r.duration.value)) for r in placed] == [(0, 46), (46, 29)]


def test_a_range_past_the_end_stops_at_the_last_frame(tmp_path: Path) -> None:
    video = match(tmp_path, Fraction(25), 4.0)
    for path in written(tmp_path, video, [Segment(3.0, 9.0, 0.8, "Goal")]):
        timeline = read_timeline(path, Fraction(25))
        [clip] = video_clips(timeline)
        assert frames(clip, Fraction(25)) == (75, 25), path.name


def test_a_file_that_is_not_a_timeline_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "highlights.edl"
    bad.write_text("001  AX  V  C  garbage\n")
    with pytest.raises(InputError, match="highlights.edl"):
        read_timeline(bad, Fraction(25))
