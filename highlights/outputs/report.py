"""A single self-contained HTML report: score timeline (inline SVG), a player per highlight and
for the reel, clip table, settings.

No scripts, stylesheets or fonts are loaded from elsewhere (the one script, which makes the
timeline seek the players, is inline and reads its numbers from `data-` attributes, never from
text spliced into code); the only outside references are the clips, reel and thumbnails the
report shows, and only `http(s)` URLs and relative paths are linked (a `javascript:`, `data:`,
`file:` ... reference is shown as text). Every value is HTML-escaped (Jinja2 autoescape).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import jinja2
import numpy as np

from highlights.damage import TimeRange
from highlights.files import write_text_atomic
from highlights.segments import Segment, game_time, target_scores
from highlights.windows import WindowScores

TEMPLATES = Path(__file__).parent / "templates"
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass(frozen=True)
class Plot:
    """Geometry of the SVG timeline, in its own user units."""

    width: int = 960
    height: int = 220
    left: int = 44
    right: int = 946
    top: int = 10
    bottom: int = 194

    def x(self, seconds: float, duration: float) -> float:
        return round(self.left + (self.right - self.left) * seconds / duration, 1)

    def y(self, score: float) -> float:
        return round(self.bottom - (self.bottom - self.top) * min(max(score, 0.0), 1.0), 1)


def _range_text(r: TimeRange) -> str:
    return f"{r.start:.1f}–{r.end:.1f} s ({game_time(r.start)}–{game_time(r.end)})"


def _damage_rows(scores: WindowScores) -> dict[str, object] | None:
    """What could not be decoded, for the report's own section (None: nothing)."""
    damage = scores.damage
    if not damage:
        return None
    marked = int(np.count_nonzero(np.asarray(scores.damaged) > 0))
    return {
        "summary": damage.describe(),
        "windows": f"{marked} of {len(scores)}",
        "ranges": [_range_text(r) for r in damage.ranges],
    }


def _tick_step(duration: float, most: int = 10) -> int:
    return next((s for s in _NICE_STEPS if duration / s <= most), _NICE_STEPS[-1])


def timeline(
    scores: WindowScores,
    targets: Sequence[str],
    threshold: float,
    segments: Sequence[Segment],
    duration: float,
    plot: Plot | None = None,
) -> dict[str, object]:
    """Everything the template draws: score polyline, threshold, shaded ranges, axis ticks."""
    plot = plot or Plot()
    span = max(duration, float(np.max(scores.ends, initial=0.0)), 1e-9)
    values, _ = target_scores(scores, targets)
    centres = (np.asarray(scores.starts) + np.asarray(scores.ends)) / 2
    order = np.argsort(centres, kind="stable")
    points = " ".join(
        f"{plot.x(float(centres[i]), span)},{plot.y(float(np.nan_to_num(values[i])))}"
        for i in order
    )
    bands = [
        {
            "x": plot.x(s.start, span),
            "width": max(round(plot.x(s.end, span) - plot.x(s.start, span), 1), 0.5),
            "title": f"{game_time(s.start)}–{game_time(s.end)} {s.label} {s.score:.2f}",
        }
        for s in segments
    ]
    damaged = [
        {
            "x": plot.x(r.start, span),
            "width": max(round(plot.x(r.end, span) - plot.x(r.start, span), 1), 0.5),
            "title": f"could not be decoded: {_range_text(r)}",
        }
        for r in scores.damage.ranges
    ]
    step = _tick_step(span)
    x_ticks = [{"x": plot.x(t, span), "label": game_time(t)} for t in range(0, int(span) + 1, step)]
    y_ticks = [{"y": plot.y(v), "label": f"{v:.1f}"} for v in (0.0, 0.5, 1.0)]
    return {
        "span": round(span, 6),
        "width": plot.width,
        "height": plot.height,
        "left": plot.left,
        "right": plot.right,
        "top": plot.top,
        "bottom": plot.bottom,
        "points": points,
        "bands": bands,
        "damaged": damaged,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
        "threshold_y": plot.y(threshold),
    }


_LINKED_SCHEMES = ("http", "https")


def safe_link(reference: str) -> str | None:
    """`reference` if a browser may follow it from the report: an http(s) URL or a relative
    path. Anything else (`javascript:`, `data:`, `file:`, `//host/...`) gives None.

    Browsers drop tabs and newlines inside a URL and strip controls and spaces around it, so
    `java\tscript:` is `javascript:`: such references are refused, not cleaned.
    """
    if reference != reference.strip() or any(ord(c) < 0x20 or c == "\x7f" for c in reference):
        return None
    if "\\" in reference:  # browsers read a backslash as a slash: \\host is //host
        return None
    parts = urlsplit(reference)
    if parts.scheme:
        return reference if parts.scheme.lower() in _LINKED_SCHEMES and parts.netloc else None
    return None if parts.netloc else reference


def _clip_rows(clips: Sequence[tuple[Segment, str, str]]) -> list[dict[str, str | None]]:
    return [
        {
            "start_seconds": f"{segment.start:.6f}",
            "end_seconds": f"{segment.end:.6f}",
            "start": game_time(segment.start),
            "end": game_time(segment.end),
            "length": f"{segment.duration:.1f} s",
            "label": segment.label,
            "score": f"{segment.score:.2f}",
            "href": safe_link(href),
            "thumb": safe_link(thumb),
            "name": PurePosixPath(href.split("?", 1)[0]).name or href,
        }
        for segment, href, thumb in clips
    ]


def _settings(
    video_name: str, duration: float, scores: WindowScores, targets: Sequence[str], threshold: float
) -> list[tuple[str, str]]:
    lengths = np.asarray(scores.ends) - np.asarray(scores.starts)
    strides = np.diff(np.sort(np.asarray(scores.starts)))
    return [
        ("Video", video_name),
        ("Duration", f"{duration:.1f} s ({game_time(duration)})"),
        ("Target classes", ", ".join(targets)),
        ("Threshold", f"{threshold:g}"),
        ("Windows scored", str(len(scores))),
        ("Window length", f"{float(np.median(lengths)):g} s" if len(lengths) else "–"),
        ("Window stride", f"{float(np.median(strides)):g} s" if len(strides) else "–"),
        ("Model classes", ", ".join(scores.classes)),
    ]


def render_report(
    *,
    video_name: str,
    duration: float,
    scores: WindowScores,
    targets: Sequence[str],
    threshold: float,
    segments: Sequence[Segment],
    clips: Sequence[tuple[Segment, str, str]],
    reel: str | None = None,
) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html.j2").render(
        video_name=video_name,
        duration_text=f"{duration:.1f} s",
        targets=list(targets),
        threshold=f"{threshold:g}",
        plot=timeline(scores, targets, threshold, segments, duration),
        clips=_clip_rows(clips),
        reel=safe_link(reel) if reel else None,
        damage=_damage_rows(scores),
        settings=_settings(video_name, duration, scores, targets, threshold),
    )


def write_report(
    path: Path,
    *,
    video_name: str,
    duration: float,
    scores: WindowScores,
    targets: Sequence[str],
    threshold: float,
    segments: Sequence[Segment],
    clips: Sequence[tuple[Segment, str, str]],
    reel: str | None = None,
) -> Path:
    """Write the HTML report atomically. `clips` are (segment, clip href, thumbnail href);
    `reel` is the reel's href."""
    page = render_report(
        video_name=video_name,
        duration=duration,
        scores=scores,
        targets=targets,
        threshold=threshold,
        segments=segments,
        clips=clips,
        reel=reel,
    )
    return write_text_atomic(Path(path), page)
