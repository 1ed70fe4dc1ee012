"""Evaluation protocols: which (user, support set, query set) episodes a scorer is tested on.

* **Zero-shot** (``shots=0``): for every fold of ``Benchmark.folds`` (user-disjoint ``(train_users, test_users)``),
  each test user's ratings are all query, the support set is empty. One repeat (nothing is sampled).
* **Few-shot** (``shots=k``, e.g. 10 or 100): for each test user of each fold, ``k`` support images are drawn
  uniformly without replacement, the rest of the user's rated images are the query. ``repeats`` draws per user,
  each reproducible from ``(seed, user, repeat)`` alone (independent of table row order, other users and which
  folds run). The draw is one permutation of the user's images per ``(seed, user, repeat)`` and the support is its
  first ``k`` images, so the 10-shot support set is nested in the 100-shot one of the same repeat.

Skip rules (each skip is recorded with its reason; nothing here ever looks at a scorer):

* ``too few ratings``: the user rated fewer than ``k + min_query`` images;
* ``constant query ratings``: every query rating is equal (correlation undefined); decided per repeat.

Only the user's own rating count and query ratings' variance decide a skip - never a scorer's output - so the same
episodes are used for every method. Duplicate ratings of one image by one user are averaged first.

Library module, no entry point (see ``python -m eval.run``)::

    for ep in episodes(benchmark, shots=10, repeats=10, seed=0, skips=skips):
        pred = scorer.predict(ep.task); ...  # compare with ep.query_scores
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from eval.api import Benchmark, UserTask

DEFAULT_MIN_QUERY = 10
TOO_FEW = "too few ratings"
CONSTANT_QUERY = "constant query ratings"


@dataclass
class Episode:
    """One evaluation unit: the scorer sees ``task``; ``query_scores`` (aligned with ``task.query_images``) is
    kept by the harness for the metrics."""

    fold: int
    task: UserTask
    query_scores: np.ndarray


@dataclass
class Skip:
    fold: int
    user: str
    shots: int
    repeat: int | None  # None = the whole user (every repeat)
    reason: str
    n_ratings: int


@dataclass
class SkipLog:
    """Every skipped user / (user, repeat), with its reason; counted in the report."""

    items: list[Skip] = field(default_factory=list)

    def add(self, skip: Skip) -> None:
        self.items.append(skip)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{str(shots): {reason: count}}``; a whole-user skip counts once."""
        out: dict[str, Counter] = {}
        for s in self.items:
            out.setdefault(str(s.shots), Counter())[s.reason] += 1
        return {k: dict(v) for k, v in sorted(out.items(), key=lambda kv: int(kv[0]))}

    def to_list(self) -> list[dict]:
        return [asdict(s) for s in self.items]


def stable_int(text: str) -> int:
    """A process-independent 63-bit integer for a string (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def fold_key(train_users: Sequence[str]) -> str:
    """A short stable id of a fold's training-user set, e.g. to name a per-fold checkpoint in a scorer's ``fit``."""
    return f"{stable_int('|'.join(sorted(map(str, train_users)))) % 16**12:012x}"


def episode_rng(seed: int, user: str, repeat: int) -> np.random.Generator:
    """The generator for one (seed, user, repeat): the same on every machine and in every run."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_int(str(user)), int(repeat)]))


def _constant(x: np.ndarray) -> bool:
    return len(x) == 0 or bool(np.ptp(x) <= 1e-12)


def check_folds(benchmark: Benchmark) -> None:
    """Raise ``ValueError`` naming the fold if a fold's train and test users overlap or a test user is unknown."""
    known = set(benchmark.table.users)
    for i, (train, test) in enumerate(benchmark.folds):
        both = set(map(str, train)) & set(map(str, test))
        if both:
            raise ValueError(f"{benchmark.name}: fold {i} has {len(both)} user(s) in both train and test, "
                             f"e.g. {sorted(both)[:3]}")  # fmt: skip
        unknown = set(map(str, test)) - known
        if unknown:
            raise ValueError(f"{benchmark.name}: fold {i} lists {len(unknown)} test user(s) with no ratings, "
                             f"e.g. {sorted(unknown)[:3]}")  # fmt: skip


def _cached_ratings(benchmark: Benchmark, users: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
    wanted = set(map(str, users))
    df = benchmark.table.ratings
    df = df[df["user"].isin(wanted)]
    out: dict[str, tuple[list[str], np.ndarray]] = {u: ([], np.zeros(0)) for u in wanted}
    for user, g in df.groupby("user", sort=False):
        s = g.groupby("image", sort=True)["score"].mean()
        out[str(user)] = ([str(i) for i in s.index], s.to_numpy(dtype=np.float64))
    return out


def fold_test_users(benchmark: Benchmark, fold: int, max_users: int | None = None, offset: int = 0) -> list[str]:
    """The test users of ``fold``, sorted by id, from number ``offset`` on; only ``max_users`` of them if given."""
    users = sorted(map(str, benchmark.folds[fold][1]))[offset:]
    return users[:max_users]


def episodes(
    benchmark: Benchmark,
    *,
    shots: int,
    repeats: int = 10,
    seed: int = 0,
    folds: Sequence[int] | None = None,
    min_query: int = DEFAULT_MIN_QUERY,
    skips: SkipLog | None = None,
    max_users: int | None = None,
    user_offset: int = 0,
) -> Iterator[Episode]:
    """Yield the episodes of the zero-shot (``shots=0``) or ``shots``-shot protocol, fold by fold.

    ``folds``: indices into ``benchmark.folds`` (default: all). ``repeats`` is ignored for zero-shot (1 repeat).
    ``max_users``: only the first N test users of each fold (sorted by id) - a cheaper, still user-disjoint
    subset for expensive scorers; ``user_offset`` skips the first N (a disjoint subset). Skipped users are recorded
    in ``skips``.
    """
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    check_folds(benchmark)
    fold_ids = range(len(benchmark.folds)) if folds is None else folds
    n_rep = 1 if shots == 0 else int(repeats)
    skips = skips if skips is not None else SkipLog()
    scale, root = benchmark.scale, benchmark.table.image_root
    for f in fold_ids:
        if not 0 <= f < len(benchmark.folds):
            raise ValueError(f"{benchmark.name}: no fold {f} (it has {len(benchmark.folds)})")
        test_users = fold_test_users(benchmark, f, max_users, user_offset)
        cache = _cached_ratings(benchmark, test_users)
        for user in test_users:
            images, scores = cache[user]
            if len(images) < shots + min_query:
                skips.add(Skip(f, user, shots, None, TOO_FEW, len(images)))
                continue
            profile = benchmark.table.profile(user)
            for r in range(n_rep):
                if shots == 0:
                    sup_idx = np.zeros(0, dtype=int)
                    qry_idx = np.arange(len(images))
                else:
                    perm = episode_rng(seed, user, r).permutation(len(images))
                    sup_idx, qry_idx = np.sort(perm[:shots]), np.sort(perm[shots:])
                q_scores = scores[qry_idx]
                if _constant(q_scores):
                    skips.add(Skip(f, user, shots, r if shots else None, CONSTANT_QUERY, len(images)))
                    continue
                task = UserTask(
                    user=user,
                    profile=profile,
                    support_images=[images[i] for i in sup_idx],
                    support_scores=scores[sup_idx].copy(),
                    query_images=[images[i] for i in qry_idx],
                    scale=scale,
                    image_root=root,
                    repeat=r,
                    shots=shots,
                )
                yield Episode(fold=f, task=task, query_scores=q_scores.copy())


def count_episodes(benchmark: Benchmark, *, shots: int, repeats: int, folds: Sequence[int] | None = None,
                   min_query: int = DEFAULT_MIN_QUERY, max_users: int | None = None,
                   user_offset: int = 0) -> int:  # fmt: skip
    """Upper bound on the number of episodes (users with enough ratings x repeats), for progress bars."""
    fold_ids = range(len(benchmark.folds)) if folds is None else folds
    counts = benchmark.table.ratings.groupby("user")["image"].nunique()
    n = 0
    for f in fold_ids:
        users = pd.Index(fold_test_users(benchmark, f, max_users, user_offset))
        n += int((counts.reindex(users).fillna(0) >= shots + min_query).sum())
    return n * (1 if shots == 0 else repeats)
