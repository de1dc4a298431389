"""SageMaker Processing job: merge the feature shards, score every window, record the results.

The shards (`features-<host>.npz` under `--features`) arrive in no particular order; they are
merged by frame time. Windows are scored by the SageMaker endpoint (`--endpoint`, batched
`invoke_endpoint` calls) or by the model in this process (`--model DIR`, a model folder or one
holding SageMaker's `model.tar.gz`). One DynamoDB item per window goes to `--table` (the same
records the local SQLite store holds); `segments.json` (segments and every window's scores)
goes to `--output`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from highlights.aws.dynamodb import DynamoDBResults
from highlights.aws.frame_capture import load_shards
from highlights.aws.serving import (
    CONTENT_TYPES,
    DEFAULT_MAX_BYTES,
    NPY,
    encode_windows,
    read_prediction,
    recipe_attribute,
)
from highlights.config import Config, Decisions, WindowConfig
from highlights.decisions import decide
from highlights.errors import HighlightsError, InputError, ModelError
from highlights.features import FeatureSequence
from highlights.recipe import FeatureRecipe
from highlights.windows import WindowScores, score_sequence
from processing import fail

log = logging.getLogger("score_windows")

DEFAULT_FEATURES = Path("/opt/ml/processing/input/features")
DEFAULT_OUTPUT = Path("/opt/ml/processing/output")
MODEL_ARCHIVE = "model.tar.gz"
SEGMENTS_FILE = "segments.json"  # every window's scores are in it too


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=DEFAULT_FEATURES)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model folder (or one holding model.tar.gz)")
    source.add_argument("--endpoint", help="SageMaker endpoint name")
    parser.add_argument("--match-id", required=True)
    parser.add_argument("--table", help="DynamoDB table for one item per window")
    parser.add_argument("--targets", required=True, help="comma-separated target classes")
    # Decision settings: each one given overrides the model's calibrated one (as in detect).
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--low-threshold", type=float)
    parser.add_argument("--no-hysteresis", action="store_true")
    parser.add_argument("--buffer", type=float)
    parser.add_argument("--min-length", type=float)
    parser.add_argument("--merge-gap", type=float)
    parser.add_argument(
        "--window-length",
        type=float,
        default=defaults.window.length,
        help="seconds (with --endpoint; a local --model brings its own)",
    )
    parser.add_argument("--window-stride", type=float, default=defaults.window.stride)
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="video length in seconds (default: the end of the last frame)",
    )
    parser.add_argument("--video-name", default=None, help="for segments.json (default: match id)")
    parser.add_argument("--region", default=None)
    parser.add_argument(
        "--content-type", choices=CONTENT_TYPES, default=NPY, help="request format for the endpoint"
    )
    parser.add_argument(
        "--endpoint-batch",
        type=int,
        default=64,
        help="windows per endpoint request (fewer if a request would be too big)",
    )
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_BYTES)
    return parser.parse_args(argv)


def targets_of(text: str) -> list[str]:
    targets = [name.strip() for name in text.split(",") if name.strip()]
    if not targets:
        raise InputError("--targets: give at least one class name")
    return targets


# --- scoring with the endpoint -----------------------------------------------------------------


class EndpointScorer:
    """Scores windows with a SageMaker endpoint, splitting requests to stay under a byte limit.

    Each request states the features' recipe, so an endpoint serving a model of another recipe
    refuses them.
    """

    def __init__(
        self,
        client: Any,
        endpoint: str,
        recipe: FeatureRecipe,
        content_type: str = NPY,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._recipe = recipe
        self._content_type = content_type
        self._max_bytes = max_bytes
        self.classes: tuple[str, ...] | None = None
        self.decisions: dict[str, Any] | None = None  # the model's calibrated settings
        self.requests = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        body = encode_windows(batch, self._content_type)
        if len(body) > self._max_bytes and len(batch) > 1:
            half = len(batch) // 2
            return np.concatenate([self.predict(batch[:half]), self.predict(batch[half:])])
        if len(body) > self._max_bytes:
            raise InputError(
                f"one window encodes to {len(body)} bytes, over the {self._max_bytes}-byte "
                "request limit; use --content-type application/x-npy or raise the limit"
            )
        return self._invoke(body, len(batch))

    def _invoke(self, body: bytes, count: int) -> np.ndarray:
        response = self._client.invoke_endpoint(
            EndpointName=self._endpoint,
            ContentType=self._content_type,
            Accept="application/json",
            CustomAttributes=recipe_attribute(self._recipe),
            Body=body,
        )
        self.requests += 1
        classes, probabilities, decisions = read_prediction(response["Body"].read())
        if self.classes is not None and classes != self.classes:
            raise ModelError(f"endpoint {self._endpoint}: answered with classes that changed")
        if self.decisions is not None and decisions != self.decisions:
            raise ModelError(
                f"endpoint {self._endpoint}: answered with decision settings that changed "
                "(was the model replaced during the job?)"
            )
        if len(probabilities) != count:
            raise ModelError(
                f"endpoint {self._endpoint}: sent {count} windows, got {len(probabilities)} rows"
            )
        self.classes, self.decisions = classes, decisions
        return probabilities


# --- scoring in this process -------------------------------------------------------------------


@contextmanager
def model_folder(path: Path) -> Iterator[Path]:
    """A model folder as given, or SageMaker's `model.tar.gz` in it unpacked to a temp folder."""
    archive = path / MODEL_ARCHIVE if path.is_dir() else path
    if path.is_dir() and not archive.exists():
        yield path
        return
    if not archive.is_file():
        raise ModelError(f"{path}: model folder not found")
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        try:
            with tarfile.open(archive) as tar:
                extract_data(tar, Path(tmp))
        except (tarfile.TarError, OSError) as exc:
            raise ModelError(f"{archive}: cannot unpack the model archive: {exc}") from None
        yield Path(tmp)


def extract_data(tar: tarfile.TarFile, folder: Path) -> None:
    """Unpack with tarfile's "data" filter. Pythons before 3.11.4 lack it (Debian 12's python3
    is 3.11.2), so there every member is held to the same rules first: regular files and folders
    only, each inside `folder`, no special mode bits, owned by whoever unpacks."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    root = folder.resolve()
    members = tar.getmembers()
    for member in members:
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"{member.name}: only files and folders may be unpacked")
        if member.name.startswith("/") or not target.is_relative_to(root):
            raise tarfile.TarError(f"{member.name}: lies outside the archive's folder")
        member.mode &= 0o755
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    tar.extractall(folder, members=members)  # noqa: S202 - every member checked above


def score_with_model(
    sequence: FeatureSequence, model_dir: Path, features: Path
) -> tuple[WindowScores, Decisions]:
    """The windows' scores, and the model's calibrated decision settings."""
    # TensorFlow is loaded only on this path; scoring with an endpoint does without it.
    from highlights.model import SequenceModel

    with model_folder(model_dir) as folder:
        model = SequenceModel.load(folder)
    manifest = model.manifest
    manifest.check_features(sequence.recipe, f"{features} (for the model {model_dir})")
    decisions = Decisions.from_dict(manifest.decisions.get("classes", {}), source=str(model_dir))
    return score_sequence(sequence, manifest.window_config(), model), decisions


# --- the job -----------------------------------------------------------------------------------


def decision_config(args: argparse.Namespace, decisions: Decisions) -> Config:
    """The settings the job decides with: the model's calibrated ones (from the model folder or
    from the endpoint's answers) with those given on the command line on top, exactly as
    `highlights detect` does."""
    config = Config(decisions=decisions).replace(
        **{
            "segments.threshold": args.threshold,
            "segments.low_threshold": args.low_threshold,
            "segments.buffer": args.buffer,
            "segments.min_length": args.min_length,
            "segments.merge_gap": args.merge_gap,
        }
    )
    return config.without_hysteresis() if args.no_hysteresis else config


def run(args: argparse.Namespace, clients: Any) -> Path:
    """Do the job; `clients(service)` makes boto3 clients. Returns the segments.json path."""
    targets = targets_of(args.targets)
    sequence = load_shards(args.features)
    log.info("%d frames from %s", len(sequence), args.features)
    if args.endpoint:
        window = WindowConfig(args.window_length, args.window_stride)
        if sequence.recipe is None:
            raise ModelError(f"{args.features}: features record no recipe; extract them again")
        scorer = EndpointScorer(
            clients("sagemaker-runtime"),
            args.endpoint,
            sequence.recipe,
            args.content_type,
            args.max_request_bytes,
        )
        scores = score_sequence(sequence, window, scorer, args.endpoint_batch)
        decisions = Decisions.from_dict(scorer.decisions or {}, f"endpoint {args.endpoint}")
        model_info = {"endpoint": args.endpoint}
        log.info("%d windows scored in %d endpoint requests", len(scores), scorer.requests)
    else:
        scores, decisions = score_with_model(sequence, args.model, args.features)
        model_info = {"path": str(args.model)}
    missing = [name for name in targets if name not in scores.classes]
    if missing:
        raise InputError(
            f"--targets: {', '.join(missing)} not among the model's classes "
            f"({', '.join(scores.classes)})"
        )
    duration = args.duration if args.duration is not None else float(scores.ends[-1])
    path = args.output / SEGMENTS_FILE
    store = DynamoDBResults(args.table, clients("dynamodb")) if args.table else None
    config = decision_config(args, decisions)
    decide(
        scores,
        targets,
        {target: config.policy_for(target) for target in targets},
        duration,
        path,
        video_name=args.video_name or args.match_id,
        match_id=args.match_id,
        store=store,
        model=model_info,
    )
    if store is not None:
        log.info("%d window items written to %s", len(scores), args.table)
    return path


def boto3_clients(region: str | None) -> Any:
    import boto3

    session = boto3.session.Session(region_name=region)
    return session.client


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    try:
        path = run(args, boto3_clients(args.region))
    except HighlightsError as exc:
        return fail("score_windows", exc)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
