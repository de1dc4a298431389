"""Peak memory of `highlights detect` on long matches: flat in the video's length?

Generates synthetic matches (a 320x240 test pattern at 25 fps, H.264: low resolution so that
making a 90-minute file takes minutes; what grows with length is the number of sampled frames,
not their size) and runs `highlights detect` on each as a process of its own, printing its wall
time and peak RSS (wait4's ru_maxrss: the detect process, or its largest ffmpeg child).

    .venv/bin/python benchmarks/detect_memory.py --minutes 10 90 [--work DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from detect_speed import detect, train_ours, warm_up

from highlights import synthetic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 90.0])
    parser.add_argument("--work", type=Path, help="keep videos and the model here between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        model = train_ours(work)
        cache = work / "runs" / "cache"
        first = warm_up(work, model, cache)
        print(f"first detect (converts the model, 5 s clip): peak RSS {first.peak_mib:.0f} MiB")
        print(f"{'match':>10}  {'detect':>9}  {'peak RSS':>9}", flush=True)
        for minutes in args.minutes:
            video = work / f"match-{minutes:g}min.mp4"
            if not video.exists():
                synthetic.encode_lavfi(f"testsrc2=s=320x240:r=25:d={minutes * 60}", video)
            result = detect(video, model, work / "runs" / f"{minutes:g}min", cache=cache)
            print(f"{minutes:>6g} min  {result.seconds:>7.0f} s  {result.peak_mib:>5.0f} MiB",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
