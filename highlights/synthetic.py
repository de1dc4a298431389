"""Synthetic football-like video made with ffmpeg's lavfi sources, for the demo and the tests.

Two looks: open play (a wide green pitch with a ball crossing it) and a goal-mouth scene (a netted
goal filling the frame, the ball flying in). A "match" is open play with goal-mouth scenes at
known times, so detection can be checked against the truth.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from highlights.files import atomic_path
from highlights.video import ffmpeg_command, run_ffmpeg

EVENT_CLASS = "PenaltyKick"
BACKGROUND_CLASS = "OpenPlay"
SIZE = (320, 240)
FPS = 25


@dataclass(frozen=True)
class Event:
    start: float
    end: float


def open_play_filter(seed: int, seconds: float) -> str:
    rng = random.Random(seed)
    green = rng.choice(["0x2e8b3a", "0x338f3f", "0x2a7f35", "0x3a9444"])
    speed, offset, height = rng.randint(40, 120), rng.randint(0, 300), rng.randint(60, 180)
    width, h = SIZE
    return (
        f"color=c={green}:s={width}x{h}:r={FPS}:d={seconds},"
        f"drawbox=x=0:y={h // 2}:w={width}:h=2:color=white@0.8:t=fill,"
        f"drawbox=x='mod(t*{speed}+{offset},{width - 10})':y='{height}+30*sin(t*2)':"
        "w=8:h=8:color=white:t=fill,"
        f"noise=alls=10:allf=t+u:all_seed={seed}"
    )


def goal_mouth_filter(seed: int, seconds: float) -> str:
    rng = random.Random(seed)
    mesh = rng.randint(10, 18)
    post_x = rng.randint(20, 50)
    width, h = SIZE
    return (
        f"color=c=0x1f6b2c:s={width}x{h}:r={FPS}:d={seconds},"
        f"drawgrid=w={mesh}:h={mesh}:t=1:c=white@0.7,"
        f"drawbox=x={post_x}:y=30:w={width - 2 * post_x}:h=12:color=white:t=fill,"
        f"drawbox=x={post_x}:y=30:w=12:h={h - 30}:color=white:t=fill,"
        f"drawbox=x={width - post_x - 12}:y=30:w=12:h={h - 30}:color=white:t=fill,"
        f"drawbox=x='{width // 2}+100*sin(t*3+{seed})':y='{h - 40}-60*t/{seconds}':"
        "w=14:h=14:color=white:t=fill,"
        f"noise=alls=10:allf=t+u:all_seed={seed}"
    )


def encode_lavfi(lavfi_graph: str, out: Path, extra: Sequence[str] = ()) -> Path:
    """Render a lavfi filter graph to an H.264 file at `out` (written atomically)."""
    with atomic_path(out) as tmp:
        command = ffmpeg_command(
            "-f", "lavfi", "-i", lavfi_graph, *extra,
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(tmp),
        )  # fmt: skip
        run_ffmpeg(command, out, "render the synthetic video")
    return out


def make_clip(label: str, seed: int, seconds: float, out: Path) -> Path:
    """One labelled training clip of `seconds` length."""
    graphs = {EVENT_CLASS: goal_mouth_filter, BACKGROUND_CLASS: open_play_filter}
    return encode_lavfi(graphs[label](seed, seconds), out)


def make_dataset(root: Path, clips_per_class: int = 8, seconds: float = 4.0, seed: int = 0) -> Path:
    """A folder-per-class data set (UCF101 layout) of synthetic clips."""
    for label in (EVENT_CLASS, BACKGROUND_CLASS):
        for index in range(clips_per_class):
            path = root / label / f"v_{label}_g{index:02d}_c01.mp4"
            if not path.exists():
                make_clip(label, seed * 1000 + index, seconds, path)
    return root


def make_match(out: Path, duration: float, events: Sequence[Event], seed: int = 99) -> Path:
    """Open play for `duration` seconds with a goal-mouth scene during each event."""
    enable = "+".join(f"between(t,{e.start},{e.end})" for e in events) or "0"
    graph = (
        f"{open_play_filter(seed, duration)}[pitch];"
        f"{goal_mouth_filter(seed + 1, duration)}[goal];"
        f"[pitch][goal]overlay=enable='{enable}'"
    )
    return encode_lavfi(graph, out)
