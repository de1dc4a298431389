"""Writing outputs from detected ranges: clips, a highlight reel and thumbnails, with ffmpeg.

Every output is written to a temporary name beside its final path and renamed when ffmpeg
succeeds, so a crash never leaves a half-written clip under the final name.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from highlights.errors import InputError, OutputExistsError, VideoError
from highlights.files import atomic_path
from highlights.segments import Segment
from highlights.timecode import (
    FrameTime,
    clip_frames,
    ffmpeg_rate,
    ffmpeg_span,
    last_frame_time,
    seconds_text,
)
from highlights.video import VideoInfo, ffmpeg_command, media_path, probe, run_ffmpeg

H264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "128k"]
MP4 = ["-movflags", "+faststart"]
THUMBNAIL_MAX_WIDTH = 640


def cut_clip(video: Path, segment: Segment, out: Path, copy: bool = False) -> Path:
    """Write `segment` of `video` to `out` (.mp4).

    Default: re-encoded (H.264 + AAC), from the frame on screen at `segment.start` to the last
    frame that starts before `segment.end` (`highlights.timecode.clip_frames`, clamped to the
    video), the same frames MediaConvert's clipping takes.
    `copy=True`: the video stream is copied without re-encoding (audio is still AAC). Fast,
    but the file starts at the keyframe at or before `segment.start`; the MP4 edit list tells
    players that honour it to begin at `segment.start`.
    """
    video, out = Path(video), Path(out)
    info = probe(video)
    _refuse_overwriting_input(video, out)
    first, stop = _frames(video, segment, info)
    seek, length = ffmpeg_span(first, stop)
    video_codec = ["-c:v", "copy"] if copy else H264
    command = [
        *ffmpeg_command(), "-ss", seek, "-i", media_path(video),
        "-t", length, "-map", "0:V:0", "-map", "0:a:0?", "-sn", "-dn",
        *video_codec, *AAC,
    ]  # fmt: skip
    with atomic_path(out) as tmp:
        action = f"cut {float(first.seconds):.3f}-{float(stop.seconds):.3f} s"
        run_ffmpeg([*command, *MP4, media_path(tmp)], video, action)
    return out


def make_reel(clips: Sequence[Path], out: Path) -> Path:
    """Join `clips` in order into one .mp4.

    Clips of the same format (our own re-encoded clips) are joined by stream copy with the
    concat demuxer; clips that differ in codec, size, frame rate or audio are re-encoded.
    """
    out = Path(out)
    if not clips:
        raise InputError(f"{out}: no clips to join into a reel")
    infos = [probe(Path(clip)) for clip in clips]
    for info in infos:
        _refuse_overwriting_input(info.path, out)
    with atomic_path(out) as tmp:
        if not (_same_format(infos) and _concat_copy(infos, tmp)):
            _concat_reencode(infos, tmp, out)
    return out


def thumbnail(video: Path, time: float, out: Path) -> Path:
    """Write the frame shown at `time` seconds as a JPEG at most 640 pixels wide."""
    video, out = Path(video), Path(out)
    info = probe(video)
    _refuse_overwriting_input(video, out)
    frame = FrameTime.at(min(max(0.0, time), last_frame_time(info.duration, info.rate)), info.rate)
    at = float(frame.seconds)
    width = f"'min({THUMBNAIL_MAX_WIDTH},iw)'"
    with atomic_path(out) as tmp:
        command = [
            *ffmpeg_command(), "-ss", seconds_text(frame.seconds), "-i", media_path(video),
            "-map", "0:V:0",
            "-frames:v", "1", "-vf", f"scale={width}:-2", "-q:v", "3", "-update", "1",
            media_path(tmp),
        ]  # fmt: skip
        run_ffmpeg(command, video, f"take a thumbnail at {at:.3f} s")
        if tmp.stat().st_size == 0:
            raise VideoError(f"{video}: no frame to take a thumbnail from at {at:.3f} s")
    return out


# --- helpers -------------------------------------------------------------------------------


def _refuse_overwriting_input(source: Path, out: Path) -> None:
    if out.exists() and out.resolve() == source.resolve():
        raise OutputExistsError(f"{out}: output would overwrite its own input video")


def _frames(video: Path, segment: Segment, info: VideoInfo) -> tuple[FrameTime, FrameTime]:
    """(first, stop) frames of `segment` in `video`; InputError naming it if there are none."""
    if segment.end <= max(0.0, segment.start) or segment.start >= info.duration:
        raise InputError(
            f"{video}: range {segment.start:.3f}-{segment.end:.3f} s is empty or outside "
            f"the video (0-{info.duration:.3f} s)"
        )
    return clip_frames(segment.start, segment.end, info.rate, info.duration)


def _same_format(infos: Sequence[VideoInfo]) -> bool:
    first = infos[0]

    def key(info: VideoInfo) -> tuple[object, ...]:
        return (info.codec, info.width, info.height, info.rotation, info.has_audio)

    return all(key(info) == key(first) and info.rate == first.rate for info in infos)


def _concat_list(infos: Sequence[VideoInfo], folder: Path) -> Path:
    listing = folder / "clips.txt"
    lines = []
    for info in infos:
        quoted = media_path(info.path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'\n")
    listing.write_text("".join(lines), encoding="utf-8")
    return listing


def _concat_copy(infos: Sequence[VideoInfo], tmp: Path) -> bool:
    """Join by stream copy; False if ffmpeg refuses (the caller then re-encodes)."""
    with tempfile.TemporaryDirectory() as folder:
        listing = _concat_list(infos, Path(folder))
        command = [
            *ffmpeg_command(), "-f", "concat", "-safe", "0", "-i", str(listing),
            "-map", "0", "-c", "copy", *MP4, media_path(tmp),
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True).returncode == 0


def _concat_reencode(infos: Sequence[VideoInfo], tmp: Path, out: Path) -> None:
    """Join clips of any format: scale and pad to the first clip's size, silence where a clip
    has no audio, then H.264 + AAC."""
    first = infos[0]
    width, height = first.width // 2 * 2, first.height // 2 * 2
    fps = ffmpeg_rate(first.rate)
    with_audio = any(info.has_audio for info in infos)
    inputs: list[str] = []
    graph: list[str] = []
    pads = ""
    for i, info in enumerate(infos):
        inputs += ["-i", media_path(info.path)]
        graph.append(
            f"[{i}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},"
            f"format=yuv420p[v{i}]"
        )
        pads += f"[v{i}]"
        if with_audio:
            silence = f"anullsrc=d={seconds_text(info.duration)},"
            source = f"[{i}:a:0]" if info.has_audio else silence
            graph.append(f"{source}aresample=48000,aformat=channel_layouts=stereo[a{i}]")
            pads += f"[a{i}]"
    outputs = "[v][a]" if with_audio else "[v]"
    graph.append(f"{pads}concat=n={len(infos)}:v=1:a={int(with_audio)}{outputs}")
    maps = ["-map", "[v]"] + (["-map", "[a]", *AAC] if with_audio else [])
    command = [*ffmpeg_command(), *inputs, "-filter_complex", ";".join(graph), *maps, *H264, *MP4]
    run_ffmpeg([*command, media_path(tmp)], out, f"join {len(infos)} clips into a reel")
