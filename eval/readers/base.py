"""The reader base class: one dataset folder in, one ``piaa.schema.RatingsTable`` (and, for PIAA data, folds) out.

Library module, no entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd

from piaa.schema import Profile, RatingsTable, Scale, SchemaError

from .common import ImageIndex, ReadReport, check_root, drop_duplicates, drop_missing_images, finalize, find_dir
from .folds import Fold, seeded_user_folds
from .meta import DatasetInfo, dataset_info


class DatasetReader:
    """Subclasses set ``name`` (a key of ``meta.DATASETS``) and implement :meth:`read`."""

    name: ClassVar[str] = ""

    def __init__(self, root: str | Path, *, check_images: bool = True):
        self.root = Path(root).expanduser()
        self.info: DatasetInfo = dataset_info(self.name)
        self.check_images = check_images
        self.report = ReadReport(self.name)
        self.fold_source: str | None = None  # how the last folds() call made its folds (set by folds())

    # ------------------------------------------------------------------ contract
    @property
    def is_piaa(self) -> bool:
        return self.info.kind == "piaa"

    def read(self) -> RatingsTable:
        raise NotImplementedError

    def folds(self, table: RatingsTable, *, seed: int = 0, n_folds: int = 4) -> list[Fold]:
        """User-disjoint ``(train_users, test_users)`` folds; general databases have none."""
        if not self.is_piaa:
            raise SchemaError(f"{self.name} is a general database (one mean score per image); it has no user folds")
        self.fold_source = f"seeded user k-fold (k={n_folds}, seed={seed})"
        return seeded_user_folds(table.users, n_folds=n_folds, seed=seed)

    # ------------------------------------------------------------------ helpers for subclasses
    def image_root(self) -> Path:
        """The image folder: the first candidate that exists (required when checking images)."""
        check_root(self.root)
        found = find_dir(self.root, self.info.image_dirs, "image", required=self.check_images)
        return found if found is not None else self.root / self.info.image_dirs[0]

    def finish(
        self,
        df: pd.DataFrame,
        *,
        source: Path,
        image_root: Path,
        profiles: dict[str, Profile] | None = None,
        scale: Scale | None = None,
        dedupe_key: tuple[str, ...] = ("user", "image"),
    ) -> RatingsTable:
        """Drop missing images and repeated ratings (counted), then build the table with a profile per user."""
        if self.check_images:
            df = drop_missing_images(df, ImageIndex(image_root), self.report, source)
        df = drop_duplicates(df, self.report, dedupe_key)
        if df.empty:
            raise SchemaError(f"{source}: no ratings left to read")
        profiles = profiles or {}
        users = sorted(df["user"].unique())
        table_profiles = {u: profiles.get(u, Profile()) for u in users}
        return RatingsTable(finalize(df), scale or self.info.scale, table_profiles, image_root, self.name)
