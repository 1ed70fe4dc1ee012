"""User-disjoint folds for the PIAA benchmarks: the published splits (copied into ``eval/data``) and seeded k-fold.

* FLICKR-AES: one fold, the 37 published test workers vs every other worker.
* PARA: the 4 published user folds (seeded folds, with a note in the read report, when the ratings' user ids
  do not fit them: :func:`published_or_seeded_folds`).
* LAPIS, AADB, REAL-CUR: ``seeded_user_folds`` (sorted users, shuffled with ``numpy.random.default_rng(seed)``,
  cut into ``n_folds`` near-equal test groups; each fold trains on all other users).

Library module, no entry point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from piaa.schema import SchemaError

from .common import ReadReport, read_text

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

Fold = tuple[list[str], list[str]]


def read_id_list(path: Path, *, header: str | None = None) -> list[str]:
    """IDs one per line (an optional header line equal to ``header`` is skipped); blank lines ignored."""
    ids: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        v = line.strip().strip('"').strip()
        if not v or (lineno == 1 and header is not None and v == header):
            continue
        if "," in v or " " in v:
            raise SchemaError(f"{path}:{lineno}: expected one ID per line, got {line!r}")
        ids.append(v)
    if not ids:
        raise SchemaError(f"{path}: no IDs")
    return ids


def flickr_aes_test_workers() -> list[str]:
    ids = read_id_list(DATA_DIR / "flickr_aes_test_workers.csv", header="ID")
    if len(ids) != 37 or len(set(ids)) != 37:
        raise SchemaError(f"{DATA_DIR / 'flickr_aes_test_workers.csv'}: expected 37 distinct IDs, got {len(ids)}")
    return ids


def para_published_folds() -> list[Fold]:
    folder = DATA_DIR / "para_user_folds"
    folds = []
    for k in range(1, 5):
        train = read_id_list(folder / f"TrainUserIDs_Fold{k}.txt")
        test = read_id_list(folder / f"TestUserIDs_Fold{k}.txt")
        folds.append((train, test))
    return folds


def fixed_test_fold(users: Iterable[str], test_users: Sequence[str], report: ReadReport) -> list[Fold]:
    """One fold: the listed test users present in the data vs every other user."""
    users = sorted(set(users))
    present = set(users)
    test = [u for u in test_users if u in present]
    report.drop("listed test users absent from the ratings", len(test_users) - len(test),
                [u for u in test_users if u not in present])  # fmt: skip
    if not test:
        raise SchemaError(f"{report.dataset}: none of the {len(test_users)} listed test users has ratings")
    tset = set(test)
    return [([u for u in users if u not in tset], sorted(test))]


def restrict_folds(folds: list[Fold], users: Iterable[str], report: ReadReport) -> list[Fold]:
    """Published folds restricted to the users present in the ratings; users in no test set are reported."""
    present = set(users)
    listed = set().union(*(set(tr) | set(te) for tr, te in folds))
    absent = sorted(listed - present)
    report.drop("users listed in the published folds but absent from the ratings", len(absent), absent)
    unlisted = sorted(present - listed)
    report.drop("users with ratings but in no published fold (not evaluated)", len(unlisted), unlisted)
    out = []
    for i, (tr, te) in enumerate(folds, 1):
        tr2, te2 = sorted(u for u in tr if u in present), sorted(u for u in te if u in present)
        if not te2:
            raise SchemaError(f"{report.dataset}: published fold {i} has no test user with ratings")
        out.append((tr2, te2))
    return out


def published_or_seeded_folds(
    folds: list[Fold], users: Iterable[str], report: ReadReport, *, n_folds: int = 4, seed: int = 0
) -> tuple[list[Fold], str]:
    """The published folds restricted to the rated users (:func:`restrict_folds`), or - when the ratings' user ids
    do not fit them (a published fold would have no test user with ratings, or most rated users are in no
    published fold: partial or re-exported data) - ``n_folds`` seeded user-disjoint folds over all rated users,
    with a note (and a :class:`ReaderWarning`) in ``report`` saying so. Returns ``(folds, fold_source)``."""
    present = sorted(set(users))
    listed = set().union(*(set(tr) | set(te) for tr, te in folds))
    matched = [u for u in present if u in listed]
    empty = [i for i, (_, te) in enumerate(folds, 1) if not set(te) & set(present)]
    if not empty and 2 * len(matched) >= len(present):
        return restrict_folds(folds, present, report), "published"
    why = (f"published fold {empty[0]} has no test user with ratings" if empty
           else "most rated users are in no published fold")  # fmt: skip
    report.note(f"{len(matched)} of the {len(present)} rated users are in the published folds ({why}); "
                f"partial or re-exported data? Using {n_folds} seeded user-disjoint folds (seed {seed}) over all "
                "rated users instead - results are not comparable with published-fold results")  # fmt: skip
    return seeded_user_folds(present, n_folds=n_folds, seed=seed), f"seeded user k-fold (k={n_folds}, seed={seed})"


def seeded_user_folds(users: Iterable[str], n_folds: int = 4, seed: int = 0) -> list[Fold]:
    """``n_folds`` user-disjoint folds; reproducible for a given (sorted) user set and seed."""
    users = sorted(set(map(str, users)))
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if len(users) < n_folds:
        raise SchemaError(f"cannot make {n_folds} user-disjoint folds from {len(users)} users")
    order = np.random.default_rng(seed).permutation(len(users))
    groups = np.array_split(order, n_folds)
    folds = []
    for g in groups:
        test = sorted(users[i] for i in g)
        tset = set(test)
        folds.append(([u for u in users if u not in tset], test))
    return folds


def check_folds(folds: list[Fold], users: Iterable[str], name: str) -> None:
    """Every fold user-disjoint, non-empty, and only users that have ratings."""
    present = set(users)
    for i, (tr, te) in enumerate(folds, 1):
        if not te or not tr:
            raise SchemaError(f"{name}: fold {i} has an empty train or test user set")
        overlap = set(tr) & set(te)
        if overlap:
            raise SchemaError(f"{name}: fold {i} is not user-disjoint ({len(overlap)} users in both)")
        stray = (set(tr) | set(te)) - present
        if stray:
            raise SchemaError(f"{name}: fold {i} names {len(stray)} users without ratings")
