"""Hostile input through the real engine: ``amberpicd process --json -j 2`` as a subprocess
over crafted files (tests/corpus.py) and Pillow's own test images, fuzz reproducers
included (fetched at test time, never committed).

For every file: the run ends within its deadline (a FIFO or device file that blocked
would hang it), the file gets exactly one JSON line, a failure is one line starting with
the file's name, every output decodes cleanly and obeys its rule (format, box, no
metadata, by Pillow and by exiftool), the original is byte-identical afterwards and no
temp file is left.

The full Pillow corpus is ``slow``; ``pytest -m 'not slow'`` skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import corpus
import need
import pytest
from exifcheck import exiftool, leaks
from PIL import Image

from amberpicd.errors import printable

JOBS = 2
WEB_BOX = (256, 256)  # rule "web": fit inside, watermark, WebP
THUMB_BOX = (128, 96)  # rule "thumb": fill (crop) to this box, JPEG
MAX_FRAMES = 100
STATUSES = {"done", "failed", "unmatched", "skipped"}
FORMATS = {".webp": "WEBP", ".jpg": "JPEG"}


def write_config(base: Path, inbox: Path, out: Path, job_timeout: float = 20) -> Path:
    config = base / "config.yaml"
    config.write_text(
        f"""
version: 1
limits:
  job_timeout: {job_timeout}
  max_pixels: 50000000
  worker_memory: 2GiB
  max_frames: {MAX_FRAMES}
watch:
  - inbox: {inbox}
    recursive: true
    originals: keep
    limits:
      max_file_bytes: 8MiB   # per inbox, over the global default
rules:
  - name: web
    pipeline:
      - auto_orient
      - resize: {{width: {WEB_BOX[0]}, height: {WEB_BOX[1]}, mode: fit}}
      - watermark: {{text: "© torture test", opacity: 0.6}}
      - encode: {{format: webp, quality: 70}}
    output: {out}/web/{{relpath}}/{{stem}}-web256.{{ext}}
  - name: thumb
    pipeline:
      - resize: {{width: {THUMB_BOX[0]}, height: {THUMB_BOX[1]}, mode: fill}}
      - encode: jpeg
    output: {out}/thumb/{{relpath}}/{{stem}}.{{ext}}
"""
    )
    return config


def snapshot(root: Path) -> dict[bytes, tuple]:
    """Every entry below ``root`` (links not followed): kind and content hash."""
    seen: dict[bytes, tuple] = {}
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    seen[path] = ("file", hashlib.sha256(f.read()).hexdigest(), st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                seen[path] = ("link", os.readlink(path))
            else:
                seen[path] = (stat.S_IFMT(st.st_mode), st.st_rdev)
    return seen


@dataclass
class Run:
    inbox: Path
    out: Path
    entries: list[corpus.Entry]
    rows: dict[bytes, dict]
    stderr: str
    returncode: int
    seconds: float


def run_process(base: Path, entries: list[corpus.Entry], deadline: float) -> Run:
    """``amberpicd process`` over ``base/inbox``, checked file by file."""
    inbox, out = base / "inbox", base / "out"
    config = write_config(base, inbox, out)
    before = {**snapshot(inbox), **snapshot(base / "outside")}
    (base / "home").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json"]
    cmd += ["-j", str(JOBS), str(inbox)]
    # A UTF-8 terminal's stdout is strict: a raw undecodable byte in a name would crash.
    env = {**os.environ, "HOME": str(base / "home"), "PYTHONIOENCODING": "utf-8:strict"}
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers
        proc.communicate()
        pytest.fail(f"amberpicd process did not finish within {deadline} s")
    finally:
        corpus.cleanup_special(inbox)
    seconds = time.monotonic() - started
    rows: dict[bytes, dict] = {}
    for line in stdout.decode("utf-8").splitlines():  # strict: the JSON must be valid UTF-8
        row = json.loads(line)
        source = os.fsencode(row["source"])
        assert source not in rows, f"{row['source']!r} reported twice"
        rows[source] = row
    run = Run(
        inbox, out, entries, rows, stderr.decode("utf-8", "replace"), proc.returncode, seconds
    )
    after = {**snapshot(inbox), **snapshot(base / "outside")}
    special = {p for p, v in before.items() if v[0] not in ("file", "link")}
    assert {k: v for k, v in after.items() if k not in special} == {
        k: v for k, v in before.items() if k not in special
    }, "an original or the inbox changed"
    return run


def check_run(run: Run) -> None:
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
    inbox = os.fsencode(run.inbox)
    expected = {os.path.join(inbox, e.fsname): e for e in run.entries if e.walked}
    missing = [os.fsdecode(p) for p in expected if p not in run.rows]
    assert not missing, f"no JSON line for {missing}"
    extra = [os.fsdecode(p) for p in run.rows if p not in expected]
    assert not extra, f"lines for files that must not be read: {extra}"
    problems = []
    for path, entry in expected.items():
        problems += check_file(run, path, entry, run.rows[path])
    assert not problems, "\n".join(problems)
    check_no_temp_files(run.inbox.parent)
    reported = {Path(o) for row in run.rows.values() for o in row["outputs"]}
    written = {p for p in run.out.rglob("*") if p.is_file()} if run.out.exists() else set()
    assert written == reported, f"outputs nobody reported: {written - reported}"
    # The default metadata policy, checked by an independent reader on every output.
    found = {}
    for tags in exiftool(*sorted(reported)) if reported else []:
        fmt = FORMATS[Path(tags["SourceFile"]).suffix].lower()
        if leaks(tags, fmt):
            found[tags["SourceFile"]] = leaks(tags, fmt)
    assert not found, found


def check_file(run: Run, path: bytes, entry: corpus.Entry, row: dict) -> list[str]:
    name = printable(os.fsdecode(os.path.basename(path)))
    where = os.fsdecode(path)
    status, error = row["status"], row["error"]
    if status not in STATUSES:
        return [f"{where}: status {status!r}"]
    if status == "failed":
        if not error or len(error.splitlines()) != 1 or not error.startswith(f"{name}: "):
            return [f"{where}: error is not one line starting with the name: {error!r}"]
        if entry.expect not in (None, "failed") and entry.expect not in error:
            return [f"{where}: expected {entry.expect!r}, got {error!r}"]
        return []
    if entry.expect is not None and entry.expect != status:
        return [f"{where}: expected {entry.expect!r}, got {status} ({row['outputs']})"]
    if status != "done":
        return []
    if row["rules"] != ["web", "thumb"] or len(row["outputs"]) != 2:
        return [f"{where}: rules {row['rules']}, outputs {row['outputs']}"]
    return [f"{where}: {p}" for p in check_outputs(run, row["outputs"])]


def check_outputs(run: Run, outputs: list[str]) -> list[str]:
    problems = []
    for output, (rule, box) in zip(outputs, (("web", WEB_BOX), ("thumb", THUMB_BOX)), strict=True):
        path = Path(output)
        if not path.is_relative_to(run.out / rule):
            problems.append(f"{output} is outside {run.out / rule}")
            continue
        fmt = FORMATS.get(path.suffix)
        if fmt is None or fmt != ("WEBP" if rule == "web" else "JPEG"):
            problems.append(f"{output}: wrong extension for rule {rule}")
            continue
        try:
            with Image.open(path, formats=[fmt]) as im:
                frames = getattr(im, "n_frames", 1)
                for index in range(frames):
                    im.seek(index)
                    im.load()
                meta = {"exif", "xmp", "comment", "icc_profile"} & set(im.info)
                if im.getexif() or meta - {"icc_profile"}:
                    problems.append(f"{output}: carries {sorted(meta) or 'EXIF'}")
                if not (1 <= im.width <= box[0] and 1 <= im.height <= box[1]):
                    problems.append(f"{output}: {im.size} is outside the {box} box")
                if frames > MAX_FRAMES:
                    problems.append(f"{output}: {frames} frames")
        except Exception as exc:  # any decoder complaint (warnings are errors here too)
            problems.append(f"{output}: does not decode cleanly: {exc!r}")
    return problems


def check_no_temp_files(root: Path) -> None:
    temps = [
        os.path.join(folder, name)
        for folder, dirs, files in os.walk(os.fsencode(root))
        for name in dirs + files
        if name.startswith(b".amberpic-")
    ]
    assert not temps, f"temp files left: {temps}"


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("crafted")
    entries = corpus.populate(base / "inbox", corpus.crafted())
    return run_process(base, entries, deadline=120)


def test_crafted_corpus(crafted_run: Run):
    check_run(crafted_run)


def test_every_crafted_file_says_what_must_become_of_it():
    # "Any clean outcome" (expect None) is for files we did not make; a crafted file that
    # may be done or fail alike would test nothing about itself.
    vague = [e.name for e in corpus.crafted() if e.expect is None and e.walked]
    assert vague == []


def test_refusals_name_the_limit_and_the_value(crafted_run: Run):
    def error(name: str) -> str:
        path = os.path.join(os.fsencode(crafted_run.inbox), os.fsencode(name))
        return crafted_run.rows[path]["error"]

    assert error("huge/huge.png") == "huge.png: 10000000000 pixels exceeds max_pixels 50000000"
    assert re.fullmatch(
        r"oversize\.png: \d+ bytes exceeds max_file_bytes 8388608", error("limits/oversize.png")
    )
    assert error("frames/150-frames.gif") == "150-frames.gif: 150 frames exceeds max_frames 100"


def test_odd_names_give_safe_outputs_inside_the_root(crafted_run: Run):
    for path, row in crafted_run.rows.items():
        if b"/names/" not in path or row["status"] != "done":
            continue
        for output in row["outputs"]:
            name = os.fsencode(Path(output).name)
            assert len(name) <= 250, output  # room for a "-9999" on a name clash
            assert Path(output).suffix in FORMATS, output  # the extension survived the cut
            assert printable(output) == output, f"control characters in {output!r}"
            output.encode("utf-8")  # no undecodable bytes either


def test_device_file_is_never_read(crafted_run: Run):
    device = os.path.join(os.fsencode(crafted_run.inbox), b"special/zero-device.jpg")
    if not any(e.kind == "device" for e in crafted_run.entries):
        need.missing("cannot create a device file here (needs root and a filesystem allowing it)")
    assert crafted_run.rows[device]["error"] == "zero-device.jpg: not a regular file"


def test_pillow_sample(tmp_path: Path, pillow_images: Path):
    entries = corpus.copy_pillow(
        pillow_images, corpus.quick_pillow_files(pillow_images), tmp_path / "inbox"
    )
    assert len(entries) >= 30, "Pillow's test images moved: update corpus.QUICK_PILLOW"
    run = run_process(tmp_path, entries, deadline=120)
    check_run(run)
    by_name = {os.fsdecode(p).split("/pillow/")[1]: r for p, r in run.rows.items()}
    assert by_name["decompression_bomb_extents.gif"]["error"].endswith(
        "pixels exceeds max_pixels 50000000"
    )
    assert by_name["fujifilm.mpo"]["error"].endswith("bytes exceeds max_file_bytes 8388608")
    assert by_name["test_extents.gif"]["status"] == "done"  # frames past the screen: cropped
    assert by_name["cmx3g8_wv_1998.260_0745_mcidas.tiff"]["status"] == "done"  # I;16B
    assert "unsupported format eps" in by_name[QUICK_EPS]["error"]  # Ghostscript never ran


QUICK_EPS = "eps/timeout-d675703545fee17acab56e5fec644c19979175de.eps"


@pytest.mark.slow
def test_full_pillow_corpus(tmp_path: Path, pillow_images: Path):
    entries = corpus.copy_pillow(
        pillow_images, corpus.pillow_files(pillow_images), tmp_path / "inbox"
    )
    assert len(entries) > 700
    run = run_process(tmp_path, entries, deadline=900)
    check_run(run)
    done = sum(r["status"] == "done" for r in run.rows.values())
    assert done > 400, f"only {done} of {len(entries)} files processed"


def test_a_file_that_hangs_its_worker_fails_once_and_the_run_goes_on(tmp_path: Path):
    """A job past ``job_timeout`` costs its worker and is reported once (never retried);
    the other files, and the files of another inbox with its own limit, are processed."""
    slow, fine = tmp_path / "slow", tmp_path / "fine"
    # 49 MP to decode, resample and encode: far more than the 50 ms this inbox allows.
    bomb = corpus.Entry("bomb.png", corpus.png_zeros(7000, 7000, color=0))
    small = corpus.encoded(Image.new("RGB", (40, 30)), "PNG")
    corpus.populate(slow, [bomb, corpus.Entry("small.png", small)])
    corpus.populate(fine, [corpus.Entry(f"ok-{n}.png", small) for n in range(3)])
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
watch:
  - inbox: {slow}
    limits: {{job_timeout: 0.05}}
  - inbox: {fine}
rules:
  - name: web
    pipeline: [{{resize: {{width: 100}}}}, {{encode: webp}}]
    output: {tmp_path}/out/{{stem}}.{{ext}}
"""
    )
    cmd = [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json"]
    proc = subprocess.run(
        [*cmd, "-j", "1", str(slow), str(fine)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {Path(r["source"]).name: r for r in rows}
    assert len(rows) == len(by_name) == 5  # one line each: nothing retried
    assert by_name["bomb.png"]["error"] == "bomb.png: worker failed: timed out after 0.05 s"
    for n in range(3):
        assert by_name[f"ok-{n}.png"]["status"] == "done"
        assert_decodes_to(by_name[f"ok-{n}.png"]["outputs"], "WEBP", (40, 30))  # no enlarging
    # The slow inbox's small file may or may not make its 50 ms on a loaded machine: either
    # way exactly one of two outcomes, each checked in full.
    small_row = by_name["small.png"]
    if small_row["status"] == "failed":
        assert small_row["error"] == "small.png: worker failed: timed out after 0.05 s"
        assert small_row["outputs"] == []
    else:
        assert small_row["status"] == "done", small_row
        assert_decodes_to(small_row["outputs"], "WEBP", (40, 30))  # no enlarging
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    expected = ["ok-0.webp", "ok-1.webp", "ok-2.webp"]
    assert written == sorted(expected + (["small.webp"] if small_row["status"] == "done" else []))
    check_no_temp_files(tmp_path)


def assert_decodes_to(outputs: list[str], fmt: str, size: tuple[int, int]) -> None:
    assert len(outputs) == 1, outputs
    with Image.open(outputs[0], formats=[fmt]) as im:
        im.load()
        assert im.size == size, outputs[0]


def test_a_file_too_big_for_worker_memory_fails_alone(tmp_path: Path):
    """Under a small ``worker_memory``, a 99 MP RGBA image (400 MB of pixels) fails with a
    MemoryError turned into one line, and small files still pass, after it too: reading
    a file costs its size, not the ``max_file_bytes`` limit (512 MiB by default)."""
    inbox = tmp_path / "inbox"
    bomb = corpus.Entry("bomb.png", corpus.png_zeros(9950, 9950, color=6))
    small = corpus.encoded(Image.new("RGB", (40, 30)), "PNG")
    corpus.populate(inbox, [bomb, *(corpus.Entry(f"ok-{n}.png", small) for n in range(2))])
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
limits: {{worker_memory: 250MiB}}
rules:
  - name: web
    pipeline: [{{resize: {{width: 100}}}}, {{watermark: "x"}}, {{encode: webp}}]
    output: {tmp_path}/out/{{stem}}.{{ext}}
"""
    )
    cmd = [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json"]
    proc = subprocess.run([*cmd, "-j", "1", str(inbox)], capture_output=True, text=True, timeout=60)
    by_name = {Path(r["source"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert by_name["bomb.png"]["error"].startswith("bomb.png: ")
    assert by_name["bomb.png"]["error"].endswith("out of memory (worker_memory limit)")
    assert [by_name[f"ok-{n}.png"]["status"] for n in range(2)] == ["done", "done"]
    check_no_temp_files(tmp_path)
