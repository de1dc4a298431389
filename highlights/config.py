"""All tunable settings in one typed place.

Times are seconds (floats) everywhere in the library; every conversion to frame numbers or
timecodes is in `highlights.timecode`.
A config can be read from a TOML file and then overridden field by field from CLI flags.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from highlights.errors import ConfigError
from highlights.timecode import frames_before

DEFAULT_BACKBONE = "efficientnet_lite0"
# What runs the backbone: "openvino" (about 3x faster on a CPU) or "keras" (the reference).
DEFAULT_BACKEND = "openvino"
DEFAULT_PRECISION = "float32"  # or "bfloat16" (openvino only): features move by up to 0.15
# OpenVINO's inference threads for the backbone; 0: one per core it finds.
OPENVINO_THREADS = 0


@dataclass(frozen=True)
class SamplingConfig:
    """How frames are taken from a video."""

    rate: float = 5.0  # frames per second sampled from the video

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 60:
            raise ConfigError(f"sampling.rate must be in (0, 60] frames/s, got {self.rate}")


@dataclass(frozen=True)
class DecodeConfig:
    """How much damage a recording may have and still be used."""

    # Refuse a video when more than this share of its sampled frames could not be decoded.
    max_damaged_share: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.max_damaged_share <= 1:
            raise ConfigError(
                f"decode.max_damaged_share must be in [0, 1], got {self.max_damaged_share}"
            )


@dataclass(frozen=True)
class WindowConfig:
    """The sliding window over the feature sequence, in seconds."""

    length: float = 2.0
    stride: float = 1.0

    def __post_init__(self) -> None:
        if self.length <= 0 or self.stride <= 0:
            raise ConfigError(
                f"window length and stride must be positive, got {self.length}, {self.stride}"
            )

    def steps(self, rate: float) -> int:
        """Number of sampled frames in one window at `rate` frames/s: those that start within
        `length` seconds of its first."""
        return max(1, frames_before(self.length, rate))

    def stride_steps(self, rate: float) -> int:
        return max(1, frames_before(self.stride, rate))


@dataclass(frozen=True)
class SegmentConfig:
    """How per-window scores become time ranges."""

    threshold: float = 0.5
    # Hysteresis: a run starts at `threshold` and continues while the score stays >= low_threshold.
    # None here is plain thresholding; `Config.policy_for` turns hysteresis on unless told not to.
    low_threshold: float | None = None
    buffer: float = 1.0  # padding added before and after each range, as in the seed
    min_length: float = 0.0  # ranges shorter than this (after padding) are dropped
    merge_gap: float = 0.0  # ranges closer than this are joined

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"segments.threshold must be in [0, 1], got {self.threshold}")
        if self.low_threshold is not None and not 0 <= self.low_threshold <= self.threshold:
            raise ConfigError(
                "segments.low_threshold must be in [0, threshold], "
                f"got {self.low_threshold} with threshold {self.threshold}"
            )
        if self.buffer < 0 or self.min_length < 0 or self.merge_gap < 0:
            raise ConfigError("segments.buffer, min_length and merge_gap must not be negative")


DEFAULT_HYSTERESIS = 0.15  # without a calibrated or given low threshold: threshold - this


@dataclass(frozen=True)
class Decisions:
    """Per class decision settings, as `train` calibrated them on the validation clips.

    `detect` decides each target class with its own entry; a setting the user gives (config file
    or flag) overrides that setting for every class. A class without an entry uses `segments`,
    with hysteresis on (`low_threshold` = threshold - DEFAULT_HYSTERESIS) unless a low threshold
    is given.
    """

    classes: tuple[tuple[str, SegmentConfig], ...] = ()

    def get(self, label: str) -> SegmentConfig | None:
        return dict(self.classes).get(label)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {label: dataclasses.asdict(policy) for label, policy in self.classes}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "decisions") -> Decisions:
        try:
            return cls(
                tuple(
                    (str(label), SegmentConfig(**_segment_fields(fields)))
                    for label, fields in sorted(data.items())
                )
            )
        except (TypeError, AttributeError) as exc:
            raise ConfigError(f"{source}: bad decision settings: {exc}") from None


def _segment_fields(fields: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(SegmentConfig)}
    return {k: v for k, v in fields.items() if k in names}


@dataclass(frozen=True)
class OutputConfig:
    """What is written for each detected range."""

    copy: bool = False  # True: fast keyframe copy; False: frame-accurate re-encode
    reel: bool = True
    report: bool = True


@dataclass(frozen=True)
class MailConfig:
    """Where the notification goes. Without smtp_host an .eml file is written instead."""

    sender: str = "highlights@localhost"
    recipients: tuple[str, ...] = ("you@localhost",)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Training the sequence model on cached backbone features."""

    preset: str = "compact"
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.2  # of each class's groups: chooses the epoch and decisions
    test_fraction: float = 0.2  # of each class's groups, when no UCF101 test list is given
    seed: int = 1337
    split: int = 1  # UCF101 split number when trainlist0N.txt/testlist0N.txt exist

    def __post_init__(self) -> None:
        if self.preset not in ("compact", "seed"):
            raise ConfigError(f"train.preset must be 'compact' or 'seed', got {self.preset!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be at least 1")
        if not 0 < self.validation_fraction < 1 or not 0 < self.test_fraction < 1:
            raise ConfigError("train.validation_fraction and train.test_fraction must be in (0, 1)")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError("train.validation_fraction + train.test_fraction must be below 1")


@dataclass(frozen=True)
class Config:
    backbone: str = DEFAULT_BACKBONE
    backbone_weights: Path | None = None  # a weights file the user names; None = packaged default
    backbone_backend: str = DEFAULT_BACKEND
    backbone_precision: str = DEFAULT_PRECISION
    batch_size: int = 32  # frames per backbone call
    cache_dir: Path = Path(".highlights-cache")
    # Feature extraction saves its progress every this many frames (rounded up to whole batches).
    checkpoint_frames: int = 3000
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decisions: Decisions = field(default_factory=Decisions)  # the model's, set by detect
    # The `segments` settings the user gave (file or flags): they override calibrated ones.
    segments_given: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.checkpoint_frames < 1:
            raise ConfigError("batch_size and checkpoint_frames must be at least 1")
        if self.backbone_backend not in ("openvino", "keras"):
            raise ConfigError(
                f"backbone_backend must be 'openvino' or 'keras', got {self.backbone_backend!r}"
            )
        if self.backbone_precision not in ("float32", "bfloat16"):
            raise ConfigError(
                "backbone_precision must be 'float32' or 'bfloat16', "
                f"got {self.backbone_precision!r}"
            )

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level or dotted (`segments.threshold`) fields changed; None skipped."""
        given = {k: v for k, v in changes.items() if v is not None}
        return _note_segments_given(_replace(self, given), given)

    def without_hysteresis(self) -> Config:
        """A copy that decides with the plain threshold (no low threshold) for every class."""
        segments = dataclasses.replace(self.segments, low_threshold=None)
        given = self.segments_given | {"low_threshold"}
        return dataclasses.replace(self, segments=segments, segments_given=given)

    def policy_for(self, label: str) -> SegmentConfig:
        """The settings that decide `label`: the calibrated ones with the user's on top."""
        given = {name: getattr(self.segments, name) for name in self.segments_given}
        calibrated = self.decisions.get(label)
        if calibrated is None:
            if "low_threshold" in given:
                return self.segments
            low = max(0.0, round(self.segments.threshold - DEFAULT_HYSTERESIS, 6))
            return dataclasses.replace(self.segments, low_threshold=low)
        if "threshold" in given and "low_threshold" not in given:
            low = calibrated.low_threshold
            given["low_threshold"] = None if low is None else min(low, given["threshold"])
        return dataclasses.replace(calibrated, **{"buffer": self.segments.buffer, **given})


def load_config(path: Path | None = None, **overrides: Any) -> Config:
    """Read a TOML config file (optional) and apply overrides such as `segments.threshold=0.7`."""
    config = Config()
    if path is not None:
        settings = _flatten(_read_toml(path))
        config = _note_segments_given(_replace(config, settings, source=str(path)), settings)
    return config.replace(**overrides)


def _note_segments_given(config: Config, changes: dict[str, Any]) -> Config:
    names = {
        key.replace("__", ".").partition(".")[2]
        for key in changes
        if key.replace("__", ".").startswith("segments.")
    }
    if not names - config.segments_given:
        return config
    return dataclasses.replace(config, segments_given=config.segments_given | names)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _replace(obj: Any, changes: dict[str, Any], source: str = "config") -> Any:
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(obj)}
    for dotted, value in changes.items():
        head, _, rest = dotted.replace("__", ".").partition(".")
        if head not in names:
            raise ConfigError(f"{source}: unknown setting {dotted!r}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = _coerce(names[head], value, source)
    for head, sub in nested.items():
        current = getattr(obj, head)
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{source}: {head!r} has no sub-settings")
        direct[head] = _replace(current, sub, source)
    try:
        return dataclasses.replace(obj, **direct)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _coerce(spec: dataclasses.Field[Any], value: Any, source: str) -> Any:
    kind = str(spec.type)
    try:
        if "Path" in kind and isinstance(value, str):
            return Path(value)
        if "tuple" in kind and isinstance(value, list | str):
            return tuple([value] if isinstance(value, str) else value)
        if kind.startswith("float") and isinstance(value, int | float | str):
            return float(value)
        if kind.startswith("int") and isinstance(value, int | str) and not isinstance(value, bool):
            return int(value)
        if kind.startswith("bool") and not isinstance(value, bool):
            raise ConfigError(f"{source}: {spec.name} must be true or false, got {value!r}")
    except ValueError:
        raise ConfigError(f"{source}: {spec.name} has a bad value {value!r}") from None
    return value
