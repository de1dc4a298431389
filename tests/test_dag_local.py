"""The DAG's local backend under real Airflow (`dag.test()`), on a generated match video.

The model is the session's real one (trained on synthetic clips in conftest.py); the run
picks the video up from the watched folder, as a user's drop would be.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from highlights.matches import LocalInbox
from tests import airflow_env

airflow_env.configure()

TARGET = "PenaltyKick"  # highlights.synthetic.EVENT_CLASS


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, trained_model, synthetic_match):
    """One run of the DAG on a match dropped into the watched folder."""
    airflow_env.migrate()
    root = tmp_path_factory.mktemp("local-backend")
    incoming, out = root / "incoming", root / "out"
    incoming.mkdir()
    shutil.copy(synthetic_match[0], incoming / "cup final.mp4")
    patch = pytest.MonkeyPatch()
    airflow_env.set_variable(
        patch,
        "highlights_local",
        {
            "incoming_dir": str(incoming),
            "output_dir": str(out),
            "model_dir": str(trained_model),
            "settle_seconds": 0,
        },
    )
    airflow_env.set_variable(patch, "highlights_backend", "local")
    dag = airflow_env.load_dag()
    airflow_env.no_retries(dag)
    try:
        yield dag.test(run_conf={"targets": [TARGET]}), out, incoming
    finally:
        patch.undo()


def match_folder(out: Path) -> Path:
    folders = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1, folders
    return folders[0]


def test_local_run_succeeds(local_run):
    dag_run, _, _ = local_run
    assert str(dag_run.state) == "success", airflow_env.task_states(dag_run)


def test_local_run_writes_clips_reel_report_and_email(local_run):
    _, out, _ = local_run
    folder = match_folder(out)
    assert folder.name.startswith("cup-final-")
    clips = sorted((folder / "clips").glob("clip-*.mp4"))
    assert clips and all(c.stat().st_size > 1000 for c in clips)
    assert (folder / "highlights-reel.mp4").stat().st_size > 1000
    assert "<svg" in (folder / "report.html").read_text()
    email = (folder / "notification.eml").read_text()
    assert "cup final.mp4" in email
    assert clips[0].name in email


def test_local_run_records_every_window(local_run):
    from highlights.results import SQLiteResults

    _, out, _ = local_run
    folder = match_folder(out)
    match_id = json.loads((folder / ".highlights-run.json").read_text())["match_id"]
    records = SQLiteResults(folder / "results.sqlite").get(match_id)
    assert len(records) >= 25  # a 30 s match, 2 s windows every 1 s
    assert any(r.picked for r in records)


def test_local_run_skips_the_aws_backend(local_run):
    dag_run, _, _ = local_run
    states = airflow_env.task_states(dag_run)
    aws = {task: state for task, state in states.items() if task.startswith("aws.")}
    assert aws and set(aws.values()) == {"skipped"}, aws


def test_the_dropped_video_is_claimed_once(local_run):
    _, out, incoming = local_run
    inbox = LocalInbox(incoming, out / ".claimed", settle_seconds=0)
    assert inbox.next_new() is None


# --- the watched folder -------------------------------------------------------------------------


def test_inbox_hands_out_the_oldest_settled_video(tmp_path):
    (tmp_path / "in").mkdir()
    first, second = tmp_path / "in" / "a.mp4", tmp_path / "in" / "b.mkv"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    os.utime(first, (time.time() - 100, time.time() - 100))
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    inbox = LocalInbox(tmp_path / "in", tmp_path / "ledger", settle_seconds=0)
    assert inbox.next_new() == first
    inbox.claim(first)
    assert inbox.next_new() == second


def test_inbox_waits_for_a_file_still_being_copied(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"partial")
    inbox = LocalInbox(tmp_path / "in", tmp_path / "ledger", settle_seconds=60)
    assert inbox.next_new() is None


def test_inbox_offers_a_replaced_video_again(tmp_path):
    (tmp_path / "in").mkdir()
    video = tmp_path / "in" / "a.mp4"
    video.write_bytes(b"first")
    inbox = LocalInbox(tmp_path / "in", tmp_path / "ledger", settle_seconds=0)
    inbox.claim(video)
    video.write_bytes(b"second upload")
    assert inbox.next_new() == video


def test_inbox_names_a_missing_folder(tmp_path):
    from highlights.errors import InputError

    with pytest.raises(InputError, match="watched folder not found"):
        LocalInbox(tmp_path / "nope", tmp_path / "ledger").next_new()
