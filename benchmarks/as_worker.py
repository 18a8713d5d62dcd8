"""This benchmark process, set up as an amberpicd worker runs: one BLAS thread (what
``workers/preload.py`` sets before numpy loads OpenBLAS) and Pillow's and glibc's memory
tuned for images (``imaging.decode.configure_pillow``, which calls
``imaging.memory.tune_for_images``). Timings taken in-process otherwise measure other work:
OpenBLAS's own threads on the blurs' matrix products, and page faults on every fresh
multi-megabyte array once glibc unmaps it on free.

``blas_threads()`` must run before numpy is imported (call it before the imports that load
amberpicd); a user's explicit setting stands. Stdlib only at import time.
"""

from __future__ import annotations

import os
import sys

BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
_set_here: list[str] | None = None  # the variables this module set (None: not called yet)
_tuned = False


def blas_threads() -> None:
    """One BLAS thread, as in a worker, unless the user set a count; idempotent."""
    global _set_here
    if _set_here is not None:
        return
    if "numpy" in sys.modules:
        raise RuntimeError("as_worker.blas_threads() must run before numpy is imported")
    _set_here = [v for v in BLAS_VARS if v not in os.environ]
    for var in _set_here:
        os.environ[var] = "1"


def tune_memory() -> None:
    """Pillow's block size and glibc's kept memory, as every worker sets them at start."""
    global _tuned
    from amberpicd.imaging.decode import configure_pillow

    configure_pillow()
    _tuned = True


def set_here() -> tuple[str, ...]:
    """The variables ``blas_threads`` set (not the user): a tool run as a user would run it
    (``amberpicd process``) gets the environment without them."""
    return tuple(_set_here or ())


def describe() -> str:
    """The conditions, for a report's header: which thread counts, and who set them."""
    parts = []
    for var in BLAS_VARS:
        who = "as in a worker" if var in set_here() else "the user's setting"
        parts.append(f"{var}={os.environ.get(var, '(unset)')} ({who})")
    memory = "tuned as in a worker (tune_for_images)" if _tuned else "not tuned"
    return "In-process timings: " + ", ".join(parts) + f"; memory {memory}."
