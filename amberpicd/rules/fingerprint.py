"""A stable fingerprint of what processing a file means: the rules that apply to it.

The journal keys "already processed" on (content hash, fingerprint): changing a rule
makes every file it applies to due again; changing an unrelated rule, a limit or the
originals policy does not (that would reprocess, and duplicate, every kept original).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from amberpicd.config.schema import Rule


def fingerprint(rules: Sequence[Rule]) -> str:
    doc = [r.model_dump(mode="json") for r in rules]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
