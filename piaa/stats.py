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
