"""
### Local backend: one highlights run per video dropped into the watched folder

Looks at `incoming_dir` of the `highlights_local` Variable every `inbox_poll_seconds` (the
`[highlights]` configuration). Each settled video (unchanged for `settle_seconds`) gets one run
of `highlights_pipeline` with the deterministic run id `local__<file>-<id>` and a note with the
file's name, size and path; a run that exists already is skipped, so nothing starts twice.

A run that failed is retried as `...__try2`, `...__try3` up to `max_attempts`; then the video
moves to `incoming_dir/failed/` with its errors in `<name>.error.txt` beside it. Each run of
this DAG is one batch: it waits (rescheduled, no worker slot held) until there is something to
start, starts it, and the next run takes over.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dispatch_steps
from airflow.sdk import PokeReturnValue, dag, task
from highlights_airflow import dispatch, local, pipeline_run_state, start_match_runs

SETTINGS = dispatch()


@dag(
    dag_id="highlights_inbox",
    schedule="@continuous",
    max_active_runs=1,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["highlights", "dispatcher"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
)
def highlights_inbox() -> None:
    @task.sensor(
        poke_interval=SETTINGS.inbox_poll_seconds,
        timeout=3600,
        mode="reschedule",
        soft_fail=True,
    )
    def find_new_videos(ti: Any = None) -> PokeReturnValue:
        """The runs to start: new settled videos and retries of failed ones. Parks videos
        whose runs failed `max_attempts` times."""
        requests = dispatch_steps.dispatch_inbox(
            local().inbox,
            lambda run_id: pipeline_run_state(ti, run_id),
            SETTINGS.max_attempts,
        )
        return PokeReturnValue(is_done=bool(requests), xcom_value=requests)

    start_match_runs(find_new_videos())


highlights_inbox()
