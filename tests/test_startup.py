import subprocess
import sys


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
