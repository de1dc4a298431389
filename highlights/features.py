"""Backbone features for a video: one vector per sampled frame, cached per video.

Extraction saves its progress as it goes (`highlights.checkpoints`): a run that is killed
resumes from its last checkpoint and ends with the same features a run from the start gives.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from highlights.checkpoints import Checkpoints, Part, leading_parts
from highlights.config import Config
from highlights.damage import (
    DecodeDamage,
    TimeRange,
    damage_of,
    merge_ranges,
    ranges_from_array,
    ranges_to_array,
)
from highlights.errors import InputError, VideoError
from highlights.files import atomic_path, file_sha256
from highlights.local.storage import LocalStorage
from highlights.recipe import FeatureRecipe, recipe_of
from highlights.sampling import sample_frames
from highlights.timecode import frame_times, frames_at
from highlights.video import SampledFrame, probe

if TYPE_CHECKING:
    from highlights.backbones import Backbone

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2 added per-frame damage flags and the damaged ranges, 3 the recipe
# Version 1 files were written by a decoder that refused any damage: read as undamaged.
# Files before version 3 record no recipe: they are read, but no model scores them.
READABLE_VERSIONS = (1, 2, 3)

DEFAULT_CHECKPOINT_FRAMES = Config.checkpoint_frames


@dataclass(frozen=True)
class FeatureSequence:
    """Per-frame features of one video, in time order, with what could not be decoded."""

    times: np.ndarray  # (N,) float64 seconds, ascending
    features: np.ndarray  # (N, D) float32
    backbone: str
    rate: float  # frames per second that were sampled
    damaged: np.ndarray = None  # type: ignore[assignment]  # (N,) bool; None: no frame damaged
    damaged_ranges: tuple[TimeRange, ...] = ()  # what the decoder could not read, in seconds
    recipe: FeatureRecipe | None = None  # what made them; None only in files before version 3

    def __post_init__(self) -> None:
        if self.damaged is None:
            object.__setattr__(self, "damaged", np.zeros(len(self.times), dtype=bool))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def damage(self) -> DecodeDamage:
        return damage_of(self.damaged, self.damaged_ranges)


def frame_indices(times: np.ndarray, rate: float) -> np.ndarray:
    """The sample numbers of frames at `times` taken at `rate` frames/s (frame k at k / rate)."""
    return frames_at(times, rate)


# --- extraction --------------------------------------------------------------------------


class _Rows:
    """Frames' times, features and damage flags as they come, in arrays grown as needed.

    Sized up front for the frames expected, so a whole match is held once, not as a list of
    chunks concatenated at the end (which would hold it twice).
    """

    def __init__(self, dim: int, capacity: int) -> None:
        self.count = 0
        self.times = np.empty(capacity, dtype=np.float64)
        self.features = np.empty((capacity, dim), dtype=np.float32)
        self.damaged = np.empty(capacity, dtype=bool)

    def add(self, times: np.ndarray, features: np.ndarray, damaged: np.ndarray) -> None:
        end = self.count + len(times)
        if end > len(self.times):
            self._grow(max(end, len(self.times) + len(self.times) // 4 + 1))
        self.times[self.count : end] = times
        self.features[self.count : end] = features
        self.damaged[self.count : end] = damaged
        self.count = end

    def _grow(self, capacity: int) -> None:
        for name in ("times", "features", "damaged"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.count] = old[: self.count]
            setattr(self, name, new)

    def sequence(self, start: int, stop: int, recipe: FeatureRecipe) -> FeatureSequence:
        """Rows [start, stop) as a sequence (views, not copies)."""
        return FeatureSequence(
            times=self.times[start:stop],
            features=self.features[start:stop],
            backbone=recipe.backbone,
            rate=float(recipe.rate),
            damaged=self.damaged[start:stop],
            recipe=recipe,
        )


def features_from_frames(
    frames: Iterable[SampledFrame],
    backbone: Backbone,
    rate: float,
    batch_size: int = 32,
    progress: bool = False,
    total: int | None = None,
    *,
    before: Iterable[FeatureSequence] = (),
    checkpoint: Callable[[FeatureSequence], None] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_FRAMES,
) -> FeatureSequence:
    """Run the backbone over frames in batches of `batch_size`; times come from the frames.

    `before`: features of earlier frames (a resumed run), put first. `checkpoint` is called with
    every run of new frames that reaches `checkpoint_every` (rounded up to whole batches, so a
    resumed run embeds the same batches a run from the start does), and with the last frames
    once all are done. `total` is how many frames to expect, for the progress bar and the first
    allocation.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    every = -(-max(checkpoint_every, 1) // batch_size) * batch_size
    recipe = recipe_of(backbone, rate)
    rows = _Rows(backbone.feature_dim, (total or 0) + 1)
    for earlier in before:
        rows.add(earlier.times, earlier.features, earlier.damaged)
    saved = rows.count
    with tqdm(
        total=total, initial=rows.count, desc="features", unit="frame", disable=not progress
    ) as bar:
        for batch in _batches(iter(frames), batch_size):
            rows.add(
                np.array([frame.time for frame in batch], dtype=np.float64),
                _embed(backbone, np.stack([frame.image for frame in batch])),
                np.array([frame.damaged for frame in batch], dtype=bool),
            )
            bar.update(len(batch))
            if checkpoint is not None and rows.count - saved >= every:
                checkpoint(rows.sequence(saved, rows.count, recipe))
                saved = rows.count
    if checkpoint is not None and rows.count > saved:
        checkpoint(rows.sequence(saved, rows.count, recipe))  # the last frames too
    return rows.sequence(0, rows.count, recipe)


def extract_features(
    path: Path,
    backbone: Backbone,
    rate: float,
    batch_size: int = 32,
    progress: bool = False,
    *,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_FRAMES,
) -> FeatureSequence:
    """Sample `path` at `rate` frames/s, shaped for the backbone, and embed every frame.

    With `checkpoints`, the frames they already hold (from frame 0 on, without a gap) are not
    embedded again, and every `checkpoint_every` new frames are added to them.
    Damaged stretches do not stop extraction: they are recorded in the sequence.
    """
    info = probe(Path(path))
    chain = leading_parts(checkpoints.stored()) if checkpoints is not None else []
    parts = list(checkpoints.read(chain)) if checkpoints is not None and chain else []
    parts = _unbroken(parts)
    start = int(parts[-1].indices[-1]) + 1 if parts else 0
    if start:
        log.info(
            "%s: resuming from checkpoint at frame %d of about %d (%d parts)",
            path,
            start,
            info.expected_frames(rate),
            len(parts),
        )
    earlier_ranges = [r for part in parts for r in part.ranges]
    with sample_frames(info.path, rate, backbone.geometry, info, start_frame=start) as frames:

        def save(chunk: FeatureSequence) -> None:
            assert checkpoints is not None
            until = float(chunk.times[-1])
            checkpoints.save(
                Part(
                    frame_indices(chunk.times, rate),
                    chunk.features,
                    chunk.damaged,
                    frames.damaged_ranges(until=until),
                )
            )

        sequence = features_from_frames(
            frames,
            backbone,
            rate,
            batch_size,
            progress,
            total=info.expected_frames(rate),
            before=(_part_sequence(part, backbone.name, rate) for part in parts),
            checkpoint=save if checkpoints is not None else None,
            checkpoint_every=checkpoint_every,
        )
        ranges = merge_ranges([*earlier_ranges, *frames.damaged_ranges()])
    if len(sequence) == 0:
        raise VideoError(f"{path}: no frames could be sampled at {rate} frames/s")
    return dataclasses.replace(sequence, damaged_ranges=ranges)


def _unbroken(parts: list[Part]) -> list[Part]:
    """The leading parts that were read, up to the first one missing (unreadable or skipped)."""
    kept: list[Part] = []
    for part in parts:
        if int(part.indices[0]) != (int(kept[-1].indices[-1]) + 1 if kept else 0):
            break
        kept.append(part)
    return kept


def _part_sequence(part: Part, backbone: str, rate: float) -> FeatureSequence:
    """A checkpoint part as a sequence; times are k / rate, as sampling makes them."""
    return FeatureSequence(
        times=frame_times(part.indices, rate),
        features=part.features,
        backbone=backbone,
        rate=float(rate),
        damaged=part.damaged,
    )


def _batches(frames: Iterator[SampledFrame], size: int) -> Iterator[list[SampledFrame]]:
    while batch := list(islice(frames, size)):
        yield batch


def _embed(backbone: Backbone, images: np.ndarray) -> np.ndarray:
    features = np.asarray(backbone.embed(images), dtype=np.float32)
    expected = (len(images), backbone.feature_dim)
    if features.shape != expected:
        raise ValueError(
            f"backbone {backbone.name} returned features of shape {features.shape}, "
            f"expected {expected}"
        )
    return features


# --- files ---------------------------------------------------------------------------------


def save_features(
    seq: FeatureSequence, path: Path, extra: Mapping[str, np.ndarray] | None = None
) -> Path:
    """Write `seq` (and any `extra` arrays, e.g. a shard's frame indices) to .npz, atomically.

    Written straight to the file: a match's features are never held a second time in memory.
    """
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            version=np.int64(FORMAT_VERSION),
            times=np.asarray(seq.times, dtype=np.float64),
            features=np.asarray(seq.features, dtype=np.float32),
            backbone=np.str_(seq.backbone),
            rate=np.float64(seq.rate),
            recipe=np.str_(seq.recipe.to_json() if seq.recipe is not None else ""),
            damaged=np.asarray(seq.damaged, dtype=bool),
            damaged_ranges=ranges_to_array(seq.damaged_ranges),
            **(extra or {}),
        )
    return Path(path)


def load_features(path: Path) -> FeatureSequence:
    """Read a file written by `save_features`; InputError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: features file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["version"])
            if version not in READABLE_VERSIONS:
                raise InputError(
                    f"{path}: features file version {version}, expected {FORMAT_VERSION}"
                )
            damaged = data["damaged"].astype(bool) if version >= 2 else None
            recipe_text = str(data["recipe"]) if version >= 3 else ""
            recipe = FeatureRecipe.from_json(recipe_text, str(path)) if recipe_text else None
            seq = FeatureSequence(
                times=data["times"].astype(np.float64),
                features=np.asarray(data["features"], dtype=np.float32),
                backbone=str(data["backbone"]),
                rate=float(data["rate"]),
                damaged=damaged,
                damaged_ranges=ranges_from_array(data["damaged_ranges"]) if version >= 2 else (),
                recipe=recipe,
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable features file ({exc})") from None
    _check_shapes(seq, path)
    return seq


def _check_shapes(seq: FeatureSequence, path: Path) -> None:
    if (
        seq.times.ndim != 1
        or seq.features.ndim != 2
        or len(seq.times) != len(seq.features)
        or seq.damaged.shape != seq.times.shape
    ):
        raise InputError(
            f"{path}: features file is inconsistent: times {seq.times.shape}, "
            f"features {seq.features.shape}, damage flags {seq.damaged.shape}"
        )
    if np.any(np.diff(seq.times) <= 0) or not np.all(np.isfinite(seq.features)):
        raise InputError(f"{path}: features file has unordered times or non-finite features")


# --- merging -------------------------------------------------------------------------------


def merge_features(parts: Sequence[FeatureSequence]) -> FeatureSequence:
    """One sequence from parts (e.g. shards of one video): sorted by time, duplicates dropped.

    Times that name the same sampled frame count as one frame; the first part's frame is kept.
    All parts must share recipe and feature size.
    """
    if not parts:
        raise InputError("no feature sequences to merge")
    first = parts[0]
    for part in parts[1:]:
        if (part.backbone, part.rate, part.recipe) != (first.backbone, first.rate, first.recipe):
            raise InputError(
                "cannot merge features of different recipes: "
                f"{_recipe_text(first)} and {_recipe_text(part)}"
            )
        if part.features.shape[1] != first.features.shape[1]:
            raise InputError(
                f"cannot merge features of size {first.features.shape[1]} "
                f"and {part.features.shape[1]}"
            )
    times = np.concatenate([part.times for part in parts])
    order = np.argsort(times, kind="stable")
    frames = frames_at(times[order], first.rate)
    keep = order[np.concatenate([[True], np.diff(frames) > 0])]
    return FeatureSequence(
        times=times[keep],
        features=np.concatenate([part.features for part in parts])[keep],
        backbone=first.backbone,
        rate=first.rate,
        damaged=np.concatenate([part.damaged for part in parts])[keep],
        damaged_ranges=merge_ranges(r for part in parts for r in part.damaged_ranges),
        recipe=first.recipe,
    )


def _recipe_text(seq: FeatureSequence) -> str:
    if seq.recipe is not None:
        return seq.recipe.describe()
    return f"{seq.backbone} at {seq.rate:g} frames/s (no recipe recorded)"


# --- cache ---------------------------------------------------------------------------------


class FeatureCache:
    """Features on disk, keyed by the video's content hash and the feature recipe's digest.

    Renaming or moving a video keeps its cache entry; changing one byte does not. A cache file
    that cannot be read, or does not match its key, is extracted again and replaced. While an
    entry is being extracted its checkpoints live beside it, in `<entry>.checkpoints/`, and go
    once the entry is written.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, digest: str, recipe: FeatureRecipe) -> Path:
        """The entry of the video with content sha256 `digest`, made by `recipe`."""
        return self.root / digest[:2] / f"{digest}.{recipe.backbone}-{recipe.digest}.npz"

    def checkpoint_dir(self, entry: Path) -> Path:
        return entry.with_name(entry.name.removesuffix(".npz") + ".checkpoints")

    def get_or_extract(
        self,
        path: Path,
        backbone: Backbone,
        rate: float,
        batch_size: int = 32,
        progress: bool = False,
        digest: str | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_FRAMES,
    ) -> FeatureSequence:
        """`digest`: the video's sha256 when the caller already has it (hashing a match is slow)."""
        path = Path(path)
        if not path.is_file():
            probe(path)  # raises the VideoError that names the problem
        digest = digest or file_sha256(path)
        recipe = recipe_of(backbone, rate)
        entry = self.path_for(digest, recipe)
        cached = self._read(entry, recipe, backbone.feature_dim)
        if cached is not None:
            return cached
        folder = self.checkpoint_dir(entry)
        checkpoints = Checkpoints(LocalStorage(folder), "", recipe, backbone.feature_dim)
        sequence = extract_features(
            path,
            backbone,
            rate,
            batch_size,
            progress,
            checkpoints=checkpoints,
            checkpoint_every=checkpoint_every,
        )
        save_features(sequence, entry)
        shutil.rmtree(folder, ignore_errors=True)
        return sequence

    def _read(
        self, entry: Path, recipe: FeatureRecipe, feature_dim: int
    ) -> FeatureSequence | None:
        if not entry.is_file():
            return None
        try:
            seq = load_features(entry)
        except InputError:
            return None
        matches = (seq.recipe, seq.feature_dim) == (recipe, feature_dim)
        return seq if matches and len(seq) > 0 else None
