"""Specification of the seconds <-> HH:MM:SS:FF conversion used for MediaConvert clipping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from highlights.errors import InputError
from highlights.timecode import clip_timecodes, from_timecode, timecode_base, to_timecode

NTSC = 30000 / 1001
RATES = [23.976, 24.0, 25.0, NTSC, 30.0, 50.0, 60000 / 1001, 60.0, 12.5]


def test_the_first_frame_is_zero() -> None:
    assert to_timecode(0.0, 25.0) == "00:00:00:00"


def test_hours_minutes_seconds_and_frames_at_an_integer_rate() -> None:
    assert to_timecode(3661.5, 25.0) == "01:01:01:12"


def test_a_time_between_frames_names_the_frame_on_screen() -> None:
    assert to_timecode(1.99, 25.0) == "00:00:01:24"


def test_ntsc_rates_count_thirty_frames_per_timecode_second() -> None:
    assert timecode_base(NTSC) == 30
    assert to_timecode(29 / NTSC, NTSC) == "00:00:00:29"
    assert to_timecode(30 / NTSC, NTSC) == "00:00:01:00"


def test_ntsc_non_drop_frame_timecode_runs_behind_the_clock() -> None:
    assert from_timecode("01:00:00:00", NTSC) == pytest.approx(3603.6)
    assert to_timecode(3603.6, NTSC) == "01:00:00:00"


def test_fractional_non_ntsc_rates_round_half_up() -> None:
    assert timecode_base(12.5) == 13


def test_from_timecode_accepts_the_drop_frame_separator() -> None:
    assert from_timecode("00:00:10;05", 25.0) == pytest.approx(10.2)


def test_a_clip_includes_its_first_and_last_frame() -> None:
    assert clip_timecodes(2.0, 6.0, 25.0) == ("00:00:02:00", "00:00:05:24")


def test_a_clip_shorter_than_a_frame_is_one_frame() -> None:
    assert clip_timecodes(2.0, 2.01, 25.0) == ("00:00:02:00", "00:00:02:00")


@pytest.mark.parametrize("seconds", [-0.5, float("nan"), 24 * 3600.0])
def test_times_outside_a_day_are_refused(seconds: float) -> None:
    with pytest.raises(InputError, match="time|24-hour"):
        to_timecode(seconds, 25.0)


@pytest.mark.parametrize("fps", [0.0, -25.0, float("inf")])
def test_a_bad_frame_rate_is_refused(fps: float) -> None:
    with pytest.raises(InputError, match="frame rate"):
        to_timecode(1.0, fps)


@pytest.mark.parametrize(
    "text", ["1:00:00:00", "00:00:00", "00:60:00:00", "00:00:00:25", "ab:cd:ef:gh"]
)
def test_malformed_or_out_of_range_timecodes_are_refused(text: str) -> None:
    with pytest.raises(InputError, match=repr(text).replace("(", r"\(")):
        from_timecode(text, 25.0)


@given(st.floats(0.0, 23 * 3600.0), st.sampled_from(RATES))
def test_round_trip_lands_within_one_frame(seconds: float, fps: float) -> None:
    back = from_timecode(to_timecode(seconds, fps), fps)
    assert seconds - 1 / fps < back <= seconds + 1e-9


@given(st.floats(0.0, 1.0, exclude_max=True), st.sampled_from(RATES))
def test_every_frame_has_its_own_timecode(fraction_of_day: float, fps: float) -> None:
    frame = int(fraction_of_day * 24 * 3600 * timecode_base(fps))
    timecode = to_timecode(frame / fps, fps)
    assert to_timecode(from_timecode(timecode, fps), fps) == timecode
    assert round(from_timecode(timecode, fps) * fps) == frame


@given(st.floats(0.0, 3600.0), st.floats(0.0, 3600.0), st.sampled_from(RATES))
def test_timecodes_sort_like_times(a: float, b: float, fps: float) -> None:
    if a <= b:
        assert to_timecode(a, fps) <= to_timecode(b, fps)
