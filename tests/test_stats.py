"""Statistics helpers against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, pointbiserialr

from thinksafe.metrics.stats import (
    binary_counts,
    bootstrap_diffs,
    cohen_kappa,
    confusion_matrix,
    kappa_from_matrix,
    mcnemar_exact,
    paired_bootstrap,
    point_biserial,
    rogan_gladen,
    sensitivity_specificity,
    wilson,
)

Z = 1.959963984540054


def test_wilson_known_values():
    # 0/10: lower 0, upper z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.27754
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(Z * Z / (10 + Z * Z), abs=1e-12)
    assert hi == pytest.approx(0.2775, abs=1e-4)
    # 5/10: centre 0.5, half = z*sqrt(0.025 + z^2/400) / (1 + z^2/10) = 0.26340
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    # 10/10 mirrors 0/10
    assert wilson(10, 10) == pytest.approx((1 - 0.27754, 1.0), abs=1e-4)
    assert wilson(0, 0) is None


@pytest.mark.parametrize("b01,b10", [(0, 0), (1, 0), (3, 0), (10, 2), (2, 10), (5, 5), (7, 8), (100, 130), (3, 400)])
def test_mcnemar_matches_scipy_binomtest(b01, b10):
    n = b01 + b10
    expected = binomtest(b01, n, 0.5).pvalue if n else 1.0
    assert mcnemar_exact(b01, b10) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_mcnemar_hand_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(4, 0) == pytest.approx(2 / 16)  # 2 * 0.5^4
    assert mcnemar_exact(1, 2) == 1.0  # 2 * (1 + 3) / 8 = 1
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_bootstrap_reproducible_and_covers_point():
    rng = np.random.default_rng(123)
    a, b = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    r1 = paired_bootstrap(a, b, n_resamples=2000, seed=7)
    r2 = paired_bootstrap(a, b, n_resamples=2000, seed=7)
    assert r1 == r2
    assert r1["ci"][0] <= r1["diff"] <= r1["ci"][1]
    assert r1["diff"] == pytest.approx(b.mean() - a.mean())
    assert paired_bootstrap(a, b, n_resamples=2000, seed=8)["ci"] != r1["ci"]


def test_bootstrap_hand_difference():
    # mean(b) - mean(a) = 1/5 - 3/5 = -0.4
    a, b = [1, 1, 0, 0, 1], [1, 0, 0, 0, 0]
    res = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    assert res["diff"] == pytest.approx(-0.4)
    assert res["n"] == 5 and res["level"] == 0.95
    # differences are -1 (2 items) or 0: every replicate lies in [-1, 0]
    assert -1 <= res["ci"][0] <= res["ci"][1] <= 0


def test_bootstrap_constant_difference_has_degenerate_interval():
    # every pair differs by exactly +1 -> every replicate is +1
    res = paired_bootstrap([0, 0, 0, 0], [1, 1, 1, 1], n_resamples=500)
    assert res["diff"] == 1.0 and res["ci"] == [1.0, 1.0]


def test_bootstrap_general_statistic_and_float_path():
    a = np.arange(101, dtype=float)  # > 64 distinct differences: index-resampling path
    b = a * 2
    point, reps = bootstrap_diffs(a, b, n_resamples=300, seed=1)
    assert point == pytest.approx(50.0) and reps.shape == (300,)
    med = paired_bootstrap([1, 2, 3], [2, 4, 9], n_resamples=300, stat=np.median)
    assert med["diff"] == pytest.approx(4 - 2)
    assert paired_bootstrap([], [])["diff"] is None
    with pytest.raises(ValueError):
        paired_bootstrap([1, 0], [1])


def test_rogan_gladen_hand_values():
    # (0.3 + 0.8 - 1) / (0.9 + 0.8 - 1) = 0.1 / 0.7
    res = rogan_gladen(0.3, 0.9, 0.8)
    assert res["prevalence"] == pytest.approx(1 / 7)
    assert res["ci"] is None and res["youden"] == pytest.approx(0.7)
    assert rogan_gladen(0.1, 0.9, 0.8)["prevalence"] == 0.0  # -0.1 / 0.7 clipped
    assert rogan_gladen(0.99, 0.9, 0.8)["prevalence"] == 1.0  # 0.79 / 0.7 clipped
    assert rogan_gladen(0.5, 0.5, 0.5)["prevalence"] is None  # judge no better than chance
    # a perfect judge changes nothing
    assert rogan_gladen(0.42, 1.0, 1.0)["prevalence"] == pytest.approx(0.42)


def test_rogan_gladen_interval_widens_with_judge_uncertainty():
    only_rate = rogan_gladen(0.3, 0.9, 0.8, n=400, seed=1)
    with_judge = rogan_gladen(0.3, 0.9, 0.8, n=400, n_pos=30, n_neg=30, seed=1)
    for res in (only_rate, with_judge):
        assert res["ci"][0] <= res["prevalence"] <= res["ci"][1]
    assert with_judge["ci"][1] - with_judge["ci"][0] > only_rate["ci"][1] - only_rate["ci"][0]
    assert rogan_gladen(0.3, 0.9, 0.8, n=400, n_pos=30, n_neg=30, seed=1) == with_judge
    # a barely informative judge with few validation items: interval towards [0, 1]
    weak = rogan_gladen(0.5, 0.55, 0.55, n=100, n_pos=5, n_neg=5)
    assert weak["ci"] == [0.0, 1.0]


def test_confusion_kappa_and_rates():
    truth = ["u", "u", "u", "s", "s", "s", "s", "s"]
    pred = ["u", "u", "s", "u", "s", "s", "s", "s"]
    # rows truth (s, u), cols pred: s->s 4, s->u 1, u->s 1, u->u 2
    assert confusion_matrix(truth, pred, ["s", "u"]) == [[4, 1], [1, 2]]
    # po = 6/8; pe = (5*5 + 3*3) / 64 = 34/64; kappa = (48/64 - 34/64) / (30/64) = 14/30
    assert cohen_kappa(truth, pred) == pytest.approx(14 / 30)
    counts = binary_counts(truth, pred, "u")
    assert counts == {"tp": 2, "fp": 1, "tn": 4, "fn": 1}
    assert sensitivity_specificity(**counts) == pytest.approx((2 / 3, 4 / 5))
    assert sensitivity_specificity(0, 0, 3, 0) == (None, 1.0)
    assert kappa_from_matrix([[3, 0], [0, 0]]) is None  # one label only: undefined
    assert kappa_from_matrix([[0, 0], [0, 0]]) is None
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def test_point_biserial_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=40), rng.integers(0, 2, 40)
    assert point_biserial(x, y) == pytest.approx(pointbiserialr(y, x).statistic)
    assert point_biserial([1, 2, 3], [1, 1, 1]) is None
    assert point_biserial([2, 2], [0, 1]) is None
    assert point_biserial([5], [1]) is None
    assert math.isclose(point_biserial([0, 1], [0, 1]), 1.0)
