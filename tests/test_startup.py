"""Start-up: what each process loads, and when (fresh interpreters, since the fork server
and Pillow's plugin registry are per process)."""

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

import amberpicd.ops
from amberpicd.imaging import decode

TESTS = Path(__file__).resolve().parent
# Pillow's preinit() always loads PPM too; it never opens our inputs (formats=[...]).
ALLOWED_PLUGINS = {*decode.PLUGINS, "PIL.PpmImagePlugin"}


def python(code: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(TESTS), **env},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pydantic_plugins_are_never_loaded():
    """A third-party pydantic plugin (telemetry, say) must not load into amberpicd."""
    code = (
        "import os, amberpicd.config.schema\n"
        "from pydantic.plugin import _loader\n"
        "assert os.environ['PYDANTIC_DISABLE_PLUGINS'] == '__all__'\n"
        "assert not _loader.get_plugins()\n"
    )
    env_free = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env_free, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_the_worker_preload_loads_what_a_first_job_needs_and_starts_no_thread():
    code = (
        "import os, sys, amberpicd.workers.preload\n"
        "print(len(os.listdir('/proc/self/task')))\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    threads, modules = python(code).splitlines()
    assert threads == "1"  # a thread in the fork server would be missing in every worker
    loaded = set(modules.split())
    expected = {"amberpicd.engine.pipeline", "_strptime", "pillow_heif"} | (
        ALLOWED_PLUGINS - {"PIL.AvifImagePlugin", "PIL.PpmImagePlugin"}
    )
    if importlib.util.find_spec("pyvips") is not None:
        expected.add("pyvips")
    assert expected <= loaded
    assert "PIL.PsdImagePlugin" not in loaded  # only the allowed formats' plugins


def _imported_by_the_operations() -> set[str]:
    """Every Pillow or imaging module an operation module imports, wherever the import
    stands (the operations import them inside the functions that touch pixels)."""
    found: set[str] = set()
    for path in Path(amberpicd.ops.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module == "PIL":
                    found |= {f"PIL.{alias.name}" for alias in node.names}
                else:
                    found.add(node.module)
    return {m for m in found if m.startswith(("PIL.", "amberpicd.imaging"))}


def test_the_worker_preload_loads_what_the_operations_import_when_they_run():
    """The config loads the operation models without Pillow, so the operations import it
    when they first touch pixels: the fork server must have all of that loaded already."""
    needed = _imported_by_the_operations()
    # Control: the scan sees the imports inside functions (sharpen's, to_srgb's, resize's).
    assert {"PIL.ImageFilter", "PIL.ImageCms", "amberpicd.imaging.resample"} <= needed
    loaded = set(python("import sys, amberpicd.workers.preload\nprint(*sys.modules)").split())
    assert needed <= loaded, f"not preloaded: {sorted(needed - loaded)}"


def test_workers_started_by_the_cli_come_with_the_engine_loaded():
    """``start_fork_server`` (what ``amberpicd process`` calls first) preloads the engine:
    a worker has it before its first job."""
    names = ["amberpicd.engine.pipeline", "PIL.WebPImagePlugin", "_strptime"]
    code = (
        "import workerjobs\n"
        "from amberpicd.workers.pool import WorkerPool, start_fork_server\n"
        "if __name__ == '__main__':\n"
        "    start_fork_server()\n"
        "    with WorkerPool(1) as pool:\n"
        f"        print(pool.submit(workerjobs.loaded, {names!r}).result(30))\n"
    )
    assert python(code).strip() == repr(dict.fromkeys(names, True))


def test_decoding_the_allowed_formats_loads_no_other_pillow_plugin(tmp_path):
    """Pillow imports all of its ~40 plugins the first time a format it has not loaded is
    asked for; amberpicd loads the allowed formats' plugins itself, so that never happens."""
    im = Image.new("RGB", (16, 12), (200, 100, 50))
    files = []
    for fmt, ext in [
        ("JPEG", "jpg"),
        ("PNG", "png"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("TIFF", "tif"),
        ("BMP", "bmp"),
        ("AVIF", "avif"),
    ]:
        im.save(tmp_path / f"a.{ext}", fmt)
        files.append(str(tmp_path / f"a.{ext}"))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from amberpicd.config.schema import Limits\n"
        "from amberpicd.imaging.decode import Source, read_source\n"
        f"for name in {files!r}:\n"
        "    data, _ = read_source(Path(name), Limits())\n"
        "    assert Source(Path(name), data, Limits()).decode().size == (16, 12), name\n"
        "print(' '.join(m for m in sys.modules if m.startswith('PIL.') and m.endswith('Plugin')))\n"
    )
    plugins = set(python(code).split())
    # EPS is imported on purpose: to switch Ghostscript off (decode.configure_pillow).
    assert plugins - ALLOWED_PLUGINS == {"PIL.EpsImagePlugin"}


def test_a_bad_config_still_exits_at_once(tmp_path):
    """``process`` starts the fork server before reading the config: a bad config must not
    leave it (or anything holding our output pipes) behind."""
    bad = tmp_path / "config.yaml"
    bad.write_text("rules: [}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(bad), "process", str(tmp_path)],
        capture_output=True,  # returns only once every holder of the pipes has exited
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "config.yaml" in proc.stderr
