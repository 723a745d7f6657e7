"""Data loaders: digits split, IDX parsing, missing data sets, user arrays."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from ircomp.errors import InputError
from ircomp.train.data import (
    FASHION_MNIST_ENV,
    DatasetMissingError,
    get_dataset,
    load_arrays,
    load_digits,
    load_fashion_mnist,
    read_idx,
)


def test_digits_split_is_deterministic_and_stratified():
    a, b = load_digits(seed=0), load_digits(seed=0)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert a.x_train.shape[1:] == (1, 8, 8)
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    n = len(a.y_train) + len(a.y_test)
    assert n == 1797 and abs(len(a.y_test) / n - 0.2) < 0.01
    train_share = np.bincount(a.y_train, minlength=10) / len(a.y_train)
    test_share = np.bincount(a.y_test, minlength=10) / len(a.y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)
    c = load_digits(seed=1)
    assert not np.array_equal(a.y_test, c.y_test)


def _write_idx(path, arr: np.ndarray, gz: bool) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gzip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("images.idx.gz" if gz else "images.idx")
    _write_idx(path, images, gz)
    np.testing.assert_array_equal(read_idx(path), images)
    ints = np.array([1, -2, 70000], dtype=">i4")
    _write_idx(tmp_path / "ints.idx", ints, False)
    out = read_idx(tmp_path / "ints.idx")
    np.testing.assert_array_equal(out, [1, -2, 70000])
    assert out.dtype.isnative


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(InputError, match="magic"):
        read_idx(tmp_path / "bad")
    short = tmp_path / "short"
    _write_idx(short, np.zeros((4, 2), np.uint8), False)
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(InputError, match="bytes"):
        read_idx(short)


def test_fashion_mnist_from_tiny_idx_folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 6, True), ("t10k", 4, False)):
        suffix = ".gz" if gz else ""
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    ds = load_fashion_mnist()
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.max() <= 1.0 and ds.num_classes == 10


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetMissingError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist()
    with pytest.raises(DatasetMissingError, match=FASHION_MNIST_ENV):
        load_fashion_mnist(tmp_path)  # exists but empty
    assert issubclass(DatasetMissingError, InputError)


def test_npz_with_split_and_with_xy(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 3), dtype=np.float32)
    y = np.repeat(np.arange(4), 10)
    np.savez(tmp_path / "split.npz", x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    ds = load_arrays(tmp_path / "split.npz")
    assert ds.x_train.shape == (30, 3) and ds.num_classes == 4 and ds.name == "split"
    np.savez(tmp_path / "xy.npz", x=x.astype(np.float64), y=y)
    ds = get_dataset(tmp_path / "xy.npz")
    assert len(ds.x_train) == 32 and len(ds.x_test) == 8
    assert ds.x_train.dtype == np.float32
    assert sorted(np.bincount(ds.y_test)) == [2, 2, 2, 2]
    np.savez(tmp_path / "odd.npz", a=x)
    with pytest.raises(InputError, match="expected keys"):
        load_arrays(tmp_path / "odd.npz")


def test_npy_plain_loads_and_pickled_is_refused(tmp_path):
    np.save(tmp_path / "calib.npy", np.ones((5, 2), np.float32))
    ds = load_arrays(tmp_path / "calib.npy")
    assert ds.x_train.shape == (5, 2)
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickle"):
        load_arrays(tmp_path / "evil.npy")
    with pytest.raises(DatasetMissingError):
        load_arrays(tmp_path / "absent.npz")


def test_get_dataset_unknown_name():
    with pytest.raises(InputError, match="unknown data set"):
        get_dataset("cifar-100")
