"""Frames written by MediaConvert's frame capture, read as sampled frames; feature shards.

MediaConvert's FRAME_CAPTURE output writes `<name>.NNNNNNN.jpg`, N the 0-based capture sequence
number zero-padded to 7 digits: the first frame, then one every 1/rate seconds, so capture n
shows time n / rate. SageMaker Processing with `ShardedByS3Key` gives each instance a subset of
those files; the sequence number in the name, not the order of arrival, places each frame.
Each instance writes its features as a shard (`features-<host>.npz`: the features file format
plus the frame indices); `load_shards` merges every shard of a folder back into frame order.
With checkpoints, an instance skips the frames any earlier attempt, on any instance, embedded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from highlights.checkpoints import Checkpoints, Part
from highlights.errors import InputError, VideoError
from highlights.features import (
    DEFAULT_CHECKPOINT_FRAMES,
    FeatureSequence,
    features_from_frames,
    frame_indices,
    load_features,
    merge_features,
    save_features,
)
from highlights.images import fit_picture
from highlights.recipe import recipe_of
from highlights.timecode import frame_time, frame_times
from highlights.video import FrameGeometry, SampledFrame

if TYPE_CHECKING:
    from highlights.backbones import Backbone

log = logging.getLogger(__name__)

SHARD_PATTERN = "features-*.npz"

CAPTURE_NAME = re.compile(r"^(?P<name>.+)\.(?P<seq>\d{7})\.jpe?g$", re.IGNORECASE)


@dataclass(frozen=True)
class CapturedFrame:
    """One frame-capture JPEG and where it sits in the capture."""

    path: Path
    name: str  # the output's base name, shared by every frame of one capture
    sequence: int  # 0-based capture number

    def time(self, rate: float) -> float:
        return float(frame_time(self.sequence, rate))


def parse_capture_name(path: Path) -> CapturedFrame | None:
    """The capture frame `path` names, or None if it is not a `<name>.NNNNNNN.jpg` file."""
    match = CAPTURE_NAME.match(Path(path).name)
    if match is None:
        return None
    return CapturedFrame(Path(path), match["name"], int(match["seq"]))


def list_captured_frames(folder: Path) -> list[CapturedFrame]:
    """Every capture JPEG under `folder` (recursively), in sequence order.

    Raises InputError if the folder is missing, holds frames of more than one capture,
    or holds the same sequence number twice.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: frame folder not found")
    frames = [
        frame
        for path in sorted(folder.rglob("*"))
        if path.is_file() and (frame := parse_capture_name(path)) is not None
    ]
    names = sorted({frame.name for frame in frames})
    if len(names) > 1:
        raise InputError(
            f"{folder}: holds frames of {len(names)} captures ({', '.join(names[:3])}...); "
            "give one capture's frames per run"
        )
    frames.sort(key=lambda frame: frame.sequence)
    for before, after in zip(frames, frames[1:], strict=False):
        if before.sequence == after.sequence:
            raise InputError(
                f"{folder}: capture number {after.sequence} appears twice "
                f"({before.path} and {after.path})"
            )
    return frames


def read_captured_frame(frame: CapturedFrame, rate: float, geometry: FrameGeometry) -> SampledFrame:
    """Decode one JPEG, shaped for the backbone exactly as video frames are."""
    try:
        with av.open(str(frame.path)) as container:
            picture = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, OSError, ValueError) as exc:
        raise VideoError(f"{frame.path}: cannot read this frame-capture image: {exc}") from None
    return SampledFrame(
        index=frame.sequence, time=frame.time(rate), image=fit_picture(picture, geometry)
    )


def iter_captured_frames(
    frames: Sequence[CapturedFrame], rate: float, geometry: FrameGeometry
) -> Iterator[SampledFrame]:
    """Decode `frames` one at a time, in the order given."""
    if rate <= 0:
        raise InputError(f"the capture rate must be positive, got {rate}")
    if geometry.crop > geometry.resize_short:
        raise InputError(
            f"crop {geometry.crop} is larger than resize_short {geometry.resize_short}"
        )
    for frame in frames:
        yield read_captured_frame(frame, rate, geometry)


def captured_features(
    frames: Sequence[CapturedFrame],
    backbone: Backbone,
    rate: float,
    batch_size: int = 32,
    *,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_FRAMES,
) -> FeatureSequence:
    """Features of `frames` (in sequence order), reusing every frame a checkpoint part holds.

    Frames not in any part are embedded and added to the checkpoints as parts of their own.
    """
    numbers = np.array([frame.sequence for frame in frames], dtype=np.int64)
    features = np.empty((len(frames), backbone.feature_dim), dtype=np.float32)
    found = np.zeros(len(frames), dtype=bool)
    if checkpoints is not None and len(frames):
        _fill_from_checkpoints(checkpoints, numbers, features, found)
        if found.any():
            log.info("%d of %d frames taken from checkpoints", int(found.sum()), len(frames))
    todo = [frame for frame, done in zip(frames, found, strict=True) if not done]

    def save(chunk: FeatureSequence) -> None:
        assert checkpoints is not None
        checkpoints.save(Part(frame_indices(chunk.times, rate), chunk.features, chunk.damaged))

    new = features_from_frames(
        iter_captured_frames(todo, rate, backbone.geometry),
        backbone,
        rate,
        batch_size,
        total=len(todo),
        checkpoint=save if checkpoints is not None else None,
        checkpoint_every=checkpoint_every,
    )
    features[~found] = new.features
    return FeatureSequence(
        frame_times(numbers, rate),
        features,
        backbone.name,
        float(rate),
        recipe=recipe_of(backbone, rate),
    )


def _fill_from_checkpoints(
    checkpoints: Checkpoints, numbers: np.ndarray, features: np.ndarray, found: np.ndarray
) -> None:
    """Copy the rows of `numbers` (ascending) that checkpoint parts hold into `features`."""
    first, last = int(numbers[0]), int(numbers[-1])
    keys = [key for key in checkpoints.stored() if key.last >= first and key.first <= last]
    for part in checkpoints.read(keys):
        rows = np.searchsorted(numbers, part.indices)
        inside = rows < len(numbers)
        inside[inside] = numbers[rows[inside]] == part.indices[inside]
        features[rows[inside]] = part.features[inside]
        found[rows[inside]] = True


def shard(items: Sequence[CapturedFrame], count: int) -> list[list[CapturedFrame]]:
    """Split frames into `count` interleaved shards (frame k goes to shard k mod count).

    A stand-in for S3 sharding when several processes share one folder; every frame lands
    in exactly one shard and no shard's frames are contiguous, so merging must sort.
    """
    if count < 1:
        raise InputError(f"the number of shards must be at least 1, got {count}")
    return [list(items[index::count]) for index in range(count)]


def save_shard(seq: FeatureSequence, path: Path) -> Path:
    """Write one instance's features with their frame indices; `load_features` reads it too."""
    return save_features(seq, path, extra={"indices": frame_indices(seq.times, seq.rate)})


def load_shard(path: Path) -> tuple[np.ndarray, FeatureSequence]:
    """(frame indices, features) of one shard; InputError if the two disagree."""
    seq = load_features(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            indices = data["indices"].astype(np.int64)
    except KeyError:
        raise InputError(f"{path}: not a feature shard (no frame indices)") from None
    if not np.array_equal(indices, frame_indices(seq.times, seq.rate)):
        raise InputError(f"{path}: frame indices do not match the frame times")
    return indices, seq


def load_shards(folder: Path) -> FeatureSequence:
    """Every shard under `folder` merged into one sequence in frame order.

    Shards may come in any order and hold interleaved frames; together they must cover every
    frame from the first to the last (a gap means a shard is missing).
    """
    folder = Path(folder)
    paths = sorted(folder.rglob(SHARD_PATTERN)) if folder.is_dir() else []
    if not paths:
        raise InputError(f"{folder}: no feature shards ({SHARD_PATTERN}) found")
    shards = [load_shard(path) for path in paths]
    merged = merge_features([seq for _, seq in shards if len(seq)])
    indices = frame_indices(merged.times, merged.rate)
    gaps = np.flatnonzero(np.diff(indices) != 1)
    if len(gaps):
        first = gaps[0]
        raise InputError(
            f"{folder}: frames {indices[first] + 1} to {indices[first + 1] - 1} are missing "
            f"from the {len(paths)} shards; was a shard lost?"
        )
    return merged
