"""Helpers for tests that run the real Airflow 3 in this process.

`configure()` must run before anything imports airflow: it points AIRFLOW_HOME at a fresh
temporary folder (SQLite database, no example DAGs) whose DAGs and plugins folders are the
repository's, and puts those folders on sys.path as the DAG processor and workers do.
`migrate()` creates the metadata database and the DAGs' pools once per process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
PLUGINS = REPO / "plugins"
POOLS = DAGS / "pools.json"
DAG_ID = "highlights_pipeline"
INBOX_DAG_ID = "highlights_inbox"

_HOME_VAR = "HIGHLIGHTS_TEST_AIRFLOW_HOME"


def configure() -> Path:
    """Set the Airflow environment for this process (idempotent); returns AIRFLOW_HOME."""
    existing = os.environ.get(_HOME_VAR)
    if existing:
        return Path(existing)
    if "airflow" in sys.modules:
        raise RuntimeError("airflow was imported before tests/airflow_env.configure() ran")
    home = Path(tempfile.mkdtemp(prefix="highlights-airflow-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        {
            _HOME_VAR: str(home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    for folder in (DAGS, PLUGINS):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    return home


_migrated: list[bool] = []


def migrate() -> None:
    """Create the metadata database (what `airflow db migrate` does) and the pools of
    dags/pools.json (what `airflow pools import` does), once per process."""
    if _migrated:
        return
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    for name, pool in json.loads(POOLS.read_text()).items():
        Pool.create_or_update_pool(
            name, pool["slots"], pool["description"], pool["include_deferred"]
        )
    _migrated.append(True)


def load_dag(dag_id: str = DAG_ID) -> Any:
    """A DAG of the dags/ folder, parsed the way the DAG processor parses it."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    if bag.import_errors:
        raise AssertionError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def run_triggered(dag: Any, run_id: str) -> Any:
    """Run a run that a dispatcher triggered (queued, with its conf and note) to its end, in
    this process, with `dag.test()`'s scheduling loop instead of a scheduler."""
    from unittest import mock

    import airflow.models.dagrun as dagrun_module
    from airflow.models.dagrun import DagRun
    from airflow.sdk.timezone import utcnow
    from airflow.utils.state import DagRunState

    def existing_run(*, dag: Any, session: Any, **_: Any) -> DagRun:
        run = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).one()
        run.state, run.start_date = DagRunState.RUNNING, utcnow()
        for ti in run.get_task_instances(session=session):  # made with the DAG's own retries
            ti.max_tries = dag.get_task(ti.task_id).retries
        session.commit()
        run.dag = dag
        return run

    # dag.test() clears task instances of its logical date first: give one no run has.
    unused_date = datetime(1971, 1, 1, tzinfo=UTC)
    with mock.patch.object(dagrun_module, "get_or_create_dagrun", existing_run):
        return dag.test(logical_date=unused_date)


def dag_runs(dag_id: str = DAG_ID) -> dict[str, Any]:
    """run_id -> the run (state, conf, note, dates) of every run of a DAG, from the database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter_by(dag_id=dag_id).all()
        for run in runs:
            _ = run.note  # loaded before the session closes
        session.expunge_all()
        return {run.run_id: run for run in runs}


def no_retries(dag: Any) -> None:
    """A failing task fails the test at once instead of waiting out the DAG's retry delay."""
    for task in dag.tasks:
        task.retries = 0


def set_variable(patch: Any, name: str, value: Any) -> None:
    """An Airflow Variable, through the environment (no DB write), undone with `patch`."""
    text = value if isinstance(value, str) else json.dumps(value)
    patch.setenv(f"AIRFLOW_VAR_{name.upper()}", text)


def set_aws_connection(patch: Any, endpoint_url: str, region: str) -> None:
    """`aws_default` pointing at a local moto server, undone with `patch`."""
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": region, "endpoint_url": endpoint_url},
    }
    patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))


def task_states(dag_run: Any) -> dict[str, str]:
    """`task_id[map_index]` -> state of every task instance of a finished run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
            for ti in run.get_task_instances(session=session)
        }


def xcom(dag_run: Any, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
                task_id=task_id,
                map_index=map_index,
                key=key,
            )
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def map_labels(dag_run: Any, task_id: str) -> list[str]:
    """The labels (rendered map indexes) of a mapped task's instances, as the UI shows them."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id
        )
        return sorted(str(ti.rendered_map_index) for ti in tis)


@contextlib.contextmanager
def moto_aws(patch: Any, region: str) -> Iterator[str]:
    """A moto server on a free loopback port; fake credentials and `aws_default` pointing at it
    (undone with `patch`). Yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
    }.items():
        patch.setenv(name, value)
    set_aws_connection(patch, endpoint, region)
    try:
        yield endpoint
    finally:
        server.stop()
