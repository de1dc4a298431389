"""AWS Elemental MediaConvert job settings, built as plain dicts (no AWS client here).

Three kinds of job: frame capture (JPEG frames at the sampling rate, for the features job),
one clip per detected range, and the highlight reel (every range, in order, in one MP4).
Times stay in seconds until this edge, where they become timecodes at the source frame rate
(`highlights.timecode`: drop-frame `HH:MM:SS;FF` at 29.97 and 59.94, else `HH:MM:SS:FF`).
Inputs use ZEROBASED timecodes so that 00:00:00:00 is the first frame whatever timecode track
the camera wrote.

Rules of the service that shape these settings:
- "You can create frame capture outputs only in jobs that also have a regular audio and video
  output. MediaConvert doesn't support jobs that consist only of a frame capture output."
  (User Guide, "File group with a frame capture output"). The frame-capture job therefore also
  writes a small H.264 proxy of the match (short side 360, low bitrate) under its own prefix,
  never under the frames the features job reads; nothing reads it, and the work bucket's
  lifecycle rule and the run's cleanup remove it. (It is not used for report previews: the AWS
  run sends links to the clips themselves, which are already small.)
- "By default, the service does no rotation, even if your input video has rotation metadata"
  (API reference, VideoSelector.Rotate): every input asks for `AUTO`, as the local path
  turns phone video upright.
- Frames are captured at the size the backbone reads (its short side), not at source size: a
  4K match at 5 frames/s would otherwise be tens of gigabytes of JPEGs.
- Clipping timecodes count frames at the source's rate. Variable-frame-rate video (phones) has
  no such rate: frame k is not at k / average. A source whose average rate is not a standard one
  is therefore first converted to a constant standard rate (`normalize_settings`: frames
  duplicated or dropped by their timestamps) and every other job reads that copy; a test with a
  real VFR file shows its clips then agree with the local path's within one frame.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from highlights.errors import InputError
from highlights.segments import Segment
from highlights.timecode import Rate, as_rate, clip_timecodes, frames_before, rate_text

MAX_CAPTURES = 10_000_000  # MediaConvert's upper bound for FrameCaptureSettings.MaxCaptures
MAX_INPUTS = 150  # MediaConvert's limit of inputs in one job
AUDIO_SELECTOR = "Audio Selector 1"
JPEG_QUALITY = 80
VIDEO_SELECTOR = {"Rotate": "AUTO"}  # turn phone video upright, as the local decoder does
PROXY_SHORT_SIDE = 360
PROXY_MAX_BITRATE = 600_000
MIN_SIDE = 32  # MediaConvert's minimum output Width and Height
# Short side of the frames each backbone reads (its FrameGeometry.resize_short), kept here so
# building a job does not import Keras; tests check it against the backbones.
CAPTURE_SHORT_SIDE = {"efficientnet_lite0": 256, "inception_v3": 299}


@dataclass(frozen=True)
class SourceInfo:
    """What MediaConvert's Probe says about the uploaded video.

    Passed between DAG tasks as XCom (`dataclasses.asdict`, JSON), so every field is JSON: the
    frame rate is its exact text ("30000/1001"), never a float to be guessed back.
    """

    duration: float  # seconds
    rate: str  # frames/s, exact: "25", "30000/1001" (a Fraction or an int is turned into this)
    has_audio: bool
    width: int  # as stored, before rotation
    height: int
    rotation: int = 0  # clockwise degrees the metadata asks players to turn the picture

    def __post_init__(self) -> None:
        if isinstance(self.rate, float):
            raise TypeError(f"SourceInfo.rate must be exact (a Fraction or 'N/D'), not {self.rate}")
        object.__setattr__(self, "rate", rate_text(self.rate))

    @property
    def frame_rate(self) -> Fraction:
        return as_rate(self.rate)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after the rotation MediaConvert's AUTO applies."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def source_info(probe_response: dict[str, Any], url: str) -> SourceInfo:
    """Read duration, frame rate and tracks from a `Probe` response for one file."""
    results = probe_response.get("ProbeResults") or []
    if not results:
        raise InputError(f"{url}: MediaConvert could not probe the file")
    container = results[0].get("Container") or {}
    tracks = container.get("Tracks") or []
    video = next((t for t in tracks if t.get("TrackType") == "video"), None)
    if video is None:
        raise InputError(f"{url}: no video stream")
    props = video.get("VideoProperties") or {}
    rate = props.get("FrameRate") or {}
    numerator, denominator = rate.get("Numerator"), rate.get("Denominator")
    if not all(isinstance(n, int) and n > 0 for n in (numerator, denominator)):
        raise InputError(f"{url}: the video stream has no frame rate")
    duration = container.get("Duration") or video.get("Duration")
    if not duration or duration <= 0:
        raise InputError(f"{url}: the video has no duration (empty or truncated?)")
    return SourceInfo(
        duration=float(duration),
        rate=rate_text(Fraction(numerator, denominator)),
        has_audio=any(t.get("TrackType") == "audio" for t in tracks),
        width=int(props.get("Width") or 0),
        height=int(props.get("Height") or 0),
        rotation=_right_angle(props.get("Rotation")),
    )


def _right_angle(rotation: Any) -> int:
    """AUTO rotates only "within one degree of 90, 180, or 270 degrees" (VideoSelector.Rotate)."""
    if rotation is None:
        return 0
    for right in (0, 90, 180, 270, 360):
        if abs(float(rotation) % 360 - right) <= 1:
            return right % 360
    return 0


def scaled_size(size: tuple[int, int], short_side: int) -> tuple[int, int] | None:
    """Output (Width, Height) with the short side at `short_side`, aspect kept, even numbers.

    None when the source is already that small or its size is unknown: the output keeps the
    source size (nothing is scaled up).
    """
    width, height = size
    if width <= 0 or height <= 0 or min(width, height) <= short_side:
        return None
    scale = Fraction(short_side, min(width, height))
    return _even(width * scale), _even(height * scale)


def _even(value: Fraction) -> int:
    return max(MIN_SIDE, 2 * round(value / 2))


# Constant rates MediaConvert's timecodes are documented for: whole rates and n * 1000/1001.
STANDARD_RATES = tuple(
    sorted(
        [Fraction(n) for n in (24, 25, 30, 50, 60)]
        + [Fraction(n * 1000, 1001) for n in (24, 30, 60)]
    )
)
# How far from a standard rate a reported rate may be and still be it (a container's 2997/100).
RATE_TOLERANCE = Fraction(1, 1000)
NORMALIZED_MAX_BITRATE = 40_000_000


def standard_rate(rate: Rate) -> Fraction | None:
    """The one of STANDARD_RATES that `rate` (an average) is, as a constant-rate file reports
    it, or None."""
    exact = as_rate(rate)
    return next((r for r in STANDARD_RATES if abs(exact - r) < RATE_TOLERANCE), None)


def is_standard_rate(rate: Rate) -> bool:
    return standard_rate(rate) is not None


def constant_rate_for(rate: Rate) -> Fraction:
    """The standard rate a variable-rate source is converted to: the smallest at or above its
    average (phone video drops frames below its nominal rate), at most 60."""
    exact = as_rate(rate)
    return next((r for r in STANDARD_RATES if r >= exact - RATE_TOLERANCE), STANDARD_RATES[-1])


def needs_normalizing(info: SourceInfo) -> bool:
    return not is_standard_rate(info.rate)


def at_standard_rate(info: SourceInfo) -> SourceInfo:
    """A constant-rate source as the jobs count its frames: at its standard rate exactly."""
    rate = standard_rate(info.rate)
    if rate is None:
        raise InputError(f"{info.rate} frames/s is not a standard rate: convert the video first")
    return replace(info, rate=rate_text(rate))


def normalized_info(info: SourceInfo) -> SourceInfo:
    """What the constant-rate copy is: upright (rotation applied), at `constant_rate_for`."""
    width, height = info.display_size
    return SourceInfo(
        duration=info.duration,
        rate=rate_text(constant_rate_for(info.rate)),
        has_audio=info.has_audio,
        width=width,
        height=height,
        rotation=0,
    )


def normalize_settings(source: str, destination: str, info: SourceInfo) -> dict[str, Any]:
    """An H.264 MP4 of the whole source at a constant standard frame rate (`destination`: the
    key without '.mp4'), upright, at source size and high quality; later jobs read it."""
    rate = constant_rate_for(info.rate)
    output = _mp4_output(info.has_audio, max_bitrate=NORMALIZED_MAX_BITRATE, quality=9,
                         audio=192_000)  # fmt: skip
    # FramerateConversionAlgorithm is left at its default, DUPLICATE_DROP: "MediaConvert
    # duplicates or drops frames" to reach the rate (API reference, H264Settings).
    output["VideoDescription"]["CodecSettings"]["H264Settings"].update(
        FramerateControl="SPECIFIED",
        FramerateNumerator=rate.numerator,
        FramerateDenominator=rate.denominator,
    )
    item = _input_item(source, info.has_audio)
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [item],
        "OutputGroups": [_file_group("Constant frame rate", destination, output)],
    }


def capture_short_side(backbone: str) -> int:
    if backbone not in CAPTURE_SHORT_SIDE:
        raise InputError(
            f"unknown backbone {backbone!r}; choose one of {', '.join(CAPTURE_SHORT_SIDE)}"
        )
    return CAPTURE_SHORT_SIDE[backbone]


def request_key(match_id: str, purpose: str, settings: dict[str, Any]) -> str:
    """What identifies one job request: the match, its purpose and its exact settings.

    Stored in the job's `UserMetadata` so that a later try can find the job an earlier one made
    (`ListJobs`); a change of any setting is a different request and gets its own job.
    """
    text = json.dumps([match_id, purpose, settings], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def client_request_token(key: str, attempt: int = 0) -> str:
    """Idempotency token for CreateJob: the same request (and attempt) gives the same token.

    MediaConvert honours a token for one minute only, so it guards against a double submit in
    one try; finding an earlier try's job is `ListJobs`' work. `attempt` counts the failed jobs
    of this request: a resubmission after a failure must not get the failed job back.
    """
    return str(uuid.UUID(bytes=hashlib.sha256(f"{key}/{attempt}".encode()).digest()[:16]))


def capture_count(duration: float, rate: float) -> int:
    """Frames captured at `rate` over `duration` seconds: times 0, 1/rate, ... before the end."""
    return max(1, min(MAX_CAPTURES, frames_before(duration, rate)))


def frame_capture_settings(
    source: str,
    destination: str,
    proxy: str,
    rate: float,
    info: SourceInfo,
    short_side: int | None = None,
) -> dict[str, Any]:
    """Settings for the frame-capture job: JPEGs at `rate` frames/s written under `destination`,
    and the proxy MP4 MediaConvert requires beside them, at the key `proxy` (without '.mp4').

    `destination` is an S3 prefix ending in '/'; MediaConvert names the frames
    `<prefix>frame.0000000.jpg`, `frame.0000001.jpg`, ... (frame k is at k / rate seconds).
    `short_side`: frames are scaled down so their short side is this (the backbone's input).
    """
    if rate <= 0:
        raise InputError(f"frame capture rate must be positive, got {rate}")
    if _as_prefix(proxy) == _as_prefix(destination) or proxy.startswith(_as_prefix(destination)):
        raise InputError(f"the proxy {proxy} must not be written among the frames {destination}")
    framerate = as_rate(rate)
    frames: dict[str, Any] = {
        "CodecSettings": {
            "Codec": "FRAME_CAPTURE",
            "FrameCaptureSettings": {
                "FramerateNumerator": framerate.numerator,
                "FramerateDenominator": framerate.denominator,
                "MaxCaptures": capture_count(info.duration, rate),
                "Quality": JPEG_QUALITY,
            },
        }
    }
    frames.update(_size(info, short_side))
    item = _input_item(source, info.has_audio)
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [item],
        "OutputGroups": [
            {
                "Name": "Frame capture",
                "OutputGroupSettings": {
                    "Type": "FILE_GROUP_SETTINGS",
                    "FileGroupSettings": {"Destination": f"{_as_prefix(destination)}frame"},
                },
                "Outputs": [
                    {
                        "ContainerSettings": {"Container": "RAW"},
                        "Extension": "jpg",
                        "VideoDescription": frames,
                    }
                ],
            },
            _file_group("Proxy", proxy, _proxy_output(info)),
        ],
    }


def _size(info: SourceInfo, short_side: int | None) -> dict[str, int]:
    size = scaled_size(info.display_size, short_side) if short_side else None
    return {"Width": size[0], "Height": size[1]} if size else {}


def _proxy_output(info: SourceInfo) -> dict[str, Any]:
    output = _mp4_output(info.has_audio, max_bitrate=PROXY_MAX_BITRATE, quality=5, audio=64_000)
    output["VideoDescription"].update(_size(info, PROXY_SHORT_SIDE))
    return output


def clip_settings(
    source: str, segment: Segment, destination: str, rate: Rate, has_audio: bool
) -> dict[str, Any]:
    """Settings for one H.264 MP4 clip of `segment`; `destination` is the key without '.mp4'.
    `rate`: the source's exact frame rate (a Fraction or "N/D"), which the timecodes count."""
    return _mp4_job(
        [_clipped_input(source, [segment], rate, has_audio)], destination, has_audio, "Clip"
    )


def reel_settings(
    source: str, segments: Sequence[Segment], destination: str, rate: Rate, has_audio: bool
) -> dict[str, Any]:
    """Settings for the reel: every segment in time order, one input each, joined in one MP4."""
    if not segments:
        raise InputError(f"{source}: a reel needs at least one segment")
    ordered = sorted(segments, key=lambda s: s.start)
    groups = _split(ordered, MAX_INPUTS)
    inputs = [_clipped_input(source, group, rate, has_audio) for group in groups]
    return _mp4_job(inputs, destination, has_audio, "Reel")


def _split(segments: list[Segment], parts: int) -> list[list[Segment]]:
    """One segment per input while they fit; beyond MAX_INPUTS, consecutive ones share an input."""
    size = math.ceil(len(segments) / parts)
    return [segments[i : i + size] for i in range(0, len(segments), size)]


def _clipped_input(
    source: str, segments: Sequence[Segment], rate: Rate, has_audio: bool
) -> dict[str, Any]:
    try:
        rate = as_rate(rate)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    clippings = []
    for segment in segments:
        if segment.end <= segment.start:
            raise InputError(
                f"{source}: empty range {segment.start:.3f}-{segment.end:.3f} s cannot be clipped"
            )
        first, last = clip_timecodes(segment.start, segment.end, rate)
        clippings.append({"StartTimecode": first, "EndTimecode": last})
    return _input_item(source, has_audio, clippings)


def _input_item(
    source: str, has_audio: bool, clippings: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """One job input: zero-based timecodes, the video turned upright, the default audio."""
    item: dict[str, Any] = {"FileInput": source, "TimecodeSource": "ZEROBASED"}
    if clippings is not None:
        item["InputClippings"] = clippings
    item["VideoSelector"] = dict(VIDEO_SELECTOR)
    if has_audio:
        item["AudioSelectors"] = {AUDIO_SELECTOR: {"DefaultSelection": "DEFAULT"}}
    return item


def _mp4_job(
    inputs: list[dict[str, Any]], destination: str, has_audio: bool, name: str
) -> dict[str, Any]:
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": inputs,
        "OutputGroups": [_file_group(name, destination, _mp4_output(has_audio))],
    }


def _file_group(name: str, destination: str, output: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": name,
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": destination},
        },
        "Outputs": [output],
    }


def _mp4_output(
    has_audio: bool, *, max_bitrate: int = 8_000_000, quality: int = 7, audio: int = 128_000
) -> dict[str, Any]:
    output: dict[str, Any] = {
        "ContainerSettings": {"Container": "MP4", "Mp4Settings": {}},
        "Extension": "mp4",
        "VideoDescription": {
            "CodecSettings": {
                "Codec": "H_264",
                "H264Settings": {
                    "RateControlMode": "QVBR",
                    "QvbrSettings": {"QvbrQualityLevel": quality},
                    "MaxBitrate": max_bitrate,
                    "SceneChangeDetect": "TRANSITION_DETECTION",
                },
            }
        },
    }
    if has_audio:
        output["AudioDescriptions"] = [
            {
                "AudioSourceName": AUDIO_SELECTOR,
                "CodecSettings": {
                    "Codec": "AAC",
                    "AacSettings": {
                        "Bitrate": audio,
                        "CodingMode": "CODING_MODE_2_0",
                        "SampleRate": 48_000,
                    },
                },
            }
        ]
    return output


def _as_prefix(destination: str) -> str:
    return destination if destination.endswith("/") else f"{destination}/"
