"""Test videos: synthetic ones made with ffmpeg's lavfi sources, and the shared real ones.

Import as `from tests.media import make_video, make_event_video, shared_videos`.
Every generator writes into the path it is given (use pytest's tmp_path) and returns it.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from highlights.video import VIDEO_SUFFIXES

SHARED_VIDEOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"

# Event spans look nothing like the background: a moving, colourful test card against
# a flat, noisy green "pitch".
BACKGROUND_SOURCE = "color=c=0x2e7d32"
EVENT_SOURCE = "testsrc2"


def shared_videos() -> list[Path]:
    """The real videos of the shared data folder, sorted; [] when the folder is absent."""
    if not SHARED_VIDEOS_DIR.is_dir():
        return []
    return sorted(p for p in SHARED_VIDEOS_DIR.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def real_clip(name: str) -> Path:
    """The shared real video `name`; skips the test where it is absent, fails it under CI."""
    return require_shared(SHARED_VIDEOS_DIR / name)


def missing_shared(path: Path) -> None:
    """Skip the calling test, saying that `path` of the shared data is absent; but fail it
    when the `CI` environment variable is set: CI always has the shared videos."""
    message = f"shared real videos not found at {path}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must have them")
    pytest.skip(message)


def require_shared(path: Path = SHARED_VIDEOS_DIR) -> Path:
    """`path` (a file or folder of the shared data), or `missing_shared` when it is absent."""
    if not path.exists() or (path.is_dir() and not shared_videos()):
        missing_shared(path)
    return path


def shared_video_params() -> list:
    """The shared videos as pytest parameters; without them, one `None` parameter whose test
    must call `require_shared`, so an absent folder fails in CI instead of selecting nothing."""
    videos = shared_videos()
    if not videos:
        return [pytest.param(None, id="no-shared-videos")]
    return [pytest.param(p, id=str(p.relative_to(SHARED_VIDEOS_DIR))) for p in videos]


def lavfi_source(pattern: str, options: str) -> str:
    """Add options to a lavfi source: `testsrc2=size=..`, `color=c=red:size=..`."""
    return f"{pattern}{':' if '=' in pattern else '='}{options}"


def run_ffmpeg(args: Sequence[str | bytes]) -> None:
    """Run ffmpeg quietly; raise with its stderr when it fails."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", *args]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.decode(errors='replace')}")


def make_video(
    path: Path,
    seconds: float,
    fps: float | str = 25,  # a number or an exact "30000/1001"
    size: tuple[int, int] = (320, 240),
    audio: bool = False,
    pattern: str = "testsrc2",
    codec: str = "libx264",
    extra: Sequence[str] = (),
) -> Path:
    """A video of a lavfi source (`pattern`, e.g. testsrc2, smptebars, color=c=red)."""
    width, height = size
    args = [
        "-f",
        "lavfi",
        "-i",
        lavfi_source(pattern, f"size={width}x{height}:rate={fps}:duration={seconds}"),
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    args += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac"] if audio else [])
    args += ["-c:v", codec, "-pix_fmt", "yuv420p", *extra, str(path)]
    run_ffmpeg(args)
    return Path(path)


def make_event_video(
    path: Path,
    events: Sequence[tuple[float, float]],
    total: float,
    fps: float = 25,
    size: tuple[int, int] = (320, 240),
    audio: bool = False,
    background: str = BACKGROUND_SOURCE,
    event: str = EVENT_SOURCE,
) -> Path:
    """A `total`-second video showing `event` during each (start, end) span, `background` elsewhere.

    The event source is overlaid on the background only inside the spans, so the change of
    look happens exactly at the span boundaries (to the frame).
    """
    width, height = size
    spec = f"size={width}x{height}:rate={fps}:duration={total}"
    enable = "+".join(f"between(t,{start},{end})" for start, end in events) or "0"
    graph = (
        f"{lavfi_source(background, spec)},noise=alls=12:allf=t[bg];"
        f"{lavfi_source(event, spec)}[ev];"
        f"[bg][ev]overlay=enable='{enable}',format=yuv420p[v]"
    )
    sine = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={total}"] if audio else []
    args = [*sine, "-filter_complex", graph, "-map", "[v]"]
    if audio:
        args += ["-map", "0:a", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-t", str(total), str(path)]
    run_ffmpeg(args)
    return Path(path)


def make_split_colour_video(
    path: Path, seconds: float, left: str = "red", right: str = "blue", rotation: int = 0
) -> Path:
    """A 320x240 video, left half one colour, right half another; `rotation` is written as
    display-matrix metadata (degrees counter-clockwise, ffmpeg's -display_rotation)."""
    plain = path.with_name(f"{path.stem}.plain{path.suffix}")
    graph = (
        f"color=c={left}:size=160x240:rate=25:duration={seconds}[l];"
        f"color=c={right}:size=160x240:rate=25:duration={seconds}[r];"
        "[l][r]hstack,format=yuv420p[v]"
    )
    run_ffmpeg(["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", str(plain)])
    if rotation == 0:
        plain.replace(path)
    else:
        run_ffmpeg(["-display_rotation", str(rotation), "-i", str(plain), "-c", "copy", str(path)])
        plain.unlink()
    return Path(path)


# --- damaged recordings -------------------------------------------------------------------

# A real soccer clip (6.2 s, 720x720 H.264 with B-frames, a key frame about every second).
REAL_SOCCER_CLIP = "fatgezim-portfolio/fatgezim-bela-soccer-winning-penalty.mp4"


def looped(source: Path, path: Path, seconds: float) -> Path:
    """`source`'s video played again and again for `seconds`, copied (not re-encoded)."""
    run_ffmpeg(
        ["-stream_loop", "-1", "-i", str(source), "-t", f"{seconds:g}"]
        + ["-map", "0:v:0", "-c", "copy", str(path)]
    )
    return Path(path)


def damaged_copy(video: Path, path: Path, size: int = 4096, at: float = 0.5, seed: int = 9) -> Path:
    """A copy of `video` with `size` bytes of noise written into the first key frame at or after
    `at` (a fraction) of the file.

    A key frame, because every decoder must decode it: noise in a non-reference picture that no
    sampled frame shows goes unseen (sampling skips it), and which picture a fixed fraction of the
    file lands in varies from one encoding to the next (x264's threads)."""
    data = bytearray(Path(video).read_bytes())
    start = int(len(data) * at)
    with av.open(str(video)) as container:
        keys = [
            packet.pos
            for packet in container.demux(video=0)
            if packet.is_keyframe and packet.pos is not None and packet.pos >= start
        ]
    if keys:
        start = keys[0] + 16  # past the sample's length prefix and NAL header
    data[start : start + size] = random.Random(seed).randbytes(size)
    Path(path).write_bytes(bytes(data))
    return Path(path)


def mid_gop_cut(video: Path, path: Path, at: float) -> Path:
    """An MPEG-TS copy of `video` from `at` seconds that starts on whatever frame is there,
    not on a key frame, as a recorder that starts mid-broadcast writes it (`-copyinkf`)."""
    run_ffmpeg(
        ["-i", str(video), "-ss", f"{at:g}", "-copyinkf"]
        + ["-map", "0:v:0", "-c", "copy", "-f", "mpegts", str(path)]
    )
    return Path(path)
