"""The quality search's promises on any score curve (real ones go up and down: screenshots),
checked by Hypothesis on synthetic curves: the file kept is the smallest passing probe (the
best-scoring when none passes, the top quality then probed), the probes are bounded, unique
and inside 1..top, whatever the target (30..100), the top, the jump, flat curves, curves at
exactly the target and huge leaps. And an encode identical to one already scored costs no
second SSIMULACRA2 comparison (AVIF gives neighbouring qualities the same quantizer)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from curves import search
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amberpicd.imaging import quality as search_mod

FORMATS = st.sampled_from(["jpeg", "webp", "avif"])
TARGETS = st.sampled_from([30.0, 60.0, 75.0, 89.5, 90.0, 95.0, 100.0]) | st.floats(30, 100)
TOPS = st.sampled_from([1, 2, 3, 88, 89, 90, 91, 100]) | st.integers(1, 100)
JUMPS = st.sampled_from([None, 90, 1, 2, 50, 100])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def check_promises(
    scores: Callable[[int], float], fmt: str, target: float, top: int, jump: int | None
) -> None:
    found, calls, _ = search(scores, fmt, target, top, jump)
    assert len(set(calls)) == len(calls), calls  # no quality encoded twice
    assert all(1 <= q <= top for q in calls), calls
    assert found.probes == len(calls) <= search_mod.HARD_LIMIT, calls
    assert found.data == str(found.quality).encode() and found.score == scores(found.quality)
    passing = [q for q in calls if scores(q) >= target]
    if passing:
        # Never a miss kept when a probe passed; the smallest passing probe is kept, and
        # past MAX_PROBES only while no probe had passed.
        first = next(i for i, q in enumerate(calls) if scores(q) >= target)
        assert found.quality == min(passing), calls
        assert len(calls) <= max(search_mod.MAX_PROBES, first + 1), calls
    else:
        assert top in calls, calls  # the quality likeliest to pass was tried
        best = max(scores(q) for q in calls)
        assert found.score == best and found.quality == min(q for q in calls if scores(q) == best)


@SETTINGS
@given(
    values=st.lists(st.floats(-60, 100), min_size=100, max_size=100),
    fmt=FORMATS,
    target=TARGETS,
    top=TOPS,
    jump=JUMPS,
)
def test_any_curve(values: list[float], fmt: str, target: float, top: int, jump: int | None):
    check_promises(lambda q: values[q - 1], fmt, target, top, jump)


@SETTINGS
@given(data=st.data(), fmt=FORMATS, target=TARGETS, top=TOPS, jump=JUMPS)
def test_curves_made_of_scores_at_and_around_the_target(
    data: st.DataObject, fmt: str, target: float, top: int, jump: int | None
):
    # Equal scores everywhere, exactly the target, a hair either side of it, NEAR above it.
    near = search_mod.NEAR[fmt]
    levels = [target, target - 1e-9, target + 1e-9, target - 5, target + near, 100.0, -10.0]
    values = data.draw(st.lists(st.sampled_from(levels), min_size=100, max_size=100))
    check_promises(lambda q: values[q - 1], fmt, target, top, jump)


@SETTINGS
@given(
    cuts=st.lists(st.integers(1, 100), max_size=4),
    levels=st.lists(st.floats(-60, 100), min_size=5, max_size=5),
    fmt=FORMATS,
    target=TARGETS,
    top=TOPS,
    jump=JUMPS,
)
def test_step_curves_with_huge_leaps(
    cuts: list[int], levels: list[float], fmt: str, target: float, top: int, jump: int | None
):
    check_promises(lambda q: levels[sum(c <= q for c in cuts)], fmt, target, top, jump)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
@pytest.mark.parametrize("target", [30, 60, 80, 90])
def test_a_curve_passing_everywhere_ends_at_quality_1(fmt: str, target: float):
    # A flat colour scores 100 at any quality: the search must walk down to the bottom.
    found, calls, _ = search(lambda q: 100.0, fmt, target, jump=None if fmt == "webp" else 90)
    assert found.quality == 1 and len(calls) <= search_mod.MAX_PROBES, calls


def test_an_encode_identical_to_one_already_scored_is_not_scored_again():
    # AVIF (libavif 1.4) maps qualities to 64 quantizers: q88 and q89 give the same bytes.
    # hopper.pcd at target 80 probed 67, 79, 90, 88, then 89 (the last quality before the
    # 4:4:4 jump): a full SSIMULACRA2 comparison of a file already known to miss.
    def encode(q: int) -> bytes:
        return str(q - (q in (81, 85, 89, 93, 97))).encode()

    def curve(q: int) -> float:  # 0.1 a step to 75 at q89, 88 at q90 (4:4:4)
        return 75 - 0.1 * (89 - q) if q < 90 else 88 + 0.3 * (q - 90)

    found, calls, scored = search(curve, "avif", 80, jump=90, encode=encode)
    assert found.quality == 90 and {88, 89} <= set(calls), calls
    assert len(scored) == len(set(scored)), (calls, scored)


@SETTINGS
@given(
    values=st.lists(st.floats(-60, 100), min_size=100, max_size=100),
    merged=st.sets(st.integers(2, 100)),
    fmt=FORMATS,
    target=TARGETS,
    jump=JUMPS,
)
def test_qualities_that_encode_alike(
    values: list[float], merged: set[int], fmt: str, target: float, jump: int | None
):
    # A quality in ``merged`` encodes as the one below it (AVIF's shared quantizers).
    def group(q: int) -> int:
        return group(q - 1) if q in merged else q

    found, calls, scored = search(
        lambda q: values[group(q) - 1], fmt, target, jump=jump, encode=lambda q: b"%d" % group(q)
    )
    assert len(scored) == len(set(scored)) and len(set(calls)) == len(calls), calls
    passing = [q for q in calls if values[group(q) - 1] >= target]
    assert found.quality == (min(passing) if passing else found.quality), calls
    assert found.score == values[group(found.quality) - 1]
    assert passing or 100 in calls, calls


def test_a_flat_slope_measured_above_the_jump_is_believed():
    # No leap at q90 and 0.5 a step above it (a grayscale JPEG has no chroma to switch;
    # AVIF screenshots measured the same): at target 95, q97 passed far above, q94 within
    # NEAR. The jump was judged out of reach at the typical slope (1 a step: 98 - 4 < 95)
    # though the two probes had measured 0.5 (98 - 2), and q94 was kept where q89 passed:
    # test_combine_caron.png (AVIF) kept q94 at 1.3x the smallest file, q89 1.2x.
    def curve(q: int) -> float:
        return 96 - 0.6 * (89 - q) if q < 90 else 96 + 0.5 * (q - 90)

    found, calls, _ = search(curve, "jpeg", 95, jump=90)
    assert 89 in calls and found.quality <= 89, calls


@pytest.mark.parametrize("slope", [0.2, 0.25, 0.3, 0.35])
@pytest.mark.parametrize("target", [65.0, 70.0, 75.0, 80.0])
@pytest.mark.parametrize("above", [6.3, 7.0, 8.0, 9.0])
def test_a_flat_curve_the_probes_measured_is_not_left_many_steps_above_its_smallest_pass(
    slope: float, target: float, above: float
):
    # Screenshots gain 0.2-0.35 a step below the jump (JPEG). A pass 4-6 points above the
    # target is ~10 steps at the typical 0.6, but 17-30 on these: itxt_chunks.png at 80
    # probed q73 (87.3), q62 (85.0) and kept q62 where q45 passed (1.15x the bytes);
    # test-card.png at 65 kept 1.27x. Once two probes measured the curve that flat, a pass
    # is kept only within the points those ~10 steps are worth (at least 4: NEAR before).
    first = search_mod.prior("jpeg", target)

    def curve(q: int) -> float:
        return target + above - slope * (first - q)

    found, calls, _ = search(curve, "jpeg", target, jump=90)
    smallest = min(q for q in range(1, 101) if curve(q) >= target)
    within = max(4.0, slope * search_mod.NEAR["jpeg"] / 0.6)
    assert found.score - target <= within + 1e-9 or found.quality - smallest <= 2, calls
