"""Scanning folder-per-class data sets and splitting them by group into train, validation and
test: the test part never chooses anything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from highlights.dataset import scan_dataset
from highlights.errors import DatasetError


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real, tiny video; data sets below hold copies of it under different names."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.5",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return path


def make_dataset(root: Path, clip: Path, layout: dict[str, list[str]]) -> Path:
    for label, names in layout.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(clip, root / label / name)
    return root


def ucf_names(label: str, groups: int, clips_per_group: int = 1) -> list[str]:
    return [
        f"v_{label}_g{g:02d}_c{c:02d}.avi"
        for g in range(1, groups + 1)
        for c in range(1, clips_per_group + 1)
    ]


def names_of(clips) -> set[str]:
    return {c.path.name for c in clips}


def every_clip(dataset):
    return dataset.train + dataset.validation + dataset.test


def test_classes_are_the_sorted_class_folders(tmp_path, clip):
    root = make_dataset(
        tmp_path,
        clip,
        {"Diving": ["a.mp4", "b.mp4", "e.mp4"], "Biking": ["c.mkv", "d.mov", "f.avi"]},
    )
    dataset = scan_dataset(root)
    assert dataset.classes == ("Biking", "Diving")
    assert len(every_clip(dataset)) == 6


def test_every_supported_video_suffix_is_found_and_other_files_are_ignored(tmp_path, clip):
    names = ["a.avi", "b.mp4", "c.mkv", "d.MOV", "e.webm"]
    root = make_dataset(tmp_path, clip, {"A": names, "B": ["x.mp4", "y.mp4", "z.mp4"]})
    (root / "A" / "notes.txt").write_text("not a clip")
    dataset = scan_dataset(root)
    found = {c.path.name for c in every_clip(dataset) if c.label == "A"}
    assert found == set(names)


def test_the_seeded_split_puts_every_class_with_three_clips_in_every_part(tmp_path, clip):
    root = make_dataset(
        tmp_path, clip, {"A": ["1.mp4", "2.mp4", "3.mp4"], "B": [f"{i}.mp4" for i in range(10)]}
    )
    dataset = scan_dataset(root, validation_fraction=0.2, test_fraction=0.3)
    for part in (dataset.train, dataset.validation, dataset.test):
        assert {c.label for c in part} == {"A", "B"}
    assert sum(c.label == "B" for c in dataset.validation) == 2  # 20 % of 10
    assert sum(c.label == "B" for c in dataset.test) == 3  # 30 % of 10
    assert dataset.notes == ()


def test_a_class_with_two_groups_is_tested_but_not_validated_and_says_so(tmp_path, clip):
    root = make_dataset(
        tmp_path, clip, {"A": ["1.mp4", "2.mp4"], "B": [f"{i}.mp4" for i in range(10)]}
    )
    dataset = scan_dataset(root)
    assert sum(c.label == "A" for c in dataset.test) == 1
    assert not any(c.label == "A" for c in dataset.validation)
    assert dataset.notes == ("A: only 2 groups (1.mp4, 2.mp4); none held out for validation",)


def test_the_seeded_split_never_puts_a_clip_in_two_parts(tmp_path, clip):
    root = make_dataset(
        tmp_path, clip, {"A": [f"{i}.mp4" for i in range(7)], "B": ["x.mp4", "y.mp4", "z.mp4"]}
    )
    dataset = scan_dataset(root)
    paths = [c.path for c in every_clip(dataset)]
    assert len(paths) == len(set(paths)) == 10


def test_the_seeded_split_is_the_same_every_time_and_changes_with_the_seed(tmp_path, clip):
    root = make_dataset(
        tmp_path, clip, {"A": [f"{i}.mp4" for i in range(20)], "B": ["x.mp4", "y.mp4"]}
    )
    first, again = scan_dataset(root, seed=3), scan_dataset(root, seed=3)
    assert first.validation == again.validation
    others = {tuple(sorted(names_of(scan_dataset(root, seed=s).validation))) for s in range(4, 9)}
    assert len(others | {tuple(sorted(names_of(first.validation)))}) > 1


def test_the_seeded_split_keeps_clips_of_one_ucf_group_together(tmp_path, clip):
    layout = {label: ucf_names(label, groups=5, clips_per_group=3) for label in ("Run", "Swim")}
    dataset = scan_dataset(make_dataset(tmp_path, clip, layout))
    parts = [
        {(c.label, c.path.stem.split("_")[2]) for c in part}
        for part in (dataset.train, dataset.validation, dataset.test)
    ]
    assert all(parts)
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]


def test_a_class_with_one_group_trains_on_it_and_says_so(tmp_path, clip):
    layout = {"A": ucf_names("A", groups=1, clips_per_group=4), "B": ["x.mp4", "y.mp4", "z.mp4"]}
    dataset = scan_dataset(make_dataset(tmp_path, clip, layout))
    assert len([c for c in dataset.train if c.label == "A"]) == 4
    assert dataset.notes == ("A: only 1 group (01); none held out for test or validation",)


def test_ucf101_test_list_is_the_test_part_and_validation_comes_out_of_the_train_list(
    tmp_path, clip
):
    layout = {"Run": ucf_names("Run", 6, 2), "Swim": ucf_names("Swim", 3)}
    root = make_dataset(tmp_path, clip, layout)
    train_lines = [f"Run/v_Run_g0{g}_c0{c}.avi 1" for g in range(1, 6) for c in (1, 2)]
    train_lines += ["Swim/v_Swim_g01_c01.avi 2", "Swim/v_Swim_g02_c01.avi 2"]
    (root / "trainlist01.txt").write_text("\n".join(train_lines) + "\n")
    (root / "testlist01.txt").write_text(
        "Run/v_Run_g06_c01.avi\nRun/v_Run_g06_c02.avi\nSwim/v_Swim_g03_c01.avi\n"
    )
    dataset = scan_dataset(root, split=1)
    assert names_of(dataset.test) == {
        "v_Run_g06_c01.avi",
        "v_Run_g06_c02.avi",
        "v_Swim_g03_c01.avi",
    }
    # one of Run's 5 training groups (20 %), both of its clips, and one of Swim's 2
    run_held = {c.path.stem.split("_")[2] for c in dataset.validation if c.label == "Run"}
    assert len(run_held) == 1 and sum(c.label == "Run" for c in dataset.validation) == 2
    assert sum(c.label == "Swim" for c in dataset.validation) == 1
    listed = {line.split()[0].split("/")[1] for line in train_lines}
    assert names_of(dataset.train) | names_of(dataset.validation) == listed
    assert not names_of(dataset.train) & names_of(dataset.validation)
    assert "UCF101 split 1" in dataset.split and "testlist01.txt" in dataset.split


def test_a_clip_in_both_official_lists_is_an_error(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ucf_names("Run", 3), "Swim": ucf_names("Swim", 3)})
    (root / "trainlist01.txt").write_text("Run/v_Run_g01_c01.avi 1\nRun/v_Run_g02_c01.avi 1\n")
    (root / "testlist01.txt").write_text("Run/v_Run_g03_c01.avi\nRun/v_Run_g02_c01.avi\n")
    with pytest.raises(DatasetError, match=r"testlist01\.txt: Run/v_Run_g02_c01\.avi is also in"):
        scan_dataset(root)


def test_a_group_in_both_lists_is_an_error(tmp_path, clip):
    root = make_dataset(
        tmp_path, clip, {"Run": ucf_names("Run", 3, 2), "Swim": ucf_names("Swim", 2)}
    )
    (root / "trainlist01.txt").write_text("Run/v_Run_g01_c01.avi 1\nRun/v_Run_g02_c01.avi 1\n")
    (root / "testlist01.txt").write_text("Run/v_Run_g03_c01.avi\nRun/v_Run_g02_c02.avi\n")
    with pytest.raises(DatasetError, match=r"v_Run_g02_c02\.avi is of a group that trainlist01"):
        scan_dataset(root)


def test_split_files_in_ucf_train_test_list_folder_are_found_for_the_chosen_split(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ucf_names("Run", 3), "Swim": ucf_names("Swim", 3)})
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "trainlist02.txt").write_text(
        "Run/v_Run_g02_c01.avi 1\nRun/v_Run_g03_c01.avi 1\nSwim/v_Swim_g02_c01.avi 2\n"
    )
    (lists / "testlist02.txt").write_text("Run/v_Run_g01_c01.avi\nSwim/v_Swim_g01_c01.avi\n")
    dataset = scan_dataset(root, split=2)
    assert dataset.classes == ("Run", "Swim")  # the list folder is not a class
    assert names_of(dataset.test) == {"v_Run_g01_c01.avi", "v_Swim_g01_c01.avi"}


def test_split_file_lines_for_classes_not_present_are_skipped(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ucf_names("Run", 3), "Swim": ucf_names("Swim", 2)})
    (root / "trainlist01.txt").write_text(
        "Run/v_Run_g01_c01.avi 1\nRun/v_Run_g03_c01.avi 1\nSwim/v_Swim_g01_c01.avi 2\n"
        "YoYo/v_YoYo_g01_c01.avi 3\n"
    )
    (root / "testlist01.txt").write_text("Run/v_Run_g02_c01.avi\nYoYo/v_YoYo_g02_c01.avi\n")
    dataset = scan_dataset(root)
    assert dataset.classes == ("Run", "Swim")
    assert names_of(dataset.test) == {"v_Run_g02_c01.avi"}


def test_a_listed_clip_that_does_not_exist_is_an_error_naming_the_list_and_line(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ucf_names("Run", 2), "Swim": ucf_names("Swim", 2)})
    (root / "trainlist01.txt").write_text("Run/v_Run_g01_c01.avi 1\nSwim/v_Swim_g09_c01.avi 2\n")
    (root / "testlist01.txt").write_text("Run/v_Run_g02_c01.avi\n")
    with pytest.raises(DatasetError, match=r"trainlist01\.txt:2: listed clip .*v_Swim_g09_c01"):
        scan_dataset(root)


def test_a_train_list_without_its_test_list_is_an_error(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ucf_names("Run", 2), "Swim": ucf_names("Swim", 2)})
    (root / "trainlist01.txt").write_text("Run/v_Run_g01_c01.avi 1\n")
    with pytest.raises(DatasetError, match="testlist01.txt is missing"):
        scan_dataset(root)


def test_split_files_without_the_chosen_split_are_an_error(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ucf_names("Run", 2), "Swim": ucf_names("Swim", 2)})
    (root / "trainlist01.txt").write_text("Run/v_Run_g01_c01.avi 1\n")
    (root / "testlist01.txt").write_text("Run/v_Run_g02_c01.avi\n")
    with pytest.raises(DatasetError, match="none for split 3"):
        scan_dataset(root, split=3)


def test_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: data set folder not found"):
        scan_dataset(tmp_path / "nowhere")


def test_a_folder_without_class_folders_is_an_error(tmp_path, clip):
    shutil.copy(clip, tmp_path / "loose.mp4")
    with pytest.raises(DatasetError, match="no class folders"):
        scan_dataset(tmp_path)


def test_a_single_class_is_an_error(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ["a.mp4", "b.mp4"]})
    with pytest.raises(DatasetError, match=r"only one class folder \(Run\)"):
        scan_dataset(root)


def test_a_class_folder_without_videos_is_an_error_naming_it(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ["a.mp4", "b.mp4"]})
    (root / "Swim").mkdir()
    (root / "Swim" / "readme.txt").write_text("no clips yet")
    with pytest.raises(DatasetError, match=r"Swim: class folder has no videos"):
        scan_dataset(root)


def test_nothing_to_hold_out_is_an_error(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ["a.mp4"], "Swim": ["b.mp4"]})
    with pytest.raises(DatasetError, match="no clip is held out for validation"):
        scan_dataset(root)


def test_nothing_to_validate_on_is_an_error_saying_how_many_groups_are_needed(tmp_path, clip):
    root = make_dataset(tmp_path, clip, {"Run": ["a.mp4", "c.mp4"], "Swim": ["b.mp4", "d.mp4"]})
    with pytest.raises(DatasetError, match="at least 3 groups"):
        scan_dataset(root)
