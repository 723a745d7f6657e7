"""Suite-wide settings, loaded before any test module.

* single-threaded BLAS and torch: oversubscribed threads on the 2-core CI machines made one
  SVD-heavy pass 90x slower;
* `tests/` on sys.path, so test modules share helpers (`strategies`, `pass_checks`, ...);
* one hypothesis profile: no deadline (CI machines are noisy), 60 examples unless a test says.
"""

import os
import sys
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # after the environment settings above
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

settings.register_profile(
    "ircomp", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ircomp")
