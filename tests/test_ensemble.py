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
