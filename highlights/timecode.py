"""Time in one place: exact frame rates, and frame index <-> seconds <-> SMPTE timecode.

Every conversion between frame numbers, seconds, stream timestamps, timecodes and milliseconds in
this package is here; the rest of the code holds seconds (floats at rest, in files) or frame
numbers, and asks this module to turn one into the other. `FrameTime` (a frame number with its
exact rate, PySceneDetect's `FrameTimecode` habit) is the value type for frame-accurate work.

Rates are exact fractions: 29.97 fps is 30000/1001, never the float 29.97 (`as_rate`).
Frame k of a video, or of a sampling at a rate, starts at k / rate seconds and lasts 1 / rate.
One rounding rule per direction:

- frame -> seconds: exact, k / rate (`frame_time`, `FrameTime.seconds`).
- seconds -> frame: the frame on screen at t, floor(t x rate) (`frame_at`, `FrameTime.at`).
- seconds -> frames before t (an end, exclusive, or a length): ceil(t x rate), the frames that
  start before t (`frames_before`, `FrameTime.before`).
  Both read a float t within SNAP (a millionth of a frame) below a frame's start as that start:
  a stored float k / rate is not exact, and must name frame k.
- frame -> timecode: `HH:MM:SS:FF` counts frames in base round-half-up(rate) (non-drop-frame);
  `HH:MM:SS;FF` is drop-frame (29.97 and 59.94 only): labels ;00 and ;01 (;00 to ;03 at 59.94)
  are skipped at the start of every minute except minutes 00, 10, 20, 30, 40 and 50, so the
  label keeps up with the clock (SMPTE ST 12-1).
- timecode -> frame: the inverse; a `;` means drop-frame, `:` non-drop-frame. Labels that
  drop-frame skips do not exist and are refused.
- seconds -> milliseconds: nearest, ties to even (`milliseconds`); back: ms / 1000.
- seconds -> a clock's minutes and seconds: whole seconds, rounded down, minutes not wrapped
  into hours (`clock`, `game_time`); back: minutes x 60 + seconds (`clock_seconds`).
- stream timestamp <-> seconds: exact pts x time_base; seconds -> pts rounds down (`to_pts`).
- seconds -> ffmpeg's text: whole microseconds, rounded down (`seconds_text`, `ffmpeg_span`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from highlights.errors import InputError

DAY_HOURS = 24  # timecodes are 24-hour and roll over at midnight
SNAP = Fraction(1, 1_000_000)  # of a frame: how far below a frame's start a float may fall
_TIMECODE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})([:;])(\d{2})$")
_DROP_FRAME_RATES = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}  # labels dropped/min

Rate = Fraction | int | float | str
Seconds = Fraction | float | int


# --- rates ---------------------------------------------------------------------------------


def as_rate(value: Rate) -> Fraction:
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


def rate_text(rate: Rate) -> str:
    """A rate as exact text: "25", "30000/1001", "5/2" (`as_rate` reads it back; so does ffmpeg)."""
    return str(as_rate(rate))


def ffmpeg_rate(rate: Rate) -> str:
    """A rate as ffmpeg options take it: the exact ratio while it fits ffmpeg's 32-bit ints
    (every camera rate does), else 6 decimals (an odd average of a variable-rate video)."""
    exact = as_rate(rate)
    if max(exact.numerator, exact.denominator) < 2**31:
        return str(exact)
    return f"{float(exact):.6f}"


def timecode_base(rate: Rate) -> int:
    """Frames counted per timecode second: the rate rounded half up (29.97 -> 30, 12.5 -> 13)."""
    return max(1, math.floor(as_rate(rate) + Fraction(1, 2)))


def is_drop_frame_rate(rate: Rate) -> bool:
    """Whether drop-frame timecode exists at `rate` (29.97 and 59.94 fps)."""
    return as_rate(rate) in _DROP_FRAME_RATES


# --- frames and seconds --------------------------------------------------------------------


def frame_time(frame: int, rate: Rate) -> Fraction:
    """Seconds from the start to frame `frame`'s start: exactly frame / rate."""
    return Fraction(frame) / as_rate(rate)


def frame_duration(rate: Rate) -> Fraction:
    """How long one frame lasts: 1 / rate seconds."""
    return 1 / as_rate(rate)


def frame_at(seconds: Seconds, rate: Rate) -> int:
    """The frame on screen at `seconds`: floor(seconds x rate), snapped (see the module)."""
    return math.floor(_exact(seconds) * as_rate(rate) + SNAP)


def frames_before(seconds: Seconds, rate: Rate) -> int:
    """How many frames start before `seconds`: ceil(seconds x rate), snapped (see the module).

    The exclusive end frame of a range ending at `seconds`; the frames a length holds.
    """
    return math.ceil(_exact(seconds) * as_rate(rate) - SNAP)


def frames_at(times: np.ndarray, rate: Rate) -> np.ndarray:
    """`frame_at` for an array of seconds (int64); the same rule in float arithmetic."""
    scaled = np.asarray(times, dtype=np.float64) * float(as_rate(rate))
    return np.floor(scaled + float(SNAP)).astype(np.int64)


def frame_times(frames: np.ndarray, rate: Rate) -> np.ndarray:
    """`frame_time` for an array of frame numbers, as float64 seconds."""
    exact = as_rate(rate)
    return np.asarray(frames, dtype=np.int64) * exact.denominator / exact.numerator


def last_frame_time(duration: Seconds, rate: Rate) -> Fraction:
    """The start of the last frame that begins before `duration` (0 for an empty video)."""
    return frame_time(max(0, frames_before(duration, rate) - 1), rate)


def _exact(seconds: Seconds) -> Fraction:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise InputError(f"a time must be a finite number of seconds, got {seconds}")
    return Fraction(seconds)


# --- the time type -------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameTime:
    """A frame of a video at an exact rate: its number, start in seconds and timecodes."""

    frame: int
    rate: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", as_rate(self.rate))
        if self.frame < 0:
            raise InputError(f"frame numbers start at 0, got {self.frame}")

    @classmethod
    def at(cls, seconds: Seconds, rate: Rate) -> FrameTime:
        """The frame on screen at `seconds` (floor)."""
        return cls(frame_at(seconds, rate), as_rate(rate))

    @classmethod
    def before(cls, seconds: Seconds, rate: Rate) -> FrameTime:
        """The first frame that starts at or after `seconds` (ceil): an exclusive end."""
        return cls(frames_before(seconds, rate), as_rate(rate))

    @classmethod
    def parse(cls, timecode: str, rate: Rate) -> FrameTime:
        return cls(timecode_to_frames(timecode, rate), as_rate(rate))

    @property
    def seconds(self) -> Fraction:
        return frame_time(self.frame, self.rate)

    def __float__(self) -> float:
        return float(self.seconds)

    def timecode(self, drop_frame: bool | None = None) -> str:
        """`HH:MM:SS;FF` (drop-frame) or `HH:MM:SS:FF`; default: drop-frame where it exists."""
        drop = is_drop_frame_rate(self.rate) if drop_frame is None else drop_frame
        return frames_to_timecode(self.frame, self.rate, drop)

    def __add__(self, frames: int) -> FrameTime:
        return FrameTime(self.frame + frames, self.rate)

    def __sub__(self, frames: int) -> FrameTime:
        return FrameTime(self.frame - frames, self.rate)


def clip_frames(
    start: Seconds, end: Seconds, rate: Rate, duration: Seconds | None = None
) -> tuple[FrameTime, FrameTime]:
    """(first frame, stop frame) of [start, end) seconds: the frames shown in the range.

    `first` is on screen at `start`; `stop` (excluded) is the first frame that starts at or after
    `end`. With `duration` both are clamped to the video's frames. A range within one frame still
    holds that frame. InputError if the range is empty or lies after the end.
    """
    rate = as_rate(rate)
    if _exact(end) <= _exact(start):
        raise InputError(f"empty range {float(start):.3f}-{float(end):.3f} s")
    first = FrameTime.at(max(_exact(start), Fraction(0)), rate)
    stop = FrameTime.before(end, rate)
    if duration is not None:
        total = frames_before(duration, rate)
        if first.frame >= total:
            raise InputError(
                f"range {float(start):.3f}-{float(end):.3f} s starts after the last frame "
                f"of a {float(duration):.3f} s video"
            )
        stop = FrameTime(min(stop.frame, total), rate)
    return first, FrameTime(max(stop.frame, first.frame + 1), rate)


# --- timecodes -----------------------------------------------------------------------------


def frames_to_timecode(frame: int, rate: Rate, drop_frame: bool = False) -> str:
    """The timecode of frame `frame` (0 is 00:00:00:00); see the module for the two kinds."""
    rate = as_rate(rate)
    base = timecode_base(rate)
    if not 0 <= frame < _frames_per_day(rate, drop_frame):
        raise InputError(f"frame {frame} at {rate_text(rate)} fps is outside a 24-hour timecode")
    label = frame + (_dropped_before(frame, rate) if drop_frame else 0)
    seconds, ff = divmod(label, base)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop_frame else ':'}{ff:02d}"


def timecode_to_frames(timecode: str, rate: Rate) -> int:
    """The frame a timecode names; `;` before the frames means drop-frame."""
    match = _TIMECODE.match(timecode)
    if match is None:
        raise InputError(f"{timecode!r} is not a timecode of the form HH:MM:SS:FF or HH:MM:SS;FF")
    rate = as_rate(rate)
    hh, mm, ss, ff = (int(match[i]) for i in (1, 2, 3, 5))
    drop_frame = match[4] == ";"
    base = timecode_base(rate)
    if mm >= 60 or ss >= 60 or ff >= base or hh >= DAY_HOURS:
        raise InputError(
            f"{timecode!r} is out of range at {rate_text(rate)} fps (frames must be < {base})"
        )
    label = ((hh * 60 + mm) * 60 + ss) * base + ff
    if not drop_frame:
        return label
    dropped = _dropped_per_minute(rate, timecode)
    minutes = hh * 60 + mm
    if ss == 0 and ff < dropped and mm % 10:
        raise InputError(f"{timecode!r} does not exist: drop-frame skips it")
    return label - dropped * (minutes - minutes // 10)


def timecode_seconds(timecode: str, rate: Rate) -> Fraction:
    """Seconds from the start to the frame a timecode names (00:01:00;02 at 29.97 is 60.06)."""
    return frame_time(timecode_to_frames(timecode, rate), rate)


def _dropped_per_minute(rate: Fraction, timecode: str = "") -> int:
    dropped = _DROP_FRAME_RATES.get(rate)
    if dropped is None:
        what = f"{timecode!r}: " if timecode else ""
        raise InputError(
            f"{what}drop-frame timecode exists only at 30000/1001 and 60000/1001 fps, "
            f"not {rate_text(rate)}"
        )
    return dropped


def _dropped_before(frame: int, rate: Fraction) -> int:
    """Labels drop-frame has skipped by frame `frame`."""
    dropped = _dropped_per_minute(rate)
    per_minute = timecode_base(rate) * 60 - dropped  # frames in a minute that drops labels
    per_ten = per_minute * 10 + dropped  # frames in ten minutes (the first drops none)
    tens, rest = divmod(frame, per_ten)
    minutes = 0 if rest < dropped else (rest - dropped) // per_minute
    return dropped * (9 * tens + minutes)


def _frames_per_day(rate: Fraction, drop_frame: bool) -> int:
    base = timecode_base(rate)
    if not drop_frame:
        return DAY_HOURS * 3600 * base
    return DAY_HOURS * 3600 * base - _dropped_per_minute(rate) * DAY_HOURS * 54


# --- other units -----------------------------------------------------------------------------


def milliseconds(seconds: Seconds) -> int:
    """Seconds as whole milliseconds: nearest, ties to even."""
    return round(_exact(seconds) * 1000)


def from_milliseconds(ms: int) -> float:
    return ms / 1000


def clock(seconds: Seconds) -> tuple[int, int]:
    """(minutes, seconds) of the second on the clock at `seconds`, rounded down; minutes are
    not wrapped into hours (95 minutes is (95, 0)); (0, 0) before the start."""
    whole = max(0, math.floor(_exact(seconds)))
    minutes, rest = divmod(whole, 60)
    return minutes, rest


def clock_seconds(minutes: int, seconds: int) -> int:
    """Seconds from the start to a clock's `minutes`:`seconds`."""
    return minutes * 60 + seconds


def game_time(seconds: Seconds) -> str:
    """SoccerNet-style "M:SS" of the second on the clock (95 minutes is "95:00", not wrapped)."""
    minutes, rest = clock(seconds)
    return f"{minutes}:{rest:02d}"


def stream_seconds(pts: int, time_base: Fraction, origin: Fraction = Fraction(0)) -> Fraction:
    """A stream timestamp as exact seconds from `origin` (the container start)."""
    return pts * time_base - origin


def to_pts(seconds: Fraction, time_base: Fraction, origin: Fraction = Fraction(0)) -> int:
    """The stream timestamp at or before `seconds` from `origin` (rounded down)."""
    return math.floor((seconds + origin) / time_base)


def seconds_text(seconds: Seconds) -> str:
    """Seconds with 6 decimals (microseconds, ffmpeg's own unit), rounded down."""
    micros = math.floor(_exact(seconds) * 1_000_000)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def ffmpeg_span(first: FrameTime, stop: FrameTime) -> tuple[str, str]:
    """ffmpeg's `-ss` (before `-i`) and `-t` that keep frames first ... stop - 1, no others.

    ffmpeg's accurate seek drops the frames that start before `-ss` and shifts the rest so the
    first starts at 0, and `-t` ends the output before the first frame at or after it. So `-ss`
    is the first frame's start rounded down to the microsecond (at or before it, and after the
    frame before), and `-t` ends half a frame before frame `stop` starts.
    """
    length = frame_time(stop.frame - first.frame, first.rate) - frame_duration(first.rate) / 2
    return seconds_text(first.seconds), seconds_text(length)


# --- MediaConvert clipping (seconds in, timecodes out) -------------------------------------


def to_timecode(seconds: Seconds, rate: Rate, drop_frame: bool | None = None) -> str:
    """The timecode of the frame on screen at `seconds` (drop-frame where it exists)."""
    return FrameTime.at(seconds, rate).timecode(drop_frame)


def from_timecode(timecode: str, rate: Rate) -> float:
    """Seconds from the start to the frame a timecode names, as a float."""
    return float(timecode_seconds(timecode, rate))


def clip_timecodes(
    start: Seconds,
    end: Seconds,
    rate: Rate,
    duration: Seconds | None = None,
    drop_frame: bool | None = None,
) -> tuple[str, str]:
    """An InputClipping's (StartTimecode, EndTimecode) for [start, end) seconds.

    MediaConvert includes both frames, so the end is the last frame that starts before `end`
    (`clip_frames`, clamped to the video with `duration`).
    """
    first, stop = clip_frames(start, end, rate, duration)
    return first.timecode(drop_frame), (stop - 1).timecode(drop_frame)
