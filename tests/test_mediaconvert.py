"""MediaConvert job settings, match ids, SageMaker job configs, and the MediaConvert plugin.

Settings are checked against botocore's real MediaConvert API model through `Stubber`
(every request is validated before the stub answers), since no service can be reached.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from fractions import Fraction

import boto3
import pytest
from botocore.stub import Stubber

from highlights.aws.mediaconvert import (
    CAPTURE_SHORT_SIDE,
    SourceInfo,
    capture_count,
    client_request_token,
    clip_settings,
    frame_capture_settings,
    reel_settings,
    request_key,
    source_info,
)
from highlights.aws.sagemaker_jobs import ProcessingSettings, features_job, job_name, scores_job
from highlights.errors import ConfigError, InputError
from highlights.matches import is_video_key, match_id
from highlights.segments import Segment
from tests import airflow_env

ROLE = "arn:aws:iam::123456789012:role/mediaconvert"
SOURCE = "s3://input/incoming/final.mp4"
PROXY = "s3://work/proxies/m1/proxy"
FULL_HD = SourceInfo(duration=60.0, rate="25", has_audio=True, width=1920, height=1080)


def capture(destination: str, rate: float, info: SourceInfo = FULL_HD, short: int = 256) -> dict:
    return frame_capture_settings(SOURCE, destination, PROXY, rate, info, short)


def mediaconvert_client():
    return boto3.client(
        "mediaconvert",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def submit(settings: dict) -> dict:
    """Send a CreateJob request through botocore's validation; returns the request."""
    client = mediaconvert_client()
    request = {"Role": ROLE, "Settings": settings, "ClientRequestToken": "t"}
    with Stubber(client) as stub:
        stub.add_response("create_job", {"Job": {"Id": "1", "Role": ROLE, "Settings": {}}}, request)
        client.create_job(**request)
        stub.assert_no_pending_responses()
    return request


# --- match ids ----------------------------------------------------------------------------------


def test_match_id_is_the_same_for_the_same_object():
    assert match_id("incoming/Final 2024.mp4", '"abc"') == match_id(
        "incoming/Final 2024.mp4", "abc"
    )


def test_match_id_changes_when_the_content_changes():
    assert match_id("incoming/final.mp4", "etag-1") != match_id("incoming/final.mp4", "etag-2")


def test_match_id_is_safe_for_keys_and_job_names():
    mid = match_id("incoming/Ünïcode & spaces — a very long match name indeed.MOV", "e" * 32)
    assert len(mid) <= 33
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in mid)
    assert mid.startswith("unicode-spaces-")


def test_match_id_refuses_a_folder_key():
    with pytest.raises(InputError, match="not an object key"):
        match_id("incoming/", "etag")


def test_only_video_keys_count_as_uploads():
    assert is_video_key("incoming/a.MP4")
    assert not is_video_key("incoming/")
    assert not is_video_key("incoming/notes.txt")


# --- frame capture ------------------------------------------------------------------------------


def test_frame_capture_is_valid_for_the_mediaconvert_api():
    submit(capture("s3://work/frames/m1/", 5.0))


def test_frame_capture_job_also_writes_a_small_proxy_outside_the_frames():
    settings = capture("s3://work/frames/m1/", 5.0)
    codecs = [
        group["Outputs"][0]["VideoDescription"]["CodecSettings"]["Codec"]
        for group in settings["OutputGroups"]
    ]
    assert codecs == ["FRAME_CAPTURE", "H_264"]
    proxy = settings["OutputGroups"][1]
    assert proxy["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == PROXY
    video = proxy["Outputs"][0]["VideoDescription"]
    assert (video["Width"], video["Height"]) == (640, 360)
    assert video["CodecSettings"]["H264Settings"]["MaxBitrate"] <= 1_000_000
    assert proxy["Outputs"][0]["AudioDescriptions"]  # a regular audio and video output


def test_proxy_inside_the_frames_prefix_is_refused():
    with pytest.raises(InputError, match="must not be written among the frames"):
        frame_capture_settings(SOURCE, "s3://work/f/", "s3://work/f/proxy", 5.0, FULL_HD)


def test_frames_are_captured_at_the_backbones_short_side():
    settings = capture("s3://work/f/", 5.0, short=CAPTURE_SHORT_SIDE["efficientnet_lite0"])
    video = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
    assert (video["Width"], video["Height"]) == (456, 256)


def test_rotated_source_is_captured_upright_at_the_short_side():
    phone = SourceInfo(duration=10.0, rate="30", has_audio=False, width=1920, height=1080,
                       rotation=90)  # fmt: skip
    settings = capture("s3://work/f/", 5.0, phone, short=299)
    video = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
    assert (video["Width"], video["Height"]) == (300, 532)  # even sizes: 299 -> 300
    assert settings["Inputs"][0]["VideoSelector"] == {"Rotate": "AUTO"}


def test_small_sources_are_not_scaled_up():
    small = SourceInfo(duration=10.0, rate="25", has_audio=False, width=320, height=240)
    settings = capture("s3://work/f/", 5.0, small)
    for group in settings["OutputGroups"]:
        video = group["Outputs"][0]["VideoDescription"]
        assert "Width" not in video and "Height" not in video


def test_backbone_short_sides_match_the_backbones():
    from highlights.backbones.efficientnet_lite import GEOMETRY as LITE
    from highlights.backbones.inception import GEOMETRY as INCEPTION

    assert {
        "efficientnet_lite0": LITE.resize_short,
        "inception_v3": INCEPTION.resize_short,
    } == CAPTURE_SHORT_SIDE


def test_every_input_rotates_as_its_metadata_says():
    segments = [Segment(1, 2, 0.9, "Goal"), Segment(5, 6, 0.9, "Goal")]
    jobs = [
        capture("s3://work/f/", 5.0),
        clip_settings(SOURCE, segments[0], "s3://h/c", 30, False),
        reel_settings(SOURCE, segments, "s3://h/reel", 30, False),
    ]
    selectors = [item["VideoSelector"] for job in jobs for item in job["Inputs"]]
    assert selectors == [{"Rotate": "AUTO"}] * 4


def test_frame_capture_samples_at_the_rate_with_enough_captures():
    settings = capture("s3://work/frames/m1", 5.0)
    output = settings["OutputGroups"][0]["Outputs"][0]
    frames = output["VideoDescription"]["CodecSettings"]["FrameCaptureSettings"]
    assert output["VideoDescription"]["CodecSettings"]["Codec"] == "FRAME_CAPTURE"
    assert (frames["FramerateNumerator"], frames["FramerateDenominator"]) == (5, 1)
    assert frames["MaxCaptures"] == 300  # t = 0, 0.2, ..., 59.8: the frames before the end
    group = settings["OutputGroups"][0]["OutputGroupSettings"]
    assert group["FileGroupSettings"]["Destination"] == "s3://work/frames/m1/frame"
    assert settings["Inputs"][0]["TimecodeSource"] == "ZEROBASED"


def test_fractional_rates_become_an_exact_fraction():
    settings = capture("s3://work/f/", 2.5)
    frames = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"][
        "FrameCaptureSettings"
    ]
    assert (frames["FramerateNumerator"], frames["FramerateDenominator"]) == (5, 2)


def test_capture_count_is_bounded():
    assert capture_count(0.1, 5.0) == 1
    assert capture_count(10**9, 30.0) == 10_000_000


# --- clips and reel -----------------------------------------------------------------------------


def test_clip_is_valid_for_the_mediaconvert_api():
    submit(clip_settings(SOURCE, Segment(3.0, 9.5, 0.9, "Goal"), "s3://h/clips/clip-000", 25, True))


def test_clip_timecodes_are_frames_at_the_source_rate():
    settings = clip_settings(SOURCE, Segment(3.0, 9.5, 0.9, "Goal"), "s3://h/c", 25.0, False)
    clipping = settings["Inputs"][0]["InputClippings"]
    assert clipping == [{"StartTimecode": "00:00:03:00", "EndTimecode": "00:00:09:12"}]
    assert settings["Inputs"][0]["TimecodeSource"] == "ZEROBASED"
    assert settings["TimecodeConfig"] == {"Source": "ZEROBASED"}


def test_clip_is_h264_in_mp4_at_the_destination():
    settings = clip_settings(SOURCE, Segment(1, 2, 0.9, "Goal"), "s3://h/c/clip-001", 30, True)
    group = settings["OutputGroups"][0]
    output = group["Outputs"][0]
    assert group["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == "s3://h/c/clip-001"
    assert output["ContainerSettings"]["Container"] == "MP4"
    assert output["VideoDescription"]["CodecSettings"]["Codec"] == "H_264"
    assert output["AudioDescriptions"][0]["CodecSettings"]["Codec"] == "AAC"


def test_clip_of_a_silent_video_has_no_audio():
    settings = clip_settings(SOURCE, Segment(1, 2, 0.9, "Goal"), "s3://h/c", 30, False)
    assert "AudioSelectors" not in settings["Inputs"][0]
    assert "AudioDescriptions" not in settings["OutputGroups"][0]["Outputs"][0]


def test_empty_range_is_refused():
    with pytest.raises(InputError, match="empty range"):
        clip_settings(SOURCE, Segment(5, 5, 0.9, "Goal"), "s3://h/c", 30, False)


def test_reel_has_one_input_per_range_in_time_order():
    segments = [Segment(20, 25, 0.8, "Goal"), Segment(2, 6, 0.9, "Goal")]
    settings = reel_settings(SOURCE, segments, "s3://h/reel", 25.0, True)
    starts = [i["InputClippings"][0]["StartTimecode"] for i in settings["Inputs"]]
    assert starts == ["00:00:02:00", "00:00:20:00"]
    submit(settings)


def test_reel_with_many_ranges_stays_within_the_input_limit():
    segments = [Segment(i * 3, i * 3 + 1, 0.9, "Goal") for i in range(400)]
    settings = reel_settings(SOURCE, segments, "s3://h/reel", 25.0, False)
    assert len(settings["Inputs"]) <= 150
    assert sum(len(i["InputClippings"]) for i in settings["Inputs"]) == 400


def test_reel_without_ranges_is_refused():
    with pytest.raises(InputError, match="at least one segment"):
        reel_settings(SOURCE, [], "s3://h/reel", 25.0, False)


def test_request_key_and_token_are_stable_per_request():
    settings = clip_settings(SOURCE, Segment(1, 2, 0.9, "Goal"), "s3://h/c", 30, False)
    key = request_key("m1", "clip-000", settings)
    assert key == request_key("m1", "clip-000", settings)
    assert key != request_key("m1", "clip-001", settings)
    assert key != request_key("m2", "clip-000", settings)
    other = clip_settings(SOURCE, Segment(1, 3, 0.9, "Goal"), "s3://h/c", 30, False)
    assert key != request_key("m1", "clip-000", other)
    assert client_request_token(key) == client_request_token(key)
    assert client_request_token(key) != client_request_token(key, attempt=1)
    assert len(client_request_token(key)) <= 64


# --- probe --------------------------------------------------------------------------------------


def probe_response(tracks: list[dict], duration: float | None = 61.5) -> dict:
    return {"ProbeResults": [{"Container": {"Duration": duration, "Tracks": tracks}}]}


VIDEO_TRACK = {
    "TrackType": "video",
    "VideoProperties": {"FrameRate": {"Numerator": 30000, "Denominator": 1001}, "Width": 1920},
}


def test_source_info_reads_duration_rate_and_audio():
    info = source_info(probe_response([VIDEO_TRACK, {"TrackType": "audio"}]), SOURCE)
    assert info.duration == 61.5
    assert info.rate == "30000/1001" and info.frame_rate == Fraction(30000, 1001)
    assert info.has_audio and info.width == 1920


def test_source_without_video_is_named_in_the_error():
    with pytest.raises(InputError, match="final.mp4: no video stream"):
        source_info(probe_response([{"TrackType": "audio"}]), SOURCE)


def test_source_without_duration_is_refused():
    with pytest.raises(InputError, match="no duration"):
        source_info(probe_response([VIDEO_TRACK], duration=None), SOURCE)


# --- SageMaker processing configs ---------------------------------------------------------------

PROCESSING = ProcessingSettings(
    role_arn="arn:aws:iam::123456789012:role/sm", image_uri="1.dkr.ecr/x:1",
    features_instance_count=3,
)  # fmt: skip


def sagemaker_validates(config: dict) -> None:
    client = boto3.client(
        "sagemaker", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    with Stubber(client) as stub:
        stub.add_response("create_processing_job", {"ProcessingJobArn": "arn"}, config)
        client.create_processing_job(**config)


def test_features_job_shards_frames_over_the_instances():
    config = features_job(
        "final-0123456789ab", "s3://w/frames/m/", "s3://w/features/m/", PROCESSING,
        capture_rate=5.0, backbone="efficientnet_lite0",
    )  # fmt: skip
    sagemaker_validates(config)
    frames = config["ProcessingInputs"][0]["S3Input"]
    assert frames["S3DataDistributionType"] == "ShardedByS3Key"
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    args = config["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--capture-rate") + 1] == "5"
    assert args[args.index("--input") + 1] == frames["LocalPath"]


def test_scores_job_reads_all_shards_and_names_the_table():
    config = scores_job(
        "final-0123456789ab", "s3://w/features/m/", "s3://w/scores/m/", PROCESSING,
        table="results", region="eu-west-1", targets=["Goal", "Shot"], threshold=0.6,
        duration=61.5, video_name="final.mp4", model_uri="s3://models/model.tar.gz",
    )  # fmt: skip
    sagemaker_validates(config)
    features = config["ProcessingInputs"][0]["S3Input"]
    assert features["S3DataDistributionType"] == "FullyReplicated"
    args = config["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--targets") + 1] == "Goal,Shot"
    assert args[args.index("--table") + 1] == "results"
    assert args[args.index("--match-id") + 1] == "final-0123456789ab"
    assert args[args.index("--video-name") + 1] == "final.mp4"
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1


def test_scores_job_needs_exactly_one_model_source():
    with pytest.raises(ConfigError, match="exactly one"):
        scores_job(
            "m", "s3://a/", "s3://b/", PROCESSING, table="t", region="r", targets=["Goal"],
            threshold=0.5, duration=1.0, video_name="m.mp4", model_uri="s3://m", endpoint="ep",
        )  # fmt: skip


def test_job_names_are_deterministic_and_leave_room_for_a_retry_suffix():
    mid = match_id("incoming/" + "x" * 200 + ".mp4", "etag")
    name = job_name(mid, "features")
    assert name == job_name(mid, "features")
    assert len(name) + len("-1700000000000") <= 63


# --- the plugin: hook, operator, sensor, trigger --------------------------------------------------


@pytest.fixture(scope="module")
def plugin():
    airflow_env.configure()
    import mediaconvert

    return mediaconvert


@pytest.fixture
def stubbed(plugin, monkeypatch):
    """A real botocore MediaConvert client behind a Stubber, handed to every hook."""
    client = mediaconvert_client()
    stub = Stubber(client)
    monkeypatch.setattr(plugin.MediaConvertHook, "get_client_type", lambda *a, **k: client)
    with stub:
        yield stub


class RecordingTI:
    """The task instance in an operator's context, recording what the operator pushes."""

    def __init__(self) -> None:
        self.xcom: dict = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


def job(status: str, **extra) -> dict:
    return {"Id": "job-1", "Role": ROLE, "Settings": {}, "Status": status, **extra}


def operator(plugin, **kwargs):
    return plugin.MediaConvertCreateJobOperator(
        task_id="capture",
        settings=capture("s3://w/frames/m/", 5.0),
        role_arn=ROLE,
        match_id="final-0123456789ab",
        purpose="frames",
        region_name="us-east-1",
        **kwargs,
    )


NO_JOBS = {"Jobs": []}


def test_operator_submits_with_a_token_from_the_request(plugin, stubbed):
    op = operator(plugin, wait_for_completion=False)
    key = request_key("final-0123456789ab", "frames", op.settings)
    stubbed.add_response(
        "list_jobs", NO_JOBS, {"MaxResults": 20, "Order": "DESCENDING", "Queue": "Default"}
    )
    stubbed.add_response(
        "create_job",
        {"Job": job("SUBMITTED")},
        {
            "Role": ROLE,
            "Settings": op.settings,
            "ClientRequestToken": client_request_token(key),
            "UserMetadata": {"match_id": "final-0123456789ab", "purpose": "frames", "request": key},
        },
    )
    ti = RecordingTI()
    assert op.execute({"ti": ti})["id"] == "job-1"
    # what the UI's "MediaConvert job" link is made from
    assert ti.xcom["mediaconvert_job"] == {"id": "job-1", "region": "us-east-1"}


def test_operator_defers_to_the_trigger_while_the_job_runs(plugin, stubbed):
    from airflow.sdk.exceptions import TaskDeferred

    stubbed.add_response("list_jobs", NO_JOBS)
    stubbed.add_response("create_job", {"Job": job("PROGRESSING")})
    with pytest.raises(TaskDeferred) as deferred:
        operator(plugin).execute({"ti": RecordingTI()})
    assert isinstance(deferred.value.trigger, plugin.MediaConvertJobTrigger)
    assert deferred.value.trigger.job_id == "job-1"


def test_operator_polling_fails_with_the_jobs_error_message(plugin, stubbed):
    stubbed.add_response("list_jobs", NO_JOBS)
    stubbed.add_response("create_job", {"Job": job("SUBMITTED")})
    stubbed.add_response(
        "get_job", {"Job": job("ERROR", ErrorCode=1010, ErrorMessage="Unable to open input file")}
    )
    op = operator(plugin, deferrable=False, poll_interval=0, max_wait=timedelta(seconds=5))
    with pytest.raises(plugin.MediaConvertJobFailed, match="Unable to open input file"):
        op.execute({"ti": RecordingTI()})


def run_trigger(trigger) -> dict:
    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first_event())


def test_trigger_reports_completion(plugin, stubbed):
    stubbed.add_response("get_job", {"Job": job("PROGRESSING")}, {"Id": "job-1"})
    stubbed.add_response("get_job", {"Job": job("COMPLETE")}, {"Id": "job-1"})
    event = run_trigger(plugin.MediaConvertJobTrigger("job-1", poll_interval=0))
    assert event["status"] == "success"
    assert event["job"]["id"] == "job-1"


def test_trigger_reports_a_canceled_job_as_an_error(plugin, stubbed):
    stubbed.add_response("get_job", {"Job": job("CANCELED")}, {"Id": "job-1"})
    event = run_trigger(plugin.MediaConvertJobTrigger("job-1", poll_interval=0))
    assert event["status"] == "error"
    assert "CANCELED" in event["message"]


def test_trigger_round_trips_through_serialization(plugin):
    trigger = plugin.MediaConvertJobTrigger("job-9", region_name="eu-west-1", poll_interval=5)
    path, kwargs = trigger.serialize()
    assert path == "mediaconvert.MediaConvertJobTrigger"
    assert plugin.MediaConvertJobTrigger(**kwargs).serialize() == (path, kwargs)


def test_operator_resumes_from_the_trigger_event(plugin):
    op = operator(plugin)
    with pytest.raises(plugin.MediaConvertJobFailed, match="bad input"):
        op.execute_complete({}, {"status": "error", "message": "bad input"})
    assert op.execute_complete({}, {"status": "success", "job": {"id": "j"}}) == {"id": "j"}


def test_hook_uses_an_account_endpoint_when_given(plugin, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    hook = plugin.MediaConvertHook(
        aws_conn_id=None,
        region_name="eu-west-1",
        endpoint_url="https://abcd.mediaconvert.eu-west-1.amazonaws.com",
    )
    assert hook.conn.meta.endpoint_url == "https://abcd.mediaconvert.eu-west-1.amazonaws.com"


def test_hook_defaults_to_the_regional_endpoint(plugin, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    hook = plugin.MediaConvertHook(aws_conn_id=None, region_name="eu-west-1")
    assert hook.conn.meta.endpoint_url == "https://mediaconvert.eu-west-1.amazonaws.com"
