"""Weight store: content hashing, dedup, safetensors round trip, memory mapping, bad files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from ircomp.errors import WeightStoreError
from ircomp.ir.weights import MMAP_THRESHOLD_BYTES, WeightStore, content_hash


def test_hash_depends_on_dtype_shape_and_bytes() -> None:
    a = np.arange(6, dtype=np.int8)
    assert content_hash(a) == content_hash(a.copy())
    assert content_hash(a) != content_hash(a.astype(np.int16))
    assert content_hash(a) != content_hash(a.reshape(2, 3))
    assert content_hash(np.asfortranarray(a.reshape(2, 3))) == content_hash(a.reshape(2, 3))


def test_identical_tensors_are_stored_once_and_frozen() -> None:
    store = WeightStore()
    first = store.add(np.ones((3, 3), np.float32))
    second = store.add(np.ones((3, 3), np.float32))
    assert first == second and len(store) == 1
    with pytest.raises(ValueError, match="read-only"):
        store.get(first)[0, 0] = 2


def test_save_load_round_trip_memory_maps_large_tensors(tmp_path: Path) -> None:
    store = WeightStore()
    small = store.add(np.arange(10, dtype=np.int8))
    big_array = np.random.default_rng(0).normal(size=MMAP_THRESHOLD_BYTES // 4).astype(np.float32)
    big = store.add(big_array)
    path = tmp_path / "w.safetensors"
    store.save(path)
    loaded = WeightStore.load(path)
    assert list(loaded) == list(store)
    assert isinstance(loaded.get(big), np.memmap)
    assert not isinstance(loaded.get(small), np.memmap)
    np.testing.assert_array_equal(loaded.get(big), big_array)
    np.testing.assert_array_equal(loaded.get(small), np.arange(10, dtype=np.int8))


def test_corrupted_tensor_fails_its_hash(tmp_path: Path) -> None:
    store = WeightStore()
    store.add(np.arange(16, dtype=np.int32))
    path = tmp_path / "w.safetensors"
    store.save(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightStoreError, match="does not match its hash"):
        WeightStore.load(path)


def test_missing_truncated_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(WeightStoreError, match="is missing"):
        WeightStore.load(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    with pytest.raises(WeightStoreError, match="not a safetensors weights file"):
        WeightStore.load(junk)
    store = WeightStore()
    store.add(np.arange(1000, dtype=np.float32))
    path = tmp_path / "w.safetensors"
    store.save(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightStoreError, match="truncated"):
        WeightStore.load(path)


def test_unknown_dtype_in_header_is_refused(tmp_path: Path) -> None:
    header = json.dumps({"abc": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 1]}})
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0")
    with pytest.raises(WeightStoreError, match="malformed entry"):
        WeightStore.load(path)


def test_unknown_handle_is_a_clear_error() -> None:
    with pytest.raises(WeightStoreError, match="not in the weight store"):
        WeightStore().get("0123456789abcdef")
