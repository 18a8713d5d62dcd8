"""What every worker would otherwise load during its first job, loaded once in the fork
server before it forks any worker (``workers.start_fork_server`` preloads this module):
the engine, what the operations import when they first touch pixels (they keep Pillow out
of their module tops, for the config's sake), the allowed formats' Pillow plugins, libvips
and the EXIF date parser.

Only loading here, no work: libvips starts its threads at its first operation, not when
it is loaded, and a process with threads must not fork.
"""

from __future__ import annotations

import os

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
