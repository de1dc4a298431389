"""
### Sports highlights

Each run handles one match: drop a video where it is watched and a run picks it up (the DAG is
`@continuous`: a run waits for the next new video, processes it, and the next run starts).
A run can also be started by hand for one file with the `video` (local) or `key` (aws) param.

* **local** (default): watches the `incoming_dir` folder of the `highlights_local` Variable and
  runs the library's pipeline stages on this machine: features → scores → segments → clips →
  reel → report → email file.
* **aws**: waits (deferred) for a new object under `input_prefix` of the `highlights_aws`
  Variable, then MediaConvert frame capture → SageMaker Processing (features, sharded) →
  SageMaker Processing (scores, one DynamoDB item per window) → ranges → one MediaConvert job
  per clip and one for the reel → SES email with expiring links → cleanup.

The backend is the run's `backend` param, else the `highlights_backend` Variable, else local.
See dags/README.md for every setting.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import highlights_steps as steps
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import Param, PokeReturnValue, TaskGroup, Variable, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.task.trigger_rule import TriggerRule
from mediaconvert import MediaConvertCreateJobOperator, MediaConvertHook
from sagemaker_processing import SageMakerProcessingOnceOperator


def _aws_var(key: str) -> str:
    """A template for one key of the `highlights_aws` Variable, rendered when the task runs."""
    return "{{ var.json.highlights_aws.%s }}" % key  # noqa: UP031 (braces of Jinja)


AWS_CONN = "aws_default"
CLAIM = "aws.claim_upload"
# A run that saw no new video ends (skipped) after this long, so that a cleared or re-triggered
# run, which must wait for the single active run, gets its turn.
WAIT_SECONDS = 3600


def _aws() -> steps.AwsSettings:
    return steps.aws_settings(Variable.get(steps.AWS_VARIABLE, default=None, deserialize_json=True))


def _local() -> steps.LocalSettings:
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    variable = Variable.get(steps.LOCAL_VARIABLE, default=None, deserialize_json=True)
    return steps.local_settings(variable, home)


def _targets(params: dict) -> list[str]:
    variable = Variable.get(steps.TARGETS_VARIABLE, default=None, deserialize_json=True)
    return steps.choose_targets(params.get("targets"), variable)


def _s3():
    # Signature Version 4: S3 refuses version-2 presigned links for buckets made since 2020.
    config = {"signature_version": "s3v4"}
    return S3Hook(aws_conn_id=AWS_CONN, region_name=_aws().region, config=config).get_conn()


def _client(name: str):
    return AwsBaseHook(aws_conn_id=AWS_CONN, client_type=name, region_name=_aws().region).conn


def _has_new_upload(files: list, **context) -> bool:
    """S3KeySensor check: the run's own key exists, or some listed video is not yet claimed."""
    if context["params"].get("key"):
        return bool(files)
    return bool(steps.unclaimed_uploads(_s3(), _aws(), files))


@dag(
    dag_id="highlights_pipeline",
    schedule="@continuous",
    max_active_runs=1,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["highlights"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "backend": Param(
            "",
            type="string",
            enum=["", *steps.BACKENDS],
            description="local or aws; empty: the highlights_backend Variable",
        ),
        "video": Param("", type="string", description="local: a video file (empty: watch)"),
        "key": Param("", type="string", description="aws: an object key (empty: watch)"),
        "targets": Param(
            [],
            type="array",
            description="classes that make a highlight; empty: the highlights_targets Variable",
        ),
        "threshold": Param(0.5, type="number", minimum=0, maximum=1),
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
    },
)
def highlights_pipeline() -> None:
    @task.branch
    def choose_backend(params: dict) -> str:
        variable = Variable.get(steps.BACKEND_VARIABLE, default=None)
        backend = steps.choose_backend(params["backend"], variable)
        return "local.wait_for_video" if backend == "local" else "aws.wait_for_upload"

    branch = choose_backend()

    with TaskGroup("local"):

        @task.sensor(poke_interval=15, timeout=WAIT_SECONDS, mode="reschedule", soft_fail=True)
        def wait_for_video(params: dict) -> PokeReturnValue:
            found = steps.next_local_video(_local(), params["video"])
            return PokeReturnValue(is_done=found is not None, xcom_value=found)

        @task
        def claim_video(video: str, params: dict) -> dict:
            return steps.claim_local_video(_local(), video, _targets(params), params["threshold"])

        @task
        def features(run: dict) -> str:
            from highlights.pipeline import stage_features

            return str(
                stage_features(
                    Path(run["video"]),
                    Path(run["work_dir"]),
                    steps.local_config(run),
                    digest=run["digest"],
                )
            )

        @task
        def scores(run: dict, features_path: str) -> str:
            from highlights.pipeline import stage_scores

            config = steps.local_config(run)
            return str(
                stage_scores(
                    Path(features_path), Path(run["model_dir"]), Path(run["work_dir"]), config
                )
            )

        @task
        def segments(run: dict, scores_path: str) -> str:
            from highlights.pipeline import RESULTS_DB, stage_segments
            from highlights.results import SQLiteResults

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

        @task
        def clips(run: dict, segments_path: str) -> list[str]:
            from highlights.pipeline import stage_clips

            made = stage_clips(
                Path(run["video"]),
                Path(segments_path),
                Path(run["out_dir"]),
                steps.local_config(run),
            )
            return [str(p) for p in made]

        @task
        def reel(run: dict, clip_paths: list[str]) -> str | None:
            from highlights.pipeline import stage_reel

            made = stage_reel([Path(p) for p in clip_paths], Path(run["out_dir"]))
            return str(made) if made else None

        @task
        def report(run: dict, scores_path: str, segments_path: str, clip_paths: list[str]) -> str:
            from highlights.pipeline import stage_report

            return str(
                stage_report(
                    Path(run["video"]),
                    Path(scores_path),
                    Path(segments_path),
                    [Path(p) for p in clip_paths],
                    Path(run["out_dir"]),
                    steps.local_config(run),
                )
            )

        @task
        def email(
            run: dict, segments_path: str, clips: list[str], reel: str | None, report: str
        ) -> str:
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

        video = wait_for_video()
        run = claim_video(video)
        feature_file = features(run)
        score_file = scores(run, feature_file)
        segment_file = segments(run, score_file)
        clip_files = clips(run, segment_file)
        reel_file = reel(run, clip_files)
        report_file = report(run, score_file, segment_file, clip_files)
        email(run, segment_file, clip_files, reel_file, report_file)
        branch >> video

    with TaskGroup("aws"):
        wait_for_upload = S3KeySensor(
            task_id="wait_for_upload",
            bucket_name=_aws_var("input_bucket"),
            bucket_key="{{ params.key or (var.json.highlights_aws.input_prefix ~ '*') }}",
            wildcard_match=True,
            check_fn=_has_new_upload,
            metadata_keys=["Key", "ETag", "Size"],
            aws_conn_id=AWS_CONN,
            region_name=_aws_var("region"),
            deferrable=True,
            poke_interval=30,
            timeout=WAIT_SECONDS,
            soft_fail=True,
        )

        @task
        def claim_upload(params: dict, run_id: str) -> dict:
            return steps.claim_upload(_s3(), _aws(), params["key"], run_id)

        @task
        def probe_upload(match: dict) -> dict:
            from dataclasses import asdict

            from highlights.mediaconvert import source_info

            settings = _aws()
            hook = MediaConvertHook(
                aws_conn_id=AWS_CONN,
                region_name=settings.region,
                endpoint_url=settings.mediaconvert_endpoint,
            )
            return asdict(source_info(hook.probe(match["source_url"]), match["source_url"]))

        @task
        def frame_capture_settings(match: dict, source: dict, params: dict) -> dict:
            from highlights.mediaconvert import frame_capture_settings as build

            return build(
                match["source_url"], match["frames_url"], params["capture_rate"], source["duration"]
            )

        @task
        def features_job(match: dict, params: dict) -> dict:
            from highlights.sagemaker_jobs import features_job as build

            settings = _aws().processing(params["instance_type"], params["features_instances"])
            return build(
                match["match_id"],
                match["frames_url"],
                match["features_url"],
                settings,
                capture_rate=params["capture_rate"],
                backbone=params["backbone"],
            )

        @task
        def scores_job(match: dict, source: dict, params: dict) -> dict:
            from highlights.sagemaker_jobs import scores_job as build

            settings = _aws()
            return build(
                match["match_id"],
                match["features_url"],
                match["scores_url"],
                settings.processing(params["instance_type"], 1),
                table=settings.results_table,
                region=settings.region,
                targets=_targets(params),
                threshold=params["threshold"],
                duration=source["duration"],
                video_name=PurePosixPath(match["key"]).name,
                model_uri=settings.model_data_uri or None,
                endpoint=None if settings.model_data_uri else settings.endpoint_name,
            )

        @task
        def find_ranges(match: dict) -> list[dict]:
            return steps.publish_ranges(_s3(), _aws(), match)

        @task
        def clip_jobs(match: dict, source: dict, ranges: list[dict]) -> list[dict]:
            return steps.clip_jobs(match, source, ranges)

        @task
        def reel_job(match: dict, source: dict, ranges: list[dict]) -> dict:
            settings = steps.reel_job(match, source, ranges)
            if settings is None:
                raise AirflowSkipException("no highlights: no reel")
            return settings

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def send_email(match: dict, ranges: list[dict]) -> str:
            return steps.send_email_once(_s3(), _client("ses"), _aws(), match, ranges)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def delete_scratch(match: dict | None, folder: str) -> int:
            """Remove one of the match's scratch folders (frames, features, scores)."""
            if not match:
                raise AirflowSkipException("no upload was claimed")
            prefix = getattr(steps.prefixes(match["match_id"]), folder)
            return steps.delete_prefix(_s3(), _aws().work_bucket, prefix)

        job_args = {
            "role_arn": _aws_var("mediaconvert_role_arn"),
            "match_id": "{{ ti.xcom_pull(task_ids='" + CLAIM + "')['match_id'] }}",
            "endpoint_url": _aws_var("mediaconvert_endpoint"),
            "region_name": _aws_var("region"),
            "aws_conn_id": AWS_CONN,
            "poll_interval": 15,
        }
        sagemaker_args = {
            "aws_conn_id": AWS_CONN,
            "region_name": _aws_var("region"),
            "deferrable": True,
            "check_interval": 30,
        }

        match = claim_upload()
        source = probe_upload(match)
        capture = MediaConvertCreateJobOperator(
            task_id="capture_frames",
            settings=frame_capture_settings(match, source),
            purpose="frames",
            **job_args,
        )
        extract = SageMakerProcessingOnceOperator(
            task_id="extract_features", config=features_job(match), **sagemaker_args
        )
        score = SageMakerProcessingOnceOperator(
            task_id="score_windows", config=scores_job(match, source), **sagemaker_args
        )
        ranges = find_ranges(match)
        cut = MediaConvertCreateJobOperator.partial(task_id="cut_clip", **job_args).expand_kwargs(
            clip_jobs(match, source, ranges)
        )
        reel = MediaConvertCreateJobOperator(
            task_id="make_reel",
            settings=reel_job(match, source, ranges),
            purpose="reel",
            **job_args,
        )
        sent = send_email(match, ranges)

        branch >> wait_for_upload >> match
        capture >> extract >> score >> ranges
        [cut, reel] >> sent
        extract >> delete_scratch.override(task_id="delete_frames")(match, "frames")
        score >> delete_scratch.override(task_id="delete_features")(match, "features")
        ranges >> delete_scratch.override(task_id="delete_scores")(match, "scores")


highlights_pipeline()
