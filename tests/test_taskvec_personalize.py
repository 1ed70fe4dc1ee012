"""taskvec.personalize / taskvec.model: both recipes recover a user whose taste is one task model; edge cases;
the fast recipe's cached computation is exact; a personalized user is kilobytes and scores like a merged model."""

import warnings

import numpy as np
import pytest
import torch
from taskvec_synth import make_images
from torch.func import functional_call

from piaa.schema import Scale
from taskvec.backbones import BackboneConfig, create_backbone
from taskvec.model import PersonalizedScorer, PersonalizedUser
from taskvec.personalize import (
    AllEqualRatingsWarning,
    FirstLinearCache,
    TaskSet,
    create_recipe,
    default_groups,
    fit_fast,
    fit_yun2024,
    list_recipes,
    srocc,
    task_alpha,
)
from taskvec.task_vector import TaskVector


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pers")
    names, _ = make_images(root, 120, seed=3)
    model = create_backbone(BackboneConfig(image_size=64))
    paths = [root / n for n in names]
    feats = model.trunk_features(paths)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(0)
    vectors = {}
    for t in range(3):
        vec = {}
        for k in model.trainable_names():
            sd = float(params[k].detach().std()) if params[k].numel() > 1 else 0.0
            vec[k] = torch.randn(params[k].shape, generator=g) * (0.5 * sd if sd > 0 else 0.2)
        vectors[f"task{t}"] = TaskVector(vec)
    ts = TaskSet(model, vectors)
    return ts, feats, paths


def _task_scores(ts, feats, t):
    onehot = {k: torch.nn.functional.one_hot(torch.tensor(t), ts.num_tasks).float() for k in ts.keys}
    return ts.scores(feats, ts.merged(onehot)).numpy()


def test_registry():
    assert list_recipes() == ["fast", "yun2024"]
    with pytest.raises(ValueError, match="unknown personalization recipe 'nope'"):
        create_recipe("nope")


def _plain_mix(cache, a: torch.Tensor) -> torch.Tensor:
    """The cache's mix as written: stack[0] + sum_t a_t stack[1 + t] (the reference the fit's streamed path is
    checked against)."""
    return cache.stack[0] + torch.tensordot(a, cache.stack[1:], dims=1)


def test_fast_cache_is_exact(world):
    ts, feats, _ = world
    groups = default_groups(ts.keys, blockwise=True)
    assert len(groups) < len(ts.keys)  # block-wise: weight and bias share a coefficient
    alpha = torch.randn(len(groups), ts.num_tasks)
    coef = {k: alpha[g] for g, keys in enumerate(groups) for k in keys}
    direct = functional_call(ts.model, ts.merged(coef), (feats[:20].float(),), {"stage": "trunk"})
    cache = FirstLinearCache(ts, feats[:20].float())
    rest = {k: v for k, v in ts.merged(coef).items() if k != cache.key}
    via = functional_call(ts.model, rest, (_plain_mix(cache, coef[cache.key]),), {"stage": "first"})
    assert torch.allclose(direct, via, atol=1e-5)


@pytest.mark.parametrize("chunk_bytes", [1, 3 << 20])  # one image per chunk; the default
def test_mixed_rest_matches_autograd(world, monkeypatch, chunk_bytes):
    """The fit's streamed tail (``stage="first", mix=...``) is the plain mix -> BN -> ReLU6 -> pool, in value and
    in its gradient with respect to alpha (every group: the mix's and the BN's), to float rounding."""
    import taskvec.backbones

    monkeypatch.setattr(taskvec.backbones, "MASK_CHUNK_BYTES", chunk_bytes)
    ts, feats, _ = world
    groups = default_groups(ts.keys, blockwise=True)
    cache = FirstLinearCache(ts, feats[:20].float())
    torch.manual_seed(3)
    y = torch.randn(20)
    grads, values = [], []
    for mixed in (False, True):
        alpha = 0.3 * torch.randn(len(groups), ts.num_tasks, generator=torch.Generator().manual_seed(4))
        alpha.requires_grad_(True)
        coef = {k: alpha[g] for g, keys in enumerate(groups) for k in keys}
        rest = {k: v for k, v in ts.merged(coef).items() if k != cache.key}
        if mixed:
            s = functional_call(ts.model, rest, (cache.stack,), {"stage": "first", "mix": coef[cache.key]})
        else:
            s = functional_call(ts.model, rest, (_plain_mix(cache, coef[cache.key]),), {"stage": "first"})
        ((s - y) ** 2).sum().backward()
        values.append(s.detach())
        grads.append(alpha.grad.clone())
    assert torch.allclose(values[0], values[1], atol=1e-5)
    assert grads[0].abs().sum() > 0 and (grads[0] != 0).sum(1).all()  # every group has a gradient to compare
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-6)
    with torch.no_grad():  # the same scores without autograd (the recipe's no-grad scoring)
        s = functional_call(ts.model, rest, (cache.stack,), {"stage": "first", "mix": coef[cache.key]})
    assert torch.allclose(s, values[1], atol=1e-6)


def test_cache_stack_is_each_weights_own_product(world):
    """The cache is built into one preallocated stack: bit for bit the stack of each weight's own 1x1 conv."""
    ts, feats, _ = world
    tail = ts.model.tail
    weights = [ts.base["tail.conv_head.weight"], *ts.taus["tail.conv_head.weight"]]
    stacked = tail.first_stack(feats[:9].float(), weights)
    tokens = feats[:9].float().flatten(2).transpose(1, 2)  # (B, P, C)
    b, p, c = tokens.shape
    own = torch.stack([(tokens.reshape(-1, c) @ w.flatten(1).t()).reshape(b, p, -1) for w in weights])
    assert stacked.shape == (len(weights), b, p, weights[0].shape[0])
    assert torch.equal(stacked, own) and torch.equal(FirstLinearCache(ts, feats[:9].float()).stack, stacked)
    assert torch.equal(tail.first(feats[:9].float(), weights[1]), own[1])


def test_shared_first_cache_rows_give_the_same_fit(world, monkeypatch):
    """A fold's fit on rows of one shared cache equals the fit that builds its own cache."""
    from taskvec.personalize import first_linear_cache

    ts, feats, _ = world
    y = np.round(2 * (1 + 4 * _task_scores(ts, feats, 1))) / 2
    shared = first_linear_cache(ts, feats[:40])
    fold = np.arange(0, 40, 3)
    assert len(shared) == 40 and torch.equal(shared.rows(fold).stack, FirstLinearCache(ts, feats[fold]).stack)
    own = fit_fast(ts, feats[fold], y[fold], prior_task=ts.names[0])
    built = []
    monkeypatch.setattr(FirstLinearCache, "__init__", lambda self, *a: built.append(1))  # no new cache may be built
    via = fit_fast(ts, feats[fold], y[fold], prior_task=ts.names[0], first_cache=shared.rows(fold))
    assert built == []
    monkeypatch.undo()
    mask = np.zeros(40, dtype=bool)
    mask[fold] = True
    assert torch.equal(shared.rows(mask).stack, shared.rows(fold).stack)  # a boolean mask selects the same rows
    assert torch.allclose(own.alpha, via.alpha, atol=1e-6) and not torch.equal(own.alpha, task_alpha(ts, 0, 1))
    with pytest.raises(ValueError, match="first_cache holds 40 images, the support set 14"):
        fit_fast(ts, feats[fold], y[fold], first_cache=shared)
    assert first_linear_cache(ts, feats[:40], cache_max_images=10) is None


@pytest.mark.parametrize("recipe", ["fast", "yun2024"])
def test_recipes_recover_a_one_task_user(world, recipe):
    ts, feats, _ = world
    target = 1
    y = np.round(2 * (1 + 4 * _task_scores(ts, feats, target))) / 2  # PARA-like 1-5 step 0.5 (ties included)
    sup, qry = np.arange(40), np.arange(60, 120)
    prior = {k: torch.full((ts.num_tasks,), 1 / ts.num_tasks) for k in ts.keys}
    prior_srocc = srocc(ts.scores(feats[qry], ts.merged(prior)).numpy(), y[qry])
    kw = {"steps": 100} if recipe == "yun2024" else {}
    res = create_recipe(recipe)(ts, feats[sup], y[sup], scale_range=4.0, **kw)
    fitted = srocc(ts.scores(feats[qry], ts.merged(res.coefficients())).numpy(), y[qry])
    assert fitted > prior_srocc + 0.05, (recipe, prior_srocc, fitted)
    assert res.alpha.shape == (len(res.groups), 3) and not res.fallback
    assert int(np.argmax(res.init_srocc)) == target


@pytest.mark.parametrize("fit", [fit_fast, fit_yun2024])
def test_edge_cases(world, fit):
    ts, feats, _ = world
    kw = {"steps": 5} if fit is fit_yun2024 else {"max_iter": 3}
    r = fit(ts, feats[:2], [1.0, 4.0], **kw)  # k = 2
    assert torch.isfinite(r.alpha).all()
    r = fit(ts, feats[:10], [1, 1, 1, 2, 2, 2, 3, 3, 1, 2], **kw)  # many ties
    assert torch.isfinite(r.alpha).all()
    with pytest.warns(AllEqualRatingsWarning, match="all equal"):
        r = fit(ts, feats[:8], [3.0] * 8, **kw)
    assert r.fallback and torch.allclose(r.alpha, torch.full_like(r.alpha, 1 / 3))
    with pytest.raises(ValueError, match=r"position\(s\) \[2\] are NaN"):
        fit(ts, feats[:4], [1.0, 2.0, float("nan"), 3.0], **kw)
    with pytest.raises(ValueError, match="at least 2"):
        fit(ts, feats[:1], [1.0], **kw)
    with pytest.raises(ValueError, match="4 images but 3 scores"):
        fit(ts, feats[:4], [1.0, 2.0, 3.0], **kw)


def test_fast_without_cache_uses_minibatches(world):
    ts, feats, _ = world
    y = _task_scores(ts, feats, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fit_fast(ts, feats[:80], y[:80], cache_max_images=10, minibatch=32, max_iter=4)
    prior = {k: torch.full((3,), 1 / 3) for k in ts.keys}
    assert srocc(ts.scores(feats[80:], ts.merged(r.coefficients())).numpy(), y[80:]) > srocc(
        ts.scores(feats[80:], ts.merged(prior)).numpy(), y[80:])  # fmt: skip


def test_personalized_user_is_kilobytes_and_scores_like_merged_model(world, tmp_path):
    ts, feats, paths = world
    scorer = PersonalizedScorer(ts, source="synthetic")
    y = _task_scores(ts, feats, 0)
    user = scorer.personalize("u1", feats[:40], y[:40], recipe="fast", scale=Scale(0.0, 4.0))  # y in [0, 1]
    folder = user.save_pretrained(tmp_path / "u1")
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 8_000, size
    user2 = PersonalizedUser.from_pretrained(folder)
    assert torch.equal(user2.alpha, user.alpha) and user2.config == user.config
    s1 = scorer.score_features(feats[40:], user)
    want = ts.scores(feats[40:], ts.merged(user.coefficients())).numpy()
    assert np.allclose(s1, want, atol=1e-6)
    assert scorer.merged_params(user2) is scorer.merged_params(user)  # cached per user
    # end to end from JPEG files (BN folded into the trunk convs): same scores up to float error
    s_files = scorer.score(paths[40:60], user=user2, batch_size=8)  # on the user's scale (0-4)
    assert s_files.scale == Scale(0.0, 4.0) and not s_files.errors
    assert np.allclose(s_files.scale.normalize(s_files.scores), s1[:20], atol=2e-3)
    assert np.asarray(s_files.details["alpha"]).shape == tuple(user.alpha.shape)
    user2.config.base_fingerprint = "0" * 64
    with pytest.raises(ValueError, match="different backbone"):
        scorer.merged_params(user2)
    (folder / "user.json").unlink()
    with pytest.raises(FileNotFoundError, match="user.json"):
        PersonalizedUser.from_pretrained(folder)


def test_linearize_matches_finite_differences(world):
    """The Jacobian of the scores in alpha (per-image reverse mode, in chunks) is the same with and without the
    first-linear cache and matches central differences; the scores at the expansion point are a plain forward's."""
    from taskvec.personalize import first_linear_cache, linearize

    ts, feats, _ = world
    f = feats[:24].float()
    groups = default_groups(ts.keys, blockwise=True)
    alpha = torch.rand(len(groups), ts.num_tasks, generator=torch.Generator().manual_seed(1))
    lin = linearize(ts, alpha, groups, f, first_linear_cache(ts, f), chunk_size=7)
    plain = linearize(ts, alpha, groups, f, None, chunk_size=24)

    def scores(a):
        coef = {k: a[g] for g, keys in enumerate(groups) for k in keys}
        return ts.scores(f, ts.merged(coef)).double()

    assert lin.jac.shape == (24, alpha.numel())
    torch.testing.assert_close(lin.jac, plain.jac, atol=1e-5, rtol=0)
    torch.testing.assert_close(lin.scores.double(), scores(alpha), atol=1e-5, rtol=0)
    v = torch.randn(alpha.shape, generator=torch.Generator().manual_seed(2))
    eps = 1e-3  # float32 scores: smaller steps drown in rounding
    fd = (scores(alpha + eps * v) - scores(alpha - eps * v)) / (2 * eps)
    jv = lin.jac.double() @ v.flatten().double()
    assert float(fd.norm()) > 1e-2  # the direction moves the scores: the comparison means something
    assert float((jv - fd).norm() / fd.norm()) < 0.05
    torch.testing.assert_close(lin.predict(alpha + 0.1 * v), lin.scores + 0.1 * (lin.jac @ v.flatten()), atol=1e-5,
                               rtol=0)  # fmt: skip


def test_first_order_refit_on_all_rows_stays_at_a_converged_fit(world):
    """At a minimiser of the fast recipe's objective the first-order model's gradient is the objective's, so its
    refit on every row stays there; on a subset of the rows it moves (the held rows' pull is removed)."""
    from taskvec.personalize import default_l2, linearize

    ts, feats, _ = world
    f = feats[:40].float()
    y = np.round(2 * (1 + 4 * _task_scores(ts, f, 2))) / 2
    res = fit_fast(ts, f, y, scale_range=4.0, prior_task="task0", max_iter=300)
    a0 = task_alpha(ts, "task0", len(res.groups))
    lin = linearize(ts, res.alpha, res.groups, f)
    l2 = default_l2(40, "task0")
    again = lin.refit(np.arange(40), y, a0=a0, l2=l2, scale_range=4.0)
    moved = lin.refit(np.arange(20), y[:20], a0=a0, l2=default_l2(20, "task0"), scale_range=4.0)
    assert float((again - res.alpha).abs().max()) < 0.02
    assert float((moved - res.alpha).abs().max()) > 5 * float((again - res.alpha).abs().max())


def test_first_order_held_back_check_agrees_with_refitted_folds(tmp_path):
    """The few-shot model's taskvec held-back check (first-order folds) ranks the held-back ratings as refitting
    every fold does, with the embedded task vectors."""
    from dataclasses import replace

    from eval.fewshot import FewShot
    from piaa.schema import PARA_SCALE

    scorer = PersonalizedScorer.from_pretrained()
    model = FewShot(scorer)
    exact = replace(model, held_back="refit")
    names, attrs = make_images(tmp_path, 30, seed=9, size=64)
    x = model.inputs([tmp_path / n for n in names])
    y = PARA_SCALE.quantize(1 + 4 * (0.7 * attrs["bright"] + 0.3 * attrs["red"]))
    cache = model._first_cache(x, y)
    user = model._taskvec("u", x, y, PARA_SCALE, cache)
    fo = model._taskvec_held_back(x, y, PARA_SCALE, user, cache)
    ex = exact._taskvec_held_back(x, y, PARA_SCALE, user, cache)
    assert np.all(np.isfinite(fo)) and np.ptp(fo) > 0
    assert srocc(fo, ex) > 0.9
    assert abs(srocc(fo, y) - srocc(ex, y)) < 0.1
    with pytest.raises(ValueError, match="held_back must be"):
        FewShot(scorer, held_back="nope")
