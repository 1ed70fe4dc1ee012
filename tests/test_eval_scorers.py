"""eval.scorers: registry, baselines, and that population-mean never sees test users' ratings."""

import numpy as np
import pandas as pd
import pytest

import eval.scorers as sc
from eval.api import Benchmark, Scorer
from eval.protocols import episodes
from eval.synthetic import make_benchmark
from piaa.schema import RatingsTable


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_benchmark(tmp_path_factory.mktemp("s"), n_users=9, n_images=50, write_images=False, seed=3)


@pytest.fixture
def fake_features(monkeypatch, bench):
    """Pixel-free features: (brightness-like, redness-like, noise) recovered from the synthetic oracle."""
    rng = np.random.default_rng(0)
    imgs = bench.table.images
    a = bench.oracle("u000", imgs)
    b = bench.oracle("u001", imgs)
    feats = {i: np.array([a[k], b[k], *rng.normal(size=3)], dtype=np.float32) for k, i in enumerate(imgs)}
    monkeypatch.setattr(sc, "benchmark_features", lambda *args, **kw: feats)
    return feats


def test_registry_basics():
    assert {"random", "population-mean", "oracle"} <= set(sc.list_scorers())
    s = sc.create_scorer("random", context={"seed": 4, "quick": True, "unused": 1})
    assert isinstance(s, Scorer) and s.name == "random" and s.seed == 4 and not s.needs_support
    with pytest.raises(sc.ScorerNotAvailableError, match="unknown scorer"):
        sc.create_scorer("nope")


def test_lazy_adapter_entry(monkeypatch):
    monkeypatch.setitem(sc.SCORERS, "lazy-random", sc.lazy("eval.scorers:RandomScorer"))
    s = sc.create_scorer("lazy-random", context={"seed": 9, "cache_dir": "x"})
    assert s.name == "lazy-random" and s.seed == 9
    monkeypatch.setitem(sc.SCORERS, "missing", sc.lazy("eval.no_such_adapter:Thing"))
    with pytest.raises(sc.ScorerNotAvailableError, match="no_such_adapter"):
        sc.create_scorer("missing")


def test_random_seeded_and_chance_level(bench):
    eps = list(episodes(bench, shots=10, repeats=2))
    r1, r2, r3 = sc.create_scorer("random", seed=1), sc.create_scorer("random", seed=1), sc.create_scorer("random")
    p1 = [r1.predict(e.task) for e in eps]
    assert all(np.array_equal(a, r2.predict(e.task)) for a, e in zip(p1, eps))
    assert not np.array_equal(p1[0], r3.predict(eps[0].task))
    assert len(p1[0]) == len(eps[0].task.query_images)


def test_oracle_needs_oracle(bench):
    o = sc.create_scorer("oracle")
    o.fit(bench, bench.folds[0][0])
    (e, *_) = list(episodes(bench, shots=0))
    np.testing.assert_allclose(o.predict(e.task), bench.oracle(e.task.user, e.task.query_images))
    plain = Benchmark("real", bench.table, bench.folds)
    with pytest.raises(sc.ScorerNotAvailableError):
        sc.create_scorer("oracle").fit(plain, bench.folds[0][0])


def test_population_mean_never_sees_test_ratings(bench, fake_features, monkeypatch):
    from sklearn.linear_model import RidgeCV

    train, test = bench.folds[0]
    seen_users, fit_calls = [], []
    orig_for_users, orig_fit = RatingsTable.for_users, RidgeCV.fit

    def spy_for_users(self, users):
        users = list(users)
        seen_users.append(set(users))
        return orig_for_users(self, users)

    def spy_fit(self, x, y, *a, **kw):
        fit_calls.append(np.asarray(y).copy())
        return orig_fit(self, x, y, *a, **kw)

    monkeypatch.setattr(RatingsTable, "for_users", spy_for_users)
    monkeypatch.setattr(RidgeCV, "fit", spy_fit)
    pm = sc.create_scorer("population-mean")
    pm.fit(bench, train)
    assert seen_users and all(not (u & set(test)) for u in seen_users)
    df = bench.table.ratings
    expected = df[df["user"].isin(train)].groupby("image")["score"].mean().sort_index().to_numpy()
    everyone = df.groupby("image")["score"].mean().sort_index().to_numpy()
    (y,) = fit_calls
    np.testing.assert_allclose(y, expected)
    assert not np.allclose(y, everyone)
    # corrupting the test users' ratings changes nothing
    eps = list(episodes(bench, shots=0, folds=[0]))
    before = [pm.predict(e.task) for e in eps]
    noisy = df.copy()
    rng = np.random.default_rng(1)
    m = noisy["user"].isin(test)
    noisy.loc[m, "score"] = bench.scale.quantize(rng.uniform(1, 5, int(m.sum())))
    other = Benchmark(bench.name, RatingsTable(noisy, bench.scale, bench.table.profiles, bench.table.image_root),
                      bench.folds)  # fmt: skip
    pm2 = sc.create_scorer("population-mean")
    pm2.fit(other, train)
    for e, b in zip(eps, before):
        np.testing.assert_allclose(pm2.predict(e.task), b)
        assert pm.predict(e.task).shape == (len(e.task.query_images),)
    # same prediction for every user on the same images
    t0, t1 = eps[0].task, eps[1].task
    np.testing.assert_allclose(pm.predict(t0), pm.predict(t1))


def test_population_mean_learns_shared_taste(bench, fake_features):
    from eval.metrics import correlations

    pm = sc.create_scorer("population-mean")
    pm.fit(bench, bench.folds[1][0])
    sr = [correlations(pm.predict(e.task), e.query_scores)[0] for e in episodes(bench, shots=0, folds=[1])]
    assert np.mean(sr) > 0.4


def test_training_targets_empty_fold(bench):
    with pytest.raises(ValueError, match="needs training users"):
        sc.create_scorer("population-mean").fit(bench, [])
    assert sc.training_targets(bench, ["u000"])[1].shape == (50,)
    assert isinstance(bench.table.ratings, pd.DataFrame)


def test_support_residual_uses_support_and_beats_population(bench, fake_features):
    from eval.metrics import correlations

    pm, sr_ = sc.create_scorer("population-mean"), sc.create_scorer("support-residual")
    assert sr_.needs_support
    train = bench.folds[0][0]
    pm.fit(bench, train)
    sr_.fit(bench, train)
    eps = list(episodes(bench, shots=20, repeats=2, folds=[0]))
    a = [correlations(pm.predict(e.task), e.query_scores)[0] for e in eps]
    b = [correlations(sr_.predict(e.task), e.query_scores)[0] for e in eps]
    assert np.mean(b) > np.mean(a) + 0.05
    # with an empty support it is population-mean
    e = eps[0]
    e.task.support_images, e.task.support_scores = [], np.zeros(0)
    np.testing.assert_allclose(sr_.predict(e.task), pm.predict(e.task))


def test_loo_ridge_matches_brute_force():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    x, xq = rng.normal(size=(12, 40)), rng.normal(size=(5, 40))
    y = x[:, :5].sum(1) * 0.5 + rng.normal(0, 0.3, 12) + 3.0
    alphas = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5)
    errs = []
    for a in alphas:  # brute-force leave-one-out, intercept refitted each time
        e = [
            y[i] - Ridge(alpha=a).fit(np.delete(x, i, 0), np.delete(y, i)).predict(x[i : i + 1])[0] for i in range(12)
        ]
        errs.append(np.mean(np.square(e)))
    a_best = alphas[int(np.argmin(errs))]
    assert a_best not in (alphas[0], alphas[-1])  # an interior choice, so the test can tell the penalties apart
    expected = Ridge(alpha=a_best).fit(x, y).predict(xq)
    np.testing.assert_allclose(sc.loo_ridge(x, y, xq, alphas), expected, rtol=1e-6, atol=1e-8)
