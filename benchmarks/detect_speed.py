"""How fast is `highlights detect` compared with just decoding the video?

Generates a 720p, 30 fps test video of the given length, then prints (all measured in this one run):
decode-only time (ffmpeg to null), decode + scale at the sampling rate through our frame pipe,
backbone frames/s, end-to-end detect time, their ratios, and peak memory.

    .venv/bin/python benchmarks/detect_speed.py --seconds 120
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imageio_ffmpeg  # noqa: E402
import numpy as np  # noqa: E402

from highlights import synthetic  # noqa: E402
from highlights.backbones import load_backbone  # noqa: E402
from highlights.config import Config  # noqa: E402
from highlights.pipeline import run_detect  # noqa: E402
from highlights.sampling import sample_frames  # noqa: E402
from highlights.training import train  # noqa: E402
from highlights.video import probe  # noqa: E402


def make_720p(path: Path, seconds: float) -> Path:
    return synthetic.encode_lavfi(f"testsrc2=s=1280x720:r=30:d={seconds}", path)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def decode_only(video: Path) -> None:
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(video),
            "-f",
            "null",
            "-",
        ],
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="length of the generated 720p video"
    )
    parser.add_argument(
        "--model", type=Path, help="a trained model folder (default: train a tiny one)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video = make_720p(tmp / "match720p.mp4", args.seconds)
        info = probe(video)
        config = Config(cache_dir=tmp / "cache")
        model = args.model
        if model is None:
            dataset = synthetic.make_dataset(tmp / "dataset", clips_per_class=4, seconds=3.0)
            model = tmp / "model"
            train(dataset, model, config.replace(**{"train.epochs": 3}))
            config = Config(cache_dir=tmp / "cache-detect")

        backbone = load_backbone(config.backbone)
        frames_total = int(info.duration * info.fps)
        decode_s, _ = timed(decode_only, video)
        sampled = 0

        def pipe() -> None:
            nonlocal sampled
            for _ in sample_frames(video, config.sampling.rate, backbone.geometry, info):
                sampled += 1

        pipe_s, _ = timed(pipe)
        batch = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
        backbone.embed(batch)
        embed_s, _ = timed(lambda: [backbone.embed(batch) for _ in range(4)])
        detect_s, result = timed(
            run_detect, video, model, tmp / "out", config, [synthetic.EVENT_CLASS], force=True
        )
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    rows = [
        (
            "video",
            f"{info.width}x{info.height} {info.fps:.0f} fps, {info.duration:.1f} s, "
            f"{frames_total} frames",
        ),
        (
            "decode only (ffmpeg -> null)",
            f"{decode_s:.2f} s = {frames_total / decode_s:.0f} frames/s",
        ),
        (
            f"decode + scale at {config.sampling.rate:g} fps (our pipe)",
            f"{pipe_s:.2f} s for {sampled} frames",
        ),
        ("backbone (Lite0, batch 32)", f"{128 / embed_s:.1f} frames/s"),
        ("end-to-end detect", f"{detect_s:.2f} s, {len(result.segments)} highlight(s)"),
        ("detect / decode-only", f"{detect_s / decode_s:.2f}x"),
        ("video seconds per detect second", f"{info.duration / detect_s:.1f}x real time"),
        (
            "peak memory (this process / largest child, incl. the encode)",
            f"{peak_self:.0f} MiB / {peak_children:.0f} MiB",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
