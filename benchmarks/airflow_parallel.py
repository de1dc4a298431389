"""Three demo matches through real Airflow: all at once against one after another.

Starts the real Airflow processes (api-server, scheduler, dag-processor, triggerer; SQLite,
LocalExecutor) twice on fresh homes, once with `[highlights] max_active_runs=3` and once with 1,
drops the same three 60 s demo matches into the watched folder, and prints the time from the drop
to the last run's end, each run's duration and the ratio (all measured in this one run).

    .venv/bin/python benchmarks/airflow_parallel.py [--model demo-out/model]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from highlights import synthetic  # noqa: E402
from highlights.config import Config  # noqa: E402
from highlights.demo import MATCH_SECONDS, TRUE_EVENTS  # noqa: E402
from highlights.training import train  # noqa: E402
from tests.airflow_processes import AirflowProcesses  # noqa: E402

PIPELINE, INBOX = "highlights_pipeline", "highlights_inbox"


def run_matches(home: Path, model: Path, matches: list[Path], max_active_runs: int) -> dict:
    incoming = home / "incoming"
    incoming.mkdir(parents=True)
    variables = {
        "highlights_local": {
            "incoming_dir": str(incoming),
            "output_dir": str(home / "out"),
            "model_dir": str(model),
            "settle_seconds": 1,
        },
        "highlights_targets": [synthetic.EVENT_CLASS],
        "highlights_backend": "local",
    }
    config = {
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__HIGHLIGHTS__MAX_ACTIVE_RUNS": str(max_active_runs),
        "AIRFLOW__HIGHLIGHTS__INBOX_POLL_SECONDS": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    }
    with AirflowProcesses(home / "airflow", variables, config) as airflow:
        airflow.wait_for(
            lambda: airflow.dag_parsed(PIPELINE) and airflow.dag_parsed(INBOX), 300, "DAGs"
        )
        airflow.unpause(PIPELINE)
        airflow.unpause(INBOX)
        dropped = datetime.now().astimezone()
        start = time.monotonic()
        for match in matches:
            (incoming / match.name).write_bytes(match.read_bytes())

        def done() -> list[dict] | None:
            runs = airflow.runs(PIPELINE)
            if any(r["state"] == "failed" for r in runs):
                raise RuntimeError(f"a run failed:\n{airflow.tail_logs()}")
            finished = [r for r in runs if r["state"] == "success"]
            return finished if len(finished) == len(matches) else None

        runs = airflow.wait_for(done, 3600, "every run")
        wall = time.monotonic() - start
    ends = [datetime.fromisoformat(r["end_date"]) for r in runs]
    durations = sorted(
        (
            datetime.fromisoformat(r["end_date"]) - datetime.fromisoformat(r["start_date"])
        ).total_seconds()
        for r in runs
    )
    return {
        "wall": wall,
        "drop_to_last_end": (max(ends) - dropped).total_seconds(),
        "durations": durations,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", type=Path, help="a trained model folder (default: train one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model
        if model is None:
            dataset = synthetic.make_dataset(tmp / "dataset", clips_per_class=4, seconds=3.0)
            model = tmp / "model"
            train(
                dataset, model, Config(cache_dir=tmp / "train-cache").replace(**{"train.epochs": 3})
            )
        matches = [
            synthetic.make_match(
                tmp / f"demo match {i + 1}.mp4", MATCH_SECONDS, TRUE_EVENTS, seed=99 + i
            )
            for i in range(3)
        ]
        parallel = run_matches(tmp / "parallel", model.resolve(), matches, 3)
        serial = run_matches(tmp / "serial", model.resolve(), matches, 1)
    print(
        f"three {MATCH_SECONDS:.0f} s demo matches, real Airflow (LocalExecutor, SQLite), "
        f"{os.cpu_count()} CPUs"
    )
    for label, result in (
        ("all at once (max_active_runs=3)", parallel),
        ("one after another (max_active_runs=1)", serial),
    ):
        runs = ", ".join(f"{d:.0f}" for d in result["durations"])
        print(f"{label:40s} drop to last end {result['drop_to_last_end']:6.1f} s; runs {runs} s")
    ratio = serial["drop_to_last_end"] / parallel["drop_to_last_end"]
    print(f"{'one after another / all at once':40s} {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
