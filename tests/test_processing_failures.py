"""A processing job's error reaches SageMaker's ExitMessage (/opt/ml/output/message) as well as
stderr, and only inside a processing container, where that file's folder exists."""

from __future__ import annotations

from pathlib import Path

import pytest

import processing
from processing import extract_features, score_windows


@pytest.fixture
def message_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "opt-ml-output" / "message"
    monkeypatch.setattr(processing, "EXIT_MESSAGE", path)
    return path


def test_a_bad_input_is_the_exit_message_and_exit_status_2(
    message_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    message_file.parent.mkdir()
    missing = tmp_path / "no-frames"
    assert extract_features.main(["--input", str(missing), "--output", str(tmp_path)]) == 2
    text = message_file.read_text(encoding="utf-8")
    assert text.startswith("extract_features: ") and str(missing) in text
    assert text.strip() in capsys.readouterr().err


def test_outside_a_container_only_stderr_is_written(
    message_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    features = tmp_path / "no-features"
    features.mkdir()
    args = ["--features", str(features), "--output", str(tmp_path / "out"), "--model",
            str(tmp_path), "--match-id", "m", "--targets", "Goal"]
    assert score_windows.main(args) == 2
    assert "score_windows: " in capsys.readouterr().err
    assert not message_file.parent.exists()
