from pathlib import Path

import pytest

from highlights.config import Config, load_config
from highlights.errors import ConfigError


def test_defaults_match_the_documented_pipeline() -> None:
    config = Config()
    assert config.backbone == "efficientnet_lite0"
    assert config.sampling.rate == 5.0
    assert (config.window.length, config.window.stride) == (2.0, 1.0)
    assert config.segments.buffer == 1.0


def test_window_steps_follow_the_sampling_rate() -> None:
    assert Config().window.steps(5.0) == 10
    assert Config().window.stride_steps(5.0) == 5


def test_toml_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "highlights.toml"
    path.write_text('backbone = "inception_v3"\n[segments]\nthreshold = 0.8\nbuffer = 2\n')
    config = load_config(path, **{"segments.buffer": 0.5})
    assert config.backbone == "inception_v3"
    assert config.segments.threshold == 0.8
    assert config.segments.buffer == 0.5


def test_none_overrides_keep_the_file_value(tmp_path: Path) -> None:
    path = tmp_path / "highlights.toml"
    path.write_text("[segments]\nthreshold = 0.8\n")
    assert load_config(path, **{"segments.threshold": None}).segments.threshold == 0.8


def test_unknown_setting_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[segments]\nthreshhold = 0.8\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*threshhold"):
        load_config(path)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[segments\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("segments.threshold", 1.5),
        ("segments.low_threshold", 0.9),
        ("sampling.rate", 0),
        ("window.length", -1),
        ("train.preset", "huge"),
        ("train.epochs", 0),
    ],
)
def test_out_of_range_values_are_rejected(setting: str, value: object) -> None:
    with pytest.raises(ConfigError):
        load_config(**{setting: value})


def test_non_numeric_value_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[segments]\nthreshold = "high"\n')
    with pytest.raises(ConfigError, match="threshold"):
        load_config(path)


def test_recipients_from_a_string_become_a_tuple() -> None:
    assert load_config(**{"mail.recipients": "a@example.com"}).mail.recipients == ("a@example.com",)
