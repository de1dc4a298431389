"""The highlights as timelines an editor opens: OpenTimelineIO, CMX 3600 EDL, Final Cut Pro XML.

One timeline, written three ways with OpenTimelineIO and its adapters:

- `highlights.otio`: OpenTimelineIO's own JSON (Resolve, Hiero, OTIO tools);
- `highlights.edl`: CMX 3600 (Premiere, Resolve, Avid, Final Cut via converters);
- `highlights.xml`: Final Cut Pro 7 XML, `xmeml` (Premiere, Resolve, Final Cut Pro via 7toX).

The timeline holds one video track (and an audio track when the match has sound) of the
highlights butted together; each clip is a range of the original match file, not of a cut
clip, so the editor can open up the cuts. Ranges are whole frames at the match's own frame
rate; for 29.97 and 59.94 fps the timecodes are drop-frame (`HH:MM:SS;FF`), as editors show
NTSC material. Each clip carries its class and score as a marker over its range and in its
metadata (`highlights` key).

Which frames a range covers: exactly the cut clip's, from the frame on screen at its start to the
last frame that starts before its end, clamped to the match (`highlights.timecode.clip_frames`,
the function `highlights.outputs.clips.cut_clip` and MediaConvert's clipping cut by).

SMPTE timecode exists for 23.976, 24, 25, 29.97, 30, 48, 50, 59.94 and 60 fps only. For a match at
any other rate (15 fps, 120 fps, a phone's variable rate averaging 29.68) the `.otio` file keeps
the match's own rate, and the EDL and XML count frames at the nearest timecode rate
(OpenTimelineIO's `nearest_smpte_timecode_rate`) instead.

Final Cut Pro X's `.fcpxml` is not written: the adapters on PyPI (`otio-fcpx-xml-adapter` 1.0.0,
`otio-fcpx-xml-lite-adapter` 0.2.3) truncate NTSC rates to whole numbers (29.97 becomes 29),
so their files do not hold frame-exact ranges for such sources (OpenTimelineIO issues #903, #1661).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from highlights.errors import InputError
from highlights.files import write_text_atomic
from highlights.segments import Segment
from highlights.timecode import FrameTime, as_rate, clip_frames, frames_before, is_drop_frame_rate
from highlights.video import VideoInfo

TIMELINE_STEM = "highlights"
# File ending -> the OpenTimelineIO adapter that writes and reads it.
ADAPTERS = {".otio": "otio_json", ".edl": "cmx_3600", ".xml": "fcp_xml"}
TIMELINE_FILES = tuple(f"{TIMELINE_STEM}{suffix}" for suffix in ADAPTERS)
METADATA_KEY = "highlights"
EDL_REEL = "AX"  # the reel name editors give file-based media (no tape)
MARKER_COLOR = otio.schema.MarkerColor.GREEN
LOWEST_TIMECODE_RATE = 24.0
# The FCP XML adapter writes drop-frame timecodes where an item's metadata says so.
_FCP_DROP_FRAME = {"fcp_xml": {"timecode": {"displayformat": "DF"}}}


def timecode_rate(rate: Fraction) -> Fraction:
    """`rate` if SMPTE timecode counts at it, else the nearest rate that it does count at."""
    if RationalTime.is_smpte_timecode_rate(float(rate)):
        return rate
    nearest = RationalTime.nearest_smpte_timecode_rate(float(rate))
    if nearest <= 0:  # OpenTimelineIO finds none below 12 fps
        nearest = LOWEST_TIMECODE_RATE
    return as_rate(nearest)  # OpenTimelineIO's float of 24000/1001 ... 60, read exactly


def video_frames(video: VideoInfo, rate: Fraction) -> int:
    """How many frames the match has at `rate`: those that start before its end."""
    return max(1, frames_before(video.duration, rate))


def frame_span(video: VideoInfo, segment: Segment, rate: Fraction) -> tuple[FrameTime, FrameTime]:
    """(first, stop) frames of the match at `rate` that the clip of `segment` holds."""
    try:
        return clip_frames(segment.start, segment.end, rate, video.duration)
    except InputError as exc:
        raise InputError(f"{video.path}: {exc}") from None


def _marker(segment: Segment, span: TimeRange, index: int) -> otio.schema.Marker:
    return otio.schema.Marker(
        name=f"{segment.label} {segment.score:.2f}",
        marked_range=span,
        color=MARKER_COLOR,
        metadata={METADATA_KEY: {"index": index, "label": segment.label, "score": segment.score}},
    )


def _clip(
    video: VideoInfo,
    segment: Segment,
    index: int,
    exact_rate: Fraction,
    clip_file: str | None,
    marked: bool,
) -> otio.schema.Clip:
    rate, frames = float(exact_rate), video_frames(video, exact_rate)
    first, stop = frame_span(video, segment, exact_rate)
    length = stop.frame - first.frame
    source = TimeRange(RationalTime(first.frame, rate), RationalTime(length, rate))
    reference = otio.schema.ExternalReference(
        target_url=video.path.resolve().as_uri(),
        available_range=TimeRange(RationalTime(0, rate), RationalTime(frames, rate)),
    )
    if is_drop_frame_rate(exact_rate):
        reference.metadata.update(_FCP_DROP_FRAME)
    details = {
        "index": index,
        "label": segment.label,
        "score": segment.score,
        "start": segment.start,
        "end": segment.end,
    }
    if clip_file:
        details["clip"] = clip_file
    clip = otio.schema.Clip(
        name=video.path.name,  # EDL importers match media by clip name
        media_reference=reference,
        source_range=source,
        metadata={METADATA_KEY: details, "cmx_3600": {"reel": EDL_REEL}},
    )
    if marked:
        clip.markers.append(_marker(segment, source, index))
    return clip


def _fraction_text(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def highlights_timeline(
    video: VideoInfo,
    segments: Sequence[Segment],
    clip_files: Sequence[str] = (),
    rate: Fraction | None = None,
) -> otio.schema.Timeline:
    """The highlights of `video` in order, as ranges of it counted in frames at `rate` (the
    video's own unless given); `clip_files` name the cut clips."""
    if clip_files and len(clip_files) != len(segments):
        raise ValueError(f"{len(clip_files)} clip files for {len(segments)} segments")
    rate = video.rate if rate is None else rate
    timeline = otio.schema.Timeline(
        name=f"Highlights of {video.path.name}",
        global_start_time=RationalTime(0, float(rate)),
        metadata={
            METADATA_KEY: {
                "video": video.path.name,
                "rate": _fraction_text(rate),
                "video_rate": _fraction_text(video.rate),
                "drop_frame": is_drop_frame_rate(rate),
            }
        },
    )
    if is_drop_frame_rate(rate):
        timeline.metadata.update(_FCP_DROP_FRAME)
    kinds = [otio.schema.TrackKind.Video]
    if video.has_audio:
        kinds.append(otio.schema.TrackKind.Audio)
    for kind in kinds:
        track = otio.schema.Track(name=f"{kind[0]}1", kind=kind)
        for index, segment in enumerate(segments, start=1):
            clip_file = clip_files[index - 1] if clip_files else None
            marked = kind == otio.schema.TrackKind.Video
            track.append(_clip(video, segment, index, rate, clip_file, marked))
        timeline.tracks.append(track)
    return timeline


def timeline_text(timeline: otio.schema.Timeline, adapter: str) -> str:
    """The timeline in one adapter's format."""
    text = otio.adapters.write_to_string(timeline, adapter_name=adapter)
    if adapter == "cmx_3600":
        text = _with_frame_code_mode(text, _timeline_is_drop_frame(timeline))
    return text


def _timeline_is_drop_frame(timeline: otio.schema.Timeline) -> bool:
    return bool(timeline.metadata.get(METADATA_KEY, {}).get("drop_frame", False))


def _with_frame_code_mode(edl: str, drop_frame: bool) -> str:
    """Add the CMX 3600 `FCM` line after the title, which the adapter leaves out: it tells the
    importer how to count the timecodes that follow."""
    mode = "FCM: DROP FRAME" if drop_frame else "FCM: NON-DROP FRAME"
    lines = edl.split("\n")
    at = 1 if lines and lines[0].startswith("TITLE:") else 0
    return "\n".join([*lines[:at], mode, *lines[at:]])


def write_timelines(
    video: VideoInfo, segments: Sequence[Segment], folder: Path, clip_files: Sequence[str] = ()
) -> list[Path]:
    """Write `highlights.otio` (at the video's rate), `.edl` and `.xml` (at its timecode rate)
    into `folder`, each atomically."""
    exact = highlights_timeline(video, segments, clip_files)
    counted = timecode_rate(video.rate)
    editable = (
        exact
        if counted == video.rate
        else highlights_timeline(video, segments, clip_files, rate=counted)
    )
    return [
        write_text_atomic(
            Path(folder) / f"{TIMELINE_STEM}{suffix}",
            timeline_text(exact if adapter == "otio_json" else editable, adapter),
        )
        for suffix, adapter in ADAPTERS.items()
    ]


def read_timeline(path: Path, rate: Fraction) -> otio.schema.Timeline:
    """Read one of the files back (an EDL does not say its rate: `rate`, the video's, does;
    an EDL is read at its timecode rate)."""
    path = Path(path)
    adapter = ADAPTERS.get(path.suffix.lower())
    if adapter is None:
        raise InputError(f"{path}: not a timeline file ({', '.join(ADAPTERS)})")
    options = {"rate": float(timecode_rate(rate))} if adapter == "cmx_3600" else {}
    try:
        timeline = otio.adapters.read_from_file(str(path), adapter_name=adapter, **options)
    except (OSError, ValueError, otio.exceptions.OTIOError) as exc:
        raise InputError(f"{path}: not a readable {adapter} timeline: {exc}") from None
    if isinstance(timeline, otio.schema.SerializableCollection):
        found = timeline.find_children(descended_from_type=otio.schema.Timeline)
        timeline = found[0].deepcopy()  # the collection, which owns it, is not kept
    return timeline
