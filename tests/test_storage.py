"""Specification of output storage: a local folder, and S3 (moto, in process and over HTTP)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from moto.server import ThreadedMotoServer

from highlights.aws.s3 import S3Storage
from highlights.errors import ConfigError, InputError
from highlights.local.storage import LocalStorage
from highlights.storage import Storage

SIGV4 = Config(signature_version="s3v4")


@pytest.fixture(params=["local", "s3"])
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, aws_credentials: None
) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "store")
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="highlights")
        yield S3Storage("highlights", client, prefix="matches/")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    return path


# --- behaviour shared by both backends --------------------------------------------------------


def test_a_stored_file_comes_back_byte_for_byte(
    storage: Storage, clip: Path, tmp_path: Path
) -> None:
    storage.put_file(clip, "m1/clips/clip-001.mp4")
    storage.get_file("m1/clips/clip-001.mp4", tmp_path / "back" / "clip.mp4")
    assert (tmp_path / "back" / "clip.mp4").read_bytes() == clip.read_bytes()


def test_putting_again_replaces_the_file(storage: Storage, clip: Path, tmp_path: Path) -> None:
    storage.put_file(clip, "m1/report.html")
    newer = tmp_path / "newer.html"
    newer.write_text("<p>second run</p>")
    storage.put_file(newer, "m1/report.html")
    storage.get_file("m1/report.html", tmp_path / "got.html")
    assert (tmp_path / "got.html").read_text() == "<p>second run</p>"
    assert storage.list("m1/") == ["m1/report.html"]


def test_exists_tells_stored_from_missing(storage: Storage, clip: Path) -> None:
    storage.put_file(clip, "m1/clip.mp4")
    assert storage.exists("m1/clip.mp4")
    assert not storage.exists("m1/other.mp4")


def test_list_filters_by_string_prefix_and_sorts(storage: Storage, clip: Path) -> None:
    for key in ["m2/b.mp4", "m1/b.mp4", "m1/a.mp4", "m10/a.mp4"]:
        storage.put_file(clip, key)
    assert storage.list("m1") == ["m1/a.mp4", "m1/b.mp4", "m10/a.mp4"]
    assert storage.list("m1/") == ["m1/a.mp4", "m1/b.mp4"]
    assert storage.list() == ["m1/a.mp4", "m1/b.mp4", "m10/a.mp4", "m2/b.mp4"]


def test_getting_a_missing_key_names_it(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="m1/nothing.mp4: not found"):
        storage.get_file("m1/nothing.mp4", tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_storing_a_missing_local_file_names_it(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ghost.mp4: file to store not found"):
        storage.put_file(tmp_path / "ghost.mp4", "m1/ghost.mp4")


@pytest.mark.parametrize(
    "key", ["../escape.mp4", "m1/../../escape.mp4", "/etc/passwd", "", "a\\..\\b"]
)
def test_keys_cannot_escape_the_root(storage: Storage, clip: Path, key: str) -> None:
    with pytest.raises(InputError, match="storage key"):
        storage.put_file(clip, key)


# --- local specifics --------------------------------------------------------------------------


def test_local_files_land_under_the_root(tmp_path: Path, clip: Path) -> None:
    LocalStorage(tmp_path / "store").put_file(clip, "m1/clips/c.mp4")
    assert (tmp_path / "store" / "m1" / "clips" / "c.mp4").read_bytes() == clip.read_bytes()
    assert not (tmp_path / "escape.mp4").exists()


def test_local_urls_are_file_urls_to_the_stored_file(tmp_path: Path, clip: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.put_file(clip, "m1/clip 1.mp4")
    url = storage.url("m1/clip 1.mp4", expires=3600)
    assert url == (tmp_path / "store" / "m1" / "clip 1.mp4").resolve().as_uri()
    with urllib.request.urlopen(url) as response:
        assert response.read() == clip.read_bytes()


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "store" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(InputError, match="leads outside"):
        LocalStorage(tmp_path / "store").put_file(clip, "link/clip.mp4")


def test_half_written_files_are_not_listed(tmp_path: Path, clip: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.put_file(clip, "m1/a.mp4")
    (tmp_path / "store" / "m1" / ".b.abc123.partial.mp4").write_bytes(b"half")
    assert storage.list() == ["m1/a.mp4"]


# --- S3 specifics -----------------------------------------------------------------------------


def test_s3_objects_sit_under_the_prefix(aws_credentials: None, clip: Path) -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="highlights-b")
        S3Storage("highlights-b", client, prefix="/highlights").put_file(clip, "m1/c.mp4")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="highlights-b")["Contents"]]
    assert keys == ["highlights/m1/c.mp4"]


@pytest.fixture
def moto_server(aws_credentials: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_url_is_a_presigned_get_that_downloads_over_http(moto_server: str, clip: Path) -> None:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server, config=SIGV4)
    client.create_bucket(Bucket="highlights")
    storage = S3Storage("highlights", client, prefix="out")
    storage.put_file(clip, "m1/clip-001.mp4")
    url = storage.url("m1/clip-001.mp4", expires=900)
    with urllib.request.urlopen(url) as response:
        assert response.read() == clip.read_bytes()


def test_s3_url_is_signed_for_the_given_lifetime_from_now(aws_credentials: None) -> None:
    # S3 refuses a SigV4 query-signed link once X-Amz-Date + X-Amz-Expires has passed ("Request
    # has expired"); moto does not enforce that, so the test reads the two signed parameters.
    before = datetime.now(UTC).replace(microsecond=0)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", config=SIGV4)
        url = S3Storage("highlights", client).url("m1/clip.mp4", expires=900)
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path.endswith("/m1/clip.mp4")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= signed_at <= datetime.now(UTC)
    assert "X-Amz-Signature" in query


def test_a_client_that_would_sign_links_with_version_2_is_refused(aws_credentials: None) -> None:
    with mock_aws(), pytest.raises(ConfigError, match="signature_version='s3v4'"):
        S3Storage("highlights", boto3.client("s3", region_name="us-east-1")).url("k", expires=60)


def test_s3_url_needs_a_positive_lifetime(aws_credentials: None) -> None:
    with mock_aws(), pytest.raises(InputError, match="positive number of seconds"):
        S3Storage("highlights", boto3.client("s3", region_name="us-east-1")).url("k", expires=0)
