"""Sampling frames from a video at a set rate with PyAV, noting what could not be decoded.

Frame k is the picture on screen at k / rate seconds from the container start: the last picture
whose time is at or before k / rate. Frames before the first picture show that first picture (a
stream that starts late is padded at the front), so frame 0 is always at time 0; the last frame
is the last k / rate before the end of the stream. Rotation metadata is applied and non-square
pixels are stretched, then every frame is shaped by `highlights.images.fit_picture`, as
frame-capture images are. Only pictures that some frame shows are converted.

Damage. The decoder reports trouble in two ways: a packet it cannot decode (an error), and a
picture flagged corrupt (concealed blocks, or references missing because the stream starts in
the middle of a group of pictures). Pictures predicted from a damaged one inherit the damage, so
a damaged range runs from the first trouble to the next key frame that decodes cleanly, or to
the end. A sampled frame whose time lies in a damaged range is marked `damaged`. Corrupt pictures
are never shown: a damaged frame shows the last clean picture before it.

Resuming. `start_frame=M` yields frames M, M+1, ... exactly as a run from the start would:
decoding seeks to the key frame at or before frame M-1 and checks that it decodes cleanly,
else it decodes from the start. Damaged ranges are then reported from frame M-1's time on.

Decoding only what sampling needs. At 5 frames/s from 25 fps video, four pictures in five are
never shown. A picture that no other picture is predicted from (a non-reference B-picture) is not
decoded at all unless some frame shows it: before each packet the decoder is told to skip
non-reference pictures (`skip_frame`) or not, from the packet's display time and duration, in
containers that record display times and streams of a constant frame rate (where a duration is
the time on screen); anything else is decoded whole. The frames are
exactly those of decoding everything (tests/test_sampling_skip.py); on H.264 with B-frames
decoding takes about half the time.

Decoding runs on its own thread, a bounded queue ahead of the caller: FFmpeg decodes with the
GIL released, so the decoder and the backbone keep both cores busy.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video
import numpy as np
from av.codec.context import Flags
from av.video.frame import PictureType

from highlights.damage import TimeRange, clip_ranges
from highlights.errors import VideoError
from highlights.images import fit_picture
from highlights.timecode import (
    as_rate,
    frame_duration,
    frame_time,
    frames_before,
    stream_seconds,
    to_pts,
)
from highlights.video import (
    CONTAINER_TIME_BASE,
    FrameGeometry,
    SampledFrame,
    VideoInfo,
    main_video_stream,
    media_path,
    probe,
)

log = logging.getLogger(__name__)

# Names the rule above for feature recipes (`highlights.recipe`): which picture becomes frame k.
# MediaConvert frame capture is read as the same frames (`highlights.aws.frame_capture`). Change the
# version whenever a change here would give any video different frames.
SAMPLER = "on-screen-at-k/rate v1"

# Frames decoded ahead of the caller: 32 of 224x224 RGB are under 5 MB.
QUEUE_FRAMES = 32

# Resuming seeks this many seconds before the frame to resume from.
SEEK_MARGIN = Fraction(2)


@dataclass
class _Picture:
    """A decoded picture and, once some frame shows it, its shaped image."""

    frame: av.VideoFrame
    time: Fraction
    image: np.ndarray | None = None


class _DamageLog:
    """Damaged ranges as decoding finds them; read from another thread for checkpoints."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed: list[TimeRange] = []
        self._open: Fraction | None = None  # start of a range not yet ended by a clean key frame

    def hit(self, at: Fraction) -> None:
        """Trouble at time `at`: damaged from there until the next clean key frame."""
        with self._lock:
            if self._open is None or at < self._open:
                self._open = at

    def heal(self, at: Fraction) -> None:
        """A key frame decoded cleanly at `at`: a damaged range ends there."""
        with self._lock:
            if self._open is not None:
                self._closed.append(TimeRange(float(self._open), float(at)))
                self._open = None

    def covers(self, at: Fraction) -> bool:
        with self._lock:
            return self._open is not None and self._open <= at

    def ranges(self, since: float, until: float) -> tuple[TimeRange, ...]:
        with self._lock:
            found = list(self._closed)
            if self._open is not None:
                found.append(TimeRange(float(self._open), until))
        return clip_ranges(found, since, until)


class _SeekMissed(Exception):
    """Seeking landed after the frame to resume from; decode from the start instead."""


class SampledFrames(Iterator[SampledFrame]):
    """The frames of one video at `rate`, as an iterator; see the module docstring.

    After the last frame, `damaged_ranges()` holds every damaged range of the video (from the
    resume point on, with `start_frame`). `close()` (or leaving a `with` block) stops decoding;
    so does dropping the iterator.
    """

    def __init__(self, decoder: _Decoder) -> None:
        self.path = decoder.path
        self.rate = decoder.rate
        self.start_frame = decoder.start_frame
        self._decoder = decoder
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False
        # The decoding thread holds the decoder, not this object: dropping it stops decoding.
        weakref.finalize(self, self._stop.set)

    def __iter__(self) -> SampledFrames:
        return self

    def __next__(self) -> SampledFrame:
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(
                target=_produce,
                args=(self._decoder.frames, self._queue, self._stop),
                name=f"decode {self.path.name}",
                daemon=True,
            )
            self._thread.start()
        item = self._queue.get()
        if isinstance(item, SampledFrame):
            return item
        self._done = True
        self._thread.join()
        if isinstance(item, BaseException):
            raise item
        raise StopIteration

    def close(self) -> None:
        """Stop decoding and wait for the decoding thread to end."""
        self._done = True
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
            self._thread.join()

    def __enter__(self) -> SampledFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def decoded_pictures(self) -> int:
        """Pictures the decoder has put out so far (skipped ones are not decoded)."""
        return self._decoder.decoded_pictures

    def damaged_ranges(self, until: float | None = None) -> tuple[TimeRange, ...]:
        """Damaged ranges found so far, cut to [resume point, `until`] (default: the end).

        Complete up to the time of the last frame returned, so a checkpoint taken after frame k
        can record the ranges up to frame k's time.
        """
        return self._decoder.damaged_ranges(until)


class _Decoder:
    """Decodes one video into sampled frames; runs on the decoding thread."""

    def __init__(
        self,
        path: Path,
        rate: float,
        geometry: FrameGeometry,
        info: VideoInfo,
        threads: int,
        start_frame: int,
        skip_unshown: bool = True,
    ) -> None:
        self.path = path
        self.skip_unshown = skip_unshown
        self.decoded_pictures = 0
        self.rate = rate
        self.start_frame = start_frame
        self.geometry = geometry
        self.info = info
        self.threads = threads
        self.exact_rate = as_rate(rate)
        self.damage = _DamageLog()
        self.end = float(info.duration)
        self.since = 0.0 if start_frame == 0 else float(frame_time(start_frame - 1, rate))

    def damaged_ranges(self, until: float | None) -> tuple[TimeRange, ...]:
        return self.damage.ranges(self.since, self.end if until is None else until)

    def frames(self) -> Iterator[SampledFrame]:
        seek = self.start_frame > 0
        while True:
            try:
                with av.open(media_path(self.path), metadata_errors="ignore") as container:
                    yield from self._decode(container, seek)
                return
            except _SeekMissed:
                log.info(
                    "%s: no clean key frame found before frame %d; decoding from the start instead",
                    self.path,
                    self.start_frame,
                )
                seek = False
                self.damage = _DamageLog()
            except av.FFmpegError as exc:
                raise VideoError(f"{self.path}: cannot read the video: {exc}") from None

    def _decode(self, container: av.container.InputContainer, seek: bool) -> Iterator[SampledFrame]:
        stream = main_video_stream(container)
        if stream is None:
            raise VideoError(f"{self.path}: has no video stream (audio-only or not a video)")
        context = stream.codec_context
        # Corrupt pictures come out flagged instead of being dropped without a word.
        context.flags |= Flags.output_corrupt
        context.thread_count = self.threads
        clock = _Clock(container, stream, self.exact_rate, self.info.rate)
        slots = _Slots(self, clock)
        if seek:
            target = clock.slot_time(self.start_frame - 1)
            # A key frame's decoding time comes before its display time: land a little early.
            container.seek(clock.to_pts(max(target - SEEK_MARGIN, 0)), stream=stream)
            slots.sync_until = target
        skipping = self.skip_unshown and _times_known(container, stream)
        for packet in _packets(container, stream, self.damage, clock):
            if skipping:
                context.skip_frame = "NONE" if slots.may_show(packet) else "NONREF"
            try:
                frames = context.decode(packet)
            except av.FFmpegError:
                if not slots.syncing:
                    self.damage.hit(clock.packet_time(packet))
                continue
            self.decoded_pictures += len(frames)
            for frame in frames:
                yield from slots.take(frame)
        if slots.syncing:
            raise _SeekMissed
        if clock.end == 0:  # no timestamps at all (a raw stream): trust the probe
            clock.end = max(clock.last + clock.frame_length, Fraction(self.info.duration))
        self.end = float(clock.end)
        yield from slots.finish()

    def shape(self, picture: _Picture) -> np.ndarray:
        """The picture's image for the backbone, made once however many frames show it."""
        if picture.image is None:
            info = self.info
            picture.image = fit_picture(
                picture.frame, self.geometry, (info.width, info.height), info.rotation
            )
            picture.image.flags.writeable = False
        return picture.image


def _produce(
    frames: Callable[[], Iterator[SampledFrame]], out: queue.Queue[object], stop: threading.Event
) -> None:
    """Run on the decoding thread: put each frame, then None (or the error), on `out`."""

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for frame in frames():
            if not put(frame):
                return
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
        put(exc)
        return
    put(None)


# Containers whose packets carry display times (AVI's carry decode order only).
DISPLAY_TIMED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "mpegts"})


def _times_known(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> bool:
    """Whether a packet's display time and duration tell when its picture is on screen: the
    container records display times and the stream has one frame rate (so a duration is the
    time on screen, not a gap's)."""
    average, base = stream.average_rate, stream.base_rate
    formats = set(container.format.name.split(","))
    return bool(formats & DISPLAY_TIMED_FORMATS and average and base and average == base)


def _packets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    damage: _DamageLog,
    clock: _Clock,
) -> Iterator[av.Packet | None]:
    """The stream's packets, then None (flush the decoder), even when the file breaks off."""
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            break
        except av.FFmpegError:
            # The container cannot be read past here: the rest of the video is lost.
            damage.hit(clock.last)
            clock.end = max(clock.end, clock.duration)
            break
        if packet.size == 0 and packet.pts is None:
            continue  # PyAV's own end-of-stream packet; flushed below
        clock.see(packet)
        yield packet
    yield None


class _Clock:
    """Exact times: stream timestamps and sampling slots in seconds from the container start."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        rate: Fraction,
        video_rate: Fraction,
    ) -> None:
        self.time_base = stream.time_base or Fraction(1, 1_000_000)
        self.origin = stream_seconds(container.start_time or 0, CONTAINER_TIME_BASE)
        self.rate = rate
        self.frame_length = frame_duration(video_rate)
        self.duration = stream_seconds(container.duration or 0, CONTAINER_TIME_BASE)
        self.end = Fraction(0)  # end of the last packet seen
        self.last = Fraction(0)  # time of the last packet or picture seen

    def time(self, pts: int) -> Fraction:
        return stream_seconds(pts, self.time_base, self.origin)

    def to_pts(self, seconds: Fraction) -> int:
        return to_pts(seconds, self.time_base, self.origin)

    def slot_time(self, index: int) -> Fraction:
        return frame_time(index, self.rate)

    def see(self, packet: av.Packet) -> None:
        if packet.pts is None:
            return
        start = self.time(packet.pts)
        length = (
            stream_seconds(packet.duration, self.time_base)
            if packet.duration
            else self.frame_length
        )
        self.end = max(self.end, start + length)
        self.last = max(self.last, start)

    def packet_time(self, packet: av.Packet | None) -> Fraction:
        if packet is None or packet.pts is None:
            return self.last
        return self.time(packet.pts)

    def frame_time(self, frame: av.VideoFrame) -> Fraction:
        if frame.pts is None:
            return self.last + self.frame_length
        return self.time(frame.pts)


class _Slots:
    """Turns decoded pictures, in display order, into frames at k / rate."""

    def __init__(self, decoder: _Decoder, clock: _Clock) -> None:
        self.decoder = decoder
        self.clock = clock
        self.next = 0  # the next slot to yield
        self.current: _Picture | None = None
        self.sync_until: Fraction | None = None  # resuming: waiting for a clean key frame

    @property
    def syncing(self) -> bool:
        return self.sync_until is not None

    def may_show(self, packet: av.Packet | None) -> bool:
        """Whether some frame may show the picture in `packet`: a slot falls within its time on
        screen (from its display time for its duration). Unsure (no timestamps): yes."""
        if packet is None or packet.pts is None or self.syncing:
            return True
        clock = self.clock
        start = clock.time(packet.pts)
        length = (
            stream_seconds(packet.duration, clock.time_base)
            if packet.duration
            else clock.frame_length
        )
        first_slot = max(frames_before(start, clock.rate), 0)  # the first at or after start
        return clock.slot_time(first_slot) < start + length

    def take(self, frame: av.VideoFrame) -> Iterator[SampledFrame]:
        clock, damage = self.clock, self.decoder.damage
        time = clock.frame_time(frame)
        clock.last = max(clock.last, time)
        key = frame.key_frame or frame.pict_type == PictureType.I
        if self.sync_until is not None:
            if frame.is_corrupt or not key:
                return
            if time > self.sync_until:
                raise _SeekMissed
            self.sync_until = None
            self.next = self.decoder.start_frame
            self.current = _Picture(frame, time)
            return
        if frame.is_corrupt:
            damage.hit(time)
            if self.current is not None:
                yield from self._until(time)
            return
        picture = _Picture(frame, time)
        if self.current is None:
            self.current = picture  # frames before the first picture show it
        yield from self._until(time)
        if key:
            damage.heal(time)
        self.current = picture

    def finish(self) -> Iterator[SampledFrame]:
        if self.current is None:
            raise VideoError(f"{self.decoder.path}: no video frame could be decoded")
        yield from self._until(self.clock.end)
        self.decoder.damage.heal(self.clock.end)

    def _until(self, time: Fraction) -> Iterator[SampledFrame]:
        """Every slot before `time`, showing the current picture."""
        assert self.current is not None
        decoder, clock = self.decoder, self.clock
        while (at := clock.slot_time(self.next)) < time:
            index = self.next
            self.next += 1
            if index < decoder.start_frame:
                continue
            yield SampledFrame(
                index=index,
                time=float(at),
                image=decoder.shape(self.current),
                damaged=decoder.damage.covers(at),
            )


def sample_frames(
    path: Path,
    rate: float,
    geometry: FrameGeometry,
    info: VideoInfo | None = None,
    threads: int = 1,
    start_frame: int = 0,
    skip_unshown: bool = True,
) -> SampledFrames:
    """Frames at times k / rate (from `start_frame` on), shaped by `geometry`; see the module.

    `threads` are FFmpeg's decoding threads; one keeps ahead of the backbone and leaves the
    other core to the model. `skip_unshown=False` decodes every picture (the frames are the
    same; it is slower). Images are read-only. Raises VideoError naming the file when no
    picture at all can be decoded.
    """
    path = Path(path)
    if rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {rate}")
    if geometry.crop > geometry.resize_short:
        raise ValueError(
            f"crop {geometry.crop} is larger than resize_short {geometry.resize_short}"
        )
    if start_frame < 0:
        raise ValueError(f"start_frame must not be negative, got {start_frame}")
    return SampledFrames(
        _Decoder(path, rate, geometry, info or probe(path), threads, start_frame, skip_unshown)
    )
