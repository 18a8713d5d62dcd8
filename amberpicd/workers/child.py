"""The worker processes' side of the pool in ``workers.py``: the job loop, the lifeline
that ends a worker with its parent, memory limits, and exceptions made portable.

Jobs may call ``retire_after_job`` and ``limit_job_memory``; both do nothing outside a
pool worker. ``POOL_WORKER`` offers both to the engine (``engine.pipeline.Host``), which
does not import this module.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing import connection
from typing import Any

PROTOCOL = pickle.HIGHEST_PROTOCOL
_in_worker = False  # set in worker processes only
_retiring = False  # this worker exits after the current job


def engine_setup() -> None:
    """The initializer of amberpicd's engine workers: Pillow's limits and allowed formats."""
    from amberpicd.imaging.decode import configure_pillow

    configure_pillow()


def worker_main(
    conn: Any, lifeline: Any, memory_limit: int | None, initializer: Callable[[], None] | None
) -> None:
    # Both spawn and forkserver children get the parent's current sys.path and cwd from
    # multiprocessing's "preparation data" before our arguments are unpickled, so functions
    # from modules the caller made importable at run time (e.g. tests/) work here too.
    # The parent decides shutdown; a Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _in_worker
    _in_worker = True
    threading.Thread(target=_exit_when_parent_dies, args=(lifeline,), daemon=True).start()
    try:
        try:
            if memory_limit is not None:
                _limit_address_space(memory_limit)
            if initializer is not None:
                initializer()
        except BaseException as exc:
            conn.send_bytes(_dump_error(exc, "init"))
            return  # a half set-up worker must not take jobs
        conn.send_bytes(pickle.dumps(("ready", None)))
        while True:
            reply = _run_job(conn.recv_bytes())
            if _retiring:  # said first, so the pool gives us no new job after this reply
                conn.send_bytes(pickle.dumps(("retiring", None)))
            conn.send_bytes(reply)
            if _retiring:
                return
    except (EOFError, OSError):  # the pool closed our pipe: shut down quietly
        return


def _run_job(data: bytes) -> bytes:
    # A function of its own so that the job's objects are freed before the next recv.
    try:
        fn, args, kwargs = pickle.loads(data)
        result = fn(*args, **kwargs)
    except BaseException as exc:  # even SystemExit from a job must not end the worker
        return _dump_error(exc, "error")
    try:
        return pickle.dumps(("ok", result), PROTOCOL)
    except Exception as exc:
        return _dump_error(exc, "error")


def _exit_when_parent_dies(lifeline: Any) -> None:
    # Nobody writes to the lifeline and only the parent holds its other end, so it turns
    # readable (EOF) exactly when the parent is gone, even after SIGKILL; as a thread this
    # works while a job runs too (unless the job holds the GIL forever). prctl(PDEATHSIG) would
    # not do: a forkserver child's parent is the server, which only exits when all workers
    # have closed their copies of its "alive" pipe.
    connection.wait([lifeline])
    os._exit(1)


def retire_after_job() -> None:
    """Ask for this worker to be replaced once the current job's result is sent: after a
    MemoryError, a half-imported plugin or a broken allocator must not fail later jobs."""
    global _retiring
    _retiring = True


def limit_job_memory(limit: int) -> None:
    """In a pool worker, cap this job's address space (per-inbox ``worker_memory``);
    elsewhere (inline mode, tests) do nothing: the caller's own process is not ours."""
    if _in_worker:
        _limit_address_space(limit)


class _PoolWorker:
    """``engine.pipeline.Host`` in a pool worker (pickled by reference with each job)."""

    def limit_memory(self, limit: int) -> None:
        limit_job_memory(limit)

    def retire(self) -> None:
        retire_after_job()


POOL_WORKER = _PoolWorker()


def _limit_address_space(limit: int) -> None:
    import resource  # POSIX only

    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    # Huge allocations then fail with MemoryError in here instead of waking the OOM killer.
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _dump_error(exc: BaseException, kind: str) -> bytes:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for candidate in (exc, _Portable(exc)):
        try:
            data = pickle.dumps((kind, candidate, tb), PROTOCOL)
            pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
            return data
        except Exception:
            continue
    return pickle.dumps((kind, RuntimeError(repr(exc)), tb), PROTOCOL)


class _Portable:
    """Pickles an exception as class + args + __dict__, rebuilt without calling __init__:
    FileError(path, reason) keeps only its message in args, so plain unpickling fails."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self.exc), self.exc.args, self.exc.__dict__))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc
