"""What to notify, and when: failures and the end of a large batch, rate-limited.

``daemon.notify`` in the config: ``errors`` (failures only), ``all`` (failures and a summary
at the end of each batch of ``large_batch`` files or more) or ``off``.

The ``Batcher`` decides what to say and when; it is pure, and the clock is passed in. A
failure waits ``gather`` seconds for siblings, then one notification sums them up; the next
one comes ``interval`` seconds later at the earliest, again summing up everything since. A
batch ends when no file has finished for ``quiet`` seconds; with ``all``, failures within a
batch wait for its summary (for ``interval`` at most). So a 1,000-file drop gives one summary
(``all``) or at most one failure note a minute (``errors``), never 1,000 pop-ups. A batch
summary names the batch's done files, which its "Undo" action takes back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

APP_NAME = "amberpicd"
GATHER = 2.0  # seconds a first failure waits for others that come with it
INTERVAL = 60.0  # seconds between two failure notifications at least
QUIET = 5.0  # seconds without a finished file that end a batch
LARGE_BATCH = 10  # files in a batch that earn an end-of-batch summary (notify: all)
LISTED = 3  # errors quoted in one notification
SEND_TIMEOUT = 3.0


@dataclass(frozen=True)
class Note:
    summary: str
    body: str
    urgency: str = "normal"  # low | normal | critical
    kind: str = "failures"  # a new note replaces the on-screen one of the same kind
    undo: tuple[int, ...] = ()  # a batch summary's done jobs: its "Undo" action takes them back


class Batcher:
    """What to notify, and when. Feed it with ``add``; ask ``due(now)`` at ``deadline()``."""

    def __init__(
        self,
        mode: str = "errors",
        *,
        gather: float = GATHER,
        interval: float = INTERVAL,
        quiet: float = QUIET,
        large_batch: int = LARGE_BATCH,
    ) -> None:
        self.mode = mode
        self.gather, self.interval, self.quiet = gather, interval, quiet
        self.large_batch = large_batch
        self._last_failure_note = float("-inf")
        self._unsent: list[str] = []  # failures not notified yet
        self._unsent_since: float | None = None
        self._batch: Counter[str] = Counter()
        self._batch_failures: list[str] = []
        self._batch_done: list[int] = []  # the batch's done jobs (journal ids), for its Undo
        self._batch_start: float | None = None
        self._batch_last: float | None = None  # when the current batch's last file finished

    def _forget_batch(self) -> None:
        self._batch = Counter()
        self._batch_failures = []
        self._batch_done = []
        self._batch_start = self._batch_last = None

    def add(self, status: str, error: str | None, now: float, job: int | None = None) -> None:
        """One file finished with ``status`` (done, failed, skipped, unmatched); ``job`` is
        its journal job, which a batch summary's Undo takes back when it is done. (The job,
        not the path: the same name may hold a newer photo by the time the user clicks.)"""
        if self.mode == "off":
            return
        self._batch[status] += 1
        if self._batch_start is None:
            self._batch_start = now
        self._batch_last = now
        if status == "done" and job is not None:
            self._batch_done.append(job)
        if status == "failed":
            message = error or "a file failed"
            self._batch_failures.append(message)
            self._unsent.append(message)
            if self._unsent_since is None:
                self._unsent_since = now

    def _failures_due_at(self) -> float | None:
        if self._unsent_since is None:
            return None
        due = max(self._unsent_since + self.gather, self._last_failure_note + self.interval)
        if self.mode == "all" and self._batch_start is not None:
            due = max(due, self._batch_start + self.interval)  # the summary may come first
        return due

    def deadline(self) -> float | None:
        """When ``due`` may next have something to say; None: not until the next ``add``."""
        times = [t for t in (self._failures_due_at(),) if t is not None]
        if self._batch_last is not None:
            times.append(self._batch_last + self.quiet)
        return min(times) if times else None

    def due(self, now: float) -> list[Note]:
        """The notes to show now (usually none)."""
        if self.mode == "off":  # switched off by a reload: drop what was pending
            self._unsent, self._unsent_since = [], None
            self._forget_batch()
            return []
        notes: list[Note] = []
        if self._batch_last is not None and now >= self._batch_last + self.quiet:
            total = sum(self._batch.values())
            if self.mode == "all" and total >= self.large_batch:
                notes.append(self._batch_note(total))
                if self._unsent:  # the summary lists them: no second note for the same files
                    self._unsent, self._unsent_since = [], None
                    self._last_failure_note = now
            self._forget_batch()
        due_at = self._failures_due_at()
        if due_at is not None and now >= due_at:
            notes.append(self._failure_note(self._unsent))
            self._unsent, self._unsent_since = [], None
            self._last_failure_note = now
        return notes

    def flush(self) -> list[Note]:
        """Failures not yet notified, at once (the daemon is stopping)."""
        unsent, self._unsent, self._unsent_since = self._unsent, [], None
        return [self._failure_note(unsent)] if unsent and self.mode != "off" else []

    @staticmethod
    def _failure_note(errors: list[str]) -> Note:
        if len(errors) == 1:
            return Note(f"{APP_NAME}: a file failed", errors[0])
        return Note(f"{APP_NAME}: {len(errors)} files failed", _listing(errors))

    def _batch_note(self, total: int) -> Note:
        counts = self._batch
        parts = [f"{counts['done']} done"]
        if counts["failed"]:
            parts.append(f"{counts['failed']} failed")
        other = total - counts["done"] - counts["failed"]
        if other:
            parts.append(f"{other} skipped")
        body = ", ".join(parts)
        if self._batch_failures:
            body += "\n" + _listing(self._batch_failures)
        return Note(
            f"{APP_NAME}: processed {total} files",
            body,
            urgency="low",
            kind="batch",
            undo=tuple(self._batch_done),
        )


def _listing(errors: list[str]) -> str:
    lines = errors[:LISTED]
    if len(errors) > LISTED:
        lines.append(f"and {len(errors) - LISTED} more")
    lines.append("See: amberpicd history --failed")
    return "\n".join(lines)
