"""The `highlights` command: exit codes, one clear error line, nothing half-written."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from highlights.cli import main
from highlights.outputs.folder import OutputFolder
from highlights.recipe import FeatureRecipe
from highlights.synthetic import EVENT_CLASS


def _detect(video: Path, model: Path, out: Path, cache: Path, *extra: str) -> int:
    return main(
        [
            "detect",
            str(video),
            "--model",
            str(model),
            "--target",
            EVENT_CLASS,
            "--out",
            str(out),
            "--cache-dir",
            str(cache),
            "--quiet",
            *extra,
        ]
    )


def _audio_only(path: Path) -> Path:
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-c:a",
            "aac",
            "-f",
            "mp4",
            str(path),
        ],
        check=True,
    )
    return path


@pytest.mark.parametrize("command", [[], ["detect"], ["train"], ["demo"]])
def test_help_exits_zero(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: highlights" in capsys.readouterr().out


def test_usage_error_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "match.mp4"])
    assert exit_info.value.code == 2
    assert "--model" in capsys.readouterr().err


def _bad_videos(tmp_path: Path, good: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    return {
        "missing": tmp_path / "missing.mp4",
        "empty": empty,
        "truncated": truncated,
        "text": text,
        "audio-only": _audio_only(tmp_path / "sound.mp4"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "text", "audio-only"])
def test_bad_video_gives_one_clear_line_and_exit_two(
    case: str,
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video = _bad_videos(tmp_path, synthetic_match[0])[case]
    out = tmp_path / "out"
    assert _detect(video, trained_model, out, feature_cache) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("highlights: error:")
    assert video.name in err[0]
    assert not out.exists()


def _broken_model(trained_model: Path, tmp_path: Path, case: str) -> Path:
    model = tmp_path / f"model-{case}"
    shutil.copytree(trained_model, model)
    manifest = model / "manifest.json"
    if case == "broken-json":
        manifest.write_text("{ not json")
    elif case == "mismatched-features":
        data = json.loads(manifest.read_text())
        data["feature_dim"] = 2048
        manifest.write_text(json.dumps(data))
    elif case == "missing-manifest":
        manifest.unlink()
    elif case == "not-a-model":
        (model / "model.keras").write_bytes(b"garbage")
    return model


@pytest.mark.parametrize(
    "case", ["broken-json", "mismatched-features", "missing-manifest", "not-a-model"]
)
def test_bad_model_gives_exit_two_and_writes_nothing(
    case: str,
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _broken_model(trained_model, tmp_path, case)
    out = tmp_path / "out"
    assert _detect(synthetic_match[0], model, out, feature_cache) == 2
    err = capsys.readouterr().err
    assert "highlights: error:" in err and model.name in err
    assert not out.exists()


def test_a_model_trained_on_other_weights_is_refused_in_one_line_naming_both_recipes(
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = tmp_path / "model-other-weights"
    shutil.copytree(trained_model, model)
    manifest = json.loads((model / "manifest.json").read_text())
    ours = FeatureRecipe.from_dict(manifest["recipe"], "manifest")
    manifest["recipe"]["weights_sha256"] = "0" * 64  # as if trained on a fine-tuned backbone
    (model / "manifest.json").write_text(json.dumps(manifest))
    theirs = FeatureRecipe.from_dict(manifest["recipe"], "manifest")
    out = tmp_path / "out"
    assert _detect(synthetic_match[0], model, out, feature_cache) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("highlights: error:")
    assert f"features made by {ours.describe()}" in err[0]
    assert f"trained on {theirs.describe()}" in err[0]
    assert not out.exists()


def test_bad_config_file_gives_exit_two(
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[segments]\nthreshold = 3\n")
    code = _detect(
        synthetic_match[0], trained_model, tmp_path / "out", feature_cache, "--config", str(config)
    )
    assert code == 2
    assert "threshold" in capsys.readouterr().err


def test_existing_output_folder_is_not_overwritten(
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("the user's own report")
    assert _detect(synthetic_match[0], trained_model, out, feature_cache) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "the user's own report"


def test_detect_succeeds_and_lists_the_clips(
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    assert _detect(synthetic_match[0], trained_model, out, feature_cache) == 0
    printed = capsys.readouterr().out
    clips = sorted((out / "clips").glob("*.mp4"))
    assert clips and all(clip.name in printed for clip in clips)
    assert "report:" in printed and "email:" in printed


def test_train_reports_bad_dataset_with_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["train", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "m"), "--quiet"])
        == 2
    )
    assert "nothing-here" in capsys.readouterr().err


# --- the output folder ------------------------------------------------------------------------


def _detect_process(
    video: Path, model: Path, out: Path, cache: Path, *extra: str
) -> subprocess.Popen[str]:
    """`highlights detect` in a process of its own (and its own process group, for its ffmpegs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "highlights.cli", "detect", str(video), "--model", str(model),
         "--target", EVENT_CLASS, "--out", str(out), "--cache-dir", str(cache), "--quiet",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _locked(folder: Path) -> bool:
    """Whether some process holds the folder's lock (an flock on the folder itself)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops a lock taken here
    return False


def _wait_for(condition, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"highlights detect ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within 300 s")
        time.sleep(0.02)


def _result(out: Path) -> dict[str, bytes]:
    """The files the folder's manifest lists, with their bytes."""
    return {rel: (out / rel).read_bytes() for rel in OutputFolder(out).files()}


def test_force_keeps_the_users_notes_and_folders_named_like_clips(
    trained_model: Path, synthetic_match, feature_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    mine = {"notes.txt": "mine", "clip-001/take.txt": "kept", "clips/clip-001/take.txt": "kept"}
    for rel, text in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    for _ in range(2):  # the second run replaces the first one's clips
        assert _detect(synthetic_match[0], trained_model, out, feature_cache, "--force") == 0
        assert {rel: (out / rel).read_text() for rel in mine} == mine
        assert sorted((out / "clips").glob("clip-*.mp4"))
    assert set(_result(out)) >= {"report.html", "segments.json", "results.sqlite"}


def test_force_never_overwrites_a_file_it_did_not_write(
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("the user's own report")
    assert _detect(synthetic_match[0], trained_model, out, feature_cache, "--force") == 2
    assert "report.html: is where this run's result goes" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "the user's own report"
    assert sorted(p.name for p in out.iterdir()) == [".highlights-run.json", "report.html"]


def test_a_second_run_into_a_folder_in_use_exits_2(
    trained_model: Path,
    synthetic_match,
    feature_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    first = _detect_process(synthetic_match[0], trained_model, out, feature_cache)
    try:
        _wait_for(lambda: _locked(out), first, "the first run took the folder")
        os.kill(first.pid, signal.SIGSTOP)  # hold it there, whatever the machine's speed
        assert _detect(synthetic_match[0], trained_model, out, feature_cache) == 2
        error = capsys.readouterr().err
        assert f"{out}: another highlights run is writing into this folder" in error
        os.kill(first.pid, signal.SIGCONT)
        _, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
    assert first.returncode == 0, stderr
    assert sorted((out / "clips").glob("clip-*.mp4"))


def test_a_run_killed_mid_way_leaves_the_previous_result_and_the_next_run_cleans_up(
    trained_model: Path, synthetic_match, feature_cache: Path, tmp_path: Path
) -> None:
    video, out = synthetic_match[0], tmp_path / "out"
    assert _detect(video, trained_model, out, feature_cache) == 0
    before = _result(out)
    # A second run with wider padding (other ranges, other clips), killed once it has staged
    # its first clip: by then it has written segments.json and is cutting clips.
    second = _detect_process(video, trained_model, out, feature_cache, "--buffer", "2.5")
    try:
        _wait_for(lambda: list(out.glob(".highlights-staging-*/clips/*.mp4")), second,
                  "a clip was staged")  # fmt: skip
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
        second.communicate(timeout=60)
    assert _result(out) == before
    assert list(out.glob(".highlights-staging-*"))  # the partial result, until the next run
    assert _detect(video, trained_model, out, feature_cache, "--buffer", "2.5") == 0
    after = _result(out)
    assert not list(out.glob(".highlights-staging-*")) and not list(out.rglob("*.partial*"))
    assert after["segments.json"] != before["segments.json"]
    clips = {p.relative_to(out).as_posix() for p in (out / "clips").iterdir()}
    assert clips == {rel for rel in after if rel.startswith("clips/")}  # no clip of the old run
