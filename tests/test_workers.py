"""WorkerPool with real worker processes: crashes, timeouts, limits, shutdown, parent death."""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
import workerjobs as jobs

from amberpicd.errors import DecodeError, WorkerLost
from amberpicd.workers.pool import WorkerPool

RESULT = 20  # seconds: an upper bound for any single result, never a synchronisation sleep
REPO = Path(__file__).resolve().parent.parent


def wait_until(condition, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has exited already)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    """True once ``pid`` has exited and been reaped: not even a zombie is left."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
def pool():
    with WorkerPool(2) as p:
        yield p


@pytest.mark.parametrize("context", ["forkserver", "spawn"])
def test_results_come_back_from_two_workers_running_at_once(tmp_path, context):
    with WorkerPool(2, context=context) as p:
        a = p.submit(jobs.rendezvous, str(tmp_path), "a", "b")
        b = p.submit(jobs.rendezvous, str(tmp_path), "b", "a")
        assert (a.result(RESULT), b.result(RESULT)) == ("a", "b")
        assert p.submit(jobs.add, 2, b=3).result(RESULT) == 5
        assert p.submit(jobs.whoami).result(RESULT)[0] in p.pids
        assert os.getpid() not in p.pids


def test_jobs_from_a_path_added_after_the_forkserver_started(pool, tmp_path, monkeypatch):
    assert pool.submit(jobs.echo, 1).result(RESULT) == 1  # the forkserver runs by now
    (tmp_path / "late_jobs_module.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "late_jobs_module", raising=False)
    late = importlib.import_module("late_jobs_module")
    with WorkerPool(1) as p:
        assert p.submit(late.triple, 5).result(RESULT) == 15


def test_exception_keeps_type_and_message_and_worker_survives(pool):
    with pytest.raises(ValueError, match=r"^bad input$") as info:
        pool.submit(jobs.fail, "bad input").result(RESULT)
    assert "in fail" in str(info.value.__cause__)  # the worker's traceback rides along
    assert pool.submit(jobs.echo, "still fine").result(RESULT) == "still fine"


def test_project_errors_survive_the_trip_despite_their_init(pool):
    # FileError(path, reason) does not unpickle by default; the pool rebuilds it.
    with pytest.raises(DecodeError) as info:
        pool.submit(jobs.fail_file_error, "IMG_1.heic").result(RESULT)
    assert str(info.value) == "IMG_1.heic: decode failed: file is truncated"
    assert (info.value.path.name, info.value.reason) == ("IMG_1.heic", "file is truncated")


def test_unpicklable_exception_and_result_become_errors(pool):
    with pytest.raises(RuntimeError, match=r"_Unpicklable\('lost'\)"):
        pool.submit(jobs.fail_unpicklable, "lost").result(RESULT)
    with pytest.raises(TypeError, match="pickle"):
        pool.submit(jobs.return_unpicklable).result(RESULT)
    with pytest.raises(TypeError, match="pickle"):  # unpicklable call: a failed future
        pool.submit(jobs.echo, threading.Lock()).result(RESULT)
    assert pool.submit(jobs.echo, 1).result(RESULT) == 1


def test_segfault_costs_one_job_only(pool):
    with pytest.raises(WorkerLost, match=r"^worker crashed \(signal 11: SIGSEGV\)$"):
        pool.submit(jobs.segfault).result(RESULT)
    with pytest.raises(WorkerLost, match=r"^worker crashed \(exit code 3\)$"):
        pool.submit(jobs.exit_now, 3).result(RESULT)
    results = [pool.submit(jobs.add, i, 1) for i in range(6)]
    assert [f.result(RESULT) for f in results] == list(range(1, 7))
    assert pool.busy == 0 and len(pool.pids) <= 2


def test_timeout_kills_only_that_worker(pool, tmp_path):
    flag = tmp_path / "go"
    other = pool.submit(jobs.wait_for_file, str(flag))
    hung = pool.submit(jobs.sleep_forever, timeout=1)
    wait_until(lambda: pool.busy == 2)
    before = set(pool.pids)
    with pytest.raises(WorkerLost, match=r"^timed out after 1 s$"):
        hung.result(RESULT)
    flag.touch()
    assert other.result(RESULT) == "seen"  # the other worker's job was not disturbed
    assert pool.submit(jobs.echo, "after").result(RESULT) == "after"
    assert len(before - set(pool.pids)) == 1
    assert all(gone(pid) for pid in before - set(pool.pids))


def test_memory_limit_turns_a_huge_allocation_into_memoryerror():
    with WorkerPool(1, memory_limit=1 << 30) as p:
        with pytest.raises(MemoryError):
            p.submit(jobs.allocate, 2 << 30).result(RESULT)
        assert p.submit(jobs.allocate, 10 << 20).result(RESULT) == 10 << 20  # same worker lives


def test_initializer_runs_in_each_worker():
    with WorkerPool(1, initializer=jobs.mark_initialized) as p:
        assert p.submit(jobs.is_initialized).result(RESULT) is True
    assert jobs.INITIALIZED is False  # not in this process


def test_failing_initializer_fails_jobs_instead_of_hanging():
    with WorkerPool(2, initializer=jobs.broken_initializer) as p:
        futures = [p.submit(jobs.echo, i) for i in range(3)]
        for f in futures:
            with pytest.raises(WorkerLost, match=r"initializer raised ValueError\('no codecs"):
                f.result(RESULT)
        assert p.pids == [] or all(not running(pid) for pid in p.pids)


def test_pending_and_busy_counts(tmp_path):
    flag = tmp_path / "go"
    with WorkerPool(1) as p:
        first = p.submit(jobs.wait_for_file, str(flag))
        rest = [p.submit(jobs.echo, i) for i in range(2)]
        wait_until(lambda: (p.busy, p.pending) == (1, 2))
        flag.touch()
        assert first.result(RESULT) == "seen"
        assert [f.result(RESULT) for f in rest] == [0, 1]
        assert (p.busy, p.pending) == (0, 0)


def test_submit_from_many_threads(pool):
    results: dict[int, object] = {}

    def client(base: int) -> None:
        futures = [(base + i, pool.submit(jobs.add, base, i)) for i in range(25)]
        for key, f in futures:
            results[key] = f.result(RESULT)

    threads = [threading.Thread(target=client, args=(n * 100,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n * 100 + i: n * 100 + i for n in range(4) for i in range(25)}


def test_close_finishes_queued_jobs_and_leaves_no_children():
    p = WorkerPool(2)
    futures = [p.submit(jobs.whoami) for _ in range(8)]
    p.close()  # returns only when the queue is done and the workers are joined
    pids = {f.result(0)[0] for f in futures}
    assert 1 <= len(pids) <= 2
    assert multiprocessing.active_children() == []
    assert all(gone(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        p.submit(jobs.echo, 1)


def test_close_with_grace_kills_running_and_cancels_pending():
    p = WorkerPool(1)
    hung = p.submit(jobs.sleep_forever)
    queued = [p.submit(jobs.echo, i) for i in range(3)]
    wait_until(lambda: p.busy == 1)
    pid = p.pids[0]
    started = time.monotonic()
    p.close(cancel_pending=True, grace=0.5)
    assert time.monotonic() - started < 5
    with pytest.raises(WorkerLost, match="pool closed"):
        hung.result(0)
    for f in queued:
        with pytest.raises(CancelledError):
            f.result(0)
    assert multiprocessing.active_children() == []
    assert gone(pid)


def test_close_without_wait_stops_at_once():
    p = WorkerPool(2)
    hung = [p.submit(jobs.sleep_forever) for _ in range(2)]
    wait_until(lambda: p.busy == 2)
    pids = p.pids
    p.close(wait=False)
    for f in hung:
        with pytest.raises(WorkerLost):
            f.result(0)
    assert all(gone(pid) for pid in pids)
    assert multiprocessing.active_children() == []


def test_workers_ignore_sigint(pool):
    pid = pool.submit(jobs.whoami).result(RESULT)[0]
    os.kill(pid, signal.SIGINT)
    assert pool.submit(jobs.whoami).result(RESULT)[0] == pid


PARENT = """
import sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
from amberpicd.workers.pool import WorkerPool
import workerjobs as jobs
pool = WorkerPool(2, context={context!r})
quick = pool.submit(jobs.whoami)  # leaves one worker idle (blocked reading its pipe)
hung = pool.submit(jobs.sleep_forever)  # and one in the middle of a job
idle_pid, server_pid = quick.result(20)
while pool.busy != 1 or len(pool.pids) != 2:
    time.sleep(0.01)
print(*pool.pids, server_pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("context", ["forkserver", "spawn"])
def test_workers_die_with_a_killed_parent(tmp_path, context):
    # The parent runs from an unrelated directory with amberpicd only on its runtime sys.path.
    script = PARENT.format(repo=str(REPO), tests=str(REPO / "tests"), context=context)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()
        assert line, "the parent script failed"
        pids = [int(word) for word in line.split()]
        assert all(running(pid) for pid in pids)
        parent.kill()
        parent.wait()
        wait_until(lambda: not any(running(pid) for pid in pids), deadline=5)
    finally:
        parent.kill()
        parent.wait()
        parent.stdin.close()
        parent.stdout.close()


def test_inline_mode_runs_in_the_calling_thread(tmp_path):
    p = WorkerPool(0, initializer=functools.partial(jobs.echo, None))
    f = p.submit(jobs.whoami, timeout=0.001)
    assert f.done() and f.result()[0] == os.getpid()
    with pytest.raises(ValueError, match="inline"):
        p.submit(jobs.fail, "inline").result()
    assert (p.busy, p.pending, p.pids) == (0, 0, [])
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.submit(jobs.echo, 1)


def test_inline_mode_runs_the_initializer_here(monkeypatch):
    monkeypatch.setattr(jobs, "INITIALIZED", False)
    WorkerPool(0, initializer=jobs.mark_initialized).close()
    assert jobs.INITIALIZED is True


def test_bad_arguments():
    with pytest.raises(ValueError):
        WorkerPool(-1)
    with pytest.raises(ValueError):
        WorkerPool(1, context="fork")


def test_a_retiring_worker_returns_its_result_and_is_replaced() -> None:
    with WorkerPool(1) as pool:
        first = pool.submit(jobs.retire_and_report_pid).result(timeout=RESULT)
        results = [pool.submit(jobs.whoami).result(timeout=RESULT)[0] for _ in range(3)]
    assert first not in results  # a fresh worker took the next jobs
    assert len(set(results)) == 1  # and kept them: only the asking worker retired


def test_warm_starts_every_worker_before_any_job_and_jobs_use_them():
    with WorkerPool(2, initializer=jobs.mark_initialized) as p:
        assert p.pids == []  # control: without warm() no worker starts before a job
        p.warm()
        wait_until(lambda: len(p.pids) == 2)
        warmed = set(p.pids)
        results = [p.submit(jobs.whoami) for _ in range(4)]
        used = {f.result(RESULT)[0] for f in results}
        assert used <= warmed  # no worker started for the jobs: the warm ones took them
        assert p.submit(jobs.is_initialized).result(RESULT) is True
    assert all(gone(pid) for pid in warmed)


def test_warm_then_close_without_jobs_leaves_no_children():
    with WorkerPool(2) as p:
        p.warm()
        wait_until(lambda: len(p.pids) == 2)
        pids = p.pids
    assert all(gone(pid) for pid in pids)


def test_warm_with_a_broken_initializer_starts_each_worker_once_and_jobs_still_fail(tmp_path):
    starts = tmp_path / "starts"
    starts.mkdir()
    with WorkerPool(2, initializer=functools.partial(jobs.note_start_then_fail, str(starts))) as p:
        p.warm()
        wait_until(lambda: len(os.listdir(starts)) == 2 and p.pids == [])
        with pytest.raises(WorkerLost, match=r"initializer raised ValueError"):
            p.submit(jobs.echo, 1).result(RESULT)
    # Two warm starts, one for the job: a failing worker is not restarted for no job.
    assert len(os.listdir(starts)) == 3


def test_warm_with_a_count_starts_no_more_workers_than_asked():
    with WorkerPool(3) as p:
        p.warm(1)
        wait_until(lambda: len(p.pids) == 1)
        first = p.pids
        assert p.submit(jobs.whoami).result(RESULT)[0] in first
        assert len(p.pids) == 1  # one job, one worker: the warm one took it
