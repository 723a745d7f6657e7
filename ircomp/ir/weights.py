"""Weights live outside the IR text: `nn.weight` ops name a tensor and its content hash.

A `WeightStore` maps content hashes to read-only numpy arrays, so identical tensors are stored
once. It saves as one safetensors file (tensor key = hash) and loads back with large tensors
memory-mapped; every tensor's hash is checked on load. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from ircomp.errors import WeightStoreError

HASH_LEN = 16
MMAP_THRESHOLD_BYTES = 1 << 20

_SAFETENSORS_DTYPES = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "U32": np.uint32,
    "I32": np.int32,
    "U64": np.uint64,
    "I64": np.int64,
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
}


def content_hash(array: np.ndarray) -> str:
    """16 hex digits of sha256 over dtype, shape and the C-ordered bytes."""
    data = np.asarray(array, order="C")
    digest = hashlib.sha256()
    digest.update(f"{data.dtype.str}|{data.shape}|".encode())
    digest.update(memoryview(data).cast("B"))
    return digest.hexdigest()[:HASH_LEN]


class WeightStore:
    """Content-addressed, read-only tensors shared by the ops of one module."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def add(self, array: np.ndarray) -> str:
        """Store a copy of `array` (once per distinct content) and return its hash."""
        data = np.asarray(array, order="C")
        if data.dtype.kind not in "biuf":
            raise WeightStoreError(f"cannot store a tensor of dtype {data.dtype}")
        key = content_hash(data)
        if key not in self._arrays:
            frozen = data.copy()
            frozen.setflags(write=False)
            self._arrays[key] = frozen
        return key

    def get(self, key: str) -> np.ndarray:
        try:
            return self._arrays[key]
        except KeyError:
            raise WeightStoreError(
                f"weight {key} is not in the weight store; was the module saved with its "
                "weights file?"
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._arrays))

    def __len__(self) -> int:
        return len(self._arrays)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def subset(self, keys: set[str]) -> WeightStore:
        """A store sharing the arrays of `keys` only (e.g. the ones a module still uses)."""
        out = WeightStore()
        out._arrays = {k: self.get(k) for k in sorted(keys)}
        return out

    def save(self, path: Path) -> None:
        tensors = {key: np.asarray(self._arrays[key], order="C") for key in self}
        save_file(tensors, str(path), metadata={"format": "ircomp-weights-1"})

    @classmethod
    def load(cls, path: Path) -> WeightStore:
        store = cls()
        for key, array in _read_safetensors(path):
            if content_hash(array) != key:
                raise WeightStoreError(
                    f"{path}: tensor {key} does not match its hash (file corrupted or edited)"
                )
            store._arrays[key] = array
        return store


def _read_safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Read a safetensors file: small tensors into memory, large ones memory-mapped."""
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(header_len))
    except FileNotFoundError:
        raise WeightStoreError(f"weights file {path} is missing") from None
    except (OSError, ValueError, struct.error) as err:
        raise WeightStoreError(f"{path} is not a safetensors weights file ({err})") from None
    base = 8 + header_len
    size = path.stat().st_size
    for key, info in sorted(header.items()):
        if key == "__metadata__":
            continue
        try:
            dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
            start, end = (base + o for o in info["data_offsets"])
            shape = tuple(int(d) for d in info["shape"])
        except (KeyError, TypeError, ValueError):
            raise WeightStoreError(f"{path}: malformed entry for tensor {key}") from None
        count = int(np.prod(shape, dtype=np.int64))
        if end > size or end - start != count * dtype.itemsize:
            raise WeightStoreError(f"{path}: tensor {key} lies outside the file (truncated?)")
        if end - start >= MMAP_THRESHOLD_BYTES:
            array = np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape)
        else:
            with open(path, "rb") as f:
                f.seek(start)
                array = np.frombuffer(f.read(end - start), dtype=dtype).reshape(shape)
        array.setflags(write=False)
        yield key, array
