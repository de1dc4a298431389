"""Reading video: probing a file with PyAV, the types frames are handed on in, ffmpeg commands.

Sampling frames at a set rate is `highlights.sampling`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from highlights.errors import VideoError
from highlights.timecode import frames_before, stream_seconds

# Video streams ffmpeg's `V` stream specifier skips: cover art and thumbnails, not footage.
NOT_MOTION_VIDEO = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails

# Container-level times (start_time, duration) count in microseconds: FFmpeg's AV_TIME_BASE.
CONTAINER_TIME_BASE = Fraction(1, av.time_base)

# How many trailing lines of ffmpeg's stderr go into an error message.
STDERR_TAIL_LINES = 8


# File endings we treat as video wherever files are picked from a folder or a bucket.
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".ts", ".mts", ".mpg", ".mpeg", ".mxf"}
)


@dataclass(frozen=True)
class VideoInfo:
    """What we need to know about a video before processing it."""

    path: Path
    duration: float  # seconds
    fps: float  # average frame rate of the video stream
    width: int  # display width, after rotation metadata is applied
    height: int  # display height, after rotation metadata is applied
    rotation: int  # degrees clockwise the player must turn the picture (0, 90, 180, 270)
    codec: str
    has_audio: bool
    rate: Fraction  # the same frame rate, exact (30000/1001 where `fps` says 29.97...)

    def expected_frames(self, rate: float) -> int:
        """How many frames `sample_frames` yields at `rate`: those that start before the end."""
        return max(1, frames_before(self.duration, rate))


@dataclass(frozen=True)
class FrameGeometry:
    """How a frame is shaped for a backbone: short side resized, then centre-cropped square."""

    resize_short: int
    crop: int


@dataclass(frozen=True)
class SampledFrame:
    index: int  # 0-based index among the sampled frames
    time: float  # seconds from the start of the video
    image: np.ndarray  # (crop, crop, 3) uint8 RGB
    damaged: bool = False  # the picture on screen at `time` could not be decoded cleanly


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped with imageio-ffmpeg (never a system one we did not test)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def media_path(path: Path) -> str:
    """`path` as ffmpeg/PyAV must see it: absolute, so `half2:30.mp4` is not a "half2:" URL."""
    return str(Path(path).absolute())


def stderr_tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def ffmpeg_command(*args: str) -> list[str]:
    """An ffmpeg command line: our binary, quiet, never waiting on stdin, overwriting."""
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]


def run_ffmpeg(command: list[str], subject: Path, action: str) -> None:
    """Run `command`; on failure raise a VideoError naming `subject` with ffmpeg's last words."""
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", errors="replace")
        raise VideoError(f"{subject}: ffmpeg could not {action}:\n{stderr_tail(stderr)}")


# --- probe -------------------------------------------------------------------------------


def probe(path: Path) -> VideoInfo:
    """Read duration, frame rate, display size, rotation, codec and audio presence.

    Raises VideoError naming the file when it is missing, a directory, empty, not a video,
    truncated, has no video stream or has no duration.
    """
    path = Path(path)
    _check_file(path)
    try:
        with av.open(media_path(path), metadata_errors="ignore") as container:
            return _read_info(path, container)
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path}: not a readable video (corrupt, truncated or not video): {_av_reason(exc)}"
        ) from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: video file not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: video file is empty (0 bytes)")


def _av_reason(exc: av.FFmpegError) -> str:
    return exc.strerror or str(exc)


def _read_info(path: Path, container: av.container.InputContainer) -> VideoInfo:
    stream = main_video_stream(container)
    if stream is None:
        raise VideoError(f"{path}: has no video stream (audio-only or not a video)")
    _check_not_truncated(path, stream)
    duration = _duration(path, container, stream)
    if duration <= 0:
        raise VideoError(f"{path}: video has zero duration")
    rotation = _rotation(path, container, stream)
    width, height = _display_size(stream)
    if width <= 0 or height <= 0:
        raise VideoError(f"{path}: video stream has no picture size (corrupt header)")
    if rotation in (90, 270):
        width, height = height, width
    rate = _rate(stream, duration)
    return VideoInfo(
        path=path,
        duration=duration,
        fps=float(rate),
        width=width,
        height=height,
        rotation=rotation,
        codec=stream.codec_context.name,
        has_audio=bool(container.streams.audio),
        rate=rate,
    )


def main_video_stream(
    container: av.container.InputContainer,
) -> av.video.stream.VideoStream | None:
    """The first video stream that is not cover art: ffmpeg's `0:V:0`, which sampling maps."""
    for stream in container.streams.video:
        if not stream.disposition & NOT_MOTION_VIDEO:
            return stream
    return None


def _check_not_truncated(path: Path, stream: av.video.stream.VideoStream) -> None:
    """Compare the demuxer's index (mp4, avi) with the file size: a cut-off download fails here."""
    entries = stream.index_entries
    count = len(entries)
    if count == 0:
        return
    last_byte = max(entry.pos + entry.size for entry in entries[max(0, count - 64) : count])
    size = path.stat().st_size
    if last_byte > size:
        raise VideoError(
            f"{path}: file is truncated (index refers to byte {last_byte}, file has {size} bytes)"
        )


def _duration(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float:
    """Seconds from the container start to the end of the video stream.

    Measured on the same timeline ffmpeg uses when sampling (container start = 0), so the number
    of sampled frames is about duration * rate. Falls back to the container duration, then to
    scanning packet timestamps (raw streams carry neither).
    """
    origin = stream_seconds(container.start_time or 0, CONTAINER_TIME_BASE)
    if stream.duration is not None and stream.time_base:
        start = stream_seconds(stream.start_time or 0, stream.time_base, origin)
        return float(start + stream_seconds(stream.duration, stream.time_base))
    if container.duration:
        return float(stream_seconds(container.duration, CONTAINER_TIME_BASE))
    # Raw streams cannot seek back, so the scan reads its own copy of the file.
    with av.open(media_path(path), metadata_errors="ignore") as scan:
        return float(_scan_duration(scan, scan.streams[stream.index]) - origin)


def _scan_duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Fraction:
    """End time from packet timestamps, or the sum of packet durations when there are none."""
    end = total = Fraction(0)
    for packet in container.demux(stream):
        if packet.size == 0 or not packet.time_base:
            continue
        length = stream_seconds(packet.duration or 0, packet.time_base)
        total += length
        if packet.pts is not None:
            end = max(end, stream_seconds(packet.pts, packet.time_base) + length)
    return end or total


def _rotation(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> int:
    """Clockwise display rotation, read from the first decoded frame's display matrix.

    PyAV 18 exposes the matrix only on frames (`VideoFrame.rotation`, counter-clockwise degrees);
    the decoder copies the container's matrix onto every frame. Decoding one frame also proves
    the stream is decodable. Packets that do not decode are passed over: a recording may start
    damaged and be fine after (sampling reports how much was lost).
    """
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            if frames:
                return round(-frames[0].rotation / 90) * 90 % 360
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: video stream is corrupt ({_av_reason(exc)})") from None
    raise VideoError(f"{path}: no video frame could be decoded (corrupt or truncated)")


def _display_size(stream: av.video.stream.VideoStream) -> tuple[int, int]:
    """Width and height as shown, with non-square pixels stretched to square ones."""
    width, height = stream.codec_context.width, stream.codec_context.height
    aspect = stream.sample_aspect_ratio
    if aspect and aspect > 0 and aspect != 1:
        width = round(width * aspect)
    return width, height


FALLBACK_RATE = Fraction(25)


def _rate(stream: av.video.stream.VideoStream, duration: float) -> Fraction:
    """The stream's average frame rate as the exact fraction the container gives."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    if stream.frames and duration > 0:
        return Fraction(stream.frames) / Fraction(duration)
    # Nothing in the file says: assume PAL's 25, so one-frame arithmetic downstream stays sane.
    return FALLBACK_RATE


# --- frame shaping ----------------------------------------------------------------------


def fitted_size(width: int, height: int, short: int) -> tuple[int, int]:
    """Size with the short side equal to `short` and the aspect ratio kept."""
    if width <= height:
        return short, max(short, round(height * short / width))
    return max(short, round(width * short / height)), short
