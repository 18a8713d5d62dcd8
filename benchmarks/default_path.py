"""The default path against the pyvips pool exactly as issue 13 times it, with where the
time goes.

    python benchmarks/default_path.py [--count 80] [--rounds 2] [--jobs 2]

One ``amberpicd process -j 2`` run over the camera JPEGs (fit 2048, JPEG q82 progressive,
no metadata kept) and one two-process pyvips ``thumbnail`` pool run, alternating, ``rounds``
of each (each round starts with the next tool). Per run: wall time, CPU-seconds
of every process (and of the workers alone), and phases read from the outputs' modification
times, so both tools are measured alike without instrumenting either: *first* (launch to the
first output: start-up plus one file), *steady* (first to last output, per file per worker)
and *tail* (last output to exit). Says the load average before and after. The best run of
each tool decides the ratio, as the issue asks; the median is printed too.

Python's bytecode cache is on for both tools, as on a user's machine (pip compiles what it
installs; an editable install or ``PYTHONDONTWRITEBYTECODE`` would make amberpicd compile
its ~100 modules in two processes on every run, and pyvips' none), in a cache of the run's
own that a warm-up run fills. Not a test: it measures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import corpus
import harness
import peers
from peers import Job, Output

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
WEB = Output("web", 2048, "jpeg", 82)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=80)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--no-bytecode", action="store_true", help="as with PYTHONDONTWRITEBYTECODE")
    p.add_argument(
        "--before", type=Path, help="also time the amberpicd package in this source tree"
    )
    args = p.parse_args()
    OUT.mkdir(exist_ok=True)
    spec = corpus.CorpusSpec(jpegs=args.count, jpeg_size=(4000, 3000), seed=1)
    files = tuple(i.path for i in corpus.make(spec, OUT))
    for f in files:  # into the page cache: no tool pays for the first read
        f.read_bytes()
    harness.bytecode_cache(OUT / "pycache", on=not args.no_bytecode)
    tools = [peers.Amberpicd(True), peers.PyvipsPool()]
    if args.before:
        tools.append(Before(args.before))
    _once(tools, files[:2], args.jobs)  # warm-up: bytecode cache, page cache of the libraries
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {t.name: [] for t in tools}
    for r in range(args.rounds):
        for tool in tools[r % len(tools) :] + tools[: r % len(tools)]:  # rotating
            m = _run(tool, files, args.jobs)
            runs[tool.name].append(m)
            print(f"round {r + 1} {tool.name:12s} " + _line(m, len(files)), file=sys.stderr)
    load_after = os.getloadavg()
    what = "camera JPEGs 4000x3000 -> fit 2048, JPEG q82 progressive"
    print(f"\n{len(files)} {what}, -j {args.jobs}")
    print(f"load average before {_load(load_before)}, after {_load(load_after)}")
    for name, ms in runs.items():
        best = min(ms, key=lambda m: m["seconds"])
        print(f"{name:12s} best  " + _line(best, len(files)))
        print(f"{'':12s} median {statistics.median(m['seconds'] for m in ms):.2f} s")
    pool = runs[tools[1].name]
    for tool in tools[:1] + tools[2:]:
        a = min(m["seconds"] for m in runs[tool.name])
        ca = min(m["cpu"] for m in runs[tool.name])
        b, cb = min(m["seconds"] for m in pool), min(m["cpu"] for m in pool)
        print(f"{tool.name} / pyvips pool speed: {b / a:.2f}x wall (best), CPU {cb / ca:.2f}x")
    return 0


class Before(peers.Amberpicd):
    """amberpicd from another source tree (an earlier commit, say), first on the path."""

    def __init__(self, tree: Path):
        super().__init__(True)
        self.name, self.tree = "amberpicd before", tree.resolve()

    def _env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.tree)}


def _once(tools: list, files: tuple[Path, ...], jobs: int) -> None:
    for tool in tools:
        _run(tool, files, jobs)


def _run(tool: peers.Tool, files: tuple[Path, ...], jobs: int) -> dict:
    out = OUT / "run-default" / tool.name.replace(" ", "_")
    shutil.rmtree(out, ignore_errors=True)
    (out / WEB.name).mkdir(parents=True)
    job = Job(files, (WEB,), out, jobs)
    commands = tool.commands(job)
    started = time.time()
    m = harness.run(commands, parallel=tool.parallel)
    ended = started + m.seconds
    if m.errors:
        raise SystemExit(f"{tool.name}: {m.errors[:2]}")
    times = sorted(p.stat().st_mtime for p in (out / WEB.name).iterdir())
    if len(times) != len(files):
        raise SystemExit(f"{tool.name}: {len(times)} outputs of {len(files)}")
    first, last = times[0] - started, times[-1] - started
    steady = (last - first) / max(1, len(times) - 1) * jobs
    return {
        "seconds": m.seconds,
        "cpu": m.cpu,
        "cpu_worker": m.cpu_worker,
        "first": first,
        "steady": steady,
        "tail": ended - times[-1],
    }


def _line(m: dict, n: int) -> str:
    return (
        f"{m['seconds']:6.2f} s ({n / m['seconds']:5.2f} img/s)  cpu {m['cpu']:6.2f} s"
        f" (workers {m['cpu_worker']:6.2f}, others {m['cpu'] - m['cpu_worker']:5.2f})"
        f"  first {m['first']:.2f} s  steady {m['steady'] * 1000:4.0f} ms/file/worker"
        f"  tail {m['tail']:.2f} s"
    )


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in avg)


if __name__ == "__main__":
    sys.exit(main())
