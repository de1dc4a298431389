"""End to end with real Airflow processes: three videos dropped at once become three overlapping
runs; a scheduler and triggerer killed and restarted lose and duplicate nothing.

`airflow api-server`, `scheduler`, `dag-processor` and `triggerer` run on a temporary
AIRFLOW_HOME (SQLite, LocalExecutor, a free loopback port), driven only through the REST API v2,
as a user would. Airflow 3 tasks talk to the api-server's Execution API instead of the database,
so the LocalExecutor runs tasks in parallel on SQLite (Airflow 2 refused that combination).
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.airflow_processes import AirflowProcesses

pytestmark = pytest.mark.slow

PIPELINE = "highlights_pipeline"
INBOX = "highlights_inbox"
TARGET = "PenaltyKick"
NAMES = ("saturday early.mp4", "saturday late.mp4", "sunday.mp4")


@pytest.fixture(scope="module")
def matches(tmp_path_factory) -> list[Path]:
    """Four short synthetic matches, each different (its own features, its own output)."""
    from highlights import synthetic

    folder = tmp_path_factory.mktemp("e2e-matches")
    return [
        synthetic.make_match(folder / f"m{seed}.mp4", 12.0, [synthetic.Event(4.0, 8.0)], seed=seed)
        for seed in range(4)
    ]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, trained_model):
    home = tmp_path_factory.mktemp("airflow-home")
    incoming, out = home / "incoming", home / "out"
    incoming.mkdir()
    variables = {
        "highlights_local": {
            "incoming_dir": str(incoming),
            "output_dir": str(out),
            "model_dir": str(trained_model),
            "settle_seconds": 1,
        },
        "highlights_targets": [TARGET],
        "highlights_backend": "local",
    }
    config = {
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__HIGHLIGHTS__MAX_ACTIVE_RUNS": "3",
        "AIRFLOW__HIGHLIGHTS__INBOX_POLL_SECONDS": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with AirflowProcesses(home, variables, config) as processes:
        processes.incoming = incoming
        yield processes


def finished(airflow: AirflowProcesses, count: int) -> list[dict] | None:
    runs = [r for r in airflow.runs(PIPELINE) if r["dag_run_id"].startswith("local__")]
    failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
    if failed:
        raise AssertionError(f"runs failed: {failed}\n{airflow.tail_logs()}")
    done = [r for r in runs if r["state"] == "success"]
    return done if len(done) >= count else None


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_three_dropped_videos_run_at_once_and_survive_a_restart(airflow, matches):
    started = time.monotonic()
    try:
        airflow.wait_for(
            lambda: airflow.dag_parsed(PIPELINE) and airflow.dag_parsed(INBOX), 180, "the DAGs"
        )
        assert airflow.import_errors() == []
        airflow.unpause(PIPELINE)
        airflow.unpause(INBOX)

        for name, match in zip(NAMES, matches, strict=False):
            (airflow.incoming / name).write_bytes(match.read_bytes())
        runs = airflow.wait_for(lambda: finished(airflow, 3), 600, "three successful runs")

        assert len(runs) == 3
        assert sorted(r["conf"]["video"] for r in runs) == sorted(
            str(airflow.incoming / n) for n in NAMES
        )
        for run in runs:
            assert Path(run["conf"]["video"]).name in run["note"]
        # All three were running at one moment: the last to start began before the first ended.
        assert max(when(r["start_date"]) for r in runs) < min(when(r["end_date"]) for r in runs)
        first_three = {r["dag_run_id"]: r["end_date"] for r in runs}

        scheduler, triggerer = airflow.pid("scheduler"), airflow.pid("triggerer")
        airflow.stop("scheduler", "triggerer", sig=signal.SIGKILL)
        late = airflow.incoming / "monday.mp4"
        late.write_bytes(matches[3].read_bytes())  # dropped while nothing schedules
        airflow.start("scheduler", "triggerer")
        assert (airflow.pid("scheduler"), airflow.pid("triggerer")) != (scheduler, triggerer)

        runs = airflow.wait_for(lambda: finished(airflow, 4), 600, "the late video's run")
        every = airflow.runs(PIPELINE)
        assert len(every) == 4, [r["dag_run_id"] for r in every]  # none lost, none twice
        assert {r["dag_run_id"]: r["end_date"] for r in runs if r["dag_run_id"] in first_three} == (
            first_three
        )
        [monday] = [r for r in runs if r["dag_run_id"] not in first_three]
        assert monday["conf"]["video"] == str(late)
        assert monday["dag_run_id"].startswith("local__monday-")
    except BaseException:
        print(airflow.tail_logs())  # the processes' own logs, for the failure report
        raise
    finally:
        print(f"end-to-end test took {time.monotonic() - started:.0f} s with the processes up")
