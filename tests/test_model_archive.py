"""SageMaker's model.tar.gz unpacked by the scoring job, on Pythons with and without tarfile's
"data" filter (Debian 12's python3, the CI image's base, is 3.11.2 and lacks it)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from highlights.errors import ModelError
from processing.score_windows import model_folder


@pytest.fixture(params=["data filter", "no data filter"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no data filter":
        monkeypatch.delattr(tarfile, "data_filter")
    return request.param


def archive(folder: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    folder.mkdir()
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return folder


def file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def test_a_model_archive_unpacks_its_files_and_folders(python: str, tmp_path: Path) -> None:
    folder = tarfile.TarInfo("assets")
    folder.type = tarfile.DIRTYPE
    source = archive(tmp_path / "in", [file("manifest.json", b"{}"), (folder, None),
                                       file("assets/x.bin", b"123", mode=0o4755)])
    with model_folder(source) as unpacked:
        assert (unpacked / "manifest.json").read_bytes() == b"{}"
        assert (unpacked / "assets" / "x.bin").read_bytes() == b"123"
        assert not (unpacked / "assets" / "x.bin").stat().st_mode & 0o4000  # no setuid


@pytest.mark.parametrize("name", ["../escape.json", "a/../../escape.json"])
def test_a_member_outside_the_archive_folder_is_refused(
    python: str, name: str, tmp_path: Path
) -> None:
    source = archive(tmp_path / "in", [file(name, b"x")])
    with pytest.raises(ModelError, match="cannot unpack the model archive"), model_folder(source):
        pass
    assert not (tmp_path / "escape.json").exists()


def test_a_link_in_the_archive_is_refused(python: str, tmp_path: Path) -> None:
    link = tarfile.TarInfo("model.keras")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    source = archive(tmp_path / "in", [(link, None)])
    with pytest.raises(ModelError, match="model.tar.gz"), model_folder(source):
        pass


def test_an_absolute_member_never_lands_at_its_absolute_path(python: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "escape.json"  # the data filter unpacks it inside instead
    source = archive(tmp_path / "in", [file(str(outside), b"x")])
    try:
        with model_folder(source) as unpacked:
            assert (unpacked / str(outside).lstrip("/")).read_bytes() == b"x"
    except ModelError as exc:
        assert "outside the archive's folder" in str(exc)
    assert not outside.exists()
