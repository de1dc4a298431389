"""Checks that a run decided with the settings its model calibrated when it was trained."""

from __future__ import annotations

import json
from pathlib import Path

from highlights.config import SegmentConfig

# the settings calibration chooses; the buffer is the run's own
CALIBRATED_FIELDS = ("threshold", "low_threshold", "min_length", "merge_gap")


def assert_calibrated(decided: dict[str, SegmentConfig], model_dir: Path) -> None:
    """Every decided target that the model calibrated was decided with exactly its settings."""
    calibrated = json.loads((model_dir / "manifest.json").read_text())["decisions"]["classes"]
    checked = sorted(set(decided) & set(calibrated))
    assert checked, f"the model calibrated none of the decided targets {sorted(decided)}"
    for target in checked:
        got = {name: getattr(decided[target], name) for name in CALIBRATED_FIELDS}
        want = {name: calibrated[target][name] for name in CALIBRATED_FIELDS}
        assert got == want, target
