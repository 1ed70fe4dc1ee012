"""The ensembler: rank normalisation, the blend weight, and k0 selection on training episodes."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from eval.ensemble import blend, blend_weight, normal_scores, select_k0


def test_normal_scores_are_scale_free():
    x = np.array([3.0, 1.0, 2.0, 10.0])
    z = normal_scores(x)
    np.testing.assert_allclose(z, normal_scores(100 * x - 7))  # monotone transforms do not matter
    assert np.argsort(z).tolist() == np.argsort(x).tolist()
    assert abs(z.mean()) < 1e-12
    assert np.all(normal_scores([2.0, 2.0, 2.0]) == 0)
    with pytest.raises(ValueError, match="NaN"):
        normal_scores([1.0, np.nan])


def test_blend_weight_moves_from_profile_to_ratings():
    assert blend_weight(0) == 0.0
    assert blend_weight(10, 10) == 0.5
    assert blend_weight(100, 10) > blend_weight(10, 10)
    with pytest.raises(ValueError):
        blend_weight(-1)


def test_blend_limits():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    np.testing.assert_allclose(blend(a, b, k=0), normal_scores(a))  # no ratings: profile only
    np.testing.assert_allclose(blend(a, None, k=50), normal_scores(a))
    np.testing.assert_allclose(blend(None, b, k=5), normal_scores(b))
    assert spearmanr(blend(a, b, k=10_000, k0=1), b)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="length"):
        blend(a, b[:3], k=3)


def test_blend_beats_either_when_errors_are_independent():
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(200):
        y = rng.normal(size=60)
        z = y + rng.normal(scale=1.0, size=60)  # zero-shot: noisy
        f = y + rng.normal(scale=1.0, size=60)  # few-shot: equally noisy, independent errors
        both = spearmanr(blend(z, f, k=20, k0=20), y)[0]
        gains.append(both - max(spearmanr(z, y)[0], spearmanr(f, y)[0]))
    assert np.mean(gains) > 0.02


def test_select_k0_follows_the_better_source():
    rng = np.random.default_rng(1)
    y = [rng.normal(size=50) for _ in range(30)]
    good_profile = [(t + 0.1 * rng.normal(size=50), t + 3 * rng.normal(size=50), t, 10) for t in y]
    good_ratings = [(t + 3 * rng.normal(size=50), t + 0.1 * rng.normal(size=50), t, 10) for t in y]
    assert select_k0(good_profile) >= 100  # trust the profile
    assert select_k0(good_ratings) <= 5  # trust the ratings


class _Fake:
    """A component scorer whose predictions are the truth plus noise of a chosen size."""

    def __init__(self, truth: dict, noise: float, seed: int):
        self.truth, self.noise, self.rng = truth, noise, np.random.default_rng(seed)
        self.seen_support: list[list[str]] = []

    def predict(self, task):
        self.seen_support.append(list(task.support_images))
        y = np.array([self.truth[i] for i in task.query_images])
        return y + self.noise * self.rng.normal(size=len(y))


def _task(n_support: int, n_query: int, truth: dict):
    from pathlib import Path

    from eval.api import UserTask
    from piaa.schema import PARA_SCALE, Profile

    images = sorted(truth)
    sup, query = images[:n_support], images[n_support : n_support + n_query]
    return UserTask(
        "u1", Profile(), sup, np.array([truth[i] for i in sup]), query, PARA_SCALE, Path("."), shots=n_support
    )


@pytest.mark.parametrize("good", ["zero", "few"])
def test_ensemble_scorer_picks_k0_on_support_only(good):
    from eval.scorers_ensemble import EnsembleScorer

    rng = np.random.default_rng(3)
    truth = {f"im{i:03d}": float(v) for i, v in enumerate(rng.normal(size=300))}
    task = _task(100, 200, truth)
    ens = EnsembleScorer(seed=0)
    ens.zero = _Fake(truth, 0.05 if good == "zero" else 5.0, 1)
    ens.few = _Fake(truth, 0.05 if good == "few" else 5.0, 2)
    pred = ens.predict(task)
    assert len(pred) == 200
    k0 = ens.chosen_k0[-1]
    assert (k0 >= 100) if good == "zero" else (k0 <= 5)
    assert spearmanr(pred, [truth[i] for i in task.query_images])[0] > 0.9
    # the few-shot model was only ever fitted on support images
    assert all(set(s) <= set(task.support_images) for s in ens.few.seen_support)


def test_ensemble_scorer_small_support_uses_prior_k0():
    from eval.ensemble import DEFAULT_K0
    from eval.scorers_ensemble import EnsembleScorer

    truth = {f"im{i:03d}": float(i % 7) for i in range(60)}
    ens = EnsembleScorer()
    ens.zero, ens.few = _Fake(truth, 1.0, 1), _Fake(truth, 1.0, 2)
    ens.predict(_task(10, 40, truth))
    assert ens.chosen_k0 == [DEFAULT_K0]
