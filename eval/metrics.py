"""Per-user correlation metrics and their aggregation over repeats and users.

Per user and repeat we compute SROCC (Spearman) and PLCC (Pearson) between a scorer's predictions and the user's
query ratings (``scipy.stats``). Aggregation, per (method, shots):

1. per user: the mean over that user's repeats;
2. the headline number: the mean of those per-user means over users;
3. ``std``: the standard deviation over repeats of the per-repeat user-mean (how much the number moves when the
   support set is re-drawn; 0 with a single repeat, e.g. zero-shot);
4. ``ci95``: a 95% t-interval over users of the per-user means (``mean +- t(0.975, n-1) * sd / sqrt(n)``).

Constant predictions: SROCC/PLCC are undefined when a scorer gives every query image the same score. We count
such a (user, repeat) as **0** (no ranking information = chance level) and record ``note="constant prediction"``;
aggregates report how many were counted this way (``n_constant``). Skipping them instead would reward a scorer
for collapsing on the hard users. Constant *ratings* never reach the metrics: the protocols skip those users.

Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONSTANT_PREDICTION = "constant prediction"


class MetricError(ValueError):
    """Predictions and targets cannot be compared (length mismatch, NaN, too few items, constant targets)."""


@dataclass
class UserScore:
    """One evaluated (method, shots, fold, user, repeat)."""

    method: str
    shots: int
    fold: int
    user: str
    repeat: int
    n_query: int
    srocc: float
    plcc: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _is_constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))))


def correlations(pred: Sequence[float], target: Sequence[float]) -> tuple[float, float, str]:
    """``(srocc, plcc, note)`` for one user's query set. Constant predictions -> ``(0, 0, "constant prediction")``.

    Raises :class:`MetricError` for mismatched lengths, non-finite values, fewer than 3 items or constant targets
    (the protocol must have skipped such a user).
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise MetricError(f"{len(p)} predictions for {len(t)} query ratings")
    if len(t) < 3:
        raise MetricError(f"need at least 3 query items to correlate, got {len(t)}")
    if not np.all(np.isfinite(p)):
        raise MetricError(f"{int((~np.isfinite(p)).sum())} prediction(s) are NaN or infinite")
    if not np.all(np.isfinite(t)) or _is_constant(t):
        raise MetricError("query ratings are non-finite or constant (the protocol should have skipped this user)")
    if _is_constant(p):
        return 0.0, 0.0, CONSTANT_PREDICTION
    srocc = float(stats.spearmanr(p, t).statistic)
    plcc = float(stats.pearsonr(p, t).statistic)
    return srocc, plcc, ""


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided t confidence interval for the mean of ``values``; ``(nan, nan)`` with fewer than 2 values."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    m = float(x.mean())
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return m - half, m + half


def aggregate_one(scores: Iterable[UserScore], metric: str) -> dict:
    """Aggregate one metric (``"srocc"`` or ``"plcc"``) over the records of one (method, shots)."""
    by_user: dict[str, list[float]] = defaultdict(list)
    by_repeat: dict[int, list[float]] = defaultdict(list)
    for s in scores:
        v = getattr(s, metric)
        by_user[f"{s.fold}/{s.user}"].append(v)
        by_repeat[s.repeat].append(v)
    user_means = np.array([np.mean(v) for v in by_user.values()])
    repeat_means = np.array([np.mean(by_repeat[r]) for r in sorted(by_repeat)])
    lo, hi = t_interval(user_means)
    return {
        "mean": float(user_means.mean()) if len(user_means) else math.nan,
        "std": float(repeat_means.std(ddof=1)) if len(repeat_means) > 1 else 0.0,
        "ci95": [lo, hi],
        "n_users": int(len(user_means)),
        "n_repeats": int(len(repeat_means)),
        "repeat_means": [float(v) for v in repeat_means],
    }


def aggregate(scores: Iterable[UserScore]) -> dict[tuple[str, int], dict]:
    """``{(method, shots): {"srocc": {...}, "plcc": {...}, "n_constant": int, "n_evaluations": int}}``."""
    groups: dict[tuple[str, int], list[UserScore]] = defaultdict(list)
    for s in scores:
        groups[(s.method, s.shots)].append(s)
    out = {}
    for key, group in groups.items():
        out[key] = {
            "srocc": aggregate_one(group, "srocc"),
            "plcc": aggregate_one(group, "plcc"),
            "n_constant": sum(s.note == CONSTANT_PREDICTION for s in group),
            "n_evaluations": len(group),
        }
    return out


def paired_differences(scores: Iterable[UserScore], reference: str, metric: str = "srocc") -> list[dict]:
    """Per shot count, every method minus ``reference`` on the users both were scored on (same episodes).

    Each user's value is the mean over repeats of the repeats both methods ran; the difference is averaged over
    users, with its standard error (std of the per-user differences / sqrt(users)) and a 95% t-interval, and the
    number of users where the method is better. Returns ``[{"method", "reference", "shots", "mean_diff", "se",
    "ci95", "n_users", "n_better"}]``.
    """
    cells: dict[tuple[str, int], dict[tuple[int, str], dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for s in scores:
        cells[(s.method, s.shots)][(s.fold, s.user)][s.repeat] = getattr(s, metric)
    out = []
    for (method, k), users in cells.items():
        ref = cells.get((reference, k))
        if method == reference or not ref:
            continue
        diffs = []
        for u, reps in users.items():
            common = sorted(set(reps) & set(ref.get(u, {})))
            if common:
                diffs.append(float(np.mean([reps[r] - ref[u][r] for r in common])))
        if not diffs:
            continue
        d = np.asarray(diffs)
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
        lo, hi = t_interval(d)
        out.append({"method": method, "reference": reference, "shots": k, "mean_diff": float(d.mean()), "se": se,
                    "ci95": [lo, hi], "n_users": len(d), "n_better": int((d > 0).sum())})  # fmt: skip
    return sorted(out, key=lambda r: (r["shots"], r["method"]))
