"""Readers for the general aesthetic/quality databases used for task vectors (one mean score per image).

Each returns a ``RatingsTable`` with one row per image and ``user == <dataset name>`` (the simulated world's
database convention), on the database's own scale.

* ``AVAReader`` - ``AVA.txt``: 15 space-separated columns (index, image id, counts of ratings 1..10, two semantic
  tags, challenge id); score = vote-weighted mean on 1-10; images ``images/<id>.jpg``.
* ``KonIQReader`` - ``koniq10k_scores_and_distributions.csv`` (``image_name, c1..c5, c_total, MOS, SD,
  MOS_zscore``); ``MOS`` on 1-5 by default, ``score_column="MOS_zscore"`` for 0-100; images ``1024x768/``.
* ``SPAQReader`` - ``Annotations/MOS and Image attribute scores.xlsx`` (``Image name, MOS, ...``) read without
  openpyxl, or a CSV export of it; MOS on 0-100; images ``TestImage/``.
* ``TAD66KReader`` - ``labels/merge/{train,test}.csv`` (``image, score``), score on 1-10; images ``imgs/``.

Library module, no entry point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from piaa.schema import RatingsTable, Scale, SchemaError

from .base import DatasetReader
from .common import Table, find_file, parse_scores, read_table, read_whitespace_lines
from .xlsx import read_xlsx_rows


def _require_names(t: Table, column: str) -> list[str]:
    names = t.col(column)
    bad = [i for i, v in enumerate(names) if not v]
    if bad:
        raise SchemaError(f"{t.where(bad[0])}: column {column!r} is empty")
    return names


class AVAReader(DatasetReader):
    name = "ava"

    def read(self) -> RatingsTable:
        path = find_file(self.root, self.info.files["ratings"], "AVA.txt")
        ids, means, lines = [], [], []
        no_votes = []
        for lineno, f in read_whitespace_lines(path, 15, self.report):
            try:
                counts = [int(x) for x in f[2:12]]
            except ValueError:
                bad = next(x for x in f[2:12] if not x.lstrip("-").isdigit())
                raise SchemaError(f"{path}:{lineno}: vote count {bad!r} (columns 3-12) is not an integer") from None
            if min(counts) < 0:
                raise SchemaError(f"{path}:{lineno}: negative vote count in columns 3-12")
            if not f[1].isdigit():
                raise SchemaError(f"{path}:{lineno}: image id {f[1]!r} (column 2) is not a number")
            total = sum(counts)
            if total == 0:
                no_votes.append(f"{path.name}:{lineno}")
                continue
            ids.append(f[1])
            means.append(sum((k + 1) * c for k, c in enumerate(counts)) / total)
            lines.append(lineno)
        self.report.drop("images with no votes dropped", len(no_votes), no_votes)
        df = pd.DataFrame({"image": [f"{i}.jpg" for i in ids], "user": self.name,
                           "score": np.asarray(means, dtype=np.float64), "line": lines})  # fmt: skip
        return self.finish(df, source=path, image_root=self.image_root())


class KonIQReader(DatasetReader):
    name = "koniq10k"

    def __init__(self, root: str | Path, *, check_images: bool = True, score_column: str = "MOS"):
        super().__init__(root, check_images=check_images)
        columns: dict[str, Scale] = self.info.extra["score_columns"]
        if score_column not in columns:
            raise ValueError(f"KonIQ-10k score_column must be one of {sorted(columns)}, got {score_column!r}")
        self.score_column = score_column
        self.scale = columns[score_column]

    def read(self) -> RatingsTable:
        path = find_file(self.root, self.info.files["ratings"], "scores file")
        t = read_table(path, report=self.report)
        t.require("image_name", self.score_column)
        names = _require_names(t, "image_name")
        scores, keep = parse_scores(t.col(self.score_column), t.where, self.score_column, self.scale, self.report)
        df = pd.DataFrame({"image": names, "user": self.name, "score": scores, "line": t.lines})[keep]
        return self.finish(df, source=path, image_root=self.image_root(), scale=self.scale)


class SPAQReader(DatasetReader):
    name = "spaq"

    def read(self) -> RatingsTable:
        path = find_file(self.root, self.info.files["ratings"], "MOS annotation (.xlsx, or a .csv export of it)")
        t = self._table(path)
        t.require("Image name", "MOS")
        names = _require_names(t, "Image name")
        scores, keep = parse_scores(t.col("MOS"), t.where, "MOS", self.info.scale, self.report)
        df = pd.DataFrame({"image": names, "user": self.name, "score": scores, "line": t.lines})[keep]
        return self.finish(df, source=path, image_root=self.image_root())

    def _table(self, path: Path) -> Table:
        if path.suffix.lower() != ".xlsx":
            return read_table(path, report=self.report)
        rows = read_xlsx_rows(path)
        if not rows:
            raise SchemaError(f"{path}: empty first worksheet (expected a header row)")
        (_, header), body = rows[0], rows[1:]
        while header and not header[-1]:
            header.pop()
        out, lines = [], []
        for rnum, cells in body:
            if len(cells) > len(header) and any(cells[len(header) :]):
                raise SchemaError(f"{path}:{rnum}: wrong field count: expected {len(header)} ({', '.join(header)}), "
                                  f"got {len(cells)}")  # fmt: skip
            out.append((cells + [""] * len(header))[: len(header)])
            lines.append(rnum)
        return Table(path, header, out, lines)


class TAD66KReader(DatasetReader):
    name = "tad66k"

    def read(self) -> RatingsTable:
        paths = [self.root / p for p in self.info.files["ratings"] if (self.root / p).is_file()]
        if not paths:
            find_file(self.root, self.info.files["ratings"], "label files")  # raises, naming what was expected
        frames = []
        for path in paths:
            t = read_table(path, report=self.report)
            t.require("image", "score")
            names = _require_names(t, "image")
            scores, keep = parse_scores(t.col("score"), t.where, "score", self.info.scale, self.report)
            frames.append(pd.DataFrame({"image": names, "user": self.name, "score": scores, "line": t.lines})[keep])
        df = pd.concat(frames, ignore_index=True)
        return self.finish(df, source=paths[0].parent, image_root=self.image_root())
