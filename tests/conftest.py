"""Session-wide fixtures: a synthetic data set, a model trained on it for real, and a match."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MATCH_SECONDS = 30.0


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so boto3 under moto can never reach a real account."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SECURITY_TOKEN",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from highlights import synthetic

    return synthetic.make_dataset(
        tmp_path_factory.mktemp("dataset"), clips_per_class=6, seconds=3.0
    )


@pytest.fixture(scope="session")
def trained_model(
    synthetic_dataset: Path, feature_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A compact model trained on real EfficientNet-Lite0 features of the synthetic clips."""
    from highlights.config import Config
    from highlights.training import train

    model_dir = tmp_path_factory.mktemp("models") / "synthetic"
    config = Config(cache_dir=feature_cache).replace(**{"train.epochs": 20})
    train(synthetic_dataset, model_dir, config)
    return model_dir


@pytest.fixture(scope="session")
def synthetic_match(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    """A 30 s match with goal-mouth scenes at known times."""
    from highlights import synthetic

    events = (synthetic.Event(8.0, 13.0), synthetic.Event(20.0, 25.0))
    path = synthetic.make_match(
        tmp_path_factory.mktemp("match") / "match.mp4", MATCH_SECONDS, events
    )
    return path, events


@pytest.fixture
def strict_requests():
    """Every AWS request the test makes, validated in full against its service model.

    Yields the `RequestLog` (`.calls(service, operation)`); see tests/aws_strict.py.
    """
    from tests.aws_strict import strict_aws

    with strict_aws() as log:
        yield log
