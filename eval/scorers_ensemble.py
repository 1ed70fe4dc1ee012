"""Harness adapters for the few-shot model of parts (:mod:`eval.fewshot`): ``ensemble`` and its ablations.

Per test user: pmllm scores the support and query photos from the profile (the ``profile`` part, and the ``words``
part: what the free text alone says of each photo), and
:class:`eval.fewshot.FewShot` fits the ``taskvec`` and ``residual`` parts on the support ratings and weighs all
parts by their agreement with held-back support ratings (:func:`eval.fewshot.part_weights`). Query ratings are never
looked at. At 0 shots the ensemble is pmllm's prediction (it runs there, so the results table shows it); the
residual ablations, which have no profile part, are few-shot only.

Registered names (``eval.scorers.SCORERS``): ``ensemble`` (all parts), ``ensemble-no-photostats`` (the residual
part without photo statistics: the simulated raters' formulas are those statistics), ``residual`` /
``residual-no-photostats`` (the residual part alone). Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings

import numpy as np

from eval.api import Benchmark, Scorer, UserTask
from eval.fewshot import PARTS, FewShot


class EnsembleScorer(Scorer):
    name = "ensemble"
    needs_support = True

    def __init__(
        self,
        parts: tuple[str, ...] | list[str] = PARTS,
        photostats: bool = True,
        seed: int = 0,
        pmllm_checkpoint: str | os.PathLike | None = None,
        taskvec_artifacts: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        recipe_kwargs: dict | None = None,
        progress: bool = True,
    ):
        """``parts``: which parts of :data:`eval.fewshot.PARTS` to use; ``photostats``: photo statistics in the
        residual part; ``pmllm_checkpoint`` / ``taskvec_artifacts``: default the committed ones. An unknown keyword
        (a misspelt ``--scorer-options`` entry) is a ``TypeError``, never ignored."""
        from eval.scorers_taskvec import TaskVecScorer

        unknown = set(parts) - set(PARTS)
        if unknown or not parts:
            raise ValueError(f"ensemble: parts must be a non-empty subset of {PARTS}, got {list(parts)}")
        self.parts, self.photostats, self.seed = tuple(parts), bool(photostats), int(seed)
        self.cache_dir, self.progress = cache_dir, progress
        self.zero = None
        self.needs_support = "profile" not in self.parts  # with the profile part it also runs at 0 shots (= pmllm)
        if {"profile", "words"} & set(self.parts):
            from eval.scorers_pmllm import PMLLMScorer

            self.zero = PMLLMScorer(checkpoint=pmllm_checkpoint)
        self.few = TaskVecScorer(recipe="fast", artifacts=taskvec_artifacts, seed=seed, cache_dir=cache_dir,
                                 progress=progress)  # fmt: skip
        self.recipe_kwargs = dict(recipe_kwargs or {})
        self.model: FewShot | None = None
        self.inputs = None
        self._root = None
        self.weights: list[dict[str, float]] = []  # per predicted task: the part weights the rule chose

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:
        from piaa.features import feature_cache_dir
        from piaa.photostats import photo_stats

        if self.zero is not None:
            self.zero.fit(benchmark, train_users)
        self.few.fit(benchmark, train_users)
        if self._root == self.few._root and self.inputs is not None:
            return
        self.model = FewShot(self.few.scorer, photostats=self.photostats, parts=self.parts, seed=self.seed,
                             recipe_kwargs=self.recipe_kwargs)  # fmt: skip
        stats = None
        if self.photostats:
            paths = [benchmark.image_path(i) for i in benchmark.table.images]
            stats = photo_stats(paths, cache=feature_cache_dir(self.cache_dir), progress=self.progress)
        self.inputs = self.model.from_trunk(self.few.feats, stats)
        self._root = self.few._root

    def _rows(self, images: list[str]):
        missing = [i for i in images if i not in self.few.index]
        if missing:
            raise KeyError(f"{self.name}: {len(missing)} image(s) are not in the benchmark, e.g. {missing[0]}")
        return self.inputs.rows([self.few.index[i] for i in images])

    def predict(self, task: UserTask) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit(benchmark, train_users) before predict")
        support, query = list(task.support_images), list(task.query_images)
        zero_s = zero_q = words_s = words_q = None
        if self.zero is not None:
            both, words = self.zero.predict_with_words(dataclasses.replace(task, query_images=support + query))
            zero_s, zero_q = both[: len(support)], both[len(support) :]
            if words is not None:
                words_s, words_q = words[: len(support)], words[len(support) :]
        q = self._rows(query)
        if len(support) < 2:
            return zero_q if zero_q is not None else q.base
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            user = self.model.fit(task.user, self._rows(support), task.support_scores, task.scale, zero=zero_s,
                                  words=words_s)  # fmt: skip
        self.weights.append(dict(user.config.weights))
        return self.model.predict(user, q, zero=zero_q, words=words_q)


# ablations: the same scorer with other defaults (partials keep the signature the harness reads its options from)
create_no_photostats = functools.partial(EnsembleScorer, photostats=False)
create_residual = functools.partial(EnsembleScorer, parts=("residual",))
create_residual_no_photostats = functools.partial(EnsembleScorer, parts=("residual",), photostats=False)
