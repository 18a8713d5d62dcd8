"""A small process pool that survives its workers: a codec that segfaults, hangs or eats memory
costs one worker process and fails one job, never the caller or the other jobs.

Why not the stdlib pools: a SIGSEGV in a ProcessPoolExecutor worker breaks the whole pool
(BrokenProcessPool for every later job), and multiprocessing.Pool silently loses the task so
get() hangs (cpython issue 82265). Here every worker has its own pipe and runs one job at a
time, so a dead worker is noticed (its sentinel fires) and blamed on exactly one job.

One dispatcher thread owns the workers. It blocks in multiprocessing.connection.wait() on the
pipes, the process sentinels and a self-pipe that submit()/close() write to, so an idle pool
costs no CPU. Workers start lazily (when a job is waiting) and are replaced the same way.
Future callbacks run in the dispatcher thread: keep them short and never close() from one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing import connection, get_all_start_methods, get_context
from typing import Any

from amberpicd.errors import WorkerLost

_STOP_GRACE = 2.0  # seconds an idle worker gets to exit by itself at close()
_PROTOCOL = pickle.HIGHEST_PROTOCOL

# What every worker runs first. A child unpickles its Process target before any of our code
# runs, and a forkserver child starts with the *server's* sys.path (fixed when the server
# started, maybe without this package or what the caller added, e.g. tests/). So the target is
# the builtin exec, which installs the parent's sys.path and only then imports this module.
_BOOT = (
    "import sys\n"
    "sys.path[:] = path\n"
    f"from {__name__} import _worker_main\n"
    "_worker_main(conn, lifeline, setup)\n"
)


# --- worker side -------------------------------------------------------------------------


def _worker_main(
    conn: connection.Connection, lifeline: connection.Connection, setup: bytes
) -> None:
    # The parent decides shutdown; a Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pass
    try:
        memory_limit, initializer = pickle.loads(setup)  # after sys.path is the parent's
        if memory_limit is not None:
            _limit_address_space(memory_limit)
        if initializer is not None:
            initializer()
    except BaseException as exc:
        conn.send_bytes(_dump_error(exc, "init"))
        return  # a half set-up worker must not take jobs
    conn.send_bytes(pickle.dumps(("ready", None)))
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:  # the pool closed our pipe: normal shutdown
            return
        conn.send_bytes(_run_job(data))  # a helper, so the job's objects are freed first


def _run_job(data: bytes) -> bytes:
    try:
        fn, args, kwargs = pickle.loads(data)
        result = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit from a job must not end the worker either
        return _dump_error(exc, "error")
    try:
        return pickle.dumps(("ok", result), _PROTOCOL)
    except Exception as exc:
        return _dump_error(exc, "error")


def _exit_when_parent_dies(lifeline: connection.Connection) -> None:
    # Nobody writes to the lifeline and only the parent holds its other end, so it becomes
    # readable (EOF) exactly when the parent is gone, even if it was SIGKILLed. Being a thread,
    # this also works while a job runs (unless the job holds the GIL forever). prctl's
    # PDEATHSIG would not do: a forkserver child's parent is the server, and the server only
    # exits once every worker has closed its copy of the server's "alive" pipe.
    connection.wait([lifeline])
    os._exit(1)


def _limit_address_space(limit: int) -> None:
    import resource  # POSIX only; imported here so the module still imports elsewhere

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    # Huge allocations then fail with MemoryError here instead of waking the OOM killer.
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _dump_error(exc: BaseException, kind: str) -> bytes:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for candidate in (exc, _Portable(exc)):
        try:
            data = pickle.dumps((kind, candidate, tb), _PROTOCOL)
            pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
            return data
        except Exception:
            continue
    try:
        text = repr(exc)
    except Exception:
        text = f"<unprintable {type(exc).__name__}>"
    return pickle.dumps((kind, RuntimeError(text), tb), _PROTOCOL)


class _Portable:
    """Pickles an exception as class + args + __dict__ and skips __init__ when rebuilding it:
    FileError(path, reason) keeps only its message in args, so default unpickling fails."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self.exc), self.exc.args, self.exc.__dict__))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _RemoteTraceback(Exception):
    """Set as __cause__ of a job's exception so logs show where in the worker it was raised."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {-code}: {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


# --- parent side -------------------------------------------------------------------------


class _Job:
    __slots__ = ("future", "payload", "timeout")

    def __init__(self, future: Future, payload: bytes, timeout: float | None):
        self.future, self.payload, self.timeout = future, payload, timeout


class _Worker:
    """The parent's handle on one worker: process, our end of its pipe, its current job."""

    def __init__(self, ctx: Any, setup: bytes):
        self.conn, child_conn = ctx.Pipe()
        lifeline_r, self.lifeline = ctx.Pipe(duplex=False)
        namespace = {
            "path": [os.path.abspath(p) for p in sys.path if isinstance(p, str)],
            "conn": child_conn,
            "lifeline": lifeline_r,
            "setup": setup,
        }
        self.process = ctx.Process(
            target=exec, args=(_BOOT, namespace), name="amberpicd-worker", daemon=True
        )
        try:
            self.process.start()
        finally:  # only the child may keep these ends, so that EOF on them means "peer gone"
            child_conn.close()
            lifeline_r.close()
        self.ready = False
        self.job: _Job | None = None
        self.deadline: float | None = None
        self.init_error: str | None = None


class WorkerPool:
    """Runs picklable top-level functions in `workers` processes, one job per process.

    ``workers=0`` runs every job inline, synchronously in the submitting thread, without
    timeouts or memory limit (for debugging; the initializer runs once, in this process).
    """

    def __init__(
        self,
        workers: int,
        *,
        memory_limit: int | None = None,
        initializer: Callable[[], None] | None = None,
        context: str = "forkserver",
    ):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, not {workers}")
        if context not in ("forkserver", "spawn"):
            raise ValueError(f"context must be 'forkserver' or 'spawn', not {context!r}")
        self.size = workers
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._workers: list[_Worker] = []
        self._busy = 0
        self._closing = False
        self._close_deadline = 0.0
        if workers == 0:
            if initializer is not None:
                initializer()
            return
        if context not in get_all_start_methods():
            context = "spawn"  # no forkserver on this platform
        self._ctx = get_context(context)
        self._setup = pickle.dumps((memory_limit, initializer), _PROTOCOL)  # fails early
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)  # submit never blocks, even on a full pipe
        self._thread = threading.Thread(target=self._run, name="amberpicd-workers", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted but not yet handed to a worker."""
        with self._lock:
            return len(self._queue)

    @property
    def busy(self) -> int:
        """Jobs running in a worker right now."""
        with self._lock:
            return self._busy

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Future:
        """Queue ``fn(*args, **kwargs)``; never blocks. The future gets the result, the
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
        try:  # here, in the caller's thread: spreads the cost, and errors come back at once
            payload = pickle.dumps((fn, args, kwargs), _PROTOCOL)
        except Exception as exc:
            future.set_exception(exc)
            return future
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit to a closed WorkerPool")
            self._queue.append(_Job(future, payload, timeout))
            self._wake()
        return future

    def close(self, *, wait: bool = True, cancel_pending: bool = False, grace: float = 5.0) -> None:
        """Stop taking jobs and end every worker process (joined: no zombies, no orphans).

        With ``wait``, running jobs and (unless ``cancel_pending``) queued ones may finish
        within ``grace`` seconds in total; then workers are killed, their jobs fail with
        WorkerLost and what is still queued is cancelled. Without ``wait``, that happens now.
        """
        cancelled: list[_Job] = []
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + (grace if wait else 0.0)
            if cancel_pending or not wait:
                cancelled, self._queue = list(self._queue), deque()
            if self.size:
                self._wake()
        for job in cancelled:
            job.future.cancel()
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
        self.close(cancel_pending=exc_type is not None)  # on an error, don't start more jobs

    # --- dispatcher thread ---------------------------------------------------------------

    def _wake(self) -> None:  # called with the lock held
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError):  # pipe full: a wake-up is pending
                os.write(self._wake_w, b"!")

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    drained = not self._queue and self._busy == 0
                    if self._closing and (drained or time.monotonic() >= self._close_deadline):
                        return
                self._dispatch()
                deadlines = [w.deadline for w in self._workers if w.deadline is not None]
                if self._closing:
                    deadlines.append(self._close_deadline)
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                waitables: list[Any] = [self._wake_r]
                for w in self._workers:
                    waitables += [w.conn, w.process.sentinel]
                ready = connection.wait(waitables, timeout)
                if self._wake_r in ready:
                    while True:
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            break
                for w in list(self._workers):
                    if w.conn in ready or w.process.sentinel in ready:
                        self._service(w, exited=w.process.sentinel in ready)
                now = time.monotonic()
                for w in list(self._workers):
                    if w.job is not None and w.deadline is not None and now >= w.deadline:
                        self._reap(w, f"timed out after {w.job.timeout:g} s")
        finally:  # also after a bug here: fail everything rather than leave futures hanging
            self._shutdown()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                idle = next((w for w in self._workers if w.ready and w.job is None), None)
                if idle is None:
                    starting = sum(not w.ready for w in self._workers)
                    if len(self._workers) >= self.size or starting >= len(self._queue):
                        return
                else:
                    job = self._queue.popleft()
                    if not job.future.set_running_or_notify_cancel():
                        continue  # cancelled while queued
                    idle.job = job
                    self._busy += 1
            if idle is None:
                self._start_worker()
                continue
            idle.deadline = None if job.timeout is None else time.monotonic() + job.timeout
            with contextlib.suppress(OSError):  # if the worker just died, its sentinel tells
                idle.conn.send_bytes(job.payload)
            job.payload = b""

    def _start_worker(self) -> None:
        try:
            worker = _Worker(self._ctx, self._setup)
        except Exception as exc:
            self._fail_pending(WorkerLost(f"worker failed to start ({exc})"))
            return
        with self._lock:
            self._workers.append(worker)

    def _fail_pending(self, error: WorkerLost) -> None:
        # One queued job pays for each worker that cannot start, so a broken initializer
        # fails jobs one by one instead of restarting workers forever.
        with self._lock:
            while self._queue:
                job = self._queue.popleft()
                if job.future.set_running_or_notify_cancel():
                    break
            else:
                return
        job.future.set_exception(error)

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
        except Exception as exc:  # e.g. the result's class cannot be imported here
            kind, value, tb = "error", exc, []
        if kind == "ready":
            w.ready = True
            return
        if kind == "init":
            w.init_error = f"initializer raised {value!r}"
            return
        job, w.job, w.deadline = w.job, None, None
        if job is None:
            return
        with self._lock:
            self._busy -= 1
        if kind == "ok":
            job.future.set_result(value)
        else:
            if tb and tb[0]:
                value.__cause__ = _RemoteTraceback(tb[0])
            job.future.set_exception(value)

    def _reap(self, w: _Worker, reason: str | None = None) -> None:
        """Make sure the worker is dead and joined; fail its job (or a queued one)."""
        if reason is None:
            w.process.join(1.0)  # EOF seen: the exit is imminent
        if w.process.is_alive():
            w.process.kill()
        w.process.join()
        code = w.process.exitcode
        with self._lock:
            self._workers.remove(w)
            if w.job is not None:
                self._busy -= 1
        w.conn.close()
        w.lifeline.close()  # (no process.close(): at exit, multiprocessing may still join it)
        if w.job is not None:
            reason = reason or f"worker crashed ({_describe_exit(code)})"
            w.job.future.set_exception(WorkerLost(reason))
        elif not w.ready and not self._closing:
            detail = w.init_error or _describe_exit(code)
            self._fail_pending(WorkerLost(f"worker failed to start ({detail})"))

    def _shutdown(self) -> None:
        with self._lock:
            self._closing = True
            leftovers, self._queue = list(self._queue), deque()
        for job in leftovers:
            job.future.cancel()
        for w in self._workers:
            if w.job is None:
                w.conn.close()  # EOF asks an idle worker to exit by itself
        end = time.monotonic() + _STOP_GRACE
        for w in list(self._workers):
            if w.job is None:
                w.process.join(max(0.0, end - time.monotonic()))
            self._reap(w, "pool closed while the job was running")
