import os
import sys
from pathlib import Path

import pytest

# Make tests/images.py importable as "images" from every test module.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _private_state(tmp_path, monkeypatch):
    """Every test's journal in its own folder: ``amberpicd process`` keeps the daemon's journal
    (``$XDG_STATE_HOME/amberpic/journal.db``), never the real one of whoever runs the tests.
    A test that sets HOME and unsets XDG_STATE_HOME gets HOME's, which is private too."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """A private freedesktop trash (XDG_DATA_HOME is read each time something is trashed)."""
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data / "Trash"


@pytest.fixture(scope="session")
def pillow_images() -> Path:
    """Pillow's own test images (tests/corpus.py), fetched once (.ci/run fetches them first).

    Unavailable, the tests that use them FAIL, saying how to get them: a skip would make an
    offline run quietly test less. Only a deliberate AMBERPICD_TEST_NO_DOWNLOAD=1 skips
    them, and never in CI.
    """
    import corpus
    import need

    try:
        return corpus.pillow_images()
    except corpus.CorpusUnavailable as exc:
        reason = f"Pillow's test images are not available: {exc}"
        if os.environ.get(corpus.NO_DOWNLOAD_ENV):
            need.missing(reason)
        pytest.fail(
            f"{reason}; fetch them with `python tests/corpus.py` (PyPI, once per machine) or "
            f"set {corpus.NO_DOWNLOAD_ENV}=1 to skip these tests on purpose",
            pytrace=False,
        )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns the marks into groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (.ci/run), the tests of a module that share one of its own module-
    or session-scoped fixtures (one batch run read by many tests, a set of 12 MP photos)
    stay on one worker (``--dist loadgroup``), so that the fixture runs once rather than
    once per worker."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        module = getattr(item, "module", None)
        if info is None or module is None:
            continue
        if any(
            d.scope in ("module", "session") and d.func.__module__ == module.__name__
            for defs in info.name2fixturedefs.values()
            for d in defs
        ):
            item.add_marker(pytest.mark.xdist_group(module.__name__))
