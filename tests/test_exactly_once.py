"""Exactly once at every step of a job's life: the real daemon SIGKILLs itself at a named point
(the test-only AMBERPIC_TEST_CRASH_AT hook in amberpicd/engine/commit.py), then a restart must leave
each output once and whole, no temp file, and the original handled once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, wait_for
from PIL import Image

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
  - name: thumb
    pipeline: [{{resize: {{width: 32}}}}, {{encode: webp}}]
    output: {root}/out/thumbs/{{stem}}.{{ext}}
"""
# In the order a job lives them: worker staged → journal knows the temps → each output
# renamed into place → all published recorded → original handled → (done).
STEPS = ["staged", "recorded", "published:0", "published:1", "all_published", "original"]


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, text, **kw)
        procs.append(d)
        return d

    yield make
    for d in procs:
        d.close()


def everything(root: Path) -> list[Path]:
    return [p for p in files(root) if "state" not in p.parts[len(root.parts) :]]


@pytest.mark.parametrize("originals", ["keep", "move", "delete"])
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_restart_is_exactly_once(daemon, tmp_path, step, originals):
    d = daemon(CONFIG.replace("ORIGINALS", originals), extra_env={"AMBERPIC_TEST_CRASH_AT": step})
    d.start()
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    d.proc.wait(30)
    assert d.proc.returncode == -9, f"the hook did not fire at {step}:\n{d.logs()}"
    d.kill()  # its workers too
    d.env.pop("AMBERPIC_TEST_CRASH_AT")
    d.start()
    wait_for(lambda: [h["state"] for h in d.history()] == ["done"], 30, "the job to be done")
    wait_for(d.idle)
    archive = tmp_path / "archive"
    assert sorted(p.relative_to(d.out).as_posix() for p in files(d.out)) == [
        "IMG_1.png",
        "thumbs/IMG_1.webp",
    ], "an output is missing or doubled"
    for p in files(d.out):
        with Image.open(p) as im:
            im.load()  # whole
    assert not [p for p in everything(tmp_path) if p.name.startswith(".amberpic-")]
    if originals == "keep":
        assert src.read_bytes() == original and not files(archive)
    elif originals == "move":
        assert not src.exists()
        assert [p.name for p in files(archive)] == ["IMG_1.jpg"]
        assert (archive / "IMG_1.jpg").read_bytes() == original
    else:
        assert not src.exists() and not files(archive)
    # A later file is processed normally: the daemon is healthy after the recovery.
    images.jpeg(d.inbox / "later.jpg", description="later")
    wait_for((d.out / "later.png").exists)


def test_crash_hook_is_off_without_the_variable(daemon):
    d = daemon(CONFIG.replace("ORIGINALS", "keep"))  # control run for the test above
    d.start()
    images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    wait_for(lambda: [h["state"] for h in d.history()] == ["done"], 30)
    assert d.proc.poll() is None


# --- a property over random interleavings --------------------------------------------------

PROPERTY_CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 2
watch:
  - inbox: {root}/inbox
rules:
  - name: web
    pipeline: [{{resize: {{width: 48}}}}, {{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""
_rendered: dict[int, bytes] = {}


def _content(seed: int, path: Path) -> None:
    images.jpeg(path, (96, 72), description=f"content {seed}")


def _render(seed: int, tmp: Path) -> bytes:
    """What the rule makes of content ``seed``, by ``amberpicd process`` (no daemon)."""
    if seed not in _rendered:
        work = tmp / f"render-{seed}"
        (work / "inbox").mkdir(parents=True)
        d = DaemonProc(work, PROPERTY_CONFIG)
        _content(seed, work / "inbox" / "r.jpg")
        proc = d.cli("process", str(work / "inbox" / "r.jpg"))
        assert proc.returncode == 0, proc.stderr
        _rendered[seed] = (work / "out" / "r.png").read_bytes()
        d.close()
    return _rendered[seed]


def _family(name: str, stem: str) -> bool:
    base = name.rsplit(".", 1)[0]
    return base == stem or (base.startswith(f"{stem}-") and base[len(stem) + 1 :].isdigit())


@pytest.mark.slow
def test_random_drops_renames_replacements_and_kills_keep_the_disk_right(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    action = st.one_of(
        st.tuples(st.just("drop"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("replace"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("rename"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("kill"), st.just(0), st.just(0)),
        st.tuples(st.just("settle"), st.just(0), st.just(0)),
    )

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(action, min_size=2, max_size=8))
    def run(actions):
        root = tmp_path_factory.mktemp("prop")
        d = DaemonProc(root, PROPERTY_CONFIG)
        try:
            d.inbox.mkdir(parents=True)
            d.start()
            model: dict[str, int] = {}  # what the inbox holds: name -> content seed
            for kind, a, b in actions:
                name = f"f{a}.jpg"
                if kind in ("drop", "replace"):
                    if kind == "drop" and name in model:
                        continue
                    part = root / f".part-{a}.jpg"
                    _content(b, part)
                    os.replace(part, d.inbox / name)  # atomic, as a downloader's rename is
                    model[name] = b
                elif kind == "rename":
                    target = f"f{b}.jpg"
                    if name not in model or target in model:
                        continue
                    os.rename(d.inbox / name, d.inbox / target)
                    model[target] = model.pop(name)
                elif kind == "kill":
                    d.kill()
                    d.start()
                else:
                    wait_for(d.idle, 60, "the daemon to settle")
            time.sleep(1.0)  # past settle_seconds: every event has reached the queue
            wait_for(lambda: d.idle() and not d.status()["queue"], 90, "the daemon to finish")
            outputs = {p.name: p.read_bytes() for p in files(d.out)}
            leftovers = [p for p in files(root) if p.name.startswith(".amberpic-")]
            assert not leftovers, leftovers
            assert {p.name: p for p in files(d.inbox)}.keys() == model.keys()  # keep: untouched
            for name, seed in model.items():
                assert _render(seed, root) in outputs.values(), f"{name}: no output of it"
            for stem in {n.rsplit(".", 1)[0].rsplit("-", 1)[0] for n in outputs}:
                family = [data for n, data in outputs.items() if _family(n, stem)]
                assert len(family) == len(set(family)), f"{stem}: the same output twice"
            for p in files(d.out):
                with Image.open(p) as im:
                    im.load()
        finally:
            d.close()

    run()


SKIP_CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: delete
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
    on_conflict: skip
"""


@pytest.mark.parametrize("step", ["published:0", "all_published"])
def test_sigkill_after_a_skipped_publish_never_deletes_the_original(daemon, step):
    """on_conflict: skip and the name is taken by another picture's output. A kill -9 just
    after publish found the name taken must not let the restart count that other file as
    this job's output and delete the original, whose content then exists nowhere."""
    d = daemon(SKIP_CONFIG, extra_env={"AMBERPIC_TEST_CRASH_AT": step})
    d.out.mkdir(parents=True)
    (d.out / "IMG_1.png").write_bytes(b"another picture entirely")
    d.start()
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    d.proc.wait(30)
    assert d.proc.returncode == -9, f"the hook did not fire at {step}:\n{d.logs()}"
    d.kill()
    d.env.pop("AMBERPIC_TEST_CRASH_AT")
    d.start()
    wait_for(lambda: [h["state"] for h in d.history()][:1] == ["done"], 30, "the job to end")
    wait_for(d.idle)
    assert src.read_bytes() == original, "the original went, with no output of its own"
    assert (d.out / "IMG_1.png").read_bytes() == b"another picture entirely"
    assert not [p for p in everything(d.root) if p.name.startswith(".amberpic-")]


def test_two_interrupted_jobs_of_one_file_are_run_once(daemon, tmp_path):
    """One job per path, also for recovery: two jobs of one file left running (a job whose
    records could not be written is superseded only once the journal heals; a kill -9
    before that leaves both) are not both run, each publishing and handling the original."""
    import sqlite3

    d = daemon(CONFIG.replace("ORIGINALS", "move"), extra_env={"AMBERPIC_TEST_CRASH_AT": "staged"})
    d.start()
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    d.proc.wait(30)
    assert d.proc.returncode == -9, d.logs()
    d.kill()
    (db,) = [p for p in files(tmp_path / "state") if p.suffix in (".db", ".sqlite")]
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(jobs)") if r[1] != "id"]
        names = ", ".join(cols)
        conn.execute(f"INSERT INTO jobs ({names}) SELECT {names} FROM jobs WHERE id = 1")
        assert conn.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone() == (2,)
    d.env.pop("AMBERPIC_TEST_CRASH_AT")
    d.start()
    wait_for(lambda: "done" in [h["state"] for h in d.history()], 30, "the job to be done")
    wait_for(d.idle)
    states = sorted(h["state"] for h in d.history())
    assert "original_failed" not in states and "failed" not in states, (states, d.logs())
    assert sorted(p.relative_to(d.out).as_posix() for p in files(d.out)) == [
        "IMG_1.png",
        "thumbs/IMG_1.webp",
    ]
    assert not src.exists()
    assert [p.read_bytes() for p in files(tmp_path / "archive")] == [original]


def test_replaced_between_publish_and_original_step_is_left_then_processed(daemon, tmp_path):
    """kill -9 after the outputs are published; the name then gets other bytes. Recovery must
    leave that file (its content was never processed), and the new bytes get their own job."""
    d = daemon(
        CONFIG.replace("ORIGINALS", "move"), extra_env={"AMBERPIC_TEST_CRASH_AT": "all_published"}
    )
    d.start()
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    d.proc.wait(30)
    assert d.proc.returncode == -9, d.logs()
    d.kill()
    new = images.jpeg(tmp_path / "incoming.jpg", (120, 90), description="new bytes")
    newer = new.read_bytes()
    os.replace(new, src)
    d.env.pop("AMBERPIC_TEST_CRASH_AT")
    d.start()
    wait_for(lambda: not src.exists(), 30, "the new bytes to be processed and moved")
    wait_for(d.idle)
    states = sorted(h["state"] for h in d.history())
    assert states == ["done", "original_failed"], (states, d.logs())
    assert [p.read_bytes() for p in files(tmp_path / "archive")] == [newer]
    names = sorted(p.relative_to(d.out).as_posix() for p in files(d.out))
    assert names == ["IMG_1-1.png", "IMG_1.png", "thumbs/IMG_1-1.webp", "thumbs/IMG_1.webp"]
    with Image.open(d.out / "IMG_1-1.png") as im:
        assert im.size == (120, 90)  # the new content's own output
