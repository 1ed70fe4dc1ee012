"""The few-shot model of parts: what a user's ratings add to their profile, each part weighted by how well it
predicts the user's own held-back ratings.

Parts (each predicts the user's score of a photo):

* ``profile`` - the zero-shot prediction from what the user wrote (pmllm). It fits nothing.
* ``words`` - what the free text alone says of each photo: the taste read from the words times the photo's measured
  evidence of those concepts (:meth:`pmllm.model.PMLLM.stated_taste`), without the population's taste that the
  profile part adds. It fits nothing; a user whose ratings agree with their words gives it the weight.
* ``taskvec`` - the task-vector merge, coefficients fitted on the ratings (taskvec, recipe ``fast``).
* ``residual`` - the population model (theta_0 + the ``general`` task vector) plus a ridge fitted to the user's
  residuals over it, on frozen features: Lite0's pooled ImageNet features and/or photo statistics (light, colour,
  focus, noise: :func:`piaa.photostats.photo_stats`), the population score itself as one more feature (so a user
  who likes what most people dislike can be followed). The feature set and the penalty are picked by exact
  leave-one-out error on the support set (:class:`piaa.stats.LooRidge`).

The rule (:func:`part_weights`, the one place it lives; ``eval.run``, the demo and ``piaa score --user`` all reach it
through :class:`FewShot`). Each part's agreement with the user is measured on support ratings it did not see: the
profile and words parts' predictions of the rated photos, the taskvec part's k-fold out-of-fold predictions (each
fold's fit solved on a first-order model of the scores around the fit on all ratings, one Jacobian for every fold:
:meth:`taskvec.model.PersonalizedScorer.held_back`; ``held_back="refit"`` refits each fold), the residual part's
leave-one-out predictions less each fold's own intercept (:attr:`piaa.stats.LooRidge.loo_dev`: on few ratings the
other ratings' mean alone would read as a reversal of the user). With ``rho`` the Spearman of those predictions with
the ratings, shrunk towards a prior agreement ``rho0`` by ``m`` pseudo-ratings, ``r = (k * rho + m * rho0) / (k +
m)``, a part's *agreement weight* is ``max(r, 0) / (1 - r**2)`` (the inverse-variance weight of a predictor that
correlates ``r`` with the truth). The final weights stack the parts (Breiman's stacked regression): non-negative
least squares of the ratings' normal scores on the parts' held-back normal scores, pulled towards the agreement
weights by ``lam`` pseudo-ratings, so with few ratings the agreement weights rule and with many the fit accounts for
parts that say the same thing. The combined score is the weighted mean of the parts' normal scores (ranks ->
standard-normal quantiles). A part whose ranking contradicts the ratings gets weight 0: its shrunk agreement is <= 0,
or its own held-back Spearman lies below ``-CONTRADICTION_Z / sqrt(k - 1)`` (the ratings reverse it beyond chance,
whatever the prior says). The words part restates the profile part (``RESTATES``) and counts only where its held-back
Spearman beats the profile part's (on at least ``MIN_CV`` ratings): the ratings follow the user's words and the
population's taste, which the profile part adds, gets in their way. Where it counts it also carries the profile
part's prior agreement (both parts read what the user wrote; the ratings chose which reading), so a handful of ratings
that follow the words moves the unrated photos instead of waiting for ``PRIOR_RATINGS`` ratings to outweigh a prior
of 0. With no ratings the profile ranks alone.
Nothing here ever sees query ratings: every weight, penalty and feature set comes from the support set. The
constants were chosen on a different simulated world (seed 1), never on the users results are reported for
(``taskvec/MODEL_CARD.md``, "Few-shot model of parts"). Library module, no entry point.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from piaa.stats import LooRidge, srocc

PARTS = ("profile", "words", "taskvec", "residual")
# a-priori agreement of each part with a user's ratings, worth PRIOR_RATINGS ratings (chosen on training users of
# the simulated world, never on test users: taskvec/MODEL_CARD.md, "Few-shot model of parts")
PRIOR_AGREEMENT = {"profile": 0.6, "words": 0.0, "taskvec": 0.3, "residual": 0.3}
PRIOR_RATINGS = 20.0
STACK_RIDGE = 10.0  # pseudo-ratings pulling the stacked weights towards the agreement weights
CV_FOLDS = 5  # out-of-fold folds of the taskvec part (leave-one-out below that many ratings)
MIN_CV = 4  # fewer ratings than this: the prior agreement alone
# the words part restates the profile part without the population's taste: it counts only where its held-back
# agreement beats the profile part's (the ratings say the population's taste gets in the way of the user's words),
# and then with the profile part's prior agreement (both read what the user wrote; the ratings chose the reading)
RESTATES = {"words": "profile"}
CONTRADICTION_Z = 1.96  # a part whose held-back Spearman is below -z / sqrt(k - 1) (reversed beyond chance) gets 0
RESIDUAL_ALPHAS = tuple(float(a) for a in np.logspace(-2, 6, 17))  # 1e6: the population score (+ a shift) alone
MIN_RATINGS_MIN_RULE = 20  # below this many ratings the residual penalty follows the one-standard-error rule
FEATURE_SETS = ("cnn", "stats", "cnn+stats")
BASE_WEIGHT = 3.0  # the population score's column weight in the residual ridge (penalised less than the rest)


def normal_scores(x) -> np.ndarray:
    """Ranks -> standard-normal quantiles (ties share the average rank). Constant input -> zeros."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    if not np.all(np.isfinite(x)):
        raise ValueError("few-shot input contains NaN or infinite scores")
    if np.ptp(x) == 0:
        return np.zeros_like(x)
    return ndtri((rankdata(x) - 0.5) / x.size)


def part_weights(
    held_back: dict[str, np.ndarray | None], ratings, prior: dict[str, float] | None = None,
    m: float = PRIOR_RATINGS, lam: float = STACK_RIDGE,
) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """THE rule: ``(weights, agreement)`` of the parts from their predictions of held-back support ratings.

    ``held_back[part]`` predicts ``ratings`` without having seen them (None: too few ratings to check the part;
    its prior agreement is used). See the module docstring for the formula.
    """
    from scipy.optimize import nnls

    prior = dict(PRIOR_AGREEMENT if prior is None else prior)
    y = np.asarray(ratings, dtype=np.float64)
    k = len(y) if np.ptp(y) > 0 else 0  # all-equal ratings say nothing about order
    seen = {name: k if pred is not None else 0 for name, pred in held_back.items()}
    agreement = {name: float(srocc(pred, y)) if seen[name] else float("nan") for name, pred in held_back.items()}
    excluded = set()
    for name, base in RESTATES.items():  # a restating part counts only where the ratings prefer it to its base,
        if name in held_back and base in held_back:  # and then it carries the base's prior as well
            if k >= MIN_CV and agreement[name] > agreement[base]:
                prior[name] = prior.get(base, 0.0)
            else:
                excluded.add(name)
    start = {}
    for name in held_back:
        rho = agreement[name] if seen[name] else 0.0
        r = (seen[name] * rho + m * prior.get(name, 0.0)) / (seen[name] + m) if seen[name] + m > 0 else 0.0
        if seen[name] >= MIN_CV and rho < -CONTRADICTION_Z / np.sqrt(seen[name] - 1):  # reversed beyond chance
            excluded.add(name)
        start[name] = 0.0 if name in excluded else float(max(r, 0.0) / (1.0 - min(r, 0.95) ** 2))
    checked = [n for n, p in held_back.items() if p is not None and n not in excluded]
    weights = dict(start)
    if k >= MIN_CV and checked and sum(start[n] for n in checked) > 0:
        # stacking: non-negative least squares of the ratings' normal scores on the checked parts' held-back normal
        # scores, pulled towards the agreement weights (rescaled to the ratings' units) by lam pseudo-ratings
        x = np.stack([normal_scores(held_back[n]) for n in checked], axis=1)
        t = normal_scores(y)
        b0 = np.array([start[n] for n in checked])
        z0 = x @ b0
        if np.std(z0) > 0:
            b0 = b0 * max(float(np.corrcoef(z0, t)[0, 1]), 0.05) / float(np.std(z0))
        a = np.vstack([x, np.sqrt(lam) * np.eye(len(checked))])
        beta = nnls(a, np.concatenate([t, np.sqrt(lam) * b0]))[0]
        scale = float(beta.sum() / b0.sum()) if b0.sum() > 0 else 0.0
        weights = {n: start[n] * scale for n in held_back}  # unchecked parts: their agreement weight, same units
        weights.update({n: float(b) for n, b in zip(checked, beta)})
    if weights and sum(weights.values()) == 0:  # nothing agrees: the profile alone (or the first part not reversed)
        fallback = [n for n in ("profile", *weights) if n in weights and n not in excluded] or list(weights)
        weights[fallback[0]] = 1.0
    return weights, agreement


def combine(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the parts' normal scores (higher = better); parts without weight are ignored."""
    used = [(weights[n], normal_scores(p)) for n, p in parts.items() if weights.get(n, 0.0) > 0]
    if not used:
        raise ValueError("combine: no part has weight")
    total = sum(w for w, _ in used)
    return sum(w * z for w, z in used) / total


# --------------------------------------------------------------------------------------------- inputs
@dataclass
class PartInputs:
    """What the parts read of a set of photos (rows = photos): trunk features (taskvec), theta_0's pooled
    features, photo statistics (or None), the population model's normalised score."""

    trunk: object  # torch.Tensor (n, ...)
    pooled: np.ndarray
    stats: np.ndarray | None
    base: np.ndarray

    def rows(self, idx) -> PartInputs:
        idx = np.asarray(idx, dtype=np.int64)
        return PartInputs(self.trunk[idx], self.pooled[idx], None if self.stats is None else self.stats[idx],
                          self.base[idx])  # fmt: skip


# ------------------------------------------------------------------------------------------- residual
@dataclass
class Residual:
    """Population score + ridge on the features: ``pred = base + raw_features @ coef + intercept`` (the support
    set's standardisation is folded into ``coef`` and ``intercept``)."""

    features: str
    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, x: PartInputs, base: np.ndarray) -> np.ndarray:
        return base + _raw(x, base, self.features) @ self.coef + self.intercept


def _raw(x: PartInputs, base: np.ndarray, features: str) -> np.ndarray:
    cols = [base[:, None]]
    if "cnn" in features.split("+"):
        cols.append(x.pooled)
    if "stats" in features.split("+"):
        cols.append(x.stats)
    return np.concatenate(cols, axis=1)


def fit_residual(x: PartInputs, base: np.ndarray, y: np.ndarray, photostats: bool = True
                 ) -> tuple[Residual, np.ndarray]:  # fmt: skip
    """The residual part on the support set: (model, held-back predictions of the support ratings: the population
    score plus the leave-one-out deviations, :attr:`piaa.stats.LooRidge.loo_dev`)."""
    rule = "1se" if len(y) < MIN_RATINGS_MIN_RULE else "min"
    sets = [f for f in FEATURE_SETS if photostats or "stats" not in f]
    if x.stats is None:
        sets = [f for f in sets if "stats" not in f]
    best = None
    for features in sets:
        raw = _raw(x, base, features)
        mean, scale = _block_standardiser(raw, x, features)
        r = LooRidge.fit((raw - mean) / scale, y - base, RESIDUAL_ALPHAS, rule=rule)
        if best is None or r.loo_error < best[1].loo_error:
            coef = r.coef / scale
            best = (Residual(features, coef, r.intercept - float(mean @ coef), r.alpha), r)
    model, r = best
    return model, base + r.loo_dev


def _block_standardiser(raw: np.ndarray, x: PartInputs, features: str) -> tuple[np.ndarray, np.ndarray]:
    """Column mean / scale from the support rows: z-scored columns, each block scaled to unit total variance
    (1280 ImageNet columns do not drown 8 photo statistics), the population score weighted ``BASE_WEIGHT``."""
    mean = raw.mean(0)
    sd = raw.std(0)
    sd = np.where(sd > 1e-9, sd, np.inf)  # a constant column contributes nothing
    dims = [1] + [x.pooled.shape[1] if b == "cnn" else x.stats.shape[1] for b in features.split("+")]
    block = np.concatenate([np.full(d, np.sqrt(d)) for d in dims])
    block[0] = 1.0 / BASE_WEIGHT
    return mean, sd * block


# ------------------------------------------------------------------------------------------- the user
@dataclass
class FewShotConfig:
    k: int
    weights: dict[str, float]
    agreement: dict[str, float]  # Spearman of each part's held-back predictions with the ratings (NaN: unchecked)
    residual_features: str = ""  # "" when there is no residual part (fewer than 3 ratings)
    residual_alpha: float = 0.0
    photostats: bool = True
    seconds: float = 0.0  # wall time of the whole fit (every part and its held-back check)
    version: int = 1


class FewShotUser:
    """A user's few-shot model: the taskvec user (alpha + its user.json), the residual ridge and the part weights.

    Saved in one folder: the taskvec user's files + ``fewshot.json`` + ``residual.safetensors`` (kilobytes).
    ``scale``, ``profile`` and ``ratings`` (rated photos by content hash) are the taskvec user's."""

    def __init__(self, taskvec_user, config: FewShotConfig, residual: Residual | None):
        self.taskvec, self.config, self.residual = taskvec_user, config, residual

    @property
    def scale(self):
        return self.taskvec.scale

    @property
    def profile(self):
        return self.taskvec.profile

    @property
    def ratings(self) -> dict[str, float]:
        return self.taskvec.config.ratings

    @property
    def name(self) -> str:
        return self.taskvec.config.user

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        import torch
        from safetensors.torch import save_file

        folder = self.taskvec.save_pretrained(folder)
        (folder / "fewshot.json").write_text(json.dumps(asdict(self.config), indent=1))
        if self.residual is not None:
            r = self.residual
            save_file(
                {"coef": torch.from_numpy(np.ascontiguousarray(r.coef, dtype=np.float32))},
                str(folder / "residual.safetensors"),
                metadata={"features": r.features, "intercept": repr(r.intercept), "alpha": repr(r.alpha)},
            )
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> FewShotUser:
        from safetensors import safe_open

        from piaa.config import load_config
        from taskvec.model import PersonalizedUser

        folder = Path(folder)
        tv = PersonalizedUser.from_pretrained(folder)
        if not (folder / "fewshot.json").is_file():
            raise FileNotFoundError(f"{folder / 'fewshot.json'}: missing (a user saved by an older version, or only "
                                    "its taskvec part): fit it again with `piaa personalize`")  # fmt: skip
        config = load_config(FewShotConfig, folder / "fewshot.json")
        residual = None
        if config.residual_features:
            path = folder / "residual.safetensors"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (fewshot.json names a residual part)")
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                coef = f.get_tensor("coef").astype(np.float64)
            residual = Residual(
                meta.get("features", config.residual_features),
                coef,
                float(meta.get("intercept", 0.0)),
                float(meta.get("alpha", 0.0)),
            )
        return cls(tv, config, residual)


# ------------------------------------------------------------------------------------------- the model
@dataclass
class FewShot:
    """Fits and applies the model of parts over a ``taskvec.model.PersonalizedScorer``.

    ``photostats=False`` leaves photo statistics out of the residual part (the simulated raters' formulas are
    those statistics, so the simulated world is reported both ways). ``parts`` restricts the parts used (an
    ablation; ``("residual",)`` is the residual part alone)."""

    scorer: object
    photostats: bool = True
    parts: tuple[str, ...] = PARTS
    folds: int = CV_FOLDS
    held_back: str = "first-order"  # the taskvec part's fold fits: "first-order" (one Jacobian) or "refit" (exact)
    seed: int = 0
    recipe_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.held_back not in ("first-order", "refit"):
            raise ValueError(f"FewShot: held_back must be 'first-order' or 'refit', got {self.held_back!r}")

    def inputs(self, images, errors: dict[int, str] | None = None, cache=None) -> PartInputs:
        """Read photos once for every part (``errors``: per-image policy; bad rows are zeros/NaN)."""
        from piaa.photostats import photo_stats

        trunk = self.scorer.features(list(images), errors=errors, cache=cache)
        return self.from_trunk(trunk, photo_stats(images, errors=errors, cache=cache) if self.photostats else None)

    def from_trunk(self, trunk, stats: np.ndarray | None) -> PartInputs:
        return PartInputs(trunk, self.scorer.embed(trunk), stats, self.scorer.task_scores(trunk))

    def _first_cache(self, x: PartInputs, y: np.ndarray):
        """The fast recipe's first-linear cache of the support photos, computed once for the fit and its folds."""
        make = getattr(self.scorer, "first_linear_cache", None)
        if make is None or self.recipe_kwargs.get("recipe", "fast") != "fast" or np.ptp(y) == 0:
            return None
        limit = self.recipe_kwargs.get("cache_max_images")
        return make(x.trunk) if limit is None else make(x.trunk, cache_max_images=limit)

    def _taskvec(self, name, x: PartInputs, y, scale, cache=None):
        """The taskvec part's user (without that part: the population model unfitted, the saved user's container)."""
        if "taskvec" not in self.parts:
            return self.scorer.personalize(name, x.trunk, y, scale=scale, fit=False)
        kwargs = self.recipe_kwargs if cache is None else {**self.recipe_kwargs, "first_cache": cache}
        return self.scorer.personalize(name, x.trunk, y, scale=scale, seed=self.seed, **kwargs)

    def _taskvec_held_back(self, x: PartInputs, y: np.ndarray, scale, user, cache=None) -> np.ndarray | None:
        """The taskvec part's out-of-fold predictions of the ratings ``y`` (``user``: its fit on all of them)."""
        k = len(y)
        if k < MIN_CV or np.ptp(y) == 0:
            return None
        n_folds = min(self.folds, k)
        order = np.random.default_rng([self.seed, k]).permutation(k)
        folds = [(np.setdiff1d(order, order[f::n_folds]), order[f::n_folds]) for f in range(n_folds)]
        out = np.empty(k)
        constant = [(fit, held) for fit, held in folds if np.ptp(y[fit]) == 0]
        for fit, held in constant:  # nothing to rank by: every held photo gets the fit rows' rating
            out[held] = float(np.mean(y[fit]))
        folds = [(fit, held) for fit, held in folds if np.ptp(y[fit]) > 0]
        if self.held_back == "first-order" and user.config.recipe == "fast":
            opts = {n: self.recipe_kwargs[n] for n in ("l2", "prior_task") if n in self.recipe_kwargs}
            out_fo = self.scorer.held_back(user, x.trunk, y, folds, first_cache=cache, **opts)
            for _, held in folds:
                out[held] = out_fo[held]
            return out
        for fit, held in folds:
            cv = self._taskvec("cv", x.rows(fit), y[fit], scale, None if cache is None else cache.rows(fit))
            out[held] = scale.denormalize(self.scorer.score_features(x.trunk[held], cv))
        self.scorer.forget_users()
        return out

    def fit(self, name: str, x: PartInputs, ratings, scale, zero: np.ndarray | None = None, profile=None,
            rated_keys: list[str] | None = None, words: np.ndarray | None = None) -> FewShotUser:  # fmt: skip
        """Fit every part on the support set ``x`` rated ``ratings`` (on ``scale``); ``zero`` / ``words``: the
        profile and words parts' predictions of those photos (None: no such part; ``words`` is None without a
        free text). ``rated_keys``: content keys of the rated files."""
        import time
        import warnings

        t0 = time.perf_counter()
        y = np.asarray(ratings, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-equal ratings: taskvec warns and keeps its prior
            cache = self._first_cache(x, y) if "taskvec" in self.parts else None
            tv = self._taskvec(name, x, y, scale, cache)
        held: dict[str, np.ndarray | None] = {}
        if "profile" in self.parts and zero is not None:
            held["profile"] = np.asarray(zero, dtype=np.float64)
        if "words" in self.parts and words is not None and np.ptp(words) > 0:  # a constant says nothing
            held["words"] = np.asarray(words, dtype=np.float64)
        if "taskvec" in self.parts:
            held["taskvec"] = self._taskvec_held_back(x, y, scale, tv, cache)
        residual = None
        if "residual" in self.parts:
            if len(y) >= 3 and np.ptp(y) > 0:
                residual, held["residual"] = fit_residual(x, scale.denormalize(x.base), y, self.photostats)
            elif len(held) == 0:
                held["residual"] = None
        weights, agreement = part_weights(held, y)
        if profile is not None:
            tv.config.profile = profile.to_dict()
        if rated_keys is not None:
            tv.config.ratings = {key: float(r) for key, r in zip(rated_keys, y)}
        cfg = FewShotConfig(
            k=len(y),
            weights=weights,
            agreement=agreement,
            residual_features=residual.features if residual else "",
            residual_alpha=residual.alpha if residual else 0.0,
            photostats=self.photostats,
            seconds=time.perf_counter() - t0,
        )
        return FewShotUser(tv, cfg, residual)

    def part_scores(self, user: FewShotUser, x: PartInputs, zero: np.ndarray | None = None,
                    words: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Each weighted part's prediction for photos ``x`` (the words part in its own units: only order counts)."""
        scale = user.taskvec.scale
        out = {}
        w = user.config.weights
        if w.get("profile", 0) > 0 and zero is not None:
            out["profile"] = np.asarray(zero, dtype=np.float64)
        if w.get("words", 0) > 0 and words is not None:
            out["words"] = np.asarray(words, dtype=np.float64)
        if w.get("taskvec", 0) > 0:
            out["taskvec"] = scale.denormalize(self.scorer.score_features(x.trunk, user.taskvec))
        if w.get("residual", 0) > 0:  # no ridge (fewer than 3 ratings): the population model alone
            base = scale.denormalize(x.base)
            out["residual"] = base if user.residual is None else user.residual.predict(x, base)
        return out

    def predict(self, user: FewShotUser, x: PartInputs, zero: np.ndarray | None = None,
                parts: dict[str, np.ndarray] | None = None, words: np.ndarray | None = None
                ) -> np.ndarray:  # fmt: skip
        """Combined score (normal-score units, higher = better) of photos ``x`` for ``user`` (``parts``: their
        :meth:`part_scores`, when the caller already has them)."""
        for name, arg, given in (("profile", "zero", zero), ("words", "words", words)):
            if parts is None and user.config.weights.get(name, 0) > 0 and given is None:
                raise ValueError(f"user {user.name!r} weighs the {name} part: pass its predictions ({arg}=...)")
        return combine(self.part_scores(user, x, zero, words) if parts is None else parts, user.config.weights)
