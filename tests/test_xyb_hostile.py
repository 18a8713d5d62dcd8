"""imaging.xyb's cheaper linear() and halve() must give bitwise what the plain formulas give
(the score's agreement with the judge and the lean bound were measured on those): every
mode a caller may pass, every size down to 1 px, odd sides, pictures that are crops or
transposes of others."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from amberpicd.imaging import xyb


def _plain_linear(im: Image.Image) -> np.ndarray:
    """The interleaved array made planar, looked up sample by sample."""
    rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    return xyb.LUT[np.moveaxis(rgb, 2, 0)]


def _plain_halve(a: np.ndarray) -> np.ndarray:
    """The 2x2 box average with clamped coordinates, as libjxl, in float32 sums of pairs."""
    _, h, w = a.shape
    p = np.pad(a, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    rows = p[:, 0::2] + p[:, 1::2]
    return ((rows[:, :, 0::2] + rows[:, :, 1::2]) * np.float32(0.25)).astype(np.float32)


def _rgb(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "size", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (1, 37), (37, 1), (2, 999), (999, 3)]
)
def test_halve_and_linear_on_small_and_thin_pictures(size):
    im = _rgb(np.random.default_rng(sum(size)), *size)
    lin = xyb.linear(im)
    assert lin.shape == (3, size[1], size[0]) and np.array_equal(lin, _plain_linear(im))
    for _ in range(4):
        got, want = xyb.halve(lin), _plain_halve(lin)
        assert got.dtype == np.float32 and np.array_equal(got, want), lin.shape
        lin = got


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 70), h=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_halve_is_the_plain_box_average_bitwise(w: int, h: int, seed: int):
    lin = xyb.linear(_rgb(np.random.default_rng(seed), w, h))
    assert np.array_equal(xyb.halve(lin), _plain_halve(lin))


@pytest.mark.parametrize(
    "mode", ["L", "LA", "P", "PA", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "1",
             "I", "F", "I;16"]
)  # fmt: skip
def test_linear_of_every_mode_is_its_rgb_conversion(mode: str):
    base = _rgb(np.random.default_rng(3), 31, 17)
    if mode in ("I;16", "I", "F"):
        im = base.convert("L").convert(mode)
    elif mode == "P":
        im = base.quantize(200)
    elif mode == "PA":
        im = base.quantize(200).convert("PA")
    else:
        im = base.convert("RGBA" if mode in ("LA", "La", "RGBa") else "RGB").convert(mode)
    assert im.mode == mode
    assert np.array_equal(xyb.linear(im), _plain_linear(im))


def test_linear_of_crops_transposes_and_lazy_pictures():
    im = _rgb(np.random.default_rng(5), 41, 29)
    for view in (
        im.crop((3, 5, 40, 28)),
        im.crop((0, 0, 1, 29)),
        im.transpose(Image.Transpose.TRANSPOSE),
        im.transpose(Image.Transpose.ROTATE_90),
        im.resize((13, 77), Image.NEAREST),
        Image.fromarray(np.asarray(im)[::2, ::-1]),  # from a strided, reversed array
    ):
        assert np.array_equal(xyb.linear(view), _plain_linear(view)), view.size
