"""The ensembler: combine the zero-shot prediction (pmllm, from the profile) with the few-shot one (taskvec, from
the user's ratings) into one ranking. Used by ``eval.run`` (scorer ``ensemble``) and by the demo.

Rule (precision weighting). Both predictions are first put on a common footing: ranks within the scored set,
mapped to standard-normal quantiles (robust to each model's scale and calibration). The blend is::

    z = (1 - w) * z_zero_shot + w * z_few_shot,   w = k / (k + k0)

where k is the number of the user's ratings the few-shot model was fitted on. ``k0`` is "how many ratings the
profile is worth": with no ratings the profile alone ranks, with many the ratings dominate. ``k0`` is selected on
training users (``select_k0``) or the support set, never on query ratings. Library module, no entry point.
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
