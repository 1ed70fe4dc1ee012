"""Harness adapters for taskvec: ``taskvec`` (the fast recipe) and ``taskvec-yun2024`` (the reference recipe).

Both are few-shot scorers (``needs_support = True``): per test user they fit merging coefficients alpha over the
task vectors in ``taskvec/artifacts/efficientnet-lite0`` (trained on the world's scoring databases only, never on
PIAA users) using the support ratings, then score the query images with the merged model. ``fit`` loads theta_0 +
the task vectors and computes the frozen trunk's output for every image of the benchmark once (images, not
ratings; cached as safetensors under ``$PIAA_CACHE_DIR/taskvec/``). Registered in ``eval.scorers.SCORERS``.

Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from eval.api import Benchmark, Scorer, UserTask


class TaskVecScorer(Scorer):
    """Task-vector customization (Yun & Choo, ECCV 2024) with the ``fast`` or ``yun2024`` per-user recipe."""

    name = "taskvec"
    needs_support = True

    def __init__(self, recipe: str = "fast", artifacts: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, seed: int = 0, threads: int | None = None,
                 quick: bool = False, out_dir=None, benchmark_name: str | None = None,
                 recipe_kwargs: dict | None = None, progress: bool = True):  # fmt: skip
        """``quick``/``out_dir``/``benchmark_name`` are harness run-context keywords (unused here)."""
        from taskvec.personalize import create_recipe

        create_recipe(recipe)  # unknown name -> clear error now
        self.recipe = recipe
        self.name = "taskvec" if recipe == "fast" else f"taskvec-{recipe}"
        self.artifacts = artifacts
        self.cache_dir = cache_dir
        self.seed = int(seed)
        self.threads = threads
        self.recipe_kwargs = dict(recipe_kwargs or {})
        self.progress = bool(progress)
        self.scorer = None
        self.index: dict[str, int] = {}
        self.feats = None
        self._root: Path | None = None

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:
        import torch

        from piaa.features import feature_cache_dir
        from taskvec.model import DEFAULT_ARTIFACTS, PersonalizedScorer

        if self.threads:
            torch.set_num_threads(int(self.threads))
        if self.scorer is None:
            self.scorer = PersonalizedScorer.from_pretrained(self.artifacts or DEFAULT_ARTIFACTS)
        root = Path(benchmark.table.image_root).resolve()
        if self._root == root and self.feats is not None:
            return  # same images as the previous fold: features already in memory
        images = benchmark.table.images
        self.feats = self.scorer.features([benchmark.image_path(i) for i in images],
                                          cache=feature_cache_dir(self.cache_dir), progress=self.progress)  # fmt: skip
        self.index = {img: i for i, img in enumerate(images)}
        self._root = root

    def _features(self, task: UserTask, images: list[str]):
        import torch

        rows = [self.index.get(i) for i in images]
        if all(r is not None for r in rows):
            return self.feats[rows]
        out = torch.empty((len(images), *self.feats.shape[1:]), dtype=self.feats.dtype)
        known = [j for j, r in enumerate(rows) if r is not None]
        if known:
            out[known] = self.feats[[rows[j] for j in known]]
        unknown = [j for j, r in enumerate(rows) if r is None]
        out[unknown] = self.scorer.features([task.path(images[j]) for j in unknown]).to(out.dtype)
        return out

    def predict(self, task: UserTask) -> np.ndarray:
        if self.scorer is None:
            raise RuntimeError(f"{self.name}: call fit(benchmark, train_users) before predict")
        query = self._features(task, list(task.query_images))
        if len(task.support_images) < 2:
            warnings.warn(f"{self.name}: user {task.user} has {len(task.support_images)} support image(s); "
                          "scoring with the prior (uniform) coefficients", stacklevel=2)  # fmt: skip
            return self.scorer.score_features(query)
        support = self._features(task, list(task.support_images))
        user = self.scorer.personalize(task.user, support, np.asarray(task.support_scores, dtype=np.float64),
                                       scale=task.scale, recipe=self.recipe, seed=self.seed,
                                       **self.recipe_kwargs)  # fmt: skip
        scores = self.scorer.score_features(query, user)
        self.scorer.forget_users()  # one-off users: do not keep their merged weights around
        return scores


def create_fast(**kw) -> TaskVecScorer:
    return TaskVecScorer(recipe="fast", **kw)


def create_yun2024(**kw) -> TaskVecScorer:
    return TaskVecScorer(recipe="yun2024", **kw)
