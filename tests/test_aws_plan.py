"""What one match's AWS run is named and sends (`highlights/aws/plan.py`), built without AWS and
checked against the service models in full (`tests/aws_strict.py`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from fractions import Fraction

import pytest

from highlights.aws import plan as aws_plan
from highlights.aws.mediaconvert import SourceInfo, source_info
from highlights.errors import ConfigError, InputError
from highlights.matches import match_for_object
from highlights.segments import Segment
from tests.aws_strict import check_request

VARIABLE = {
    "region": "eu-west-1",
    "input_bucket": "hl-123456789012-eu-west-1-input",
    "input_prefix": "incoming/",
    "work_bucket": "hl-123456789012-eu-west-1-work",
    "highlights_bucket": "hl-123456789012-eu-west-1-highlights",
    "results_table": "hl-windows",
    "mediaconvert_role_arn": "arn:aws:iam::123456789012:role/hl-mediaconvert",
    "sagemaker_role_arn": "arn:aws:iam::123456789012:role/hl-sagemaker",
    "processing_image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/highlights:1",
    "model_data_uri": "s3://hl-123456789012-eu-west-1-highlights/models/v1/model.tar.gz",
    "sender_email": "highlights@example.com",
    "recipient_emails": ["coach@example.com"],
}
SETTINGS = aws_plan.aws_settings(VARIABLE)
# The longest match id there is (20-character stem and 12-character digest).
MATCH = match_for_object("incoming/" + "a very long name for a final" * 5 + ".mp4", '"etag-1"')
FOUR_K = SourceInfo(
    duration=5400.123, rate=Fraction(30000, 1001), has_audio=True, width=3840, height=2160
)


def plan(**changes) -> aws_plan.RunPlan:
    options = {
        "backbone": "efficientnet_lite0",
        "capture_rate": 5.0,
        "targets": ["Goal"],
        "threshold": 0.5,
        "model": "model-digest-1",
        **changes,
    }
    return aws_plan.plan_run(SETTINGS, MATCH, **options)


# --- names ----------------------------------------------------------------------------------------


def test_a_new_threshold_changes_the_decision_but_not_the_features():
    first, second = plan(), plan(threshold=0.7)
    assert first.features_url == second.features_url
    assert first.features_job_name == second.features_job_name
    assert first.scores_job_name != second.scores_job_name
    assert first.results_url != second.results_url


def test_the_model_s_calibrated_settings_are_a_decision_of_their_own():
    calibrated = plan(threshold=None)
    assert calibrated.decision not in {plan().decision, plan(threshold=0.7).decision}
    assert calibrated.features_url == plan().features_url
    assert calibrated.decision == plan(threshold=None).decision
    # a new model brings new calibrated settings: its ETags are part of the decision
    assert plan(threshold=None, model="model-digest-2").decision != calibrated.decision


def test_without_a_threshold_the_scores_job_is_given_none_and_decides_as_calibrated():
    run = plan(threshold=None)
    scores = aws_plan.scores_request(
        run, SETTINGS, SETTINGS.processing("ml.m5.xlarge", 1), FOUR_K, targets=["Goal"],
        threshold=None,
    )  # fmt: skip
    check_request("sagemaker", "CreateProcessingJob", scores)
    assert "--threshold" not in scores["AppSpecification"]["ContainerArguments"]


@pytest.mark.parametrize(
    "change",
    [{"backbone": "inception_v3"}, {"capture_rate": 4.0}],
)
def test_a_new_feature_recipe_changes_everything_it_feeds(change):
    first, second = plan(), plan(**change)
    assert first.frames_url != second.frames_url
    assert first.features_job_name != second.features_job_name
    assert first.scores_job_name != second.scores_job_name


def test_a_new_model_or_targets_rescore():
    first = plan()
    assert plan(model="model-digest-2").scores_job_name != first.scores_job_name
    assert plan(targets=["Goal", "Shot"]).scores_job_name != first.scores_job_name


def test_the_same_settings_give_the_same_plan():
    assert plan() == plan()


def test_job_names_fit_sagemaker_with_room_for_a_retry_suffix():
    run = plan()
    for name in (run.features_job_name, run.scores_job_name):
        assert len(name) + len("-1700000000000") <= 63
        assert name.startswith("hl-")
    request = aws_plan.features_request(
        run, SETTINGS.processing("ml.m5.xlarge", 1), backbone="efficientnet_lite0", rate=5.0
    )
    request["ProcessingJobName"] += "-1700000000000"  # what the provider does on a retry
    check_request("sagemaker", "CreateProcessingJob", request)


def test_scratch_and_results_live_under_the_match():
    run = plan()
    for folder in ("frames", "proxy", "scores"):
        assert run.scratch(folder).count("/") == 3  # kind/match/digest/
        assert MATCH.match_id in run.scratch(folder)
    assert run.results_prefix == f"highlights/{MATCH.match_id}/{run.decision}/"
    assert run.clip_base(2) == f"{run.results_prefix}clips/clip-002"


# --- every request is valid for its service -------------------------------------------------------


def test_every_request_of_a_4k_match_is_valid():
    run = plan()
    processing = SETTINGS.processing("ml.m5.xlarge", 2, 50)
    check_request(
        "mediaconvert",
        "CreateJob",
        {
            "Role": SETTINGS.mediaconvert_role_arn,
            "Settings": aws_plan.capture_request(run, FOUR_K, "efficientnet_lite0", 5.0),
        },
    )
    segments = [Segment(60.0, 75.5, 0.9, "Goal"), Segment(3000.25, 3012.0, 0.8, "Goal")]
    for job in aws_plan.clip_requests(run, FOUR_K, segments):
        check_request(
            "mediaconvert",
            "CreateJob",
            {"Role": "arn:aws:iam::1:role/r", "Settings": job["settings"]},
        )
    reel = aws_plan.reel_request(run, FOUR_K, segments)
    check_request("mediaconvert", "CreateJob", {"Role": "arn:aws:iam::1:role/r", "Settings": reel})
    features = aws_plan.features_request(run, processing, backbone="efficientnet_lite0", rate=5.0)
    scores = aws_plan.scores_request(run, SETTINGS, processing, FOUR_K, targets=["Goal"],
                                     threshold=0.5)  # fmt: skip
    check_request("sagemaker", "CreateProcessingJob", features)
    check_request("sagemaker", "CreateProcessingJob", scores)


def probed(numerator: int, denominator: int) -> dict:
    """SourceInfo as the DAG's probe task hands it on: `asdict`, through XCom's JSON."""
    track = {"Numerator": numerator, "Denominator": denominator}
    response = {"ProbeResults": [{"Container": {"Duration": 90.0, "Tracks": [
        {"TrackType": "video", "VideoProperties": {"FrameRate": track, "Width": 1920,
                                                   "Height": 1080}},
        {"TrackType": "audio"},
    ]}}]}  # fmt: skip
    return json.loads(json.dumps(asdict(source_info(response, "s3://in/final.mp4"))))


# 60.07 s at 29.97: frame 1800 (60.06 s) is on screen, 00:01:00;02 in drop-frame; the last frame
# that starts before 61.0 s is 1828 (60.994 s), 00:01:01;00.
NTSC_CLIPPING = [{"StartTimecode": "00:01:00;02", "EndTimecode": "00:01:01;00"}]


def clippings(settings: dict) -> list[dict]:
    return [c for item in settings["Inputs"] for c in item["InputClippings"]]


def test_a_29_97_source_keeps_its_exact_rate_from_the_probe_to_every_request():
    xcom = probed(30000, 1001)
    assert xcom["rate"] == "30000/1001" and "fps" not in xcom
    source = SourceInfo(**xcom)
    assert source.frame_rate == Fraction(30000, 1001)
    run = plan()
    assert aws_plan.normalize_request(run, source) is None
    assert aws_plan.media(run, source)[1].rate == "30000/1001"
    segment = Segment(60.07, 61.0, 0.9, "Goal")
    [clip] = aws_plan.clip_requests(run, source, [segment])
    assert clippings(clip["settings"]) == NTSC_CLIPPING
    assert clippings(aws_plan.reel_request(run, source, [segment])) == NTSC_CLIPPING


def test_a_rate_reported_a_hair_off_a_standard_one_is_clipped_at_the_standard_rate():
    """A container may store 29.97 as 2997/100: MediaConvert counts it as NTSC's 30000/1001."""
    source = SourceInfo(**probed(2997, 100))
    run = plan()
    assert aws_plan.normalize_request(run, source) is None
    [clip] = aws_plan.clip_requests(run, source, [Segment(60.07, 61.0, 0.9, "Goal")])
    assert clippings(clip["settings"]) == NTSC_CLIPPING


def test_a_variable_rate_source_is_clipped_at_its_constant_copy_s_exact_rate():
    source = SourceInfo(**probed(25350, 1013))  # a phone's average, 25.02 frames/s
    run = plan()
    normalized = aws_plan.normalize_request(run, source)
    h264 = normalized["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"]
    assert (h264["H264Settings"]["FramerateNumerator"],
            h264["H264Settings"]["FramerateDenominator"]) == (30000, 1001)  # fmt: skip
    url, info = aws_plan.media(run, source)
    assert url == f"{run.normalized_url}.mp4" and info.rate == "30000/1001"
    assert json.loads(json.dumps(asdict(info))) == asdict(info)


def test_source_info_refuses_a_float_rate():
    with pytest.raises(TypeError, match="exact"):
        SourceInfo(duration=1.0, rate=29.97, has_audio=False, width=64, height=48)


def test_numbers_reach_the_containers_exactly():
    run = plan(threshold=0.123456789)
    scores = aws_plan.scores_request(
        run, SETTINGS, SETTINGS.processing("ml.m5.xlarge", 1), FOUR_K, targets=["Goal"],
        threshold=0.123456789,
    )  # fmt: skip
    args = scores["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--duration") + 1] == "5400.123"
    assert args[args.index("--threshold") + 1] == "0.123456789"


# --- frames and volume sized from the match -------------------------------------------------------


def test_4k_frames_are_captured_at_the_backbones_size():
    settings = aws_plan.capture_request(plan(), FOUR_K, "efficientnet_lite0", 5.0)
    frames = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
    assert (frames["Width"], frames["Height"]) == (456, 256)


def test_the_volume_grows_with_the_match_and_its_share_of_instances():
    ninety = aws_plan.volume_gb(FOUR_K, "efficientnet_lite0", 5.0, 1)
    half = aws_plan.volume_gb(
        SourceInfo(2700.0, "25", True, 3840, 2160), "efficientnet_lite0", 5.0, 1
    )
    assert half <= ninety
    assert aws_plan.volume_gb(FOUR_K, "efficientnet_lite0", 5.0, 4) <= ninety
    frames = 5400.123 * 5
    assert ninety * 1e9 >= frames * 456 * 256 * aws_plan.JPEG_BYTES_PER_PIXEL


def test_a_long_4k_match_at_a_high_rate_gets_a_bigger_volume_than_the_default():
    ten_hours = SourceInfo(36000.0, "30", True, 3840, 2160)
    assert aws_plan.volume_gb(ten_hours, "inception_v3", 30.0, 1) > 30


# --- settings refused up front --------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["s3://b/models/final-model.tar.gz", "s3://b/models/model.tgz", "https://b/model.tar.gz"],
)
def test_a_model_archive_not_named_model_tar_gz_is_refused(uri):
    with pytest.raises(ConfigError, match="model.tar.gz"):
        aws_plan.aws_settings({**VARIABLE, "model_data_uri": uri})


@pytest.mark.parametrize("uri", ["s3://b/models/v1/model.tar.gz", "s3://b/models/v1/"])
def test_a_model_archive_or_folder_is_accepted(uri):
    assert aws_plan.aws_settings({**VARIABLE, "model_data_uri": uri}).model_data_uri == uri


def test_a_key_outside_the_input_prefix_is_refused():
    with pytest.raises(InputError, match="not under the input prefix 'incoming/'"):
        aws_plan.check_upload_key(SETTINGS, "elsewhere/final.mp4")
    aws_plan.check_upload_key(SETTINGS, "incoming/final.mp4")


def test_model_digest_follows_every_etag():
    one = aws_plan.model_digest_of([("models/v1/model.tar.gz", '"a"')])
    assert one == aws_plan.model_digest_of([("models/v1/model.tar.gz", '"a"')])
    assert one != aws_plan.model_digest_of([("models/v1/model.tar.gz", '"b"')])
    with pytest.raises(ConfigError):
        aws_plan.model_digest_of([])
