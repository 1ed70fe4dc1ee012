"""Harness adapter ``ensemble``: pmllm's zero-shot prediction blended with taskvec's few-shot one.

Per test user: pmllm scores the query from the profile, taskvec fits the user's merging coefficients on the support
ratings and scores the query, and :func:`eval.ensemble.blend` combines them with weight ``k / (k + k0)`` on the
ratings. ``k0`` ("how many ratings the profile is worth") is chosen **on the support set only**: with at least
``min_split`` support ratings, the support is split in two halves; taskvec is fitted on one half and both models
are scored on the other (and the other way round), and ``select_k0`` picks the ``k0`` with the best mean SROCC.
With fewer ratings the a-priori ``DEFAULT_K0`` is used. Query ratings are never looked at.

Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from eval.api import Benchmark, Scorer, UserTask
from eval.ensemble import DEFAULT_K0, blend, select_k0


class EnsembleScorer(Scorer):
    name = "ensemble"
    needs_support = True

    def __init__(
        self,
        k0: float | None = None,
        min_split: int = 20,
        seed: int = 0,
        pmllm_checkpoint: str | os.PathLike | None = None,
        taskvec_artifacts: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        """``k0``: a fixed k0 instead of the one chosen on the support set; ``pmllm_checkpoint`` (default: the
        committed one) and ``taskvec_artifacts`` (default: the committed task vectors) are the two halves. An
        unknown keyword (a misspelt ``--scorer-options`` entry) is a ``TypeError``, never ignored."""
        from eval.scorers_pmllm import PMLLMScorer
        from eval.scorers_taskvec import TaskVecScorer

        self.k0 = k0
        self.min_split = int(min_split)
        self.seed = int(seed)
        self.zero = PMLLMScorer(checkpoint=pmllm_checkpoint)
        self.few = TaskVecScorer(recipe="fast", artifacts=taskvec_artifacts, seed=seed, cache_dir=cache_dir,
                                 progress=progress)  # fmt: skip
        self.chosen_k0: list[float] = []

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:
        self.zero.fit(benchmark, train_users)
        self.few.fit(benchmark, train_users)

    def _k0_from_support(self, task: UserTask) -> float:
        k = len(task.support_images)
        y = np.asarray(task.support_scores, dtype=np.float64)
        if self.k0 is not None:
            return float(self.k0)
        if k < self.min_split or np.ptp(y) == 0:
            return DEFAULT_K0
        rng = np.random.default_rng([self.seed, k, task.repeat, len(task.user)])
        perm = rng.permutation(k)
        halves = (perm[: k // 2], perm[k // 2 :])
        episodes = []
        for fit_idx, eval_idx in (halves, halves[::-1]):
            if np.ptp(y[fit_idx]) == 0 or np.ptp(y[eval_idx]) == 0:
                continue
            sub = dataclasses.replace(
                task,
                support_images=[task.support_images[i] for i in fit_idx],
                support_scores=y[fit_idx],
                query_images=[task.support_images[i] for i in eval_idx],
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                episodes.append((self.zero.predict(sub), self.few.predict(sub), y[eval_idx], len(fit_idx)))
        return select_k0(episodes) if episodes else DEFAULT_K0

    def predict(self, task: UserTask) -> np.ndarray:
        zero = self.zero.predict(task)
        if len(task.support_images) < 2:
            return blend(zero, None, k=0)
        k0 = self._k0_from_support(task)
        self.chosen_k0.append(k0)
        return blend(zero, self.few.predict(task), k=len(task.support_images), k0=k0)
