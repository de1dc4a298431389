"""AWS Elemental MediaConvert job settings, built as plain dicts (no AWS client here).

Three kinds of job: frame capture (JPEG frames at the sampling rate, for the features job),
one clip per detected range, and the highlight reel (every range, in order, in one MP4).
Times stay in seconds until this edge, where they become `HH:MM:SS:FF` timecodes at the
source frame rate. Inputs use ZEROBASED timecodes so that 00:00:00:00 is the first frame
whatever timecode track the camera wrote.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from highlights.errors import InputError
from highlights.segments import Segment
from highlights.timecode import clip_timecodes

MAX_CAPTURES = 10_000_000  # MediaConvert's upper bound for FrameCaptureSettings.MaxCaptures
MAX_INPUTS = 150  # MediaConvert's limit of inputs in one job
AUDIO_SELECTOR = "Audio Selector 1"
JPEG_QUALITY = 80


@dataclass(frozen=True)
class SourceInfo:
    """What MediaConvert's Probe says about the uploaded video."""

    duration: float  # seconds
    fps: float
    has_audio: bool
    width: int
    height: int


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
    if not rate.get("Numerator") or not rate.get("Denominator"):
        raise InputError(f"{url}: the video stream has no frame rate")
    duration = container.get("Duration") or video.get("Duration")
    if not duration or duration <= 0:
        raise InputError(f"{url}: the video has no duration (empty or truncated?)")
    return SourceInfo(
        duration=float(duration),
        fps=rate["Numerator"] / rate["Denominator"],
        has_audio=any(t.get("TrackType") == "audio" for t in tracks),
        width=int(props.get("Width") or 0),
        height=int(props.get("Height") or 0),
    )


def client_request_token(match_id: str, purpose: str) -> str:
    """Idempotency token for CreateJob: the same match and purpose always give the same token."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{match_id}/{purpose}".encode()).digest()[:16]))


def capture_count(duration: float, rate: float) -> int:
    """Frames captured at `rate` over `duration` seconds: times 0, 1/rate, ... up to duration."""
    return max(1, min(MAX_CAPTURES, math.floor(duration * rate + 1e-9) + 1))


def frame_capture_settings(
    source: str, destination: str, rate: float, duration: float
) -> dict[str, Any]:
    """Settings for a FRAME_CAPTURE job: JPEGs at `rate` frames/s written under `destination`.

    `destination` is an S3 prefix ending in '/'; MediaConvert names the frames
    `<prefix>frame.0000000.jpg`, `frame.0000001.jpg`, ... (frame k is at k / rate seconds).
    """
    if rate <= 0:
        raise InputError(f"frame capture rate must be positive, got {rate}")
    framerate = Fraction(rate).limit_denominator(1001)
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [{"FileInput": source, "TimecodeSource": "ZEROBASED", "VideoSelector": {}}],
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
                        "VideoDescription": {
                            "CodecSettings": {
                                "Codec": "FRAME_CAPTURE",
                                "FrameCaptureSettings": {
                                    "FramerateNumerator": framerate.numerator,
                                    "FramerateDenominator": framerate.denominator,
                                    "MaxCaptures": capture_count(duration, rate),
                                    "Quality": JPEG_QUALITY,
                                },
                            }
                        },
                    }
                ],
            }
        ],
    }


def clip_settings(
    source: str, segment: Segment, destination: str, fps: float, has_audio: bool
) -> dict[str, Any]:
    """Settings for one H.264 MP4 clip of `segment`; `destination` is the key without '.mp4'."""
    return _mp4_job(
        [_clipped_input(source, [segment], fps, has_audio)], destination, has_audio, "Clip"
    )


def reel_settings(
    source: str, segments: Sequence[Segment], destination: str, fps: float, has_audio: bool
) -> dict[str, Any]:
    """Settings for the reel: every segment in time order, one input each, joined in one MP4."""
    if not segments:
        raise InputError(f"{source}: a reel needs at least one segment")
    ordered = sorted(segments, key=lambda s: s.start)
    groups = _split(ordered, MAX_INPUTS)
    inputs = [_clipped_input(source, group, fps, has_audio) for group in groups]
    return _mp4_job(inputs, destination, has_audio, "Reel")


def _split(segments: list[Segment], parts: int) -> list[list[Segment]]:
    """One segment per input while they fit; beyond MAX_INPUTS, consecutive ones share an input."""
    size = math.ceil(len(segments) / parts)
    return [segments[i : i + size] for i in range(0, len(segments), size)]


def _clipped_input(
    source: str, segments: Sequence[Segment], fps: float, has_audio: bool
) -> dict[str, Any]:
    if fps <= 0:
        raise InputError(f"{source}: frame rate must be positive, got {fps}")
    clippings = []
    for segment in segments:
        if segment.end <= segment.start:
            raise InputError(
                f"{source}: empty range {segment.start:.3f}-{segment.end:.3f} s cannot be clipped"
            )
        first, last = clip_timecodes(segment.start, segment.end, fps)
        clippings.append({"StartTimecode": first, "EndTimecode": last})
    item: dict[str, Any] = {
        "FileInput": source,
        "TimecodeSource": "ZEROBASED",
        "InputClippings": clippings,
        "VideoSelector": {},
    }
    if has_audio:
        item["AudioSelectors"] = {AUDIO_SELECTOR: {"DefaultSelection": "DEFAULT"}}
    return item


def _mp4_job(
    inputs: list[dict[str, Any]], destination: str, has_audio: bool, name: str
) -> dict[str, Any]:
    output: dict[str, Any] = {
        "ContainerSettings": {"Container": "MP4", "Mp4Settings": {}},
        "Extension": "mp4",
        "VideoDescription": {
            "CodecSettings": {
                "Codec": "H_264",
                "H264Settings": {
                    "RateControlMode": "QVBR",
                    "QvbrSettings": {"QvbrQualityLevel": 7},
                    "MaxBitrate": 8_000_000,
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
                        "Bitrate": 128_000,
                        "CodingMode": "CODING_MODE_2_0",
                        "SampleRate": 48_000,
                    },
                },
            }
        ]
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": inputs,
        "OutputGroups": [
            {
                "Name": name,
                "OutputGroupSettings": {
                    "Type": "FILE_GROUP_SETTINGS",
                    "FileGroupSettings": {"Destination": destination},
                },
                "Outputs": [output],
            }
        ],
    }


def _as_prefix(destination: str) -> str:
    return destination if destination.endswith("/") else f"{destination}/"
