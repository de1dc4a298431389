"""The DAG folder parses in real Airflow 3.3 with no import errors, and is wired as designed."""

from __future__ import annotations

import pytest

from tests import airflow_env

airflow_env.configure()


@pytest.fixture(scope="module")
def dag():
    return airflow_env.load_dag()


def test_dag_folder_loads_without_import_errors():
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=airflow_env.DAGS, bundle_path=airflow_env.DAGS)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        airflow_env.DAG_ID,
        airflow_env.INBOX_DAG_ID,
        "highlights_uploads",
        "highlights_upload_sweep",
    }


def test_pipeline_is_trigger_only_and_runs_several_matches_at_once(dag):
    from highlights_airflow import dispatch

    assert dag.timetable.__class__.__name__ == "NullTimetable"
    assert dag.max_active_runs == dispatch().max_active_runs > 1


def test_max_active_runs_comes_from_the_configuration(monkeypatch):
    monkeypatch.setenv("AIRFLOW__HIGHLIGHTS__MAX_ACTIVE_RUNS", "7")
    assert airflow_env.load_dag().max_active_runs == 7


def test_backend_is_chosen_first(dag):
    branch = dag.get_task("choose_backend")
    assert branch.downstream_task_ids == {"local.claim_video", "aws.claim_upload"}


def test_local_backend_runs_the_pipeline_stages_in_order(dag):
    order = ["claim_video", "features", "scores", "segments", "clips", "reel"]
    for before, after in zip(order, order[1:], strict=False):
        assert f"local.{after}" in dag.get_task(f"local.{before}").downstream_task_ids
    assert "local.finish_match" in dag.get_task("local.email").downstream_task_ids
    assert "local.timelines" in dag.get_task("local.clips").downstream_task_ids
    assert "local.finish_match" in dag.get_task("local.timelines").downstream_task_ids


def test_every_pool_a_task_uses_is_in_pools_json(dag):
    import json

    pools = set(json.loads(airflow_env.POOLS.read_text()))
    used = {task.pool for task in dag.tasks} - {"default_pool"}
    assert used == pools == {"highlights_cpu", "mediaconvert", "sagemaker"}
    assert dag.get_task("local.features").pool == "highlights_cpu"
    assert dag.get_task("aws.capture_frames").pool == "mediaconvert"
    assert dag.get_task("aws.cut_clip").partial_kwargs["pool"] == "mediaconvert"
    assert dag.get_task("aws.extract_features").pool == "sagemaker"


def test_every_task_failure_is_kept_with_the_inputs_claim(dag):
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(getattr(c, "__name__", "") == "_note_failure" for c in callbacks), task


def test_finished_matches_update_the_results_asset(dag):
    for task_id in ("local.finish_match", "aws.finish_upload"):
        assert [asset.name for asset in dag.get_task(task_id).outlets] == [
            "highlights_match_results"
        ]


def test_clip_jobs_are_labelled_with_their_range(dag):
    template = dag.get_task("aws.cut_clip").map_index_template
    assert "StartTimecode" in template and "EndTimecode" in template


def test_dags_and_tasks_are_documented(dag):
    inbox = airflow_env.load_dag(airflow_env.INBOX_DAG_ID)
    assert "one highlights run per video" in inbox.doc_md
    assert "one run per match" in dag.doc_md
    dispatchers = [
        airflow_env.load_dag(d) for d in ("highlights_uploads", "highlights_upload_sweep")
    ]
    assert all(d.doc_md for d in dispatchers)
    tasks = [*dag.tasks, *inbox.tasks, *(t for d in dispatchers for t in d.tasks)]
    undocumented = [t.task_id for t in tasks if not t.doc_md]
    assert undocumented == [], undocumented


def test_upload_dispatcher_keeps_messages_until_the_runs_exist():
    from highlights_airflow import dispatch

    uploads = airflow_env.load_dag("highlights_uploads")
    assert type(uploads.timetable).__name__ == "ContinuousTimetable"
    assert uploads.max_active_runs == 1
    sensor = uploads.get_task("wait_for_uploads")
    assert type(sensor).__name__ == "SqsSensor"
    assert sensor.deferrable is True
    assert sensor.delete_message_on_reception is False
    assert sensor.visibility_timeout == dispatch().upload_visibility_seconds
    delete = uploads.get_task("delete_messages")
    assert delete.trigger_rule == "all_done"
    assert "start_match_run" in delete.upstream_task_ids


def test_the_aws_dispatchers_start_paused_and_the_sweep_is_hourly():
    sweep = airflow_env.load_dag("highlights_upload_sweep")
    assert sweep.schedule == "@hourly" or str(sweep.timetable.summary) == "@hourly"
    for dag_id in ("highlights_uploads", "highlights_upload_sweep"):
        assert airflow_env.load_dag(dag_id).is_paused_upon_creation is True


def test_inbox_dispatcher_starts_runs_by_deterministic_id_and_skips_existing_ones():
    inbox = airflow_env.load_dag(airflow_env.INBOX_DAG_ID)
    assert type(inbox.timetable).__name__ == "ContinuousTimetable"
    assert inbox.max_active_runs == 1
    sensor = inbox.get_task("find_new_videos")
    assert sensor.mode == "reschedule"
    start = inbox.get_task("start_match_run")
    assert type(start).__name__ == "MappedOperator"
    kwargs = start.partial_kwargs
    assert kwargs["trigger_dag_id"] == airflow_env.DAG_ID
    assert kwargs["skip_when_already_exists"] is True
    assert kwargs["logical_date"] is None


def test_aws_processing_jobs_are_deferrable_and_ordered(dag):
    capture = dag.get_task("aws.capture_frames")
    extract = dag.get_task("aws.extract_features")
    score = dag.get_task("aws.score_windows")
    assert capture.deferrable and extract.deferrable and score.deferrable
    assert "aws.extract_features" in capture.downstream_task_ids
    assert "aws.score_windows" in extract.downstream_task_ids
    assert "aws.find_ranges" in score.downstream_task_ids


def test_one_clipping_job_per_range_is_a_mapped_task(dag):
    cut = dag.get_task("aws.cut_clip")
    assert type(cut).__name__ == "MappedOperator"
    assert "aws.send_email" in cut.downstream_task_ids


def test_cleanup_runs_only_after_what_reads_the_scratch_succeeded(dag):
    readers = {
        "aws.delete_frames": "aws.extract_features",
        "aws.delete_proxy": "aws.extract_features",
        "aws.delete_scores": "aws.find_ranges",
    }
    for task_id, reader in readers.items():
        task = dag.get_task(task_id)
        assert task.trigger_rule == "all_success"
        assert reader in task.upstream_task_ids
    assert "aws.delete_features" not in dag.task_ids  # kept for re-scoring; expired by lifecycle


def test_dag_serializes_as_the_scheduler_stores_it(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert set(restored.task_ids) == set(dag.task_ids)


# --- configuration the DAG reads --------------------------------------------------------------


def test_backend_comes_from_the_param_then_the_variable_then_local():
    import highlights_steps as steps

    assert steps.choose_backend("aws", "local") == "aws"
    assert steps.choose_backend("", "aws") == "aws"
    assert steps.choose_backend("", None) == "local"


def test_unknown_backend_is_refused():
    import highlights_steps as steps

    from highlights.errors import ConfigError

    with pytest.raises(ConfigError, match="backend must be one of local, aws"):
        steps.choose_backend("gcp", None)


def test_targets_fall_back_to_the_variable_and_must_not_be_empty():
    import highlights_steps as steps

    from highlights.errors import ConfigError

    assert steps.choose_targets([], ["Goal", " Save "]) == ["Goal", "Save"]
    assert steps.choose_targets(["Shot"], ["Goal"]) == ["Shot"]
    with pytest.raises(ConfigError, match="highlights_targets"):
        steps.choose_targets([], None)


AWS_VARIABLE = {
    "region": "eu-west-1", "input_bucket": "in", "input_prefix": "incoming",
    "work_bucket": "work", "highlights_bucket": "out", "results_table": "windows",
    "upload_queue_url": "", "mediaconvert_role_arn": "arn:mc", "mediaconvert_endpoint": "",
    "sagemaker_role_arn": "arn:sm", "processing_image_uri": "img", "endpoint_name": "",
    "model_data_uri": "s3://work/model/", "sender_email": "a@b.c",
    "recipient_emails": ["x@y.z"], "link_expiry_seconds": 600,
}  # fmt: skip


def test_aws_variable_is_read_whole():
    import highlights_steps as steps

    settings = steps.aws_settings(AWS_VARIABLE)
    assert settings.input_prefix == "incoming/"
    assert settings.recipient_emails == ("x@y.z",)
    assert settings.link_expiry_seconds == 600


def test_aws_variable_names_what_is_missing():
    import highlights_steps as steps

    from highlights.errors import ConfigError

    broken = {**AWS_VARIABLE, "work_bucket": "", "sender_email": ""}
    with pytest.raises(ConfigError, match="missing work_bucket, sender_email"):
        steps.aws_settings(broken)


def test_aws_variable_refuses_unknown_keys():
    import highlights_steps as steps

    from highlights.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown keys \\['bucket'\\]"):
        steps.aws_settings({**AWS_VARIABLE, "bucket": "x"})


def test_aws_variable_needs_a_model_or_an_endpoint():
    import highlights_steps as steps

    from highlights.errors import ConfigError

    with pytest.raises(ConfigError, match="model_data_uri or endpoint_name"):
        steps.aws_settings({**AWS_VARIABLE, "model_data_uri": ""})


def test_a_variable_frame_rate_upload_is_converted_before_capture(dag):
    normalize = dag.get_task("aws.normalize_rate")
    assert "aws.capture_frames" in normalize.downstream_task_ids
    # a constant-rate upload skips the conversion; the capture still runs
    assert dag.get_task("aws.capture_frames").trigger_rule == "none_failed_min_one_success"
