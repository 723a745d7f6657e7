"""Data sets as numpy arrays: scikit-learn's digits, Fashion-MNIST from IDX files, user arrays.

Every loader returns a `Dataset` whose images are float32 ``[N, C, H, W]`` in ``[0, 1]`` (or
whatever the user's arrays hold) and whose labels are int64. Nothing here downloads anything:
digits ships inside scikit-learn, Fashion-MNIST comes from the Debian package
``dataset-fashion-mnist`` or a directory the user names.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ircomp.errors import InputError

__all__ = [
    "FASHION_MNIST_DEFAULT_ROOT",
    "FASHION_MNIST_ENV",
    "Dataset",
    "DatasetMissingError",
    "get_dataset",
    "load_arrays",
    "load_digits",
    "load_fashion_mnist",
    "read_idx",
]

FASHION_MNIST_ENV = "IRCOMP_FASHION_MNIST"
FASHION_MNIST_DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class DatasetMissingError(InputError):
    """A data set that is not on this machine; the message says how to get it."""


@dataclass
class Dataset:
    """A classification data set split into train and test arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"classes={self.num_classes})"
        )


# --------------------------------------------------------------------------------------------
# digits


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits, split 80/20 stratified by class with `seed`.

    Images are float32 ``[N, 1, 8, 8]`` scaled from 0..16 to [0, 1]; labels int64.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, test_fraction, seed)
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx], "digits", 10)


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/test split: each class keeps its share in both parts.

    Deterministic given `seed`; both index arrays are sorted.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# --------------------------------------------------------------------------------------------
# IDX (MNIST / Fashion-MNIST)

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (plain or ``.gz``) into a numpy array in native byte order."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read IDX file: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InputError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise InputError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != count * dtype.itemsize:
        raise InputError(
            f"{path}: IDX header says shape {shape} ({count * dtype.itemsize} bytes) but the "
            f"file holds {len(data) - header} bytes of data"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def _missing_fmnist(root: Path, why: str) -> DatasetMissingError:
    return DatasetMissingError(
        f"Fashion-MNIST not found: {why} in {root}. Install it with "
        f"`apt-get install dataset-fashion-mnist` (files in {FASHION_MNIST_DEFAULT_ROOT}/), or "
        f"set ${FASHION_MNIST_ENV} to a directory holding train-images-idx3-ubyte(.gz), "
        f"train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and "
        f"t10k-labels-idx1-ubyte(.gz)."
    )


def fashion_mnist_root(root: str | os.PathLike | None = None) -> Path:
    """The directory Fashion-MNIST is read from: `root`, else $IRCOMP_FASHION_MNIST, else the
    Debian package's directory."""
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV)
    if env:
        return Path(env)
    return FASHION_MNIST_DEFAULT_ROOT


def load_fashion_mnist(root: str | os.PathLike | None = None) -> Dataset:
    """Fashion-MNIST (60,000 train / 10,000 test) from IDX files.

    Searched in `root`, else ``$IRCOMP_FASHION_MNIST``, else
    ``/usr/share/datasets/fashion-mnist/``. Images float32 ``[N, 1, 28, 28]`` in [0, 1].
    Raises `DatasetMissingError` with instructions when the files are not there.
    """
    root = fashion_mnist_root(root)
    if not root.is_dir():
        raise _missing_fmnist(root, "no such directory")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        stems = (("x", f"{prefix}-images-idx3-ubyte"), ("y", f"{prefix}-labels-idx1-ubyte"))
        for kind, stem in stems:
            path = _find_idx(root, stem)
            if path is None:
                raise _missing_fmnist(root, f"no {stem}(.gz)")
            parts[kind, split] = read_idx(path)
    for split in ("train", "test"):
        x, y = parts["x", split], parts["y", split]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise InputError(
                f"{root}: Fashion-MNIST {split} images {x.shape} and labels {y.shape} do not match"
            )

    def images(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) / 255.0)[:, None, :, :]

    return Dataset(
        images(parts["x", "train"]),
        parts["y", "train"].astype(np.int64),
        images(parts["x", "test"]),
        parts["y", "test"].astype(np.int64),
        "fashion-mnist",
        10,
    )


# --------------------------------------------------------------------------------------------
# user arrays


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:  # raised for object arrays when pickles are refused
        raise InputError(
            f"{path}: refusing to load pickled data ({exc}); save plain numeric arrays"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc


def load_arrays(path: str | os.PathLike, *, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """A data set from a user's ``.npz`` or ``.npy`` file (never unpickled).

    ``.npz`` holds either ``x_train, y_train, x_test, y_test`` or ``x, y`` (split stratified
    with `seed`). A ``.npy`` holds only inputs: it is returned as ``x_train`` = ``x_test`` with
    zero labels, for calibration. Integer labels are required; the class count is
    ``max(label) + 1``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"{path}: no such file")
    if path.suffix == ".npy":
        x = _load_npy(path)
        y = np.zeros(len(x), dtype=np.int64)
        return Dataset(x, y, x, y, path.stem, 1)
    if path.suffix != ".npz":
        raise InputError(f"{path}: expected a .npz or .npy file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise InputError(
            f"{path}: refusing to load pickled data ({exc}); save plain numeric arrays"
        ) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    split_keys = {"x_train", "y_train", "x_test", "y_test"}
    if split_keys <= arrays.keys():
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        x_test, y_test = arrays["x_test"], arrays["y_test"]
    elif {"x", "y"} <= arrays.keys():
        x, y = arrays["x"], arrays["y"]
        if len(x) != len(y):
            raise InputError(f"{path}: x has {len(x)} rows but y has {len(y)}")
        tr, te = stratified_split(np.asarray(y), test_fraction, seed)
        x_train, y_train, x_test, y_test = x[tr], y[tr], x[te], y[te]
    else:
        raise InputError(
            f"{path}: expected keys x_train, y_train, x_test, y_test (or x, y); "
            f"found {sorted(arrays)}"
        )
    for name, (xs, ys) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
        if len(xs) != len(ys):
            raise InputError(f"{path}: {name} inputs have {len(xs)} rows but labels {len(ys)}")
        if not np.issubdtype(ys.dtype, np.integer):
            raise InputError(f"{path}: {name} labels must be integers, got {ys.dtype}")
    x_train = _as_float(x_train)
    x_test = _as_float(x_test)
    y_train = y_train.astype(np.int64)
    y_test = y_test.astype(np.int64)
    if min(y_train.min(initial=0), y_test.min(initial=0)) < 0:
        raise InputError(f"{path}: labels must be non-negative class indices")
    num_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(x_train, y_train, x_test, y_test, path.stem, num_classes)


def _as_float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else x.astype(np.float32)


# --------------------------------------------------------------------------------------------
# dispatcher

_BUILTIN = {
    "digits": load_digits,
    "fashion-mnist": load_fashion_mnist,
    "fmnist": load_fashion_mnist,
}


def get_dataset(name_or_path: str | os.PathLike) -> Dataset:
    """``"digits"``, ``"fashion-mnist"`` (alias ``"fmnist"``) or a path to ``.npz``/``.npy``."""
    key = str(name_or_path)
    if key in _BUILTIN:
        return _BUILTIN[key]()
    path = Path(key)
    if path.suffix in (".npz", ".npy") or path.exists():
        return load_arrays(path)
    raise InputError(
        f"unknown data set {key!r}: use one of {sorted(_BUILTIN)} or a path to a .npz/.npy file"
    )
