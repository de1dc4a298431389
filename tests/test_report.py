"""Specification of the HTML report: valid, self-contained, one shaded range per segment."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from highlights.config import SegmentConfig
from highlights.damage import DecodeDamage, TimeRange
from highlights.outputs.report import write_report
from highlights.segments import Segment, find_segments
from highlights.windows import WindowScores

CLASSES = ("Background", "SoccerPenalty", "Basketball")
VOID = {"meta", "link", "img", "br", "hr", "input", "area", "base", "col", "source", "track", "wbr"}


class Page(HTMLParser):
    """Collects tags and checks that every element that is opened is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, css_class: str | None = None) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag
            and (css_class is None or css_class in (attrs.get("class") or "").split())
        ]


def match_scores() -> WindowScores:
    """A 90 s match, 2 s windows every second, three bursts of SoccerPenalty."""
    rng = np.random.default_rng(3)
    penalty = rng.uniform(0.0, 0.3, 89)
    penalty[[10, 11, 12, 40, 41, 70]] = [0.8, 0.95, 0.7, 0.6, 0.9, 0.85]
    starts = np.arange(89, dtype=np.float64)
    return WindowScores(
        starts=starts,
        ends=starts + 2.0,
        probabilities=np.stack([1 - penalty, penalty, np.zeros(89)], axis=1).astype(np.float32),
        classes=CLASSES,
    )


def damaged_match_scores() -> WindowScores:
    """The match, with 30.5-33 s undecodable: windows 29 to 32 partly over it."""
    damaged = np.zeros(89, dtype=np.float32)
    damaged[29:33] = [0.2, 0.8, 0.8, 0.4]
    return dataclasses.replace(
        match_scores(),
        damaged=damaged,
        damage=DecodeDamage(450, 12, (TimeRange(30.5, 33.0),)),
    )


def render(
    tmp_path: Path,
    video_name: str = "final.mp4",
    threshold: float = 0.5,
    scores: WindowScores | None = None,
    reel: str | None = None,
) -> tuple[Page, list[Segment], str]:
    scores = scores or match_scores()
    segments = find_segments(scores, ["SoccerPenalty"], SegmentConfig(), 90.0)
    clips = [
        (s, f"clips/clip-{i:03d}.mp4", f"clips/clip-{i:03d}.jpg") for i, s in enumerate(segments, 1)
    ]
    path = write_report(
        tmp_path / "report.html",
        video_name=video_name,
        duration=90.0,
        scores=scores,
        targets=["SoccerPenalty"],
        threshold=threshold,
        segments=segments,
        clips=clips,
        reel=reel,
    )
    page = Page()
    source = path.read_text(encoding="utf-8")
    page.feed(source)
    page.close()
    return page, segments, source


def test_the_report_is_well_formed_html(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path)
    assert page.open == []
    assert [name for name, _ in page.tags[:1]] == ["html"]


def test_one_shaded_range_per_segment(tmp_path: Path) -> None:
    page, segments, _ = render(tmp_path)
    assert len(segments) == 3
    assert len(page.find("rect", "segment")) == 3


def test_shaded_ranges_sit_where_the_segments_are(tmp_path: Path) -> None:
    page, segments, _ = render(tmp_path)
    left, right = 44, 946  # the plot area inside the SVG
    for rect, segment in zip(page.find("rect", "segment"), segments, strict=True):
        assert float(rect["x"] or 0) == pytest.approx(
            left + (right - left) * segment.start / 90, abs=0.1
        )
        assert float(rect["width"] or 0) == pytest.approx(
            (right - left) * segment.duration / 90, abs=0.2
        )


def test_the_score_line_has_a_point_per_window_and_a_threshold_line(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path)
    [line] = page.find("polyline", "score")
    assert len((line["points"] or "").split()) == 89
    assert len(page.find("line", "threshold")) == 1


def test_every_clip_is_linked_with_its_thumbnail(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path)
    hrefs = {a["href"] for a in page.find("a", "clip")}
    assert hrefs == {"clips/clip-001.mp4", "clips/clip-002.mp4", "clips/clip-003.mp4"}
    assert [img["src"] for img in page.find("img", "thumb")] == [
        "clips/clip-001.jpg",
        "clips/clip-002.jpg",
        "clips/clip-003.jpg",
    ]


def test_each_clip_has_a_player_that_knows_its_range(tmp_path: Path) -> None:
    page, segments, _ = render(tmp_path)
    players = page.find("video", "highlight")
    assert [v["src"] for v in players] == [f"clips/clip-{i:03d}.mp4" for i in (1, 2, 3)]
    assert [v["poster"] for v in players] == [f"clips/clip-{i:03d}.jpg" for i in (1, 2, 3)]
    assert [(float(v["data-start"] or 0), float(v["data-end"] or 0)) for v in players] == [
        (s.start, s.end) for s in segments
    ]
    assert all("controls" in v for v in players)


def test_the_timeline_tells_the_script_its_scale(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path)
    [svg] = page.find("svg", "timeline")
    assert (svg["data-left"], svg["data-right"], float(svg["data-span"] or 0)) == (
        "44",
        "946",
        90.0,
    )
    assert "seekable" in (svg["class"] or "").split()
    assert [r["data-index"] for r in page.find("rect", "segment")] == ["1", "2", "3"]


def test_the_reel_is_played_in_the_report(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path, reel="highlights-reel.mp4")
    assert [v["src"] for v in page.find("video", "reel")] == ["highlights-reel.mp4"]
    page, _, _ = render(tmp_path)
    assert page.find("video", "reel") == []


def test_a_reel_link_that_is_not_http_or_relative_is_not_played(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path, reel="javascript:alert(1)")
    assert page.find("video", "reel") == []


def test_the_settings_are_shown(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path, threshold=0.7)  # 0.5 would also match an axis label
    text = " ".join(page.text)
    for expected in (
        "Threshold",
        "0.7",
        "SoccerPenalty",
        "Windows scored",
        "89",
        "Window length",
        "2 s",
    ):
        assert expected in text


def test_a_whole_video_has_no_damage_section(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path)
    assert page.find("rect", "damaged") == [] and page.find("ul", "damaged-ranges") == []


def test_undecodable_stretches_are_shaded_and_listed(tmp_path: Path) -> None:
    page, _, _ = render(tmp_path, scores=damaged_match_scores())
    [rect] = page.find("rect", "damaged")
    left, right = 44, 946
    assert float(rect["x"] or 0) == pytest.approx(left + (right - left) * 30.5 / 90, abs=0.1)
    text = " ".join(page.text)
    assert "12 of 450 sampled frames (2.7 %) in 1 damaged range" in text
    assert "30.5–33.0 s (0:30–0:33)" in text
    assert "4 of 89 windows" in text


def test_the_report_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    page, _, source = render(tmp_path)
    assert page.find("script") == [{}] and page.find("link") == []  # one inline script
    assert "http://" not in source.replace("http://www.w3.org", "")
    assert "https://" not in source


def test_a_hostile_video_name_is_escaped(tmp_path: Path) -> None:
    page, _, source = render(tmp_path, video_name='<script>alert("x")</script>.mp4')
    assert source.count("<script>") == 1  # the report's own, at the end
    assert source.index("<script>") > source.index("</dl>")
    assert "&lt;script&gt;" in source
    assert page.find("script") == [{}]
    assert any('<script>alert("x")</script>.mp4' in t for t in page.text)


def test_a_match_without_highlights_says_so(tmp_path: Path) -> None:
    scores = match_scores()
    write_report(
        tmp_path / "report.html",
        video_name="quiet.mp4",
        duration=90.0,
        scores=scores,
        targets=["SoccerPenalty"],
        threshold=0.99,
        segments=[],
        clips=[],
    )
    page = Page()
    page.feed((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert page.find("rect", "segment") == []
    assert any("no clips were cut" in t for t in page.text)


def test_rewriting_the_report_replaces_it(tmp_path: Path) -> None:
    render(tmp_path, "first.mp4")
    render(tmp_path, "second.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert "second.mp4" in (tmp_path / "report.html").read_text(encoding="utf-8")


def render_clip(tmp_path: Path, href: str, thumb: str) -> Page:
    scores = match_scores()
    segment = Segment(10.0, 14.0, 0.95, "SoccerPenalty")
    path = write_report(
        tmp_path / "report.html",
        video_name="final.mp4",
        duration=90.0,
        scores=scores,
        targets=["SoccerPenalty"],
        threshold=0.5,
        segments=[segment],
        clips=[(segment, href, thumb)],
    )
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.mark.parametrize(
    "reference",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "java\tscript:alert(1)",
        " javascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "//evil.example/clip.mp4",
        "\\\\evil.example\\clip.mp4",
        "ftp://example.org/clip.mp4",
    ],
)
def test_a_reference_of_another_scheme_is_not_linked(tmp_path: Path, reference: str) -> None:
    page = render_clip(tmp_path, reference, reference)
    linked = [a["href"] for a in page.find("a")] + [img["src"] for img in page.find("img")]
    played = [v[name] for v in page.find("video") for name in ("src", "poster") if name in v]
    assert linked == [] and played == []
    assert page.find("span", "clip")  # the clip is still listed, as text


@pytest.mark.parametrize(
    "reference",
    [
        "clips/clip-001.mp4",
        "../elsewhere/clip-001.mp4",
        "https://example.org/clips/clip-001.mp4?sig=a&x=1",
        "HTTP://example.org/clip-001.mp4",
    ],
)
def test_http_and_relative_references_are_linked(tmp_path: Path, reference: str) -> None:
    page = render_clip(tmp_path, reference, reference)
    assert [a["href"] for a in page.find("a", "clip")] == [reference]
    assert [img["src"] for img in page.find("img", "thumb")] == [reference]
    assert [(v["src"], v["poster"]) for v in page.find("video")] == [(reference, reference)]
