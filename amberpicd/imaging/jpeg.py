"""The JPEG encoders ``encode: {encoder: ...}`` chooses between, and which one ``auto`` is.

- ``libjpeg``: libjpeg-turbo through Pillow (optimised Huffman tables, progressive).
- ``mozjpeg``: libvips' ``jpegsave`` (pyvips-binary is built with mozjpeg): trellis
  quantisation, optimised progressive scans, quant table 3 (Squoosh's), overshoot
  deringing.
- ``jpegli``: Google's jpegli through the ``pyjpegli`` wheel (BSD): RGB only (gray
  pictures fall back to libjpeg), its own progressive scans and chroma choice.

mozjpeg and jpegli write bare pictures (no metadata at all); the metadata a rule keeps is
then spliced in by ``imaging.optimize.with_metadata``, from the same Pillow arguments
the libjpeg path writes, so one code path decides what is written whatever the encoder.
``auto``: measured in benchmarks/jpeg_encoders.py (see ``AUTO_SEARCH``); a fixed quality
keeps libjpeg-turbo, so the default path never changes or gets slower.

Touches no files.
"""

from __future__ import annotations

import functools
import importlib.util

from PIL import Image

ENCODERS = ("libjpeg", "mozjpeg", "jpegli")
# What encoder: auto runs (benchmarks/jpeg_encoders.py, README "JPEG encoders"). When
# quality: auto searches: mozjpeg is 7-12 % smaller at equal SSIMULACRA2 but doubles the
# search's time (the goal still open), jpegli misses high targets on chroma-rich pictures.
AUTO_SEARCH = "libjpeg"
AUTO_FIXED = "libjpeg"  # a fixed quality: the default path, unchanged


_NEEDS = {"mozjpeg": "pyvips", "jpegli": "pyjpegli"}  # the package each one runs in


@functools.cache
def available_encoders() -> tuple[str, ...]:
    """The encoders this installation can run (mozjpeg needs pyvips, jpegli the
    ``pyjpegli`` wheel)."""
    return tuple(
        e for e in ENCODERS if e not in _NEEDS or importlib.util.find_spec(_NEEDS[e]) is not None
    )


def resolve(encoder: str, searching: bool) -> str:
    """The encoder to run for ``encoder`` (``auto`` or a name)."""
    if encoder != "auto":
        return encoder
    chosen = AUTO_SEARCH if searching else AUTO_FIXED
    return chosen if chosen == "libjpeg" or chosen in available_encoders() else "libjpeg"


def save(im: Image.Image, encoder: str, options: dict) -> bytes | None:
    """``im`` (mode L or RGB) as a bare JPEG by ``encoder`` at ``options["quality"]``
    (``progressive`` and ``subsampling`` as the libjpeg path takes them); None when the
    encoder cannot take the picture (jpegli and gray), for the caller's libjpeg."""
    quality = int(options["quality"])
    if encoder == "jpegli":
        if im.mode != "RGB":
            return None
        import pyjpegli

        return pyjpegli.encode(im.tobytes(), im.width, im.height, quality=quality)
    if encoder == "mozjpeg":
        import pyvips

        bands = 1 if im.mode == "L" else 3
        v = pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, bands, "uchar")
        progressive = bool(options.get("progressive", True))
        return v.jpegsave_buffer(
            Q=quality,
            optimize_coding=True,
            interlace=progressive,
            optimize_scans=progressive,
            trellis_quant=True,
            overshoot_deringing=True,
            quant_table=3,
            subsample_mode="off" if options.get("subsampling") == "4:4:4" else "on",
            keep="none",
        )
    raise ValueError(f"unknown JPEG encoder {encoder}")
