"""Markdown tables from a results dict (as run.py writes it to benchmarks/out/)."""

from __future__ import annotations

from collections.abc import Callable
from statistics import median

MIB = 1024 * 1024
OURS = "amberpicd"


def _rate(cell: dict) -> float:
    rates = [cell["files"] / r["seconds"] for r in cell["rounds"] if r["seconds"] > 0]
    return median(rates) if rates else 0.0


def _best(cell: dict) -> float:
    return max(cell["files"] / r["seconds"] for r in cell["rounds"] if r["seconds"] > 0)


def _cpu(cell: dict) -> float:
    return median(r["cpu"] / cell["files"] for r in cell["rounds"])


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rows(
    results: dict, tools: list[tuple[str, str]], cell: Callable[[str, dict], str | None]
) -> list[list[str]]:
    """A row per (label, tool) and a column per scenario, holding ``cell(tool, that
    scenario's results by tool)``, or "-" where it gives None."""
    rows = []
    for label, tool in tools:
        texts = (cell(tool, s["tools"]) for s in results["scenarios"].values())
        rows.append([label, *("-" if text is None else text for text in texts)])
    return rows


def throughput(results: dict) -> str:
    def cell(tool: str, cells: dict) -> str | None:
        c = cells.get(tool)
        if not c or not c["rounds"]:
            return None
        flag = " ⚠" if c.get("errors") else ""
        return f"{_rate(c):.2f} ({_best(c):.2f}) · {_cpu(c):.3f}{flag}"

    rows = _rows(results, [(t, t) for t in results["tools"]], cell)
    scenarios = results["scenarios"]
    header = ["tool", *(f"{s} ({scenarios[s]['files']} files)" for s in scenarios)]
    title = (
        "Throughput: images/s, median of rounds (best round) · CPU-seconds per image, "
        "all processes of the run:"
    )
    return title + "\n\n" + _md(header, rows)


def ratios(results: dict) -> str:
    def cell(tool: str, cells: dict) -> str | None:
        ours, theirs = cells.get(OURS), cells.get(tool)
        if not ours or not theirs or not ours["rounds"] or not theirs["rounds"]:
            return None
        speed, cpu = _rate(ours) / _rate(theirs), _cpu(theirs) / _cpu(ours)
        return f"{speed:.2f}x (CPU {cpu:.2f}x)"

    others = [(f"{OURS} ÷ {t}", t) for t in results["tools"] if t != OURS]
    title = (
        "amberpicd's speed over each tool: median images/s ratio (and the inverse ratio of "
        "CPU-seconds per image); above 1 means amberpicd is faster:"
    )
    return title + "\n\n" + _md(["", *results["scenarios"]], _rows(results, others, cell))


def quality(results: dict) -> str:
    def cell(tool: str, cells: dict) -> str | None:
        c = cells.get(tool)
        q = c.get("quality") if c else None
        if not q:
            return None
        parts = [
            f"{name} {v['psnr']:.2f} dB / {v['ssim']:.4f} / {v['kib']:.0f} KiB"
            for name, v in q["outputs"].items()
        ]
        if q["leaks"]:
            parts.append(f"⚠ metadata left in {q['leaks']} of {q['checked']} outputs")
        return "<br>".join(parts)

    rows = _rows(results, [(t, t) for t in results["tools"]], cell)
    return (
        "Quality against a float Lanczos-3 reference of the upright source (mean PSNR / "
        "SSIM over a sample of files; mean output size):\n\n"
        + _md(["tool", *results["scenarios"]], rows)
    )


def memory(results: dict) -> str:
    rows = []
    for tool in results["tools"]:
        main = worker = 0
        for s in results["scenarios"].values():
            cell = s["tools"].get(tool)
            for r in cell["rounds"] if cell else []:
                main, worker = max(main, r["peak_main"]), max(worker, r["peak_worker"])
        rows.append([tool, f"{main / MIB:.0f}", f"{worker / MIB:.0f}" if worker else "-"])
    return "Peak RSS, MiB, largest over all runs:\n\n" + _md(
        ["tool", "main process", "worker process"], rows
    )


def large(results: dict) -> str:
    big = results.get("large")
    if not big:
        return ""
    rows = [
        [
            t,
            f"{r['seconds']:.2f}",
            f"{r['peak_worker'] / MIB:.0f}",
            f"{r['baseline'] / MIB:.0f}",
            f"{r['decoded'] / MIB:.0f}",
        ]
        for t, r in big["tools"].items()
    ]
    return f"One {big['megapixels']:.0f} MP JPEG → 2048 px JPEG, one worker:\n\n" + _md(
        ["tool", "seconds", "peak worker RSS MiB", "idle worker RSS MiB", "decoded MiB"], rows
    )


def daemon(results: dict) -> str:
    d = results.get("daemon")
    if not d:
        return ""
    if d.get("skipped"):
        return f"Daemon: skipped ({d['skipped']})"
    rows = [
        ["close → output renamed, p50 / p99 ms", f"{d['p50'] * 1000:.0f} / {d['p99'] * 1000:.0f}"],
        ["bare pipeline (in process), p50 ms", f"{d['bare_p50'] * 1000:.0f}"],
        ["ratio p50 / bare", f"{d['p50'] / d['bare_p50']:.2f}x"],
        ["watcher + queue + commit, p50 ms", f"{(d['p50'] - d['bare_p50']) * 1000:.0f}"],
        ["idle CPU over {:.0f} s, % of one core".format(d["idle_seconds"]), f"{d['idle_cpu']:.3f}"],
        [
            "idle RSS, daemon / all processes, MiB",
            f"{d['idle_rss'] / MIB:.0f} / {d['idle_rss_tree'] / MIB:.0f}",
        ],
    ]
    return f"Daemon ({d['files']} files dropped one at a time):\n\n" + _md(["", ""], rows)


def render(results: dict) -> str:
    head = [f"Machine: {results['machine']}", "Versions:"]
    head += [f"- {tool}: {version}" for tool, version in results["versions"].items()]
    head += [f"- skipped: {tool}: {why}" for tool, why in results.get("skipped", {}).items()]
    parts = ["\n".join(head), throughput(results), ratios(results), quality(results)]
    parts += [memory(results), large(results), daemon(results)]
    return "\n\n".join(p for p in parts if p) + "\n"
