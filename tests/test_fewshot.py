"""The few-shot model of parts (eval.fewshot): the weighting rule, the residual ridge, the saved user, and the
proof that nothing in it sees query ratings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import spearmanr

from eval.fewshot import PRIOR_AGREEMENT, combine, normal_scores, part_weights
from piaa.stats import LooRidge, srocc


def test_normal_scores_are_scale_free():
    x = np.array([3.0, 1.0, 2.0, 10.0])
    np.testing.assert_allclose(normal_scores(x), normal_scores(100 * x - 7))  # monotone transforms do not matter
    assert np.all(normal_scores([2.0, 2.0, 2.0]) == 0)
    with pytest.raises(ValueError, match="NaN"):
        normal_scores([1.0, np.nan])


def test_a_part_that_contradicts_the_ratings_loses_its_weight():
    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    held = {"profile": -y + 0.1 * rng.normal(size=30), "taskvec": y + rng.normal(size=30), "residual": y}
    w, agree = part_weights(held, y)
    assert w["profile"] == 0.0 and agree["profile"] < -0.9  # reversed: no weight at all
    assert w["residual"] > w["taskvec"] > 0  # the better predictor of held-back ratings counts more
    held["profile"] = y + 0.05 * rng.normal(size=30)
    w2, _ = part_weights(held, y)
    assert w2["profile"] > w2["taskvec"]  # one that agrees keeps it


def test_eight_ratings_that_reverse_the_profile_outweigh_its_prior():
    """4 photos rated 1 and 4 rated 5, in the reverse of the profile's order: its prior (worth 20 ratings) would
    keep it a positive shrunk agreement, but the reversal is beyond chance, so it gets no weight; a mildly negative
    agreement on as many ratings is within chance and keeps the prior's weight."""
    y = np.array([5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0])
    zero = np.arange(8.0)  # the profile ranks the photos rated 1 highest
    w, agree = part_weights({"profile": zero, "residual": -zero + 0.5 * np.sin(zero)}, y)
    assert agree["profile"] < -1.96 / np.sqrt(7) and w["profile"] == 0.0 and w["residual"] > 0
    mild = -np.array([2.0, 6.0, 1.0, 7.0, 3.0, 0.0, 5.0, 4.0])  # Spearman about -0.2 with y
    w2, agree2 = part_weights({"profile": mild, "residual": -zero + 0.5 * np.sin(zero)}, y)
    assert -0.5 < agree2["profile"] < 0 and w2["profile"] > 0


def test_few_ratings_lean_on_the_prior_and_equal_ratings_say_nothing():
    y = np.array([1.0, 5.0])
    w, agree = part_weights({"profile": np.array([5.0, 1.0]), "taskvec": None}, y)
    assert np.isnan(agree["taskvec"])  # unchecked: its prior only
    w0, _ = part_weights({"profile": None, "taskvec": None}, y)
    assert w0["profile"] > w0["taskvec"] > 0 and PRIOR_AGREEMENT["profile"] > PRIOR_AGREEMENT["taskvec"]
    assert w["profile"] < w0["profile"]  # 2 contradicting ratings already cost the profile some weight
    flat, _ = part_weights({"profile": np.array([1.0, 2.0, 3.0]), "taskvec": np.array([3.0, 2.0, 1.0])},
                           np.array([3.0, 3.0, 3.0]))  # fmt: skip
    assert flat == part_weights({"profile": None, "taskvec": None}, np.array([3.0, 3.0, 3.0]))[0]
    none, _ = part_weights({"profile": -y, "taskvec": None}, y, prior={"profile": 0.0, "taskvec": 0.0})
    assert none == {"profile": 1.0, "taskvec": 0.0}  # nothing agrees: the profile alone


def test_the_words_part_counts_only_where_the_ratings_prefer_it_to_the_profile():
    """The words part restates the profile part without the population's taste: ratings that follow the words
    better than the profile give it weight; ratings that follow the profile at least as well leave it at 0, even
    when they agree with the words too; with too few ratings to tell, it is 0."""
    rng = np.random.default_rng(1)
    words = rng.normal(size=10)
    y = words + 0.1 * rng.normal(size=10)  # the user rates exactly what they wrote
    profile = -words + rng.normal(size=10)  # the population's taste pulls the zero-shot order the other way
    w, agree = part_weights({"profile": profile, "words": words, "residual": None}, y)
    assert agree["words"] > 0.9 and w["words"] > 0 and w["words"] > 5 * w["profile"]
    w2, _ = part_weights({"profile": y + 0.05 * rng.normal(size=10), "words": words, "residual": None}, y)
    assert w2["words"] == 0.0 and w2["profile"] > 0  # the profile predicts the ratings as well: it stays
    close = y + 0.3 * rng.normal(size=10)  # both agree; the words a little better: they count, beside the profile
    w3, a3 = part_weights({"profile": close, "words": words}, y)
    assert 0 < a3["words"] - a3["profile"] < 0.2 and w3["words"] > 0 and w3["profile"] > 0
    assert part_weights({"profile": words, "words": words}, y)[0]["words"] == 0.0  # a tie: the profile part alone
    w4, _ = part_weights({"profile": -y[:3], "words": y[:3]}, y[:3])
    assert w4["words"] == 0.0  # 3 ratings: too few to prefer one reading of the profile to the other
    w5, _ = part_weights({"words": words, "residual": None}, y)
    assert w5["words"] > 0  # no profile part to restate: the words stand on their own agreement


def test_five_ratings_that_follow_the_words_outweigh_a_profile_that_agrees_less():
    """Where the ratings prefer the words, the words part carries the profile part's prior too: 5 ratings that follow
    what the user wrote (the profile agreeing 0.3) already give the words more weight than the profile. With a prior
    of its own (0, worth 20 ratings) the words part would need many more ratings to outweigh the profile's prior."""
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    words = y.copy()  # the user rates exactly what they wrote
    profile = np.array([3.0, 1.0, 5.0, 2.0, 4.0])  # the population's taste blurs it: Spearman 0.3
    w, agree = part_weights({"profile": profile, "words": words}, y)
    assert agree["words"] == pytest.approx(1.0) and agree["profile"] == pytest.approx(0.3)
    assert w["words"] > 1.2 * w["profile"] > 0  # both read what the user wrote; the ratings chose the words
    w_swap, _ = part_weights({"profile": words, "words": profile}, y)  # the other way round: the words do not count
    assert w_swap["words"] == 0.0 and w_swap["profile"] > 0


def test_combine_uses_only_weighted_parts():
    a, b = np.arange(5.0), -np.arange(5.0)
    only_a = combine({"profile": a, "taskvec": b}, {"profile": 1.0, "taskvec": 0.0})
    assert spearmanr(only_a, a)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no part"):
        combine({"profile": a}, {"profile": 0.0})


def test_loo_ridge_predictions_and_the_one_se_rule():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(12, 40)), rng.normal(size=40)
    y = x @ w * 0.1 + rng.normal(size=12)
    alphas = tuple(np.logspace(-2, 4, 13))
    r = LooRidge.fit(x, y, alphas)
    for i in (0, 5):  # the stored leave-one-out predictions are what a fit without row i predicts for row i
        keep = np.arange(12) != i
        assert LooRidge.fit(x[keep], y[keep], (r.alpha,)).predict(x[i : i + 1])[0] == pytest.approx(r.loo_pred[i])
    assert LooRidge.fit(x, y, alphas, rule="1se").alpha >= r.alpha
    with pytest.raises(ValueError, match="rule"):
        LooRidge.fit(x, y, alphas, rule="max")


def test_loo_deviations_carry_no_intercept_artefact():
    """A heavily shrunk fit predicts each held-out row by the other rows' mean, which falls as the row's own target
    rises: ranked against the targets its leave-one-out predictions read as a reversal (-1) on noise. The
    deviations (prediction less that mean) do not; row by row they are what the refit without the row says."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 30)), rng.normal(size=10)
    shrunk = LooRidge.fit(x, y, (1e9,))
    assert srocc(shrunk.loo_pred, y) < -0.99
    assert np.abs(shrunk.loo_dev).max() < 1e-6  # nothing learned: no ranking at all, not a reversed one
    r = LooRidge.fit(x, y, (1.0,))
    for i in (0, 7):
        keep = np.arange(10) != i
        refit = LooRidge.fit(x[keep], y[keep], (1.0,)).predict(x[i : i + 1])[0]
        assert r.loo_dev[i] == pytest.approx(refit - y[keep].mean())


# ------------------------------------------------------------------------------- the model on real models
@pytest.fixture(scope="module")
def model():
    from eval.fewshot import FewShot
    from taskvec.model import PersonalizedScorer

    return FewShot(PersonalizedScorer.from_pretrained())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from tests.taskvec_synth import make_images

    folder = tmp_path_factory.mktemp("fewshot")
    names, attrs = make_images(folder, 40, seed=4, size=64)
    return [folder / n for n in names], attrs


def test_the_model_follows_a_brightness_taste_and_saves_in_kilobytes(model, photos, tmp_path):
    from eval.fewshot import FewShotUser
    from piaa.schema import PARA_SCALE

    paths, attrs = photos
    x = model.inputs(paths)
    y = PARA_SCALE.quantize(1 + 4 * attrs["bright"])
    sup, qry = np.arange(20), np.arange(20, 40)
    zero = -attrs["bright"]  # a profile that says the opposite of the ratings
    user = model.fit("bright", x.rows(sup), y[sup], PARA_SCALE, zero=zero[sup])
    assert user.config.weights["profile"] == 0.0 and user.config.k == 20
    pred = model.predict(user, x.rows(qry), zero=zero[qry])
    assert spearmanr(pred, attrs["bright"][qry])[0] > 0.8
    folder = user.save_pretrained(tmp_path / "u")
    assert sum(f.stat().st_size for f in folder.iterdir()) < 100_000
    back = FewShotUser.from_pretrained(folder)
    np.testing.assert_allclose(model.predict(back, x.rows(qry), zero=zero[qry]), pred, rtol=1e-5, atol=1e-6)
    # a profile part that says the opposite, and a words part that says what the user rates: the words carry it
    words = attrs["bright"] + 0.05 * np.random.default_rng(0).normal(size=len(paths))
    said = model.fit("said", x.rows(sup[:10]), y[sup[:10]], PARA_SCALE, zero=zero[sup[:10]], words=words[sup[:10]])
    assert said.config.weights["words"] > 0 and said.config.weights["profile"] == 0.0
    with pytest.raises(ValueError, match="words="):
        model.predict(said, x.rows(qry), zero=zero[qry])
    assert spearmanr(model.predict(said, x.rows(qry), zero=zero[qry], words=words[qry]), attrs["bright"][qry])[0] > 0.9
    (folder / "fewshot.json").unlink()
    with pytest.raises(FileNotFoundError, match="piaa personalize"):
        FewShotUser.from_pretrained(folder)


class _Zero:
    """Profile and words parts that never see ratings: fixed pseudo-random scores per image name."""

    def fit(self, benchmark, train_users):
        pass

    def predict(self, task):
        return self.predict_with_words(task)[0]

    def predict_with_words(self, task):
        scores = np.array([(hash(i) % 1000) / 1000 for i in task.query_images])
        return scores, np.array([(hash(i + "w") % 997) / 997 for i in task.query_images])


def test_no_weight_penalty_or_stopping_rule_sees_query_ratings(tmp_path):
    """The ensemble's predictions and every choice it makes (part weights, residual features and penalty) are
    identical when the test user's query ratings are replaced by other values."""
    from eval.api import Benchmark, UserTask
    from eval.scorers_ensemble import EnsembleScorer
    from piaa.schema import PARA_SCALE, RatingsTable
    from tests.taskvec_synth import make_images

    names, attrs = make_images(tmp_path / "img", 30, seed=5)
    import pandas as pd

    def table(query_scores):
        rows = [{"image": n, "user": "t", "score": float(s)} for n, s in zip(names, query_scores)]
        rows += [{"image": n, "user": "a", "score": 3.0} for n in names]
        return RatingsTable(pd.DataFrame(rows), PARA_SCALE, {}, tmp_path / "img", "leak")

    y = PARA_SCALE.quantize(1 + 4 * attrs["bright"])
    scrambled = y.copy()
    scrambled[12:] = np.random.default_rng(0).permutation(y[12:])[::-1]
    out = []
    for scores in (y, scrambled):
        bm = Benchmark("leak", table(scores), [(["a"], ["t"])])
        ens = EnsembleScorer(parts=("profile", "taskvec", "residual"), cache_dir=tmp_path / "cache", progress=False)
        ens.zero = _Zero()
        ens.fit(bm, ["a"])
        task = UserTask("t", bm.table.profile("t"), names[:12], scores[:12].copy(), names[12:], PARA_SCALE,
                        tmp_path / "img", shots=12)  # fmt: skip
        out.append((ens.predict(task), ens.weights[-1]))
        assert not hasattr(task, "query_scores")
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]
    task2 = dataclasses.replace(task, support_scores=scrambled[:12][::-1].copy())
    assert not np.array_equal(ens.predict(task2), out[1][0])  # while the support ratings do move it


def test_at_zero_shots_the_ensemble_is_the_profile_prediction(tmp_path):
    """The harness runs the ensemble at 0 shots (its k = 0 row) and there it is pmllm's prediction, exactly; the
    residual ablations, with no profile part, run only with ratings."""
    import pandas as pd

    from eval.api import Benchmark, UserTask
    from eval.scorers_ensemble import EnsembleScorer, create_residual
    from piaa.schema import PARA_SCALE, RatingsTable
    from tests.taskvec_synth import make_images

    names, _ = make_images(tmp_path / "img", 12, seed=6)
    rows = [{"image": n, "user": u, "score": 3.0} for n in names for u in ("a", "t")]
    table = RatingsTable(pd.DataFrame(rows), PARA_SCALE, {}, tmp_path / "img", "zero")
    bm = Benchmark("zero", table, [(["a"], ["t"])])
    ens = EnsembleScorer(cache_dir=tmp_path / "cache", progress=False)
    assert not ens.needs_support and create_residual(cache_dir=tmp_path / "cache", progress=False).needs_support
    ens.zero = _Zero()
    ens.fit(bm, ["a"])
    task = UserTask("t", bm.table.profile("t"), [], np.zeros(0), names, PARA_SCALE, tmp_path / "img", shots=0)
    np.testing.assert_array_equal(ens.predict(task), _Zero().predict(task))
    assert ens.weights == []  # nothing was fitted


def test_the_residual_part_alone_with_two_ratings_is_the_population_model(model, photos):
    from eval.fewshot import FewShot
    from piaa.schema import PARA_SCALE

    paths, _ = photos
    alone = FewShot(model.scorer, parts=("residual",))
    x = alone.inputs(paths)
    user = alone.fit("two", x.rows([0, 1]), [1.0, 5.0], PARA_SCALE)
    assert user.residual is None and user.config.weights["residual"] > 0
    assert spearmanr(alone.predict(user, x), x.base)[0] == pytest.approx(1.0)


def test_without_the_taskvec_part_nothing_is_fitted_and_the_residual_part_is_unchanged(model, photos):
    """The residual-only ablation does not run the task-vector fit (its user keeps the population task's
    coefficients, the unfitted container), and its predictions are those of the residual part of the full model."""
    from eval.fewshot import FewShot
    from piaa.schema import PARA_SCALE
    from taskvec.personalize import task_alpha

    paths, attrs = photos
    x = model.inputs(paths)
    y = PARA_SCALE.quantize(1 + 4 * attrs["bright"])
    sup, qry = np.arange(20), np.arange(20, 40)
    alone = FewShot(model.scorer, parts=("residual",))
    user = alone.fit("r", x.rows(sup), y[sup], PARA_SCALE)
    ts = model.scorer.ts
    expect = task_alpha(ts, model.scorer.population_task(), len(user.taskvec.config.groups))
    assert user.taskvec.alpha.equal(expect) and user.taskvec.config.k == 20
    full = model.fit("r", x.rows(sup), y[sup], PARA_SCALE)
    assert not full.taskvec.alpha.equal(expect)  # the full model does fit it
    np.testing.assert_allclose(alone.part_scores(user, x.rows(qry))["residual"],
                               model.part_scores(full, x.rows(qry))["residual"], rtol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match="unknown personalization recipe"):
        model.scorer.personalize("r", x.trunk[sup], y[sup], scale=PARA_SCALE, recipe="nope", fit=False)
    with pytest.raises(TypeError, match="fits nothing"):
        model.scorer.personalize("r", x.trunk[sup], y[sup], scale=PARA_SCALE, fit=False, steps=5)
