"""Training data sets laid out one folder per class, as UCF101 is.

    root/<Class>/<clip>.avi|mp4|mkv|mov|webm

The clips are split three ways, always by clip and by group (clips named like UCF101's,
`v_<Class>_g<group>_c<clip>`, are cut from one long video per group, so a group never straddles
two parts):

- **train**: what the model learns from;
- **validation**: chooses the epoch (early stopping) and calibrates the decision settings;
- **test**: scored once at the end, and never used to choose anything.

UCF101's own split files (`trainlist0N.txt`, `testlist0N.txt`, at the root or in
`root/ucfTrainTestlist/`) are honoured when present: the test list is the test part, and the
validation part is held out of the train list by group. Otherwise each class's groups are split
deterministically from a seed. A class with too few groups to appear in every part is named in
the data set's `notes` (and so in the training report).
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
    validation: tuple[Clip, ...]  # held out: chooses the epoch and the decision settings
    split: str  # how the split was made, for reports
    test: tuple[Clip, ...] = ()  # held out: scored, never used to choose anything
    notes: tuple[str, ...] = ()  # classes missing from a part, and why

    def label_index(self, clip: Clip) -> int:
        return self.classes.index(clip.label)


def scan_dataset(
    root: Path,
    split: int = 1,
    validation_fraction: float = 0.2,
    seed: int = 1337,
    test_fraction: float = 0.2,
) -> Dataset:
    """Find the classes and clips under `root` and split them into train, validation and test."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set folder not found")
    clips = _clips_by_class(root)
    lists = _split_files(root, split)
    if lists is not None:
        listed, test = _listed_split(root, clips, *lists)
        by_class: dict[str, list[Path]] = {}
        for clip in listed:
            by_class.setdefault(clip.label, []).append(clip.path)
        train, validation, _, notes = _seeded_split(by_class, validation_fraction, 0.0, seed)
        how = (
            f"UCF101 split {split}: test = {lists[1].name}; validation = "
            f"{validation_fraction:.0%} of each class's groups in {lists[0].name} (seed {seed})"
        )
    else:
        train, validation, test, notes = _seeded_split(
            clips, validation_fraction, test_fraction, seed
        )
        how = (
            f"seeded split by group (seed {seed}): per class {validation_fraction:.0%} "
            f"validation, {test_fraction:.0%} test"
        )
    classes = tuple(sorted(clips))
    for name in classes:
        if not any(c.label == name for c in train):
            raise DatasetError(f"{root / name}: no clip of this class is in the training part")
    if not validation:
        raise DatasetError(
            f"{root}: no clip is held out for validation; give some class at least "
            f"{2 if lists else 3} groups of clips"
        )
    if not test:
        raise DatasetError(f"{root}: no clip is held out for testing; give some class more clips")
    return Dataset(root, classes, tuple(train), tuple(validation), how, tuple(test), notes)


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
    train = [c for c in _read_list(root, train_list) if c.label in clips]
    test = [c for c in _read_list(root, test_list) if c.label in clips]
    if not train:
        raise DatasetError(f"{train_list}: lists no clip of the classes under {root}")
    _check_disjoint(train, test, train_list, test_list)
    return train, test


def _check_disjoint(train: list[Clip], test: list[Clip], train_list: Path, test_list: Path) -> None:
    """The official lists never share a clip or a group; lists edited by hand might."""
    train_paths = {c.path for c in train}
    for clip in test:
        if clip.path in train_paths:
            raise DatasetError(
                f"{test_list}: {clip.label}/{clip.path.name} is also in {train_list.name}"
            )
    train_groups = {(c.label, _group_key(c.path)) for c in train}
    for clip in test:
        if (clip.label, _group_key(clip.path)) in train_groups and _GROUP.search(clip.path.stem):
            raise DatasetError(
                f"{test_list}: {clip.label}/{clip.path.name} is of a group that "
                f"{train_list.name} also lists: clips cut from one video would be on both sides"
            )


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
    clips: dict[str, list[Path]], validation: float, test: float, seed: int
) -> tuple[list[Clip], list[Clip], list[Clip], tuple[str, ...]]:
    """Per class: train, validation and (when `test` > 0) test clips, and notes on classes
    with too few groups to appear in every part."""
    parts: tuple[list[Clip], list[Clip], list[Clip]] = ([], [], [])
    notes = []
    for label, paths in sorted(clips.items()):
        split, note = _split_class(paths, validation, test, random.Random(f"{seed}:{label}"))
        for part, chosen in zip(parts, split, strict=True):
            part.extend(Clip(p, label) for p in chosen)
        if note:
            notes.append(f"{label}: {note}")
    return *parts, tuple(notes)


def _group_key(path: Path) -> str:
    match = _GROUP.search(path.stem)
    return match.group(1) if match else path.name


def _split_class(
    paths: list[Path], validation: float, test: float, rng: random.Random
) -> tuple[tuple[list[Path], list[Path], list[Path]], str]:
    """About `validation` and `test` of a class's groups (a clip without a UCF101 group name is
    its own group), at least one each while a group stays to train on; train keeps the rest."""
    key_of = {p: _group_key(p) for p in paths}
    keys = sorted(set(key_of.values()))
    rng.shuffle(keys)
    wanted = [max(1, round(len(keys) * f)) if f > 0 else 0 for f in (test, validation)]
    taken: list[list[str]] = [[], []]
    free = len(keys) - 1  # one group always trains
    for i, n in enumerate(wanted):
        count = min(n, free)
        taken[i], keys, free = keys[:count], keys[count:], free - count
    test_keys, validation_keys = set(taken[0]), set(taken[1])
    parts = (("test", wanted[0], test_keys), ("validation", wanted[1], validation_keys))
    missing = [name for name, want, got in parts if want and not got]
    groups = sorted(set(key_of.values()))
    note = ""
    if missing:
        note = (
            f"only {len(groups)} group{'s' if len(groups) != 1 else ''} ({', '.join(groups)}); "
            f"none held out for {' or '.join(missing)}"
        )
    split = (
        [p for p in paths if key_of[p] not in test_keys | validation_keys],
        [p for p in paths if key_of[p] in validation_keys],
        [p for p in paths if key_of[p] in test_keys],
    )
    return split, note
