"""The quality search on a score curve: a fake encoder whose bytes name the quality (or
what ``encode`` makes of it: encoders that write one file at two qualities) and a fake
scorer reading the curve, as ``imaging.quality.search`` sees a real encoder and metric."""

from __future__ import annotations

from collections.abc import Callable

from amberpicd.imaging import quality as search_mod


def search(
    scores: Callable[[int], float],
    fmt: str,
    target: float,
    top: int = 100,
    jump: int | None = None,
    encode: Callable[[int], bytes] = lambda q: str(q).encode(),
) -> tuple[search_mod.Found, list[int], list[bytes]]:
    """The search on a fake encoder (``encode``) and scorer: what it kept, the qualities it
    encoded, and the encodes it scored."""
    calls: list[int] = []
    scored: list[bytes] = []
    by_data: dict[bytes, int] = {}

    def at(q: int) -> bytes:
        calls.append(q)
        data = encode(q)
        by_data.setdefault(data, q)
        return data

    class Scores:
        def score(self, data: bytes, target: float | None = None) -> float:
            scored.append(data)
            return scores(by_data[data])

    found = search_mod.search(at, Scores(), fmt, target, top, lambda d: d, jump)  # type: ignore[arg-type]
    return found, calls, scored
