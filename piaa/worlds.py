"""The one reader of a world folder: ratings, user-disjoint folds, scoring databases and ``world.json``.

A world folder (written by ``python -m eval.sim``, or by hand for your own data) holds::

    ratings/            RatingsTable folder (ratings.csv, profiles.jsonl, meta.json): the per-user ratings
    folds.json          {"folds": [{"train": [user, ...], "test": [user, ...]}, ...]} (user-disjoint)
    databases/<db>/     RatingsTable folders of scored databases (task-vector training data), optional
    world.json          what the world is ({"simulated": true, ...}); written last, so it signals readiness

Every entry point that reads such a folder (``eval.run``, ``pmllm.train``, ``taskvec.finetune``, the benchmarks)
goes through :class:`WorldFolder`; errors name the file and what is wrong. Torch-free; library module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from piaa.schema import RatingsTable, SchemaError

Fold = tuple[list[str], list[str]]  # (train users, test users)


def read_folds(path: str | Path) -> list[Fold]:
    """``folds.json`` -> ``[(train, test), ...]``; refuses malformed files and folds whose train and test overlap."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        folds = [([str(u) for u in f["train"]], [str(u) for u in f["test"]]) for f in raw["folds"]]
    except FileNotFoundError:
        raise SchemaError(f"{path}: missing (a world folder holds folds.json)") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise SchemaError(f"{path}: malformed folds file ({type(err).__name__}: {err}); expected "
                          '{"folds": [{"train": [...], "test": [...]}]}') from None  # fmt: skip
    for i, (train, test) in enumerate(folds):
        both = set(train) & set(test)
        if both:
            raise SchemaError(
                f"{path}: fold {i} has {len(both)} user(s) in both train and test, e.g. {sorted(both)[:3]}"
            )
    return folds


@dataclass
class WorldFolder:
    """A world folder on disk (see the module docstring); parts are read on first use."""

    root: Path
    info: dict = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path, *, require_world_json: bool = True) -> WorldFolder:
        root = Path(root)
        if not root.is_dir():
            raise SchemaError(f"{root}: no such world folder")
        wfile = root / "world.json"
        if not wfile.is_file():
            if require_world_json:
                raise SchemaError(f"{wfile}: missing - not a (finished) world folder; build one with "
                                  "`python -m eval.sim --out DIR`")  # fmt: skip
            return cls(root, {})
        try:
            info = json.loads(wfile.read_text())
        except json.JSONDecodeError as err:
            raise SchemaError(f"{wfile}: not valid JSON ({err.msg}, line {err.lineno})") from None
        return cls(root, info)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def simulated(self) -> bool:
        return bool(self.info.get("simulated", False))

    @property
    def label(self) -> str:
        return "simulated" if self.simulated else "real"

    @cached_property
    def ratings(self) -> RatingsTable:
        return RatingsTable.load(self.root / "ratings")

    @cached_property
    def folds(self) -> list[Fold]:
        return read_folds(self.root / "folds.json")

    def fold(self, index: int) -> Fold:
        return _fold(self.folds, index, self.root / "folds.json")

    def train_users(self, index: int) -> list[str]:
        """Training users of fold ``index``; every one must have ratings."""
        return _checked_train(self.fold(index)[0], index, self.ratings, self.root / "folds.json")

    @cached_property
    def databases(self) -> dict[str, RatingsTable]:
        """Scored databases under ``databases/`` (empty if none)."""
        folder = self.root / "databases"
        if not folder.is_dir():
            return {}
        return {d.name: RatingsTable.load(d) for d in sorted(folder.iterdir()) if (d / "ratings.csv").is_file()}


def users_of_fold(folds_file: str | Path | None, fold: int, table: RatingsTable) -> list[str]:
    """Training users of ``fold`` in ``folds_file`` (all users of ``table`` when no file is given)."""
    if not folds_file:
        return table.users
    return _checked_train(_fold(read_folds(folds_file), fold, folds_file)[0], fold, table, folds_file)


def _fold(folds: list[Fold], index: int, source: str | Path) -> Fold:
    if not 0 <= index < len(folds):
        raise SchemaError(f"{source}: no fold {index} (it has {len(folds)})")
    return folds[index]


def _checked_train(train: list[str], index: int, table: RatingsTable, source: str | Path) -> list[str]:
    missing = sorted(set(train) - set(table.users))
    if missing:
        raise SchemaError(f"{source}: fold {index} lists {len(missing)} training user(s) absent from the "
                          f"ratings, e.g. {missing[:3]}")  # fmt: skip
    return train
