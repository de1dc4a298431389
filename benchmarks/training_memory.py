"""How much memory does `highlights train` need beyond the features it trains on?

Makes a folder-per-class data set of placeholder clip files whose features (Lite0-sized,
1280 values per frame, drawn around one centre per class) are written straight into the feature
cache, so training reads them from the cache and decodes nothing. Then runs `train()` in a child
process and prints, measured in that one run: the features' size, the child's peak RSS before
and after training, the growth and its ratio to the features' size. It also prints a digest of the
training report (history and evaluation), so two versions of the code can be shown to train the
same model from the same seed.

    .venv/bin/python benchmarks/training_memory.py --clips 400 --frames 250
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from highlights.backbones import packaged_recipe  # noqa: E402
from highlights.features import FeatureCache, FeatureSequence, save_features  # noqa: E402
from highlights.files import file_sha256  # noqa: E402

BACKBONE, FEATURE_DIM, RATE = "efficientnet_lite0", 1280, 5.0
RECIPE = packaged_recipe(BACKBONE, RATE)  # what `train` with the default backbone looks up

# The child: everything imported and the backbone loaded before the baseline is taken.
CHILD = """
import hashlib, json, resource, sys
from pathlib import Path
from highlights.backbones import load_backbone
from highlights.config import Config
from highlights.training import train

root, cache, out, epochs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
load_backbone("efficientnet_lite0")
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = Config(cache_dir=cache).replace(**{"train.epochs": epochs})
report = train(root, out, config)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
facts = report.to_dict()
facts.pop("seconds")
digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "report_digest": digest,
                  "windows": report.train_windows + report.validation_windows,
                  "window_accuracy": report.windows.accuracy}))
"""


def make_dataset(root: Path, cache: Path, clips: int, frames: int, seed: int = 0) -> int:
    """`clips` placeholder clips in two classes with cached features; returns the feature bytes."""
    rng = np.random.default_rng(seed)
    store = FeatureCache(cache)
    # centres close enough together that the classes overlap: a model with something to learn
    centres = 0.02 * rng.normal(size=(2, FEATURE_DIM)).astype(np.float32)
    total = 0
    for i in range(clips):
        label = i % 2
        clip = root / f"class{label}" / f"clip_{i:05d}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        clip.write_bytes(f"placeholder clip {i}\n".encode())  # unique content, unique cache key
        values = centres[label] + rng.normal(size=(frames, FEATURE_DIM)).astype(np.float32)
        sequence = FeatureSequence(np.arange(frames) / RATE, values, BACKBONE, RATE, recipe=RECIPE)
        save_features(sequence, store.path_for(file_sha256(clip), RECIPE))
        total += values.nbytes
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--frames", type=int, default=250, help="frames per clip (5 per second)")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        feature_bytes = make_dataset(tmp / "dataset", tmp / "cache", args.clips, args.frames)
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp / "dataset"), str(tmp / "cache"),
             str(tmp / "model"), str(args.epochs)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if child.returncode != 0:
            sys.exit(f"training failed:\n{child.stderr[-3000:]}")
        measured = json.loads(child.stdout.strip().splitlines()[-1])
    mib = 1024 * 1024
    growth = (measured["peak_kib"] - measured["baseline_kib"]) * 1024
    print(f"clips: {args.clips} x {args.frames} frames, {measured['windows']} windows")
    print(f"features: {feature_bytes / mib:.0f} MiB")
    print(f"peak RSS before training (TF, backbone): {measured['baseline_kib'] / 1024:.0f} MiB")
    print(f"peak RSS after training: {measured['peak_kib'] / 1024:.0f} MiB")
    print(f"growth: {growth / mib:.0f} MiB = {growth / feature_bytes:.2f} x the features")
    print(f"held-out window accuracy: {measured['window_accuracy']:.3f}")
    print(f"report digest (same seed, same model): {measured['report_digest']}")


if __name__ == "__main__":
    main()
