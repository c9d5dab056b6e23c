"""Common corruptions of image batches at severities 1-5, generated on the batch's device.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR: the 14 corruptions of CIFAR-10-C that need no external texture (fog, frost, snow,
spatter and glass blur are left out), with the constants of their ``ImageNet-C/create_c/make_cifar_c.py``
(hendrycks/robustness), re-implemented in torch and vectorised over the batch, so that corrupting a batch
costs a few kernels on the device instead of a Python loop over PIL images.

Where the reference differs from this module:

- outputs stay floating point; CIFAR-10-C rounds every image to 8 bits (and JPEG and pixelate round inside
  Pillow too);
- ``motion_blur`` ran ImageMagick's ``MotionBlurImage`` through Wand; here is the same kernel in torch: a
  one-sided line of ``2 ceil(radius) + 1`` taps ``exp(-i^2 / 2 sigma^2)`` (normalised), tap ``i`` reading the
  pixel ``round(i (cos a, sin a))`` away, edge pixels repeated, one angle ``a ~ U(-45, 45)`` degrees per
  sample;
- ``jpeg_compression`` ran libjpeg through Pillow; here is an approximation of the same pipeline (JFIF
  YCbCr, 4:2:0 chroma by 2x2 means, 8x8 orthonormal DCT as matrix products, the Annex K tables scaled by the
  IJG quality formula, rounding, inverse DCT, triangle-filter chroma upsampling as libjpeg's "fancy"
  upsampling), not bit-exact: libjpeg's integer DCT and 8-bit rounding differ by a few levels in some pixels;
- the random draws come from torch, so no image matches CIFAR-10-C's pixel for pixel; the distributions do.

Other image sizes: constants given in pixels of a 32x32 image (blur radii and sigmas, elastic displacements)
are scaled by ``min(H, W) / 32``; zoom factors, pixelate ratios, noise levels and colour changes are not.
Images with one channel (or any number other than three) are treated as grey levels per channel:
``brightness`` adds ``c`` to the intensity (which is HSV's V of a grey pixel), ``saturate`` is the identity
(there is no colour to saturate) and ``jpeg_compression`` codes each channel as a greyscale JPEG with the
luminance table.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from workers.hessian.trace import device_generator
from workers.robustness import filters

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt"]

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "defocus_blur",
    "motion_blur",
    "zoom_blur",
    "contrast",
    "brightness",
    "saturate",
    "jpeg_compression",
    "pixelate",
    "elastic_transform",
)

# make_cifar_c.py's constants per severity 1..5; lengths and sigmas in pixels of a 32x32 image.
SEVERITIES: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # standard deviation
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # fraction of values set to 0 or 1
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # relative standard deviation
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # disk radius, alias sigma
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # radius, sigma
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # np.arange(1, stop, 0.01) zoom factors
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor around the per-channel mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV's V
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),  # S * c0 + c1
    "jpeg_compression": (80, 65, 58, 50, 40),  # quality
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # side ratio of the low-resolution image
    # (alpha, sigma, affine jitter) as fractions of the side, IMSIZE * (0, 0, 0.08) and so on
    "elastic_transform": (
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
}

Corruption = Callable[[Tensor, object, "torch.Generator | None"], Tensor]


def corrupt(x: Tensor, name: str, severity: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``x`` ``(B, C, H, W)`` in [0, 1] corrupted by ``name`` at ``severity`` (0 returns a copy of ``x``).

    Returns a batch of the same shape, device and dtype, clipped to [0, 1]. Random draws are made on ``x``'s
    device, independently per sample: from ``generator`` itself when it lives there, else from a generator
    there seeded by one draw of it (:func:`workers.hessian.trace.device_generator`); the same seed gives the
    same output on the same kind of device.
    """
    if name not in _CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 0 to 5, got {severity!r}")
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected a floating batch (B, C, H, W), got {tuple(x.shape)} of {x.dtype}")
    if severity == 0:
        return x.clone()
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = _CORRUPTIONS[name](work, SEVERITIES[name][severity - 1], _on_device(generator, x.device))
    return out.clamp(0.0, 1.0).to(x.dtype)


def _on_device(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    if generator is None or generator.device == device:
        return generator
    if generator.device.type == "cpu":
        return device_generator(generator, device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


def _scale(x: Tensor) -> float:
    """Side of ``x`` in units of CIFAR's 32 pixels."""
    return min(x.shape[-2:]) / 32


def _rand(x: Tensor, shape, generator) -> Tensor:
    return torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)


def _randn(x: Tensor, generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


# Noise: one independent draw per value (and so per sample).


def _gaussian_noise(x: Tensor, c: float, generator) -> Tensor:
    return x + c * _randn(x, generator)


def _shot_noise(x: Tensor, c: float, generator) -> Tensor:
    return torch.poisson(x.clamp(min=0) * c, generator=generator) / c


def _impulse_noise(x: Tensor, c: float, generator) -> Tensor:
    """skimage ``random_noise(mode="s&p", amount=c)``: each value is hit with probability ``c``, and a hit
    value becomes 1 or 0 with probability 1/2 each."""
    u = _rand(x, (2, *x.shape), generator)
    return torch.where(u[0] < c, (u[1] < 0.5).to(x.dtype), x)


def _speckle_noise(x: Tensor, c: float, generator) -> Tensor:
    return x + x * c * _randn(x, generator)


# Blurs: linear filters, the same for every sample except motion blur's angle.


def _gaussian_blur(x: Tensor, c: float, generator) -> Tensor:
    """``skimage.filters.gaussian(sigma=c)``: truncated at 4 sigma, edge pixels repeated."""
    h, w = x.shape[-2:]
    taps = filters.gaussian_taps(c * _scale(x), 4.0)
    return filters.apply(x, _filter(h, taps, "edge", x), _filter(w, taps, "edge", x))


def _filter(n: int, taps: tuple[float, ...], mode: str, x: Tensor) -> Tensor:
    return filters.filter_matrix(n, taps, mode, x.dtype, x.device)


@lru_cache(maxsize=32)
def _disk(
    radius: float, alias_blur: float, window: int
) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]:
    """Hendrycks' ``disk``: the pixels within ``radius`` of the centre, normalised, then smoothed by a
    ``(2 window + 1)``-wide Gaussian of ``alias_blur`` (``cv2.GaussianBlur``; window 1 at 32x32). Returned
    as separable terms ``(column taps, row taps)`` from its SVD, so that it applies as matrix products."""
    half = int(math.floor(radius)) + window
    i = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((i[:, None] ** 2 + i[None, :] ** 2) <= radius**2).to(torch.float64)
    disk /= disk.sum()
    t = torch.arange(-window, window + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * alias_blur**2))
    g /= g.sum()
    kernel = F.conv2d(disk[None, None], torch.outer(g, g)[None, None], padding=window)[0, 0]
    u, s, vh = torch.linalg.svd(kernel / kernel.sum())
    keep = s > 1e-12 * s[0]
    return tuple((tuple((u[:, k] * s[k]).tolist()), tuple(vh[k].tolist())) for k in range(len(s)) if keep[k])


def _defocus_blur(x: Tensor, c: tuple[float, float], generator) -> Tensor:
    """``cv2.filter2D`` (``BORDER_REFLECT_101``) with Hendrycks' anti-aliased ``disk``."""
    h, w = x.shape[-2:]
    s = _scale(x)
    out = torch.zeros_like(x)
    for column, row in _disk(c[0] * s, c[1] * s, max(1, round(s))):
        out += filters.apply(x, _filter(h, column, "reflect101", x), _filter(w, row, "reflect101", x))
    return out


def _motion_blur(x: Tensor, c: tuple[float, float], generator) -> Tensor:
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` with ``angle ~ U(-45, 45)`` per sample.

    Taps whose normalised weight is below 1e-7 (beyond ~5.7 sigma) are skipped: they change no value by
    more than float32's rounding.
    """
    b, ch, h, w = x.shape
    s = _scale(x)
    width = 2 * math.ceil(c[0] * s) + 1
    taps = torch.arange(width, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * (c[1] * s) ** 2))
    weights = (weights / weights.sum()).tolist()
    angle = torch.deg2rad(_rand(x, (b,), generator) * 90 - 45)  # (B,)
    cos, sin = angle.cos(), angle.sin()
    flat = x.reshape(b, ch, h * w)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    out = torch.zeros_like(flat)
    for i, weight in enumerate(weights):  # a handful of taps, each a gather over the whole batch
        if weight < 1e-7:
            continue
        dx = torch.ceil(i * cos - 0.5).long()  # (B,)
        dy = torch.ceil(i * sin - 0.5).long()
        r = (rows[None] + dy[:, None]).clamp(0, h - 1)  # (B, H)
        q = (cols[None] + dx[:, None]).clamp(0, w - 1)  # (B, W)
        index = (r[:, :, None] * w + q[:, None, :]).view(b, 1, h * w).expand(b, ch, h * w)
        out += weight * flat.gather(2, index)
    return out.view(b, ch, h, w)


def _zoom_blur(x: Tensor, stop: float, generator) -> Tensor:
    """The mean of ``x`` and its ``clipped_zoom`` by each factor of ``np.arange(1, stop, 0.01)``; factors
    whose crop and zoomed sizes coincide give the same image and are computed once."""
    h, w = x.shape[-2:]
    factors = np.arange(1, stop, 0.01).tolist()
    keys = Counter((filters.clipped_zoom_key(h, z), filters.clipped_zoom_key(w, z)) for z in factors)
    out = x.clone()
    for (kh, kw), count in keys.items():
        if kh == (h, h, 0) and kw == (w, w, 0):  # no zoom at all
            out += count * x
            continue
        zh = filters.clipped_zoom_matrix(h, kh, x.dtype, x.device)
        zw = filters.clipped_zoom_matrix(w, kw, x.dtype, x.device)
        out += count * filters.apply(x, zh, zw)
    return out / (len(factors) + 1)


# Digital: pointwise colour changes, compression, resampling, warping.


def _contrast(x: Tensor, c: float, generator) -> Tensor:
    mean = x.mean(dim=(-2, -1), keepdim=True)  # (B, C, 1, 1)
    return (x - mean) * c + mean


def _brightness(x: Tensor, c: float, generator) -> Tensor:
    """HSV's ``V + c`` (clipped), computed without the round trip: with hue and saturation fixed, every
    channel is proportional to ``V``; a black pixel (``V = 0``, grey) becomes grey ``c``."""
    if x.shape[1] != 3:
        return x + c
    v = x.amax(1, keepdim=True)  # (B, 1, H, W)
    v_new = (v + c).clamp(max=1)
    return torch.where(v > 0, x * (v_new / v.clamp(min=torch.finfo(x.dtype).tiny)), v_new)


_GREY_HUE = (0.0, 1.0, 1.0)  # skimage's hue 0 (red) for grey pixels: (v, t, p) with f = 0


def _saturate(x: Tensor, c: tuple[float, float], generator) -> Tensor:
    """HSV's ``S c0 + c1`` (clipped), computed without the round trip: with hue and value fixed, a channel
    is ``V (1 - S k)`` where ``k = (V - channel) / (V - min)``; grey pixels have hue 0 (red) in
    ``skimage.color.rgb2hsv``, so ``c1 > 0`` tints them red as it did in CIFAR-10-C."""
    if x.shape[1] != 3:
        return x.clone()
    v = x.amax(1, keepdim=True)  # (B, 1, H, W)
    delta = v - x.amin(1, keepdim=True)
    grey = delta == 0
    s = torch.where(grey, torch.zeros_like(v), delta / torch.where(grey, torch.ones_like(v), v))
    s_new = (s * c[0] + c[1]).clamp(0, 1)
    k_grey = torch.tensor(_GREY_HUE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.where(grey, k_grey, (v - x) / torch.where(grey, torch.ones_like(delta), delta))
    return v * (1 - s_new * k)


_RGB_TO_YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCC_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def _jpeg_planes(planes: Tensor, quality: int, chroma: bool) -> Tensor:
    """Code and decode level-shifted planes ``(B, K, H, W)`` (H, W multiples of 8), all blocks at once."""
    h, w = planes.shape[-2:]
    dh = filters.block_dct_matrix(h, planes.dtype, planes.device)
    dw = filters.block_dct_matrix(w, planes.dtype, planes.device)
    q = filters.jpeg_quant_table(quality, chroma, h, w, planes.dtype, planes.device)
    coef = filters.apply(planes, dh, dw) / q
    coef = torch.sign(coef) * torch.floor(coef.abs() + 0.5) * q  # libjpeg rounds half away from zero
    return filters.apply(coef, dh.T, dw.T)


def _jpeg_compression(x: Tensor, quality: int, generator) -> Tensor:
    b, ch, h, w = x.shape
    colour = ch == 3
    unit = 16 if colour else 8  # whole MCUs (4:2:0 when in colour), edges repeated as libjpeg does
    rows = filters.border_index(h, 0, -h % unit, "edge").to(x.device)
    cols = filters.border_index(w, 0, -w % unit, "edge").to(x.device)
    v = x.index_select(-2, rows).index_select(-1, cols) * 255
    if not colour:
        out = _jpeg_planes(v - 128, quality, chroma=False) + 128
    else:
        m = torch.tensor(_RGB_TO_YCC, dtype=x.dtype, device=x.device)
        ycc = torch.einsum("kc,bchw->bkhw", m, v)  # chroma centred on 0, luma on 128
        luma = _jpeg_planes(ycc[:, :1] - 128, quality, chroma=False)
        chroma = _jpeg_planes(F.avg_pool2d(ycc[:, 1:], 2), quality, chroma=True)
        chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)  # fancy
        m_inv = torch.tensor(_YCC_TO_RGB, dtype=x.dtype, device=x.device)
        out = torch.einsum("ck,bkhw->bchw", m_inv, torch.cat((luma, chroma), 1)) + 128
    return out[..., :h, :w] / 255


def _pixelate(x: Tensor, c: float, generator) -> Tensor:
    """Pillow's ``resize((int(W c), int(H c)), BOX)`` and back to ``(W, H)`` with ``BOX``."""
    h, w = x.shape[-2:]
    rows = filters.box_resize_matrix(int(h * c), h, x.dtype, x.device)
    rows = rows @ filters.box_resize_matrix(h, int(h * c), x.dtype, x.device)
    cols = filters.box_resize_matrix(int(w * c), w, x.dtype, x.device)
    cols = cols @ filters.box_resize_matrix(w, int(w * c), x.dtype, x.device)
    return filters.apply(x, rows, cols)


def _affine_warp(x: Tensor, jitter: float, generator) -> Tensor:
    """``cv2.warpAffine`` (bilinear, ``BORDER_REFLECT_101``) by the affine map that moves three points
    around the centre by ``U(-jitter, jitter)`` each, per sample."""
    b, _, h, w = x.shape
    cx, cy, sq = w // 2, h // 2, min(h, w) // 3
    src = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], dtype=torch.float64)
    solve = torch.linalg.inv(torch.cat((src, torch.ones(3, 1, dtype=torch.float64)), 1))  # (3, 3)
    src, solve = src.to(x.device, x.dtype), solve.to(x.device, x.dtype)  # points as (x, y)
    dst = src + (_rand(x, (b, 3, 2), generator) * 2 - 1) * jitter  # (B, 3, 2)
    mt = solve @ dst  # (B, 3, 2): [A^T; t] with dst = A src + t
    a, t = mt[:, :2].transpose(1, 2), mt[:, 2]  # (B, 2, 2), (B, 2)
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    inv = (
        torch.stack((a[:, 1, 1], -a[:, 0, 1], -a[:, 1, 0], a[:, 0, 0]), 1).view(b, 2, 2) / det[:, None, None]
    )
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype),
        torch.arange(w, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    pix = torch.stack((xs, ys), -1).view(1, h * w, 2) - t[:, None]  # (B, HW, 2)
    source = (pix @ inv.transpose(1, 2)).view(b, h, w, 2)  # pixel coordinates (x, y) read
    grid = source * torch.tensor([2 / (w - 1), 2 / (h - 1)], dtype=x.dtype, device=x.device) - 1
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def _displace(x: Tensor, alpha: float, sigma: float, generator) -> Tensor:
    """``map_coordinates(order=1, mode="reflect")`` at each pixel moved by ``alpha`` times uniform noise
    on [-1, 1] smoothed by a Gaussian of ``sigma`` (truncated at 3 sigma, mirrored borders), per sample."""
    b, _, h, w = x.shape
    noise = _rand(x, (b, 2, h, w), generator) * 2 - 1
    taps = filters.gaussian_taps(sigma, 3.0)
    field = filters.apply(noise, _filter(h, taps, "symmetric", x), _filter(w, taps, "symmetric", x))
    dy, dx = (field * alpha).unbind(1)  # (B, H, W) each
    ys = torch.arange(h, device=x.device, dtype=x.dtype)[None, :, None] + dy
    xs = torch.arange(w, device=x.device, dtype=x.dtype)[None, None, :] + dx
    grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), -1)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _elastic_transform(x: Tensor, c: tuple[float, float, float], generator) -> Tensor:
    """Hendrycks' CIFAR elastic transform: a random affine warp, then a smooth random displacement field
    (Simard et al. 2003), with ``(alpha, sigma, jitter) = c * min(H, W)``."""
    side = min(x.shape[-2:])
    alpha, sigma, jitter = (f * side for f in c)
    out = _affine_warp(x, jitter, generator)
    if alpha > 0 and sigma > 0:
        out = _displace(out, alpha, sigma, generator)
    return out


_CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": _gaussian_blur,
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "saturate": _saturate,
    "jpeg_compression": _jpeg_compression,
    "pixelate": _pixelate,
    "elastic_transform": _elastic_transform,
}
