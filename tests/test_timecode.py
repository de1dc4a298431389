"""Time in one place: exact rates, frame <-> seconds <-> SMPTE timecode, one rule per direction.

Reference values are published ones (SMPTE ST 12-1 drop-frame counting, as tabulated in e.g.
Apple's "Timecode" technote and every NLE): 29.97 DF frame 1800 is 00:01:00;02, frame 17982 is
00:10:00;00, 107892 is 01:00:00;00; 59.94 DF frame 3600 is 00:01:00;04.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from highlights.errors import InputError
from highlights.timecode import (
    FrameTime,
    as_rate,
    clip_frames,
    clip_timecodes,
    clock,
    clock_seconds,
    frame_at,
    frame_time,
    frames_at,
    frames_before,
    frames_to_timecode,
    from_timecode,
    game_time,
    milliseconds,
    rate_text,
    timecode_base,
    timecode_seconds,
    timecode_to_frames,
    to_timecode,
)

NTSC = Fraction(30000, 1001)
NTSC60 = Fraction(60000, 1001)
FILM = Fraction(24000, 1001)
RATES = [FILM, Fraction(24), Fraction(25), NTSC, Fraction(30), Fraction(50), NTSC60, Fraction(60)]
DROP_FRAME_RATES = [NTSC, NTSC60]


# --- rates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        (29.97, NTSC),
        ("29.97", NTSC),
        (30000 / 1001, NTSC),
        (23.976, FILM),
        (59.94, NTSC60),
        ("30000/1001", NTSC),
        (25, Fraction(25)),
        (25.0, Fraction(25)),
        (12.5, Fraction(25, 2)),
        (0.2, Fraction(1, 5)),
        (Fraction(2997, 100), Fraction(2997, 100)),  # an exact fraction is taken as it is
    ],
)
def test_rates_are_exact_fractions(value, rate):
    assert as_rate(value) == rate


@pytest.mark.parametrize("value", [0, -25, float("inf"), float("nan"), "fast", True, None])
def test_a_bad_rate_is_refused(value):
    with pytest.raises(InputError, match="frame rate"):
        as_rate(value)


def test_rate_text_is_exact_and_reads_back():
    assert rate_text(29.97) == "30000/1001"
    assert as_rate(rate_text(NTSC60)) == NTSC60


@pytest.mark.parametrize(("rate", "base"), [(FILM, 24), (NTSC, 30), (NTSC60, 60), (12.5, 13)])
def test_timecode_seconds_count_the_rate_rounded_half_up(rate, base):
    assert timecode_base(rate) == base


# --- frames and seconds ----------------------------------------------------------------------


def test_frame_k_starts_at_exactly_k_over_rate():
    assert frame_time(1800, NTSC) == Fraction(1800 * 1001, 30000) == Fraction(6006, 100)


def test_the_frame_on_screen_is_the_last_that_started():
    assert frame_at(1.99, 25) == 49
    assert frame_at(2.0, 25) == 50


def test_a_stored_float_start_names_its_frame():
    for k in range(0, 200_000, 997):
        assert frame_at(float(frame_time(k, NTSC)), NTSC) == k
        assert frames_before(float(frame_time(k, NTSC)), NTSC) == k


def test_frames_before_an_end_are_those_that_start_before_it():
    assert frames_before(2.0, 25) == 50  # frames 0-49; frame 50 starts at the end
    assert frames_before(2.01, 25) == 51


def test_the_array_rule_is_the_scalar_rule():
    times = np.array([float(frame_time(k, NTSC)) for k in range(0, 5000, 7)] + [0.4000001])
    assert frames_at(times, NTSC).tolist() == [frame_at(t, NTSC) for t in times]


@given(st.integers(0, 10**7), st.sampled_from(RATES))
def test_frame_to_seconds_and_back_is_the_same_frame(frame, rate):
    assert frame_at(frame_time(frame, rate), rate) == frame
    assert frame_at(float(frame_time(frame, rate)), rate) == frame


@given(st.floats(0, 86_000), st.floats(0, 86_000), st.sampled_from(RATES))
def test_later_times_never_have_earlier_frames(a, b, rate):
    early, late = sorted((a, b))
    assert frame_at(early, rate) <= frame_at(late, rate)
    assert frames_before(early, rate) <= frames_before(late, rate)


@given(st.floats(0, 86_000), st.sampled_from(RATES))
def test_the_frame_on_screen_started_within_one_frame_before(seconds, rate):
    start = frame_time(frame_at(seconds, rate), rate)
    assert start <= Fraction(seconds) + Fraction(1, 10**6) / rate
    assert Fraction(seconds) - start < 1 / rate


# --- drop-frame against published values ------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "rate", "timecode"),
    [
        (0, NTSC, "00:00:00;00"),
        (1799, NTSC, "00:00:59;29"),
        (1800, NTSC, "00:01:00;02"),
        (3598, NTSC, "00:02:00;02"),
        (17981, NTSC, "00:09:59;29"),
        (17982, NTSC, "00:10:00;00"),
        (17983, NTSC, "00:10:00;01"),
        (19781, NTSC, "00:10:59;29"),
        (19782, NTSC, "00:11:00;02"),
        (107892, NTSC, "01:00:00;00"),
        (2589407, NTSC, "23:59:59;29"),
        (3599, NTSC60, "00:00:59;59"),
        (3600, NTSC60, "00:01:00;04"),
        (35964, NTSC60, "00:10:00;00"),
    ],
)
def test_drop_frame_timecodes_match_the_published_values(frame, rate, timecode):
    assert frames_to_timecode(frame, rate, drop_frame=True) == timecode
    assert timecode_to_frames(timecode, rate) == frame


def test_00_01_00_02_at_29_97_drop_frame_is_60_06_seconds():
    assert timecode_seconds("00:01:00;02", NTSC) == Fraction(6006, 100)
    assert from_timecode("00:01:00;02", 29.97) == pytest.approx(60.06, abs=1e-12)


def test_non_drop_frame_at_29_97_runs_behind_the_clock():
    assert timecode_seconds("00:01:00:02", NTSC) == Fraction(1802 * 1001, 30000)  # 60.127 s
    assert timecode_seconds("01:00:00:00", NTSC) == Fraction(36036, 10)


@pytest.mark.parametrize("timecode", ["00:01:00;00", "00:01:00;01", "00:59:00;01"])
def test_labels_drop_frame_skips_do_not_exist(timecode):
    with pytest.raises(InputError, match="drop-frame skips it"):
        timecode_to_frames(timecode, NTSC)


def test_tenth_minutes_keep_their_first_labels():
    assert timecode_to_frames("00:20:00;00", NTSC) == 2 * 17982


@pytest.mark.parametrize("rate", [25, FILM, 30])
def test_drop_frame_exists_only_at_29_97_and_59_94(rate):
    with pytest.raises(InputError, match="drop-frame timecode exists only at"):
        timecode_to_frames("00:00:10;05", rate)


@given(st.integers(0, 2589407), st.sampled_from(DROP_FRAME_RATES))
def test_drop_frame_round_trips_every_frame_of_a_day(frame, rate):
    frame = frame if rate == NTSC else frame * 2
    assert timecode_to_frames(frames_to_timecode(frame, rate, drop_frame=True), rate) == frame


@given(st.integers(0, 24 * 3600 * 24 - 1), st.sampled_from(RATES))
def test_non_drop_frame_round_trips(frame, rate):
    assert timecode_to_frames(frames_to_timecode(frame, rate), rate) == frame


@given(st.integers(0, 2589406), st.sampled_from(DROP_FRAME_RATES))
def test_drop_frame_labels_increase_with_frames(frame, rate):
    here = frames_to_timecode(frame, rate, drop_frame=True)
    after = frames_to_timecode(frame + 1, rate, drop_frame=True)
    assert after > here  # zero-padded fields: text order is time order


@given(st.integers(0, 2589407))
def test_drop_frame_keeps_within_a_frame_of_the_clock_each_ten_minutes(frame):
    hh, mm, ss, ff = (
        int(p) for p in frames_to_timecode(frame, NTSC, True).replace(";", ":").split(":")
    )
    label_seconds = Fraction(hh * 3600 + mm * 60 + ss) + Fraction(ff, 30)
    assert abs(label_seconds - frame_time(frame, NTSC)) < Fraction(1, 10) + Fraction(2, 30)


@pytest.mark.parametrize(
    "text", ["1:00:00:00", "00:00:00", "00:60:00:00", "00:00:00:25", "ab:cd:ef:gh", "24:00:00:00"]
)
def test_malformed_or_out_of_range_timecodes_are_refused(text):
    with pytest.raises(InputError, match=repr(text).replace("(", r"\(")):
        timecode_to_frames(text, 25)


# --- the time type and clips -------------------------------------------------------------------


def test_a_frame_time_knows_its_seconds_and_timecodes():
    frame = FrameTime.at(60.07, 29.97)
    assert frame == FrameTime(1800, NTSC)
    assert frame.seconds == Fraction(6006, 100)
    assert frame.timecode() == "00:01:00;02"  # drop-frame where it exists
    assert frame.timecode(drop_frame=False) == "00:01:00:00"
    assert FrameTime.parse("00:01:00;02", NTSC) == frame
    assert (frame + 1).frame == 1801


def test_a_clip_holds_its_first_and_last_frame():
    first, stop = clip_frames(2.0, 6.0, 25)
    assert (first.frame, stop.frame) == (50, 150)
    assert clip_timecodes(2.0, 6.0, 25) == ("00:00:02:00", "00:00:05:24")


def test_a_clip_shorter_than_a_frame_is_one_frame():
    assert clip_timecodes(2.0, 2.01, 25) == ("00:00:02:00", "00:00:02:00")


def test_a_clip_at_29_97_starts_on_the_frame_on_screen_in_drop_frame():
    # frame 1828 starts at 60.994 s, before the end: it is the last one in
    assert clip_timecodes(60.07, 61.0, NTSC) == ("00:01:00;02", "00:01:01;00")


def test_a_clip_past_the_end_of_the_video_is_clamped_to_its_last_frame():
    first, stop = clip_frames(8.0, 12.0, 25, duration=10.0)
    assert (first.frame, stop.frame) == (200, 250)
    assert clip_timecodes(8.0, 12.0, 25, duration=10.0)[1] == "00:00:09:24"


def test_a_clip_that_starts_after_the_end_is_refused():
    with pytest.raises(InputError, match="starts after the last frame"):
        clip_frames(10.0, 12.0, 25, duration=10.0)


def test_a_clip_before_the_start_begins_at_frame_0():
    assert clip_frames(-1.0, 0.5, 25)[0].frame == 0


@given(st.floats(0, 3000), st.floats(0.001, 600), st.floats(1, 4000), st.sampled_from(RATES))
def test_clips_stay_inside_the_video_and_hold_their_start(start, length, duration, rate):
    if frame_at(start, rate) >= frames_before(duration, rate):
        return
    first, stop = clip_frames(start, start + length, rate, duration=duration)
    assert 0 <= first.frame < stop.frame <= max(frames_before(duration, rate), first.frame + 1)
    assert first.seconds <= Fraction(start) + Fraction(1, 10**6) / rate < first.seconds + 1 / rate


@pytest.mark.parametrize("seconds", [-0.5, float("nan"), 24 * 3600.0])
def test_times_outside_a_day_are_refused(seconds):
    with pytest.raises(InputError, match="time|24-hour|frame numbers"):
        to_timecode(seconds, 25.0)


# --- other units --------------------------------------------------------------------------------


def test_milliseconds_are_the_nearest_whole_ones():
    assert milliseconds(60.06) == 60060
    assert milliseconds(Fraction(1, 3)) == 333


def test_the_game_clock_does_not_wrap_minutes_into_hours():
    assert game_time(95 * 60 + 12.9) == "95:12"
    assert game_time(-1) == "0:00"


def test_a_clock_reads_whole_seconds_rounded_down_and_back():
    assert clock(95 * 60 + 12.9) == (95, 12)
    assert clock(59.999) == (0, 59)
    assert clock(-0.5) == (0, 0)
    assert clock_seconds(95, 12) == 5712
    assert clock_seconds(*clock(5712.9)) == 5712
