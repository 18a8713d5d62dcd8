"""Output quality against a reference: the upright source, decoded at full resolution and
resampled in float with a Lanczos-3 kernel (scaled to the reduction, alpha premultiplied),
flattened on white like the outputs. PSNR over RGB, SSIM over luma.

Independent of both Pillow's and libvips' resamplers, so neither gets a home advantage.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

Size = tuple[int, int]


def _lanczos3(x: np.ndarray) -> np.ndarray:
    out = np.sinc(x) * np.sinc(x / 3)
    return np.where(np.abs(x) < 3, out, 0.0)


def _weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Tap indices and normalised weights for resampling ``n_in`` samples to ``n_out``."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = 3.0 * stretch
    centres = (np.arange(n_out) + 0.5) * scale
    left = np.floor(centres - support).astype(np.int64)
    taps = int(np.ceil(2 * support)) + 2
    index = left[:, None] + np.arange(taps)[None, :]
    weight = _lanczos3((index + 0.5 - centres[:, None]) / stretch)
    weight[(index < 0) | (index >= n_in)] = 0.0  # truncated at the edges, then renormalised
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, n_in - 1), weight.astype(np.float32)


def _resample_axis(pixels: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    index, weight = _weights(pixels.shape[axis], n_out)
    moved = np.moveaxis(pixels, axis, 0)
    out = np.zeros((n_out, *moved.shape[1:]), np.float32)
    for k in range(index.shape[1]):
        w = weight[:, k].reshape((n_out,) + (1,) * (moved.ndim - 1))
        out += w * moved[index[:, k]]
    return np.moveaxis(out, 0, axis)


def lanczos(pixels: np.ndarray, size: Size) -> np.ndarray:
    """``pixels`` (H x W x C float) resampled to ``size`` (W, H)."""
    return _resample_axis(_resample_axis(pixels, size[1], 0), size[0], 1)


@functools.lru_cache(maxsize=2)
def upright_source(path: Path) -> np.ndarray:
    """The source, upright, as premultiplied float RGBA (0-255)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im) if im.format == "JPEG" else im
        rgba = np.asarray(im.convert("RGBA"), np.float32)
    rgba[..., :3] *= rgba[..., 3:] / 255.0
    return rgba


@functools.lru_cache(maxsize=16)
def reference(path: Path, size: Size) -> np.ndarray:
    """The reference output: upright source → Lanczos-3 → flattened on white (RGB float)."""
    rgba = lanczos(upright_source(path), size)
    alpha = np.clip(rgba[..., 3:], 0, 255) / 255.0
    return np.clip(rgba[..., :3] + (1 - alpha) * 255.0, 0, 255)


def flattened(path: Path) -> np.ndarray:
    """An output file as RGB float, transparent parts flattened on white."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"), np.float32)
    alpha = rgba[..., 3:] / 255.0
    return rgba[..., :3] * alpha + (1 - alpha) * 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _blur(y: np.ndarray) -> np.ndarray:
    """Gaussian window (sigma 1.5, 11 taps), valid region only: the SSIM convention."""
    taps = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    taps /= taps.sum()
    rows = sum(t * y[i : y.shape[0] - 10 + i] for i, t in enumerate(taps))
    return sum(t * rows[:, i : rows.shape[1] - 10 + i] for i, t in enumerate(taps))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    x, y = a @ luma, b @ luma
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x), _blur(y)
    vx, vy, cov = _blur(x * x) - mx * mx, _blur(y * y) - my * my, _blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())


def measure(source: Path, output: Path) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``output`` against the reference made at the output's size."""
    got = flattened(output)
    want = reference(source, (got.shape[1], got.shape[0]))
    return psnr(got, want), ssim(got, want)
