"""The tools compared, each given the same files and the same pipeline: auto-orient, fit
inside a box (shrink only), strip all metadata, flatten transparency on white for JPEG, then
JPEG (progressive) or WebP at the given quality and effort.

Each tool turns a job into commands for ``harness.run``; ``available()`` says why a tool
cannot run here (then it is skipped with that line, never an error).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import Command

HERE = Path(__file__).resolve().parent
NO_ACCEL = HERE / "no_accel"  # on PYTHONPATH: "import pyvips" fails, Pillow resamples


@dataclass(frozen=True)
class Output:
    name: str  # sub-folder of the run's output folder
    box: int  # fit inside box x box, never enlarge
    format: str  # jpeg | webp
    quality: int
    effort: int = 4  # WebP method


@dataclass(frozen=True)
class Job:
    files: tuple[Path, ...]
    outputs: tuple[Output, ...]
    out: Path
    jobs: int = 2  # processes working at once


def chunks(files: Sequence[Path], jobs: int) -> list[list[Path]]:
    """Batches for one-process-per-batch tools: small enough that both cores stay busy to
    the end, large enough that process start-up is noise."""
    size = max(1, min(8, len(files) // (jobs * 4) or 1))
    return [list(files[i : i + size]) for i in range(0, len(files), size)]


class Tool:
    name = ""
    parallel = 1  # commands run at once

    def available(self) -> str | None:
        return None

    def version(self) -> str:
        return ""

    def commands(self, job: Job) -> list[Command]:
        raise NotImplementedError


class Amberpicd(Tool):
    def __init__(self, accelerated: bool):
        self.accelerated = accelerated
        self.name = "amberpicd" if accelerated else "amberpicd (Pillow only)"

    def available(self) -> str | None:
        if self.accelerated and _probe("import pyvips") is None:
            return "pyvips is not installed: amberpicd runs on Pillow only (pip install pyvips)"
        return None

    def version(self) -> str:
        code = (
            "import amberpicd, PIL, pillow_heif; from amberpicd.imaging import resample;"
            "print(amberpicd.__version__ if hasattr(amberpicd, '__version__') else '0.1',"
            "'Pillow', PIL.__version__, 'pillow-heif', pillow_heif.__version__,"
            "'resampler:', resample.name())"
        )
        return _probe(code, self._env()) or "?"

    def _env(self) -> dict[str, str]:
        return {} if self.accelerated else {"PYTHONPATH": str(NO_ACCEL)}

    def commands(self, job: Job) -> list[Command]:
        config = job.out / "config.yaml"
        config.write_text(amberpicd_config(job))
        argv = (sys.executable, "-m", "amberpicd", "-c", str(config), "process")
        argv += ("-j", str(job.jobs), *map(str, job.files))
        # A journal of its own in the run's folder (emptied before each round): with the
        # user's, every round after the first would find the files done and skip them.
        return [Command(argv, {**self._env(), "XDG_STATE_HOME": str(job.out / "state")})]


def amberpicd_config(job: Job) -> str:
    rules = []
    for o in job.outputs:
        settings = {"format": o.format, "quality": o.quality}
        if o.format == "jpeg":
            settings["progressive"] = True
        else:
            settings["effort"] = o.effort
        rules.append(
            {
                "name": o.name,
                "pipeline": [
                    "auto_orient",
                    {"resize": {"width": o.box, "height": o.box, "mode": "fit"}},
                    {"encode": settings},
                ],
                "keep_metadata": [],
                "output": str(job.out / o.name / "{stem}.{ext}"),
                "on_conflict": "overwrite",
            }
        )
    return json.dumps({"version": 1, "rules": rules}, indent=1)  # JSON is YAML


class PyvipsPool(Tool):
    name = "pyvips pool"

    def available(self) -> str | None:
        if _probe("import pyvips") is None:
            return "pyvips not installed (pip install pyvips pyvips-binary)"
        return None

    def version(self) -> str:
        return (
            _probe(
                "import pyvips; print('pyvips', pyvips.__version__, 'libvips', "
                "'.'.join(str(pyvips.version(i)) for i in range(3)))"
            )
            or "?"
        )

    def commands(self, job: Job) -> list[Command]:
        spec = {
            "files": [str(f) for f in job.files],
            "outputs": [asdict(o) for o in job.outputs],
            "out": str(job.out),
            "jobs": job.jobs,
        }
        return [Command((sys.executable, str(Path(__file__)), json.dumps(spec)))]


class VipsThumbnail(Tool):
    name = "vipsthumbnail"
    parallel = 2

    def available(self) -> str | None:
        if shutil.which("vipsthumbnail") is None:
            return "vipsthumbnail not found (apt-get install libvips-tools)"
        return None

    def version(self) -> str:
        return _run(["vipsthumbnail", "--vips-version"])

    def commands(self, job: Job) -> list[Command]:
        self.parallel = job.jobs
        commands = []
        for batch in chunks(job.files, job.jobs):
            for o in job.outputs:
                if o.format == "jpeg":
                    opts = f"Q={o.quality},interlace,optimize_coding,strip,background=255"
                else:
                    opts = f"Q={o.quality},effort={o.effort},strip"
                ext = "jpg" if o.format == "jpeg" else o.format
                target = f"{job.out / o.name}/%s.{ext}[{opts}]"
                argv = ("vipsthumbnail", "--size", f"{o.box}x{o.box}>", "-o", target)
                commands.append(Command(argv + tuple(map(str, batch))))
        return commands


class Mogrify(Tool):
    name = "ImageMagick mogrify"
    parallel = 2

    def available(self) -> str | None:
        if shutil.which("mogrify") is None:
            return "mogrify not found (apt-get install imagemagick)"
        return None

    def version(self) -> str:
        return _run(["mogrify", "-version"]).splitlines()[0].removeprefix("Version: ")

    def commands(self, job: Job) -> list[Command]:
        self.parallel = job.jobs
        # Two processes share the cores: OpenMP threads inside each would only contend.
        env = {"MAGICK_THREAD_LIMIT": "1"}
        commands = []
        for batch in chunks(job.files, job.jobs):
            for o in job.outputs:
                argv = ["mogrify", "-path", str(job.out / o.name), "-auto-orient"]
                argv += ["-resize", f"{o.box}x{o.box}>", "-strip", "-quality", str(o.quality)]
                if o.format == "jpeg":
                    argv += ["-background", "white", "-alpha", "remove", "-alpha", "off"]
                    argv += ["-interlace", "Plane", "-format", "jpg"]
                else:
                    argv += ["-define", f"webp:method={o.effort}", "-format", "webp"]
                commands.append(Command(tuple(argv + [str(f) for f in batch]), env))
        return commands


def tools() -> list[Tool]:
    return [Amberpicd(True), PyvipsPool(), VipsThumbnail(), Mogrify(), Amberpicd(False)]


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout or done.stderr).strip()


def _probe(code: str, env: dict[str, str] | None = None) -> str | None:
    """What ``code`` prints in a fresh interpreter, or None when it fails."""
    done = subprocess.run(
        [sys.executable, "-c", code if "print" in code else code + "; print('ok')"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else None


# --- the pyvips peer: a process pool, one file per task, as a pyvips user would write --


def _pyvips_file(task: tuple[str, list[dict], str]) -> str | None:
    import pyvips

    path, outputs, out = task
    try:
        for o in map(lambda d: Output(**d), outputs):
            if path.lower().endswith(".heic"):
                # The pyvips-binary wheels have no HEVC decoder: pillow-heif decodes.
                im = _heic(path).thumbnail_image(o.box, height=o.box, size="down")
            else:
                im = pyvips.Image.thumbnail(path, o.box, height=o.box, size="down")
            stem = Path(path).stem
            if o.format == "jpeg":
                if im.hasalpha():
                    im = im.flatten(background=[255])
                im.jpegsave(
                    f"{out}/{o.name}/{stem}.jpg",
                    Q=o.quality,
                    interlace=True,
                    optimize_coding=True,
                    keep="none",
                )
            else:
                im.webpsave(
                    f"{out}/{o.name}/{stem}.webp", Q=o.quality, effort=o.effort, keep="none"
                )
    except pyvips.Error as exc:
        return f"{path}: {exc}"
    return None


def _heic(path: str):
    import pillow_heif
    import pyvips

    heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
    width, height = heif.size
    bands = 4 if heif.has_alpha else 3
    # Rows may be padded: then repack them through Pillow.
    data = bytes(heif.data) if heif.stride == width * bands else heif.to_pillow().tobytes()
    return pyvips.Image.new_from_memory(data, width, height, bands, "uchar")


def _pyvips_main(spec: dict) -> int:
    from multiprocessing import get_context

    tasks = [(f, spec["outputs"], spec["out"]) for f in spec["files"]]
    with get_context("spawn").Pool(spec["jobs"]) as pool:
        errors = [e for e in pool.imap_unordered(_pyvips_file, tasks) if e]
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(_pyvips_main(json.loads(sys.argv[1])))
