"""Where outputs live: a local folder or an S3 bucket, behind one small interface.

Keys are POSIX-style relative paths ("match-1/clips/clip-001.mp4"). A key never reaches
outside the storage root: absolute keys and `..` parts are refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from highlights.errors import ConfigError, InputError
from highlights.files import atomic_path


class Storage(Protocol):
    def put_file(self, local: Path, key: str) -> None:
        """Copy a local file to `key`, replacing what was there."""

    def get_file(self, key: str, local: Path) -> None:
        """Copy `key` to a local file (written atomically)."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys that start with `prefix` (a plain string prefix, as S3 has), sorted."""

    def url(self, key: str, expires: int) -> str:
        """A link someone can open to read `key`, valid for `expires` seconds where that applies."""


def check_key(key: str) -> str:
    """The key in normal form; InputError if it is empty, absolute or climbs out with `..`."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or "\\" in key or any(part == ".." for part in path.parts):
        raise InputError(f"storage key {key!r} must be a relative path without '..'")
    normal = path.as_posix()
    if normal in ("", "."):
        raise InputError(f"storage key {key!r} names no file")
    return normal


def _check_local_source(local: Path) -> Path:
    local = Path(local)
    if not local.is_file():
        raise InputError(f"{local}: file to store not found")
    return local


def _is_partial(path: Path) -> bool:
    """A temporary file of highlights.files.atomic_path, still being written."""
    return path.name.startswith(".") and ".partial" in path.name


class LocalStorage:
    """Keys are files under `root`; URLs are file:// URLs (they do not expire)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink inside the root may point outside
            raise InputError(f"storage key {key!r} leads outside {self.root}")
        return path

    def put_file(self, local: Path, key: str) -> None:
        source = _check_local_source(local)
        with atomic_path(self.path(key)) as tmp:
            shutil.copyfile(source, tmp)

    def get_file(self, key: str, local: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise InputError(f"{key}: not found in storage {self.root}")
        with atomic_path(Path(local)) as tmp:
            shutil.copyfile(source, tmp)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not _is_partial(path)
        )
        return sorted(key for key in keys if key.startswith(prefix))

    def url(self, key: str, expires: int) -> str:
        return self.path(key).as_uri()


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
        self.client.upload_file(str(_check_local_source(local)), self.bucket, self.object_key(key))

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
