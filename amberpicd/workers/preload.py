"""What every worker would otherwise load during its first job, loaded once in the fork
server before it forks any worker (``workers.start_fork_server`` preloads this module):
the engine, what the operations import when they first touch pixels (they keep Pillow out
of their module tops, for the config's sake), the allowed formats' Pillow plugins, libvips
and the EXIF date parser.

Only loading here, no work: libvips starts its threads at its first operation, not when
it is loaded, and a process with threads must not fork.
"""

from __future__ import annotations

import atexit
import os
import sys


def _in_fork_server() -> bool:
    """Whether multiprocessing's fork server is importing us (not a test, not a tool)."""
    from multiprocessing import forkserver

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


# The fork server ends when its last client has gone (the process, or the daemon): then it
# skips the interpreter's teardown of everything loaded below, which costs more CPU than
# anything else it does after its preload, at the end of every run. Registered first, so
# it runs last: the exit handlers of the modules loaded below still run. (Workers never
# get here: the fork server ends each one with os._exit after its job loop.)
if _in_fork_server():
    atexit.register(os._exit, 0)

# One BLAS thread per worker, set before numpy loads OpenBLAS: the pool already runs a worker
# per core (SSIMULACRA2's blurs are BLAS products), and OpenBLAS's own pool would both
# oversubscribe the cores and be threads in the process that forks. A user's setting stands.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import _strptime  # noqa: E402, F401  (datetime.strptime imports it on first use: EXIF dates)

import amberpicd.engine.pipeline  # noqa: E402, F401  (the engine)
from amberpicd.imaging import decode, resample  # noqa: E402
from amberpicd.ops import registry  # noqa: E402

registry.load_pixel_side()
decode.load_plugins()
resample.accelerator()
