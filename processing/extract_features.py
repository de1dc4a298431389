"""SageMaker Processing job: backbone features for this instance's share of the frames.

Input (`--input`, default /opt/ml/processing/input): the JPEGs MediaConvert's frame capture
wrote (`<name>.NNNNNNN.jpg`), of which `ShardedByS3Key` gives this instance a subset, or a
folder with one video file (or the video file itself), which one instance handles whole.
Output (`--output`, default /opt/ml/processing/output): `features-<host>.npz` holding the
features with their frame indices and times; `score_windows.py` merges the shards.
The host comes from `--shard-name`, else `current_host` in /opt/ml/config/resourceconfig.json.

Checkpoints (`--checkpoint-uri`, an s3:// prefix or a folder): every `--checkpoint-every` frames
the job stores what it embedded there, keyed by frame number, and it starts by taking every frame
that is already there, whichever attempt or instance stored it. A retried job therefore resumes
instead of starting over. The prefix is read through the Storage interface, not as a
ProcessingInput (an input on an empty prefix would fail the job's first attempt); the pipeline
deletes it with the rest of the match's scratch data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from highlights.aws.frame_capture import captured_features, list_captured_frames, save_shard
from highlights.aws.s3 import storage_at
from highlights.backbones import BACKBONE_NAMES, BACKENDS, PRECISIONS, Backbone, load_backbone
from highlights.checkpoints import Checkpoints
from highlights.config import Config
from highlights.damage import check_damage
from highlights.errors import HighlightsError, InputError
from highlights.features import FeatureSequence, extract_features
from highlights.recipe import recipe_of
from highlights.video import VIDEO_SUFFIXES
from processing import fail

log = logging.getLogger("extract_features")

DEFAULT_INPUT = Path("/opt/ml/processing/input")
DEFAULT_OUTPUT = Path("/opt/ml/processing/output")
RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--capture-rate",
        type=float,
        default=defaults.sampling.rate,
        help="frames per second of the frame capture (or of sampling a video)",
    )
    parser.add_argument("--backbone", choices=BACKBONE_NAMES, default=defaults.backbone)
    parser.add_argument(
        "--weights", default=None, help="backbone weights file (default: the packaged weights)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=defaults.backbone_backend, help="runs the backbone"
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=defaults.backbone_precision, help="its numbers"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--shard-name", default=None, help="names the output file")
    parser.add_argument("--resource-config", type=Path, default=RESOURCE_CONFIG)
    parser.add_argument(
        "--checkpoint-uri",
        default=None,
        help="s3://bucket/prefix/ or a folder for progress that a retry resumes from",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=defaults.checkpoint_frames,
        help="frames between checkpoints",
    )
    parser.add_argument(
        "--max-damaged-share",
        type=float,
        default=defaults.decode.max_damaged_share,
        help="refuse a video with more of its sampled frames undecodable than this (0-1)",
    )
    args = parser.parse_args(argv)
    if args.capture_rate <= 0 or args.batch_size < 1 or args.checkpoint_every < 1:
        parser.error(
            "--capture-rate must be positive, --batch-size and --checkpoint-every at least 1"
        )
    return args


def shard_name(explicit: str | None, resource_config: Path) -> str:
    """`--shard-name`, else SageMaker's `current_host` (algo-1, algo-2, ...), else `local`."""
    if explicit:
        return explicit
    if not resource_config.exists():
        return "local"
    try:
        return str(json.loads(resource_config.read_text())["current_host"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{resource_config}: no current_host in it: {exc}") from None


def find_video(source: Path) -> Path | None:
    """The one video to process, if the input is a video rather than capture frames."""
    if source.is_file():
        return source
    videos = sorted(
        p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )
    if len(videos) > 1:
        raise InputError(f"{source}: holds {len(videos)} videos; give one video per job")
    return videos[0] if videos else None


def extract(args: argparse.Namespace) -> FeatureSequence | None:
    """This instance's features, or None when its shard holds no frames."""
    if not args.input.exists():
        raise InputError(f"{args.input}: input not found")
    frames = [] if args.input.is_file() else list_captured_frames(args.input)
    video = None if frames else find_video(args.input)
    if not frames and video is None:
        return None
    backbone = load_backbone(args.backbone, args.weights, args.backend, args.precision)
    checkpoints = checkpoints_at(args.checkpoint_uri, backbone, args.capture_rate)
    if video is not None:
        log.info("sampling %s at %g frames/s", video, args.capture_rate)
        sequence = extract_features(
            video,
            backbone,
            args.capture_rate,
            args.batch_size,
            checkpoints=checkpoints,
            checkpoint_every=args.checkpoint_every,
        )
        check_damage(sequence.damage, args.max_damaged_share, video)
        if sequence.damage:
            log.warning("%s: could not decode all of it: %s", video, sequence.damage.describe())
        return sequence
    log.info("%d captured frames, %d to %d", len(frames), frames[0].sequence, frames[-1].sequence)
    return captured_features(
        frames,
        backbone,
        args.capture_rate,
        args.batch_size,
        checkpoints=checkpoints,
        checkpoint_every=args.checkpoint_every,
    )


def checkpoints_at(uri: str | None, backbone: Backbone, rate: float) -> Checkpoints | None:
    if not uri:
        return None
    return Checkpoints(storage_at(uri), "", recipe_of(backbone, rate), backbone.feature_dim)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    try:
        name = shard_name(args.shard_name, args.resource_config)
        sequence = extract(args)
        if sequence is None:
            log.info("%s: no frames and no video in this shard; nothing to write", args.input)
            return 0
        path = save_shard(sequence, args.output / f"features-{name}.npz")
    except HighlightsError as exc:
        return fail("extract_features", exc)
    log.info("wrote %d frame features to %s", len(sequence), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
