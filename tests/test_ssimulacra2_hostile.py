"""Hostile review of lean references and the helper thread (imaging.ssimulacra2): pictures
with no scale at all, a helper thread that cannot start, callers that must rely on the lower
bound's contract (never on how tight it is), and constructed pairs that push the skipped
maps towards the maxima the slack assumes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from amberpicd.imaging import ssimulacra2


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (7, 300), (300, 7)])
@pytest.mark.parametrize("lean", [False, True])
def test_a_picture_under_eight_pixels_scores_100_as_the_judge_does(size, lean: bool):
    """The judge (and this module before lean references) has no scale for a side under
    8 px and scores 100; the scale loop must not fail on an empty list of scales."""
    a = Image.new("RGB", size, (10, 200, 30))
    b = Image.new("RGB", size, (240, 10, 90))
    ref = ssimulacra2.Reference(a, lean=lean)
    assert ref.bounds(b) == (100.0, 100.0)
    assert ref.score(b) == 100.0 and ref.score(b, 99.5) == 100.0
    assert ssimulacra2.score(a, b) == 100.0
    # Control: one pixel more on the short side is a scale, and these colours differ.
    grown = (max(size[0], 8), max(size[1], 8))
    assert ssimulacra2.score(a.resize(grown), b.resize(grown)) < 99


_NO_THREAD = textwrap.dedent(
    """
    import resource, threading
    import numpy as np
    from PIL import Image
    from amberpicd.imaging import ssimulacra2 as s
    rng = np.random.default_rng(3)
    a = Image.fromarray(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8))
    b = a.rotate(2)
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))
    try:  # control: this process cannot start a thread (its stack would not fit)
        threading.Thread(target=lambda: None).start()
        print("thread started")
    except RuntimeError:
        print("no threads")
    s.THREADS = 2
    two = [s.Reference(a, lean=True).bounds(b) for _ in range(2)]
    s.THREADS = 1
    one = s.Reference(a, lean=True).bounds(b)
    print(two[0] == one and two[1] == one, one)
    """
)


def test_a_helper_thread_that_cannot_start_leaves_the_score_to_this_thread(tmp_path: Path):
    """A worker whose thread stacks do not fit its address space (a large ``ulimit -s``
    under worker_memory) scored nothing at all: "can't start new thread". The scales then
    run on the calling thread, with the same scores."""
    script = tmp_path / "no_thread.py"
    script.write_text(_NO_THREAD)
    done = subprocess.run(
        ["bash", "-c", f'ulimit -s 2000000 && exec "$0" {script}', sys.executable],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},  # as in workers (their preload)
    )
    if done.returncode and "ulimit" in done.stderr:
        pytest.skip(f"cannot raise the stack limit here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "no threads"  # control: the helper really cannot start
    assert lines[1].startswith("True"), done.stdout
