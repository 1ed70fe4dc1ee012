"""Small statistics shared by every package: the rank correlation used for selection/benchmarks and the
population-mean ridge (the generic-aesthetics reference every PIAA method is compared with).

``eval.metrics`` builds the reported metrics on these; ``pmllm`` and ``taskvec`` use them in their own scripts
(they may not import ``eval``). Library module, no entry point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 5, 13))


def srocc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Spearman rank correlation; 0.0 when it is undefined (fewer than 2 items, or either side constant)."""
    from scipy.stats import spearmanr

    p, t = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(target, dtype=np.float64).ravel()
    if len(t) < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return 0.0
    return float(spearmanr(p, t).statistic)


def fit_population_ridge(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS):
    """Ridge on standardised features -> targets (e.g. mean score per image over training users).

    The penalty is chosen by efficient leave-one-out CV on these training rows only. Returns the fitted
    scikit-learn pipeline (``.predict(x)``; ``[0]`` the scaler, ``[-1].alpha_`` the chosen penalty).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=tuple(alphas)))
    return model.fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


class LooRidge:
    """Ridge with an unpenalized intercept fitted on few rows, the penalty picked by exact leave-one-out error.

    ``LooRidge.fit(x, y, alphas)``: dual form (cheap when rows << features). With centred ``xc = x - mean`` and
    ``K = xc xc^T = Q diag(w) Q^T`` the hat matrix is ``H = 11^T/n + Q diag(w/(w+a)) Q^T`` and the LOO residual is
    ``(y - Hy)_i / (1 - H_ii)``. Keeps the primal ``coef``/``intercept`` (``predict``), the chosen ``alpha``, its
    mean squared LOO error ``loo_error`` and the leave-one-out predictions of the training rows ``loo_pred`` (what
    an honest held-back check of the fit sees).

    ``loo_dev``: the same predictions less each fold's own intercept, ``loo_pred_i - mean(y without i)``: what the
    fit on the other rows says about row i *relative to them*. Ranked against the targets, ``loo_pred`` is biased
    towards -1 on few rows: its intercept, the mean of the other rows' targets, falls as ``y_i`` rises (a heavily
    shrunk fit predicts little else). ``loo_dev`` has no such term, and no row's target enters its own value.
    """

    def __init__(self, coef: np.ndarray, intercept: float, alpha: float, loo_error: float, loo_pred: np.ndarray,
                 loo_dev: np.ndarray | None = None):  # fmt: skip
        self.coef, self.intercept, self.alpha = coef, float(intercept), float(alpha)
        self.loo_error, self.loo_pred = float(loo_error), loo_pred
        self.loo_dev = loo_dev

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alphas: Sequence[float], rule: str = "min") -> LooRidge:
        """``rule="min"``: the penalty with the least LOO error; ``"1se"``: the largest penalty whose LOO error is
        within one standard error of the least (the "one-standard-error rule": fewer rows, more shrinkage)."""
        if rule not in ("min", "1se"):
            raise ValueError(f"LooRidge rule must be 'min' or '1se', got {rule!r}")
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        n = len(y)
        if n < 3 or len(x) != n:
            raise ValueError(f"LooRidge needs >= 3 rows with one target each (got {len(x)} rows, {n} targets)")
        mx, my = x.mean(0), float(y.mean())
        xc, yc = x - mx, y - my
        w, q = np.linalg.eigh(xc @ xc.T)
        w = np.clip(w, 0, None)
        qty = q.T @ yc
        fits = []
        for a in sorted(float(a) for a in alphas):
            shrink = w / (w + a)
            h_ii = (q**2) @ shrink + 1.0 / n
            resid = (yc - q @ (shrink * qty)) / np.maximum(1.0 - h_ii, 1e-12)
            fits.append((float(np.mean(resid**2)), float(np.std(resid**2)) / np.sqrt(n), a, resid))
        least = min(fits, key=lambda f: f[0])
        if rule == "1se":
            least = [f for f in fits if f[0] <= least[0] + least[1]][-1]
        err, _, a, resid = least
        dual = q @ (qty / (w + a))
        coef = xc.T @ dual
        loo = y - resid
        return cls(coef, my - float(mx @ coef), a, err, loo, loo - (n * my - y) / (n - 1))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept
