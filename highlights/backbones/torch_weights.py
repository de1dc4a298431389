"""Reading a PyTorch state dict (legacy `torch.save` format) without importing torch.

A `.pth` file is a pickle, and unpickling runs whatever callables the file names. The
unpickler here admits only the few globals a plain state dict needs (the tensor-rebuild
function, the storage types, OrderedDict); any other global is refused before it is called.

Legacy layout (torch < 1.6, `_use_new_zipfile_serialization=False`): five pickles in a row
(magic number, protocol version, system info, the state dict with storages as persistent ids,
the list of storage keys), then each storage's raw bytes in key order, each preceded by its
element count as a little-endian int64.

The header is untrusted too: every storage view and tensor is checked against the bytes the file
really holds (offsets and extents inside their storage, strides that never make two elements of a
tensor share memory) and the arrays it asks for may not add up to more than a small multiple of the
file's size, all before a single array is made.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from highlights.errors import ModelError

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
# Tensors never overlap, so each fits in its storage; only several tensors over one storage (tied
# weights) can ask for more bytes than the file holds. Allow that, within reason.
_MAX_EXPANSION = 4

_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _Refused(Exception):
    """Raised inside the unpickler; turned into a ModelError naming the file."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return _STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype[Any]
    numel: int
    offset: int  # in elements, non-zero only for legacy storage views


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any
) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise _Refused("a tensor is not backed by a storage")
    try:
        shape = tuple(int(n) for n in size)
        strides = tuple(int(n) for n in stride)
        offset = int(storage_offset)
    except (TypeError, ValueError):
        raise _Refused("a tensor has a malformed size or stride") from None
    if len(shape) != len(strides) or offset < 0 or min(shape + strides, default=0) < 0:
        raise _Refused("a tensor has a malformed size or stride")
    return _TensorRef(storage, offset, shape, strides)


def _check_tensor(tensor: _TensorRef, name: str) -> int:
    """Refuse a tensor that reaches outside its storage view or whose elements overlap;
    return its element count (which then cannot exceed the view's)."""
    shape, strides = tensor.shape, tensor.stride
    if 0 in shape:
        return 0
    # Dimensions of size 1 never step; the others, by increasing stride, must each step past
    # everything the smaller ones reach, or two indices would read the same element.
    reach = 0
    for size, stride in sorted(
        (d for d in zip(shape, strides, strict=True) if d[0] > 1), key=lambda d: d[1]
    ):
        if stride <= reach:
            raise _Refused(
                f"tensor {name} has strides {strides} for shape {shape}: its elements overlap "
                "(a zero or too small stride repeats data instead of storing it)"
            )
        reach += (size - 1) * stride
    if tensor.offset + reach >= tensor.storage.numel:
        raise _Refused(
            f"tensor {name} (offset {tensor.offset}, shape {shape}, strides {strides}) reaches "
            f"past the end of its storage of {tensor.storage.numel} elements"
        )
    return math.prod(shape)


_ALLOWED_CALLABLES = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, storages: dict[str, _StorageRef] | None = None) -> None:
        super().__init__(stream)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_CALLABLES:
            return _ALLOWED_CALLABLES[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(f"it refers to {module}.{name}, which a weights file has no need of")

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise _Refused("unexpected persistent id")
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise _Refused(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise _Refused("a storage record is malformed")
        key = str(key)
        base = self._storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel, 0))
        if (base.dtype, base.numel) != (storage_type.dtype, numel):
            raise _Refused(f"storage {key} is declared twice with different types or sizes")
        if view is None:
            return base
        if not (isinstance(view, tuple) and len(view) == 3):
            raise _Refused(f"storage {key} has a malformed view record")
        _view_key, view_offset, view_size = view
        if not (isinstance(view_offset, int) and isinstance(view_size, int)):
            raise _Refused(f"storage {key} has a malformed view record")
        if view_offset < 0 or view_size < 0 or view_offset + view_size > numel:
            raise _Refused(
                f"a view of storage {key} (elements {view_offset} to {view_offset + view_size}) "
                f"lies outside the storage's {numel} elements"
            )
        return _StorageRef(key, base.dtype, view_size, view_offset)


def read_state_dict(path: Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict into float/int numpy arrays, keyed by name.

    With `sha256`, the file's digest must match it before anything is unpickled.
    """
    path = Path(path)
    data = _read_bytes(path)
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ModelError(
                f"{path}: sha256 {digest} does not match the expected {sha256}; "
                "the weights file is damaged or not the one this release ships"
            )
    if zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelError(
            f"{path}: is a zip-format PyTorch checkpoint (torch >= 1.6); only the legacy format "
            "is read here: re-save it with torch.save(..., _use_new_zipfile_serialization=False)"
        )
    try:
        return _parse_legacy(io.BytesIO(data), budget=_MAX_EXPANSION * len(data))
    except _Refused as exc:
        raise ModelError(f"{path}: refused to load PyTorch weights: {exc}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        struct.error,
        OverflowError,
        MemoryError,
    ) as exc:
        raise ModelError(
            f"{path}: not a PyTorch weights file ({type(exc).__name__}: {exc})"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: weights file not found") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, expected a weights file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read weights file: {exc.strerror}") from None


def _parse_legacy(stream: io.BytesIO, budget: int) -> dict[str, np.ndarray]:
    """The state dict in `stream`; its arrays may take at most `budget` bytes in all."""
    if _RestrictedUnpickler(stream).load() != _MAGIC_NUMBER:
        raise _Refused("it does not start with the PyTorch magic number")
    if _RestrictedUnpickler(stream).load() != _PROTOCOL_VERSION:
        raise _Refused("unsupported PyTorch serialization protocol")
    sys_info = _RestrictedUnpickler(stream).load()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise _Refused("it was written on a big-endian machine or has no system info")
    storages: dict[str, _StorageRef] = {}
    state = _RestrictedUnpickler(stream, storages).load()
    keys = _RestrictedUnpickler(stream).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise _Refused("it does not hold a state dict")
    wanted = 0
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, _TensorRef):
            raise _Refused(f"entry {name!r:.80} is not a named tensor")
        wanted += _check_tensor(tensor, name) * tensor.storage.dtype.itemsize
    if wanted > budget:
        raise _Refused(
            f"its tensors ask for {wanted} bytes, more than {_MAX_EXPANSION} times the file's size"
        )
    buffers = _read_storages(stream, [str(k) for k in keys], storages)
    return {
        name: _materialise(tensor, buffers[tensor.storage.key]) for name, tensor in state.items()
    }


def _read_storages(
    stream: io.BytesIO, keys: list[str], storages: dict[str, _StorageRef]
) -> dict[str, np.ndarray]:
    if set(keys) != set(storages):
        raise _Refused("the storage list does not match the tensors")
    buffers: dict[str, np.ndarray] = {}
    for key in keys:
        ref = storages[key]
        (numel,) = struct.unpack("<q", stream.read(8))
        if numel != ref.numel:
            raise _Refused(f"storage {key} holds {numel} elements, the header says {ref.numel}")
        raw = stream.read(numel * ref.dtype.itemsize)
        if len(raw) != numel * ref.dtype.itemsize:
            raise _Refused("the file is truncated")
        buffers[key] = np.frombuffer(raw, dtype=ref.dtype)
    if stream.read(1):
        raise _Refused("unexpected bytes after the last storage")
    return buffers


def _materialise(tensor: _TensorRef, buffer: np.ndarray) -> np.ndarray:
    """A copy of a tensor `_check_tensor` accepted (so it lies inside `buffer`)."""
    if 0 in tensor.shape:
        return np.zeros(tensor.shape, dtype=buffer.dtype)
    start = tensor.storage.offset + tensor.offset
    view = np.lib.stride_tricks.as_strided(
        buffer[start:],
        shape=tensor.shape,
        strides=tuple(s * buffer.itemsize for s in tensor.stride),
        writeable=False,
    )
    return np.array(view, copy=True)
