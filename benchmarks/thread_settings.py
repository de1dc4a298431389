"""Which thread counts extract features fastest on this machine? (decoder x OpenVINO threads)

Extracts the default backbone's features from a 60 s 720p25 H.264 video (B-frames, as
`detect_speed.py` makes it) once per setting: FFmpeg's decoding threads (on the decoding thread)
and OpenVINO's inference threads (0: one per core it finds). Prints the wall time and frames/s of
each, from one run, in the order run, then the same order again (so drift in the machine's load
shows). `highlights.config` holds the winner: DECODER_THREADS, OPENVINO_THREADS.

    .venv/bin/python benchmarks/thread_settings.py [--seconds 60] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from detect_speed import VIDEOS, make_video

from highlights.backbones import load_backbone
from highlights.backbones.openvino_backend import OpenVinoBackbone
from highlights.features import features_from_frames
from highlights.sampling import sample_frames
from highlights.video import probe

SETTINGS = [(1, 0), (1, 1), (2, 0), (2, 1), (0, 0)]  # (decoder threads, OpenVINO threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        video = make_video(work / f"720p25-{args.seconds:g}s.mp4", *VIDEOS["720p25"], args.seconds)
        info = probe(video)
        cached = load_backbone("efficientnet_lite0", cache_dir=work / "cache")
        print(f"{os.cpu_count()} cores; load {Path('/proc/loadavg').read_text().split()[:3]}")
        print(f"{'decoder':>8} {'openvino':>8} {'seconds':>8} {'frames/s':>9}")
        for decoder, inference in SETTINGS + SETTINGS:
            backbone = OpenVinoBackbone(
                cached.network,
                name=cached.name,
                weights_sha256=cached.weights_sha256,
                normalisation=cached.normalisation,
                geometry=cached.geometry,
                threads=inference,
            )
            start = time.perf_counter()
            with sample_frames(video, 5.0, backbone.geometry, info, threads=decoder) as frames:
                sequence = features_from_frames(frames, backbone, 5.0, batch_size=32)
            seconds = time.perf_counter() - start
            print(f"{decoder:>8} {inference:>8} {seconds:>8.2f} {len(sequence) / seconds:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
