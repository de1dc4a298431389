"""Real Airflow 3 processes on a temporary AIRFLOW_HOME: api-server, scheduler, dag-processor,
triggerer, with SQLite and the LocalExecutor, on a free loopback port.

Used by the end-to-end test and by `benchmarks/airflow_parallel.py`:

    with AirflowProcesses(home, variables, config) as airflow:
        airflow.unpause("highlights_pipeline")
        runs = airflow.runs("highlights_pipeline")

Every process runs in its own session; `stop` signals that process group by the pid it started
(never by name), and leaving the block stops all of them. Their output goes to
`home/logs/<process>.out`; `tail_logs()` returns the ends for a failure report.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = Path(sys.executable).with_name("airflow")
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowProcesses:
    def __init__(
        self,
        home: Path,
        variables: Mapping[str, Any],
        config: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "PATH": f"{AIRFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            # The scheduler signs the tasks' Execution API tokens, the api-server checks them.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **{f"AIRFLOW_VAR_{k.upper()}": json.dumps(v) for k, v in variables.items()},
            **(config or {}),
        }
        self.env.pop("HIGHLIGHTS_TEST_AIRFLOW_HOME", None)
        self.token = ""

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> AirflowProcesses:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        # The simple auth manager reads the password from this file; written before any start.
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        passwords.write_text(json.dumps({USER: self.password}))
        try:
            self.run("db", "migrate")
            self.run("pools", "import", str(REPO / "dags" / "pools.json"))
            self.start(*PROCESSES)
            self.wait_for(self._api_up, 120, "the api-server to answer")
            self.token = self._login()
        except BaseException:
            self.stop(*self.procs)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(*self.procs)

    def run(self, *args: str) -> None:
        """A one-off `airflow` command; raises with its output when it fails."""
        done = subprocess.run(
            [str(AIRFLOW), *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self, *names: str) -> None:
        for name in names:
            log = open(self.home / "logs" / f"{name}.out", "ab")  # noqa: SIM115 (the process owns it)
            self.procs[name] = subprocess.Popen(
                [str(AIRFLOW), name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def stop(self, *names: str, sig: int = signal.SIGTERM, grace: float = 30) -> None:
        """Signal each process's group (its pid; its children with it), then make sure."""
        for name in list(names):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def tail_logs(self, lines: int = 60) -> str:
        parts = []
        for path in sorted((self.home / "logs").glob("*.out")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} -----\n" + "\n".join(text))
        return "\n".join(parts)

    # --- REST API v2 -------------------------------------------------------------------------

    def _api_up(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}")
        try:
            return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def _login(self) -> str:
        response = httpx.post(
            f"{self.url}/auth/token",
            json={"username": USER, "password": self.password},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.url}/api/v2/{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def dag_parsed(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"dags/{dag_id}")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                return False
            raise
        return True

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})

    def import_errors(self) -> list[dict]:
        return self.api("GET", "importErrors")["import_errors"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(2)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}")
