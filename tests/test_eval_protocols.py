"""eval.protocols: seeded few-shot sampling, support/query disjointness, skip rules, zero-shot folds."""

import numpy as np
import pandas as pd
import pytest

from eval.api import Benchmark
from eval.protocols import CONSTANT_QUERY, TOO_FEW, SkipLog, count_episodes, episodes
from eval.synthetic import make_benchmark
from piaa.schema import PARA_SCALE, RatingsTable


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_benchmark(tmp_path_factory.mktemp("b"), n_users=9, n_images=40, n_folds=3, write_images=False)


def _by_key(eps):
    return {(e.fold, e.task.user, e.task.repeat): e for e in eps}


def test_few_shot_reproducible_and_disjoint(bench):
    a = _by_key(episodes(bench, shots=10, repeats=3, seed=5))
    b = _by_key(episodes(bench, shots=10, repeats=3, seed=5))
    c = _by_key(episodes(bench, shots=10, repeats=3, seed=6))
    assert len(a) == 9 * 3 and a.keys() == b.keys()
    for k, e in a.items():
        t = e.task
        assert t.support_images == b[k].task.support_images
        assert len(t.support_images) == 10 and t.shots == 10
        assert not set(t.support_images) & set(t.query_images)
        assert len(t.support_images) + len(t.query_images) == 40
        assert len(e.query_scores) == len(t.query_images)
        # scores line up with the table
        ur = bench.table.user_ratings(t.user).set_index("image")["score"]
        np.testing.assert_allclose(t.support_scores, ur.loc[t.support_images].to_numpy())
        np.testing.assert_allclose(e.query_scores, ur.loc[t.query_images].to_numpy())
    assert sum(a[k].task.support_images != c[k].task.support_images for k in a) > 20
    # repeats draw different supports
    u = sorted(bench.folds[0][1])[0]
    assert a[(0, u, 0)].task.support_images != a[(0, u, 1)].task.support_images


def test_sampling_independent_of_row_order_and_fold_choice(bench):
    shuffled = bench.table.ratings.sample(frac=1.0, random_state=1)
    other = Benchmark("x", RatingsTable(shuffled, bench.scale, bench.table.profiles, bench.table.image_root),
                      bench.folds)  # fmt: skip
    a = _by_key(episodes(bench, shots=10, repeats=2, seed=0))
    b = _by_key(episodes(other, shots=10, repeats=2, seed=0, folds=[2]))
    assert b and all(a[k].task.support_images == b[k].task.support_images for k in b)


def test_nested_supports(bench):
    k10 = _by_key(episodes(bench, shots=10, repeats=2, seed=0))
    k20 = _by_key(episodes(bench, shots=20, repeats=2, seed=0))
    for k in k10:
        assert set(k10[k].task.support_images) <= set(k20[k].task.support_images)


def test_zero_shot_uses_all_ratings_of_test_users_only(bench):
    eps = list(episodes(bench, shots=0, repeats=10))
    assert len(eps) == 9  # one repeat
    for e in eps:
        train, test = bench.folds[e.fold]
        assert e.task.user in test and e.task.user not in train
        assert e.task.support_images == [] and len(e.task.support_scores) == 0
        assert len(e.task.query_images) == 40
    assert sorted(e.task.user for e in eps) == bench.table.users


def test_max_users_takes_the_first_test_users_of_each_fold(bench):
    eps = list(episodes(bench, shots=10, repeats=2, max_users=2))
    for f, (_, test) in enumerate(bench.folds):
        got = sorted({e.task.user for e in eps if e.fold == f})
        assert got == sorted(map(str, test))[:2]
    assert len(eps) == count_episodes(bench, shots=10, repeats=2, max_users=2) == 2 * 2 * len(bench.folds)
    full = _by_key(episodes(bench, shots=10, repeats=2))
    for key, e in _by_key(eps).items():  # the same episodes as in the full run, just fewer users
        assert e.task.support_images == full[key].task.support_images


def test_skip_rules_counted():
    rows = []
    for i in range(30):
        rows.append((f"i{i}", "many", 1 + (i % 9) * 0.5))
    for i in range(15):
        rows.append((f"i{i}", "few", 1 + (i % 5) * 0.5))
    for i in range(30):
        rows.append((f"i{i}", "flat", 3.0))
    table = RatingsTable(pd.DataFrame(rows, columns=["image", "user", "score"]), PARA_SCALE)
    bench = Benchmark("t", table, [(["x"], ["few", "flat", "many"])])
    skips = SkipLog()
    eps = list(episodes(bench, shots=10, repeats=2, skips=skips))
    assert {e.task.user for e in eps} == {"many"}
    assert skips.counts() == {"10": {TOO_FEW: 1, CONSTANT_QUERY: 2}}
    skips0 = SkipLog()
    eps0 = list(episodes(bench, shots=0, skips=skips0))
    assert {e.task.user for e in eps0} == {"few", "many"}
    assert skips0.counts() == {"0": {CONSTANT_QUERY: 1}}
    assert count_episodes(bench, shots=10, repeats=2) == 2 * 2  # upper bound: many + flat


def test_duplicate_ratings_averaged():
    rows = [(f"i{i}", "u", float(1 + i % 5)) for i in range(12)] + [("i0", "u", 3.0)]
    bench = Benchmark("d", RatingsTable(pd.DataFrame(rows, columns=["image", "user", "score"]), PARA_SCALE),
                      [([], ["u"])])  # fmt: skip
    (e,) = list(episodes(bench, shots=0))
    assert len(e.task.query_images) == 12 and e.query_scores[0] == pytest.approx(2.0)


def test_overlapping_fold_rejected(bench):
    bad = Benchmark("bad", bench.table, [(["u000", "u001"], ["u001"])])
    with pytest.raises(ValueError, match="both train and test"):
        list(episodes(bad, shots=0))
    with pytest.raises(ValueError, match="no fold 7"):
        list(episodes(bench, shots=0, folds=[7]))


def test_fold_key_stable_and_order_free(bench):
    from eval.protocols import fold_key

    a, b = bench.folds[0][0], bench.folds[1][0]
    assert fold_key(a) == fold_key(list(reversed(a))) and fold_key(a) != fold_key(b)
    assert len(fold_key(a)) == 12
