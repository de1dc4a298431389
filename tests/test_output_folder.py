"""The output folder: its lock, the manifest of what we wrote, and the staged swap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from highlights.errors import OutputBusyError, OutputExistsError
from highlights.outputs.folder import MANIFEST_FILE, STAGING_PREFIX, OutputFolder

REPO = Path(__file__).resolve().parents[1]
OLD = {
    "segments.json": b"old segments",
    "clips/clip-001.mp4": b"old clip 1",
    "clips/clip-001.jpg": b"old thumb 1",
    "clips/clip-002.mp4": b"old clip 2",
    "report.html": b"old report",
}
NEW = {
    "segments.json": b"new segments",
    "clips/clip-001.mp4": b"new clip 1",
    "clips/clip-003.mp4": b"new clip 3",
    "report.html": b"new report",
    "work/features.npz": b"new features",
}
USERS = {"notes.txt": b"mine", "clips/clip-001/own.txt": b"a folder of mine called clip-001"}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def publish(out: Path, files: dict[str, bytes], match_id: str = "match-1", force: bool = False):
    folder = OutputFolder(out)
    with folder.lock():
        folder.claim(match_id, force=force)
        staging = folder.begin_staging()
        write_files(staging, files)
        folder.publish(staging)


def ours(out: Path) -> dict[str, bytes]:
    """Every file in the folder but the manifest and the user's own."""
    return {
        rel: (out / rel).read_bytes()
        for rel in (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        if rel != MANIFEST_FILE and rel not in USERS
    }


def result_folder(tmp_path: Path) -> Path:
    """A folder holding the OLD result and some files of the user's."""
    out = tmp_path / "out"
    publish(out, OLD)
    write_files(out, USERS)
    return out


def test_a_published_result_is_listed_in_the_manifest(tmp_path: Path) -> None:
    out = result_folder(tmp_path)
    assert ours(out) == OLD
    assert OutputFolder(out).files() == tuple(sorted(OLD))
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_a_new_result_replaces_only_the_files_we_wrote(tmp_path: Path) -> None:
    out = result_folder(tmp_path)
    publish(out, NEW)
    assert ours(out) == NEW
    assert {rel: (out / rel).read_bytes() for rel in USERS} == USERS
    assert OutputFolder(out).files() == tuple(sorted(NEW))


def test_a_file_of_the_users_where_a_result_goes_is_refused_with_nothing_changed(
    tmp_path: Path,
) -> None:
    out = result_folder(tmp_path)
    (out / "work").mkdir()
    (out / "work" / "features.npz").write_bytes(b"the user's own")
    with pytest.raises(OutputExistsError, match=r"work/features\.npz: .*highlights did not write"):
        publish(out, NEW)
    assert (out / "work" / "features.npz").read_bytes() == b"the user's own"
    assert {k: v for k, v in ours(out).items() if not k.startswith("work/")} == OLD
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_a_folder_of_other_files_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_files(out, USERS)
    with pytest.raises(OutputExistsError, match="files that are not ours"):
        OutputFolder(out).claim("match-1")
    assert sorted(p.name for p in out.iterdir()) == ["clips", "notes.txt"]


def test_another_videos_result_is_replaced_only_with_force(tmp_path: Path) -> None:
    out = result_folder(tmp_path)
    with pytest.raises(OutputExistsError, match="another video's results"):
        publish(out, NEW, match_id="match-2")
    publish(out, NEW, match_id="match-2", force=True)
    assert ours(out) == NEW
    assert {rel: (out / rel).read_bytes() for rel in USERS} == USERS


def test_a_damaged_manifest_never_points_outside_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me")
    out = result_folder(tmp_path)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["files"].append("../precious.txt")
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    publish(out, {"elsewhere.html": b"new"}, force=True)  # the manifest is not trusted...
    assert outside.read_bytes() == b"keep me"
    assert ours(out) == {**OLD, "elsewhere.html": b"new"}  # ...so nothing old counts as ours


def test_a_second_holder_of_the_lock_is_refused(tmp_path: Path) -> None:
    with (
        OutputFolder(tmp_path).lock(),
        pytest.raises(OutputBusyError, match="another highlights run"),
        OutputFolder(tmp_path).lock(),
    ):
        pass
    with OutputFolder(tmp_path).lock():  # free again
        pass


_HOLD_LOCK = """
import sys, time
from highlights.outputs.folder import OutputFolder
with OutputFolder(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(OutputBusyError), OutputFolder(tmp_path).lock():
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    with OutputFolder(tmp_path).lock():
        pass
    assert [p.name for p in tmp_path.iterdir()] == []  # and no lock file either


def test_a_run_that_dies_while_staging_is_rolled_back(tmp_path: Path) -> None:
    out = result_folder(tmp_path)
    folder = OutputFolder(out)
    with folder.lock():
        folder.claim("match-1")
        staging = folder.begin_staging()
        write_files(staging, {"segments.json": b"half", "clips/.clip-001.x.partial.mp4": b"ha"})
    # (the run dies here: no publish)
    assert ours(out).keys() >= OLD.keys()
    folder.claim("match-1")
    assert ours(out) == OLD
    assert not staging.exists()


# Runs a swap of OLD -> NEW in a real process that SIGKILLs itself at its `budget`-th file
# operation (each rename, delete and folder removal, manifest writes included).
_CRASHING_SWAP = """
import os, signal, sys
from pathlib import Path
from highlights.outputs.folder import OutputFolder

out, budget, new = Path(sys.argv[1]), int(sys.argv[2]), eval(sys.argv[3])
steps = [0]

def crashing(real):
    def step(*args, **kwargs):
        if steps[0] == budget:
            os.kill(os.getpid(), signal.SIGKILL)
        steps[0] += 1
        return real(*args, **kwargs)
    return step

folder = OutputFolder(out)
with folder.lock():
    folder.claim("match-1")
    staging = folder.begin_staging()
    for rel, data in new.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(data)
    os.replace, os.unlink, os.rmdir = crashing(os.replace), crashing(os.unlink), crashing(os.rmdir)
    folder.publish(staging)
print("swapped")
"""


def test_a_crash_at_any_step_of_the_swap_leaves_the_old_or_the_new_result(
    tmp_path: Path,
) -> None:
    outcomes = []
    for budget in range(200):
        out = result_folder(tmp_path / str(budget))
        run = subprocess.run(
            [sys.executable, "-c", _CRASHING_SWAP, str(out), str(budget), repr(NEW)],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
        finished = run.returncode == 0
        assert finished or run.returncode == -signal.SIGKILL, run.stderr
        OutputFolder(out).claim("match-1")  # the next run settles the folder first
        found = ours(out)
        assert found in (OLD, NEW), f"a mix after a crash at step {budget}: {sorted(found)}"
        assert OutputFolder(out).files() == tuple(sorted(found))
        assert {rel: (out / rel).read_bytes() for rel in USERS} == USERS
        assert not list(out.glob(f"{STAGING_PREFIX}*"))
        outcomes.append("new" if found == NEW else "old")
        if finished:
            break
    else:
        pytest.fail("the swap never finished")
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert outcomes.count("new") > 1  # crashes after the journal was written rolled forward
