"""The `highlights` command: exit codes, one clear error line, nothing half-written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from highlights.cli import main
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
