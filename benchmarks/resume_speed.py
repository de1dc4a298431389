"""Time saved by resuming: `highlights detect` killed at 80 % of its frames, then run again.

Prints, from one run: a clean detect's time; the time a detect took until it was killed
(SIGKILL, once its checkpoints cover 80 % of the sampled frames); the re-run's time, which
resumes from those checkpoints; and the time saved against running clean again. The video is a
synthetic 320x240 match; checkpoints are taken every `--every` frames (the product's default is
3,000, about 10 minutes of a match at 5 frames/s: scaled down with the video).

    .venv/bin/python benchmarks/resume_speed.py [--minutes 4] [--every 100] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from detect_speed import detect, train_ours

from highlights import synthetic
from highlights.config import Config


def killed_at(video: Path, model: Path, out: Path, config: Path, frames: int) -> float:
    """Seconds until `highlights detect` had checkpoints for 80 % of `frames` and was killed."""
    cache = out.with_name(out.name + "-cache")
    command = [
        sys.executable, "-m", "highlights.cli", "detect", str(video), "--model", str(model),
        "--target", synthetic.EVENT_CLASS, "--out", str(out), "--cache-dir", str(cache),
        "--config", str(config), "--quiet", "--force",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        # parts hold whole batches (`frames-<first>-<last>-<count>.npz`), not exactly `every`
        parts = cache.glob("*/*.checkpoints/frames-*.npz")
        done = sum(int(part.stem.rsplit("-", 1)[1]) for part in parts)
        if done >= 0.8 * frames:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return time.perf_counter() - start
        time.sleep(0.2)
    raise SystemExit("detect ended before it reached 80 % of its frames; use a longer video")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--every", type=int, default=100, help="frames between checkpoints")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        model = train_ours(work)
        video = work / f"match-{args.minutes:g}min.mp4"
        if not video.exists():
            synthetic.encode_lavfi(f"testsrc2=s=320x240:r=25:d={args.minutes * 60}", video)
        config = work / "resume.toml"
        config.write_text(f"checkpoint_frames = {args.every}\n")
        runs = work / "runs"
        shutil.rmtree(runs, ignore_errors=True)  # a kept feature cache would make detect instant
        frames = round(args.minutes * 60 * Config().sampling.rate)
        clean = detect(video, model, runs / "clean", config)
        until_kill = killed_at(video, model, runs / "killed", config, frames)
        resumed = detect(video, model, runs / "killed", config)
    rows = [
        ("video", f"{args.minutes:g} min, {frames} sampled frames, a checkpoint every "
                  f"{args.every}"),  # fmt: skip
        ("clean detect", f"{clean.seconds:.1f} s"),
        ("killed at 80 % after", f"{until_kill:.1f} s"),
        ("re-run (resumes)", f"{resumed.seconds:.1f} s"),
    ]
    saved = clean.seconds - resumed.seconds
    rows.append(("saved against a clean re-run", f"{saved:.1f} s ({saved / clean.seconds:.0%})"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
