"""The console links the AWS tasks show in the Airflow UI."""

from __future__ import annotations

from tests import airflow_env

airflow_env.configure()


def test_mediaconvert_job_link():
    from aws_links import mediaconvert_job_url

    assert mediaconvert_job_url("eu-west-1", "1700000000000-abc") == (
        "https://eu-west-1.console.aws.amazon.com/mediaconvert/home?region=eu-west-1"
        "#/jobs/summary/1700000000000-abc"
    )


def test_processing_job_link():
    from aws_links import processing_job_url

    assert processing_job_url("us-east-1", "hl-scores-cup-1").endswith(
        "/sagemaker/home?region=us-east-1#/processing-jobs/hl-scores-cup-1"
    )


def test_results_folder_link_quotes_the_prefix():
    from aws_links import s3_folder_url

    assert s3_folder_url("eu-west-1", "s3://out-bucket/highlights/cup final-1/") == (
        "https://eu-west-1.console.aws.amazon.com/s3/buckets/out-bucket"
        "?region=eu-west-1&prefix=highlights/cup%20final-1/"
    )


def test_operators_carry_the_links():
    from mediaconvert import MediaConvertCreateJobOperator
    from sagemaker_processing import SageMakerProcessingOnceOperator

    names = {link.name for link in MediaConvertCreateJobOperator.operator_extra_links}
    assert names == {"MediaConvert job", "Match results (S3)"}
    names = {link.name for link in SageMakerProcessingOnceOperator.operator_extra_links}
    assert names == {"SageMaker processing job", "Match results (S3)"}
