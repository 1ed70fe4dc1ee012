"""eval.metrics: per-user correlations and their aggregation, against hand-computable cases."""

import math

import numpy as np
import pytest
from scipy import stats

from eval.metrics import CONSTANT_PREDICTION, MetricError, UserScore, aggregate, correlations, t_interval


def test_perfect_and_inverse_ranking():
    t = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert correlations([10, 20, 30, 40, 50], t)[:2] == pytest.approx((1.0, 1.0))
    assert correlations([5, 4, 3, 2, 1], t)[:2] == pytest.approx((-1.0, -1.0))
    # monotone but non-linear: SROCC 1, PLCC < 1
    s, p, note = correlations(np.exp(np.arange(5) * 2.0), t)
    assert s == pytest.approx(1.0) and p < 0.95 and note == ""


def test_known_spearman_value():
    # one adjacent swap among 4 items: rho = 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60 = 0.8
    s, _, _ = correlations([1, 2, 4, 3], [1, 2, 3, 4])
    assert s == pytest.approx(0.8)


def test_constant_prediction_counts_as_zero_with_note():
    s, p, note = correlations([3.0, 3.0, 3.0, 3.0], [1, 2, 3, 4])
    assert (s, p, note) == (0.0, 0.0, CONSTANT_PREDICTION)


@pytest.mark.parametrize(
    "pred,target",
    [([1, 2], [1, 2]), ([1, 2, 3], [1, 2]), ([1, np.nan, 3], [1, 2, 3]), ([1, 2, 3], [2, 2, 2])],
)
def test_bad_inputs_raise(pred, target):
    with pytest.raises(MetricError):
        correlations(pred, target)


def test_t_interval_matches_formula():
    x = [0.1, 0.3, 0.5, 0.2, 0.4]
    lo, hi = t_interval(x)
    half = stats.t.ppf(0.975, 4) * np.std(x, ddof=1) / math.sqrt(5)
    assert lo == pytest.approx(0.3 - half) and hi == pytest.approx(0.3 + half)
    assert all(math.isnan(v) for v in t_interval([0.5]))


def _rec(user, repeat, srocc, method="m", shots=10, fold=0, note=""):
    return UserScore(method, shots, fold, user, repeat, 20, srocc, srocc / 2, note)


def test_aggregate_user_then_repeat():
    # user a: repeats 0.2, 0.4 -> 0.3 ; user b: 0.6, 1.0 -> 0.8 ; mean over users 0.55
    recs = [_rec("a", 0, 0.2), _rec("a", 1, 0.4), _rec("b", 0, 0.6), _rec("b", 1, 1.0)]
    agg = aggregate(recs)[("m", 10)]
    s = agg["srocc"]
    assert s["mean"] == pytest.approx(0.55)
    # repeat means: r0 = 0.4, r1 = 0.7 -> std (ddof=1) = 0.3/sqrt(2)
    assert s["repeat_means"] == pytest.approx([0.4, 0.7])
    assert s["std"] == pytest.approx(0.3 / math.sqrt(2))
    lo, hi = s["ci95"]
    half = stats.t.ppf(0.975, 1) * np.std([0.3, 0.8], ddof=1) / math.sqrt(2)
    assert (lo, hi) == pytest.approx((0.55 - half, 0.55 + half))
    assert s["n_users"] == 2 and s["n_repeats"] == 2
    assert agg["plcc"]["mean"] == pytest.approx(0.275)


def test_aggregate_separates_methods_shots_and_counts_constants():
    recs = [_rec("a", 0, 0.5), _rec("b", 0, 0.0, note=CONSTANT_PREDICTION), _rec("a", 0, 0.9, shots=100),
            _rec("a", 0, -0.1, method="r")]  # fmt: skip
    aggs = aggregate(recs)
    assert set(aggs) == {("m", 10), ("m", 100), ("r", 10)}
    assert aggs[("m", 10)]["n_constant"] == 1
    assert aggs[("m", 10)]["srocc"]["mean"] == pytest.approx(0.25)
    assert aggs[("m", 10)]["srocc"]["std"] == 0.0  # a single repeat
    # same user id in two folds is two users
    two = aggregate([_rec("a", 0, 0.2, fold=0), _rec("a", 0, 0.6, fold=1)])[("m", 10)]
    assert two["srocc"]["n_users"] == 2
