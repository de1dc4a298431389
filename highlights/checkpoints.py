"""Feature extraction saved as it goes, so a killed or retried run resumes instead of starting over.

A checkpoint is a set of parts under one prefix of a Storage (a local folder beside the feature
cache entry; S3 for a SageMaker job). Each part holds the features of some sampled frames, keyed
by their frame numbers (frame k is at time k / rate): `frames-<first>-<last>-<count>.npz`. Any
run, on this machine or on another instance of a job, can use the parts any earlier run wrote.
Each part is written whole (a temporary file renamed, or one S3 PUT), so a kill leaves whole
parts only. A part made by another feature recipe (`highlights.recipe`), or one that cannot be
read, is passed over with a warning.
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from highlights.damage import TimeRange, ranges_from_array, ranges_to_array
from highlights.errors import InputError
from highlights.recipe import FeatureRecipe
from highlights.storage import Storage

log = logging.getLogger(__name__)

PART_PREFIX = "frames-"
PART_SUFFIX = ".npz"
_PART_NAME = re.compile(r"frames-(?P<first>\d+)-(?P<last>\d+)-(?P<count>\d+)\.npz$")


@dataclass(frozen=True)
class PartKey:
    """Where a part is and which frames its name says it holds."""

    key: str
    first: int
    last: int
    count: int

    @property
    def contiguous(self) -> bool:
        return self.last - self.first + 1 == self.count


@dataclass(frozen=True)
class Part:
    """Features of some sampled frames, and the damaged ranges seen up to the last of them."""

    indices: np.ndarray  # (n,) int64 frame numbers, ascending
    features: np.ndarray  # (n, D) float32
    damaged: np.ndarray  # (n,) bool: the frame's picture could not be decoded cleanly
    ranges: tuple[TimeRange, ...] = ()

    def __len__(self) -> int:
        return len(self.indices)


class Checkpoints:
    """The parts of one extraction: one video (or capture) and one feature recipe."""

    def __init__(
        self, storage: Storage, prefix: str, recipe: FeatureRecipe, feature_dim: int
    ) -> None:
        """Parts of another recipe than `recipe` are passed over."""
        self.storage = storage
        self.prefix = prefix
        self.recipe = recipe
        self.feature_dim = feature_dim

    def key_for(self, part: Part) -> str:
        first, last = int(part.indices[0]), int(part.indices[-1])
        return f"{self.prefix}{PART_PREFIX}{first:09d}-{last:09d}-{len(part)}{PART_SUFFIX}"

    def save(self, part: Part) -> str:
        """Store `part` whole; return its key."""
        if len(part) == 0:
            raise ValueError("a checkpoint part needs at least one frame")
        key = self.key_for(part)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            recipe=np.str_(self.recipe.to_json()),
            indices=np.asarray(part.indices, dtype=np.int64),
            features=np.asarray(part.features, dtype=np.float32),
            damaged=np.asarray(part.damaged, dtype=bool),
            ranges=ranges_to_array(part.ranges),
        )
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as tmp:
            local = Path(tmp) / "part.npz"
            local.write_bytes(buffer.getvalue())
            self.storage.put_file(local, key)
        return key

    def stored(self) -> list[PartKey]:
        """The parts stored, by first frame number (names only; nothing is read)."""
        found = []
        for key in self.storage.list(f"{self.prefix}{PART_PREFIX}"):
            match = _PART_NAME.fullmatch(key[len(self.prefix) :])
            if match:
                found.append(
                    PartKey(key, int(match["first"]), int(match["last"]), int(match["count"]))
                )
        return sorted(found, key=lambda part: (part.first, -part.count))

    def read(self, keys: list[PartKey]) -> Iterator[Part]:
        """The parts at `keys`, one at a time; one that cannot be used is passed over."""
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as tmp:
            local = Path(tmp) / "part.npz"
            for key in keys:
                try:
                    self.storage.get_file(key.key, local)
                    part = self._read(local)
                except InputError as exc:
                    log.warning("checkpoint part %s passed over: %s", key.key, exc)
                    continue
                finally:
                    local.unlink(missing_ok=True)
                if (int(part.indices[0]), int(part.indices[-1]), len(part)) != (
                    key.first,
                    key.last,
                    key.count,
                ):
                    log.warning("checkpoint part %s passed over: frames differ from name", key.key)
                    continue
                yield part

    def _read(self, path: Path) -> Part:
        try:
            with np.load(path, allow_pickle=False) as data:
                recipe_text = str(data["recipe"])
                part = Part(
                    indices=data["indices"].astype(np.int64),
                    features=np.asarray(data["features"], dtype=np.float32),
                    damaged=data["damaged"].astype(bool),
                    ranges=ranges_from_array(data["ranges"]),
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"not a readable checkpoint part ({exc})") from None
        try:
            recipe = FeatureRecipe.from_json(recipe_text, "checkpoint part")
        except InputError:
            raise InputError(f"made by an unknown recipe {recipe_text[:80]!r}") from None
        if recipe != self.recipe:
            raise InputError(f"made by {recipe.describe()}, not {self.recipe.describe()}")
        count = len(part.indices)
        if (
            count == 0
            or part.features.shape != (count, self.feature_dim)
            or part.damaged.shape != (count,)
            or np.any(np.diff(part.indices) <= 0)
            or not np.all(np.isfinite(part.features))
        ):
            raise InputError("frame numbers, features and damage flags do not agree")
        return part


def leading_parts(keys: list[PartKey]) -> list[PartKey]:
    """Parts that together hold frames 0, 1, 2, ... without a gap, in order (by their names)."""
    chain: list[PartKey] = []
    expected = 0
    for key in keys:
        if key.first == expected and key.contiguous:
            chain.append(key)
            expected = key.last + 1
    return chain
