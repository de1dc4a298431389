"""
### Sports highlights: one run per match

Each run processes one match. Runs are started by the dispatcher DAGs, one per input, with a run
id that names the match and a note with the file's name, size and location:

* **local** (`highlights_inbox`, run ids `local__<file>-<id>`): a video settled in the watched
  folder. Runs the library's stages on this machine: features → scores → segments → clips →
  reel → report → email file.
* **aws** (`highlights_uploads` from the SQS upload queue, and the hourly
  `highlights_upload_sweep`; run ids `upload__<match id>`): MediaConvert frame capture →
  SageMaker Processing (features, sharded) → SageMaker Processing (scores, one DynamoDB item per
  window) → ranges → one MediaConvert job per clip and one for the reel → SES email with
  expiring links → cleanup.

Several matches run at once (`max_active_runs` in the `[highlights]` configuration); the pools
`highlights_cpu`, `mediaconvert` and `sagemaker` keep the shared machines and services from being
swamped. To run one file by hand, trigger with `video` (local) or `key` and `etag` (aws).

A run that fails is retried by its dispatcher as a new run (`...__try2`), up to
`max_attempts`; then the input is parked (`failed/` locally, a `failed.json` marker on S3).
Each finished match updates the `highlights_match_results` asset (match id, clips, reel).
The backend is the run's `backend` param, else the `highlights_backend` Variable, else local.
See dags/README.md for every setting.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import highlights_steps as steps
from airflow.sdk import Asset, Param, TaskGroup, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.task.trigger_rule import TriggerRule
from highlights_airflow import (
    AWS_CONN,
    CPU_POOL,
    MEDIACONVERT_POOL,
    PIPELINE_DAG_ID,
    SAGEMAKER_POOL,
    aws_var,
    dispatch,
)
from highlights_airflow import aws as _aws
from highlights_airflow import backend as _backend
from highlights_airflow import client as _client
from highlights_airflow import local as _local
from highlights_airflow import s3 as _s3
from highlights_airflow import s3_links as _s3_links
from highlights_airflow import targets as _targets
from mediaconvert import MediaConvertCreateJobOperator, MediaConvertHook
from sagemaker_processing import SageMakerProcessingOnceOperator

from highlights.errors import SupersededError

log = logging.getLogger(__name__)
_aws_var = aws_var
CLAIM = "aws.claim_upload"
RESULTS_URL = "{{ ti.xcom_pull(task_ids='" + CLAIM + "')['highlights_url'] }}"
PLAN = "aws.plan_upload"


def _planned(field: str) -> str:
    """A template for one field of the run's plan (`plan_upload`), rendered when the task runs."""
    return "{{ ti.xcom_pull(task_ids='" + PLAN + "')['" + field + "'] }}"


# Mapped clip jobs are labelled with the range they cut, in source timecode.
_CLIPPING = "task.settings.Inputs[0].InputClippings[0]"
CLIP_LABEL = "{{ task.purpose }} {{ %s.StartTimecode }}-{{ %s.EndTimecode }}" % (  # noqa: UP031
    _CLIPPING,
    _CLIPPING,
)
# One event per finished match; `extra` carries its match id, clips and reel.
MATCH_RESULTS = Asset(name="highlights_match_results", uri="highlights://match-results")


def _note_failure(context: dict[str, Any]) -> None:
    """on_failure_callback of every task: keep the error with the input's claim record."""
    params, run_id, ti = context["params"], context["run_id"], context["ti"]
    error = f"{ti.task_id}: {context.get('exception')}"
    if _backend(params) == "local":
        steps.note_local_error(_local(), params.get("video", ""), run_id, error)
        return
    match = ti.xcom_pull(task_ids=CLAIM) or params
    steps.note_upload_error(
        _s3(), _aws(), match.get("key", ""), match.get("etag", ""), run_id, error
    )


@dag(
    dag_id=PIPELINE_DAG_ID,
    schedule=None,
    max_active_runs=dispatch().max_active_runs,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["highlights"],
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": _note_failure,
    },
    params={
        "backend": Param(
            "",
            type="string",
            enum=["", *steps.BACKENDS],
            description="local or aws; empty: the highlights_backend Variable",
        ),
        "video": Param("", type="string", description="local: the video file to process"),
        "key": Param("", type="string", description="aws: the uploaded object's key"),
        "etag": Param(
            "",
            type="string",
            description="the version the run is for (S3 ETag; local: size-mtime); "
            "empty: whatever is there now",
        ),
        "targets": Param(
            [],
            type="array",
            description="classes that make a highlight; empty: the highlights_targets Variable",
        ),
        "threshold": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="score a window needs to start a highlight, for every target; "
            "empty: the thresholds the model calibrated per class when it was trained",
        ),
        "capture_rate": Param(
            5.0,
            type="number",
            exclusiveMinimum=0,
            description="aws: frames/s captured; must be the model's rate",
        ),
        "backbone": Param(
            "efficientnet_lite0", type="string", description="aws: backbone of the model"
        ),
        "instance_type": Param("ml.m5.xlarge", type="string"),
        "features_instances": Param(1, type="integer", minimum=1),
        "volume_gb": Param(
            0,
            type="integer",
            minimum=0,
            maximum=16384,
            description="aws: processing volume per instance (GB); 0: sized from the match",
        ),
    },
)
def highlights_pipeline() -> None:
    @task.branch
    def choose_backend(params: dict) -> str:
        """The run's `backend` param, else the `highlights_backend` Variable, else local."""
        return "local.claim_video" if _backend(params) == "local" else "aws.claim_upload"

    branch = choose_backend()

    with TaskGroup("local"):

        @task
        def claim_video(params: dict, run_id: str) -> dict:
            """Record this run's attempt at the video (skipped if the file was replaced since)
            and give it its own output folder, named by content."""
            try:
                return steps.claim_local_video(
                    _local(),
                    params["video"],
                    params["etag"],
                    run_id,
                    _targets(params),
                    params["threshold"],
                )
            except SupersededError as exc:
                raise AirflowSkipException(str(exc)) from None

        @task(pool=CPU_POOL)
        def features(run: dict) -> str:
            """Sample frames and run the image backbone (cached per video)."""
            from highlights.pipeline import stage_features

            return str(
                stage_features(
                    Path(run["video"]),
                    Path(run["work_dir"]),
                    steps.local_config(run),
                    digest=run["digest"],
                )
            )

        @task(pool=CPU_POOL)
        def scores(run: dict, features_path: str) -> str:
            """Score every window with the sequence model."""
            from highlights.pipeline import stage_scores

            config = steps.local_config(run)
            return str(
                stage_scores(
                    Path(features_path), Path(run["model_dir"]), Path(run["work_dir"]), config
                )
            )

        @task
        def segments(run: dict, scores_path: str) -> str:
            """Merge passing windows into ranges; record every window in results.sqlite."""
            from highlights.local.sqlite import SQLiteResults
            from highlights.pipeline import RESULTS_DB, stage_segments

            out = Path(run["out_dir"])
            return str(
                stage_segments(
                    Path(scores_path),
                    Path(run["video"]),
                    run["targets"],
                    steps.local_config(run),
                    out,
                    SQLiteResults(out / RESULTS_DB),
                    run["match_id"],
                )
            )

        @task(pool=CPU_POOL)
        def clips(run: dict, segments_path: str) -> list[str]:
            """Cut one clip and thumbnail per range."""
            from highlights.pipeline import stage_clips

            made = stage_clips(
                Path(run["video"]),
                Path(segments_path),
                Path(run["out_dir"]),
                steps.local_config(run),
            )
            return [str(p) for p in made]

        @task(pool=CPU_POOL)
        def reel(run: dict, clip_paths: list[str]) -> str | None:
            """Join the clips into one reel."""
            from highlights.pipeline import stage_reel

            made = stage_reel([Path(p) for p in clip_paths], Path(run["out_dir"]))
            return str(made) if made else None

        @task
        def timelines(run: dict, segments_path: str, clip_paths: list[str]) -> list[str]:
            """The highlights as editor timelines: OpenTimelineIO, CMX 3600 EDL, FCP XML."""
            from highlights.pipeline import stage_timelines

            made = stage_timelines(
                Path(run["video"]),
                Path(segments_path),
                [Path(p) for p in clip_paths],
                Path(run["out_dir"]),
            )
            return [str(p) for p in made]

        @task
        def report(
            run: dict,
            scores_path: str,
            segments_path: str,
            clip_paths: list[str],
            reel_path: str | None,
        ) -> str:
            """The HTML report: score timeline, ranges, a player, thumbnail and link per clip."""
            from highlights.pipeline import stage_report

            return str(
                stage_report(
                    Path(run["video"]),
                    Path(scores_path),
                    Path(segments_path),
                    [Path(p) for p in clip_paths],
                    Path(run["out_dir"]),
                    steps.local_config(run),
                    Path(reel_path) if reel_path else None,
                )
            )

        @task
        def email(
            run: dict, segments_path: str, clips: list[str], reel: str | None, report: str
        ) -> str:
            """Write notification.eml, or send it when `mail.smtp_host` is configured."""
            from highlights.pipeline import default_notifier, stage_notify

            config = steps.local_config(run)
            return stage_notify(
                video=Path(run["video"]),
                segments_path=Path(segments_path),
                clips=[Path(p) for p in clips],
                reel=Path(reel) if reel else None,
                report=Path(report),
                notifier=default_notifier(config, Path(run["out_dir"])),
                config=config,
            )

        @task(outlets=[MATCH_RESULTS])
        def finish_match(
            run: dict, clips: list[str], reel: str | None, params: dict, run_id: str, outlet_events
        ) -> dict:
            """Mark the video done (no dispatcher starts it again) and announce the results."""
            steps.finish_local_video(_local(), params["video"], run_id)
            results = {"match_id": run["match_id"], "clips": clips, "reel": reel}
            outlet_events[MATCH_RESULTS].extra = {**results, "folder": run["out_dir"]}
            return results

        run = claim_video()
        feature_file = features(run)
        score_file = scores(run, feature_file)
        segment_file = segments(run, score_file)
        clip_files = clips(run, segment_file)
        reel_file = reel(run, clip_files)
        timeline_files = timelines(run, segment_file, clip_files)
        report_file = report(run, score_file, segment_file, clip_files, reel_file)
        sent = email(run, segment_file, clip_files, reel_file, report_file)
        [sent, timeline_files] >> finish_match(run, clip_files, reel_file)
        branch >> run

    with TaskGroup("aws"):

        @task
        def claim_upload(params: dict, run_id: str) -> dict:
            """Record this run's attempt at the upload; skipped if a newer upload replaced it
            (`HeadObject` with `IfMatch` on the run's ETag)."""
            try:
                return steps.claim_upload(_s3(), _aws(), params["key"], params["etag"], run_id)
            except SupersededError as exc:
                raise AirflowSkipException(str(exc)) from None

        @task
        def probe_upload(match: dict) -> dict:
            """MediaConvert `Probe`: duration, frame rate, audio."""
            from dataclasses import asdict

            from highlights.aws.mediaconvert import source_info

            settings = _aws()
            hook = MediaConvertHook(
                aws_conn_id=AWS_CONN,
                region_name=settings.region,
                endpoint_url=settings.mediaconvert_endpoint,
            )
            return asdict(source_info(hook.probe(match["source_url"]), match["source_url"]))

        @task
        def plan_upload(match: dict, params: dict) -> dict:
            """Name this run's outputs and jobs by what determines them: the features recipe
            (backbone, rate, frame size) and the decision (recipe, model, targets, threshold)."""
            return steps.plan_upload(
                _s3(),
                _aws(),
                match,
                backbone=params["backbone"],
                capture_rate=params["capture_rate"],
                targets=_targets(params),
                threshold=params["threshold"],
            )

        @task
        def normalize_settings(run: dict, source: dict) -> dict:
            """A variable-frame-rate upload is converted to a constant rate first, so that clip
            timecodes name the right frames; skipped for a constant-rate upload."""
            from highlights.aws.mediaconvert import SourceInfo
            from highlights.aws.plan import normalize_request

            settings = normalize_request(steps.run_plan(run), SourceInfo(**source))
            if settings is None:
                raise AirflowSkipException("constant frame rate: no conversion needed")
            return settings

        @task
        def frame_capture_settings(run: dict, source: dict, params: dict) -> dict:
            """The MediaConvert frame-capture job's settings: frames at the backbone's input size,
            and the proxy MP4 MediaConvert requires beside a frame capture."""
            from highlights.aws.mediaconvert import SourceInfo
            from highlights.aws.plan import capture_request

            return capture_request(
                steps.run_plan(run),
                SourceInfo(**source),
                params["backbone"],
                params["capture_rate"],
            )

        @task
        def features_job(run: dict, source: dict, params: dict) -> dict:
            """The features processing job's request; its volume sized from the match's length
            unless the run's `volume_gb` param sets it."""
            from highlights.aws.mediaconvert import SourceInfo
            from highlights.aws.plan import features_request, volume_gb

            instances = params["features_instances"]
            size = params["volume_gb"] or volume_gb(
                SourceInfo(**source), params["backbone"], params["capture_rate"], instances
            )
            return features_request(
                steps.run_plan(run),
                _aws().processing(params["instance_type"], instances, size),
                backbone=params["backbone"],
                rate=params["capture_rate"],
            )

        @task
        def scores_job(run: dict, source: dict, params: dict) -> dict:
            """The scoring processing job's request."""
            from highlights.aws.mediaconvert import SourceInfo
            from highlights.aws.plan import scores_request

            settings = _aws()
            return scores_request(
                steps.run_plan(run),
                settings,
                settings.processing(params["instance_type"], 1),
                SourceInfo(**source),
                targets=_targets(params),
                threshold=params["threshold"],
            )

        @task
        def find_ranges(run: dict) -> list[dict]:
            """Publish the scoring job's segments.json in the results folder; its ranges."""
            return steps.publish_ranges(_s3(), _aws(), run)

        @task
        def clip_jobs(run: dict, source: dict, ranges: list[dict]) -> list[dict]:
            """One MediaConvert job request per range."""
            return steps.clip_jobs(run, source, ranges)

        @task
        def reel_job(run: dict, source: dict, ranges: list[dict]) -> dict:
            """The reel's job settings (skipped when nothing was detected)."""
            settings = steps.reel_job(run, source, ranges)
            if settings is None:
                raise AirflowSkipException("no highlights: no reel")
            return settings

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def send_email(run: dict, ranges: list[dict]) -> str:
            """Email expiring links to the clips and reel (once per decision)."""
            return steps.send_email_once(_s3(), _s3_links(), _client("ses"), _aws(), run, ranges)

        @task(outlets=[MATCH_RESULTS])
        def finish_upload(
            match: dict, run: dict, ranges: list[dict], run_id: str, outlet_events
        ) -> dict:
            """Mark the upload done (no dispatcher starts it again) and announce the results."""
            steps.finish_upload(_s3(), _aws(), match, run_id)
            results = steps.upload_results(run, len(ranges))
            outlet_events[MATCH_RESULTS].extra = results
            return results

        @task
        def delete_scratch(run: dict, folder: str) -> int:
            """Remove a scratch folder (frames, proxy, scores) once what reads it succeeded.

            Only after success: a failed run keeps its inputs for a manual re-run, and the work
            bucket's lifecycle rule expires whatever is left. Features are kept (and expire) so
            that a re-run with new decision settings re-scores only."""
            return steps.delete_prefix(
                _s3(), _aws().work_bucket, steps.run_plan(run).scratch(folder)
            )

        job_args = {
            "role_arn": _aws_var("mediaconvert_role_arn"),
            "match_id": "{{ ti.xcom_pull(task_ids='" + CLAIM + "')['match_id'] }}",
            "endpoint_url": _aws_var("mediaconvert_endpoint"),
            "region_name": _aws_var("region"),
            "aws_conn_id": AWS_CONN,
            "poll_interval": 15,
            "results_url": RESULTS_URL,
        }
        sagemaker_args = {
            "aws_conn_id": AWS_CONN,
            "region_name": _aws_var("region"),
            "deferrable": True,
            "check_interval": 30,
            "results_url": RESULTS_URL,
        }

        match = claim_upload()
        source = probe_upload(match)
        run = plan_upload(match)
        normalize = MediaConvertCreateJobOperator(
            task_id="normalize_rate",
            settings=normalize_settings(run, source),
            purpose="normalize",
            skip_when_present=_planned("normalized_url") + ".mp4",
            pool=MEDIACONVERT_POOL,
            doc_md="MediaConvert: a variable-frame-rate upload at a constant rate, for the "
            "capture and clipping jobs (skipped for a constant-rate upload).",
            **job_args,
        )
        capture = MediaConvertCreateJobOperator(
            task_id="capture_frames",
            settings=frame_capture_settings(run, source),
            purpose="frames",
            skip_when_present=_planned("features_url"),
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            pool=MEDIACONVERT_POOL,
            doc_md="MediaConvert frame capture at the model's rate into the work bucket.",
            **job_args,
        )
        extract = SageMakerProcessingOnceOperator(
            task_id="extract_features",
            config=features_job(run, source),
            pool=SAGEMAKER_POOL,
            doc_md="SageMaker Processing: backbone features of the frames, sharded by key.",
            **sagemaker_args,
        )
        score = SageMakerProcessingOnceOperator(
            task_id="score_windows",
            config=scores_job(run, source),
            done_when_present=_planned("results_url") + "segments.json",
            pool=SAGEMAKER_POOL,
            doc_md="SageMaker Processing: window scores, DynamoDB items and segments.json.",
            **sagemaker_args,
        )
        ranges = find_ranges(run)
        cut = MediaConvertCreateJobOperator.partial(
            task_id="cut_clip",
            pool=MEDIACONVERT_POOL,
            doc_md="One MediaConvert job per highlight range.",
            map_index_template=CLIP_LABEL,
            **job_args,
        ).expand_kwargs(clip_jobs(run, source, ranges))
        reel = MediaConvertCreateJobOperator(
            task_id="make_reel",
            settings=reel_job(run, source, ranges),
            purpose="reel",
            skip_when_present=_planned("results_url") + "reel.mp4",
            pool=MEDIACONVERT_POOL,
            doc_md="One MediaConvert job joining every range into the reel.",
            **job_args,
        )
        sent = send_email(run, ranges)
        sent >> finish_upload(match, run, ranges)

        branch >> match
        normalize >> capture >> extract >> score >> ranges
        [cut, reel] >> sent
        extract >> delete_scratch.override(task_id="delete_frames")(run, "frames")
        extract >> delete_scratch.override(task_id="delete_proxy")(run, "proxy")
        ranges >> delete_scratch.override(task_id="delete_scores")(run, "scores")


highlights_pipeline()
