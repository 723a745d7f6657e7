"""Sliding-window helpers shared by conv2d and the pools (NCHW, padding [top, left, bottom, right]).

Windows are strided views (`sliding_window_view`); convolution is im2col + one batched matmul
over the groups, so the same code serves float values and int64 codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ircomp.ir import shapes


def windows(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[int],
    dilations: Sequence[int],
    out_hw: tuple[int, int],
    fill: float | int = 0,
) -> np.ndarray:
    """View [N, C, OH, OW, kh, kw] of the windows of `x` padded with `fill`.

    Pads the bottom/right further when `out_hw` needs it (ceil_mode); those cells are `fill`.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    top, left, bottom, right = padding
    out_h, out_w = out_hw
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    extra_h = max(0, (out_h - 1) * sh + span_h - (x.shape[2] + top + bottom))
    extra_w = max(0, (out_w - 1) * sw + span_w - (x.shape[3] + left + right))
    pads = ((0, 0), (0, 0), (top, bottom + extra_h), (left, right + extra_w))
    if any(p for pair in pads for p in pair):
        x = np.pad(x, pads, constant_values=fill)
    view = sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return view[:, :, : (out_h - 1) * sh + 1 : sh, : (out_w - 1) * sw + 1 : sw, ::dh, ::dw]


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    strides: Sequence[int],
    padding: Sequence[int],
    dilations: Sequence[int],
    groups: int,
    matmul: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Cross-correlation of x [N, C, H, W] with w [O, C/g, kh, kw], zero padding.

    `matmul` multiplies [g, M, K] by [g, K, O/g] (float BLAS, or the exact integer product).
    """
    n = x.shape[0]
    out_c, cg, kh, kw = w.shape
    g = groups
    out_hw = shapes.window2d(x.shape, (kh, kw), strides, padding, dilations)
    win = windows(x, (kh, kw), strides, padding, dilations, out_hw)
    oh, ow = out_hw
    # [N, g, cg, OH, OW, kh, kw] -> [g, N*OH*OW, cg*kh*kw]
    cols = win.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(g, n * oh * ow, cg * kh * kw)
    wmat = w.reshape(g, out_c // g, cg * kh * kw).transpose(0, 2, 1)
    out = matmul(cols, wmat)  # [g, N*OH*OW, O/g]
    out = out.reshape(g, n, oh, ow, out_c // g).transpose(1, 0, 4, 2, 3)
    return np.ascontiguousarray(out).reshape(n, out_c, oh, ow)


def _axis_counts(
    size: int, k: int, stride: int, lo: int, hi: int, out: int, include_pad: bool
) -> np.ndarray:
    """Per output position: how many window cells along one axis count in the average.

    PyTorch's rule: the window is clipped to the padded input [-lo, size + hi) when padding
    counts (cells added by ceil_mode never count), else to the input [0, size).
    """
    starts = np.arange(out, dtype=np.int64) * stride - lo
    ends = starts + k
    if include_pad:
        return np.minimum(ends, size + hi) - starts
    return np.minimum(ends, size) - np.maximum(starts, 0)


def average_counts(
    hw: tuple[int, int],
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[int],
    out_hw: tuple[int, int],
    include_pad: bool,
) -> np.ndarray:
    """[OH, OW] int64 divisors of an average pool."""
    top, left, bottom, right = padding
    ch = _axis_counts(hw[0], kernel[0], strides[0], top, bottom, out_hw[0], include_pad)
    cw = _axis_counts(hw[1], kernel[1], strides[1], left, right, out_hw[1], include_pad)
    return ch[:, None] * cw[None, :]
