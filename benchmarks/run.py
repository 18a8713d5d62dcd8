"""amberpicd against ImageMagick, vipsthumbnail and pyvips on the same files, same pipeline.

    python benchmarks/run.py [--quick] [--count N] [--rounds N] [--tools a,b] ...

Makes (or reuses) a reproducible corpus, runs every tool on every scenario, interleaved
(round r starts with a different tool), measures throughput, CPU, peak RSS, output size and
quality, then a 50 MP file and the daemon's latency and idle cost. Writes
benchmarks/out/results-<time>.json (and latest.json, latest.md); prints the tables.
Not a test: nothing here passes or fails, it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import corpus
import harness
import peers
import quality
import table
from peers import Job, Output

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
WEB_JPEG = Output("web", 2048, "jpeg", 82)
WEB_WEBP = Output("web", 2048, "webp", 80)
THUMB = Output("thumb", 320, "jpeg", 82)
SCENARIOS = {
    "jpeg→jpeg": ("camera", (WEB_JPEG,)),
    "jpeg→webp": ("camera", (WEB_WEBP,)),
    "mixed→jpeg": ("mixed", (WEB_JPEG,)),
    "mixed→webp": ("mixed", (WEB_WEBP,)),
    "jpeg→web+thumb": ("camera", (WEB_JPEG, THUMB)),
}


def main() -> int:
    args = _args()
    OUT.mkdir(exist_ok=True)
    harness.bytecode_cache(OUT / "pycache")  # as installed: see harness.bytecode_cache
    available, skipped, versions = [], {}, {}
    for tool in peers.tools():
        if args.tools and tool.name not in args.tools:
            continue
        why = tool.available()
        if why is not None:
            print(f"skipping {tool.name}: {why}", file=sys.stderr)
            skipped[tool.name] = why
            continue
        available.append(tool)
        versions[tool.name] = tool.version()
    corpora = _corpora(args)
    results = {
        "machine": _machine(),
        "args": vars(args),
        "versions": versions,
        "skipped": skipped,
        "tools": [t.name for t in available],
        "scenarios": {},
    }
    for name, (kind, outputs) in SCENARIOS.items():
        if args.scenarios and name not in args.scenarios:
            continue
        files = corpora[kind]
        print(f"== {name}: {len(files)} files", file=sys.stderr)
        results["scenarios"][name] = _scenario(available, files, outputs, args)
    if not args.no_large:
        results["large"] = _large(args)
    if not args.no_daemon:
        import daemon_latency

        results["daemon"] = daemon_latency.measure(corpora["camera"][: args.daemon_files])
    results["machine"] += f"; load average after: {os.getloadavg()[0]:.2f}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(results, indent=1, default=str)
    (OUT / f"results-{stamp}.json").write_text(text)
    (OUT / "latest.json").write_text(text)
    markdown = table.render(results)
    (OUT / "latest.md").write_text(markdown)
    print(markdown)
    return 0


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="12 files, 1 round: a smoke run")
    p.add_argument("--count", type=int, default=100, help="camera JPEGs (default 100)")
    p.add_argument("--mixed", type=int, help="files in the mixed corpus (default: --count)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per scenario (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="processes per tool (default 2)")
    p.add_argument("--size", default="4000x3000", help="camera JPEG size (default 4000x3000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tools", type=lambda s: s.split(","), help="comma-separated tool names")
    p.add_argument("--scenarios", type=lambda s: s.split(","), help="comma-separated names")
    p.add_argument("--quality-files", type=int, default=4, help="files checked for quality")
    p.add_argument("--daemon-files", type=int, default=20, help="files dropped on the daemon")
    p.add_argument("--no-daemon", action="store_true", help="skip the daemon measurement")
    p.add_argument("--no-large", action="store_true", help="skip the 50 MP file")
    args = p.parse_args()
    if args.quick:
        args.count, args.rounds = min(args.count, 12), 1
        args.quality_files, args.daemon_files = 2, 6
    args.mixed = args.mixed or args.count
    return args


def _corpora(args: argparse.Namespace) -> dict[str, list[Path]]:
    w, h = (int(v) for v in args.size.split("x"))
    camera = corpus.CorpusSpec(jpegs=args.count, jpeg_size=(w, h), seed=args.seed)
    n = args.mixed
    mixed = corpus.CorpusSpec(
        jpegs=n - 2 * (n // 5), pngs=n // 5, heics=n // 5, jpeg_size=(w, h), seed=args.seed
    )
    out = {}
    for kind, spec in (("camera", camera), ("mixed", mixed)):
        items = corpus.make(spec, OUT)
        for item in items:  # into the page cache, so no tool pays for the first read
            item.path.read_bytes()
        out[kind] = [i.path for i in items]
    return out


def _scenario(tools: list, files: list[Path], outputs: tuple[Output, ...], args) -> dict:
    cells = {t.name: {"files": len(files), "rounds": [], "errors": []} for t in tools}
    for r in range(args.rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]  # interleaved, rotating
        for tool in order:
            out = OUT / "run" / tool.name.replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            for o in outputs:
                (out / o.name).mkdir(parents=True)
            job = Job(tuple(files), outputs, out, args.jobs)
            measured = harness.run(tool.commands(job), parallel=tool.parallel)
            made = {o.name: sorted((out / o.name).iterdir()) for o in outputs}
            missing = sum(len(files) - len(v) for v in made.values())
            cell = cells[tool.name]
            if measured.errors or missing:
                cell["errors"] += measured.errors[:3] + (
                    [f"{missing} outputs missing"] * bool(missing)
                )
            cell["rounds"].append(
                {
                    "seconds": measured.seconds,
                    "cpu": measured.cpu,
                    "peak_main": measured.peak_main,
                    "peak_worker": measured.peak_worker,
                }
            )
            print(
                f"  round {r + 1} {tool.name:26s} {len(files) / measured.seconds:6.2f} img/s"
                f"  cpu {measured.cpu / len(files):.3f} s/img"
                + (f"  ERRORS {cell['errors'][:1]}" if cell["errors"] else ""),
                file=sys.stderr,
            )
            if r == 0:
                cell["quality"] = _quality(files, outputs, out, args.quality_files)
    return {"files": len(files), "tools": cells}


def _quality(files: list[Path], outputs, out: Path, count: int) -> dict:
    step = max(1, len(files) // max(1, count))
    sample = files[::step][:count]
    result: dict = {"outputs": {}, "leaks": 0, "checked": 0}
    for o in outputs:
        ext = "jpg" if o.format == "jpeg" else o.format
        produced = {p.stem: p for p in (out / o.name).iterdir()}
        scores = []
        for source in sample:
            target = produced.get(source.stem)
            if target is not None:
                scores.append(quality.measure(source, target))
        sizes = [p.stat().st_size for p in produced.values() if p.suffix == f".{ext}"]
        leaks = [p for p in produced.values() if _has_metadata(p)]
        result["leaks"] += len(leaks)
        result["checked"] += len(produced)
        if scores:
            result["outputs"][o.name] = {
                "psnr": sum(s[0] for s in scores) / len(scores),
                "ssim": sum(s[1] for s in scores) / len(scores),
                "kib": sum(sizes) / max(1, len(sizes)) / 1024,
            }
    return result


def _has_metadata(path: Path) -> bool:
    """True when a JPEG has an APP1 (EXIF/XMP) or COM segment, or a WebP an EXIF/XMP chunk."""
    data = path.read_bytes()
    if data[:4] == b"RIFF":
        pos = 12
        while pos + 8 <= len(data):
            tag, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
            if tag in (b"EXIF", b"XMP "):
                return True
            pos += 8 + size + (size & 1)
        return False
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: no more metadata segments
            return False
        if marker in (0xE1, 0xFE):
            return True
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def _large(args: argparse.Namespace) -> dict:
    """A 50 MP JPEG through amberpicd with one worker: time and the worker's peak RSS."""
    spec = corpus.CorpusSpec(jpegs=1, jpeg_size=(8660, 5773), seed=args.seed)
    source = corpus.make(spec, OUT)[0].path
    tools = {}
    for tool in peers.tools():
        if not isinstance(tool, peers.Amberpicd) or tool.available() is not None:
            continue
        out = OUT / "run" / "large"
        shutil.rmtree(out, ignore_errors=True)
        (out / "web").mkdir(parents=True)
        job = Job((source,), (WEB_JPEG,), out, jobs=1)
        runs = [harness.run(tool.commands(job)) for _ in range(3)]
        best = min(runs, key=lambda m: m.seconds)
        tools[tool.name] = {
            "seconds": best.seconds,
            "peak_worker": max(m.peak_worker for m in runs),
            "baseline": _idle_worker_rss(tool),
            "decoded": _decoded_bytes(source, 2048),
        }
    return {"megapixels": 8660 * 5773 / 1e6, "tools": tools}


def _decoded_bytes(source: Path, box: int) -> int:
    """What amberpicd's shrink-on-load decodes for a fit into ``box``: Pillow's draft at
    DRAFT_GAP times the output size, 4 bytes a pixel (RGB is stored as RGBX)."""
    from PIL import Image

    from amberpicd.imaging.decode import DRAFT_GAP

    with Image.open(source) as im:
        scale = box / max(im.size) * DRAFT_GAP
        im.draft("RGB", (round(im.width * scale), round(im.height * scale)))
        return im.width * im.height * 4


def _idle_worker_rss(tool: peers.Amberpicd) -> int:
    """Peak RSS of a worker that only started and imported what a job imports."""
    # VmHWM, not ru_maxrss: that one keeps the peak of the forked parent across exec.
    code = (
        "from amberpicd.workers.child import engine_setup; engine_setup();"
        "import amberpicd.engine.pipeline, amberpicd.imaging.resample as r; r.accelerator();"
        "s = open('/proc/self/status').read().split('VmHWM:')[1].split()[0];"
        "print(int(s) * 1024)"
    )
    env = {**os.environ, **tool._env()}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return int(done.stdout.strip() or 0)


def _machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; load average before: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
