"""A stable fingerprint of what processing a file means: its rules and limits.

The journal keys "already processed" on (content hash, fingerprint): changing a rule
makes every file it applies to due again; changing an unrelated rule does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from amberpicd.config.schema import Limits, Rule, Watch


def fingerprint(rules: Sequence[Rule], limits: Limits, watch: Watch | None = None) -> str:
    doc = {
        "rules": [r.model_dump(mode="json") for r in rules],
        "limits": limits.model_dump(mode="json"),
        "originals": None if watch is None else [watch.originals, str(watch.archive)],
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
