"""How fast is `highlights detect` compared with just decoding the video? (`make bench`)

Generates 3-minute H.264 videos (720p25 at 4 Mbit/s and 1080p25 at 8 Mbit/s, B-frames on) and a
60 s 720p25 one, trains a tiny model on synthetic clips, then prints for each video, all measured
in this one run: decode-only time (ffmpeg to null, every frame), end-to-end `highlights detect`
time (a process of its own: start-up, features, scores, clips, reel, report), their ratio, and the
detect process's peak RSS; features are never cached between runs, the converted OpenVINO models
are (the first detect with the model, which converts them, is timed on its own). Then the
backbone's frames/s per inference backend, and the seed project's configuration (InceptionV3 at
299 px on 20 frames/s, Keras) against our default on the 60 s file. The seed's InceptionV3 runs
on random weights (nothing downloads): the time is the same as with the ImageNet weights.

    .venv/bin/python benchmarks/detect_speed.py [--seconds 180] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imageio_ffmpeg  # noqa: E402
import numpy as np  # noqa: E402

from highlights import synthetic  # noqa: E402
from highlights.backbones import load_backbone  # noqa: E402
from highlights.config import Config  # noqa: E402
from highlights.training import train  # noqa: E402
from highlights.video import probe  # noqa: E402

VIDEOS = {  # name: (size, bit rate)
    "720p25": ("1280x720", "4M"),
    "1080p25": ("1920x1080", "8M"),
}
SEED_RATE = 20.0


@dataclass(frozen=True)
class Detect:
    seconds: float
    peak_mib: float
    highlights: int


def make_video(path: Path, size: str, bitrate: str, seconds: float) -> Path:
    """A moving test pattern as broadcast-like H.264: 25 fps, 3 B-frames, a key frame every 2 s."""
    if path.exists():
        return path
    return synthetic.encode_lavfi(
        f"testsrc2=s={size}:r=25:d={seconds}",
        path,
        extra=("-b:v", bitrate, "-bf", "3", "-g", "50"),
    )


def decode_only(video: Path) -> float:
    """Seconds for ffmpeg to decode every frame to nothing (its default threads)."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error"]
    start = time.perf_counter()
    subprocess.run([*command, "-i", str(video), "-f", "null", "-"], check=True)
    return time.perf_counter() - start


def detect(
    video: Path,
    model: Path,
    out: Path,
    config_file: Path | None = None,
    cache: Path | None = None,
) -> Detect:
    """Run `highlights detect` as its own process; its wall time and peak RSS (from wait4).

    `cache`: its cache folder (default: one of its own); features are never read from it, but
    the converted OpenVINO models kept there are."""
    cache = cache or out.with_name(out.name + "-cache")
    for entry in cache.glob("??"):  # feature entries (by the video's hash): measured again
        shutil.rmtree(entry)
    command = [
        sys.executable, "-m", "highlights.cli", "detect", str(video),
        "--model", str(model), "--target", synthetic.EVENT_CLASS,
        "--out", str(out), "--cache-dir", str(cache),
        "--quiet", "--force",
    ]  # fmt: skip
    if config_file is not None:
        command += ["--config", str(config_file)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = process.stdout.read().decode() if process.stdout else ""
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"detect failed ({process.returncode}):\n{stdout}\n{stderr}")
    count = int(stdout.split(" highlight", 1)[0]) if " highlight" in stdout else -1
    return Detect(seconds, usage.ru_maxrss / 1024, count)


def warm_up(work: Path, model: Path, cache: Path) -> Detect:
    """The first detect with `model` and `cache`: it converts the networks to OpenVINO and caches
    them (once per model and install), on a 5 s clip."""
    clip = make_video(work / "720p25-5s.mp4", *VIDEOS["720p25"], 5.0)
    return detect(clip, model, work / "runs" / "first", cache=cache)


def backbone_rate(config: Config, batches: int = 6) -> float:
    """Frames/s of the backbone on batches of `config.batch_size`, after one warm-up batch."""
    backbone = load_backbone(
        config.backbone, config.backbone_weights, config.backbone_backend, config.backbone_precision
    )
    crop = backbone.geometry.crop
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (config.batch_size, crop, crop, 3), dtype=np.uint8)
    backbone.embed(batch)
    start = time.perf_counter()
    for _ in range(batches):
        backbone.embed(batch)
    return batches * len(batch) / (time.perf_counter() - start)


def train_ours(work: Path) -> Path:
    """A tiny model of our default settings, trained on synthetic clips (kept in `work`)."""
    dataset = synthetic.make_dataset(work / "dataset", clips_per_class=3, seconds=3.0)
    ours = work / "model"
    if not (ours / "manifest.json").exists():
        train(dataset, ours, Config(cache_dir=work / "train-cache").replace(**{"train.epochs": 3}))
    return ours


def train_models(work: Path) -> tuple[Path, Path, Path]:
    """Our default model, and the seed's (InceptionV3, 20 frames/s) with its config file."""
    ours = train_ours(work)
    dataset = work / "dataset"
    from highlights.backbones.inception import build_model

    weights = work / "inception-random.weights.h5"
    if not weights.exists():
        build_model().save_weights(weights)
    seed_config = work / "seed.toml"
    seed_config.write_text(
        f'backbone = "inception_v3"\nbackbone_weights = "{weights}"\nbackbone_backend = "keras"\n'
    )
    seed = work / "seed-model"
    if not (seed / "manifest.json").exists():
        config = Config(
            backbone="inception_v3",
            backbone_weights=weights,
            backbone_backend="keras",  # the seed had only Keras
            cache_dir=work / "train-cache",
        )
        train(dataset, seed, config.replace(**{"train.epochs": 2, "sampling.rate": SEED_RATE}))
    return ours, seed, seed_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the main videos")
    parser.add_argument(
        "--seed-seconds", type=float, default=60.0, help="length of the seed comparison video"
    )
    parser.add_argument("--work", type=Path, help="keep videos and models here between runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        print("preparing videos and models ...", file=sys.stderr)
        videos = {
            name: make_video(work / f"{name}-{args.seconds:g}s.mp4", size, rate, args.seconds)
            for name, (size, rate) in VIDEOS.items()
        }
        short = make_video(work / f"720p25-{args.seed_seconds:g}s.mp4", *VIDEOS["720p25"],
                           args.seed_seconds)  # fmt: skip
        ours, seed, seed_config = train_models(work)
        runs = work / "runs"
        cache = runs / "cache"
        shutil.rmtree(cache / "openvino", ignore_errors=True)

        print("measuring ...", file=sys.stderr)
        first = warm_up(work, ours, cache)
        rows: list[tuple[str, str]] = [
            ("first detect with a new model (converts, caches), 5 s clip",
             f"{first.seconds:.1f} s, peak RSS {first.peak_mib:.0f} MiB"),
        ]  # fmt: skip
        for name, video in videos.items():
            info = probe(video)
            decode_s = decode_only(video)
            result = detect(video, ours, runs / f"{name}-ours", cache=cache)
            rows += [
                (f"{name}", f"{info.width}x{info.height}, {info.duration:.0f} s, "
                            f"{round(info.duration * info.fps)} frames"),  # fmt: skip
                ("  decode only (ffmpeg -> null)", f"{decode_s:.1f} s"),
                ("  detect (own process, end to end)",
                 f"{result.seconds:.1f} s, {result.highlights} highlight(s)"),  # fmt: skip
                ("  detect / decode-only", f"{result.seconds / decode_s:.2f}x"),
                ("  detect peak RSS", f"{result.peak_mib:.0f} MiB"),
            ]
        config = Config()
        for backend in ("openvino", "keras"):
            rate = backbone_rate(config.replace(backbone_backend=backend))
            rows.append((f"backbone {config.backbone} on {backend} (batch {config.batch_size})",
                         f"{rate:.0f} frames/s"))  # fmt: skip
        seed_result = detect(short, seed, runs / "seed", seed_config)
        ours_result = detect(short, ours, runs / "short-ours", cache=cache)
        rows += [
            (f"seed configuration, {args.seed_seconds:g} s 720p25",
             f"{seed_result.seconds:.1f} s (InceptionV3 299 px, {SEED_RATE:g} frames/s, Keras)"),
            ("  our default, same file", f"{ours_result.seconds:.1f} s"),
            ("  speed-up over the seed", f"{seed_result.seconds / ours_result.seconds:.1f}x"),
        ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
