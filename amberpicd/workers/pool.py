"""A small process pool that survives its workers: a codec that segfaults, hangs or eats memory
costs one worker process and fails one job, never the caller or the other jobs.

Why not the stdlib pools: a SIGSEGV in a ProcessPoolExecutor worker breaks the whole pool
(BrokenProcessPool for every later job), and multiprocessing.Pool silently loses the task so
get() hangs (cpython issue 82265). Here every worker has its own pipe and runs one job at a
time, so a dead worker is noticed (its sentinel fires) and blamed on exactly one job.

One dispatcher thread owns the workers. It blocks in multiprocessing.connection.wait() on the
pipes, the process sentinels and a self-pipe that submit()/close() write to, so an idle pool
costs no CPU. Workers start when a job is waiting for one, and are replaced the same way.
Future callbacks run in the dispatcher thread: keep them short, never close() from one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from multiprocessing import connection, get_all_start_methods, get_context
from typing import Any

from amberpicd.errors import WorkerLost, error_text
from amberpicd.workers.child import PROTOCOL, worker_main

_STOP_GRACE = 2.0  # seconds an idle worker gets to exit by itself at close()
ENGINE = ("amberpicd.workers.preload",)  # what amberpicd's workers load before forking


def start_fork_server(preload: Sequence[str] = ENGINE) -> None:
    """Start the fork server now, importing ``preload`` in it, so that its imports run
    while the caller is still importing and reading its config (on two cores that halves
    the start-up before the first job). Pools made later in this process use it."""
    if "forkserver" not in get_all_start_methods():
        return
    from multiprocessing import forkserver

    get_context("forkserver").set_forkserver_preload(list(preload))
    forkserver.ensure_running()


class _RemoteTraceback(Exception):
    """Set as __cause__ of a job's exception: logs then show where in the worker it arose."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):  # a real-time signal has no name
            return f"signal {-code}: {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


# --- parent side -------------------------------------------------------------------------


class _Worker:
    """The parent's handle on one worker: its process, our end of its pipe, its job."""

    def __init__(self, ctx: Any, setup: tuple[Any, ...]):
        self.conn, child_conn = ctx.Pipe()
        lifeline_r, self.lifeline = ctx.Pipe(duplex=False)
        args = (child_conn, lifeline_r, *setup)
        self.process = ctx.Process(
            target=worker_main, args=args, name="amberpicd-worker", daemon=True
        )
        try:
            self.process.start()
        finally:  # only the child may keep these ends, so that EOF on them means "peer gone"
            child_conn.close()
            lifeline_r.close()
        self.ready = False
        self.retiring = False  # asked to be replaced after its current job
        self.job: tuple[Future, float | None] | None = None  # (future, timeout)
        self.deadline: float | None = None
        self.init_error: str | None = None


class WorkerPool:
    """Runs picklable top-level functions in up to ``workers`` processes, one job each.

    ``workers=0`` runs every job inline, synchronously in the submitting thread, with no
    timeout and no memory limit: for debugging. The initializer then runs once, here.
    """

    def __init__(
        self,
        workers: int,
        *,
        memory_limit: int | None = None,
        initializer: Callable[[], None] | None = None,
        context: str = "forkserver",
        preload: Sequence[str] = (),
    ):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, not {workers}")
        if context not in ("forkserver", "spawn"):  # fork would copy the daemon's threads
            raise ValueError(f"context must be 'forkserver' or 'spawn', not {context!r}")
        self.size = workers
        self._lock = threading.Lock()
        self._queue: deque[tuple[Future, bytes, float | None]] = deque()
        self._workers: list[_Worker] = []
        self._closing = False
        self._close_deadline = 0.0
        self._ahead = 0  # workers still to start before any job asks for them (warm())
        if workers == 0:
            if initializer is not None:
                initializer()
            return
        self._ctx = get_context(context if context in get_all_start_methods() else "spawn")
        if preload and self._ctx.get_start_method() == "forkserver":
            # Imported once in the fork server, so every worker starts with them loaded.
            # (It applies when the server starts: the first pool of a process decides.)
            self._ctx.set_forkserver_preload(list(preload))
        self._setup = (memory_limit, initializer)
        pickle.dumps(initializer)  # fail here, not in every worker
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)  # so submit never blocks, even on a full pipe
        self._thread = threading.Thread(target=self._run, name="amberpicd-workers", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet handed to a worker."""
        with self._lock:
            return len(self._queue)

    @property
    def busy(self) -> int:
        """Jobs running in a worker now."""
        with self._lock:
            return sum(w.job is not None for w in self._workers)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Future:
        """Queue ``fn(*args, **kwargs)``; never blocks. The future gets the return value, the
        exception raised, or WorkerLost if the worker died or ran past ``timeout`` seconds."""
        future: Future = Future()
        if self._closing:
            raise RuntimeError("cannot submit to a closed WorkerPool")
        if self.size == 0:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as exc:
                future.set_exception(exc)
            return future
        try:  # in the caller's thread: spreads the cost, and the error comes back at once
            payload = pickle.dumps((fn, args, kwargs), PROTOCOL)
        except Exception as exc:
            future.set_exception(exc)
            return future
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit to a closed WorkerPool")
            self._queue.append((future, payload, timeout))
            self._wake()
        return future

    def warm(self, count: int | None = None) -> None:
        """Start ``count`` workers (default: all) now instead of at the first jobs, so that
        their start (the fork, the initializer) overlaps what the caller still does before
        it submits. Once: a worker that dies later is replaced when a job needs it."""
        if self.size == 0:
            return
        wanted = self.size if count is None else max(0, min(count, self.size))
        with self._lock:
            if not self._closing:
                self._ahead = wanted - len(self._workers)
                self._wake()

    def close(self, *, wait: bool = True, cancel_pending: bool = False, grace: float = 5.0) -> None:
        """Stop taking jobs and end every worker process (joined: no zombies, no orphans).

        With ``wait``, running jobs and (unless ``cancel_pending``) queued ones get ``grace``
        seconds in all to finish; then the workers are killed, their jobs fail with WorkerLost
        and the queued ones are cancelled. Without ``wait`` that happens at once.
        """
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + (grace if wait else 0.0)
            dropped: deque = deque()
            if cancel_pending or not wait:
                dropped, self._queue = self._queue, deque()
            if self.size:
                self._wake()
        for future, _, _ in dropped:
            future.cancel()
        if self.size:
            self._thread.join()
            with self._lock:
                if self._wake_w >= 0:
                    os.close(self._wake_r)
                    os.close(self._wake_w)
                    self._wake_r = self._wake_w = -1

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(cancel_pending=exc_type is not None)  # after an error, start nothing new

    # --- dispatcher thread ---------------------------------------------------------------

    def _wake(self) -> None:  # with the lock held
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError):  # pipe full: a wake-up is pending
                os.write(self._wake_w, b"!")

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    drained = not self._queue and all(w.job is None for w in self._workers)
                    if self._closing and (drained or time.monotonic() >= self._close_deadline):
                        return
                self._dispatch()
                deadlines = [w.deadline for w in self._workers if w.deadline is not None]
                if self._closing:
                    deadlines.append(self._close_deadline)
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                waitables = [self._wake_r]
                for w in self._workers:
                    waitables += [w.conn, w.process.sentinel]
                ready = connection.wait(waitables, timeout)
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
                for w in list(self._workers):
                    if w.conn in ready or w.process.sentinel in ready:
                        self._service(w, exited=w.process.sentinel in ready)
                now = time.monotonic()
                for w in list(self._workers):
                    if w.job is not None and w.deadline is not None and now >= w.deadline:
                        self._reap(w, f"timed out after {w.job[1]:g} s")
        finally:  # even after a bug in here: fail everything rather than leave futures hanging
            self._shutdown()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                idle = next(
                    (w for w in self._workers if w.ready and not w.retiring and w.job is None),
                    None,
                )
                if not self._queue:
                    # Nothing to run: start a worker only when warm() asked for it ahead.
                    if self._ahead <= 0 or self._closing or len(self._workers) >= self.size:
                        return
                    self._ahead -= 1
                    idle = None
                elif idle is None:
                    starting = sum(not w.ready for w in self._workers)
                    live = sum(not w.retiring for w in self._workers)
                    if live >= self.size or starting >= len(self._queue):
                        return
                else:
                    future, payload, timeout = self._queue.popleft()
                    if not future.set_running_or_notify_cancel():
                        continue  # cancelled while queued
                    idle.job = (future, timeout)
            if idle is None:
                try:
                    worker = _Worker(self._ctx, self._setup)
                except Exception as exc:
                    self._fail_pending(f"worker failed to start ({error_text(exc)})")
                    continue
                with self._lock:
                    self._workers.append(worker)
                continue
            idle.deadline = None if timeout is None else time.monotonic() + timeout
            with contextlib.suppress(OSError):  # if the worker just died, its sentinel tells
                idle.conn.send_bytes(payload)

    def _fail_pending(self, reason: str) -> None:
        # One queued job pays for each worker that could not start, so a broken initializer
        # fails the jobs one by one instead of restarting workers forever.
        with self._lock:
            while self._queue:
                future = self._queue.popleft()[0]
                if future.set_running_or_notify_cancel():
                    break
            else:
                return
        future.set_exception(WorkerLost(reason))

    def _service(self, w: _Worker, exited: bool) -> None:
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv_bytes())
        except (EOFError, OSError):
            exited = True  # pipe closed: the process is gone or going
        if exited:
            self._reap(w)

    def _handle(self, w: _Worker, data: bytes) -> None:
        try:
            kind, value, *tb = pickle.loads(data)
        except Exception as exc:  # e.g. the result's class cannot be imported in the parent
            kind, value, tb = "error", exc, []
        if kind == "ready":
            w.ready = True
        elif kind == "retiring":
            w.retiring = True
        elif kind == "init":
            w.init_error = f"initializer raised {value!r}"  # the worker exits next
        elif w.job is not None:
            with self._lock:
                (future, _), w.job, w.deadline = w.job, None, None
            if kind == "ok":
                future.set_result(value)
            else:
                if tb:
                    value.__cause__ = _RemoteTraceback(tb[0])
                future.set_exception(value)

    def _reap(self, w: _Worker, reason: str | None = None) -> None:
        """Make sure the worker is dead and joined; fail its job, or a queued one."""
        if reason is None:
            w.process.join(1.0)  # EOF seen: the exit is imminent
        if w.process.is_alive():
            w.process.kill()
        w.process.join()
        with self._lock:
            self._workers.remove(w)
        w.conn.close()
        w.lifeline.close()  # no process.close(): multiprocessing's atexit may still join it
        if w.job is not None:
            reason = reason or f"worker crashed ({_describe_exit(w.process.exitcode)})"
            w.job[0].set_exception(WorkerLost(reason))
        elif not w.ready:
            detail = w.init_error or _describe_exit(w.process.exitcode)
            self._fail_pending(f"worker failed to start ({detail})")

    def _shutdown(self) -> None:
        with self._lock:
            self._closing = True
            dropped, self._queue = self._queue, deque()
        for future, _, _ in dropped:
            future.cancel()
        for w in self._workers:
            if w.job is None:
                w.conn.close()  # EOF asks an idle worker to exit by itself
        end = time.monotonic() + _STOP_GRACE
        for w in list(self._workers):
            if w.job is None:
                w.process.join(max(0.0, end - time.monotonic()))
            self._reap(w, "pool closed while the job was running")
