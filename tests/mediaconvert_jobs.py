"""What an AWS Elemental MediaConvert job does, derived from its documentation, made with ffmpeg.

The effects side of `tests/fake_mediaconvert.py`: given a job's Settings and its inputs (read
here with PyAV), `run_job` writes the outputs a job would write: JPEG frame captures and
H.264 MP4 files, with the job's input clippings, rotation, scaling and frame-capture rate.
Timecodes are decoded here and every ffmpeg command is built here; nothing from `highlights/`
is used, so production code is never checked against itself.

What the documentation leaves open is decided here explicitly, in a comment marked "Not
documented". Settings this module does not act on fail the job ("not modelled by
FakeMediaConvert"), so a test never passes on a setting that was silently ignored.

Documentation quoted (see also tests/fake_mediaconvert.py):
  [API]   https://docs.aws.amazon.com/mediaconvert/latest/apireference/ (the botocore model's
          member documentation is the same text)
  [ASSY]  https://docs.aws.amazon.com/mediaconvert/latest/ug/setting-up-an-assembly-workflow-job.html
  [TC]    https://docs.aws.amazon.com/mediaconvert/latest/ug/setting-up-timecode.html
  [SCALE] https://docs.aws.amazon.com/mediaconvert/latest/ug/video-scaling.html
  [FCAP]  https://docs.aws.amazon.com/mediaconvert/latest/ug/file-group-with-frame-capture-output.html
"""

from __future__ import annotations

import bisect
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

import av
import imageio_ffmpeg

FRAME_CAPTURE = "FRAME_CAPTURE"
DEFAULT_AUDIO_SOURCE = "Audio Selector 1"
NTSC_BASES = (24, 30, 48, 60, 120)  # n*1000/1001 frames/s counts n timecode frames a second


class JobError(Exception):
    """The job is accepted but ends in ERROR with this message."""


def not_modelled(what: str) -> JobError:
    return JobError(f"not modelled by FakeMediaConvert: {what}")


# --- timecodes ------------------------------------------------------------------------------

_TIMECODE = re.compile(r"(\d\d):(\d\d):(\d\d)([:;])(\d\d)(@.*)?")


def timecode_base(rate: Fraction) -> int:
    """Timecode frames in one timecode second for a source of `rate` frames/s.

    [TC] "MediaConvert uses timecodes that specify frames by frame number, not by millisecond."
    Whole rates count their own number; the NTSC rates n*1000/1001 count n (SMPTE 12M).
    Not documented: how MediaConvert counts any other rate (12.5, or the average of a
    variable-frame-rate phone video), so such a source fails the job instead of guessing.
    """
    if rate.denominator == 1:
        return rate.numerator
    for base in NTSC_BASES:
        if rate == Fraction(base * 1000, 1001):
            return base
    raise JobError(
        f"Not documented: how MediaConvert numbers timecode frames at {float(rate):.6g} frames/s "
        f"({rate}); the fake knows whole rates and n*1000/1001"
    )


def timecode_frames(timecode: str, rate: Fraction) -> int:
    """Frame number of `HH:MM:SS:FF` (or drop-frame `HH:MM:SS;FF`) at `rate` frames/s.

    [API InputClipping] "Use the format HH:MM:SS:FF or HH:MM:SS;FF, where HH is the hour, MM is
    the minute, SS is the second, and FF is the frame number." [TC] "For drop frame, MediaConvert
    uses a semicolon before the frame number". Drop-frame (SMPTE 12M) skips frame numbers 00 and
    01 (00-03 at 59.94) at the start of every minute except each tenth, so the label keeps pace
    with the clock; it exists for 29.97 and 59.94 frames/s only.
    """
    match = _TIMECODE.fullmatch(timecode)
    if match is None:
        raise JobError(f"{timecode!r} is not HH:MM:SS:FF")
    if match.group(6):
        raise not_modelled(f"timecode rate suffix in {timecode!r}")
    hours, minutes, seconds, frames = (int(match.group(i)) for i in (1, 2, 3, 5))
    base = timecode_base(rate)
    if minutes > 59 or seconds > 59 or frames >= base:
        raise JobError(f"{timecode!r} is not a valid timecode at {float(rate):.6g} frames/s")
    total_minutes = hours * 60 + minutes
    count = (total_minutes * 60 + seconds) * base + frames
    if match.group(4) == ";":
        if rate not in (Fraction(30000, 1001), Fraction(60000, 1001)):
            raise JobError(f"{timecode!r}: drop-frame timecode needs 29.97 or 59.94 frames/s")
        dropped = 2 if base == 30 else 4
        if seconds == 0 and frames < dropped and minutes % 10:
            raise JobError(f"{timecode!r} names a frame number that drop-frame skips")
        count -= dropped * (total_minutes - total_minutes // 10)
    return count


# --- sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What the fake needs to know about one input file, read with PyAV."""

    url: str
    path: Path
    times: tuple[Fraction, ...]  # presentation time of each frame, s after the first frame
    end: Fraction  # end of the last frame, s after the first frame
    start: Fraction  # the first frame on ffmpeg's input timeline (container start = 0)
    rate: Fraction  # average frame rate
    width: int  # as stored (before any rotation)
    height: int
    rotation_ccw: float  # display-matrix rotation, degrees counter-clockwise
    has_audio: bool
    timecode: str | None  # embedded start timecode
    codec: str
    file_size: int

    @property
    def frame_count(self) -> int:
        return len(self.times)

    def frame_end(self, index: int) -> Fraction:
        return self.times[index + 1] if index + 1 < len(self.times) else self.end

    def clockwise_rotation(self) -> int | None:
        """The metadata rotation as clockwise degrees when within a degree of a right angle."""
        clockwise = (-self.rotation_ccw) % 360
        for right in (0, 90, 180, 270, 360):
            if abs(clockwise - right) <= 1:
                return right % 360
        return None


def read_source(url: str, path: Path) -> Source:
    """Frame times from the demuxer's packets (presentation order), plus stream metadata."""
    try:
        with av.open(str(path)) as container:
            video = next(iter(container.streams.video), None)
            if video is None:
                raise JobError(f"{url}: no video track")
            stamps = sorted(
                packet.pts * packet.time_base
                for packet in container.demux(video)
                if packet.size and packet.pts is not None and not packet.is_discard
            )
            if not stamps:
                raise JobError(f"{url}: no video frames")
            container.seek(0)
            first = next(container.decode(video), None)
            rotation = float(first.rotation) if first is not None else 0.0
            rate = video.average_rate or video.guessed_rate
            if not rate:
                raise JobError(f"{url}: the video track has no frame rate")
            rate = Fraction(rate)
            last_length = Fraction(1) / rate
            container_start = Fraction(container.start_time or 0, av.time_base)
            timecode = video.metadata.get("timecode") or container.metadata.get("timecode")
            times = tuple(stamp - stamps[0] for stamp in stamps)
            return Source(
                url=url,
                path=path,
                times=times,
                end=times[-1] + last_length,
                start=stamps[0] - container_start,
                rate=rate,
                width=video.codec_context.width,
                height=video.codec_context.height,
                rotation_ccw=rotation,
                has_audio=bool(container.streams.audio),
                timecode=timecode,
                codec=video.codec_context.name,
                file_size=path.stat().st_size,
            )
    except av.FFmpegError as exc:
        raise JobError(f"{url}: unreadable input ({exc})") from None


# --- settings the fake acts on ------------------------------------------------------------

# Paths (list indices as [], map keys as {}) the fake honours, or that only tune encoding
# quality and so change nothing a test can see. Anything else fails the job as not modelled.
_RATE_CONTROL = (
    "RateControlMode", "QvbrSettings", "MaxBitrate", "Bitrate", "SceneChangeDetect",
    "QualityTuningLevel", "CodecProfile", "CodecLevel", "GopSize", "GopSizeUnits",
    "NumberBFramesBetweenReferenceFrames", "AdaptiveQuantization",
)  # fmt: skip
# Where MP4 boxes go in the file: no effect on the pictures and sound.
_MP4_LAYOUT = ("CslgAtom", "CttsVersion", "FreeSpaceBox", "MoovPlacement", "Mp4MajorBrand")
_OUT = "OutputGroups[].Outputs[]"
_H264 = f"{_OUT}.VideoDescription.CodecSettings.H264Settings"
_AAC = f"{_OUT}.AudioDescriptions[].CodecSettings.AacSettings"
HONOURED = {
    "TimecodeConfig.Source",
    "Inputs[].FileInput",
    "Inputs[].TimecodeSource",
    "Inputs[].TimecodeStart",
    "Inputs[].InputClippings[].StartTimecode",
    "Inputs[].InputClippings[].EndTimecode",
    "Inputs[].VideoSelector.Rotate",
    "Inputs[].AudioSelectors{}.DefaultSelection",
    "OutputGroups[].Name",
    "OutputGroups[].OutputGroupSettings.Type",
    "OutputGroups[].OutputGroupSettings.FileGroupSettings.Destination",
    f"{_OUT}.ContainerSettings.Container",
    *(f"{_OUT}.ContainerSettings.Mp4Settings.{box}" for box in _MP4_LAYOUT),
    f"{_OUT}.Extension",
    f"{_OUT}.NameModifier",
    f"{_OUT}.VideoDescription.Width",
    f"{_OUT}.VideoDescription.Height",
    f"{_OUT}.VideoDescription.ScalingBehavior",
    f"{_OUT}.VideoDescription.CodecSettings.Codec",
    f"{_OUT}.VideoDescription.CodecSettings.FrameCaptureSettings.FramerateNumerator",
    f"{_OUT}.VideoDescription.CodecSettings.FrameCaptureSettings.FramerateDenominator",
    f"{_OUT}.VideoDescription.CodecSettings.FrameCaptureSettings.MaxCaptures",
    f"{_OUT}.VideoDescription.CodecSettings.FrameCaptureSettings.Quality",
    f"{_H264}.FramerateControl",
    f"{_H264}.FramerateNumerator",
    f"{_H264}.FramerateDenominator",
    *(f"{_H264}.{knob}" for knob in _RATE_CONTROL),
    f"{_OUT}.AudioDescriptions[].AudioSourceName",
    f"{_OUT}.AudioDescriptions[].CodecSettings.Codec",
    f"{_AAC}.Bitrate",
    f"{_AAC}.CodingMode",
    f"{_AAC}.SampleRate",
}


def unmodelled_settings(value: Any, path: str = "", shape: str = "") -> list[str]:
    """Concrete paths in `value` that no HONOURED path covers."""
    if shape and any(shape == ok or shape.startswith(ok + ".") for ok in HONOURED):
        return []
    if isinstance(value, dict):
        covered_map = any(ok.startswith(shape + "{}") for ok in HONOURED) if shape else False
        found = []
        for key, item in value.items():
            if covered_map:
                found += unmodelled_settings(item, f"{path}[{key!r}]", f"{shape}{{}}")
            else:
                sep = "." if path else ""
                found += unmodelled_settings(item, f"{path}{sep}{key}", f"{shape}{sep}{key}")
        return found
    if isinstance(value, list):
        found = []
        for index, item in enumerate(value):
            found += unmodelled_settings(item, f"{path}[{index}]", f"{shape}[]")
        return found
    return [path]


# --- the job's timeline: inputs and clippings in order ---------------------------------------


@dataclass(frozen=True)
class Piece:
    """Frames first..last (inclusive) of one input, in the output timeline."""

    input_index: int
    source: Source
    first: int
    last: int
    rotate: int  # clockwise degrees applied to the pictures
    audio: bool  # the input's audio plays under this piece (else silence)

    @property
    def duration(self) -> Fraction:
        return self.source.frame_end(self.last) - self.source.times[self.first]


def rotation_of(item: dict[str, Any], source: Source) -> int:
    """[API VideoSelector.Rotate] "By default, the service does no rotation, even if your input
    video has rotation metadata. The service doesn't pass through rotation metadata." AUTO: "If
    your input video container is .mov or .mp4 and your input has rotation metadata ... the
    service [rotates] your video according to the rotation specified in the metadata. The
    rotation must be within one degree of 90, 180, or 270 degrees. If the rotation metadata
    specifies any other rotation, the service will default to no rotation." """
    rotate = (item.get("VideoSelector") or {}).get("Rotate", "DEGREE_0")
    fixed = {"DEGREE_0": 0, "DEGREES_90": 90, "DEGREES_180": 180, "DEGREES_270": 270}
    if rotate in fixed:
        return fixed[rotate]
    suffix = PurePosixPath(source.url).suffix.lower()
    if suffix not in (".mov", ".mp4"):
        return 0
    return source.clockwise_rotation() or 0


def timecode_origin(item: dict[str, Any], source: Source) -> int:
    """Frame number the input's first frame has, per its TimecodeSource.

    [API Input.TimecodeSource] "Choose Embedded to use the timecodes in your input video. Choose
    Start at zero to start the first frame at zero. Choose Specified start to start the first
    frame at the timecode that you specify in the setting Start timecode. If you don't specify a
    value for Timecode source, the service will use Embedded by default." [API TimecodeConfig]
    "If no embedded timecode is in the source, the service will use Start at 0 instead."
    """
    kind = item.get("TimecodeSource", "EMBEDDED")
    if kind == "ZEROBASED":
        return 0
    if kind == "SPECIFIEDSTART":
        if not item.get("TimecodeStart"):
            raise JobError("TimecodeSource SPECIFIEDSTART needs TimecodeStart")
        return timecode_frames(item["TimecodeStart"], source.rate)
    return timecode_frames(source.timecode, source.rate) if source.timecode else 0


def audio_plays(item: dict[str, Any], source: Source, audio_source: str | None) -> bool:
    """[API AudioDescription.AudioSourceName] "If an input does not have an "Audio Selector 3",
    then the audio selector marked as "default" in that input will be used. If there is no audio
    selector marked as "default", silence will be inserted for the duration of that input."
    Not documented: a selector on a file without audio; the fake inserts silence."""
    if audio_source is None:
        return False
    selectors = item.get("AudioSelectors") or {}
    chosen = audio_source in selectors or any(
        s.get("DefaultSelection") == "DEFAULT" for s in selectors.values()
    )
    return chosen and source.has_audio


def layout(
    settings: dict[str, Any], sources: Sequence[Source], audio_source: str | None
) -> list[Piece]:
    """The output timeline: each input's clippings in order, inputs stitched in order.

    [ASSY] "MediaConvert stitches together the inputs in the order that you add them." [API
    InputClipping] "The frame corresponding to the Start timecode value is included in the clip."
    "The frame corresponding to the End timecode value is included in the clip."
    """
    pieces = []
    for index, (item, source) in enumerate(zip(settings["Inputs"], sources, strict=True)):
        origin = timecode_origin(item, source)
        last_frame = source.frame_count - 1
        rotate = rotation_of(item, source)
        audio = audio_plays(item, source, audio_source)
        clippings = item.get("InputClippings") or [{}]
        for c, clipping in enumerate(clippings):
            start, end = clipping.get("StartTimecode"), clipping.get("EndTimecode")
            first = timecode_frames(start, source.rate) - origin if start else 0
            last = timecode_frames(end, source.rate) - origin if end else last_frame
            where = f"Inputs[{index}].InputClippings[{c}]"
            if first < 0 or last > last_frame:
                # Not documented: what MediaConvert does with a clip outside the input.
                raise JobError(
                    f"{where}: frames {first}-{last} are outside {source.url} "
                    f"(frames 0-{last_frame})"
                )
            if last < first:
                raise JobError(f"{where}: EndTimecode is before StartTimecode")
            pieces.append(Piece(index, source, first, last, rotate, audio))
    return pieces


# --- pictures: rotation and scaling --------------------------------------------------------


def rotated_size(source: Source, rotate: int) -> tuple[int, int]:
    if rotate in (90, 270):
        return source.height, source.width
    return source.width, source.height


def _even(value: Fraction | float) -> int:
    # Not documented: how MediaConvert rounds a computed dimension; the fake takes the nearest
    # even number (4:2:0 video needs even sizes).
    return max(2, 2 * round(Fraction(value) / 2))


def output_size(description: dict[str, Any], width: int, height: int) -> tuple[int, int]:
    """[API VideoDescription.Width] "To use the same resolution as your input: Leave both Width
    and Height blank. To evenly scale from your input resolution: Leave Width blank and enter a
    value for Height. For example, if your input is 1920x1080 and you set Height to 720, your
    output will be 1280x720." (Height: the same with the roles swapped.)"""
    want_w, want_h = description.get("Width"), description.get("Height")
    if want_w and want_h:
        behaviour = description.get("ScalingBehavior", "DEFAULT")
        if behaviour in ("FIT", "FIT_NO_UPSCALE"):
            return _fit(width, height, want_w, want_h, upscale=behaviour == "FIT")
        return want_w, want_h
    if want_w:
        return want_w, _even(Fraction(want_w * height, width))
    if want_h:
        return _even(Fraction(want_h * width, height)), want_h
    return width, height


def _fit(width: int, height: int, box_w: int, box_h: int, *, upscale: bool) -> tuple[int, int]:
    scale = min(Fraction(box_w, width), Fraction(box_h, height))
    if not upscale:
        scale = min(scale, Fraction(1))
    return _even(width * scale), _even(height * scale)


def picture_filters(
    description: dict[str, Any], source: Source, rotate: int, size: tuple[int, int]
) -> list[str]:
    """ffmpeg filters turning the stored pictures of `source` into the output's pictures.

    [SCALE] Default (Fit with padding): "MediaConvert scales your video image to your output
    resolution. Then, if your input resolution has a different aspect ratio than your output
    resolution, MediaConvert pads your video image". Stretch to output: "stretches or shrinks
    your video image to your output resolution". Fit: "scales your input image until it fits
    inside the dimensions of your output resolution" without padding. Fill: "scales your input
    image until it fills the dimensions of your output resolution, and crops anything that
    exceeds the dimensions".
    """
    filters = {0: [], 90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}[
        rotate
    ]
    width, height = rotated_size(source, rotate)
    out_w, out_h = size
    behaviour = description.get("ScalingBehavior", "DEFAULT")
    if (width, height) != (out_w, out_h):
        if behaviour == "STRETCH_TO_OUTPUT":
            filters.append(f"scale={out_w}:{out_h}")
        elif behaviour in ("DEFAULT", "FIT", "FIT_NO_UPSCALE"):
            fit_w, fit_h = _fit(width, height, out_w, out_h, upscale=behaviour != "FIT_NO_UPSCALE")
            filters.append(f"scale={fit_w}:{fit_h}")
            if (fit_w, fit_h) != (out_w, out_h):
                filters.append(f"pad={out_w}:{out_h}:(ow-iw)/2:(oh-ih)/2:black")
        elif behaviour == "FILL":
            scale = max(Fraction(out_w, width), Fraction(out_h, height))
            filters.append(f"scale={_even(width * scale)}:{_even(height * scale)}")
            filters.append(f"crop={out_w}:{out_h}")
        else:
            raise not_modelled(f"ScalingBehavior {behaviour}")
    # [API VideoSelector.Rotate] "The service doesn't pass through rotation metadata."
    filters += ["setsar=1", "sidedata=mode=delete:type=DISPLAYMATRIX"]
    return filters


# --- ffmpeg ------------------------------------------------------------------------------------


_FFMPEG = (imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-y", "-loglevel", "error")


def run_ffmpeg(args: list[str], what: str) -> None:
    result = subprocess.run([*_FFMPEG, "-nostdin", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise JobError(f"{what}: ffmpeg failed: {result.stderr.strip()[-2000:]}")


def _input_args(sources: Sequence[Source]) -> list[str]:
    args: list[str] = []
    for source in sources:
        args += ["-noautorotate", "-i", str(source.path)]
    return args


# --- running a job ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFile:
    local: Path
    url: str  # s3://bucket/key the job writes it to


def codec_of(output: dict[str, Any]) -> str | None:
    return ((output.get("VideoDescription") or {}).get("CodecSettings") or {}).get("Codec")


def run_job(
    settings: dict[str, Any], sources: Sequence[Source], work: Path
) -> tuple[list[dict[str, Any]], list[OutputFile]]:
    """Make every output of a job: its OutputGroupDetails and the files to upload."""
    unknown = unmodelled_settings(settings)
    if unknown:
        raise not_modelled(", ".join(f"Settings.{path}" for path in unknown))
    work.mkdir(parents=True, exist_ok=True)
    details, files = [], []
    for group in settings["OutputGroups"]:
        kind = group["OutputGroupSettings"]["Type"]
        if kind != "FILE_GROUP_SETTINGS":
            raise not_modelled(f"output group type {kind}")
        destination = group["OutputGroupSettings"]["FileGroupSettings"]["Destination"]
        outputs = []
        for output in group["Outputs"]:
            name = base_name(destination, settings["Inputs"][0]["FileInput"])
            name += output.get("NameModifier", "")
            make = capture_frames if codec_of(output) == FRAME_CAPTURE else encode_mp4
            detail, made = make(settings, sources, output, name, work)
            outputs.append(detail)
            files += made
        details.append({"OutputDetails": outputs})
    return details, files


def base_name(destination: str, first_input: str) -> str:
    """[API FileGroupSettings.Destination] "If you do not specify the base filename in the URI,
    the service will use the filename of the input file. If your job has multiple inputs, the
    service uses the filename of the first input file." """
    if destination.endswith("/"):
        return destination + PurePosixPath(first_input).stem
    return destination


def _detail(total: Fraction, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "DurationInMs": round(total * 1000),
        "VideoDetails": {"WidthInPx": size[0], "HeightInPx": size[1]},
    }


# --- frame capture


def capture_times(pieces: Sequence[Piece], period: Fraction, limit: int) -> list[tuple[int, int]]:
    """(piece index, source frame) shown by each capture.

    [API FrameCaptureSettings] "Frame capture will encode the first frame of the output stream,
    then one frame every framerateDenominator/framerateNumerator seconds." MaxCaptures: "Maximum
    number of captures (encoded jpg output files)."

    Not documented: which source frame capture n shows, and whether a capture falls at the very
    end. The fake takes the frame on screen at n * den/num seconds of the output timeline (the
    latest frame starting at or before it), in exact rational arithmetic, while that time is
    before the end of the output.
    """
    total = sum((p.duration for p in pieces), Fraction(0))
    offsets = [sum((p.duration for p in pieces[:i]), Fraction(0)) for i in range(len(pieces))]
    shots = []
    n = 0
    while n < limit and n * period < total:
        t = n * period
        i = bisect.bisect_right(offsets, t) - 1
        piece = pieces[i]
        local = piece.source.times[piece.first] + (t - offsets[i])
        shots.append((i, bisect.bisect_right(piece.source.times, local) - 1))
        n += 1
    return shots


def capture_frames(
    settings: dict[str, Any],
    sources: Sequence[Source],
    output: dict[str, Any],
    name: str,
    work: Path,
) -> tuple[dict[str, Any], list[OutputFile]]:
    """JPEGs `<name>.NNNNNNN.jpg`: [API FrameCaptureSettings] "Files will be named as
    filename.NNNNNNN.jpg where N is the 0-based frame sequence number zero padded to 7 decimal
    places." (The [FCAP] example infers 1-based names from a last `file.0000036.jpg`; the fake
    follows the API reference.)"""
    if output.get("ContainerSettings", {}).get("Container", "RAW") != "RAW":
        raise not_modelled("frame capture in a container other than RAW")
    description = output["VideoDescription"]
    capture = description["CodecSettings"].get("FrameCaptureSettings") or {}
    period = Fraction(capture.get("FramerateDenominator", 1), capture.get("FramerateNumerator", 1))
    pieces = layout(settings, sources, None)
    shots = capture_times(pieces, period, capture.get("MaxCaptures", 10_000_000))
    size = output_size(description, *rotated_size(pieces[0].source, pieces[0].rotate))
    folder = work / f"{PurePosixPath(name).name}-frames"
    images = _extract(pieces, shots, description, size, capture.get("Quality", 80), folder)
    extension = output.get("Extension", "jpg")
    files = [
        OutputFile(image, f"{name}.{number:07d}.{extension}") for number, image in enumerate(images)
    ]
    return _detail(sum((p.duration for p in pieces), Fraction(0)), size), files


def _extract(
    pieces: Sequence[Piece],
    shots: list[tuple[int, int]],
    description: dict[str, Any],
    size: tuple[int, int],
    quality: int,
    folder: Path,
) -> list[Path]:
    """One JPEG per shot, in capture order.

    Each piece is decoded once by ffmpeg into raw pictures (already turned and scaled); the
    pictures the shots name are passed on, in order and as often as named, to a second ffmpeg
    that writes the JPEGs. Selection stays exact frame arithmetic here, whatever the count.
    """
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    frame_bytes = width * height * 3
    # MediaConvert's Quality is 1-100 (higher is better); ffmpeg's mjpeg -q:v is 2-31.
    qscale = str(round(2 + (100 - quality) * 29 / 99))
    pattern = folder / "capture-%07d.jpg"
    encode = [*_FFMPEG, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
              "-framerate", "1", "-i", "-", "-fps_mode", "passthrough", "-q:v", qscale,
              "-start_number", "0", str(pattern)]  # fmt: skip
    encode_log = folder / "encode.log"
    with encode_log.open("wb") as log:
        encoder = subprocess.Popen(encode, stdin=subprocess.PIPE, stderr=log)
        assert encoder.stdin is not None
        try:
            for piece_index, piece in enumerate(pieces):
                wanted = [frame for i, frame in shots if i == piece_index]
                if wanted:
                    for picture in _pictures(piece, description, size, frame_bytes, wanted, folder):
                        encoder.stdin.write(picture)
        finally:
            encoder.stdin.close()
            encoder.wait()
    if encoder.returncode != 0:
        raise JobError(f"frame capture: ffmpeg failed: {encode_log.read_text()[-2000:]}")
    images = [folder / f"capture-{number:07d}.jpg" for number in range(len(shots))]
    missing = [image.name for image in images if not image.exists()]
    if missing:
        raise JobError(f"frame capture wrote no {missing[0]}")
    return images


def _pictures(
    piece: Piece,
    description: dict[str, Any],
    size: tuple[int, int],
    frame_bytes: int,
    wanted: list[int],
    folder: Path,
) -> Iterator[bytes]:
    """The raw pictures of source frames `wanted` (ascending, repeats allowed) of `piece`."""
    filters = [
        f"trim=start_frame={piece.first}:end_frame={piece.last + 1}",
        *picture_filters(description, piece.source, piece.rotate, size),
    ]
    decode = [*_FFMPEG, "-nostdin", *_input_args([piece.source]), "-vf", ",".join(filters),
              "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    decode_log = folder / "decode.log"
    with decode_log.open("wb") as log:
        decoder = subprocess.Popen(decode, stdout=subprocess.PIPE, stderr=log)
        assert decoder.stdout is not None
        position = iter(wanted)
        target = next(position, None)
        frame = piece.first
        try:
            while target is not None:
                picture = decoder.stdout.read(frame_bytes)
                if len(picture) < frame_bytes:
                    break
                while target == frame:
                    yield picture
                    target = next(position, None)
                frame += 1
        finally:
            decoder.stdout.close()
            decoder.wait()
    if target is not None:
        raise JobError(
            f"frame capture: frame {target} of {piece.source.url} was not decoded "
            f"({decode_log.read_text()[-2000:]})"
        )


# --- MP4 outputs


def encode_mp4(
    settings: dict[str, Any],
    sources: Sequence[Source],
    output: dict[str, Any],
    name: str,
    work: Path,
) -> tuple[dict[str, Any], list[OutputFile]]:
    """An H.264 MP4 of the job's timeline, `<name>.mp4`."""
    description = output.get("VideoDescription")
    if not description:
        raise not_modelled("outputs without video")
    codec = description["CodecSettings"]["Codec"]
    container = output.get("ContainerSettings", {}).get("Container")
    if codec != "H_264" or container != "MP4":
        raise not_modelled(f"{codec} in {container} (H_264 in MP4 only)")
    audio = output.get("AudioDescriptions") or []
    if len(audio) > 1:
        raise not_modelled("more than one audio description")
    sound = audio[0] if audio else None
    if sound and sound["CodecSettings"]["Codec"] != "AAC":
        raise not_modelled(f"audio codec {sound['CodecSettings']['Codec']}")
    audio_source = sound.get("AudioSourceName", DEFAULT_AUDIO_SOURCE) if sound else None
    pieces = layout(settings, sources, audio_source)
    size = output_size(description, *rotated_size(pieces[0].source, pieces[0].rotate))
    graph, maps = _graph(pieces, description, size, sound)
    local = work / f"{PurePosixPath(name).name}.mp4"
    args = [*_input_args(sources), "-filter_complex", graph, *maps,
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]  # fmt: skip
    if sound:
        aac = sound["CodecSettings"].get("AacSettings") or {}
        args += ["-c:a", "aac", "-b:a", str(aac.get("Bitrate", 96000))]
    run_ffmpeg([*args, "-movflags", "+faststart", str(local)], f"encoding {name}")
    url = f"{name}.{output.get('Extension', 'mp4')}"
    return _detail(sum((p.duration for p in pieces), Fraction(0)), size), [OutputFile(local, url)]


def _graph(
    pieces: Sequence[Piece],
    description: dict[str, Any],
    size: tuple[int, int],
    sound: dict[str, Any] | None,
) -> tuple[str, list[str]]:
    """Trim every piece by frame number (end inclusive), transform, concatenate."""
    aac = (sound or {}).get("CodecSettings", {}).get("AacSettings") or {}
    rate = aac.get("SampleRate", 48000)
    channels = {"CODING_MODE_1_0": "mono", "CODING_MODE_2_0": "stereo"}.get(
        aac.get("CodingMode", "CODING_MODE_2_0")
    )
    if sound and channels is None:
        raise not_modelled(f"AAC coding mode {aac.get('CodingMode')}")
    chains, labels = [], []
    video_uses: dict[int, int] = {}
    audio_uses: dict[int, int] = {}
    for piece in pieces:
        video_uses[piece.input_index] = video_uses.get(piece.input_index, 0) + 1
        if sound and piece.audio:
            audio_uses[piece.input_index] = audio_uses.get(piece.input_index, 0) + 1
    for i, n in video_uses.items():
        chains.append(f"[{i}:v:0]split={n}" + "".join(f"[v{i}s{k}]" for k in range(n)))
    for i, n in audio_uses.items():
        chains.append(f"[{i}:a:0]asplit={n}" + "".join(f"[a{i}s{k}]" for k in range(n)))
    next_video = {i: iter(range(n)) for i, n in video_uses.items()}
    next_audio = {i: iter(range(n)) for i, n in audio_uses.items()}
    for j, piece in enumerate(pieces):
        video = [
            f"trim=start_frame={piece.first}:end_frame={piece.last + 1}",
            "setpts=PTS-STARTPTS",
            *picture_filters(description, piece.source, piece.rotate, size),
        ]
        chains.append(f"[v{piece.input_index}s{next(next_video[piece.input_index])}]"
                      f"{','.join(video)}[v{j}]")  # fmt: skip
        labels.append(f"[v{j}]")
        if sound:
            start = piece.source.start + piece.source.times[piece.first]
            end = piece.source.start + piece.source.frame_end(piece.last)
            if piece.audio:
                k = next(next_audio[piece.input_index])
                audio = (
                    f"[a{piece.input_index}s{k}]atrim=start={float(start)}:end={float(end)},"
                    "asetpts=PTS-STARTPTS"
                )
            else:
                audio = f"anullsrc=r={rate}:cl={channels},atrim=duration={float(end - start)}"
            chains.append(f"{audio},aformat=sample_rates={rate}:channel_layouts={channels}[a{j}]")
            labels.append(f"[a{j}]")
    concat = f"{''.join(labels)}concat=n={len(pieces)}:v=1:a={1 if sound else 0}[vout]"
    chains.append(concat + ("[aout]" if sound else ""))
    h264 = description["CodecSettings"].get("H264Settings") or {}
    maps = ["-map", "[vout]"]
    if h264.get("FramerateControl") == "SPECIFIED":
        rate_text = f"{h264['FramerateNumerator']}/{h264['FramerateDenominator']}"
        chains.append(f"[vout]fps={rate_text}[vfinal]")
        maps = ["-map", "[vfinal]"]
    if sound:
        maps += ["-map", "[aout]"]
    return ";".join(chains), maps
