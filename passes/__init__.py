"""ircomp's built-in passes (import name `ircomp.passes`), one per file.

`BUILTIN_PASSES` is what the registry (`ircomp.pass_manager.available_passes`) offers besides
plugins found through the entry-point group `ircomp.passes`.
"""

from __future__ import annotations

from ircomp.passes.constant_fold import ConstantFoldPass
from ircomp.passes.cse import CommonSubexpressionEliminationPass
from ircomp.passes.dce import DeadCodeEliminationPass
from ircomp.passes.fold_batchnorm import FoldBatchNormPass
from ircomp.passes.logic_extract import LogicExtractPass
from ircomp.passes.logic_minimize import LogicMinimizePass
from ircomp.passes.matmul_to_linear import MatMulToLinearPass
from ircomp.passes.narrow_codes import NarrowCodesPass
from ircomp.passes.shape_inference import ShapeInferencePass

BUILTIN_PASSES = (
    CommonSubexpressionEliminationPass,
    ConstantFoldPass,
    DeadCodeEliminationPass,
    FoldBatchNormPass,
    LogicExtractPass,
    LogicMinimizePass,
    MatMulToLinearPass,
    NarrowCodesPass,
    ShapeInferencePass,
)

__all__ = [
    "BUILTIN_PASSES",
    "CommonSubexpressionEliminationPass",
    "ConstantFoldPass",
    "DeadCodeEliminationPass",
    "FoldBatchNormPass",
    "LogicExtractPass",
    "LogicMinimizePass",
    "MatMulToLinearPass",
    "NarrowCodesPass",
    "ShapeInferencePass",
]
