"""The watched folder: settled videos, versions, deterministic run ids, parking failed ones."""

from __future__ import annotations

import os
import time

import pytest

from highlights.claims import Claim
from highlights.errors import InputError
from highlights.local.inbox import LocalInbox


@pytest.fixture
def inbox(tmp_path):
    (tmp_path / "in").mkdir()
    return LocalInbox(tmp_path / "in", tmp_path / "ledger", settle_seconds=0)


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_settled_videos_oldest_first_without_sidecars(inbox):
    first, second = inbox.incoming / "a.mp4", inbox.incoming / "b.mkv"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    age(first, 100)
    (inbox.incoming / "notes.txt").write_text("not a video")
    (inbox.incoming / ".hidden.mp4").write_bytes(b"x")
    (inbox.incoming / "failed").mkdir()
    assert [v.path for v in inbox.settled()] == [first, second]


def test_a_file_still_being_written_waits(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"partial")
    inbox = LocalInbox(tmp_path / "in", tmp_path / "ledger", settle_seconds=60)
    assert inbox.settled() == []


def test_a_file_copied_with_an_old_mtime_waits_for_its_ctime(tmp_path):
    (tmp_path / "in").mkdir()
    video = tmp_path / "in" / "a.mp4"
    video.write_bytes(b"copied with cp -p")
    age(video, 3600)  # the mtime says old, the ctime (set by utime just now) says new
    inbox = LocalInbox(tmp_path / "in", tmp_path / "ledger", settle_seconds=60)
    assert inbox.settled() == []


def test_the_run_id_is_deterministic_and_names_the_file(inbox):
    video = inbox.incoming / "Cup Final.mp4"
    video.write_bytes(b"match")
    first, again = inbox.video(video), inbox.video(video)
    assert first.first_run_id == again.first_run_id
    assert first.first_run_id.startswith("local__cup-final-")


def test_new_content_is_a_new_version_and_a_new_run(inbox):
    video = inbox.incoming / "a.mp4"
    video.write_bytes(b"first")
    before = inbox.video(video)
    video.write_bytes(b"second upload")
    after = inbox.video(video)
    assert after.version != before.version
    assert after.first_run_id != before.first_run_id


def test_parking_moves_the_video_with_its_errors_and_forgets_the_claim(inbox):
    video_path = inbox.incoming / "cup.mp4"
    video_path.write_bytes(b"broken")
    video = inbox.video(video_path)
    claim = (
        video.fresh_claim()
        .started("r1")
        .noted_error("r1", "features: not a readable video")
        .failed("r1")
    )
    inbox.claims.write(video.name, claim)
    parked = inbox.park(video, claim)
    assert parked == inbox.incoming / "failed" / "cup.mp4"
    assert parked.read_bytes() == b"broken" and not video_path.exists()
    report = (inbox.incoming / "failed" / "cup.mp4.error.txt").read_text()
    assert "failed 1 times" in report and "features: not a readable video" in report
    assert inbox.claims.read("cup.mp4") is None


def test_parking_never_replaces_an_earlier_parked_file(inbox):
    (inbox.incoming / "failed").mkdir()
    (inbox.incoming / "failed" / "cup.mp4").write_bytes(b"older")
    video_path = inbox.incoming / "cup.mp4"
    video_path.write_bytes(b"newer")
    parked = inbox.park(inbox.video(video_path), Claim(str(video_path), "v"))
    assert parked.name == "cup-2.mp4"
    assert (inbox.incoming / "failed" / "cup.mp4").read_bytes() == b"older"


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="watched folder not found"):
        LocalInbox(tmp_path / "nope", tmp_path / "ledger").settled()
