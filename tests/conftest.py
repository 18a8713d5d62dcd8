import sys
from pathlib import Path

import pytest

# Make tests/images.py importable as "images" from every test module.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """A private freedesktop trash: send2trash reads XDG_DATA_HOME once, at import, so the
    module is reloaded after the variable is set (and again afterwards)."""
    import importlib

    from send2trash import plat_other

    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    importlib.reload(plat_other)
    yield data / "Trash"
    monkeypatch.undo()
    importlib.reload(plat_other)


@pytest.fixture(scope="session")
def pillow_images() -> Path:
    """Pillow's own test images (tests/corpus.py), fetched once; skips when unavailable."""
    import corpus

    try:
        return corpus.pillow_images()
    except corpus.CorpusUnavailable as exc:
        pytest.skip(f"Pillow's test images are not available: {exc}")
