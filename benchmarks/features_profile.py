"""Where feature extraction spends its time: decoding (on its own thread) against the backbone.

Runs `extract_features` on one video under cProfile (the calling thread: waiting for frames,
the backbone, the rest) and prints, from this one run: wall time, time the backbone took, time
spent waiting for the decoding thread (what decoding did not hide behind the backbone), pictures
decoded against pictures in the video, and the top functions by own time.

    .venv/bin/python benchmarks/features_profile.py VIDEO [--backend keras]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from highlights import sampling  # noqa: E402
from highlights.backbones import load_backbone  # noqa: E402
from highlights.config import Config  # noqa: E402
from highlights.features import extract_features  # noqa: E402
from highlights.video import probe  # noqa: E402


def own_time(stats: pstats.Stats, name: str) -> float:
    """Cumulative seconds of the functions called `name` (summed over files)."""
    return sum(row[3] for (_, _, func), row in stats.stats.items() if func == name)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--backend", choices=("openvino", "keras"), help="default: configured")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    config = Config()
    info = probe(args.video)

    start = time.perf_counter()
    backbone = load_backbone(config.backbone, *((None, args.backend) if args.backend else ()))
    load_s = time.perf_counter() - start
    decoded = []
    original = sampling._Decoder.frames

    def counted(self):  # noqa: ANN001, ANN202 - wraps the decoder to read its picture count
        yield from original(self)
        decoded.append(getattr(self, "decoded_pictures", "?"))

    sampling._Decoder.frames = counted  # type: ignore[method-assign]
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    sequence = extract_features(args.video, backbone, config.sampling.rate)
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile)
    embed_s = own_time(stats, "embed")
    wait_s = own_time(stats, "get")  # queue.Queue.get: the caller waiting for decoded frames
    rows = [
        ("video", f"{args.video.name}: {info.width}x{info.height}, {info.duration:.0f} s"),
        (f"backbone load ({getattr(backbone, 'backend', 'keras')})", f"{load_s:.1f} s"),
        ("extract_features", f"{wall:.1f} s for {len(sequence)} frames"),
        ("  in the backbone", f"{embed_s:.1f} s = {len(sequence) / embed_s:.0f} frames/s"),
        ("  waiting for decoded frames", f"{wait_s:.1f} s ({wait_s / wall:.0%} of the time)"),
        ("pictures decoded", f"{decoded[0]} of about "
                             f"{round(info.duration * info.fps)}"),  # fmt: skip
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
