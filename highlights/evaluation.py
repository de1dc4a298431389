"""How good the highlights are: detections (segments.json) scored against ground truth.

A separate, reusable module in the manner of the SoccerNet devkit: it knows nothing of models or
video, only of labelled time ranges and predictions. Two families of metric, per class:

- **Segment precision, recall and F1** at temporal IoU thresholds (0.1 to 0.7). At each threshold
  the predictions of a class, best confidence first, are matched one-to-one to the unmatched truth
  range of that class with the highest IoU, if that IoU reaches the threshold (ActivityNet's
  greedy rule). Matched predictions are true positives, the rest false positives, unmatched truth
  ranges false negatives. The mean IoU of the matched pairs is reported too. Point events (no
  length) take no part: a range has no IoU with a point.
- **SoccerNet's spotting average-mAP** (Deliège et al., SoccerNet-v2, CVPRW 2021; the code is
  `SoccerNet.Evaluation.ActionSpotting` on PyPI). Each truth event and each prediction is a spot
  (`position`), placed on a grid of `SPOTTING_FRAMERATE` frames/s as SoccerNet does. For a
  tolerance delta, each truth spot, in time order, takes the best-scoring prediction not yet taken
  that lies within delta/2 of it. Precision and recall are taken at 200 confidence thresholds in
  [0, 1]; AP is their 11-point interpolation; mAP the mean over the classes in the truth; and
  average-mAP the area under mAP over the tolerances, by the trapezoid rule, divided by their span
  in steps: "tight" 1-5 s, "loose" 5-60 s in steps of 5 s.

Differences from SoccerNet's evaluator, none of which change a result on SoccerNet-shaped input:
halves are not capped at 120 minutes, and two predictions of one class on one grid frame keep the
more confident (SoccerNet keeps the later one in the file).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from highlights.errors import InputError
from highlights.files import write_text_atomic
from highlights.outputs.segments_json import FORMAT_NAME as SEGMENTS_FORMAT
from highlights.outputs.segments_json import read_segments_json
from highlights.timecode import from_milliseconds, milliseconds
from highlights.truth import FORMAT_NAME as TRUTH_FORMAT
from highlights.truth import SOCCERNET_LABELS, Truth, TruthEvent, read_truth

FORMAT_NAME = "sports-highlights/evaluation"
FORMAT_VERSION = 1
IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TIGHT_TOLERANCES = (1.0, 2.0, 3.0, 4.0, 5.0)  # seconds (SoccerNet "tight", SNv3)
LOOSE_TOLERANCES = tuple(float(s) for s in range(5, 65, 5))  # seconds (SoccerNet "loose", SNv2)
SPOTTING_FRAMERATE = 2  # grid frames per second, as in SoccerNet's evaluator
_CONFIDENCE_STEPS = np.linspace(0, 1, 200)
_RECALL_POINTS = np.arange(11) / 10


@dataclass(frozen=True)
class Prediction:
    """One detected highlight as segments.json gives it, in seconds."""

    label: str
    start: float
    end: float
    position: float  # the spot
    confidence: float
    half: int = 1


@dataclass(frozen=True)
class Game:
    """The truth of one video (or one SoccerNet half) with the predictions made on it."""

    name: str
    truth: tuple[TruthEvent, ...]
    predictions: tuple[Prediction, ...]


@dataclass(frozen=True)
class SegmentScore:
    """Counts of one class (or all) at one IoU threshold."""

    iou_threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int
    mean_iou: float | None  # over the matched pairs; None when nothing matched

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        relevant = self.true_positives + self.false_negatives
        return self.true_positives / relevant if relevant else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "mean_iou": self.mean_iou,
        }


@dataclass(frozen=True)
class SpottingScore:
    """Average-mAP over some tolerances, with the mAP at each and each class's average AP."""

    tolerances: tuple[float, ...]
    average_map: float
    map_per_tolerance: tuple[float, ...]
    average_ap_per_class: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerances": list(self.tolerances),
            "average_mAP": self.average_map,
            "mAP_per_tolerance": list(self.map_per_tolerance),
            "average_AP_per_class": dict(self.average_ap_per_class),
        }


@dataclass(frozen=True)
class EvaluationReport:
    games: tuple[str, ...]
    classes: tuple[str, ...]
    segments: dict[str, tuple[SegmentScore, ...]]  # class (and "all") -> one per IoU threshold
    spotting: dict[str, SpottingScore]  # "tight", "loose"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "games": list(self.games),
            "classes": list(self.classes),
            "segments": {
                name: [s.to_dict() for s in scores] for name, scores in self.segments.items()
            },
            "spotting": {name: s.to_dict() for name, s in self.spotting.items()},
        }

    def format(self) -> str:
        width = max(8, *(len(c) for c in self.segments))
        shown = [t for t in (0.1, 0.3, 0.5, 0.7) if t in IOU_THRESHOLDS]
        head = "".join(f"  {'IoU ' + format(t, '.1f'):>16}" for t in shown)
        lines = [
            f"{len(self.games)} video(s), classes: {', '.join(self.classes) or '(none)'}",
            "",
            "Segments: precision / recall / F1 at temporal IoU thresholds",
            f"{'class':<{width}}{head}  {'mean IoU':>8}",
        ]
        for name, scores in self.segments.items():
            by_threshold = {s.iou_threshold: s for s in scores}
            cells = "".join(
                f"  {by_threshold[t].precision:>4.2f} {by_threshold[t].recall:>4.2f} "
                f"{by_threshold[t].f1:>4.2f}  "
                for t in shown
            )
            loosest = by_threshold[IOU_THRESHOLDS[0]].mean_iou
            lines.append(
                f"{name:<{width}}{cells}  {'-' if loosest is None else format(loosest, '.2f'):>8}"
            )
        lines += ["", "Spotting (SoccerNet average-mAP):"]
        for name, score in self.spotting.items():
            span = f"{score.tolerances[0]:g}-{score.tolerances[-1]:g} s"
            per_class = ", ".join(f"{c} {v:.3f}" for c, v in score.average_ap_per_class.items())
            lines.append(f"  {name:<6} ({span}): {score.average_map:.3f}   [{per_class}]")
        return "\n".join(lines)


def temporal_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Length of the intersection over length of the union of two time ranges."""
    union = max(a_end, b_end) - min(a_start, b_start)
    if union <= 0:
        return 0.0
    return max(0.0, min(a_end, b_end) - max(a_start, b_start)) / union


def segment_scores(games: Iterable[Game], label: str | None, iou_threshold: float) -> SegmentScore:
    """Greedy one-to-one matching of one class's ranges (every class when `label` is None)."""
    tp = fp = fn = 0
    ious: list[float] = []
    for game in games:
        labels = {label} if label is not None else _labels(game)
        for name in labels:
            truth = [e for e in game.truth if e.label == name and not e.is_point]
            taken = [False] * len(truth)
            ranked = sorted(
                (p for p in game.predictions if p.label == name),
                key=lambda p: (-p.confidence, p.start),
            )
            for p in ranked:
                best, best_iou = -1, iou_threshold
                for i, event in enumerate(truth):
                    if taken[i] or event.half != p.half:
                        continue
                    iou = temporal_iou(p.start, p.end, event.start, event.end)
                    if iou >= best_iou and (best < 0 or iou > best_iou):
                        best, best_iou = i, iou
                if best >= 0:
                    taken[best] = True
                    tp += 1
                    ious.append(best_iou)
                else:
                    fp += 1
            fn += taken.count(False)
    return SegmentScore(iou_threshold, tp, fp, fn, float(np.mean(ious)) if ious else None)


def spotting_score(
    games: Sequence[Game],
    classes: Sequence[str],
    tolerances: Sequence[float],
    framerate: int = SPOTTING_FRAMERATE,
) -> SpottingScore:
    """SoccerNet's average-mAP of the predictions' spots over `tolerances` (seconds)."""
    ap = np.zeros((len(tolerances), len(classes)))
    for j, name in enumerate(classes):
        grids = [_spot_grid(game, name, framerate) for game in games]
        for i, tolerance in enumerate(tolerances):
            ap[i, j] = _average_precision(grids, tolerance * framerate)
    maps = ap.mean(axis=1) if len(classes) else np.zeros(len(tolerances))
    return SpottingScore(
        tolerances=tuple(float(t) for t in tolerances),
        average_map=_area(maps),
        map_per_tolerance=tuple(float(m) for m in maps),
        average_ap_per_class={name: _area(ap[:, j]) for j, name in enumerate(classes)},
    )


def evaluate_games(games: Sequence[Game]) -> EvaluationReport:
    """Every metric of the module over `games`."""
    truth_classes = sorted({e.label for g in games for e in g.truth})
    all_classes = sorted(set(truth_classes) | {p.label for g in games for p in g.predictions})
    segments = {
        name: tuple(segment_scores(games, name, t) for t in IOU_THRESHOLDS) for name in all_classes
    }
    segments["all"] = tuple(segment_scores(games, None, t) for t in IOU_THRESHOLDS)
    spotting = {
        "tight": spotting_score(games, truth_classes, TIGHT_TOLERANCES),
        "loose": spotting_score(games, truth_classes, LOOSE_TOLERANCES),
    }
    return EvaluationReport(tuple(g.name for g in games), tuple(all_classes), segments, spotting)


# --- reading the predictions and pairing them with the truth ----------------------------------


def read_predictions(path: Path) -> tuple[str, tuple[Prediction, ...]]:
    """The video name and predictions of a segments.json (InputError names a bad file)."""
    path = Path(path)
    read_segments_json(path)  # checks the file whole
    document = json.loads(path.read_text(encoding="utf-8"))
    try:
        predictions = tuple(
            Prediction(
                label=str(p["label"]),
                start=float(p["start"]),
                end=float(p["end"]),
                position=from_milliseconds(int(p["position"])),
                confidence=float(p["confidence"]),
                half=int(p.get("half", 1)),
            )
            for p in document["predictions"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed prediction ({type(exc).__name__}: {exc})") from None
    return str(document["video"]), predictions


def pair_games(
    truths: Mapping[Path, Truth],
    predictions: Mapping[Path, tuple[str, tuple[Prediction, ...]]],
    truth_root: Path | None = None,
    predictions_root: Path | None = None,
    half: int | None = None,
) -> list[Game]:
    """Pair each predictions file with its truth: by video name (our truth files) or by folder
    relative to the roots (SoccerNet's, which name no video). A single truth and a single
    predictions file are paired as given. Anything left unpaired is an InputError.

    `half`: the SoccerNet half the videos show; truth of other halves is left out.
    """
    pairs: list[tuple[Path, Path]] = []
    if len(truths) == 1 and len(predictions) == 1:
        (truth_path,), (pred_path,) = truths.keys(), predictions.keys()
        video = truths[truth_path].video
        if video is not None and video != predictions[pred_path][0]:
            raise InputError(
                f"{pred_path}: detections of {predictions[pred_path][0]!r} "
                f"but {truth_path} is the truth of {video!r}"
            )
        pairs.append((truth_path, pred_path))
    else:
        pairs = _pair_many(truths, predictions, truth_root, predictions_root)
    games = []
    for truth_path, pred_path in pairs:
        video, preds = predictions[pred_path]
        events = truths[truth_path].events
        if half is not None:
            events = tuple(e for e in events if e.half == half)
            preds = tuple(
                Prediction(p.label, p.start, p.end, p.position, p.confidence, half) for p in preds
            )
        games.append(Game(video, events, preds))
    return games


def _pair_many(
    truths: Mapping[Path, Truth],
    predictions: Mapping[Path, tuple[str, tuple[Prediction, ...]]],
    truth_root: Path | None,
    predictions_root: Path | None,
) -> list[tuple[Path, Path]]:
    by_video: dict[str, Path] = {}
    by_folder: dict[Path, Path] = {}
    for path, truth in truths.items():
        if truth.video is not None:
            if truth.video in by_video:
                raise InputError(f"{path}: a second truth file for {truth.video!r}")
            by_video[truth.video] = path
        elif truth_root is not None:
            by_folder[path.parent.relative_to(truth_root)] = path
    pairs, unpaired = [], []
    for path, (video, _) in sorted(predictions.items()):
        folder = path.parent.relative_to(predictions_root) if predictions_root else None
        truth = by_video.get(video) or (by_folder.get(folder) if folder is not None else None)
        if truth is None:
            unpaired.append(f"{path} ({video})")
        else:
            pairs.append((truth, path))
    if unpaired:
        raise InputError(f"no ground truth for: {', '.join(unpaired)}")
    used = {t for t, _ in pairs}
    missing = sorted(str(p) for p in truths if p not in used)
    if missing:
        raise InputError(f"no detections for the truth in: {', '.join(missing)}")
    return pairs


def evaluate_paths(truth: Path, detections: Path, half: int | None = None) -> EvaluationReport:
    """Evaluate a segments.json (or a folder of them, searched recursively) against a truth
    file (or a folder of our truth files and SoccerNet `Labels-v2.json` files)."""
    truth, detections = Path(truth), Path(detections)
    truths = {p: read_truth(p) for p in _truth_files(truth)}
    predictions = {p: read_predictions(p) for p in _segments_files(detections)}
    games = pair_games(
        truths,
        predictions,
        truth if truth.is_dir() else None,
        detections if detections.is_dir() else None,
        half=half,
    )
    return evaluate_games(games)


def _truth_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    found = [
        p
        for p in sorted(path.rglob("*.json"))
        if p.name == SOCCERNET_LABELS or _json_format(p) == TRUTH_FORMAT
    ]
    if not found:
        raise InputError(
            f'{path}: no ground truth here (files with "format": "{TRUTH_FORMAT}" '
            f"or named {SOCCERNET_LABELS})"
        )
    return found


def _segments_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    found = [p for p in sorted(path.rglob("*.json")) if _json_format(p) == SEGMENTS_FORMAT]
    if not found:
        raise InputError(f"{path}: no segments.json files here")
    return found


def _json_format(path: Path) -> Any:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document.get("format") if isinstance(document, dict) else None


def write_evaluation(path: Path, report: EvaluationReport) -> Path:
    """Write the report's JSON; refuses to replace a file that is not an earlier evaluation."""
    path = Path(path)
    if path.exists():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8")).get("format")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            earlier = None
        if earlier != FORMAT_NAME:
            raise InputError(f"{path}: exists and is not an evaluation file; choose another --out")
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


# --- the spotting metric's parts ----------------------------------------------------------------


@dataclass(frozen=True)
class _SpotGrid:
    """One class's spots in one game, per half: truth frames, prediction frames and scores."""

    truth: dict[int, np.ndarray]
    predicted: dict[int, tuple[np.ndarray, np.ndarray]]


def _frame(seconds: float, framerate: int) -> int:
    # SoccerNet's own rule, int(framerate * (position_ms / 1000)), positions being whole ms: kept
    # as it is (not `timecode.frame_at`) so the metric is SoccerNet's to the frame
    return int(framerate * from_milliseconds(milliseconds(seconds)))


def _spot_grid(game: Game, label: str, framerate: int) -> _SpotGrid:
    truth: dict[int, set[int]] = defaultdict(set)
    for e in game.truth:
        if e.label == label:
            truth[e.half].add(_frame(e.position, framerate))
    best: dict[int, dict[int, float]] = defaultdict(dict)
    for p in game.predictions:
        if p.label == label:
            frame = _frame(p.position, framerate)
            cell = best[p.half]
            cell[frame] = max(cell.get(frame, -math.inf), p.confidence)
    predicted = {
        half: (np.array(sorted(cells)), np.array([cells[f] for f in sorted(cells)]))
        for half, cells in best.items()
    }
    return _SpotGrid({h: np.array(sorted(f)) for h, f in truth.items()}, predicted)


def _match(truth: np.ndarray, frames: np.ndarray, scores: np.ndarray, delta: float) -> np.ndarray:
    """SoccerNet's rule: each truth spot in time order takes the best-scoring free prediction
    within delta/2 frames (the first such on a tie). Returns a true-positive flag per prediction."""
    hit = np.zeros(len(frames), dtype=bool)
    for gt in truth:
        best = -1
        for k in np.flatnonzero(np.abs(frames - gt) <= delta / 2):
            if not hit[k] and (best < 0 or scores[k] > scores[best]):
                best = int(k)
        if best >= 0:
            hit[best] = True
    return hit


def _average_precision(grids: Sequence[_SpotGrid], delta: float) -> float:
    scores, hits, relevant = [], [], 0
    for grid in grids:
        relevant += sum(len(truth) for truth in grid.truth.values())
        for half, (frames, values) in grid.predicted.items():
            scores.append(values)
            hits.append(_match(grid.truth.get(half, np.zeros(0)), frames, values, delta))
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_hits = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    precision, recall = [], []
    for threshold in _CONFIDENCE_STEPS:
        chosen = all_scores >= threshold
        tp = float(all_hits[chosen].sum())
        precision.append(tp / chosen.sum() if chosen.sum() else 0.0)
        recall.append(tp / relevant if relevant else 0.0)
    p, r = np.array(precision), np.array(recall)
    return float(
        sum(float(p[r >= point].max()) if (r >= point).any() else 0.0 for point in _RECALL_POINTS)
        / len(_RECALL_POINTS)
    )


def _area(values: np.ndarray) -> float:
    """Trapezoid area under values at unit steps, over the number of steps (the mean of a
    single value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return float(values[0])
    steps = sum((values[i] + values[i + 1]) / 2 for i in range(len(values) - 1))
    return float(steps / (len(values) - 1))


def _labels(game: Game) -> set[str]:
    return {e.label for e in game.truth} | {p.label for p in game.predictions}
