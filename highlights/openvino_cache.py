"""Converted OpenVINO models kept on disk, so a run does not convert (or import TensorFlow) again.

Converting a Keras network to OpenVINO needs TensorFlow, which takes seconds and about 600 MB just
to import. The converted model is saved as OpenVINO IR (`model.xml` + `model.bin`, full float32)
in `<cache>/openvino/<what>-<key>/`, beside the feature cache; `key` names everything the network
depends on (for a backbone: the feature recipe's weights, geometry, backend and precision; for a
classifier: the model file's sha256) and the OpenVINO version that converted it.

An entry appears whole or not at all (written in a temporary folder, then renamed), and holds the
sha256 of both files: a damaged or partial entry is never trusted, but converted again, with a
warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from highlights.files import file_sha256

log = logging.getLogger(__name__)

FOLDER = "openvino"
NETWORK_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
HASHES_FILE = "sha256.json"
KEY_LENGTH = 16  # hex digits, as the feature recipe's digest


def cache_key(**identity: Any) -> str:
    """A short digest of `identity` (JSON values) and the OpenVINO version that converts."""
    import openvino

    text = json.dumps({**identity, "openvino": openvino.__version__}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


class OpenVinoCache:
    """Converted models under `root/openvino/`, one folder per key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / FOLDER

    def entry(self, what: str, key: str) -> Path:
        return self.root / f"{what}-{key}"

    def model(self, what: str, key: str, convert: Callable[[], Any]) -> Any:
        """The `openvino.Model` cached as `what`-`key`; made by `convert()` and saved if absent or
        damaged. A cache that cannot be written is only a slower next run (logged)."""
        entry = self.entry(what, key)
        cached = self._read(entry)
        if cached is not None:
            return cached
        network = convert()
        try:
            self._write(entry, network)
        except OSError as exc:
            log.warning("%s: could not cache the converted model: %s", entry, exc)
        return network

    def _read(self, entry: Path) -> Any | None:
        if not entry.exists():
            return None
        problem = _problem(entry)
        if problem is None:
            import openvino

            try:
                return openvino.Core().read_model(entry / NETWORK_FILE, entry / WEIGHTS_FILE)
            except Exception as exc:  # OpenVINO raises RuntimeError and its own types
                problem = f"OpenVINO cannot read it: {str(exc).strip().splitlines()[0]}"
        log.warning(
            "%s: cached OpenVINO model is damaged (%s); converting it again", entry, problem
        )
        shutil.rmtree(entry, ignore_errors=True)
        return None

    def _write(self, entry: Path, network: Any) -> None:
        import openvino

        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".partial", dir=self.root))
        try:
            # save_model halves weights to float16 unless told not to: features would move.
            openvino.save_model(network, staging / NETWORK_FILE, compress_to_fp16=False)
            hashes = {name: file_sha256(staging / name) for name in (NETWORK_FILE, WEIGHTS_FILE)}
            (staging / HASHES_FILE).write_text(json.dumps(hashes, sort_keys=True) + "\n")
            try:
                os.rename(staging, entry)
            except OSError:
                if _problem(entry) is not None:  # not another run's complete entry
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _problem(entry: Path) -> str | None:
    """Why the files in `entry` are not a whole cached model, or None if they are."""
    try:
        hashes = json.loads((entry / HASHES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"no readable {HASHES_FILE}: {exc}"
    if not isinstance(hashes, dict) or set(hashes) != {NETWORK_FILE, WEIGHTS_FILE}:
        return f"{HASHES_FILE} does not list {NETWORK_FILE} and {WEIGHTS_FILE}"
    for name, expected in sorted(hashes.items()):
        try:
            actual = file_sha256(entry / name)
        except OSError as exc:
            return f"{name}: {exc.strerror or exc}"
        if actual != expected:
            return f"{name} has sha256 {actual[:12]}..., {HASHES_FILE} says {str(expected)[:12]}..."
    return None
