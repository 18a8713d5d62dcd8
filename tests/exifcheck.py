"""Reading outputs with exiftool (Debian: libimage-exiftool-perl), an independent reader:
what metadata an output carries, judged by exiftool's groups rather than by Pillow."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


def exiftool(*paths: Path) -> list[dict]:
    """exiftool's tags for each file (``-G0:1``: keys are ``family0:family1:Name``)."""
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is missing: apt-get install libimage-exiftool-perl")
    proc = subprocess.run(
        ["exiftool", "-j", "-a", "-u", "-G0:1", *map(str, paths)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# Groups (exiftool family 0) an output may show: the file's own structure and the colour
# profile. Anything else (EXIF, XMP, IPTC, Photoshop, MakerNotes, ...) is metadata.
STRUCTURE = {"ExifTool", "File", "Composite", "JFIF", "PNG", "RIFF", "QuickTime", "GIF"}
# A TIFF file's own tags live in IFD0, which exiftool reports as EXIF: these describe the
# pixels and nothing else.
TIFF_STRUCTURE = {
    "SubfileType",
    "ImageWidth",
    "ImageHeight",
    "BitsPerSample",
    "Compression",
    "PhotometricInterpretation",
    "StripOffsets",
    "SamplesPerPixel",
    "RowsPerStrip",
    "StripByteCounts",
    "PlanarConfiguration",
    "ExtraSamples",
    "SampleFormat",
    "Predictor",
    "XResolution",
    "YResolution",
    "ResolutionUnit",
    "ICC_Profile",
}
# Names that are metadata in whatever group they show up.
FORBIDDEN_NAMES = ("GPS", "Comment", "Thumbnail", "Preview", "MakerNote", "Serial", "Owner")
FORBIDDEN_NAMES += ("Artist", "Copyright", "Creator", "Author", "Make", "Model", "Date")


def leaks(tags: dict, fmt: str) -> list[str]:
    """The exiftool tags of an output that are metadata the default policy drops."""
    found = []
    for key, value in tags.items():
        group, _, name = key.rpartition(":")
        family0 = group.split(":")[0]
        if key == "SourceFile" or group == "File:System":
            continue  # the file system's own: name, dates of the output file, permissions
        if family0 == "ICC_Profile":
            continue  # kept by the default policy, whole (its header has dates, a creator)
        structural = family0 in STRUCTURE or (
            fmt == "tiff" and group == "EXIF:IFD0" and name in TIFF_STRUCTURE
        )
        if not structural or any(word in name for word in FORBIDDEN_NAMES):
            found.append(f"{key}={str(value)[:60]}")
    return found
