"""`Storage` in an S3 bucket, the S3 client that presigns links on the bucket's regional host,
and `storage_at`, which opens the bucket or the local folder a URI names (a SageMaker job's
checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from highlights.errors import ConfigError, InputError
from highlights.files import atomic_path
from highlights.local.storage import LocalStorage
from highlights.storage import Storage, check_key, check_local_file


class S3Storage:
    """Keys are objects in `bucket` under `prefix`; URLs are presigned GETs that expire.

    `client` is a boto3 S3 client. For links it must sign with Signature Version 4:
    `boto3.client("s3", config=botocore.config.Config(signature_version="s3v4"))`. boto3 otherwise
    presigns with version 2, which S3 refuses for buckets created since June 2020.
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "") -> None:
        self.bucket = bucket
        self.client = client
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put_file(self, local: Path, key: str) -> None:
        self.client.upload_file(str(check_local_file(local)), self.bucket, self.object_key(key))

    def get_file(self, key: str, local: Path) -> None:
        with atomic_path(Path(local)) as tmp:
            try:
                self.client.download_file(self.bucket, self.object_key(key), str(tmp))
            except Exception as exc:
                if _not_found(exc):
                    raise InputError(
                        f"s3://{self.bucket}/{self.object_key(key)}: not found"
                    ) from None
                raise

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        keys = (obj["Key"] for page in pages for obj in page.get("Contents", []))
        return sorted(key[len(self.prefix) :] for key in keys)

    def url(self, key: str, expires: int) -> str:
        if expires <= 0:
            raise InputError(
                f"a link must stay valid for a positive number of seconds, got {expires}"
            )
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=expires,
        )
        if "X-Amz-Signature=" not in url:
            raise ConfigError(
                "the S3 client presigns links with Signature Version 2, which S3 refuses for new "
                "buckets: create it with botocore.config.Config(signature_version='s3v4')"
            )
        return url


def _not_found(exc: Exception) -> bool:
    """Whether a botocore error means the object is not there (HEAD says 404, GET NoSuchKey)."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey")


def storage_at(uri: str, s3_client: Any | None = None) -> Storage:
    """The storage a URI names: `s3://bucket/prefix` (with `s3_client`, else a default boto3
    client) or a local folder (a path or `file://` URL)."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"{uri}: an s3:// URI must name a bucket")
        if s3_client is None:
            import boto3  # in the `aws` extra only

            s3_client = boto3.client("s3")
        return S3Storage(bucket, s3_client, prefix)
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"{uri}: storage must be an s3:// URI or a local folder")
    return LocalStorage(Path(uri.removeprefix("file://")))


def regional_s3_endpoint(region: str) -> str:
    """S3's regional endpoint: "https://s3.region-code.amazonaws.com" (amazonaws.com.cn in China).
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html"""
    if not region:
        raise ConfigError("S3 links need the bucket's region")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{region}.{suffix}"


def link_client(session: Any, region: str) -> Any:
    """An S3 client of `session` (boto3) that presigns links for the bucket's regional
    virtual-hosted endpoint, `https://<bucket>.s3.<region>.amazonaws.com/<key>`.

    Not the legacy global host `<bucket>.s3.amazonaws.com` (what boto3 signs for us-east-1, or
    for a client without a region): S3 answers it with a 307 redirect while a new bucket's name
    propagates (up to 24 hours), and a signed link cannot follow a redirect; Regions opened after
    March 2019 refuse it. The endpoint is given explicitly, so an endpoint override meant for
    the workers' own requests (a VPC endpoint, AWS_ENDPOINT_URL) never reaches a recipient.
    https://docs.aws.amazon.com/AmazonS3/latest/API/UsingRouting.html
    """
    from botocore.config import Config  # in the `aws` extra only

    return session.client(
        "s3",
        region_name=region,
        endpoint_url=regional_s3_endpoint(region),
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )
