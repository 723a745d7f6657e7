"""PyTorch backend: IR programs as trainable `torch.nn.Module`s, and standalone PyTorch code.

    module = to_torch(program)                   # exact: codes agree with the interpreter
    qat = to_torch(program, mode="train", gradient="clipped_ste")
    ...train...
    trained = write_back(program, qat)           # a new verified Program
    build(program, Path("out"))                  # out/model.py, model.safetensors, run_example.py

Every `nn` op has one kernel in `runtime` (exact semantics, torch only) and, where training
differs, one in `qat` (fake quantization); `lower.LOWERINGS` is the table from ops to kernels.
"""

from ircomp.backends.pytorch.codegen import build, generate
from ircomp.backends.pytorch.lower import LOWERINGS
from ircomp.backends.pytorch.module import IRModule, sanitize, to_torch, write_back

__all__ = ["LOWERINGS", "IRModule", "build", "generate", "sanitize", "to_torch", "write_back"]
