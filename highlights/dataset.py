"""Training data sets laid out one folder per class, as UCF101 is.

    root/<Class>/<clip>.avi|mp4|mkv|mov|webm

The clips are split into a training part and a held-out part, always by clip (windows of one
clip never land on both sides). UCF101's own split files (`trainlist0N.txt`, `testlist0N.txt`,
at the root or in `root/ucfTrainTestlist/`) are honoured when present; otherwise each class is
split deterministically from a seed. Clips named like UCF101's (`v_<Class>_g<group>_c<clip>`) are
cut from the same long video per group, so the seeded split keeps a group on one side.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from highlights.errors import DatasetError
from highlights.video import VIDEO_SUFFIXES

SPLIT_FOLDER = "ucfTrainTestlist"
_GROUP = re.compile(r"_g(\d+)_c\d+$")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str  # the class folder's name


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[str, ...]  # sorted; a class's index is its model output
    train: tuple[Clip, ...]
    validation: tuple[Clip, ...]  # held out: early stopping and evaluation
    split: str  # how the split was made, for reports

    def label_index(self, clip: Clip) -> int:
        return self.classes.index(clip.label)


def scan_dataset(
    root: Path, split: int = 1, validation_fraction: float = 0.2, seed: int = 1337
) -> Dataset:
    """Find the classes and clips under `root` and split them into training and held-out clips."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set folder not found")
    clips = _clips_by_class(root)
    lists = _split_files(root, split)
    if lists is not None:
        train, held_out = _listed_split(root, clips, *lists)
        how = f"UCF101 split {split} ({lists[0].name}, {lists[1].name})"
    else:
        train, held_out = _seeded_split(clips, validation_fraction, seed)
        how = f"seeded split by clip (seed {seed}, {validation_fraction:.0%} held out per class)"
    classes = tuple(sorted(clips))
    for name in classes:
        if not any(c.label == name for c in train):
            raise DatasetError(f"{root / name}: no clip of this class is in the training part")
    if not held_out:
        raise DatasetError(
            f"{root}: no clip is held out for validation; give some class at least 2 clips"
        )
    return Dataset(root, classes, tuple(train), tuple(held_out), how)


def _clips_by_class(root: Path) -> dict[str, list[Path]]:
    folders = sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != SPLIT_FOLDER
    )
    if not folders:
        raise DatasetError(f"{root}: no class folders; expected one sub-folder of clips per class")
    if len(folders) < 2:
        raise DatasetError(
            f"{root}: only one class folder ({folders[0].name}); a classifier needs at least 2"
        )
    clips: dict[str, list[Path]] = {}
    for folder in folders:
        videos = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
        )
        if not videos:
            raise DatasetError(
                f"{folder}: class folder has no videos ({', '.join(sorted(VIDEO_SUFFIXES))})"
            )
        clips[folder.name] = videos
    return clips


def _split_files(root: Path, split: int) -> tuple[Path, Path] | None:
    for folder in (root, root / SPLIT_FOLDER):
        train, test = folder / f"trainlist{split:02d}.txt", folder / f"testlist{split:02d}.txt"
        if train.is_file() and test.is_file():
            return train, test
        if train.is_file() or test.is_file():
            present, absent = (train, test) if train.is_file() else (test, train)
            raise DatasetError(f"{present}: found, but its partner {absent.name} is missing")
        if any(folder.glob("trainlist*.txt")):
            raise DatasetError(f"{folder}: has UCF101 split files but none for split {split}")
    return None


def _listed_split(
    root: Path, clips: dict[str, list[Path]], train_list: Path, test_list: Path
) -> tuple[list[Clip], list[Clip]]:
    """Clips named in the lists. Lines for classes absent from `root` are skipped, so a subset
    of UCF101's classes can be used with the official lists."""
    parts = []
    for listing in (train_list, test_list):
        part = [c for c in _read_list(root, listing) if c.label in clips]
        parts.append(part)
    train, held_out = parts
    if not train:
        raise DatasetError(f"{train_list}: lists no clip of the classes under {root}")
    return train, held_out


def _read_list(root: Path, listing: Path) -> list[Clip]:
    clips = []
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        relative = fields[0].replace("\\", "/")
        label, _, name = relative.partition("/")
        if not name or "/" in name:
            raise DatasetError(
                f"{listing}:{number}: expected '<Class>/<clip>', got {line.strip()!r}"
            )
        path = root / label / name
        if (root / label).is_dir() and not path.is_file():
            raise DatasetError(f"{listing}:{number}: listed clip {path} does not exist")
        clips.append(Clip(path, label))
    return clips


def _seeded_split(
    clips: dict[str, list[Path]], fraction: float, seed: int
) -> tuple[list[Clip], list[Clip]]:
    train: list[Clip] = []
    held_out: list[Clip] = []
    for label, paths in sorted(clips.items()):
        keep, hold = _split_class(paths, fraction, random.Random(f"{seed}:{label}"))
        train.extend(Clip(p, label) for p in keep)
        held_out.extend(Clip(p, label) for p in hold)
    return train, held_out


def _split_class(
    paths: list[Path], fraction: float, rng: random.Random
) -> tuple[list[Path], list[Path]]:
    """Hold out about `fraction` of a class's groups (or clips), at least one when there are 2+."""
    key_of = {p: match.group(1) if (match := _GROUP.search(p.stem)) else p.name for p in paths}
    if len(set(key_of.values())) < 2:
        key_of = {p: p.name for p in paths}
    keys = sorted(set(key_of.values()))
    if len(keys) < 2:
        return list(paths), []
    rng.shuffle(keys)
    held = set(keys[: min(len(keys) - 1, max(1, round(len(keys) * fraction)))])
    return [p for p in paths if key_of[p] not in held], [p for p in paths if key_of[p] in held]
