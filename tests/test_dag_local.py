"""The local backend under real Airflow (`dag.test()`): the inbox dispatcher starts one pipeline
run per dropped video, the run processes it, and a video whose runs keep failing is parked.

The model is the session's real one (trained on synthetic clips in conftest.py). A run the
dispatcher triggered is executed with `airflow_env.run_triggered`, as the scheduler would.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from highlights.local.inbox import LocalInbox
from highlights.outputs.segments_json import read_segments_json
from highlights.outputs.timelines import TIMELINE_FILES, read_timeline
from highlights.video import probe
from tests import airflow_env
from tests.calibrated import assert_calibrated

airflow_env.configure()

TARGET = "PenaltyKick"  # highlights.synthetic.EVENT_CLASS
NAMES = ("cup final.mp4", "league match.mkv", "derby.mp4")


class Inbox:
    """A watched folder, its output folder and the Variables pointing the DAGs at them."""

    def __init__(self, root: Path, model: Path, patch: pytest.MonkeyPatch) -> None:
        self.incoming, self.out = root / "incoming", root / "out"
        self.incoming.mkdir(parents=True)
        settings = {
            "incoming_dir": str(self.incoming),
            "output_dir": str(self.out),
            "model_dir": str(model),
            "settle_seconds": 0,
        }
        airflow_env.set_variable(patch, "highlights_local", settings)
        airflow_env.set_variable(patch, "highlights_backend", "local")
        airflow_env.set_variable(patch, "highlights_targets", [TARGET])
        self.inbox = LocalInbox(self.incoming, self.out / ".claimed", settle_seconds=0)

    def drop(self, source: Path, name: str) -> Path:
        target = self.incoming / name
        shutil.copy(source, target)
        return target

    def dispatch(self, wait: float = 4.0) -> object:
        """One run of the inbox dispatcher; it ends (skipped) after `wait` s with nothing to do."""
        dag = airflow_env.load_dag(airflow_env.INBOX_DAG_ID)
        sensor = dag.get_task("find_new_videos")
        sensor.poke_interval, sensor.timeout = 1, wait
        return dag.test()

    def run(self, run_id: str) -> object:
        dag = airflow_env.load_dag()
        airflow_env.no_retries(dag)
        return airflow_env.run_triggered(dag, run_id)

    def runs(self) -> dict:
        return {
            run_id: run
            for run_id, run in airflow_env.dag_runs().items()
            if run.conf.get("video", "").startswith(str(self.incoming))
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory, trained_model, synthetic_match):
    """Three videos dropped at once; one dispatcher pass; the first match's run executed."""
    airflow_env.migrate()
    patch = pytest.MonkeyPatch()
    inbox = Inbox(tmp_path_factory.mktemp("local-backend"), trained_model, patch)
    for name in NAMES:
        inbox.drop(synthetic_match[0], name)
    dispatcher_run = inbox.dispatch()
    first = inbox.inbox.video(inbox.incoming / NAMES[0]).first_run_id
    pipeline_run = inbox.run(first)
    try:
        yield inbox, dispatcher_run, pipeline_run
    finally:
        patch.undo()


def match_folder(out: Path, name: str) -> Path:
    stem = Path(name).stem.replace(" ", "-")
    [folder] = [p for p in out.iterdir() if p.is_dir() and p.name.startswith(f"{stem}-")]
    return folder


# --- the dispatcher -------------------------------------------------------------------------------


def test_dispatcher_starts_one_run_per_dropped_video(world):
    inbox, dispatcher_run, _ = world
    assert str(dispatcher_run.state) == "success", airflow_env.task_states(dispatcher_run)
    videos = {inbox.inbox.video(inbox.incoming / name) for name in NAMES}
    runs = inbox.runs()
    assert set(runs) == {v.first_run_id for v in videos}
    for video in videos:
        run = runs[video.first_run_id]
        assert run.run_id.startswith("local__")
        assert run.conf == {"backend": "local", "video": str(video.path), "etag": video.version}
        assert video.name in run.note and str(video.path) in run.note


def test_run_ids_name_the_match(world):
    inbox, _, _ = world
    assert any(run_id.startswith("local__cup-final-") for run_id in inbox.runs())


def test_dispatcher_started_runs_overlapping_not_queued_behind_each_other(world):
    from highlights_airflow import dispatch

    dag = airflow_env.load_dag()
    assert dag.max_active_runs == dispatch().max_active_runs >= 3
    assert dag.timetable.__class__.__name__ == "NullTimetable"  # trigger-only


def test_second_pass_starts_nothing_new(world):
    inbox, _, _ = world
    before = set(inbox.runs())
    again = inbox.dispatch(wait=3)
    states = airflow_env.task_states(again)
    assert states["find_new_videos"] == "skipped", states
    assert set(inbox.runs()) == before


def test_a_replaced_video_is_a_new_version_with_its_own_run(world, synthetic_match, tmp_path):
    from highlights import synthetic

    inbox, _, _ = world
    path = inbox.incoming / NAMES[2]
    old = inbox.inbox.video(path)
    synthetic.make_match(tmp_path / "new.mp4", 6.0, [])
    shutil.copy(tmp_path / "new.mp4", path)
    os.utime(path, ns=(old.mtime_ns + 10**9, old.mtime_ns + 10**9))
    new = inbox.inbox.video(path)
    assert new.first_run_id != old.first_run_id
    inbox.dispatch()
    assert new.first_run_id in inbox.runs()


# --- one pipeline run -----------------------------------------------------------------------------


def test_local_run_succeeds(world):
    _, _, pipeline_run = world
    assert str(pipeline_run.state) == "success", airflow_env.task_states(pipeline_run)


def test_local_run_writes_clips_reel_report_and_email(world):
    inbox, _, _ = world
    folder = match_folder(inbox.out, NAMES[0])
    clips = sorted((folder / "clips").glob("clip-*.mp4"))
    assert clips and all(c.stat().st_size > 1000 for c in clips)
    assert (folder / "highlights-reel.mp4").stat().st_size > 1000
    assert "<svg" in (folder / "report.html").read_text()
    rate = probe(clips[0]).rate
    for name in TIMELINE_FILES:
        timeline = read_timeline(folder / name, rate)
        [track] = [t for t in timeline.tracks if t.kind == "Video"]
        assert len(list(track.find_clips())) == len(clips), name
    email = (folder / "notification.eml").read_text()
    assert NAMES[0] in email
    assert clips[0].name in email


def test_a_run_without_a_threshold_decides_with_the_model_s_calibrated_settings(
    world, trained_model
):
    inbox, _, _ = world
    document = read_segments_json(match_folder(inbox.out, NAMES[0]) / "segments.json")
    assert_calibrated(document.decisions, trained_model)


def test_local_run_records_every_window(world):
    from highlights.local.sqlite import SQLiteResults

    inbox, _, _ = world
    folder = match_folder(inbox.out, NAMES[0])
    match_id = json.loads((folder / ".highlights-run.json").read_text())["match_id"]
    records = SQLiteResults(folder / "results.sqlite").get(match_id)
    assert len(records) >= 25  # a 30 s match, 2 s windows every 1 s
    assert any(r.picked for r in records)


def test_local_run_skips_the_aws_backend(world):
    _, _, pipeline_run = world
    states = airflow_env.task_states(pipeline_run)
    aws = {task: state for task, state in states.items() if task.startswith("aws.")}
    assert aws and set(aws.values()) == {"skipped"}, aws


def test_finished_video_is_done_in_its_claim_record(world):
    inbox, _, pipeline_run = world
    claim = inbox.inbox.claims.read(NAMES[0])
    assert claim.state == "done"
    assert [(a.run_id, a.outcome) for a in claim.attempts] == [(pipeline_run.run_id, "done")]


def test_finished_match_is_announced_as_an_asset_event(world):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    inbox, _, pipeline_run = world
    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "highlights_match_results")
            .filter(AssetEvent.source_run_id == pipeline_run.run_id)
            .all()
        )
        [extra] = [event.extra for event in events]
    folder = match_folder(inbox.out, NAMES[0])
    assert extra["folder"] == str(folder)
    assert extra["clips"] and all(Path(c).parent == folder / "clips" for c in extra["clips"])
    assert extra["reel"] == str(folder / "highlights-reel.mp4")
    assert (
        extra["match_id"] == json.loads((folder / ".highlights-run.json").read_text())["match_id"]
    )


def test_a_run_for_a_replaced_file_is_skipped_not_failed(
    world, tmp_path, trained_model, synthetic_match, monkeypatch
):
    inbox = Inbox(tmp_path, trained_model, monkeypatch)
    path = inbox.drop(synthetic_match[0], "replay.mp4")
    stale = inbox.inbox.video(path)
    os.utime(path, ns=(stale.mtime_ns + 10**9, stale.mtime_ns + 10**9))
    dag = airflow_env.load_dag()
    airflow_env.no_retries(dag)
    run = dag.test(run_conf={**stale.conf()})
    states = airflow_env.task_states(run)
    assert str(run.state) == "success", states
    assert states["local.claim_video"] == "skipped"
    assert states["local.features"] == "skipped"


# --- a video that cannot be processed -------------------------------------------------------------


def test_a_failing_video_is_retried_then_parked_with_its_error(
    tmp_path, trained_model, monkeypatch
):
    airflow_env.migrate()
    monkeypatch.setenv("AIRFLOW__HIGHLIGHTS__MAX_ATTEMPTS", "2")
    inbox = Inbox(tmp_path, trained_model, monkeypatch)
    broken = inbox.incoming / "broken feed.mp4"
    broken.write_bytes(os.urandom(50_000))
    original = broken.read_bytes()
    video = inbox.inbox.video(broken)

    inbox.dispatch()
    first = inbox.run(video.first_run_id)
    assert str(first.state) == "failed"
    claim = inbox.inbox.claims.read(broken.name)
    assert claim.state == "running" and "broken feed.mp4" in claim.last_error

    inbox.dispatch()
    retry = f"{video.first_run_id}__try2"
    assert retry in inbox.runs()
    assert inbox.inbox.claims.read(broken.name).state == "retry"
    assert str(inbox.run(retry).state) == "failed"
    assert broken.exists()  # one failure short of the limit: still in the folder

    inbox.dispatch()
    parked = inbox.incoming / "failed" / "broken feed.mp4"
    assert not broken.exists()
    assert parked.read_bytes() == original
    error = (inbox.incoming / "failed" / "broken feed.mp4.error.txt").read_text()
    assert "failed 2 times" in error
    assert claim.last_error.splitlines()[0] in error
    assert video.first_run_id in error and retry in error
    assert inbox.inbox.claims.read(broken.name) is None
    assert set(inbox.runs()) == {video.first_run_id, retry}
