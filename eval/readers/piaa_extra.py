"""Readers for AADB and REAL-CUR in their native layouts.

* ``AADBReader`` - per-image mean scores from ``imgListFiles_label/imgList{Train,Validation,Test}Regression_score.txt``
  (space-separated ``name score``, score in [0, 1]) and, when the raw Mechanical Turk batch file is present
  (``AADB_AllinAll.csv``: columns ``WorkerId``, ``Input.image_urlK``, ``Answer.overallScoreK``), one rating per
  worker on 1-5. ``mode="auto"`` reads the per-rater file when it exists, else the mean scores.
* ``RealCurReader`` - ``images/<worker>/<score>/<image>`` (or the same layout directly under the root), scale 1-5.

Library module, no entry point.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from piaa.schema import RatingsTable, Scale, SchemaError

from .base import DatasetReader
from .common import check_root, find_file, parse_scores, read_table, read_whitespace_lines, strip_tags
from .folds import Fold

AADB_RAW_SCALE = Scale(0.0, 5.0, 1.0)  # the AMT answers; 0 = no rating (see AADBReader.read_raters)


def aadb_image_name(url: str) -> str | None:
    """``https://farm1.staticflickr.com/255/1945_8ee7_b.jpg`` -> ``farm1_255_1945_8ee7_b.jpg``.

    The naming rule (farm host, server folder, file name joined by ``_``) as in shedy-pub/hlagcn-jittor
    ``utils_jittor/dataset.py`` (``loadinfo_AADB``). Returns None for a URL of another shape.
    """
    parts = url.strip().split("/")
    if len(parts) != 5 or not parts[2] or not parts[3] or not parts[4]:
        return None
    return f"{parts[2].split('.')[0]}_{parts[3]}_{parts[4]}"


class AADBReader(DatasetReader):
    name = "aadb"

    def __init__(self, root: str | Path, *, check_images: bool = True, mode: str = "auto"):
        super().__init__(root, check_images=check_images)
        if mode not in ("auto", "raters", "mean"):
            raise ValueError(f"AADB mode must be 'auto', 'raters' or 'mean', got {mode!r}")
        self.mode = mode
        self._noted_lists = False  # note a shadowed list file (Test vs TestNew) once per reader

    def read(self) -> RatingsTable:
        raw = find_file(self.root, self.info.files["raters"], "per-rater AMT file", required=self.mode == "raters")
        if self.mode == "mean" or raw is None:
            if self.mode == "auto":
                self.report.note(
                    f"no per-rater file ({' or '.join(self.info.files['raters'])}) under {self.root}: reading the "
                    "per-image mean scores (one 'user' = 'aadb'; no user folds)"
                )
            return self.read_means()
        return self.read_raters(raw)

    # ------------------------------------------------------------------ mean scores (0..1)
    def lists_dir(self, *, required: bool = True) -> Path | None:
        check_root(self.root)
        first = self.info.extra["lists"][0][1]
        for cand in self.info.files["lists"]:
            if (self.root / cand / first).is_file():
                return self.root / cand
        if not required:
            return None
        raise SchemaError(f"{self.root}: missing AADB label lists: expected {first!r} in "
                          f"{' or '.join(repr(c + '/') for c in self.info.files['lists'])}")  # fmt: skip

    def read_list_scores(self) -> pd.DataFrame:
        """All split lists as rows ``image, score, split, line, source``."""
        folder = self.lists_dir()
        scale = self.info.extra["mean_scale"]
        frames = []
        for split, *names in self.info.extra["lists"]:
            present = [folder / n for n in names if (folder / n).is_file()]
            if not present:
                raise SchemaError(f"{folder}: missing {split} list: expected {' or '.join(map(repr, names))}")
            path = present[0]
            if len(present) > 1 and not self._noted_lists:
                self.report.note(f"{split} list: read {path.name}; ignored {', '.join(p.name for p in present[1:])}")
            rows = list(read_whitespace_lines(path, 2, self.report))
            where = [f"{path}:{ln}" for ln, _ in rows]
            scores, keep = parse_scores([f[1] for _, f in rows], where.__getitem__, "score", scale, self.report)
            df = pd.DataFrame({"image": [f[0] for _, f in rows], "score": scores, "split": split,
                               "line": [ln for ln, _ in rows], "source": str(path)})  # fmt: skip
            frames.append(df[keep])
        self._noted_lists = True
        return pd.concat(frames, ignore_index=True)

    def read_means(self) -> RatingsTable:
        df = self.read_list_scores()
        df["user"] = "aadb"
        return self.finish(df, source=self.lists_dir(), image_root=self.image_root(),
                           scale=self.info.extra["mean_scale"])  # fmt: skip

    # ------------------------------------------------------------------ per-rater (1..5)
    def read_raters(self, path: Path) -> RatingsTable:
        t = read_table(path, report=self.report)
        worker_col = self.info.extra["worker_column"]
        t.require(worker_col)
        slots = sorted(int(m.group(1)) for h in t.header if (m := re.fullmatch(r"Input\.image_url(\d+)", h)))
        slots = [k for k in slots if t.has(f"Answer.overallScore{k}")]
        if not slots:
            raise SchemaError(f"{path}:1: missing column pairs 'Input.image_urlK' / 'Answer.overallScoreK'")
        workers = t.col(worker_col)
        images, users, raw, lines, rowidx = [], [], [], [], []
        empty_slots = 0
        pairs = [(t.col(f"Input.image_url{k}"), t.col(f"Answer.overallScore{k}")) for k in slots]
        for i in range(len(t)):  # file order: row by row, slot by slot
            for k, (urls, answers) in zip(slots, pairs):
                url = urls[i]
                if not url:
                    empty_slots += 1
                    continue
                name = aadb_image_name(url)
                if name is None:
                    raise SchemaError(
                        f"{t.where(i)}: column 'Input.image_url{k}': unexpected URL {url!r} "
                        "(expected https://<farm>.staticflickr.com/<server>/<file>)"
                    )
                if not workers[i]:
                    raise SchemaError(f"{t.where(i)}: column {worker_col!r} is empty")
                images.append(name)
                users.append(workers[i])
                raw.append(strip_tags(answers[i]))
                lines.append(t.lines[i])
                rowidx.append(i)
        self.report.drop("empty image slots in the AMT file skipped", empty_slots)
        scores, keep = parse_scores(raw, lambda j: t.where(rowidx[j]), "Answer.overallScore", AADB_RAW_SCALE,
                                    self.report)  # fmt: skip
        zero = keep & (scores == 0)
        self.report.drop("answers of 0 (no rating; public loaders count only 1-5) dropped", int(zero.sum()))
        keep &= ~zero
        df = pd.DataFrame({"image": images, "user": users, "score": scores, "line": lines})[keep]
        lists = self.lists_dir(required=False)
        if lists is not None:
            listed = set(self.read_list_scores()["image"])
            inside = df["image"].isin(listed)
            self.report.drop("AMT ratings of images outside the AADB image lists dropped", int((~inside).sum()),
                             sorted(set(df.loc[~inside, "image"]))[:3])  # fmt: skip
            df = df[inside]
        return self.finish(df, source=path, image_root=self.image_root())

    def folds(self, table: RatingsTable, *, seed: int = 0, n_folds: int = 4) -> list[Fold]:
        if table.users == ["aadb"]:
            raise SchemaError(f"{self.root}: AADB has user folds only with its per-rater file "
                              f"({' or '.join(self.info.files['raters'])})")  # fmt: skip
        return super().folds(table, seed=seed, n_folds=n_folds)


class RealCurReader(DatasetReader):
    name = "real-cur"

    def base_dir(self) -> Path:
        check_root(self.root)
        for cand in self.info.image_dirs:
            d = self.root / cand
            if d.is_dir() and _visible_dirs(d):
                return d
        raise SchemaError(f"{self.root}: no worker folders: expected images/<worker>/<score>/<image> "
                          "(or <worker>/<score>/<image> directly under the root)")  # fmt: skip

    def image_root(self) -> Path:
        return self.base_dir()

    def read(self) -> RatingsTable:
        base = self.base_dir()
        exts = set(self.info.extra["image_exts"])
        scale = self.info.scale
        rows: list[tuple[str, str, float, str]] = []
        loose, other, nested = [], [], []
        for worker in _visible_dirs(base):
            wdir = base / worker
            for entry in sorted(os.scandir(wdir), key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue
                if not entry.is_dir():
                    loose.append(f"{worker}/{entry.name}")
                    continue
                try:
                    score = float(entry.name)
                except ValueError:
                    score = float("nan")
                if not (scale.min <= score <= scale.max) or (score - scale.min) % scale.step:
                    raise SchemaError(f"{wdir / entry.name}: folder name {entry.name!r} is not a score on the "
                                      f"scale 1-5 (expected <worker>/<score>/<image>)")  # fmt: skip
                for f in sorted(os.scandir(entry.path), key=lambda e: e.name):
                    rel = f"{worker}/{entry.name}/{f.name}"
                    if f.name.startswith("."):
                        continue
                    if f.is_dir():
                        nested.append(rel)
                    elif os.path.splitext(f.name)[1].lower() in exts:
                        rows.append((rel, worker, score, f"{worker}/{f.name}"))
                    else:
                        other.append(rel)
        self.report.drop("files directly in a worker folder (not in a score folder) ignored", len(loose), loose)
        self.report.drop("non-image files ignored", len(other), other)
        self.report.drop("folders inside score folders ignored", len(nested), nested)
        if not rows:
            raise SchemaError(f"{base}: no images found in <worker>/<score>/ folders")
        df = pd.DataFrame(rows, columns=["image", "user", "score", "photo"])
        df["score"] = df["score"].astype(np.float64)
        return self.finish(df, source=base, image_root=base, dedupe_key=("user", "photo"))


def _visible_dirs(d: Path) -> list[str]:
    with os.scandir(d) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith((".", "_")))
