"""Harness adapters for pmllm: zero-shot scorers built on a trained checkpoint, its coarse-profile ablations and
the prompt-only baseline (registered in ``eval.scorers.SCORERS``).

* ``pmllm`` - the full profile; ``pmllm-structured`` (PARA + LAPIS fields only), ``pmllm-text`` (free text only),
  ``pmllm-demographics`` (age, gender, education, nationality), ``pmllm-empty`` (no profile at all).
* ``prompt-only`` - the same frozen LLM, no fusion, told each photo's top-3 ImageNet classes in words.

``fit`` loads the checkpoint (default: ``pmllm/checkpoints/default``) and refuses to evaluate users it was trained
on: the checkpoint records the user ids it was trained on (its model card says which world and fold), and a fold
whose held-out users include any of them is skipped with the reason. To evaluate other folds, train one checkpoint
per fold (``python -m pmllm.train ... --fold K --out DIR``) and pass ``checkpoint=DIR``.
Frozen visual tokens are memoized per image path within the process, and so is each user's score of each image
(zero-shot: the same in every episode), shared by every scorer on the same checkpoint.

Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from eval.api import Benchmark, FoldNotSupported, Scorer, UserTask
from piaa.schema import DEMOGRAPHIC_FIELDS, LAPIS_FIELDS, PARA_FIELDS, Profile

_MODELS: dict[str, object] = {}
_TOKENS: dict[tuple[str, str], object] = {}  # (vision encoder, image path) -> frozen visual tokens (fp16)
# (checkpoint, profile, scale) -> {path: (score, words)}; words: PMLLM.stated_taste, NaN where no text was read
_PREDICTIONS: dict[tuple[str, str, str], dict[str, tuple[float, float]]] = {}
_STATS: dict[str, np.ndarray] = {}  # image path -> pmllm.grounding.grounding_stats row (grounded pixel evidence)


def load_pmllm(checkpoint: str | os.PathLike | None = None):
    """One PMLLM per checkpoint directory per process (``None``: the committed default)."""
    from pmllm.config import DEFAULT_CHECKPOINT
    from pmllm.model import PMLLM

    key = str(Path(checkpoint or DEFAULT_CHECKPOINT).resolve())
    if key not in _MODELS:
        _MODELS[key] = PMLLM.from_pretrained(key)
    return _MODELS[key]


def checkpoint_training_users(meta: dict) -> set[str]:
    """The user ids a checkpoint was trained on: ``meta["train_users"]`` (recorded by ``pmllm.train``), else the
    recorded folds file if it still exists at the recorded path; empty if unknown."""
    if meta.get("train_users"):
        return {str(u) for u in meta["train_users"]}
    folds, fold = meta.get("users_from"), meta.get("fold")
    if folds and fold is not None and Path(folds).is_file():
        return {str(u) for u in json.loads(Path(folds).read_text())["folds"][int(fold)]["train"]}
    return set()


class PMLLMScorer(Scorer):
    """Zero-shot pmllm with an optionally coarsened profile (``keep``: the Profile fields kept; None = all)."""

    name = "pmllm"
    keep: tuple[str, ...] | None = None

    def __init__(self, checkpoint: str | os.PathLike | None = None, batch_size: int = 64):
        from pmllm.config import DEFAULT_CHECKPOINT

        self.checkpoint = checkpoint or DEFAULT_CHECKPOINT
        self.batch_size = batch_size
        self.model = None

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:
        self.model = load_pmllm(self.checkpoint)
        trained = checkpoint_training_users(self.model.config.meta)
        if not trained:
            warnings.warn(f"{self.name}: checkpoint {self.checkpoint} does not record its training users; "
                          "cannot check that held-out users were unseen", stacklevel=2)  # fmt: skip
        held_out = set(benchmark.table.users) - set(train_users)
        leak = trained & held_out
        if leak:
            # ids are compared whatever the paths: same-named users on another machine's copy are the same people
            raise FoldNotSupported(
                f"{self.name}: checkpoint {self.checkpoint} was trained on {len(leak)} user(s) this fold holds "
                f"out (e.g. {sorted(leak)[:3]}; users are compared by id); it was trained on fold "
                f"{self.model.config.meta.get('fold')} of {self.model.config.meta.get('trained_on', 'its data')} - "
                "evaluate that fold of that data, or train a checkpoint for this fold (python -m pmllm.train --fold K)"
            )

        if self.model.config.grounding:  # the property concepts' evidence: measured once per image, cached on disk
            from piaa.features import feature_cache_dir
            from pmllm.grounding import grounding_stats

            paths = [str(benchmark.image_path(i)) for i in benchmark.table.images]
            todo = [p for p in paths if p not in _STATS]
            if todo:
                _STATS.update(zip(todo, grounding_stats(todo, cache=feature_cache_dir(None))))

    def profile(self, profile: Profile) -> Profile:
        return profile if self.keep is None else profile.subset(self.keep)

    def _visual(self, images: list[Path]):
        """Frozen visual tokens of ``images``, memoized per (vision encoder, path) for the whole process."""
        import torch

        vision = self.model.config.vision
        missing = [p for p in images if (vision, str(p)) not in _TOKENS]
        if missing:
            for p, t in zip(missing, self.model.visual_tokens(missing, self.batch_size).half()):
                _TOKENS[(vision, str(p))] = t
        return torch.stack([_TOKENS[(vision, str(p))] for p in images]).float()

    def predict(self, task: UserTask) -> np.ndarray:
        """Scores of the query images. A user's score of an image does not depend on the episode (zero-shot), so
        it is computed once per (checkpoint, profile, scale, image) and reused by every shot count and repeat,
        and by every scorer built on the same checkpoint (``ensemble``)."""
        return self.predict_with_words(task)[0]

    def predict_with_words(self, task: UserTask) -> tuple[np.ndarray, np.ndarray | None]:
        """``(scores, words)`` of the query images; ``words``: what the free text alone says of each
        (:meth:`pmllm.model.PMLLM.stated_taste`, the few-shot model's words part), None where no text was read."""
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit(benchmark, train_users) before predict")
        profile = self.profile(task.profile)
        key = (str(Path(self.checkpoint).resolve()), profile.key(), json.dumps(task.scale.to_dict()))
        memo = _PREDICTIONS.setdefault(key, {})
        paths = [task.path(im) for im in task.query_images]
        missing = list(dict.fromkeys(p for p in paths if str(p) not in memo))
        if missing:
            stats = np.stack([_STATS[str(p)] for p in missing]) if self.model.config.grounding else None
            out = self.model.score_tokens(profile, self._visual(missing), scale=task.scale, batch_size=self.batch_size,
                                          stats=stats)  # fmt: skip
            words = np.full(len(missing), np.nan) if out.words is None else out.words
            memo.update(zip(map(str, missing), zip(out.scores.tolist(), words.tolist())))
        both = np.array([memo[str(p)] for p in paths], dtype=np.float64).reshape(len(paths), 2)
        return both[:, 0], (None if np.isnan(both[:, 1]).any() else both[:, 1])


class PMLLMStructuredScorer(PMLLMScorer):
    name = "pmllm-structured"
    keep = PARA_FIELDS + LAPIS_FIELDS


class PMLLMTextScorer(PMLLMScorer):
    name = "pmllm-text"
    keep = ("text",)


class PMLLMDemographicsScorer(PMLLMScorer):
    name = "pmllm-demographics"
    keep = DEMOGRAPHIC_FIELDS


class PMLLMEmptyScorer(PMLLMScorer):
    name = "pmllm-empty"
    keep = ()


class PromptOnlyScorer(Scorer):
    """The frozen LLM alone, told the photo's top ImageNet classes (no training; ``fit`` is a no-op)."""

    name = "prompt-only"

    def __init__(self, llm: str = "smollm2-135m-instruct", vision: str = "efficientnet-lite0", top_k: int = 3):
        self.llm, self.vision, self.top_k = llm, vision, top_k
        self.base = None
        self._desc: dict[str, str] = {}

    def predict(self, task: UserTask) -> np.ndarray:
        if self.base is None:
            from pmllm.baseline import PromptOnly

            self.base = PromptOnly.create(self.llm, self.vision)
            self.base.top_k = self.top_k
        missing = [im for im in task.query_images if str(task.path(im)) not in self._desc]
        for im, d in zip(missing, self.base.describe([task.path(im) for im in missing])):
            self._desc[str(task.path(im))] = d
        descriptions = [self._desc[str(task.path(im))] for im in task.query_images]
        return self.base.score_descriptions(task.profile, descriptions, scale=task.scale).scores
