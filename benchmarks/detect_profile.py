"""Where does `highlights detect` spend its time? py-spy samples it on the 3-minute 720p25 video.

Makes the same 720p25 video and tiny model as `detect_speed.py` (in `--work`, reused), runs
`highlights detect` under `py-spy record` (sampling profiler; the process is not slowed), keeps the
raw stacks (`profile.txt`, flame-graph input) and prints the functions seen most: by total (on the
stack) and by self (running themselves), as shares of the samples of threads that were running.
With the default `--cache-dir`, a second run shows detect with the converted models cached.

    .venv/bin/python benchmarks/detect_profile.py [--seconds 180] [--work DIR] [--top 15]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from detect_speed import VIDEOS, make_video, train_ours

from highlights import synthetic

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def profile(video: Path, model: Path, out: Path, cache: Path, stacks: Path) -> float:
    """Run detect under py-spy, writing the raw stacks to `stacks`; the wall time."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    command = [
        py_spy, "record", "--format", "raw", "--threads", "--rate", "50", "--output", str(stacks),
        "--", sys.executable, "-m", "highlights.cli", "detect", str(video), "--model", str(model),
        "--target", synthetic.EVENT_CLASS, "--out", str(out), "--cache-dir", str(cache),
        "--quiet", "--force",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    where = match["file"]
    for marker in ("site-packages/", "/highlights/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{match['function']} ({Path(where).as_posix()})"


def summary(stacks: Path, top: int) -> list[str]:
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for line in stacks.read_text().splitlines():
        text, _, count_text = line.rpartition(" ")
        if not text:
            continue
        count = int(count_text)
        thread, *frames = text.split(";")
        samples += count
        threads[thread] += count
        names = [_short(f) for f in frames]
        for name in set(names):
            total[name] += count
        if names:
            own[names[-1]] += count
    lines = [f"{samples} samples of running threads at 50/s"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in threads.most_common()]
    for title, counter in (("total (on the stack)", total), ("self", own)):
        lines.append(f"top {top} by {title}:")
        lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in counter.most_common(top)]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--work", type=Path, help="keep the video, model and profile here")
    parser.add_argument("--cache-dir", type=Path, help="detect's cache (default: fresh, cold)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        video = make_video(work / f"720p25-{args.seconds:g}s.mp4", *VIDEOS["720p25"], args.seconds)
        model = train_ours(work)
        cache = args.cache_dir or Path(tempfile.mkdtemp(dir=work, prefix="profile-cache-"))
        for entry in cache.glob("??"):  # features: measured again, never read from the cache
            shutil.rmtree(entry)
        stacks = work / "profile.txt"
        seconds = profile(video, model, work / "profile-out", cache, stacks)
        print(f"detect under py-spy: {seconds:.1f} s; raw stacks in {stacks}")
        print("\n".join(summary(stacks, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
