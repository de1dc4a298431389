"""The model container: its Dockerfile, and `train` following SageMaker's training contract."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from highlights.aws.sagemaker_training import (
    TrainingPaths,
    config_from_hyperparameters,
    read_hyperparameters,
    seed_feature_cache,
)
from highlights.config import Config
from highlights.errors import ConfigError
from tests.media import make_video

REPO = Path(__file__).resolve().parents[1]
CONTAINER = REPO / "model_container"
TRAIN = CONTAINER / "train"


# --- the Dockerfile --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in (CONTAINER / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def instructions(name: str) -> list[str]:
    return [args for kind, args in dockerfile_instructions() if kind == name]


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY."""
    result = []
    for args in instructions("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        result.append((words[:-1], words[-1]))
    return result


def workdir() -> str:
    return instructions("WORKDIR")[-1]


def env_value(name: str) -> str:
    for args in instructions("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            if key == name:
                return value
    raise AssertionError(f"ENV {name} not set")


def test_base_image_is_an_argument_defaulting_to_the_python_the_package_requires() -> None:
    (first_kind, first_args), (second_kind, second_args) = dockerfile_instructions()[:2]
    assert (first_kind, second_kind) == ("ARG", "FROM")
    name, _, default = first_args.partition("=")
    assert default.startswith("python:3.11"), default
    assert second_args in (f"${{{name}}}", f"${name}")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in requires and "<3.12" in requires


def test_every_copied_source_exists_in_the_build_context() -> None:
    for sources, _ in copies():
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context: the last pattern matching it or
    one of its parent folders decides, `!` letting it in (Docker's documented order)."""
    included = True
    parts = path.split("/")
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            included = keep
    return included


def test_the_build_context_holds_what_is_copied_and_no_tests_venvs_or_caches() -> None:
    for sources, _ in copies():
        for source in sources:
            assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"
    for outside in ("tests/test_container.py", ".venv/bin/python", ".git/HEAD", "demo-out/x",
                    "highlights/__pycache__/cli.cpython-311.pyc", "terraform/main.tf"):
        assert not in_build_context(outside), f"{outside} would be sent to the Docker daemon"


def test_run_without_a_command_prints_usage() -> None:
    assert instructions("CMD") == ['["usage"]']
    assert (CONTAINER / "usage").read_text().startswith("#!/bin/sh\n")
    assert os.access(CONTAINER / "usage", os.X_OK)


def test_package_and_entrypoints_are_copied() -> None:
    copied = {source for sources, _ in copies() for source in sources}
    assert {"pyproject.toml", "highlights", "processing"} <= copied
    assert {"model_container/train", "model_container/serve"} <= copied


def copied_before(index: int) -> set[str]:
    return {
        source
        for kind, args in dockerfile_instructions()[:index]
        if kind == "COPY"
        for source in shlex.split(args)[:-1]
    }


def test_dependencies_install_from_pyproject_alone_before_the_source_is_copied() -> None:
    kinds = dockerfile_instructions()
    deps = next(
        i for i, (kind, args) in enumerate(kinds) if kind == "RUN" and "pip install" in args
    )
    assert "pyproject.toml" in kinds[deps][1]
    for extra in ("serve", "aws"):
        assert f'["{extra}"]' in kinds[deps][1]
    assert copied_before(deps) == {"pyproject.toml"}


def test_package_is_pip_installed_with_the_serve_extra_after_its_sources_are_copied() -> None:
    kinds = dockerfile_instructions()
    install = next(
        i for i, (kind, args) in enumerate(kinds) if kind == "RUN" and "--no-deps" in args
    )
    assert "serve" in kinds[install][1].split("[", 1)[1]
    # setuptools reads the readme named in pyproject.toml while building the package
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "highlights"} <= copied_before(install)


def test_serve_extra_holds_what_serve_imports() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {spec.split("==")[0].lower() for spec in project["optional-dependencies"]["serve"]}
    assert {"gunicorn", "flask"} <= names


def test_train_and_serve_land_on_path_and_are_executable() -> None:
    destination = next(dest for sources, dest in copies() if "model_container/serve" in sources)
    folder = workdir() if destination in ("./", ".") else destination.rstrip("/")
    assert folder in env_value("PATH").split(":")
    runs = instructions("RUN")
    assert any("chmod" in args and "train" in args and "serve" in args for args in runs)
    for script in ("train", "serve"):
        path = CONTAINER / script
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env python3\n")


def test_processing_modules_are_importable_from_the_workdir() -> None:
    assert workdir() in env_value("PYTHONPATH").split(":")
    assert any(dest.rstrip("/").endswith("processing") for sources, dest in copies()
               if sources == ["processing"])


def test_port_8080_is_exposed_and_no_entrypoint_stands_before_train_or_serve() -> None:
    assert instructions("EXPOSE") == ["8080"]
    assert instructions("ENTRYPOINT") == []


# --- hyperparameters -------------------------------------------------------------------------


def test_string_hyperparameters_map_onto_config_fields() -> None:
    config = config_from_hyperparameters(
        {
            "train.epochs": "3",
            "train.preset": '"compact"',  # the SageMaker Python SDK JSON-quotes strings
            "train.learning_rate": "0.0005",
            "window.length": "3",
            "output.copy": "true",
            "sagemaker_program": "ignored",
        }
    )
    assert config.train.epochs == 3
    assert config.train.preset == "compact"
    assert config.train.learning_rate == pytest.approx(5e-4)
    assert config.window.length == 3.0
    assert config.output.copy is True


def test_unknown_hyperparameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train.epoch"):
        config_from_hyperparameters({"train.epoch": "3"})


def test_hyperparameters_file_must_be_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="hyperparameters.json"):
        read_hyperparameters(path)


def test_missing_hyperparameters_file_means_defaults(tmp_path: Path) -> None:
    assert read_hyperparameters(tmp_path / "absent.json") == {}
    assert config_from_hyperparameters({}) == Config()


def test_a_cache_channel_seeds_the_feature_cache_without_overwriting(tmp_path: Path) -> None:
    source, cache = tmp_path / "channel", tmp_path / "cache"
    (source / "ab").mkdir(parents=True)
    (source / "ab" / "abcd.efficientnet_lite0.5fps.npz").write_bytes(b"from the channel")
    (source / "ab" / "abef.efficientnet_lite0.5fps.npz").write_bytes(b"from the channel")
    (source / "notes.txt").write_text("not a cache file")
    (cache / "ab").mkdir(parents=True)
    (cache / "ab" / "abef.efficientnet_lite0.5fps.npz").write_bytes(b"already here")
    assert seed_feature_cache(source, cache) == 1
    assert (cache / "ab" / "abcd.efficientnet_lite0.5fps.npz").read_bytes() == b"from the channel"
    assert (cache / "ab" / "abef.efficientnet_lite0.5fps.npz").read_bytes() == b"already here"
    assert not (cache / "notes.txt").exists()


# --- train on an /opt/ml-shaped tree ---------------------------------------------------------


def opt_ml_tree(root: Path, hyperparameters: dict[str, str]) -> TrainingPaths:
    paths = TrainingPaths(root)
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(hyperparameters))
    paths.model_dir.mkdir(parents=True)
    paths.failure.parent.mkdir(parents=True)
    return paths


def add_folder_per_class_set(channel: Path) -> None:
    looks = {"Calm": "color=c=0x2e7d32", "Busy": "testsrc2"}
    for label, pattern in looks.items():
        (channel / label).mkdir(parents=True)
        for clip in range(3):
            make_video(channel / label / f"{label}_{clip}.mp4", seconds=2.0 + clip * 0.4,
                       size=(160, 120), pattern=pattern)


def run_train(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAIN), "--root", str(root)],
        capture_output=True, text=True, timeout=600, cwd=root,
    )


@pytest.mark.slow
def test_train_writes_a_model_that_serve_loads(tmp_path: Path) -> None:
    from highlights.aws.serving import NPY, encode_windows, load_app, read_prediction

    paths = opt_ml_tree(tmp_path / "opt_ml", {"train.epochs": "2", "train.batch_size": "4"})
    add_folder_per_class_set(paths.channel("training"))
    result = run_train(paths.root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not paths.failure.exists()
    manifest = json.loads((paths.model_dir / "manifest.json").read_text())
    assert sorted(manifest["classes"]) == ["Busy", "Calm"]
    assert manifest["training"]["epochs_run"] <= 2
    assert (paths.model_dir / "training_report.json").is_file()
    assert list((paths.output_data / "feature-cache").rglob("*.npz")), "the cache is kept"

    client = load_app(paths.model_dir).test_client()
    assert client.get("/ping").status_code == 200
    batch = np.zeros((2, manifest["steps"], manifest["feature_dim"]), dtype=np.float32)
    answer = client.post("/invocations", data=encode_windows(batch, NPY), content_type=NPY)
    assert answer.status_code == 200
    classes, probabilities, decisions = read_prediction(answer.data)
    assert decisions == manifest.get("decisions", {}).get("classes", {})
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_missing_channel_writes_the_failure_file_and_exits_non_zero(tmp_path: Path) -> None:
    paths = opt_ml_tree(tmp_path / "opt_ml", {})
    result = run_train(paths.root)
    assert result.returncode != 0
    reason = paths.failure.read_text()
    assert "'training' channel is missing" in reason
    assert str(paths.channel("training")) in reason


def test_channel_without_class_folders_writes_the_failure_file(tmp_path: Path) -> None:
    paths = opt_ml_tree(tmp_path / "opt_ml", {})
    channel = paths.channel("training")
    channel.mkdir(parents=True)
    (channel / "notes.txt").write_text("not a data set")
    result = run_train(paths.root)
    assert result.returncode != 0
    assert "DatasetError" in paths.failure.read_text()
    assert list(paths.model_dir.iterdir()) == []


def test_bad_hyperparameter_writes_the_failure_file(tmp_path: Path) -> None:
    paths = opt_ml_tree(tmp_path / "opt_ml", {"train.epochs": "many"})
    result = run_train(paths.root)
    assert result.returncode != 0
    assert "epochs" in paths.failure.read_text()
