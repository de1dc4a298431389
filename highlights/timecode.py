"""Seconds <-> non-drop-frame SMPTE timecodes ("HH:MM:SS:FF"), as MediaConvert input clipping wants.

MediaConvert addresses input frames by frame number, not by millisecond: with the input's
`TimecodeSource` set to ZEROBASED the first frame is 00:00:00:00 and each following frame adds one
to FF, at the source frame rate. So a time becomes a frame count, and the count is written in a
timecode whose frames-per-second base is the nominal (whole) rate: round half up, as ffmpeg does
(29.97 -> 30, 23.976 -> 24, 59.94 -> 60, 12.5 -> 13).

For fractional NTSC rates this is non-drop-frame timecode: the HH:MM:SS part then runs 0.1 % slower
than the clock (01:00:00:00 at 29.97 fps is 3603.6 s into the video). That is intended: the frame
it names is the right one. Drop-frame ("HH:MM:SS;FF") is not produced.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from highlights.errors import InputError

DAY_HOURS = 24  # MediaConvert timecodes are 24-hour and roll over at midnight
_TIMECODE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})[:;](\d{2})$")


def as_rate(value: Fraction | int | float | str) -> Fraction:
    """An exact frame rate (frames per second) from a Fraction, an int, "N/D" text or a decimal.

    A decimal (float or text) within 1/1000 of an NTSC rate N x 1000/1001 (N >= 10) means that
    rate: 29.97 is 30000/1001, 23.976 is 24000/1001, 59.94 is 60000/1001. Other decimals are
    taken as written (12.5 is 25/2). Fractions, ints and "N/D" text are exact already.
    """
    try:
        if isinstance(value, bool):
            raise TypeError("a boolean is not a rate")
        if isinstance(value, Fraction | int):
            rate = Fraction(value)
        elif isinstance(value, str) and "/" in value:
            rate = Fraction(value.strip())
        elif isinstance(value, float | str):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not finite")
            rate = _ntsc_or_decimal(Fraction(repr(number)))
        else:
            raise TypeError(f"a {type(value).__name__} is not a rate")
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise InputError(f"frame rate {value!r} is not a number of frames/s ({exc})") from None
    if rate <= 0:
        raise InputError(f"frame rate must be positive, got {value!r}")
    return rate


def _ntsc_or_decimal(rate: Fraction) -> Fraction:
    if rate.denominator == 1:
        return rate
    nominal = round(rate * Fraction(1001, 1000))
    ntsc = Fraction(nominal * 1000, 1001)
    return ntsc if nominal >= 10 and abs(rate - ntsc) < Fraction(1, 1000) else rate


def rate_text(rate: Fraction) -> str:
    """A rate as exact text: "25", "30000/1001", "5/2" (`as_rate` reads it back)."""
    return str(Fraction(rate))


def timecode_base(fps: float) -> int:
    """Frames counted per timecode second for a source rate (round half up)."""
    if not math.isfinite(fps) or fps <= 0:
        raise InputError(f"frame rate must be a positive number, got {fps}")
    return max(1, math.floor(fps + 0.5))


def frame_at(seconds: float, fps: float) -> int:
    """The frame on screen at `seconds`; frame k starts at k/fps (1e-6 frame of float error ok)."""
    return math.floor(seconds * fps + 1e-6)


def frames_to_timecode(frame: int, fps: float) -> str:
    base = timecode_base(fps)
    limit = DAY_HOURS * 3600 * base
    if not 0 <= frame < limit:
        raise InputError(f"frame {frame} at {fps} fps is outside a 24-hour timecode")
    seconds, ff = divmod(frame, base)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def to_timecode(seconds: float, fps: float) -> str:
    """Non-drop-frame "HH:MM:SS:FF" of the frame shown at `seconds` into the video (ZEROBASED)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"a timecode needs a non-negative time, got {seconds}")
    timecode_base(fps)
    return frames_to_timecode(frame_at(seconds, fps), fps)


def timecode_to_frames(timecode: str, fps: float) -> int:
    match = _TIMECODE.match(timecode)
    if match is None:
        raise InputError(f"{timecode!r} is not a timecode of the form HH:MM:SS:FF")
    hh, mm, ss, ff = (int(part) for part in match.groups())
    base = timecode_base(fps)
    if mm >= 60 or ss >= 60 or ff >= base or hh >= DAY_HOURS:
        raise InputError(f"{timecode!r} is out of range for {fps} fps (frames must be < {base})")
    return ((hh * 60 + mm) * 60 + ss) * base + ff


def from_timecode(timecode: str, fps: float) -> float:
    """Seconds from the start of the video to the frame a ZEROBASED timecode names."""
    return timecode_to_frames(timecode, fps) / fps


def clip_timecodes(start: float, end: float, fps: float) -> tuple[str, str]:
    """MediaConvert InputClipping (StartTimecode, EndTimecode) for [start, end) seconds.

    Both frames are included in the clip, so the end is the last frame shown before `end`.
    """
    first = frame_at(start, fps)
    last = max(first, math.ceil(end * fps - 1e-6) - 1)
    return frames_to_timecode(first, fps), frames_to_timecode(last, fps)
