"""SageMaker's training contract for the `train` command of the model container.

SageMaker runs `docker run <image> train` with this tree mounted (the root is `/opt/ml`):
- `input/config/hyperparameters.json`: a JSON object whose values are all strings;
- `input/data/<channel>/`: each input channel's files: `training` (one folder per class of
  video clips) and, optionally, `cache` (backbone features cached by an earlier job, laid out
  as `highlights.features.FeatureCache`; clips found in it are not run through the backbone);
- `model/`: everything written here becomes `model.tar.gz`, the artefact `serve` loads;
- `output/failure`: on failure, the reason (shown in DescribeTrainingJob), and a non-zero exit.
- `output/data/`: uploaded as `output.tar.gz` (we keep the feature cache there).

Hyperparameters are `highlights.config` settings by their dotted names, e.g. `train.epochs`,
`train.preset`, `sampling.rate`, `window.length`, `backbone` (`__` may stand for the dot).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from highlights.config import Config
from highlights.errors import ConfigError, DatasetError, HighlightsError
from highlights.files import write_text_atomic

if TYPE_CHECKING:
    from highlights.training import TrainingReport

DEFAULT_ROOT = Path("/opt/ml")
TRAINING_CHANNEL = "training"
CACHE_CHANNEL = "cache"
MAX_FAILURE_CHARS = 1024  # SageMaker shows at most this much of the failure reason


@dataclass(frozen=True)
class TrainingPaths:
    """Where SageMaker puts inputs and expects outputs; `root` is configurable for tests."""

    root: Path = DEFAULT_ROOT

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"


def read_hyperparameters(path: Path) -> dict[str, str]:
    """The hyperparameters file as a dict of strings; a missing file means none were set."""
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: must hold a JSON object of name -> value")
    return {str(key): value if isinstance(value, str) else json.dumps(value)
            for key, value in document.items()}


def config_from_hyperparameters(
    hyperparameters: Mapping[str, str], base: Config | None = None
) -> Config:
    """Apply string hyperparameters onto `base` (default Config()); unknown names are errors."""
    config = base or Config()
    for name, value in sorted(hyperparameters.items()):
        if name.startswith("sagemaker_"):  # the SageMaker Python SDK's own bookkeeping
            continue
        try:
            config = config.replace(**{name: _decode_value(value)})
        except ConfigError as exc:
            raise ConfigError(f"hyperparameter {name}={value!r}: {exc}") from None
    return config


def _decode_value(value: str) -> Any:
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    # The SageMaker Python SDK JSON-encodes strings ("\"compact\""); take them unquoted.
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return value
    if text.startswith("["):
        try:
            decoded = json.loads(text)
        except ValueError:
            return value
        if isinstance(decoded, list):
            return [str(item) for item in decoded]
    return value


def training_config(paths: TrainingPaths) -> Config:
    """This job's Config: defaults, the feature cache in output/data, then hyperparameters."""
    base = Config(cache_dir=paths.output_data / "feature-cache")
    return config_from_hyperparameters(read_hyperparameters(paths.hyperparameters), base)


def check_channel(path: Path, name: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: the {name!r} channel is missing; give the training job a "
                           f"'{name}' input channel with one folder per class")
    if not any(path.iterdir()):
        raise DatasetError(f"{path}: the {name!r} channel is empty")
    return path


def seed_feature_cache(source: Path, cache_dir: Path) -> int:
    """Copy cached feature files from `source` into `cache_dir`, keeping their layout.

    Files already in `cache_dir` are left alone. Returns the number of files copied.
    """
    copied = 0
    for path in sorted(source.rglob("*.npz")):
        target = cache_dir / path.relative_to(source)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied += 1
    return copied


def run_training(paths: TrainingPaths, channel: str = TRAINING_CHANNEL) -> TrainingReport:
    """Train on the channel's data set and write the model into `paths.model_dir`."""
    config = training_config(paths)
    dataset = check_channel(paths.channel(channel), channel)
    if paths.channel(CACHE_CHANNEL).is_dir():
        copied = seed_feature_cache(paths.channel(CACHE_CHANNEL), config.cache_dir)
        print(f"train: {copied} cached feature files from the {CACHE_CHANNEL!r} channel")
    # Imported only now: bad settings and channels fail fast, without loading TensorFlow.
    from highlights.training import train

    paths.model_dir.mkdir(parents=True, exist_ok=True)
    return train(dataset, paths.model_dir, config, progress=False)


def write_failure(paths: TrainingPaths, reason: str) -> Path:
    return write_text_atomic(paths.failure, reason[:MAX_FAILURE_CHARS])


def main(argv: Sequence[str] | None = None) -> int:
    """The container's `train` command: 0 on success; on error the failure file and 1 or 2."""
    parser = argparse.ArgumentParser(prog="train", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="SageMaker's /opt/ml tree")
    parser.add_argument("--channel", default=TRAINING_CHANNEL)
    args = parser.parse_args(argv)
    paths = TrainingPaths(args.root)
    try:
        report = run_training(paths, args.channel)
    except HighlightsError as exc:
        write_failure(paths, f"{type(exc).__name__}: {exc}")
        print(f"train: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - SageMaker must learn every failure's reason
        write_failure(paths, f"internal error: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    print(report.format())
    print(f"train: model written to {paths.model_dir}")
    return 0
