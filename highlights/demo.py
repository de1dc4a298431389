"""`highlights demo`: the whole product on a synthetic match, with no data and no cloud account.

It makes a small labelled clip set and a match with goal-mouth scenes at known times, trains the
compact model on real EfficientNet-Lite0 features, detects, cuts, reports, and compares the detected
ranges with the true ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from highlights import synthetic
from highlights.config import Config
from highlights.pipeline import DetectResult, run_detect
from highlights.segments import Segment
from highlights.training import train

MATCH_SECONDS = 60.0
TRUE_EVENTS = (synthetic.Event(12.0, 18.0), synthetic.Event(37.0, 43.0))


@dataclass(frozen=True)
class DemoSummary:
    out_dir: Path
    truth: tuple[synthetic.Event, ...]
    detected: list[Segment]
    result: DetectResult
    training: str

    def recall(self) -> float:
        """Fraction of true events that overlap a detected range."""
        hits = sum(any(_overlap(event, s) > 0 for s in self.detected) for event in self.truth)
        return hits / len(self.truth)

    def format(self) -> str:
        lines = [self.training, "", "true events vs detected highlights (seconds):"]
        for event in self.truth:
            found = [s for s in self.detected if _overlap(event, s) > 0]
            shown = (
                ", ".join(f"{s.start:.1f}–{s.end:.1f} ({s.score:.2f})" for s in found) or "missed"
            )
            lines.append(f"  true {event.start:5.1f}–{event.end:5.1f}  ->  {shown}")
        extra = [s for s in self.detected if not any(_overlap(e, s) > 0 for e in self.truth)]
        for s in extra:
            lines.append(f"  false alarm {s.start:.1f}–{s.end:.1f} ({s.score:.2f})")
        lines += [
            f"recall {self.recall():.0%}, {len(extra)} false alarm(s)",
            "",
            "The demo video is synthetic (ffmpeg test patterns), not real football.",
            f"clips:  {self.out_dir / 'highlights' / 'clips'}",
            f"reel:   {self.result.reel}",
            f"report: {self.result.report}",
            f"email:  {self.result.notification}",
        ]
        return "\n".join(lines)


def _overlap(event: synthetic.Event, segment: Segment) -> float:
    return max(0.0, min(event.end, segment.end) - max(event.start, segment.start))


def run_demo(out_dir: Path, config: Config, progress: bool = False) -> DemoSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = (
        config.replace(cache_dir=out_dir / "cache")
        if config.cache_dir == Config().cache_dir
        else config
    )
    dataset = synthetic.make_dataset(out_dir / "dataset", clips_per_class=8, seconds=4.0)
    model_dir = out_dir / "model"
    report = train(dataset, model_dir, config, progress=progress)
    match = out_dir / "match.mp4"
    if not match.exists():
        synthetic.make_match(match, MATCH_SECONDS, TRUE_EVENTS)
    result = run_detect(
        match,
        model_dir,
        out_dir / "highlights",
        config,
        [synthetic.EVENT_CLASS],
        progress=progress,
        force=True,
    )
    return DemoSummary(out_dir, TRUE_EVENTS, result.segments, result, report.format())
