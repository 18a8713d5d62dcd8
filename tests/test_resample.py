"""resample(): libvips when pyvips is importable, Pillow otherwise; same sizes, modes and
(within rounding) the same pixels either way."""

from __future__ import annotations

import platform
import sys

import images
import need
import pytest
from PIL import Image, ImageChops, ImageStat

from amberpicd.imaging import resample as rs
from amberpicd.imaging.decode import configure_pillow

configure_pillow()  # the worker's allocator settings: images in one block up to 64 MiB

try:
    import pyvips  # noqa: F401

    HAVE_VIPS = True
except Exception:
    HAVE_VIPS = False


def require_vips() -> None:
    """pyvips is a dependency where it has binary wheels: there its absence fails in CI."""
    if HAVE_VIPS:
        return
    if platform.machine() in ("x86_64", "aarch64"):
        need.missing("pyvips is not importable, though a dependency on this platform")
    pytest.skip(f"pyvips has no binary wheel for {platform.machine()}")


@pytest.fixture
def vips_required() -> None:
    require_vips()


needs_vips = pytest.mark.usefixtures("vips_required")


@pytest.fixture(params=["pillow", "vips"])
def path(request, monkeypatch):
    """Runs a test on each path; the vips one only where pyvips is installed."""
    if request.param == "vips":
        require_vips()
    monkeypatch.setattr(rs, "USE_ACCELERATOR", request.param == "vips")
    return request.param


def photo(size=(640, 480), mode="RGB") -> Image.Image:
    return images.upright(*size, mode=mode)


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 4
    return 99.0 if mse == 0 else 10 * __import__("math").log10(255**2 / mse)


def pillow(im: Image.Image, size, method="lanczos", box=None) -> Image.Image:
    box = box or (0, 0, *im.size)
    return rs._with_pillow(im, size, method, box)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
@pytest.mark.parametrize("method", ["lanczos", "bicubic", "bilinear", "nearest"])
def test_size_mode_and_pixels_match_pillow(path, mode, method):
    im = photo(mode=mode)
    out = rs.resample(im, (301, 227), method)
    assert out.size == (301, 227) and out.mode == mode
    assert psnr(out, pillow(im, (301, 227), method)) > 38


def test_without_the_accelerator_it_is_exactly_pillow(monkeypatch):
    monkeypatch.setattr(rs, "USE_ACCELERATOR", False)
    im = photo()
    assert rs.name() == "Pillow"
    assert rs.resample(im, (200, 150), "lanczos").tobytes() == pillow(im, (200, 150)).tobytes()


def test_a_missing_pyvips_is_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvips", None)  # import pyvips now raises ImportError
    monkeypatch.setattr(rs, "_vips", None)
    assert rs.accelerator() is None and rs.name() == "Pillow"
    assert rs.resample(photo(), (64, 48), "lanczos").size == (64, 48)


@needs_vips
def test_the_accelerator_does_the_work_when_installed(monkeypatch):
    monkeypatch.setattr(rs, "USE_ACCELERATOR", True)
    assert rs.name().startswith("libvips ")

    def refuse(*args):
        raise AssertionError("Pillow was used")

    monkeypatch.setattr(rs, "_with_pillow", refuse)
    for mode in ("RGB", "L", "RGBA"):
        assert rs.resample(photo(mode=mode), (320, 240), "lanczos").size == (320, 240)


@needs_vips
@pytest.mark.parametrize(
    ("mode", "size", "method"),
    [("I;16", (100, 75), "lanczos"), ("LA", (100, 75), "lanczos"), ("CMYK", (100, 75), "bicubic"),
     ("RGB", (1280, 960), "lanczos"), ("RGB", (100, 75), "nearest")],
)  # fmt: skip
def test_what_libvips_would_do_differently_stays_with_pillow(monkeypatch, mode, size, method):
    monkeypatch.setattr(rs, "USE_ACCELERATOR", True)
    im = photo().convert(mode)
    want = pillow(im, size, method)

    def refuse(*args):
        raise AssertionError("libvips was used")

    monkeypatch.setattr(rs, "_with_vips", refuse)
    out = rs.resample(im, size, method)  # enlarging, nearest and other modes: Pillow
    assert out.mode == mode and out.tobytes() == want.tobytes()


def test_a_box_resamples_only_that_region(path):
    im = photo((800, 600))
    box = (100.0, 50.0, 500.0, 350.0)
    out = rs.resample(im, (200, 150), "lanczos", box)
    assert out.size == (200, 150)
    assert psnr(out, pillow(im.crop((100, 50, 500, 350)), (200, 150))) > 38
    # The marker block sits at the source's top-left: cut away, it must not show.
    assert not images.corner_is_marker(out)


def test_transparent_pixels_do_not_bleed_their_colour(path):
    # Opaque blue beside fully transparent red: premultiplied resampling keeps the edge
    # blue; a naive one would mix red into it.
    im = Image.new("RGBA", (400, 300), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (200, 0, 400, 300))
    out = rs.resample(im, (100, 75), "lanczos")
    edge = [out.getpixel((x, 37)) for x in range(49, 56)]
    assert all(r <= 2 for r, g, b, a in edge if a > 0), edge


def test_pixels_in_several_blocks_are_copied_not_borrowed(path):
    # Pillow stores an image larger than its block size in several blocks; the libvips
    # path cannot borrow those as one array and must take a copy instead.
    before = Image.core.get_block_size()
    Image.core.set_block_size(64 * 1024)
    try:
        im = photo((600, 400))
        with pytest.raises(ValueError):
            im.__arrow_c_array__()
        out = rs.resample(im, (150, 100), "lanczos")
    finally:
        Image.core.set_block_size(before)
    assert psnr(out, pillow(photo((600, 400)), (150, 100))) > 38
    assert images.corner_is_marker(out)


def test_sizes_are_exact_for_awkward_ratios(path):
    im = photo((997, 601))
    for size in [(1, 1), (1, 601), (997, 1), (3, 2), (498, 300), (996, 600), (13, 577)]:
        assert rs.resample(im, size, "lanczos").size == size


def test_the_source_is_left_untouched(path):
    im = photo(mode="RGBA")
    before = im.tobytes()
    rs.resample(im, (100, 75), "lanczos")
    assert im.tobytes() == before and im.mode == "RGBA"


@needs_vips
def test_a_libvips_error_falls_back_to_pillow(monkeypatch):
    monkeypatch.setattr(rs, "USE_ACCELERATOR", True)
    vips = rs.accelerator()

    def fail(*args):
        raise vips.Error("out of memory")

    monkeypatch.setattr(rs, "_with_vips", fail)
    im = photo()
    assert rs.resample(im, (200, 150), "lanczos").tobytes() == pillow(im, (200, 150)).tobytes()


@needs_vips
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_results_written_in_place_equal_copied_ones(monkeypatch, mode):
    """For L and RGB libvips writes into the new Pillow image's own memory; the pixels are
    exactly those of the copying path, and the image owns them like any other."""
    monkeypatch.setattr(rs, "USE_ACCELERATOR", True)
    im = photo(mode=mode)
    direct = rs.resample(im, (320, 240), "lanczos")
    monkeypatch.setattr(rs, "_DIRECT", frozenset())
    copied = rs.resample(im, (320, 240), "lanczos")
    assert direct.mode == copied.mode == mode and direct.tobytes() == copied.tobytes()
    before = direct.tobytes()
    rs.resample(photo((640, 480), mode), (320, 240), "bicubic")  # nothing shared with it
    assert direct.tobytes() == before
    colour = (7, 8, 9) if mode == "RGB" else 7
    direct.paste(colour, (0, 0, 10, 10))
    assert direct.getpixel((5, 5)) == colour and direct.getpixel((20, 20)) != colour
