"""The report in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromedriver, opens the report of a real detect run from file:// (as the email links it) and
plays it: no console errors, every clip and the reel load with a positive duration and play,
the thumbnails load, and a click on the timeline plays the highlight at that moment.

`make test` (and so `.ci/run`) installs `chromium` and `chromium-driver` with apt-get. Without
them these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from highlights.config import Config
from highlights.pipeline import DetectResult, run_detect
from highlights.synthetic import EVENT_CLASS
from highlights.video import probe

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_SECONDS = 30
PLAYED_SECONDS = 0.3  # how far each video must get to count as playing


def _browser_or_skip() -> None:
    missing = [
        name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not path
    ]
    if missing:
        reason = (
            f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver; "
            "`make browser` installs them)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"the report's browser test must run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def detected(
    trained_model: Path, synthetic_match, feature_cache: Path, tmp_path_factory
) -> DetectResult:
    _browser_or_skip()
    video, _ = synthetic_match
    out = tmp_path_factory.mktemp("report-browser") / "out"
    result = run_detect(video, trained_model, out, Config(cache_dir=feature_cache), [EVENT_CLASS])
    assert result.report is not None and result.reel is not None and len(result.clips) >= 2
    return result


@pytest.fixture(scope="module")
def browser() -> Iterator:
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--mute-audio",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The Debian driver, named explicitly: Selenium must not fetch one of its own.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(browser, detected: DetectResult):
    """The report, loaded, with every video's metadata in (or an error) and the console log
    of the loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(detected.report.resolve().as_uri())
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.querySelectorAll('video'))"
            ".every(v => v.readyState >= 1 || v.error !== null)"
        )
    )
    return browser, browser.get_log("browser")


def _errors(log: list[dict]) -> list[str]:
    return [entry["message"] for entry in log if entry["level"] == "SEVERE"]


def _videos(driver) -> list[dict]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('video')).map(v => ({"
        "  cls: v.className, src: v.getAttribute('src'), duration: v.duration,"
        "  error: v.error && v.error.code, readyState: v.readyState}))"
    )


def test_the_report_loads_without_console_errors(page) -> None:
    _, log = page
    assert _errors(log) == []


def test_there_is_a_player_per_clip_and_for_the_reel(page, detected: DetectResult) -> None:
    driver, _ = page
    out = detected.report.parent
    sources = [(v["cls"], v["src"]) for v in _videos(driver)]
    assert sources == [("reel", detected.reel.relative_to(out).as_posix())] + [
        ("highlight", clip.relative_to(out).as_posix()) for clip in detected.clips
    ]


def test_every_video_reports_the_duration_of_its_file(page, detected: DetectResult) -> None:
    driver, _ = page
    files = [detected.reel, *detected.clips]
    for video, path in zip(_videos(driver), files, strict=True):
        assert video["error"] is None, video
        assert video["duration"] > 0, video
        assert video["duration"] == pytest.approx(probe(path).duration, abs=0.1), video


def test_every_video_plays(page) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = page
    count = len(_videos(driver))
    for index in range(count):
        driver.execute_script(
            "const v = document.querySelectorAll('video')[arguments[0]];"
            "v.muted = true; v.currentTime = 0; v.play();",
            index,
        )
        WebDriverWait(driver, WAIT_SECONDS).until(
            lambda d, i=index: d.execute_script(
                "const v = document.querySelectorAll('video')[arguments[0]];"
                "return v.error !== null || v.currentTime >= arguments[1];",
                i,
                PLAYED_SECONDS,
            )
        )
        state = driver.execute_script(
            "const v = document.querySelectorAll('video')[arguments[0]]; v.pause();"
            "return {error: v.error && v.error.code, time: v.currentTime};",
            index,
        )
        assert state["error"] is None and state["time"] >= PLAYED_SECONDS, (index, state)
    assert _errors(driver.get_log("browser")) == []


def test_every_thumbnail_loads(page, detected: DetectResult) -> None:
    driver, _ = page
    thumbs = driver.execute_script(
        "return Array.from(document.querySelectorAll('img.thumb'))"
        ".map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
    )
    assert len(thumbs) == len(detected.clips)
    for src, complete, width in thumbs:
        assert complete and width > 0, src


def test_clicking_the_timeline_plays_the_highlight_from_that_moment(
    page, detected: DetectResult
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = page
    bands = driver.find_elements(By.CSS_SELECTOR, "svg.timeline rect.segment")
    assert len(bands) == len(detected.segments)
    span = float(driver.find_element(By.CSS_SELECTOR, "svg.timeline").get_attribute("data-span"))
    for index, (band, segment) in enumerate(zip(bands, detected.segments, strict=True)):
        driver.execute_script(
            "document.querySelectorAll('video').forEach(v => { v.muted = true; })"
        )
        ActionChains(driver).move_to_element(band).click().perform()  # the band's centre
        middle = (segment.end - segment.start) / 2
        WebDriverWait(driver, WAIT_SECONDS).until(
            lambda d, i=index: d.execute_script(
                "return !document.querySelectorAll('video.highlight')[arguments[0]].paused", i
            )
        )
        state = driver.execute_script(
            "const all = Array.from(document.querySelectorAll('video.highlight'));"
            "const v = all[arguments[0]]; const time = v.currentTime; v.pause();"
            "return {time: time, others: all.filter(o => o !== v).every(o => o.paused),"
            "  playhead: document.querySelector('svg .playhead').getAttribute('visibility')};",
            index,
        )
        # One pixel of the timeline is about span / 900 s; the video has played on a little.
        assert state["time"] == pytest.approx(middle, abs=span / 300 + 0.5), (segment, state)
        assert state["others"], "the other highlights stop"
        assert state["playhead"] == "visible"
    assert _errors(driver.get_log("browser")) == []
