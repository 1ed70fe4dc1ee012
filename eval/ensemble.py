"""The ensembler: combine the zero-shot prediction (pmllm, from the profile) with the few-shot one (taskvec, from
the user's ratings) into one ranking. Used by ``eval.run`` (scorer ``ensemble``) and by the demo.

Rule (precision weighting). Both predictions are first put on a common footing: ranks within the scored set,
mapped to standard-normal quantiles (robust to each model's scale and calibration). The blend is::

    z = (1 - w) * z_zero_shot + w * z_few_shot,   w = k / (k + k0)

where k is the number of the user's ratings the few-shot model was fitted on. ``k0`` is "how many ratings the
profile is worth": with no ratings the profile alone ranks, with many the ratings dominate. ``k0`` is selected on
training users (``select_k0``) or the support set, never on query ratings. :class:`Ensemble` puts both products
behind the one scoring contract (``piaa.scoring``). Library module, no entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata, spearmanr

DEFAULT_K0 = 20.0


def normal_scores(x: Sequence[float]) -> np.ndarray:
    """Ranks -> standard-normal quantiles (ties share the average rank). Constant input -> zeros."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    if not np.all(np.isfinite(x)):
        raise ValueError("ensemble input contains NaN or infinite scores")
    if np.ptp(x) == 0:
        return np.zeros_like(x)
    return ndtri((rankdata(x) - 0.5) / x.size)


def blend_weight(k: int, k0: float = DEFAULT_K0) -> float:
    """Weight of the few-shot prediction after ``k`` ratings."""
    if k < 0 or k0 < 0:
        raise ValueError(f"k and k0 must be >= 0 (got k={k}, k0={k0})")
    return 0.0 if k == 0 else k / (k + k0)


def blend(zero_shot: Sequence[float] | None, few_shot: Sequence[float] | None, k: int, k0: float = DEFAULT_K0):
    """Combined score per image (higher = better). Either input may be None (then the other is returned)."""
    if zero_shot is None and few_shot is None:
        raise ValueError("blend needs at least one prediction")
    if few_shot is None or k == 0:
        return normal_scores(zero_shot)
    if zero_shot is None:
        return normal_scores(few_shot)
    if len(zero_shot) != len(few_shot):
        raise ValueError(f"predictions disagree in length: {len(zero_shot)} vs {len(few_shot)}")
    w = blend_weight(k, k0)
    return (1.0 - w) * normal_scores(zero_shot) + w * normal_scores(few_shot)


def select_k0(
    episodes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
    grid: Sequence[float] = (0, 2, 5, 10, 20, 50, 100, 200, 1e9),
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> float:
    """Pick ``k0`` maximising mean SROCC over ``episodes`` = (zero_shot, few_shot, true_scores, k) tuples.

    The episodes must come from training users (or a split of the support set) - never from query ratings of
    the users being evaluated. ``k0=0`` means "trust the ratings only", ``1e9`` "the profile only".
    """
    metric = metric or (lambda a, b: float(np.nan_to_num(spearmanr(a, b)[0])))
    best, best_val = DEFAULT_K0, -np.inf
    for k0 in grid:
        val = float(np.mean([metric(blend(z, f, k, k0), y) for z, f, y, k in episodes]))
        if val > best_val + 1e-12:
            best, best_val = float(k0), val
    return best


class Ensemble:
    """pmllm (zero-shot, from the profile) + taskvec (few-shot, from a saved user's ratings) behind the one scoring
    contract of :mod:`piaa.scoring`::

        ens = Ensemble.from_pretrained()                              # the committed defaults of both products
        user = ens.personalize("me", rated_paths, ratings, scale=PARA_SCALE, profile=me)
        out = ens.score(paths, user=user)                             # or profile=me alone (zero-shot)

    Without a user (or its ratings) the zero-shot scores are returned as they are. With one, both predictions are
    blended by :func:`blend` with weight ``k / (k + k0)`` on the ratings, and the blended normal score is mapped
    onto ``scale`` through the normal CDF (monotone: the order is the blend's). The blend is rank-based within the
    scored set, so score a user's photos in one call (``piaa score --user`` does). A photo the user rated (the
    same file content) is shown at their rating, the others placed among them (:func:`piaa.scoring.keep_ratings`).
    ``details`` holds the weight, both models' scores, the user's alpha and how many rated photos were recognised.
    """

    def __init__(self, zero, few, k0: float = DEFAULT_K0):
        self.zero, self.few, self.k0 = zero, few, float(k0)

    @classmethod
    def from_pretrained(cls, pmllm=None, taskvec=None, k0: float = DEFAULT_K0) -> Ensemble:
        from pmllm.model import PMLLM
        from taskvec.model import PersonalizedScorer

        return cls(PMLLM.from_pretrained(pmllm), PersonalizedScorer.from_pretrained(taskvec), k0)

    def personalize(self, name: str, images, scores, *, scale, profile=None, **kwargs):
        """Fit the user's task-vector coefficients (see ``taskvec.model.PersonalizedScorer.personalize``)."""
        return self.few.personalize(name, images, scores, scale=scale, profile=profile, **kwargs)

    def score(self, images, *, profile=None, user=None, scale=None, on_error: str = "skip"):
        from scipy.special import ndtr

        from piaa.schema import PARA_SCALE, Profile
        from piaa.scoring import ScoreResult, content_key, keep_ratings

        profile = profile or getattr(user, "profile", None) or Profile()
        scale = scale or getattr(user, "scale", None) or PARA_SCALE
        zero = self.zero.score(images, profile=profile, scale=scale, on_error=on_error)
        if user is None:
            zero.details["weight"] = 0.0
            return zero
        few = self.few.score(images, user=user, scale=scale, on_error=on_error)
        errors = {**few.errors, **zero.errors}
        good = np.flatnonzero(zero.ok & few.ok)
        k = int(user.config.k)
        z = blend(zero.scores[good], few.scores[good], k=k, k0=self.k0) if len(good) else np.zeros(0)
        scores = np.full(len(images), np.nan)
        scores[good] = scale.min + ndtr(z) * scale.range
        known = user.config.ratings  # photos the user rated keep their rating (piaa.scoring.keep_ratings)
        rated = {j: known[key] for j, i in enumerate(good) if (key := content_key(images[i])) in known}
        if rated:
            scores[good] = keep_ratings(scores[good], rated, scale)
        details = {"weight": blend_weight(k, self.k0), "k0": self.k0, "zero_shot": zero.scores,
                   "few_shot": few.scores, "alpha": few.details.get("alpha"),
                   "tasks": few.details.get("tasks"), "rated": len(rated)}  # fmt: skip
        return ScoreResult(scores, scale, zero.images, errors, details)
