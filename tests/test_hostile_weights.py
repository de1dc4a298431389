"""Crafted PyTorch weights files: refused before they read memory or allocate what they ask for.

The files are written here, opcode by opcode, in the legacy `torch.save` layout the reader takes:
the header pickles, a state dict whose tensors call `torch._utils._rebuild_tensor_v2` on storages
given as persistent ids, the storage key list, then each storage's bytes.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from highlights.backbones.torch_weights import read_state_dict
from highlights.errors import ModelError

TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int = 0
    view: tuple[int, int] | None = None  # (offset, size) of a legacy storage view
    copies: int = 1  # the same tensor object under the names name0, name1, ...


def _value(obj: object) -> bytes:
    """The opcodes that push `obj` (no PROTO, no STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _tensor(tensor: Tensor, key: str, numel: int) -> bytes:
    view = None if tensor.view is None else (f"{key}-view", *tensor.view)
    storage = (
        b"(" + _value("storage") + _global("torch", "FloatStorage") + _value(key)
        + _value("cpu") + _value(numel) + _value(view) + b"tQ"
    )  # fmt: skip
    hooks = _global("collections", "OrderedDict") + b")R"
    return (
        _global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + _value(tensor.offset)
        + _value(tensor.shape) + _value(tensor.stride) + _value(False) + hooks + b"tR"
    )  # fmt: skip


def _entries(tensor: Tensor, numel: int) -> bytes:
    if tensor.copies == 1:
        return _value(tensor.name) + _tensor(tensor, "0", numel)
    memo = b"\xc8"  # slot 200, clear of the small slots each _value() uses
    first = _value(f"{tensor.name}0") + _tensor(tensor, "0", numel) + b"q" + memo
    return first + b"".join(
        _value(f"{tensor.name}{i}") + b"h" + memo for i in range(1, tensor.copies)
    )


def weights_file(
    path: Path, tensors: list[Tensor], storage: np.ndarray, declared: int | None = None
) -> Path:
    """A legacy weights file whose tensors all lie on one float32 storage, which the header and
    the storage's own count say has `declared` elements (default: its real size)."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}
    header = b"".join(pickle.dumps(x, protocol=2) for x in (TORCH_MAGIC_NUMBER, 1001, sys_info))
    data = np.ascontiguousarray(storage, dtype="<f4")
    numel = data.size if declared is None else declared
    entries = b"".join(_entries(t, numel) for t in tensors)
    state = b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + entries + b"u."
    keys = pickle.dumps(["0"], protocol=2)
    path.write_bytes(header + state + keys + struct.pack("<q", numel) + data.tobytes())
    return path


STORAGE = np.arange(256, dtype=np.float32)

CRAFTED = {
    # a view starting 1,024 elements before its storage: today the tensor is heap memory
    "negative-offset": [Tensor("w", (1024,), (1,), view=(-1024, 1024))],
    # a view 4 elements before its storage: today the read runs 4 elements past the storage's end
    "storage-overrun": [Tensor("w", (8,), (1,), view=(-4, 8))],
    # a view that claims more elements than its storage holds
    "view-past-its-storage": [Tensor("w", (4,), (1,), view=(250, 100))],
    # a tensor that runs past the end of its view into the rest of the storage
    "tensor-past-its-view": [Tensor("w", (8,), (1,), view=(0, 4))],
    # a zero stride makes one element look like 200 MB of weights
    "zero-stride-bomb": [Tensor("w", (10_000, 5_000), (0, 0))],
    # ... or like 160 GB
    "zero-stride-160-gb": [Tensor("w", (200_000, 200_000), (0, 0))],
    # strides smaller than the row length: rows share elements
    "overlapping-rows": [Tensor("w", (6, 4), (1, 1))],
    # one whole-storage tensor under 20,000 names: each is sound, together 60 times the file
    "many-copies": [Tensor("w", (256,), (1,), copies=20_000)],
}


def test_a_sound_crafted_file_reads_as_its_tensors(tmp_path: Path) -> None:
    # The writer above is right: permuted strides, a view and an offset all read back correctly.
    path = weights_file(
        tmp_path / "sound.pth",
        [
            Tensor("matrix", (3, 4), (4, 1)),
            Tensor("transposed", (4, 3), (1, 4)),
            Tensor("tail", (2,), (1,), offset=1, view=(8, 4)),
            Tensor("empty", (0, 5), (5, 1)),
        ],
        STORAGE,
    )
    state = read_state_dict(path)
    np.testing.assert_array_equal(state["matrix"], STORAGE[:12].reshape(3, 4))
    np.testing.assert_array_equal(state["transposed"], STORAGE[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(state["tail"], [9, 10])
    assert state["empty"].shape == (0, 5)


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_a_crafted_weights_file_is_refused_naming_it(tmp_path: Path, kind: str) -> None:
    path = weights_file(tmp_path / f"{kind}.pth", CRAFTED[kind], STORAGE)
    with pytest.raises(ModelError, match="refused to load PyTorch weights") as error:
        read_state_dict(path)
    assert str(path) in str(error.value)


def test_a_storage_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    path = weights_file(
        tmp_path / "huge.pth", [Tensor("w", (4,), (1,))], STORAGE, declared=40_000_000_000
    )
    with pytest.raises(ModelError, match="truncated") as error:
        read_state_dict(path)
    assert str(path) in str(error.value)


_MEASURE = """
import json, resource, sys
from highlights.backbones.torch_weights import read_state_dict
from highlights.errors import ModelError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_state_dict(sys.argv[1])
    error = None
except ModelError as exc:
    error = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"error": error, "growth_kib": after - before}))
"""


@pytest.mark.parametrize("kind", ["zero-stride-bomb", "zero-stride-160-gb"])
def test_a_zero_stride_bomb_allocates_nothing(tmp_path: Path, kind: str) -> None:
    # The tensor wants 200 MB (or 160 GB) that the file does not hold; the peak must not move.
    path = weights_file(tmp_path / "bomb.pth", CRAFTED[kind], STORAGE)
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["error"] and "overlap" in measured["error"]
    assert measured["growth_kib"] < 20 * 1024


@pytest.mark.parametrize("kind", ["negative-offset", "zero-stride-bomb"])
def test_the_cli_exits_2_on_crafted_weights(
    tmp_path: Path, synthetic_dataset: Path, kind: str
) -> None:
    path = weights_file(tmp_path / f"{kind}.pth", CRAFTED[kind], STORAGE)
    result = subprocess.run(
        [sys.executable, "-m", "highlights.cli", "train", str(synthetic_dataset), "--quiet",
         "--out", str(tmp_path / "model"), "--weights", str(path),
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"highlights: error: {path}: refused to load PyTorch weights")
    assert not (tmp_path / "model").exists()
