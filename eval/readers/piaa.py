"""Readers for the personalized (many raters per image) benchmarks in their native release formats.

* ``FlickrAESReader`` - ``FLICKR-AES_image_labeled_by_each_worker.csv`` (``worker, imagePair, score``; the
  separator is ", " so the header names carry a leading space), images in ``40K/``; fold = 37 published test
  workers vs the rest.
* ``ParaReader`` - ``annotation/PARA-Images.csv`` + ``annotation/PARA-UserInfo.csv`` (profiles), images at
  ``imgs/<sessionId>/<imageName>``; the 4 published user folds (seeded ones when the user ids do not fit them).
* ``LapisReader`` - ``annotation/LAPIS_individualratings_metaANDdemodata.csv`` (ratings 0-100 and the
  participants' demographics / VAIAK answers inline), images in ``images/``; 4 seeded user folds.

AADB and REAL-CUR live in :mod:`eval.readers.piaa_extra`. Library module, no entry point.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from piaa.schema import Profile, RatingsTable, SchemaError

from .base import DatasetReader
from .common import (
    ImageIndex,
    Table,
    clean_text,
    find_file,
    number_text,
    parse_float,
    parse_scores,
    read_table,
    read_whitespace_lines,
)
from .folds import Fold, fixed_test_fold, flickr_aes_test_workers, para_published_folds, published_or_seeded_folds


def _require_ids(t: Table, column: str, values: list[str]) -> None:
    bad = [i for i, v in enumerate(values) if not v]
    if bad:
        raise SchemaError(f"{t.where(bad[0])}: column {column!r} is empty")


class FlickrAESReader(DatasetReader):
    name = "flickr-aes"

    def read(self) -> RatingsTable:
        path = find_file(self.root, self.info.files["ratings"], "per-worker ratings file")
        t = read_table(path, report=self.report)
        t.require("worker", "imagePair", "score")
        users, images = t.col("worker"), t.col("imagePair")
        _require_ids(t, "worker", users)
        _require_ids(t, "imagePair", images)
        scores, keep = parse_scores(t.col("score"), t.where, "score", self.info.scale, self.report)
        df = pd.DataFrame({"image": images, "user": users, "score": scores, "line": t.lines})[keep]
        return self.finish(df, source=path, image_root=self.image_root())

    def image_scores(self) -> pd.Series:
        """The release's per-image score file (``name score`` per line), for cross-checks; range not enforced."""
        path = find_file(self.root, self.info.files["image_scores"], "per-image score file")
        names, vals = [], []
        for lineno, (name, score) in read_whitespace_lines(path, 2, self.report):
            x = parse_float(score, f"{path}:{lineno}", "score")
            if x is None:
                raise SchemaError(f"{path}:{lineno}: empty score")
            names.append(name)
            vals.append(x)
        return pd.Series(vals, index=pd.Index(names, name="image"), name="score")

    def folds(self, table: RatingsTable, *, seed: int = 0, n_folds: int = 4) -> list[Fold]:
        self.fold_source = "published 37 test workers (eval/data/flickr_aes_test_workers.csv)"
        return fixed_test_fold(table.users, flickr_aes_test_workers(), self.report)


# PARA-UserInfo.csv column -> Profile field (values kept as the dataset writes them)
PARA_PROFILE_TEXT = {
    "age": "age",
    "gender": "gender",
    "EducationalLevel": "education",
    "artExperience": "art_experience",
    "photographyExperience": "photography_experience",
}
PARA_PROFILE_BIG5 = {f"personality-{t}": f"big5_{t}" for t in "EANOC"}


class ParaReader(DatasetReader):
    name = "para"

    def read(self) -> RatingsTable:
        path = find_file(self.root, self.info.files["ratings"], "ratings file")
        t = read_table(path, report=self.report)
        t.require("sessionId", "imageName", "userId", "aestheticScore")
        sessions, names, users = t.col("sessionId"), t.col("imageName"), t.col("userId")
        for col, vals in (("sessionId", sessions), ("imageName", names), ("userId", users)):
            _require_ids(t, col, vals)
        scores, keep = parse_scores(t.col("aestheticScore"), t.where, "aestheticScore", self.info.scale, self.report)
        image_root = self.image_root()
        images = self._image_paths(sessions, names, image_root)
        df = pd.DataFrame({"image": images, "user": users, "score": scores, "line": t.lines})[keep]
        profiles = self._profiles(set(df["user"].unique()))
        return self.finish(df, source=path, image_root=image_root, profiles=profiles)

    def _image_paths(self, sessions: list[str], names: list[str], image_root: Path) -> list[str]:
        """``<sessionId>/<imageName>``; a flat ``imgs/<imageName>`` copy is accepted when the nested file is absent."""
        nested = [f"{s}/{n}" for s, n in zip(sessions, names)]
        if not self.check_images:
            return nested
        index = ImageIndex(image_root)
        resolved: dict[str, str] = {}
        out = []
        flat = 0
        for rel, name in zip(nested, names):
            if rel not in resolved:
                if not index.exists(rel) and index.exists(name):
                    resolved[rel] = name
                    flat += 1
                else:
                    resolved[rel] = rel
            out.append(resolved[rel])
        if flat:
            self.report.note(f"{flat} images found flat in {image_root} instead of under <sessionId>/")
        return out

    def _profiles(self, users: set[str]) -> dict[str, Profile]:
        path = find_file(self.root, self.info.files["users"], "user-info file")
        t = read_table(path, report=self.report)
        t.require("userId")
        known = set(PARA_PROFILE_TEXT) | set(PARA_PROFILE_BIG5) | {"userId"}
        extras = [h for h in t.header if h not in known]
        profiles: dict[str, Profile] = {}
        conflicts = []
        for i, row in enumerate(t.rows):
            rec = dict(zip(t.header, row))
            uid = rec["userId"]
            if not uid:
                raise SchemaError(f"{t.where(i)}: column 'userId' is empty")
            kw: dict = {field: clean_text(rec[col]) for col, field in PARA_PROFILE_TEXT.items() if col in rec}
            for col, field in PARA_PROFILE_BIG5.items():
                if col in rec:
                    kw[field] = parse_float(rec[col], t.where(i), col)
            extra = {c: rec[c] for c in extras if clean_text(rec[c]) is not None}
            prof = Profile(**kw, extra=extra)
            if uid in profiles and profiles[uid] != prof:
                conflicts.append(uid)
                continue
            profiles[uid] = prof
        self.report.drop("conflicting repeated user-info rows dropped (kept the first)", len(conflicts), conflicts)
        no_info = sorted(users - set(profiles))
        self.report.drop("users with ratings but no user-info row (empty profile)", len(no_info), no_info)
        return profiles

    def folds(self, table: RatingsTable, *, seed: int = 0, n_folds: int = 4) -> list[Fold]:
        """The 4 published folds; seeded folds (noted in the report) when the user ids do not fit them."""
        folds, source = published_or_seeded_folds(para_published_folds(), table.users, self.report,
                                                  n_folds=n_folds, seed=seed)  # fmt: skip
        self.fold_source = ("published user folds (eval/data/para_user_folds/)" if source == "published"
                            else f"{source}; the ratings' user ids do not fit PARA's published folds")  # fmt: skip
        return folds


LAPIS_TEXT = {"nationality": "nationality", "demo_gender": "gender", "demo_edu": "education",
              "demo_colorblind": "colorblind"}  # fmt: skip
LAPIS_VAIAK = tuple(f"VAIAK{i}" for i in range(1, 8))
LAPIS_VAIAK2 = tuple(f"2VAIAK{i}" for i in range(1, 5))


class LapisReader(DatasetReader):
    name = "lapis"

    def read(self) -> RatingsTable:
        path = find_file(self.root, self.info.files["ratings"], "ratings file")
        t = read_table(path, report=self.report)
        t.require("file", "participant_id", "response")
        files, users = t.col("file"), [number_text(u) or "" for u in t.col("participant_id")]
        _require_ids(t, "file", files)
        _require_ids(t, "participant_id", users)
        scores, keep = parse_scores(t.col("response"), t.where, "response", self.info.scale, self.report)
        image_root = self.image_root()
        images = self._image_paths(files, image_root)
        df = pd.DataFrame({"image": images, "user": users, "score": scores, "line": t.lines})[keep]
        profiles = self._profiles(t, users)
        return self.finish(df, source=path, image_root=image_root, profiles=profiles)

    def _image_paths(self, files: list[str], image_root: Path) -> list[str]:
        """``file`` as given if it exists under the image folder, else its base name (the flat release layout)."""
        norm = [f.replace("\\", "/").lstrip("/") for f in files]
        if not self.check_images:
            return [f.rpartition("/")[2] for f in norm]
        index = ImageIndex(image_root)
        cache: dict[str, str] = {}
        for f in set(norm):
            base = f.rpartition("/")[2]
            cache[f] = f if index.exists(f) else base
        return [cache[f] for f in norm]

    def _profiles(self, t: Table, users: list[str]) -> dict[str, Profile]:
        have = {c for c in (*LAPIS_TEXT, "age", *LAPIS_VAIAK, *LAPIS_VAIAK2) if t.has(c)}
        cols = {c: t.col(c) for c in have}
        first_row: dict[str, int] = {}
        for i, u in enumerate(users):
            first_row.setdefault(u, i)
        profiles: dict[str, Profile] = {}
        incomplete = []
        for u, i in first_row.items():
            profiles[u] = self._profile_at(t, cols, i, u, incomplete)
        self.report.drop("participants with incomplete VAIAK/2VAIAK answers (that tuple left empty)",
                         len(incomplete), incomplete)  # fmt: skip
        # the same participant must carry the same demographics on every row
        inconsistent: list[str] = []
        if have:
            frame = pd.DataFrame(cols)
            frame["_user"] = users
            n = frame.groupby("_user").nunique(dropna=False)
            inconsistent = sorted(n.index[(n > 1).any(axis=1)])
        self.report.drop("participants whose demographics differ between rows (kept the first row's)",
                         len(inconsistent), inconsistent)  # fmt: skip
        return profiles

    @staticmethod
    def _profile_at(t: Table, cols: dict[str, list[str]], i: int, user: str, incomplete: list[str]) -> Profile:
        kw: dict = {field: clean_text(cols[c][i]) for c, field in LAPIS_TEXT.items() if c in cols}
        if "age" in cols:
            kw["age"] = number_text(cols["age"][i])
        for key, names in (("vaiak", LAPIS_VAIAK), ("vaiak2", LAPIS_VAIAK2)):
            if not all(n in cols for n in names):
                continue
            vals = [parse_float(cols[n][i], t.where(i), n) for n in names]
            if all(v is not None for v in vals):
                kw[key] = tuple(float(v) for v in vals)
            elif any(v is not None for v in vals) and user not in incomplete:
                incomplete.append(user)
        return Profile(**kw)
