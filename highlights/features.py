"""Backbone features for a video: one vector per sampled frame, cached per video."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from highlights.errors import InputError, VideoError
from highlights.files import file_sha256, write_bytes_atomic
from highlights.video import SampledFrame, probe, sample_frames

if TYPE_CHECKING:
    from highlights.backbones import Backbone

FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureSequence:
    """Per-frame features of one video, in time order."""

    times: np.ndarray  # (N,) float64 seconds, ascending
    features: np.ndarray  # (N, D) float32
    backbone: str
    rate: float  # frames per second that were sampled

    def __len__(self) -> int:
        return len(self.times)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])


# --- extraction --------------------------------------------------------------------------


def features_from_frames(
    frames: Iterable[SampledFrame],
    backbone: Backbone,
    rate: float,
    batch_size: int = 32,
    progress: bool = False,
    total: int | None = None,
) -> FeatureSequence:
    """Run the backbone over frames in batches of `batch_size`; times come from the frames.

    `total` is only the length of the progress bar.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    times: list[float] = []
    chunks: list[np.ndarray] = []
    with tqdm(total=total, desc="features", unit="frame", disable=not progress) as bar:
        for batch in _batches(iter(frames), batch_size):
            chunks.append(_embed(backbone, np.stack([frame.image for frame in batch])))
            times.extend(frame.time for frame in batch)
            bar.update(len(batch))
    features = np.concatenate(chunks) if chunks else np.zeros((0, backbone.feature_dim), np.float32)
    return FeatureSequence(
        times=np.asarray(times, dtype=np.float64),
        features=features,
        backbone=backbone.name,
        rate=float(rate),
    )


def extract_features(
    path: Path, backbone: Backbone, rate: float, batch_size: int = 32, progress: bool = False
) -> FeatureSequence:
    """Sample `path` at `rate` frames/s, shaped for the backbone, and embed every frame."""
    info = probe(Path(path))
    frames = sample_frames(info.path, rate, backbone.geometry, info)
    sequence = features_from_frames(
        frames, backbone, rate, batch_size, progress, total=info.expected_frames(rate)
    )
    if len(sequence) == 0:
        raise VideoError(f"{path}: no frames could be sampled at {rate} frames/s")
    return sequence


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
    """Write `seq` (and any `extra` arrays, e.g. a shard's frame indices) to .npz, atomically."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        version=np.int64(FORMAT_VERSION),
        times=np.asarray(seq.times, dtype=np.float64),
        features=np.asarray(seq.features, dtype=np.float32),
        backbone=np.str_(seq.backbone),
        rate=np.float64(seq.rate),
        **(extra or {}),
    )
    return write_bytes_atomic(Path(path), buffer.getvalue())


def load_features(path: Path) -> FeatureSequence:
    """Read a file written by `save_features`; InputError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: features file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["version"])
            if version != FORMAT_VERSION:
                raise InputError(
                    f"{path}: features file version {version}, expected {FORMAT_VERSION}"
                )
            seq = FeatureSequence(
                times=data["times"].astype(np.float64),
                features=data["features"].astype(np.float32),
                backbone=str(data["backbone"]),
                rate=float(data["rate"]),
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable features file ({exc})") from None
    _check_shapes(seq, path)
    return seq


def _check_shapes(seq: FeatureSequence, path: Path) -> None:
    if seq.times.ndim != 1 or seq.features.ndim != 2 or len(seq.times) != len(seq.features):
        raise InputError(
            f"{path}: features file is inconsistent: times {seq.times.shape}, "
            f"features {seq.features.shape}"
        )
    if np.any(np.diff(seq.times) <= 0) or not np.all(np.isfinite(seq.features)):
        raise InputError(f"{path}: features file has unordered times or non-finite features")


# --- merging -------------------------------------------------------------------------------


def merge_features(parts: Sequence[FeatureSequence]) -> FeatureSequence:
    """One sequence from parts (e.g. shards of one video): sorted by time, duplicates dropped.

    Times closer than a thousandth of a sampling step count as the same frame; the first
    part's frame is kept. All parts must share backbone, rate and feature size.
    """
    if not parts:
        raise InputError("no feature sequences to merge")
    first = parts[0]
    for part in parts[1:]:
        if (part.backbone, part.rate) != (first.backbone, first.rate):
            raise InputError(
                "cannot merge features of different backbones or rates: "
                f"{first.backbone} at {first.rate:g}/s and {part.backbone} at {part.rate:g}/s"
            )
        if part.features.shape[1] != first.features.shape[1]:
            raise InputError(
                f"cannot merge features of size {first.features.shape[1]} "
                f"and {part.features.shape[1]}"
            )
    times = np.concatenate([part.times for part in parts])
    features = np.concatenate([part.features for part in parts])
    order = np.argsort(times, kind="stable")
    times, features = times[order], features[order]
    keep = np.concatenate([[True], np.diff(times) > 1e-3 / first.rate])
    return FeatureSequence(times[keep], features[keep], first.backbone, first.rate)


# --- cache ---------------------------------------------------------------------------------


class FeatureCache:
    """Features on disk, keyed by the video's content hash, the backbone and its weights, the rate.

    Renaming or moving a video keeps its cache entry; changing one byte does not. A cache file
    that cannot be read, or does not match its key, is extracted again and replaced.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(
        self, digest: str, backbone: str, rate: float, weights_id: str = "imagenet"
    ) -> Path:
        return self.root / digest[:2] / f"{digest}.{backbone}-{weights_id}.{rate:g}fps.npz"

    def get_or_extract(
        self,
        path: Path,
        backbone: Backbone,
        rate: float,
        batch_size: int = 32,
        progress: bool = False,
        digest: str | None = None,
    ) -> FeatureSequence:
        """`digest`: the video's sha256 when the caller already has it (hashing a match is slow)."""
        path = Path(path)
        if not path.is_file():
            probe(path)  # raises the VideoError that names the problem
        digest = digest or file_sha256(path)
        entry = self.path_for(digest, backbone.name, rate, backbone.weights_id)
        cached = self._read(entry, backbone, rate)
        if cached is not None:
            return cached
        sequence = extract_features(path, backbone, rate, batch_size, progress)
        save_features(sequence, entry)
        return sequence

    def _read(self, entry: Path, backbone: Backbone, rate: float) -> FeatureSequence | None:
        if not entry.is_file():
            return None
        try:
            seq = load_features(entry)
        except InputError:
            return None
        matches = (seq.backbone, seq.rate, seq.feature_dim) == (
            backbone.name,
            float(rate),
            backbone.feature_dim,
        )
        return seq if matches and len(seq) > 0 else None
