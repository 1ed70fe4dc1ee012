"""piaa.stats: the shared SROCC and population ridge used by eval, pmllm and taskvec scripts."""

import numpy as np
import pytest

from piaa.stats import fit_population_ridge, srocc


def test_srocc_cases():
    assert srocc([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert srocc([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert srocc([1, 1, 1], [1, 2, 3]) == 0.0  # undefined -> 0
    assert srocc([1.0], [2.0]) == 0.0


def test_population_ridge_learns_a_linear_target_and_picks_a_penalty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20))
    w = rng.normal(size=20)
    y = x @ w + 0.1 * rng.normal(size=300)
    model = fit_population_ridge(x[:200], y[:200])
    assert srocc(model.predict(x[200:]), y[200:]) > 0.95
    noise = fit_population_ridge(x[:200], rng.normal(size=200))
    assert noise[-1].alpha_ >= model[-1].alpha_  # pure-noise targets get (at least) as strong a penalty
