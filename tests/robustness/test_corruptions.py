"""Each corruption's defining property, and brute-force references where a library computes the same thing
(scipy.ndimage for the blurs, zoom and warps; Pillow for JPEG and pixelate; colorsys for HSV)."""

from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from PIL import Image

from workers.robustness.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    _affine_warp,
    _displace,
    _elastic_transform,
    corrupt,
)

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
RANDOM = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "motion_blur",
    "elastic_transform",
)
BLURS = ("gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-looking test images: bicubic upsampling of 8x8 noise, quantised to 8 bits, ``(n, C, S, S)``."""
    low = torch.rand(n, channels, 8, 8, generator=seeded(seed))
    x = F.interpolate(low, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return (x * 255).round() / 255


def grey(n: int, value: float = 0.5, size: int = 32) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def high_frequency_energy(x: torch.Tensor) -> float:
    return float(x.diff(dim=-1).pow(2).mean() + x.diff(dim=-2).pow(2).mean())


# --- API -------------------------------------------------------------------------------------------------


def test_corruptions_are_the_fourteen_cifar_c_names_in_order():
    assert CORRUPTIONS[:4] == ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
    assert CORRUPTIONS[-2:] == ("pixelate", "elastic_transform")
    assert len(CORRUPTIONS) == 14 and set(SEVERITIES) == set(CORRUPTIONS)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_the_identity(name):
    x = smooth_images(2)
    out = corrupt(x, name, 0)
    assert torch.equal(out, x) and out is not x


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="fog.*gaussian_noise.*elastic_transform"):
        corrupt(grey(1), "fog", 1)


@pytest.mark.parametrize("severity", [-1, 6, 2.0, True])
def test_severity_outside_0_to_5_is_refused(severity):
    with pytest.raises(ValueError, match="severity"):
        corrupt(grey(1), "contrast", severity)


def test_non_batch_input_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        corrupt(torch.rand(3, 32, 32), "contrast", 1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (3, 1, 8, 8), (2, 3, 30, 27), (2, 3, 64, 64)])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_device_dtype_and_range_are_kept(name, shape, device):
    x = torch.rand(shape, generator=seeded()).to(device)
    for severity in (1, 5):
        out = corrupt(x, name, severity, generator=seeded())
        assert out.shape == x.shape and out.device == x.device and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_kept(dtype):
    x = smooth_images(2).to(dtype)
    for name in ("shot_noise", "jpeg_compression", "elastic_transform"):
        assert corrupt(x, name, 3, generator=seeded()).dtype == dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_seed_same_output_and_other_seed_other_output_when_random(name, device):
    x = smooth_images(4).to(device)
    a = corrupt(x, name, 3, generator=seeded(1))
    assert torch.equal(a, corrupt(x, name, 3, generator=seeded(1)))
    assert torch.equal(a, corrupt(x, name, 3, generator=seeded(2))) == (name not in RANDOM)


@pytest.mark.parametrize("name", RANDOM)
def test_equal_images_in_a_batch_are_corrupted_independently(name):
    x = smooth_images(1).expand(2, -1, -1, -1).contiguous()
    out = corrupt(x, name, 5, generator=seeded())
    assert not torch.equal(out[0], out[1])


# --- noise -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", range(1, 6))
def test_gaussian_noise_has_standard_deviation_c(severity):
    x = grey(64)
    noise = corrupt(x, "gaussian_noise", severity, generator=seeded()) - x
    c = SEVERITIES["gaussian_noise"][severity - 1]
    assert abs(noise.mean()) < 3 * c / noise.numel() ** 0.5
    assert noise.std() / c == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize("severity", range(1, 6))
def test_shot_noise_is_poisson_with_variance_x_over_c(severity):
    x = torch.cat((grey(32, 0.25), grey(32, 0.5)))
    out = corrupt(x, "shot_noise", severity, generator=seeded())
    c = SEVERITIES["shot_noise"][severity - 1]
    for half, level in ((out[:32], 0.25), (out[32:], 0.5)):
        assert half.mean() == pytest.approx(level, abs=0.002)
        assert half.var() * c / level == pytest.approx(1, abs=0.03)
        assert torch.allclose(half * c, (half * c).round(), atol=1e-3)  # counts of photons


@pytest.mark.parametrize("severity", range(1, 6))
def test_impulse_noise_sets_a_fraction_c_of_values_to_0_or_1_evenly(severity):
    x = grey(64)
    out = corrupt(x, "impulse_noise", severity, generator=seeded())
    c = SEVERITIES["impulse_noise"][severity - 1]
    hit = out != x
    assert hit.float().mean() / c == pytest.approx(1, abs=0.1)
    assert set(out[hit].unique().tolist()) == {0.0, 1.0}
    assert (out[hit] == 1).float().mean() == pytest.approx(0.5, abs=0.06)


@pytest.mark.parametrize("severity", range(1, 6))
def test_speckle_noise_has_standard_deviation_proportional_to_x(severity):
    x = torch.cat((grey(32, 0.25), grey(32, 0.5)))
    noise = corrupt(x, "speckle_noise", severity, generator=seeded()) - x
    c = SEVERITIES["speckle_noise"][severity - 1]
    assert noise[:32].std() / (0.25 * c) == pytest.approx(1, abs=0.02)
    assert noise[32:].std() / (0.5 * c) == pytest.approx(1, abs=0.02)


# --- blurs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", range(1, 6))
@pytest.mark.parametrize("name", BLURS[:3])
def test_blurs_preserve_the_mean_of_an_image_flat_near_its_borders(name, severity):
    x = grey(4)
    x[:, :, 10:22, 10:22] = torch.rand(4, 3, 12, 12, generator=seeded())  # flat margin wider than any kernel
    out = corrupt(x, name, severity, generator=seeded())
    assert torch.allclose(out.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=1e-6)
    assert high_frequency_energy(out) < high_frequency_energy(x)


@pytest.mark.parametrize("name", BLURS)
def test_blurs_keep_a_constant_image_and_smooth_more_with_severity(name):
    assert torch.allclose(corrupt(grey(2, 0.3), name, 5, generator=seeded()), grey(2, 0.3), atol=1e-6)
    x = smooth_images(16)
    energy = [high_frequency_energy(corrupt(x, name, s, generator=seeded())) for s in range(6)]
    assert all(later <= earlier * (1 + 1e-6) for earlier, later in zip(energy, energy[1:], strict=False))
    assert energy[5] < 0.8 * energy[0]


@pytest.mark.parametrize("severity", range(1, 6))
def test_gaussian_blur_matches_scipy_gaussian_filter(severity):
    x = smooth_images(2).double()
    sigma = SEVERITIES["gaussian_blur"][severity - 1]
    reference = ndi.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
    assert np.abs(corrupt(x, "gaussian_blur", severity).numpy() - reference).max() < 1e-12


def reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    """Hendrycks' ``disk`` with ``cv2.GaussianBlur(ksize=(3, 3))`` written out."""
    grid = np.arange(-8, 8 + 1)
    xs, ys = np.meshgrid(grid, grid)
    disk = (xs**2 + ys**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    return ndi.correlate(disk, np.outer(g, g), mode="mirror")


@pytest.mark.parametrize("severity", range(1, 6))
def test_defocus_blur_matches_the_reference_disk_with_opencv_borders(severity):
    x = smooth_images(1).double()
    kernel = reference_disk(*SEVERITIES["defocus_blur"][severity - 1])
    reference = np.stack([ndi.correlate(channel, kernel, mode="mirror") for channel in x[0].numpy()])
    assert np.abs(corrupt(x, "defocus_blur", severity)[0].numpy() - reference).max() < 1e-12


@pytest.mark.parametrize("severity", range(1, 6))
def test_motion_blur_of_a_point_is_a_half_gaussian_trail_within_45_degrees(severity):
    x = torch.zeros(8, 1, 32, 32, dtype=torch.float64)
    x[:, :, 16, 16] = 1.0
    out = corrupt(x, "motion_blur", severity, generator=seeded())
    radius, sigma = SEVERITIES["motion_blur"][severity - 1]
    weights = np.exp(-(np.arange(2 * radius + 1) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    assert torch.allclose(out.sum(dim=(-2, -1)), torch.ones(8, 1, dtype=torch.float64), atol=1e-6)
    assert (out[:, 0, 16, 16] >= weights[0] - 1e-9).all()  # tap 0 reads the pixel itself
    rows, cols = torch.nonzero(out[:, 0] > 1e-7, as_tuple=True)[1:]
    dx, dy = cols - 16, rows - 16  # the trail runs opposite to the reading direction
    assert (dx <= 0).all() and (dy.abs() <= dx.abs() + 1).all() and (-dx).max() <= 2 * radius
    assert len({tuple(np.round(image.numpy(), 9).ravel()) for image in out}) > 1  # one angle per sample


def reference_zoom_blur(image: np.ndarray, stop: float) -> np.ndarray:
    """Hendrycks' ``zoom_blur`` on one ``(H, W, C)`` image, with ``clipped_zoom`` written out."""

    def clipped_zoom(img, zoom):
        h = img.shape[0]
        ch = int(np.ceil(h / zoom))
        top = (h - ch) // 2
        img = ndi.zoom(img[top : top + ch, top : top + ch], (zoom, zoom, 1), order=1)
        trim = (img.shape[0] - h) // 2
        return img[trim : trim + h, trim : trim + h]

    factors = np.arange(1, stop, 0.01)
    return (image + sum(clipped_zoom(image, z) for z in factors)) / (len(factors) + 1)


@pytest.mark.parametrize("severity", range(1, 6))
def test_zoom_blur_matches_scipy_zoom(severity):
    x = smooth_images(1).double()
    reference = reference_zoom_blur(x[0].permute(1, 2, 0).numpy(), SEVERITIES["zoom_blur"][severity - 1])
    out = corrupt(x, "zoom_blur", severity)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - reference).max() < 1e-12


# --- digital ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", range(1, 6))
def test_contrast_scales_around_the_mean_of_each_image_and_channel(severity):
    x = smooth_images(4)
    out = corrupt(x, "contrast", severity)
    c = SEVERITIES["contrast"][severity - 1]
    mean = x.mean(dim=(-2, -1), keepdim=True)
    assert torch.allclose(out - mean, c * (x - mean), atol=1e-6)


def colorsys_reference(x: torch.Tensor, change) -> torch.Tensor:
    """Per-pixel HSV round trip with the standard library, ``change(h, s, v) -> (h, s, v)``."""
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    out = [colorsys.hsv_to_rgb(*change(*colorsys.rgb_to_hsv(*p))) for p in pixels]
    return torch.tensor(out, dtype=x.dtype).view(x.shape[0], *x.shape[2:], 3).permute(0, 3, 1, 2)


def hsv_test_images() -> torch.Tensor:
    x = torch.rand(2, 3, 6, 6, generator=seeded(), dtype=torch.float64)
    x[:, :, 0, :2] = 0.0  # black
    x[:, :, 1, :2] = 0.4  # grey
    x[:, :, 2, :2] = 1.0  # white
    x[:, 0, 3, :2] = x[:, 1, 3, :2]  # two channels tied for the maximum
    return x


@pytest.mark.parametrize("severity", range(1, 6))
def test_brightness_adds_c_to_the_hsv_value(severity):
    x = hsv_test_images()
    c = SEVERITIES["brightness"][severity - 1]
    out = corrupt(x, "brightness", severity)
    assert torch.allclose(out, colorsys_reference(x, lambda h, s, v: (h, s, min(v + c, 1.0))), atol=1e-12)
    assert torch.allclose(out.amax(1), (x.amax(1) + c).clamp(max=1), atol=1e-12)


@pytest.mark.parametrize("severity", range(1, 6))
def test_saturate_scales_the_hsv_saturation(severity):
    x = hsv_test_images()
    c0, c1 = SEVERITIES["saturate"][severity - 1]
    reference = colorsys_reference(x, lambda h, s, v: (h, min(max(s * c0 + c1, 0.0), 1.0), v))
    assert torch.allclose(corrupt(x, "saturate", severity), reference, atol=1e-12)


@pytest.mark.parametrize("severity", range(1, 6))
def test_on_one_channel_brightness_adds_c_and_saturate_is_the_identity(severity):
    x = torch.rand(4, 1, 8, 8, generator=seeded())
    c = SEVERITIES["brightness"][severity - 1]
    assert torch.allclose(corrupt(x, "brightness", severity), (x + c).clamp(max=1))
    assert torch.equal(corrupt(x, "saturate", severity), x)


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_saturate_without_offset_keeps_grey_rgb_images(severity):
    x = smooth_images(2, channels=1).expand(-1, 3, -1, -1)
    assert torch.allclose(corrupt(x, "saturate", severity), x)


def pillow_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    mode = "RGB" if x.shape[1] == 3 else "L"
    out = []
    for image in x:
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array if mode == "RGB" else array[..., 0], mode).save(buffer, "JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer), dtype=np.float32).reshape(*array.shape[:2], -1) / 255
        out.append(torch.from_numpy(decoded).permute(2, 0, 1))
    return torch.stack(out)


@pytest.mark.parametrize("channels, tolerance", [(3, 2.5 / 255), (1, 0.6 / 255)])
def test_jpeg_is_close_to_pillow_and_loses_more_as_quality_drops(channels, tolerance):
    x = smooth_images(6, channels=channels)
    ours, theirs = [], []
    for severity, quality in enumerate(SEVERITIES["jpeg_compression"], start=1):
        out, reference = corrupt(x, "jpeg_compression", severity), pillow_jpeg(x, quality)
        assert (out - reference).abs().mean() < tolerance
        ours.append(float((out - x).pow(2).mean()))
        theirs.append(float((reference - x).pow(2).mean()))
    assert np.allclose(ours, theirs, rtol=0.1)
    assert ours == sorted(ours) and ours[-1] > 1.5 * ours[0]


def test_jpeg_keeps_a_flat_image_flat_up_to_the_dc_step():
    x = grey(2, 100 / 255)
    out = corrupt(x, "jpeg_compression", 5)  # quality 40: DC step 20, so 20 / 8 / 2 levels at most
    assert out.std() < 1e-6 and (out - x).abs().max() <= 1.25 / 255 + 1e-6


@pytest.mark.parametrize("severity", range(1, 6))
def test_pixelate_matches_pillow_box_resizes(severity):
    x = torch.randint(0, 256, (2, 3, 32, 32), generator=seeded()) / 255
    c = SEVERITIES["pixelate"][severity - 1]
    reference = []
    for image in x:
        pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        pil = pil.resize((int(32 * c), int(32 * c)), Image.BOX).resize((32, 32), Image.BOX)
        reference.append(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1))
    out = corrupt(x, "pixelate", severity)
    assert (out - torch.stack(reference)).abs().max() <= 1 / 255 + 1e-6  # Pillow rounds to 8 bits
    assert len(out[0, 0].unique(dim=0)) <= int(32 * c) and out[0, 0].unique(dim=1).shape[1] <= int(32 * c)


def test_elastic_is_the_identity_without_displacement():
    x = smooth_images(2)
    assert torch.allclose(_elastic_transform(x, (0.0, 0.0, 0.0), seeded()), x, atol=1e-5)


@pytest.mark.parametrize("severity", range(1, 6))
def test_elastic_moves_pixels_but_keeps_the_value_histogram(severity):
    x = smooth_images(16)
    out = corrupt(x, "elastic_transform", severity, generator=seeded())
    q = torch.linspace(0.05, 0.95, 19)
    shift = torch.quantile(out.flatten(1), q, dim=1) - torch.quantile(x.flatten(1), q, dim=1)
    assert shift.abs().max() < 0.08
    assert (out - x).abs().mean() > 0.05


def test_affine_warp_matches_scipy_affine_transform_with_reflected_borders():
    x = smooth_images(2).double()
    jitter = 0.08 * 32
    out = _affine_warp(x, jitter, seeded(3))
    moves = (torch.rand(2, 3, 2, generator=seeded(3), dtype=torch.float64) * 2 - 1) * jitter
    src = np.array([[26, 26], [26, 6], [6, 6]], dtype=np.float64)  # (x, y) around the centre 16 +- 10
    for image, result, move in zip(x.numpy(), out.numpy(), moves.numpy(), strict=True):
        m = np.linalg.solve(np.c_[src, np.ones(3)], src + move).T  # dst = M [x, y, 1]
        inverse = np.linalg.inv(np.r_[m, [[0, 0, 1]]])  # dst -> src, on (x, y)
        rowcol = inverse[[1, 0]][:, [1, 0, 2]]  # the same on (row, col)
        reference = np.stack(
            [ndi.affine_transform(ch, rowcol[:, :2], rowcol[:, 2], order=1, mode="mirror") for ch in image]
        )
        assert np.abs(result - reference).max() < 1e-9


def test_displacement_matches_scipy_map_coordinates_of_the_smoothed_field():
    x = smooth_images(2).double()
    alpha, sigma = 3.2, 1.92
    out = _displace(x, alpha, sigma, seeded(4))
    noise = torch.rand(2, 2, 32, 32, generator=seeded(4), dtype=torch.float64).numpy() * 2 - 1
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    for image, result, field in zip(x.numpy(), out.numpy(), noise, strict=True):
        dy, dx = (ndi.gaussian_filter(f, sigma, mode="reflect", truncate=3) * alpha for f in field)
        reference = np.stack(
            [ndi.map_coordinates(ch, (rows + dy, cols + dx), order=1, mode="reflect") for ch in image]
        )
        assert np.abs(result - reference).max() < 1e-9
