"""Linear operators on the image axes, as ``(n, n)`` matrices applied to whole batches.

A separable filter, a resize there and back, a zoom or an 8x8 block DCT acts on each image ``X (H, W)`` as
``A X B^T``: two matrix products over the whole batch ``(B, C, H, W)``, which run at matmul speed on any
device and need no padding or per-sample loop. The matrices are built once per size and cached on each
device; boundary handling is folded into them.

Boundary modes follow the libraries Hendrycks & Dietterich (2019) called, so that the corruptions agree with
theirs at the borders: ``"edge"`` repeats the last pixel (scipy ``nearest``, ImageMagick's default virtual
pixels), ``"reflect101"`` mirrors about the last pixel (OpenCV's default ``BORDER_REFLECT_101``) and
``"symmetric"`` mirrors about the border, repeating the last pixel (scipy ``reflect``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

__all__ = [
    "JPEG_CHROMINANCE",
    "JPEG_LUMINANCE",
    "apply",
    "block_dct_matrix",
    "border_index",
    "box_resize_matrix",
    "clipped_zoom_key",
    "clipped_zoom_matrix",
    "filter_matrix",
    "gaussian_taps",
    "jpeg_quant_table",
]

# ITU-T T.81 (JPEG) Annex K, tables K.1 and K.2, row-major over (v, u).
JPEG_LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
JPEG_CHROMINANCE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)


def apply(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``rows @ X @ cols^T`` for every image ``X`` of ``x`` ``(B, C, H, W)``; ``rows (H', H)``,
    ``cols (W', W)``."""
    return rows @ x @ cols.T


def border_index(n: int, before: int, after: int, mode: str) -> Tensor:
    """Source indices ``(before + n + after,)`` of an axis of length ``n`` padded in ``mode``."""
    i = torch.arange(-before, n + after)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "reflect101":
        period = max(2 * n - 2, 1)
        i = i.remainder(period)
        return torch.where(i >= n, period - i, i)
    if mode == "symmetric":
        i = i.remainder(2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    raise ValueError(f"unknown boundary mode {mode!r}; expected 'edge', 'reflect101' or 'symmetric'")


@lru_cache(maxsize=64)
def gaussian_taps(sigma: float, truncate: float) -> tuple[float, ...]:
    """Normalised Gaussian taps ``(2r + 1)`` with ``r = int(truncate * sigma + 0.5)``, as
    ``scipy.ndimage.gaussian_filter1d`` builds them (and so ``skimage.filters.gaussian``)."""
    radius = int(truncate * sigma + 0.5)
    i = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (i / sigma) ** 2)
    return tuple((k / k.sum()).tolist())


@lru_cache(maxsize=256)
def filter_matrix(n: int, taps: tuple[float, ...], mode: str, dtype: torch.dtype, device) -> Tensor:
    """``(n, n)`` matrix of the correlation with ``taps`` (odd length, centred) along an axis of length
    ``n``, with the boundary ``mode``."""
    r = len(taps) // 2
    source = border_index(n, r, r, mode)
    m = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    for k, tap in enumerate(taps):  # output i reads padded i + k
        m.index_put_((rows, source[rows + k]), torch.tensor(tap, dtype=torch.float64), accumulate=True)
    return m.to(device=device, dtype=dtype)


@lru_cache(maxsize=64)
def _box_resize(n_in: int, n_out: int) -> Tensor:
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for j in range(n_out):  # Pillow's precompute_coeffs (Resample.c) with its box filter
        center = (j + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        for i in range(lo, hi):
            t = (i - center + 0.5) / filterscale
            m[j, i] = 1.0 if -0.5 < t <= 0.5 else 0.0
        m[j] /= m[j].sum()
    return m


@lru_cache(maxsize=64)
def box_resize_matrix(n_in: int, n_out: int, dtype: torch.dtype, device) -> Tensor:
    """``(n_out, n_in)`` matrix of Pillow's ``Image.BOX`` resize along one axis (before Pillow's 8-bit
    rounding): each source pixel counts, with equal weight, in the one output pixel whose footprint holds
    its centre; enlarging is nearest neighbour."""
    return _box_resize(n_in, n_out).to(device=device, dtype=dtype)


def clipped_zoom_key(n: int, zoom: float) -> tuple[int, int, int]:
    """``(crop, zoomed, trim)`` lengths of Hendrycks' ``clipped_zoom``: the central ``ceil(n / zoom)``
    pixels, enlarged to ``round(crop * zoom)`` by ``scipy.ndimage.zoom``, of which the central ``n`` stay;
    equal keys give equal matrices."""
    crop = math.ceil(n / zoom)
    zoomed = int(round(crop * zoom))
    return crop, zoomed, (zoomed - n) // 2


@lru_cache(maxsize=256)
def clipped_zoom_matrix(n: int, key: tuple[int, int, int], dtype: torch.dtype, device) -> Tensor:
    """``(n, n)`` matrix of ``clipped_zoom`` along one axis for ``key`` (:func:`clipped_zoom_key`), with
    ``scipy.ndimage.zoom(order=1)``'s mapping of the end pixels onto each other."""
    crop, zoomed, trim = key
    top = (n - crop) // 2
    step = (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0
    m = torch.zeros(n, n, dtype=torch.float64)
    for k in range(n):
        src = (k + trim) * step
        i0 = min(int(math.floor(src)), crop - 1)
        frac = src - i0
        m[k, top + i0] += 1.0 - frac
        if frac > 0:
            m[k, top + i0 + 1] += frac
    return m.to(device=device, dtype=dtype)


@lru_cache(maxsize=16)
def block_dct_matrix(n: int, dtype: torch.dtype, device) -> Tensor:
    """``(n, n)`` block-diagonal matrix of 8x8 orthonormal DCT-II blocks (``n`` a multiple of 8): ``A X A^T``
    holds at ``[8i + u, 8j + v]`` JPEG's forward DCT (T.81 A.3.3) of block ``(i, j)`` of ``X``."""
    k = torch.arange(8, dtype=torch.float64)[:, None]
    i = torch.arange(8, dtype=torch.float64)[None, :]
    d = torch.cos((2 * i + 1) * k * math.pi / 16) / 2
    d[0] /= math.sqrt(2)
    return torch.block_diag(*[d] * (n // 8)).to(device=device, dtype=dtype)


@lru_cache(maxsize=64)
def jpeg_quant_table(quality: int, chroma: bool, h: int, w: int, dtype: torch.dtype, device) -> Tensor:
    """Annex K table scaled for ``quality`` by the IJG formula (libjpeg ``jpeg_quality_scaling``), entries
    clamped to 1..255 as with ``force_baseline`` (Pillow's setting), tiled over ``(h, w)`` as the
    coefficients of :func:`block_dct_matrix` lie."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor(JPEG_CHROMINANCE if chroma else JPEG_LUMINANCE, dtype=torch.int64)
    table = ((base * scale + 50) // 100).clamp(1, 255)
    return table.repeat(h // 8, w // 8).to(device=device, dtype=dtype)
