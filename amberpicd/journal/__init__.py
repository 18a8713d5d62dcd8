"""The journal: an SQLite record of every job, the crash-safety and dedupe memory of the daemon.

A job moves running → staged → published → done, or ends failed (later retry) or unmatched;
published → original_failed when only the original step failed (``retry_originals`` resumes
it), and any unfinished state → retry when a later job of the file superseded it; staged →
running when recovery finds a temp gone (the job runs again). Each job carries its owner
(``owners``: the writer that began it), so recovery takes only the jobs of owners gone.
Every state change is its own committed transaction with synchronous=FULL, because a committed
"published" gates deleting originals. ``store`` opens and guards the SQLite file; ``jobs`` holds
the ``Journal`` API on top of it.
"""

from amberpicd.journal.jobs import DECISIONS, UNFINISHED, Job, Journal, StagedOutput
from amberpicd.journal.store import SCHEMA_VERSION

__all__ = ["DECISIONS", "SCHEMA_VERSION", "UNFINISHED", "Job", "Journal", "StagedOutput"]
