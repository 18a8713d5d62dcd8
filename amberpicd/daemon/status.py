"""What ``status`` answers (the tray, ``amberpicd status`` and the control socket read it):
the daemon's state word, its queue, inboxes, recent files and problems. Reads only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from amberpicd import __version__
from amberpicd.errors import JournalError
from amberpicd.output.template import fixed_root

if TYPE_CHECKING:
    from amberpicd.config.loader import LoadedConfig
    from amberpicd.daemon.flow import Flow
    from amberpicd.daemon.results import Recent
    from amberpicd.daemon.toggles import Toggles
    from amberpicd.journal import Journal


class Observed(Protocol):
    """The part of the daemon a status reads."""

    loaded: LoadedConfig
    toggles: Toggles
    flow: Flow
    journal: Journal
    recent: Recent
    config_error: str | None
    generation: int
    lost_inboxes: set[str]
    journal_lost: str | None
    started: float


def activity(d: Observed) -> str:
    if d.flow.journal_error:
        return "error"  # before busy: files wait in the queue because of it
    if d.toggles.paused:
        return "paused"
    if d.flow.busy:
        return "busy"
    if d.recent.failures_unseen or d.config_error or d.lost_inboxes or d.journal_lost:
        return "error"
    return "idle"


def status(d: Observed) -> dict:
    try:
        counts = d.journal.counts(since=d.started)
    except JournalError:
        counts = {}
    config = d.loaded.config
    inboxes = []
    for w in config.watch:
        key = str(w.inbox)
        inboxes.append(
            {
                "inbox": key,
                "enabled": w.enabled and key not in d.toggles.disabled,
                "watching": key not in d.lost_inboxes,
                "recursive": w.recursive,
                "counts": counts.get(key, {}),
            }
        )
    flow = d.flow
    return {
        "state": activity(d),
        "paused": d.toggles.paused,
        "queue": len(flow.queue) + flow.settle.pending() + flow.waiting,
        "in_flight": len(flow.inflight),
        "empty": [str(p) for p in flow.settle.empty()],  # zero bytes, waiting for content
        "inboxes": inboxes,
        "outputs": sorted({str(fixed_root(r.output)) for r in config.rules}),
        "recent": d.recent.last(10),
        "failures_unseen": d.recent.failures_unseen,
        "config": {
            "source": str(d.loaded.source or "embedded"),
            "error": d.config_error,
            "generation": d.generation,
        },
        "journal": {
            "recovered_from": _str_or_none(d.journal.recovered_from),
            "error": flow.journal_error,
            "lost": d.journal_lost,
        },
        "pid": os.getpid(),
        "version": __version__,
    }


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
