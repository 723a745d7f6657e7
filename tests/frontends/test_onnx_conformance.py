"""The official ONNX node test suite (shipped with the installed `onnx`) through ircomp.

Every node test of every supported op is included; each excluded case is listed below with
the reason. Run: `pytest -q tests/frontends/test_onnx_conformance.py`.
"""

from __future__ import annotations

import warnings

import onnx.backend.test
from onnx_conformance_backend import IrcompBackend

# Test-name prefixes of the supported ops (test_<op>...); `_expanded` variants (the op's
# function body) are included with their op.
SUPPORTED = [
    "abs",
    "add",
    "averagepool_2d",
    "basic_conv",
    "batchnorm",
    "cast",
    "castlike",
    "clip",
    "concat",
    "conv_with",
    "dequantizelinear",
    "div",
    "dropout",
    "erf",
    "exp",
    "expand",
    "flatten",
    "gather_0",
    "gather_1",
    "gather_2d",
    "gather_negative",
    "gelu",
    "gemm",
    "globalaveragepool",
    "globalmaxpool",
    "hardsigmoid",
    "hardswish",
    "identity",
    "layer_normalization",
    "leakyrelu",
    "log",
    "logsoftmax",
    "matmul",
    "max",
    "maxpool_2d",
    "min",
    "mul",
    "neg",
    "pow",
    "qlinearconv",
    "qlinearmatmul",
    "quantizelinear",
    "reciprocal",
    "reduce_max",
    "reduce_mean",
    "reduce_sum",
    "relu",
    "reshape",
    "shape",
    "sigmoid",
    "slice",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "sub",
    "sum",
    "tanh",
    "transpose",
    "unsqueeze",
    "where",
]

# Excluded cases of supported ops, each with its reason.
EXCLUDED = {
    # Element types without an ircomp format (formats are f32/f16/bf16 and integers <= 32 bits).
    r"(DOUBLE|double|float64|_uint64|_int64|long_example)": "64-bit types have no ircomp format",
    r"(FLOAT8|float8|FLOAT4|float4|e4m3|e5m2)": "float8/float4 have no ircomp format",
    r"(INT2|UINT2|int2|uint2)": "2-bit ONNX types are not mapped (int2/uint2 of ONNX 1.20)",
    r"_(cast|castlike)_.*(INT4|UINT4|STRING|INT8|UINT8|INT16|INT32|UINT16|UINT32|BOOL)": (
        "nn.cast converts between float formats only; int<->float casts are quantize/"
        "dequantize with a scale"
    ),
    r"(int8|int16|int32|uint8|uint16|uint32|int32_trunc)(_cpu)?$": (
        "integer Div/Pow have no nn op (nn.div and nn.pow are float-only); applies to "
        "test_div_* and test_pow_types_* integer cases"
    ),
    r"pow_types_(float32_int32|float32_uint32|int32_int32|int32_float32|float32_int64)": (
        "Pow with an integer run-time exponent or base: nn.pow is float-only"
    ),
    # Op variants outside ircomp's op set.
    r"training_mode": "BatchNormalization/Dropout in training mode (inference only)",
    r"(_1d_|_3d_|_1d$|_3d$)": "only 2-D pools and convolutions (NCHW) are supported",
    r"averagepool_2d_dilations": "nn.avgpool2d has no dilations",
    r"with_argmax": "MaxPool's Indices output is not supported",
    r"blocked": "blocked quantization (block_size) is not supported",
    r"(empty_set|zero_size|allowzero_reordered|_empty)": "empty tensors (a 0 dim) are not "
    "supported by the shape rules",
    r"(_sequence|_opt_|identity_opt)": "sequence and optional types are not supported",
    r"(dropout_default_old|dropout_random_old|test_qlinearconv_cpu)": (
        "opset below 13 (ircomp imports opsets 13 and up)"
    ),
}
EXPANDED_REASON = (
    "the expanded function body compares tensors at run time (Less/Greater/Equal feeding "
    "Where): the nn dialect has no comparison ops"
)

warnings.simplefilter("ignore", RuntimeWarning)
backend_test = onnx.backend.test.BackendTest(IrcompBackend, __name__)
for op in SUPPORTED:
    backend_test.include(rf"^test_{op}.*_cpu$")
for pattern in EXCLUDED:  # the reasons are the dict's values
    backend_test.exclude(pattern)
# Expanded variants whose function bodies need run-time comparisons.
EXCLUDED[r"^test_(clip|leakyrelu).*_expanded"] = EXPANDED_REASON
# Other ops that share a name prefix with a supported one (not excluded cases: other ops).
OTHER_OPS = r"^test_(matmulinteger|gather_elements|reduce_sum_square|reduce_log_sum|maxunpool)"
for pattern in (r"^test_(clip|leakyrelu).*_expanded", OTHER_OPS):
    backend_test.exclude(pattern)

# Node tests only (the suite also holds real/simple/pytorch-converted model tests).
globals().update(
    {k: v for k, v in backend_test.test_cases.items() if k == "OnnxBackendNodeModelTest"}
)
