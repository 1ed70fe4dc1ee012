"""The contracts between benchmarks, protocols and scorers. Everything in ``eval`` speaks these types.

* :class:`Benchmark` - a ratings table (``piaa.schema.RatingsTable``) plus user-disjoint folds
  (``folds[i] = (train_users, test_users)``) and optional oracle scores (simulated world only).
* :class:`UserTask` - one evaluation unit: a test user, their profile, the support set (empty for zero-shot) and
  the query images to score.
* :class:`Scorer` - ``fit(benchmark, train_users)`` once per fold on training users only (may be a no-op or load a
  checkpoint), then ``predict(task)`` -> one score per query image (any monotone scale: metrics are SROCC/PLCC).

Scorers never see query scores. Selection of steps/hyper-parameters may use the support set or training users
only. Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from piaa.schema import Profile, RatingsTable, Scale


@dataclass
class Benchmark:
    name: str
    table: RatingsTable
    folds: list[tuple[list[str], list[str]]]  # user-disjoint (train_users, test_users)
    simulated: bool = False
    oracle: object | None = None  # callable(user, images) -> np.ndarray of noise-free scores (simulated only)
    meta: dict = field(default_factory=dict)

    @property
    def scale(self) -> Scale:
        return self.table.scale

    def image_path(self, image: str) -> Path:
        return self.table.image_path(image)


@dataclass
class UserTask:
    user: str
    profile: Profile
    support_images: list[str]
    support_scores: np.ndarray
    query_images: list[str]
    scale: Scale
    image_root: Path
    repeat: int = 0
    shots: int = 0  # 0 = zero-shot

    def path(self, image: str) -> Path:
        return Path(self.image_root) / image


class FoldNotSupported(RuntimeError):
    """Raised by ``Scorer.fit`` when the scorer cannot be evaluated honestly on this fold (e.g. its checkpoint was
    trained on the fold's test users). The harness skips the scorer on that fold, records why, and goes on."""


class Scorer:
    """Base class. ``name`` is the row label in result tables; ``needs_support`` marks few-shot scorers."""

    name: str = "scorer"
    needs_support: bool = False

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:  # noqa: B027 - optional hook
        """Population-level training/loading on the fold's training users (never on test users)."""

    def predict(self, task: UserTask) -> np.ndarray:
        raise NotImplementedError
