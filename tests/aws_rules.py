"""Documented AWS rules that moto does not enforce and a service model cannot hold.

- `unique_processing_job_names()`: SageMaker refuses a second processing job of a name that
  exists in the account and Region; moto 5 silently replaces the first job. While active, moto's
  CreateProcessingJob answers ResourceInUse instead (in-process `mock_aws` and
  `ThreadedMotoServer` alike: both run moto's backend in this process).
- `presigned_link_problems(url, bucket=, region=)`: what is wrong with a presigned S3 GET link
  a user will open days later: host, signature version, credential scope and expiry.

MediaConvert's rules live with its fake (tests/fake_mediaconvert.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlsplit

# --- SageMaker: processing job names -----------------------------------------------------------


@contextmanager
def unique_processing_job_names() -> Iterator[None]:
    """Make moto refuse a CreateProcessingJob whose name is taken in that account and Region.

    CreateProcessingJob, ProcessingJobName: "The name must be unique within an Amazon Web
    Services Region in the Amazon Web Services account."
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html
    DeleteProcessingJob: "After deleting the job, you can reuse its name to create another
    processing job." (moto 5.2 has no DeleteProcessingJob, so here a name stays taken.)
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeleteProcessingJob.html
    The error is the one the model lists for CreateProcessingJob, ResourceInUse ("Resource being
    accessed is in use."); the exact code the service sends for this case is not documented.
    """
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.models import SageMakerModelBackend

    create = SageMakerModelBackend.create_processing_job

    def create_unique(self, *args, **kwargs):
        name = kwargs.get("processing_job_name")
        if name in self.processing_jobs:
            arn = self.processing_jobs[name].arn
            raise ResourceInUseException(
                message=f"Job name must be unique within an AWS account and region, and a job "
                f"with this name already exists ({arn})"
            )
        return create(self, *args, **kwargs)

    SageMakerModelBackend.create_processing_job = create_unique
    try:
        yield
    finally:
        SageMakerModelBackend.create_processing_job = create


# --- S3: presigned links --------------------------------------------------------------------

# Presigned links "expire when the token expires" and are valid "up to seven days when using AWS
# Signature Version 4" with IAM user keys (an instance profile's: six hours).
# https://repost.aws/knowledge-center/presigned-url-s3-bucket-expiration
MAX_EXPIRES_SECONDS = 604_800


def regional_host(bucket: str, region: str) -> str:
    """Virtual-hosted-style regional endpoint: "https://bucket-name.s3.region-code.amazonaws.com"
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html"""
    return f"{bucket}.s3.{region}.amazonaws.com"


def presigned_link_problems(url: str, *, bucket: str, region: str) -> list[str]:
    """Why a presigned GET link for an object in `bucket` (in `region`) would not work reliably.

    The host must be the bucket's regional virtual-hosted endpoint. The legacy global host
    (`<bucket>.s3.amazonaws.com`) is answered with a redirect while a new bucket's name
    propagates, and a presigned link cannot follow it: "If you create a new bucket and
    immediately make a request to the bucket, you might receive a temporary redirect" and "For
    all Regions that launched after March 20, 2019, if a request arrives at the wrong Amazon S3
    location, Amazon S3 returns an HTTP 400 Bad Request error."
    https://docs.aws.amazon.com/AmazonS3/latest/API/UsingRouting.html
    "After you create an Amazon S3 bucket, it can take up to 24 hours before the bucket name
    propagates across all AWS Regions. During this time, you might receive the 307 Temporary
    Redirect response" https://repost.aws/knowledge-center/s3-http-307-response
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    problems = []
    if parts.scheme != "https":
        problems.append(f"scheme {parts.scheme!r}: S3 links must be https")
    expected = regional_host(bucket, region)
    if parts.hostname != expected:
        problems.append(
            f"host {parts.hostname!r} is not the bucket's regional endpoint {expected!r} "
            "(the legacy global host redirects new buckets, and a signed link cannot follow)"
        )
    if query.get("X-Amz-Algorithm") != ["AWS4-HMAC-SHA256"]:
        problems.append(
            "not signed with Signature Version 4 (X-Amz-Algorithm=AWS4-HMAC-SHA256), which "
            "links that last up to seven days need (and S3Storage promises)"
        )
        return problems
    scope = unquote((query.get("X-Amz-Credential") or [""])[0]).split("/")
    if len(scope) != 5 or scope[2] != region or scope[3] != "s3":
        problems.append(f"credential scope {'/'.join(scope[2:])!r} is not for s3 in {region}")
    expires = (query.get("X-Amz-Expires") or ["0"])[0]
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES_SECONDS:
        problems.append(f"X-Amz-Expires={expires}: must be 1..{MAX_EXPIRES_SECONDS} (seven days)")
    return problems
