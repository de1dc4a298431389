"""The `highlights` command: detect, train, evaluate, demo, aws-plan.

Exit status: 0 on success, 2 on bad input or usage (one line naming the file and the problem),
1 on an internal error.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from highlights.errors import InputError

    try:
        return args.run(args)
    except InputError as exc:
        print(f"highlights: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("highlights: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - the last line of defence, reported as internal
        if args.verbose:
            traceback.print_exc()
        print(f"highlights: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="highlights",
        description="Find the highlights in uncut sports video and cut them into clips.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    detect = sub.add_parser("detect", help="find highlights in a video and cut them into clips")
    detect.add_argument("video", type=Path, help="the match video")
    detect.add_argument(
        "--model", type=Path, required=True, help="a model folder made by `highlights train`"
    )
    detect.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="CLASS",
        help="class to look for (repeat for several)",
    )
    detect.add_argument(
        "--out", type=Path, required=True, help="folder for clips, reel, report and email"
    )
    detect.add_argument(
        "--threshold",
        type=float,
        help="window score that starts a highlight (default: the model's, per class, else 0.5)",
    )
    detect.add_argument(
        "--low-threshold",
        type=float,
        help="hysteresis: score that keeps a highlight going (default: the model's, per class, "
        "else threshold - 0.15)",
    )
    detect.add_argument(
        "--no-hysteresis",
        action="store_true",
        help="decide on the threshold alone, with no low threshold",
    )
    detect.add_argument(
        "--buffer", type=float, help="seconds of padding around each highlight (default 1)"
    )
    detect.add_argument(
        "--min-length",
        type=float,
        help="drop highlights shorter than this many seconds (default: the model's, per class)",
    )
    detect.add_argument(
        "--merge-gap",
        type=float,
        help="join highlights closer than this many seconds (default: the model's, per class)",
    )
    detect.add_argument(
        "--copy",
        action="store_true",
        default=None,
        help="fast keyframe copy instead of re-encoding",
    )
    detect.add_argument(
        "--no-reel", dest="reel", action="store_false", default=None, help="skip the highlight reel"
    )
    detect.add_argument(
        "--email-to", action="append", metavar="ADDRESS", help="recipient (repeat for several)"
    )
    detect.add_argument(
        "--db", type=Path, help="SQLite file for per-window results (default OUT/results.sqlite)"
    )
    detect.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that holds other files or another video's results: only "
        "files this program wrote there (listed in its .highlights-run.json) are replaced",
    )
    _add_common(detect)
    detect.set_defaults(run=_run_detect)

    train = sub.add_parser("train", help="train the sequence model on a folder-per-class data set")
    train.add_argument(
        "dataset", type=Path, help="folder with one sub-folder of clips per class (UCF101 layout)"
    )
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument("--preset", choices=("compact", "seed"), help="model size (default compact)")
    train.add_argument("--epochs", type=int, help="maximum training epochs")
    train.add_argument("--seed", type=int, help="random seed, for reproducible training")
    train.add_argument(
        "--split", type=int, help="UCF101 split number (trainlist0N.txt/testlist0N.txt)"
    )
    train.add_argument("--backbone", help="efficientnet_lite0 (default) or inception_v3")
    train.add_argument("--rate", type=float, help="frames sampled per second (default 5)")
    train.add_argument("--window", type=float, help="window length in seconds (default 2)")
    train.add_argument("--stride", type=float, help="window stride in seconds (default 1)")
    _add_common(train)
    train.set_defaults(run=_run_train)

    evaluate = sub.add_parser(
        "evaluate", help="score detections (segments.json) against ground truth labels"
    )
    evaluate.add_argument(
        "truth",
        type=Path,
        help="ground truth: our truth JSON or SoccerNet Labels-v2.json, or a folder of them",
    )
    evaluate.add_argument(
        "detections", type=Path, help="a segments.json made by detect, or a folder of them"
    )
    evaluate.add_argument(
        "--out",
        type=Path,
        default=Path("evaluation.json"),
        help="JSON file for the full results (default evaluation.json)",
    )
    evaluate.add_argument(
        "--half",
        type=int,
        choices=(1, 2),
        help="SoccerNet labels: the half the videos show (other halves' events are left out)",
    )
    evaluate.add_argument(
        "-q", "--quiet", action="store_true", help="no table, only the JSON file"
    )
    evaluate.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks of internal errors"
    )
    evaluate.set_defaults(run=_run_evaluate)

    demo = sub.add_parser(
        "demo", help="train and detect on a synthetic match, end to end, with no data"
    )
    demo.add_argument(
        "--out", type=Path, default=Path("demo-out"), help="folder for everything the demo makes"
    )
    _add_common(demo)
    demo.set_defaults(run=_run_demo)

    plan = sub.add_parser(
        "aws-plan",
        help="print, as JSON, every AWS request a run would send for a video (a dry run)",
        description="Probe VIDEO locally and print every request the Airflow DAG would send to "
        "MediaConvert and SageMaker for it, and the email's link hosts, each checked against "
        "the AWS service models. Exit status 2 if any request would be refused.",
    )
    plan.add_argument("video", type=Path, help="the match video, as it would be uploaded")
    plan.add_argument(
        "--aws-settings",
        type=Path,
        help="the highlights_aws Variable as JSON (Terraform's airflow_variables output); "
        "default: example settings",
    )
    plan.add_argument("--region", default="eu-west-1", help="region of the example settings")
    plan.add_argument("--key", help="upload key (default: <input prefix><video name>)")
    plan.add_argument("--segments", type=Path, help="plan clips for the ranges of a segments.json")
    plan.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="START-END",
        help="plan a clip for this range in seconds (repeat for several)",
    )
    plan.add_argument(
        "--target", action="append", metavar="CLASS", help="class to look for (default Goal)"
    )
    plan.add_argument(
        "--threshold",
        type=float,
        help="one threshold for every target (default: the model's calibrated thresholds)",
    )
    plan.add_argument("--backbone", default="efficientnet_lite0")
    plan.add_argument("--capture-rate", type=float, default=5.0)
    plan.add_argument("--features-instances", type=int, default=1)
    plan.add_argument(
        "--model-etag", help="ETag of the model archive on S3 (names the scoring job as runs do)"
    )
    plan.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    plan.add_argument("-v", "--verbose", action="store_true", help="full tracebacks on errors")
    plan.set_defaults(run=_run_aws_plan)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with settings (see README)")
    parser.add_argument(
        "--weights", type=Path, help="backbone weights file (default: the packaged weights)"
    )
    parser.add_argument("--cache-dir", type=Path, help="where backbone features are cached")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, warnings only"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks of internal errors"
    )


def _config(args: argparse.Namespace, **overrides: Any) -> Any:
    from highlights.config import load_config

    return load_config(
        args.config,
        backbone_weights=args.weights,
        cache_dir=args.cache_dir,
        **overrides,
    )


def _run_detect(args: argparse.Namespace) -> int:
    from highlights.errors import ConfigError
    from highlights.local.sqlite import SQLiteResults
    from highlights.pipeline import run_detect

    config = _config(
        args,
        **{
            "segments.threshold": args.threshold,
            "segments.low_threshold": args.low_threshold,
            "segments.buffer": args.buffer,
            "segments.min_length": args.min_length,
            "segments.merge_gap": args.merge_gap,
            "output.copy": args.copy,
            "output.reel": args.reel,
            "mail.recipients": tuple(args.email_to) if args.email_to else None,
        },
    )
    if args.no_hysteresis:
        if args.low_threshold is not None:
            raise ConfigError("--no-hysteresis and --low-threshold contradict each other")
        config = config.without_hysteresis()
    store = SQLiteResults(args.db) if args.db else None
    result = run_detect(
        args.video,
        args.model,
        args.out,
        config,
        args.target,
        progress=not args.quiet,
        force=args.force,
        store=store,
    )
    print(f"{len(result.segments)} highlight(s) in {args.video} ({result.video.duration:.1f} s):")
    for segment, clip in zip(result.segments, result.clips, strict=True):
        print(
            f"  {segment.start:8.2f} – {segment.end:8.2f} s  "
            f"{segment.label}  {segment.score:.2f}  {clip}"
        )
    for label, path in (
        ("reel", result.reel),
        ("report", result.report),
        ("segments", result.segments_json),
    ):
        if path:
            print(f"{label}: {path}")
    print(f"email: {result.notification}")
    return EXIT_OK


def _run_train(args: argparse.Namespace) -> int:
    from highlights.training import train

    config = _config(
        args,
        backbone=args.backbone,
        **{
            "train.preset": args.preset,
            "train.epochs": args.epochs,
            "train.seed": args.seed,
            "train.split": args.split,
            "sampling.rate": args.rate,
            "window.length": args.window,
            "window.stride": args.stride,
        },
    )
    report = train(args.dataset, args.out, config, progress=not args.quiet)
    print(report.format())
    print(f"model: {args.out}")
    return EXIT_OK


def _run_evaluate(args: argparse.Namespace) -> int:
    from highlights.evaluation import evaluate_paths, write_evaluation

    report = evaluate_paths(args.truth, args.detections, half=args.half)
    path = write_evaluation(args.out, report)
    if not args.quiet:
        print(report.format())
    print(f"evaluation: {path}")
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from highlights.demo import run_demo

    config = _config(args)
    summary = run_demo(args.out, config, progress=not args.quiet)
    print(summary.format())
    return EXIT_OK


def _run_aws_plan(args: argparse.Namespace) -> int:
    import json

    from highlights.aws.dry_run import PLACEHOLDER_MODEL, dry_run, read_settings
    from highlights.aws.plan import model_digest_of
    from highlights.outputs.segments_json import read_segments_json

    settings = read_settings(args.aws_settings, args.region)
    segments = list(read_segments_json(args.segments).segments) if args.segments else []
    segments += [_parse_range(text) for text in args.range]
    model = PLACEHOLDER_MODEL
    if args.model_etag:
        key = settings.model_data_uri.removeprefix("s3://").partition("/")[2]
        model = model_digest_of([(key, f'"{args.model_etag.strip(chr(34))}"')])
    plan = dry_run(
        args.video,
        settings=settings,
        key=args.key or f"{settings.input_prefix}{args.video.name}",
        segments=sorted(segments, key=lambda s: s.start),
        targets=args.target or ["Goal"],
        threshold=args.threshold,
        backbone=args.backbone,
        capture_rate=args.capture_rate,
        features_instances=args.features_instances,
        model=model,
    )
    if not args.quiet:
        print(json.dumps(plan, indent=2, default=str))
    problems = [
        f"{r['task']} {r['service']} {r['operation']}: {v}"
        for r in plan["requests"]
        for v in r["violations"]
    ] + [f"link {link['label']}: {p}" for link in plan["links"] for p in link["problems"]]
    for problem in problems:
        print(f"highlights: aws-plan: {args.video}: {problem}", file=sys.stderr)
    return EXIT_INPUT if problems else EXIT_OK


def _parse_range(text: str) -> Any:
    from highlights.errors import InputError
    from highlights.segments import Segment

    start, sep, end = text.partition("-")
    try:
        first, last = float(start), float(end)
    except ValueError:
        first = last = -1.0
    if not sep or not 0 <= first < last:
        raise InputError(f"--range {text!r}: give START-END in seconds, START before END")
    return Segment(first, last, 1.0, "range")


def _quiet_tensorflow() -> None:
    # TensorFlow prints C++ start-up chatter to stderr unless told otherwise before import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow (when something first needs it) with the process's stderr muted.

    TensorFlow 2.21 writes start-up lines ("oneDNN custom operations are on") from C++ before its
    logging is set up, so TF_CPP_MIN_LOG_LEVEL does not hold them back
    (tensorflow/tensorflow#100442), and an error would no longer be the one line on stderr.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _MutedLoader(spec.loader)
        return spec


class _MutedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            self._loader.exec_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


if __name__ == "__main__":
    raise SystemExit(main())
