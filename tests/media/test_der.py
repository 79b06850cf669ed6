"""The DER scorer on hand-made cases with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.support.der import der, der_parts, hungarian, labelled

REF = [(0.0, 10.0, "A"), (10.0, 20.0, "B"), (20.0, 30.0, "A")]


def test_perfect_is_zero():
    assert der(REF, REF) == 0.0
    assert der(REF, REF, collar=0.0) == 0.0


def test_swapped_labels_are_zero():
    hyp = [(0.0, 10.0, "x"), (10.0, 20.0, "y"), (20.0, 30.0, "x")]
    assert der(REF, hyp, collar=0.0) == 0.0
    hyp = [(s, e, {"A": "B", "B": "A"}[k]) for s, e, k in REF]
    assert der(REF, hyp, collar=0.0) == 0.0


def test_one_speaker_wrong():
    # everything labelled as one speaker: B's 10 s are confusion
    hyp = [(0.0, 30.0, "x")]
    p = der_parts(REF, hyp, collar=0.0)
    assert p.confusion == pytest.approx(10 / 30, abs=1e-3)
    assert p.missed == 0 and p.false_alarm == 0
    assert p.der == pytest.approx(1 / 3, abs=1e-3)
    # only the last turn is given to the wrong (but existing) speaker
    hyp = [(0.0, 10.0, "A"), (10.0, 20.0, "B"), (20.0, 30.0, "B")]
    assert der(REF, hyp, collar=0.0) == pytest.approx(10 / 30, abs=1e-3)


def test_missed_speech():
    hyp = [(0.0, 10.0, "A"), (10.0, 15.0, "B"), (20.0, 30.0, "A")]
    p = der_parts(REF, hyp, collar=0.0)
    assert p.missed == pytest.approx(5 / 30, abs=1e-3)
    assert p.false_alarm == 0 and p.confusion == 0
    assert der(REF, [], collar=0.0) == pytest.approx(1.0)


def test_false_alarm():
    ref = [(0.0, 10.0, "A")]
    hyp = [(0.0, 10.0, "A"), (12.0, 17.0, "A")]
    p = der_parts(ref, hyp, collar=0.0)
    assert p.false_alarm == pytest.approx(0.5, abs=1e-3)
    assert p.missed == 0 and p.confusion == 0
    assert p.speech == pytest.approx(10.0)


def test_collar_forgives_small_boundary_shifts():
    hyp = [(0.0, 10.2, "A"), (10.2, 19.85, "B"), (19.85, 30.0, "A")]
    assert der(REF, hyp, collar=0.0) > 0.005
    assert der(REF, hyp, collar=0.25) == 0.0
    # the collar leaves out 0.25 s inside speech at 0 and 30 s, 0.5 s around 10 and 20 s
    assert der_parts(REF, REF, collar=0.25).speech == pytest.approx(30 - 1.5, abs=0.02)


def test_overlap_in_reference():
    ref = [(0.0, 10.0, "A"), (5.0, 15.0, "B")]
    both = [(0.0, 10.0, "x"), (5.0, 15.0, "y")]
    assert der(ref, both, collar=0.0) == 0.0
    # a single-speaker hypothesis misses the second voice in the overlap
    one_each = [(0.0, 10.0, "x"), (10.0, 15.0, "y")]
    p = der_parts(ref, one_each, collar=0.0)
    assert p.speech == pytest.approx(20.0)
    assert p.missed == pytest.approx(5 / 20, abs=1e-3)
    assert p.confusion == 0 and p.false_alarm == 0


def test_more_hypothesis_speakers_than_reference():
    # B split into two hypothesis speakers: only one of them can map onto B
    hyp = [(0.0, 10.0, "x"), (10.0, 15.0, "y"), (15.0, 20.0, "z"), (20.0, 30.0, "x")]
    assert der(REF, hyp, collar=0.0) == pytest.approx(5 / 30, abs=1e-3)


def test_parts_add_up():
    hyp = [(0.0, 12.0, "x"), (12.0, 16.0, "y"), (22.0, 33.0, "y")]
    p = der_parts(REF, hyp)
    assert p.der == pytest.approx(p.missed + p.false_alarm + p.confusion)
    assert der(REF, hyp) == pytest.approx(p.der)


def test_hungarian_matches_brute_force():
    rng = np.random.default_rng(0)
    for rows, cols in [(3, 3), (4, 6), (6, 4), (5, 5), (1, 4), (7, 7)]:
        cost = rng.integers(0, 100, (rows, cols)).astype(float)
        pairs = hungarian(cost)
        assert len(pairs) == min(rows, cols)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
        if rows <= cols:  # every row gets a distinct column
            best = min(sum(cost[r, c] for r, c in enumerate(perm))
                       for perm in itertools.permutations(range(cols), rows))
        else:             # every column gets a distinct row
            best = min(sum(cost[r, c] for c, r in enumerate(perm))
                       for perm in itertools.permutations(range(rows), cols))
        assert sum(cost[r, c] for r, c in pairs) == pytest.approx(best)


def test_labelled_helper():
    assert labelled([(0.0, 1.0), (1.0, 2.0)], [1, 0]) == [(0.0, 1.0, "h1"), (1.0, 2.0, "h0")]
