# lit configuration: FileCheck goldens for printed IR. Run with `lit tests/lit`.
import os

import lit.formats

config.name = "ircomp"  # noqa: F821 - `config` is injected by lit
config.test_format = lit.formats.ShTest()  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.excludes = ["lit.cfg.py"]  # noqa: F821
for name in ("PATH", "OPENBLAS_NUM_THREADS", "HOME"):
    if name in os.environ:
        config.environment[name] = os.environ[name]  # noqa: F821
