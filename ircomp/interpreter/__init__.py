"""The golden interpreter: numpy execution of a verified module's `func.func`.

    outputs = run(program, [x], function="main", observer=None)

`observer(op, results)` is called after every op (weights included) with its result arrays:
the hook for calibration and debugging. `Interpreter(program, function)` prepares a function once
for repeated runs; `run` prepares and runs.

**Values.** `f32` tensors are float32 arrays, `f16` float16, `bf16` float32 arrays holding
bf16-rounded values. Every other format is held as its integer *codes* in the format's
`storage_dtype` (posits as unsigned words, `i32` accumulators as int32, fixp codes as integers).
Inputs are checked against the function signature (rank and static dims; float formats take
any real dtype, which is rounded to the format; other formats take integer or bool codes within
the format's range) and converted; outputs use the same representation. Errors are
`ircomp.errors.InputError` naming the input or the op.

**Float precision.** Ops compute in float32, as torch and onnxruntime do on CPU:

* elementwise ops (add, relu, sigmoid, tanh, clip, ...) are float32 numpy ufuncs; gelu is
  `torch.nn.functional.gelu` (erf or tanh form) on a float32 view;
* multiply-accumulate ops (linear, matmul, conv2d) accumulate in **float32** through BLAS sgemm
  (conv2d by im2col), so their summation order is BLAS's (results may differ in the last bits
  between BLAS builds or thread counts, like torch's);
* `avgpool2d` sums its window in float32 in window (row-major) order and divides once by the
  count in float32, as onnxruntime's and torch's CPU average pools do;
* the other reductions (layernorm and batchnorm statistics, the softmax normalizer, global
  average pools, reduce mean / sum) are computed in float64 and rounded once to float32.

`f16` and `bf16` ops compute in float32 and round the result once to their format.

**Codes.** Quantized ops follow `spec/numerics.md` section 5 exactly, using `ircomp.numerics`:
int64 arithmetic, wrapped to the result width; `requantize`, `quantize_linear`,
`dequantize_linear`, `rounding_average` are the library's. Choices the spec leaves open:
quantize to fixp/posit/bit is `fmt.encode(float64(x) / scale)` (as `quantize_scaled`);
dequantize of fixp/posit/bit is `decode(code) * scale` in float64, rounded once to the float
type; a requantize `clamp` is intersected with the result format's code range.
"""

from __future__ import annotations

from ircomp.interpreter import logic_kernels  # noqa: F401  (registers the logic kernels)
from ircomp.interpreter.core import Interpreter, Observer, run
from ircomp.interpreter.kernels import KERNELS, Context, kernel

__all__ = ["KERNELS", "Context", "Interpreter", "Observer", "kernel", "run"]
