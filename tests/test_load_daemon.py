"""Load through the running daemon: 10,000 files dropped at once, then a minute's
trickle. Nothing is missed or done twice, and memory stays flat; the numbers go to
benchmarks/out/load.json. ``slow``: ``pytest -m 'not slow'`` skips it.

The daemon, its forkserver and its workers run under the network tripwire (tests/nonet).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import threading
import time
from pathlib import Path

import corpus
import images
import pytest
import test_torture_engine as engine
from daemonproc import DaemonProc, wait_for
from PIL import Image
from test_torture_daemon import SETTLE, SMALL_CONFIG, check_tripwire, tree, tripwire

BENCH_OUT = Path(__file__).parent.parent / "benchmarks" / "out"
MIB = 1024 * 1024

BURST = 10_000
TRICKLE_SECONDS = 60.0
TRICKLE_EVERY = 0.25  # seconds between two trickle files
RSS_BOUND = 300 * MIB  # peak over the idle baseline, whole process tree


def rss(pid: int) -> int:
    """Resident set size in bytes, 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples (time, daemon RSS, RSS summed over the daemon's process tree) every second."""

    def __init__(self, d: DaemonProc, interval: float = 1.0):
        super().__init__(name="rss-sampler", daemon=True)
        self.d, self.interval = d, interval
        self.samples: list[tuple[float, int, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            pids = self.d.pids()
            own = rss(pids[0])
            self.samples.append((time.monotonic(), own, own + sum(map(rss, pids[1:]))))
            if self.stopped.wait(self.interval):
                return

    def between(self, start: float, end: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if start <= s[0] <= end]


def small_jpeg(base: bytes, n: int) -> bytes:
    """``base`` with a comment segment carrying ``n``: a valid JPEG with its own hash."""
    tag = b"load %07d" % n
    return base[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + base[2:]


def outputs(folder: Path) -> int:
    if not folder.exists():
        return 0
    with os.scandir(folder) as it:
        return sum(1 for e in it if not e.name.startswith("."))


def mib(n: float) -> float:
    return round(n / MIB, 1)


def mean(samples: list[tuple[float, int, int]], column: int) -> float:
    return statistics.fmean(s[column] for s in samples)


@pytest.mark.slow
def test_load_burst_then_trickle(tmp_path: Path):
    nonet = tmp_path / "nonet.log"
    d = DaemonProc(tmp_path, SMALL_CONFIG, settle=SETTLE, extra_env=tripwire(nonet)).start()
    sampler = RssSampler(d)
    try:
        base = corpus.encoded(images.upright(32, 24), "JPEG", quality=85)
        with Image.open(io.BytesIO(small_jpeg(base, 0))) as im:
            im.load()  # the comment keeps it a valid JPEG
        sampler.start()
        wait_for(lambda: len(sampler.samples) >= 3, 30, "an idle baseline")
        idle = list(sampler.samples)

        burst_start = time.monotonic()
        for n in range(BURST):
            (d.inbox / f"b{n:05}.jpg").write_bytes(small_jpeg(base, n))
        written = time.monotonic() - burst_start
        wait_for(lambda: outputs(d.out) >= BURST, 600, f"{BURST} outputs")
        burst_seconds = time.monotonic() - burst_start
        throughput = BURST / burst_seconds
        print(
            f"\nburst: {BURST} files written in {written:.1f} s, processed in "
            f"{burst_seconds:.1f} s: {throughput:.1f} files/s"
        )

        # A steady trickle, paced on the clock (load generation, not synchronisation).
        trickle_start = time.monotonic()
        trickle = 0
        while (now := time.monotonic()) < trickle_start + TRICKLE_SECONDS:
            (d.inbox / f"t{trickle:05}.jpg").write_bytes(small_jpeg(base, BURST + trickle))
            trickle += 1
            threading.Event().wait(max(0.0, trickle_start + trickle * TRICKLE_EVERY - now))
        trickle_end = time.monotonic()
        total = BURST + trickle
        wait_for(lambda: outputs(d.out) >= total and d.idle(), 120, f"{total} outputs")
        sampler.stopped.set()
        sampler.join()

        # Nothing missed, nothing twice.
        names = sorted(p.name for p in d.out.iterdir())
        want = sorted(
            [f"b{n:05}.png" for n in range(BURST)] + [f"t{n:05}.png" for n in range(trickle)]
        )
        assert names == want
        hist = d.history()
        assert len(hist) == total and {h["state"] for h in hist} == {"done"}
        assert len({h["source"] for h in hist}) == total
        for name in (want[0], want[BURST // 2], want[-1]):
            with Image.open(d.out / name) as im:
                assert im.format == "PNG" and im.size == (16, 12)
        engine.check_no_temp_files(tmp_path)
        assert d.status()["ok"] and d.proc is not None and d.proc.poll() is None

        # Flat memory.
        base_own, base_total = mean(idle, 1), mean(idle, 2)
        after = [s for s in sampler.samples if s[0] >= burst_start]
        peak_own, peak_total = max(s[1] for s in after), max(s[2] for s in after)
        first = sampler.between(trickle_start, trickle_start + 10)
        last = sampler.between(trickle_end - 10, trickle_end)
        result = {
            "files": BURST,
            "burst_write_seconds": round(written, 2),
            "burst_seconds": round(burst_seconds, 1),
            "files_per_second": round(throughput, 1),
            "trickle_files": trickle,
            "trickle_seconds": round(trickle_end - trickle_start, 1),
            "workers": 2,
            "cpus": os.cpu_count(),
            "idle_rss_mib": {"daemon": mib(base_own), "tree": mib(base_total)},
            "peak_rss_mib": {"daemon": mib(peak_own), "tree": mib(peak_total)},
            "trickle_first10_rss_mib": {"daemon": mib(mean(first, 1)), "tree": mib(mean(first, 2))},
            "trickle_last10_rss_mib": {"daemon": mib(mean(last, 1)), "tree": mib(mean(last, 2))},
            "samples": len(sampler.samples),
        }
        print(json.dumps(result, indent=2))
        BENCH_OUT.mkdir(parents=True, exist_ok=True)
        (BENCH_OUT / "load.json").write_text(json.dumps(result, indent=2) + "\n")
        assert peak_total <= base_total + RSS_BOUND, result
        for column in (1, 2):
            assert mean(last, column) <= mean(first, column) * 1.10 + 30 * MIB, result
        check_tripwire(nonet, d, tree(d))
        assert d.stop() == 0
    finally:
        sampler.stopped.set()
        d.close()
