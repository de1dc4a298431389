"""The strict simulated AWS: model validation of every request, Java model patterns, and the
documented rules moto does not enforce (SageMaker job names, S3 presigned link hosts).

Each check is shown firing on a crafted bad request and passing a good one; where today's
builders (highlights/aws/mediaconvert.py, highlights/aws/sagemaker_jobs.py) make a valid
request, that request is the good one. The MediaConvert fake has its own tests
(test_fake_mediaconvert.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import re
import warnings

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from highlights.aws import mediaconvert, sagemaker_jobs
from highlights.aws.java_regex import UntranslatablePattern, compile_java, java_matches
from highlights.segments import Segment
from tests.aws_rules import presigned_link_problems, regional_host, unique_processing_job_names
from tests.aws_strict import (
    StrictValidationError,
    check_request,
    request_violations,
    service_model,
    strict_aws,
)

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/highlights"
SOURCE = "s3://match-uploads/incoming/cup-final.mp4"
SERVICES = ("s3", "ses", "dynamodb", "sagemaker", "sagemaker-runtime", "sqs", "mediaconvert")


def problems(service: str, operation: str, params: dict) -> list[str]:
    return [str(v) for v in request_violations(service, operation, params)]


def processing_settings() -> sagemaker_jobs.ProcessingSettings:
    return sagemaker_jobs.ProcessingSettings(
        role_arn=ROLE,
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/highlights:1",
        features_instance_count=2,
    )


def features_request() -> dict:
    return sagemaker_jobs.features_job(
        "0123456789abcdef",
        "s3://match-work/frames/0123456789abcdef/",
        "s3://match-work/features/0123456789abcdef/",
        processing_settings(),
        capture_rate=5.0,
        backbone="efficientnet_lite0",
    )


def clip_request() -> dict:
    settings = mediaconvert.clip_settings(
        SOURCE,
        Segment(8.0, 13.0, 0.9, "PenaltyKick"),
        "s3://match-highlights/highlights/m1/clips/clip-000",
        29.97,
        True,
    )
    return {
        "Role": ROLE,
        "Settings": settings,
        "ClientRequestToken": mediaconvert.client_request_token("m1-clip-000"),
        "UserMetadata": {"match_id": "m1", "purpose": "clip-000"},
    }


@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        yield


# --- the model, in full ------------------------------------------------------------------------


def test_todays_requests_satisfy_their_models():
    assert problems("sagemaker", "CreateProcessingJob", features_request()) == []
    scores = sagemaker_jobs.scores_job(
        "0123456789abcdef",
        "s3://match-work/features/0123456789abcdef/",
        "s3://match-work/scores/0123456789abcdef/",
        processing_settings(),
        table="highlight-windows",
        region=REGION,
        targets=["PenaltyKick"],
        threshold=0.5,
        duration=5400.0,
        video_name="cup-final.mp4",
        model_uri="s3://match-work/models/m/",
    )
    assert problems("sagemaker", "CreateProcessingJob", scores) == []
    assert problems("mediaconvert", "CreateJob", clip_request()) == []
    reel = mediaconvert.reel_settings(
        SOURCE, [Segment(1, 2, 1, "x"), Segment(5, 7, 1, "x")], "s3://b/reel", 25, False
    )
    assert problems("mediaconvert", "CreateJob", {"Role": ROLE, "Settings": reel}) == []


def test_missing_required_member_is_named_by_its_path():
    request = features_request()
    del request["ProcessingInputs"][0]["S3Input"]["S3DataType"]
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "ProcessingInputs[0].S3Input.S3DataType: required member is missing"
    ]


def test_unknown_member_is_reported_with_the_nearest_valid_name():
    request = clip_request()
    request["Settings"]["Inputs"][0]["InputClipping"] = []
    assert problems("mediaconvert", "CreateJob", request) == [
        "Settings.Inputs[0].InputClipping: unknown member (did you mean InputClippings?)"
    ]


def test_value_of_the_wrong_type_is_reported():
    request = clip_request()
    request["Settings"]["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["Width"] = "640"
    assert problems("mediaconvert", "CreateJob", request) == [
        "Settings.OutputGroups[0].Outputs[0].VideoDescription.Width: "
        "expected an integer, got str '640'"
    ]


def test_a_boolean_is_not_an_integer():
    request = features_request()
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = True
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "ProcessingResources.ClusterConfig.InstanceCount: expected an integer, got bool True"
    ]


def test_value_outside_the_enum_is_reported():
    request = features_request()
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.m5.huge"
    [problem] = problems("sagemaker", "CreateProcessingJob", request)
    assert problem.startswith(
        "ProcessingResources.ClusterConfig.InstanceType: 'ml.m5.huge' is not one of ml.t3.medium"
    )


def test_number_above_the_maximum_is_reported_with_the_limit():
    request = clip_request()
    request["Settings"]["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["Width"] = 9000
    assert problems("mediaconvert", "CreateJob", request) == [
        "Settings.OutputGroups[0].Outputs[0].VideoDescription.Width: 9000 > max 8192"
    ]


def test_number_below_the_minimum_is_reported():
    request = clip_request()
    request["Priority"] = -51
    assert problems("mediaconvert", "CreateJob", request) == ["Priority: -51 < min -50"]


def test_string_longer_than_its_maximum_is_reported():
    request = features_request()
    request["ProcessingJobName"] = "a" * 64
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "ProcessingJobName: 64 characters > max 63",
        f"ProcessingJobName: '{'a' * 64}' does not match pattern "
        "`[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`",
    ]


def test_string_shorter_than_its_minimum_is_reported():
    assert problems("s3", "GetObject", {"Bucket": "b-1", "Key": ""}) == [
        "Key: 0 characters < min 1"
    ]


def test_list_longer_than_its_maximum_is_reported():
    request = features_request()
    request["ProcessingInputs"] = request["ProcessingInputs"] * 11
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "ProcessingInputs: 11 items > max 10"
    ]


def test_map_keys_and_values_are_checked_and_map_size_is_limited():
    request = features_request()
    request["Environment"] = {"OK_NAME": "1", "bad-name": "2"}
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "Environment key 'bad-name': 'bad-name' does not match pattern `[a-zA-Z_][a-zA-Z0-9_]*`"
    ]
    request["Environment"] = {f"V{i}": "x" for i in range(101)}
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "Environment: 101 entries > max 100"
    ]


def test_pattern_must_match_the_whole_value():
    request = features_request()
    request["ProcessingJobName"] = "hl_features_0123"  # a search would accept the "hl" prefix
    assert problems("sagemaker", "CreateProcessingJob", request) == [
        "ProcessingJobName: 'hl_features_0123' does not match pattern "
        "`[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`"
    ]


def test_pattern_violation_deep_in_a_list_is_found():
    request = clip_request()
    request["Settings"]["Inputs"][0]["InputClippings"][0]["EndTimecode"] = "00:00:13.00"
    assert problems("mediaconvert", "CreateJob", request) == [
        "Settings.Inputs[0].InputClippings[0].EndTimecode: '00:00:13.00' does not match pattern "
        r"`^([01][0-9]|2[0-4]):[0-5][0-9]:[0-5][0-9][:;][0-9]{2}(@[0-9]+(\.[0-9]+)?(:[0-9]+)?)?$`"
    ]


def test_every_violation_is_listed_not_only_the_first():
    request = features_request()
    request["ProcessingJobName"] = "x" * 70
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 0
    request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] = 20_000
    request["ProcessingInputs"][0]["S3Input"]["S3Uri"] = "gs://elsewhere/frames"
    with pytest.raises(StrictValidationError) as raised:
        check_request("sagemaker", "CreateProcessingJob", request)
    found = {v.path for v in raised.value.violations}
    assert found == {
        "ProcessingJobName",
        "ProcessingResources.ClusterConfig.InstanceCount",
        "ProcessingResources.ClusterConfig.VolumeSizeInGB",
        "ProcessingInputs[0].S3Input.S3Uri",
    }
    assert "sagemaker CreateProcessingJob breaks the service model" in str(raised.value)


def test_none_is_not_a_value():
    request = clip_request()
    request["Settings"]["Inputs"][0]["FileInput"] = None
    assert problems("mediaconvert", "CreateJob", request) == [
        "Settings.Inputs[0].FileInput: is None; expected a string"
    ]


def test_timestamps_and_blobs_take_what_botocore_serializes():
    good = {"Bucket": "b-1", "Key": "k", "Body": io.BytesIO(b"x"), "Expires": "2030-01-01"}
    assert problems("s3", "PutObject", good) == []
    bad = {"Bucket": "b-1", "Key": "k", "Body": 12, "Expires": "next tuesday"}
    assert problems("s3", "PutObject", bad) == [
        "Body: expected bytes, str or a file-like object, got int 12",
        "Expires: 'next tuesday' is not a timestamp",
    ]


# --- Java patterns -----------------------------------------------------------------------------


def test_every_pattern_of_the_services_we_call_compiles():
    loader = botocore.session.get_session().get_component("data_loader")
    for service in SERVICES:
        shapes = loader.load_service_model(service, "service-2")["shapes"]
        for shape in shapes.values():
            if "pattern" in shape:
                compile_java(shape["pattern"])


def test_every_pattern_in_botocore_compiles_or_raises_never_skips():
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    untranslated = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pattern re reads differently would warn
        for service in session.get_available_services():
            for shape in loader.load_service_model(service, "service-2")["shapes"].values():
                if "pattern" not in shape:
                    continue
                try:
                    compile_java(shape["pattern"])
                except UntranslatablePattern:
                    untranslated.append(shape["pattern"])
    assert len(untranslated) < 10, untranslated  # each raises when a request meets it


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        (r"\p{L}+", "Pokémon", True),  # Unicode letters
        (r"\p{Alpha}+", "é", False),  # Java's POSIX classes are ASCII-only
        (r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*", "match 1: goal", True),
        (r"\P{C}*", "tab\there", False),
        (r"[\w-_]+", "a-b_c", True),  # '-' after a class escape is a literal in Java
        (r"\w+", "naïve", False),  # \w is ASCII in Java
        (r"a.b", "a\rb", False),  # '.' stops at every Java line terminator
        (r"x\z", "x\n", False),
        (r"x$", "x", True),
        (r"[\uD800\uDC00-\uDBFF\uDFFF]", "😀", True),  # a surrogate pair is one code point
        (r"[\x{60}]", "`", True),
        (r"a(?i)bc", "aBC", True),
        (r"a(?i)bc", "ABC", False),
        (r"(?s)a.b", "a\nb", True),
        (r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,128}", "value 1", True),  # SageMaker tag values
        (r"[\p{L}||\p{N}]+", "a|1", True),  # '|' in a class is a literal
        (r"[a-z[0-9]]+", "a1", True),  # nested class: a union
    ],
)
def test_java_pattern_semantics(pattern, value, matches):
    assert java_matches(pattern, value) is matches


@pytest.mark.parametrize(
    "pattern", [r"\Gabc", r"[\p{Print}&&[^|:/]]+", r"(?m)^a$", r"[^a[^b]]", r"\p{IsAlphabetic}"]
)
def test_java_constructs_not_translated_raise(pattern):
    with pytest.raises(UntranslatablePattern, match=re.escape(repr(pattern))):
        compile_java(pattern)


# --- every request a test makes ------------------------------------------------------------


def test_s3_calls_boto3_shapes_specially_are_checked_as_serialized(aws, tmp_path):
    video = tmp_path / "big.bin"
    video.write_bytes(b"\0" * (9 * 1024 * 1024))  # multipart: CreateMultipartUpload, UploadPart
    with strict_aws() as log:
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="match-uploads")
        s3.upload_file(str(video), "match-uploads", "incoming/big.bin")
        s3.download_file("match-uploads", "incoming/big.bin", str(tmp_path / "back.bin"))
        s3.put_object(Bucket="match-uploads", Key="a.json", Body=io.BytesIO(b"{}"))
        s3.copy_object(
            Bucket="match-uploads",
            Key="b.json",
            CopySource={"Bucket": "match-uploads", "Key": "a.json"},
        )
        s3.put_object(Bucket="match-uploads", Key="c.bin", Body=b"x", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=b"k" * 32)  # fmt: skip
        s3.delete_objects(Bucket="match-uploads", Delete={"Objects": [{"Key": "a.json"}]})
        s3.generate_presigned_url(
            "get_object", Params={"Bucket": "match-uploads", "Key": "b.json"}, ExpiresIn=60
        )
    copied = log.calls("s3", "CopyObject")[0].params
    assert copied["CopySource"] == "match-uploads/a.json"  # as sent, after botocore's handler
    sse = log.calls("s3", "PutObject")[-1].params
    assert {"SSECustomerKey", "SSECustomerKeyMD5"} <= set(sse)
    assert log.calls("s3", "UploadPart")
    assert [r.presigned for r in log.calls("s3", "GetObject")][-1] is True


def test_invalid_request_raises_before_it_is_sent(aws):
    with strict_aws(fail_at_exit=False) as log:
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="match-uploads")
        with pytest.raises(StrictValidationError, match="ChecksumAlgorithm: 'ADLER32'"):
            s3.put_object(Bucket="match-uploads", Key="k", Body=b"x", ChecksumAlgorithm="ADLER32")
    assert [r.operation for r in log.requests] == ["CreateBucket", "PutObject"]
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket="match-uploads"
    )


def test_swallowed_violation_still_fails_the_block(aws):
    request = features_request()
    request["ProcessingJobName"] = "hl_features"
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with (
        pytest.raises(StrictValidationError, match=r"sagemaker CreateProcessingJob: Processing"),
        strict_aws(),
        contextlib.suppress(StrictValidationError),  # as code under test might
    ):
        sagemaker.create_processing_job(**request)


def test_ses_dynamodb_sqs_and_sagemaker_requests_pass_when_valid(aws, strict_requests):
    ses = boto3.client("ses", region_name=REGION)
    ses.verify_email_identity(EmailAddress="highlights@example.com")
    ses.send_raw_email(
        Source="highlights@example.com",
        Destinations=["coach@example.com"],
        RawMessage={"Data": b"Subject: 2 highlights\r\n\r\nlinks"},
    )
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    from highlights.aws.dynamodb import DynamoDBResults

    DynamoDBResults("highlight-windows", dynamodb).create_table()
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="{}")
    boto3.client("sagemaker", region_name=REGION).create_processing_job(**features_request())
    services = {r.service for r in strict_requests.requests}
    assert services == {"ses", "dynamodb", "sqs", "sagemaker"}


def test_aiobotocore_requests_are_validated_too():
    from aiobotocore.session import get_session

    async def call() -> str:
        session = get_session()
        async with session.create_client(
            "sqs", region_name=REGION, endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ) as sqs:  # fmt: skip
            with pytest.raises(StrictValidationError, match="QueueUrl: is None"):
                await sqs.receive_message(QueueUrl=None)
        async with session.create_client(
            "s3", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        ) as s3:
            return await s3.generate_presigned_url(
                "get_object", Params={"Bucket": "match-highlights", "Key": "reel.mp4"}
            )

    with strict_aws(fail_at_exit=False) as log:
        asyncio.run(call())
    assert [(r.service, r.operation) for r in log.requests] == [
        ("sqs", "ReceiveMessage"),
        ("s3", "GetObject"),
    ]
    assert len(log.failures) == 1


def test_the_fixture_records_and_restores(aws, strict_requests):
    from botocore.client import BaseClient

    boto3.client("s3", region_name=REGION).list_buckets()
    assert [r.operation for r in strict_requests.calls("s3")] == ["ListBuckets"]
    assert BaseClient._emit_api_params.__name__ == "emit"


def test_validation_is_off_outside_the_block(aws):
    from botocore.client import BaseClient

    with strict_aws():
        pass
    assert BaseClient._emit_api_params.__name__ == "_emit_api_params"


def test_service_model_is_the_one_clients_use():
    client = boto3.client("mediaconvert", region_name=REGION)
    assert (
        service_model("mediaconvert").operation_names == client.meta.service_model.operation_names
    )


# --- SageMaker: processing job names are unique ----------------------------------------------


def test_moto_alone_accepts_a_second_job_of_the_same_name(aws):
    """Why unique_processing_job_names exists: without it moto replaces the first job."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_processing_job(**features_request())
    sagemaker.create_processing_job(**features_request())
    assert len(sagemaker.list_processing_jobs()["ProcessingJobSummaries"]) == 1


def test_second_job_of_the_same_name_is_refused(aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with unique_processing_job_names():
        sagemaker.create_processing_job(**features_request())
        with pytest.raises(ClientError) as raised:
            sagemaker.create_processing_job(**features_request())
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    assert "hl-features-0123456789abcdef" in raised.value.response["Error"]["Message"]


def test_job_names_are_unique_per_region(aws):
    with unique_processing_job_names():
        for region in ("us-east-1", "eu-west-1"):
            boto3.client("sagemaker", region_name=region).create_processing_job(
                **features_request()
            )
        other = copy.deepcopy(features_request())
        other["ProcessingJobName"] = "hl-features-another-match"
        boto3.client("sagemaker", region_name=REGION).create_processing_job(**other)


def test_job_names_after_the_rule_are_free_again(aws):
    with unique_processing_job_names():
        boto3.client("sagemaker", region_name=REGION).create_processing_job(**features_request())
    from moto.sagemaker.models import SageMakerModelBackend

    assert SageMakerModelBackend.create_processing_job.__name__ == "create_processing_job"


# --- S3: presigned links ---------------------------------------------------------------------


def presign(region: str, **client: object) -> str:
    s3 = boto3.client(
        "s3", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing",
        **client,
    )  # fmt: skip
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": "match-highlights", "Key": "h/m1/reel.mp4"}, ExpiresIn=3600
    )


def test_link_on_the_legacy_global_host_is_refused():
    # A SigV4 client as S3Storage asks for: botocore still presigns on <bucket>.s3.amazonaws.com.
    url = presign(REGION, config=Config(signature_version="s3v4"))
    assert url.startswith("https://match-highlights.s3.amazonaws.com/")
    [problem] = presigned_link_problems(url, bucket="match-highlights", region=REGION)
    assert (
        "is not the bucket's regional endpoint 'match-highlights.s3.us-east-1.amazonaws.com'"
        in problem
    )


def test_link_on_the_regional_virtual_host_passes():
    config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    url = presign(REGION, config=config, endpoint_url="https://s3.us-east-1.amazonaws.com")
    assert presigned_link_problems(url, bucket="match-highlights", region=REGION) == []
    assert (
        regional_host("match-highlights", "eu-south-2")
        == "match-highlights.s3.eu-south-2.amazonaws.com"
    )


def test_link_signed_with_signature_version_2_is_refused():
    url = presign(REGION, endpoint_url="https://match-highlights.s3.us-east-1.amazonaws.com")
    assert any("Signature Version 4" in p for p in presigned_link_problems(
        url, bucket="match-highlights", region=REGION
    ))  # fmt: skip


def test_link_signed_for_another_region_or_too_long_is_refused():
    config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    url = presign("eu-west-1", config=config, endpoint_url="https://s3.us-east-1.amazonaws.com")
    found = presigned_link_problems(url, bucket="match-highlights", region=REGION)
    assert found == ["credential scope 'eu-west-1/s3/aws4_request' is not for s3 in us-east-1"]
    long = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801")
    assert any("604800" in p for p in presigned_link_problems(long, bucket="match-highlights",
                                                               region="eu-west-1"))  # fmt: skip
