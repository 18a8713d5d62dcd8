"""Memory for pixels in a worker process: one block per image, and freed memory kept.

Pillow stores an image in blocks of 16 MiB by default; one block per image (up to
``BLOCK_BYTES``) lets the resampler borrow the pixels without copying them. glibc hands
allocations this large to mmap and unmaps them on free, so every decode pages its memory in
afresh, which costs about a sixth of a 12 MP pipeline; keeping them in the heap, and keeping
some freed heap, lets the next image reuse pages already mapped.
"""

from __future__ import annotations

import ctypes
import resource

from PIL import Image

BLOCK_BYTES = 64 * 1024**2  # a 16 MP RGB image (Pillow keeps RGB as 4 bytes a pixel)
KEEP_BYTES = 128 * 1024**2  # freed heap kept at most; larger requests still use mmap
KEEP_SHARE = 8  # ...and at most this fraction of the address-space limit
_MIN_KEEP = 32 * 1024**2  # below this, keeping memory is not worth the limit it takes
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters


def tune_for_images() -> None:
    """Process-wide: call once in each worker, after its memory limit is set and before
    decoding. Without glibc (musl, macOS) only Pillow's block size changes."""
    Image.core.set_block_size(BLOCK_BYTES)
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    keep = KEEP_BYTES if limit == resource.RLIM_INFINITY else min(KEEP_BYTES, limit // KEEP_SHARE)
    if keep < _MIN_KEEP:
        return  # a tight worker_memory: every byte of it for the image itself
    try:
        # The C library already loaded into this process (no find_library: that runs
        # ldconfig, and workers run no programs).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, keep)
    mallopt(_M_TRIM_THRESHOLD, keep)
