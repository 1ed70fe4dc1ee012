"""Per-user fit of the merging coefficients alpha: theta_user = theta_0 + sum_t alpha_t * tau_t.

Two recipes (registry ``RECIPES``, :func:`create_recipe`, :func:`list_recipes`), same objective family - the
Bradley-Terry pairwise rank loss on the user's support ratings, ``BCEWithLogits(s_a - s_b, [y_a > y_b])`` with
target 0.5 for tied ratings, scores ``s`` on the user's scale:

* ``yun2024`` - the reference, as in Yun & Choo (ECCV 2024) and its code: one alpha per (parameter tensor, task),
  initialised to softmax(10 * SROCC_t) where SROCC_t is task model t on the support images, pairs (i, i + B/2) of a
  shuffled batch of B = min(32, k) support images, AdamW lr 1e-2 (torch default weight decay), 500 steps, no clamp.
  Computation: merged weights every step, then the tail + head forward/backward on the batch. It reads the cached
  trunk output (exact: the trunk is frozen and identical in every task model), nothing else is cached.
* ``fast`` - the project's recipe: the same loss, but (1) one alpha per (module, task) ("block-wise", e.g.
  4 blocks instead of 7 tensors for EfficientNet-Lite0), (2) every pair of the support set every step (full
  batch), (3) L-BFGS with a strong-Wolfe line search for a fixed small budget (10 iterations) instead of 500
  AdamW steps, with an L2 pull of alpha towards its start of weight ``l2`` (a fixed prior against a likelihood
  that grows with k) so the line search cannot run off along the "spread the scores" direction the BT loss
  rewards, and (4) cached frozen computation beyond the trunk: when the tail starts with a linear op (Lite0's 1x1
  conv_head), ``x @ (W0 + sum_t a_t tau_t) = x @ W0 + sum_t a_t (x @ tau_t)``, so the T+1 products are computed
  once per user and each step only mixes them (exact, not an approximation; the mix, BN, ReLU6 and pool are
  streamed over the cache in chunks, and their gradient is taken from per-image, per-channel sums:
  :class:`taskvec.backbones.MaskSums`). Above ``cache_max_images`` support
  images it falls back to direct merged forwards on random all-pairs mini-batches. The start: softmax(10 *
  SROCC_t) as in yun2024 (``l2`` default 3 / k**1.5), or with ``prior_task`` that task model alone (``l2``
  default 9 / k**1.5); :class:`taskvec.model.PersonalizedScorer` starts every user from the population's
  ``general`` task, so few ratings cannot pull a user below the population model (how both were chosen, on
  users kept apart from the benchmark's: ``taskvec/MODEL_CARD.md``).

Use: ``create_recipe(name)(task_set, trunk_features, scores, scale_range=scale.range, **options)`` returns a
:class:`FitResult` (``alpha`` per group and task; ``coefficients()`` per tensor, for :meth:`TaskSet.merged`).
:meth:`taskvec.model.PersonalizedScorer.personalize` does this from image paths and a ``Scale`` (its ``**kwargs``
are the options); ``python -m eval.run`` passes them as
``--scorer-options '{"taskvec": {"recipe_kwargs": {"l2": 0.003}}}'``. Merging is :func:`taskvec.task_vector.merge`.

Neither recipe looks at query ratings; there is no early stopping (fixed budgets). Edge cases: fewer than 2 support
images, mismatched lengths or NaN/inf scores raise ``ValueError``; all-equal ratings carry no ranking signal, so
the fit warns and returns the prior (uniform alpha = softmax(10 * 0)). Library module, no entry point.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from piaa.schema import SchemaError
from piaa.stats import srocc
from taskvec.backbones import ScoringModel
from taskvec.task_vector import TaskVector, load_task_vector, merge


class AllEqualRatingsWarning(UserWarning):
    """The support ratings are all equal: no ranking signal; the prior coefficients are used."""


# --------------------------------------------------------------------------------------------- task set
class TaskSet:
    """theta_0 (a :class:`ScoringModel`) plus T task vectors stacked per tensor: ``taus[key]`` is (T, *shape)."""

    def __init__(self, model: ScoringModel, vectors: dict[str, TaskVector], meta: dict | None = None):
        if not vectors:
            raise ValueError("a task set needs at least one task vector")
        self.model = model.eval()
        self.names = sorted(vectors)
        params = dict(model.named_parameters())
        self.keys = sorted({k for tv in vectors.values() for k in tv.vector})
        for k in self.keys:
            if k not in params:
                raise KeyError(f"task vector tensor {k!r} is not a parameter of the {model.config.name} model")
        self.base = {k: params[k].detach() for k in self.keys}
        self.taus = {
            k: torch.stack([vectors[n].vector.get(k, torch.zeros_like(self.base[k])).float() for n in self.names])
            for k in self.keys
        }
        self.meta = meta or {}

    @classmethod
    def from_dir(cls, folder: str | Path, model: ScoringModel | None = None) -> TaskSet:
        """Load ``folder/manifest.json`` + its task vectors; builds theta_0 from the manifest unless ``model``."""
        import json

        from taskvec.backbones import BackboneConfig, create_backbone

        folder = Path(folder)
        mpath = folder / "manifest.json"
        if not mpath.is_file():
            raise FileNotFoundError(f"{mpath}: missing; train task vectors with `python -m taskvec.finetune`")
        try:
            manifest = json.loads(mpath.read_text())
            backbone, databases = manifest["backbone"], manifest["databases"]
        except (json.JSONDecodeError, KeyError) as err:
            raise SchemaError(f"{mpath}: malformed manifest ({type(err).__name__}: {err})") from None
        if model is None:
            model = create_backbone(BackboneConfig.from_dict(backbone, f"{mpath} (backbone)"))
        fp = model.fingerprint()
        vectors = {db: load_task_vector(folder / f"{db}.safetensors", expect_fingerprint=fp)[0]
                   for db in databases}  # fmt: skip
        return cls(model, vectors, meta=manifest)

    @property
    def num_tasks(self) -> int:
        return len(self.names)

    def merged(self, coef: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{key: theta_0[key] + sum_t coef[key][t] * tau_t[key]}`` (differentiable in ``coef``)."""
        return merge(self.base, self.taus, coef, self.keys)

    def scores(self, feats: torch.Tensor, params: dict[str, torch.Tensor], batch_size: int = 256) -> torch.Tensor:
        """Normalised scores of trunk features under merged ``params`` (no grad)."""
        with torch.no_grad():
            out = [functional_call(self.model, params, (feats[i : i + batch_size].float(),), {"stage": "trunk"})
                   for i in range(0, len(feats), batch_size)]  # fmt: skip
        return torch.cat(out) if out else torch.zeros(0)


def default_groups(keys: Sequence[str], blockwise: bool) -> list[list[str]]:
    """One group per tensor (``blockwise=False``) or per module (weight and bias of a layer share alpha)."""
    if not blockwise:
        return [[k] for k in keys]
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.rsplit(".", 1)[0], []).append(k)
    return list(groups.values())


@dataclass
class FitResult:
    alpha: torch.Tensor  # (G, T): one coefficient per (group, task)
    groups: list[list[str]]  # tensor names of each group
    tasks: list[str]
    recipe: str
    init_srocc: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    fallback: bool = False

    def coefficients(self) -> dict[str, torch.Tensor]:
        return {k: self.alpha[g] for g, keys in enumerate(self.groups) for k in keys}


# ----------------------------------------------------------------------------------------------- helpers
def check_support(feats: torch.Tensor, scores) -> np.ndarray:
    y = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(feats):
        raise ValueError(f"support: {len(feats)} images but {len(y)} scores")
    if len(y) < 2:
        raise ValueError(f"support: personalization needs at least 2 rated images, got {len(y)}")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(
            f"support: score(s) at position(s) {bad[:10].tolist()} are NaN/inf; every image needs a rating"
        )
    return y


def prior_alpha(num_groups: int, num_tasks: int) -> torch.Tensor:
    return torch.full((num_groups, num_tasks), 1.0 / num_tasks)


def task_alpha(ts: TaskSet, task: int | str, num_groups: int) -> torch.Tensor:
    """(num_groups, T) coefficients of one task model alone (1 on ``task``, by index or name; 0 elsewhere)."""
    t = ts.names.index(task) if isinstance(task, str) else int(task)
    return F.one_hot(torch.full((num_groups,), t), ts.num_tasks).float()


def bt_loss(sa: torch.Tensor, sb: torch.Tensor, ya: torch.Tensor, yb: torch.Tensor, weight=None) -> torch.Tensor:
    """Bradley-Terry: P(a preferred over b) = sigmoid(s_a - s_b); tied ratings have target 0.5."""
    return F.binary_cross_entropy_with_logits(sa - sb, bt_target(ya, yb), weight=weight)


def bt_target(ya: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The Bradley-Terry target of pairs: 1 where a was rated higher, 0 lower, 0.5 tied."""
    return 0.5 * (1.0 + torch.sign(ya - yb))


def _setup(ts: TaskSet, feats: torch.Tensor, scores, blockwise: bool):
    """What both recipes start from: the checked ratings (numpy, float32 tensor), float features, alpha groups."""
    y_np = check_support(feats, scores)
    return y_np, torch.tensor(y_np, dtype=torch.float32), feats.float(), default_groups(ts.keys, blockwise=blockwise)


def _fallback(ts: TaskSet, groups, recipe: str, t0: float, prior_task: str | None = None) -> FitResult:
    warnings.warn("support ratings are all equal (no ranking signal): using the prior coefficients",
                  AllEqualRatingsWarning, stacklevel=3)  # fmt: skip
    a = task_alpha(ts, prior_task, len(groups)) if prior_task in ts.names else prior_alpha(len(groups), ts.num_tasks)
    init = [] if prior_task in ts.names else [0.0] * ts.num_tasks  # as fit_fast: no per-task SROCCs with a prior
    return FitResult(a, groups, ts.names, recipe, init, 0, time.perf_counter() - t0, True)


# --------------------------------------------------------------------------------------------- reference
def fit_yun2024(
    ts: TaskSet, feats: torch.Tensor, scores, *, scale_range: float = 1.0, steps: int = 500, lr: float = 1e-2,
    batch_size: int = 32, seed: int = 0,
) -> FitResult:  # fmt: skip
    """Reference recipe (see module docstring). ``feats`` are cached trunk outputs of the support images."""
    t0 = time.perf_counter()
    y_np, y, feats, groups = _setup(ts, feats, scores, blockwise=False)
    if np.ptp(y_np) == 0:
        return _fallback(ts, groups, "yun2024", t0)
    init = []
    for t in range(ts.num_tasks):
        onehot = {k: F.one_hot(torch.tensor(t), ts.num_tasks).float() for k in ts.keys}
        init.append(srocc(ts.scores(feats, ts.merged(onehot)).numpy(), y_np))
    a0 = torch.softmax(10.0 * torch.tensor(init), dim=0)
    alpha = torch.nn.Parameter(a0.repeat(len(groups), 1))
    opt = torch.optim.AdamW([alpha], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    b = min(batch_size, len(y))
    half = b // 2
    for _ in range(steps):
        idx = torch.randperm(len(y), generator=gen)[:b]
        coef = {k: alpha[g] for g, keys in enumerate(groups) for k in keys}
        s = functional_call(ts.model, ts.merged(coef), (feats[idx],), {"stage": "trunk"}) * scale_range
        yb = y[idx]
        loss = bt_loss(s[:half], s[half : 2 * half], yb[:half], yb[half : 2 * half])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return FitResult(alpha.detach().clone(), groups, ts.names, "yun2024", init, steps, time.perf_counter() - t0)


# -------------------------------------------------------------------------------------------------- fast
class FirstLinearCache:
    """Per-user cache of the tail's first linear op for theta_0 and every tau_t: (T+1, k, P, C).

    Build it with :func:`first_linear_cache`; :meth:`rows` gives the cache of a subset of the images (the folds of a
    held-back check share one cache instead of computing theirs again)."""

    def __init__(self, ts: TaskSet, feats: torch.Tensor):
        tail = ts.model.tail
        self.key = f"tail.{tail.first_linear}"
        with torch.no_grad():
            w = [ts.base[self.key]] + list(ts.taus[self.key])
            self.stack = tail.first_stack(feats.float(), w)  # (T+1, k, P, C)

    def __len__(self) -> int:
        return self.stack.shape[1]

    def rows(self, idx) -> FirstLinearCache:
        """The cache of the images ``idx`` (integer positions or a boolean mask over this cache's images)."""
        idx = torch.as_tensor(idx.cpu() if isinstance(idx, torch.Tensor) else np.asarray(idx))
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        sub = object.__new__(FirstLinearCache)
        sub.key, sub.stack = self.key, self.stack[:, idx.long().to(self.stack.device)]
        return sub


def first_linear_cache(ts: TaskSet, feats: torch.Tensor, cache_max_images: int = 256) -> FirstLinearCache | None:
    """The fast recipe's per-user cache for trunk features ``feats`` (None where the recipe would not cache: a tail
    that does not start with a linear op, or more than ``cache_max_images`` images); pass it as ``first_cache``."""
    if not ts.model.tail.first_linear or len(feats) > cache_max_images:
        return None
    return FirstLinearCache(ts, feats)


def default_l2(k: int, prior_task: str | None = None) -> float:
    """The fast recipe's L2 pull of alpha towards its start on ``k`` ratings: 3 / k**1.5 from the softmax(10 *
    SROCC) start, 9 / k**1.5 from a prior task (``taskvec/MODEL_CARD.md``)."""
    return (3.0 if prior_task is None else 9.0) / k**1.5


def _pairwise_loss(s: torch.Tensor, y: torch.Tensor, iu: torch.Tensor | None = None) -> torch.Tensor:
    """Mean BT loss over all pairs i < j (``iu``: precomputed ``triu_indices``)."""
    iu = torch.triu_indices(len(y), len(y), offset=1) if iu is None else iu
    return bt_loss(s[iu[0]], s[iu[1]], y[iu[0]], y[iu[1]])


def fit_fast(
    ts: TaskSet, feats: torch.Tensor, scores, *, scale_range: float = 1.0, optimizer: str = "lbfgs", steps: int = 60,
    lr: float = 0.05, max_iter: int = 10, l2: float | None = None, blockwise: bool = True, cache_max_images: int = 256,
    minibatch: int = 128, seed: int = 0, prior_task: str | None = None, first_cache: FirstLinearCache | None = None,
) -> FitResult:  # fmt: skip
    """The fast recipe (see module docstring). ``feats`` are cached trunk outputs of the support images.

    ``prior_task``: start from (and pull towards) that task model alone, e.g. the population's ``general``,
    instead of softmax(10 * SROCC_t) on the support set (then the per-task SROCCs, which only that start needs,
    are not computed: ``init_srocc`` is empty). ``first_cache``: :func:`first_linear_cache` of these very
    ``feats`` (or ``.rows(...)`` of a larger one), computed by the caller once for several fits."""
    t0 = time.perf_counter()
    y_np, y, feats, groups = _setup(ts, feats, scores, blockwise=blockwise)
    if np.ptp(y_np) == 0:
        return _fallback(ts, groups, "fast", t0, prior_task)
    l2 = default_l2(len(y), prior_task) if l2 is None else float(l2)
    if first_cache is not None and len(first_cache) != len(y):
        raise ValueError(f"fast recipe: first_cache holds {len(first_cache)} images, the support set {len(y)}")
    cache = first_cache if first_cache is not None else first_linear_cache(ts, feats, cache_max_images)
    gidx = {k: g for g, keys in enumerate(groups) for k in keys}

    def forward(alpha: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        coef = {k: alpha[gidx[k]] for k in ts.keys}
        if cache is None:
            x = feats if idx is None else feats[idx]
            return functional_call(ts.model, ts.merged(coef), (x,), {"stage": "trunk"})
        rest = merge(ts.base, ts.taus, coef, [k for k in ts.keys if k != cache.key])
        stack = cache.stack if idx is None else cache.stack[:, idx]
        return functional_call(ts.model, rest, (stack,), {"stage": "first", "mix": coef[cache.key]})

    # None = all rows in one batch (an index would gather a copy of the whole per-user cache)
    chunks = [None] if len(y) <= 256 else [torch.arange(i, min(i + 256, len(y))) for i in range(0, len(y), 256)]
    init: list[float] = []
    if prior_task is None:
        with torch.no_grad():
            for t in range(ts.num_tasks):
                onehot = task_alpha(ts, t, len(groups))
                init.append(srocc(torch.cat([forward(onehot, c) for c in chunks]).numpy(), y_np))
        a0 = torch.softmax(10.0 * torch.tensor(init), dim=0).repeat(len(groups), 1)
    elif prior_task in ts.names:
        a0 = task_alpha(ts, prior_task, len(groups))
    else:
        raise ValueError(f"fast recipe: prior_task {prior_task!r} is not one of the task vectors {ts.names}")
    alpha = torch.nn.Parameter(a0.clone())
    gen = torch.Generator().manual_seed(seed)
    full = cache is not None or len(y) <= minibatch
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"fast recipe: optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    use_lbfgs = optimizer == "lbfgs" and full
    if use_lbfgs:
        opt = torch.optim.LBFGS([alpha], lr=1.0, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam([alpha], lr=lr)
    n_eval = 0
    iu_full = torch.triu_indices(len(y), len(y), offset=1) if full else None

    def closure() -> torch.Tensor:
        nonlocal n_eval
        n_eval += 1
        idx = None if full else torch.randperm(len(y), generator=gen)[:minibatch]
        s = forward(alpha, idx) * scale_range
        loss = _pairwise_loss(s, y, iu_full) if idx is None else _pairwise_loss(s, y[idx])
        if l2:
            loss = loss + l2 * (alpha - a0).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    if use_lbfgs:
        opt.step(closure)
    else:
        for _ in range(steps):
            closure()
            opt.step()
    return FitResult(alpha.detach().clone(), groups, ts.names, "fast", init, n_eval, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------ first-order refits
@dataclass
class Linearized:
    """The fast recipe's normalised scores of k images as a first-order function of alpha around a fit:
    ``s(a) = scores + jac @ (a - alpha).flatten()``. Made by :func:`linearize`; :meth:`refit` fits the recipe's
    objective on some of the rows to this model, so a held-back check (k-fold out-of-fold predictions) costs one
    Jacobian instead of one nonlinear fit per fold (approximate cross-validation, as the infinitesimal jackknife
    and approximate leave-one-out do for M-estimators: Giordano et al., AISTATS 2019; Rad & Maleki, JRSS-B 2020)."""

    scores: torch.Tensor  # (k,) normalised scores at alpha
    jac: torch.Tensor  # (k, G * T): d scores / d alpha
    alpha: torch.Tensor  # (G, T): the expansion point

    def predict(self, alpha: torch.Tensor, rows=None) -> torch.Tensor:
        rows = slice(None) if rows is None else torch.as_tensor(np.asarray(rows), dtype=torch.long)
        d = (alpha.double() - self.alpha.double()).flatten()
        return (self.scores[rows].double() + self.jac[rows].double() @ d).float()

    def refit(self, rows, scores, *, a0: torch.Tensor, l2: float, scale_range: float = 1.0,
              max_iter: int = 50, tol: float = 1e-10) -> torch.Tensor:  # fmt: skip
        """alpha minimising the fast recipe's objective on ``rows`` (rated ``scores``) under this first-order
        model: the mean BT loss over all pairs of the rows plus ``l2 * ||alpha - a0||^2``. The objective is
        convex in alpha here, so Newton's method with step halving solves it (to ``tol``, at most ``max_iter``)."""
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        y = torch.as_tensor(np.asarray(scores, dtype=np.float64))
        iu = torch.triu_indices(len(rows), len(rows), offset=1)
        target = bt_target(y[iu[0]], y[iu[1]])
        j, s = self.jac[rows].double(), self.scores[rows].double()
        dj, ds = scale_range * (j[iu[0]] - j[iu[1]]), scale_range * (s[iu[0]] - s[iu[1]])
        a_star, prior = self.alpha.double().flatten(), a0.double().flatten()

        def objective(d: torch.Tensor) -> torch.Tensor:
            u = ds + dj @ d
            return F.binary_cross_entropy_with_logits(u, target) + l2 * (a_star + d - prior).pow(2).sum()

        d = torch.zeros_like(a_star)
        f = objective(d)
        for _ in range(max_iter):
            p = torch.sigmoid(ds + dj @ d)
            grad = dj.t() @ (p - target) / len(target) + 2 * l2 * (a_star + d - prior)
            hess = (dj.t() * (p * (1 - p))) @ dj / len(target) + 2 * l2 * torch.eye(len(d), dtype=d.dtype)
            step = torch.linalg.solve(hess, grad)
            t = 1.0
            while t > 1e-4 and (f_new := objective(d - t * step)) > f:
                t /= 2
            if t <= 1e-4:
                break
            d, f_old, f = d - t * step, f, f_new
            if f_old - f < tol:
                break
        return (a_star + d).reshape(self.alpha.shape).float()


def linearize(ts: TaskSet, alpha: torch.Tensor, groups: list[list[str]], feats: torch.Tensor,
              first_cache: FirstLinearCache | None = None, chunk_size: int = 32) -> Linearized:  # fmt: skip
    """Scores of trunk features ``feats`` at ``alpha`` (one row per group of ``groups``) and their Jacobian in
    alpha: per-image reverse mode, vectorised over images (``torch.func``), ``chunk_size`` images at a time. With
    ``first_cache`` (:func:`first_linear_cache` of these ``feats``) the tail starts from the cache's mix at
    ``alpha``, read through its :class:`taskvec.backbones.MaskSums` (exact in value and first derivatives: the
    per-image work is on (T+1, C) sums instead of (T+1, P, C) cache rows)."""
    from torch.func import jacrev, vmap

    gidx = {k: g for g, keys in enumerate(groups) for k in keys}
    others = [k for k in ts.keys if first_cache is None or k != first_cache.key]
    a = alpha.detach().float()

    def params_at(a: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        coef = {k: a[gidx[k]] for k in ts.keys}
        return coef, merge(ts.base, ts.taus, coef, others)

    if first_cache is None:
        x, dims = feats.float(), 0
    else:
        coef, params = params_at(a)
        key = first_cache.key
        sums = functional_call(ts.model, params, (first_cache.stack,), {"stage": "mask-sums", "mix": coef[key]})
        x, dims = (sums.inside, sums.n, sums.n_top), (1, 0, 0)

    def one(a: torch.Tensor, x) -> tuple[torch.Tensor, torch.Tensor]:
        coef, params = params_at(a)
        if first_cache is None:
            s = functional_call(ts.model, params, (x[None].float(),), {"stage": "trunk"})[0]
        else:  # x: this image's sums, (T + 1, C), (C,), (C,)
            row = (x[0][:, None], x[1][None], x[2][None], sums.positions)
            s = functional_call(ts.model, params, (row,), {"stage": "sums", "mix": coef[first_cache.key]})[0]
        return s, s

    jac, s = vmap(jacrev(one, has_aux=True), in_dims=(None, dims), chunk_size=chunk_size)(a, x)
    return Linearized(s.detach(), jac.reshape(len(s), -1).detach(), a.clone())


RECIPES: dict[str, Callable[..., FitResult]] = {"yun2024": fit_yun2024, "fast": fit_fast}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def create_recipe(name: str) -> Callable[..., FitResult]:
    if name not in RECIPES:
        raise ValueError(f"unknown personalization recipe {name!r}; available: {list_recipes()}")
    return RECIPES[name]
