"""Suite-wide settings: single-threaded BLAS/torch on the 2-core CI machines."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402 - must follow the environment settings above

torch.set_num_threads(1)
