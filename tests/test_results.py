"""The daemon's one result sink: every subscriber sees each report once, in order, and a
failing subscriber neither stops the others nor the publisher."""

from __future__ import annotations

import logging
from pathlib import Path

from amberpicd.daemon.results import Recent, Results
from amberpicd.engine.commit import Report


def test_every_subscriber_sees_each_report_in_order_despite_a_failing_one(caplog):
    results, seen = Results(), []

    def broken(report: Report) -> None:
        raise RuntimeError("a subscriber's bug")

    results.subscribe(lambda r: seen.append(("first", r.source.name)))
    results.subscribe(broken)
    results.subscribe(lambda r: seen.append(("last", r.source.name)))
    with caplog.at_level(logging.ERROR, logger="amberpicd"):
        results.publish(Report(Path("/in/a.jpg"), "done"))
        results.publish(Report(Path("/in/b.jpg"), "failed", error="b.jpg: decode failed"))
    assert seen == [("first", "a.jpg"), ("last", "a.jpg"), ("first", "b.jpg"), ("last", "b.jpg")]
    assert sum("subscriber" in r.getMessage() for r in caplog.records) == 2


def test_recent_keeps_the_last_reports_and_counts_failures_until_seen():
    recent = Recent(keep=3)
    for i in range(5):
        recent.add(Report(Path(f"/in/{i}.jpg"), "failed" if i % 2 else "done", error=None))
    assert [Path(e["source"]).name for e in recent.last(10)] == ["2.jpg", "3.jpg", "4.jpg"]
    assert recent.failures_unseen == 2
    recent.seen()
    assert recent.failures_unseen == 0
