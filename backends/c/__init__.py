"""C backend: portable C99 for microcontrollers (no heap, one liveness-planned static arena).

    files = generate(program, "model")   # {"model.h", "model.c", "vectors.h", "main.c", "Makefile"}
    build(program, Path("out"), "model")  # writes them atomically
    measure_cortex_m4(Path("out"))        # Cortex-M4 build under QEMU: flash, RAM, report.json

Float32 graphs run in float; integer-coded (int8/uint8/int16/int32) graphs are bit-exact with
the golden interpreter (spec/numerics.md). The generated ABI is written down in spec/c_abi.md.
"""

from ircomp.backends.c.codegen import ArenaPlan, arena_plan, build, generate
from ircomp.backends.c.cortex_m4 import ToolchainMissing, measure_cortex_m4

__all__ = ["ArenaPlan", "ToolchainMissing", "arena_plan", "build", "generate", "measure_cortex_m4"]
