"""One ratings schema for every benchmark, the simulated world, training and the demo.

* :class:`Scale` - a rating scale (min, max, step), e.g. PARA 1-5 step 0.5, LAPIS 0-100, AVA 1-10.
* :class:`Profile` - what a user told us about themselves: optional PARA fields, optional LAPIS fields, optional
  free text. Any subset may be missing (a coarse profile); an empty profile is legal.
* :class:`RatingsTable` - a ``pandas.DataFrame`` with columns ``image`` (path relative to ``image_root``),
  ``user`` (str) and ``score`` (float, on ``scale``), plus the users' profiles. Saved as a folder:
  ``ratings.csv``, ``profiles.jsonl`` and ``meta.json``.

Library module, no entry point.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class SchemaError(ValueError):
    """Malformed ratings/profile data; the message names the file (and line or field) and the problem."""


@dataclass(frozen=True)
class Scale:
    min: float
    max: float
    step: float | None = None  # None = continuous

    def __post_init__(self):
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.max <= self.min:
            raise SchemaError(f"invalid scale: min={self.min} max={self.max}")

    def normalize(self, x):
        """Map scores to [0, 1]."""
        return (np.asarray(x, dtype=np.float64) - self.min) / (self.max - self.min)

    def denormalize(self, u):
        """Map [0, 1] back to the scale."""
        return self.min + np.asarray(u, dtype=np.float64) * (self.max - self.min)

    def convert(self, x, to: Scale):
        return to.denormalize(self.normalize(x))

    def quantize(self, x):
        """Clip to the range and round to the step (if any)."""
        x = np.clip(np.asarray(x, dtype=np.float64), self.min, self.max)
        if self.step:
            x = self.min + np.round((x - self.min) / self.step) * self.step
        return x

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scale:
        return cls(float(d["min"]), float(d["max"]), None if d.get("step") is None else float(d["step"]))


PARA_SCALE = Scale(1.0, 5.0, 0.5)

# Field groups, used by ablations (coarse profiles) and by prompt rendering.
PARA_FIELDS = (
    "age", "gender", "education", "art_experience", "photography_experience",
    "big5_E", "big5_A", "big5_N", "big5_O", "big5_C",
)  # fmt: skip
LAPIS_FIELDS = ("nationality", "colorblind", "vaiak", "vaiak2")
DEMOGRAPHIC_FIELDS = ("age", "gender", "education", "nationality")


@dataclass
class Profile:
    """A user's self-description. Every field is optional; ``text`` is free text in the user's words."""

    # PARA (PARA-UserInfo.csv) and LAPIS demographics
    age: str | None = None  # as the dataset gives it: a bin ("22-25") or a number as text
    gender: str | None = None
    education: str | None = None
    art_experience: str | None = None
    photography_experience: str | None = None
    big5_E: float | None = None  # PARA personality traits, dataset's own 1..10-ish values
    big5_A: float | None = None
    big5_N: float | None = None
    big5_O: float | None = None
    big5_C: float | None = None
    # LAPIS
    nationality: str | None = None
    colorblind: str | None = None
    vaiak: tuple[float, ...] | None = None  # VAIAK1..7 (art interest/knowledge)
    vaiak2: tuple[float, ...] | None = None  # 2VAIAK1..4
    # free text ("I love warm, colourful pictures of animals; blurry shots annoy me")
    text: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # any other dataset-specific field, kept verbatim

    def structured(self) -> dict[str, Any]:
        """The non-empty structured fields (everything except ``text`` and empty ``extra``)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("text", "extra") or v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            out[f.name] = v
        out.update(self.extra)
        return out

    def is_empty(self) -> bool:
        return not self.structured() and not (self.text and self.text.strip())

    def subset(self, keep: Iterable[str]) -> Profile:
        """A coarser copy that keeps only the named fields (use ``"text"`` for the free text)."""
        keep = set(keep)
        d = {f.name: (getattr(self, f.name) if f.name in keep else None) for f in fields(self) if f.name != "extra"}
        return Profile(**d, extra={k: v for k, v in self.extra.items() if k in keep})

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        for k in ("vaiak", "vaiak2"):
            if k in d:
                d[k] = list(d[k])
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "<profile>") -> Profile:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names - {"user"}
        if unknown:
            raise SchemaError(f"{source}: unknown profile field(s) {sorted(unknown)}")
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("vaiak", "vaiak2"):
            if kw.get(k) is not None:
                kw[k] = tuple(float(x) for x in kw[k])
        for k in ("big5_E", "big5_A", "big5_N", "big5_O", "big5_C"):
            if kw.get(k) is not None:
                try:
                    kw[k] = float(kw[k])
                except (TypeError, ValueError):
                    raise SchemaError(f"{source}: field {k} must be a number, got {kw[k]!r}") from None
        if kw.get("text") is not None and not isinstance(kw["text"], str):
            raise SchemaError(f"{source}: field text must be a string")
        kw["extra"] = {str(a): str(b) for a, b in (kw.get("extra") or {}).items()}
        return cls(**kw)


@dataclass
class RatingsTable:
    """Ratings ``(image, user, score)`` on one ``scale`` + the users' profiles + where the images live."""

    ratings: pd.DataFrame
    scale: Scale
    profiles: dict[str, Profile] = field(default_factory=dict)
    image_root: Path = Path(".")
    name: str = "ratings"

    COLUMNS = ("image", "user", "score")

    def __post_init__(self):
        missing = [c for c in self.COLUMNS if c not in self.ratings.columns]
        if missing:
            raise SchemaError(f"{self.name}: ratings table lacks column(s) {missing}")
        df = self.ratings.copy()
        df["image"] = df["image"].astype(str)
        df["user"] = df["user"].astype(str)
        df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
        bad = df.index[~np.isfinite(df["score"].to_numpy())]
        if len(bad):
            raise SchemaError(f"{self.name}: {len(bad)} rating(s) with a missing/NaN score, first at row {bad[0]}")
        out = (df["score"] < self.scale.min - 1e-9) | (df["score"] > self.scale.max + 1e-9)
        if out.any():
            i = df.index[out][0]
            raise SchemaError(
                f"{self.name}: score {df.at[i, 'score']} at row {i} is outside the scale "
                f"[{self.scale.min}, {self.scale.max}]"
            )
        self.ratings = df.reset_index(drop=True)
        self.image_root = Path(self.image_root)

    # ---------------------------------------------------------------- views
    @property
    def users(self) -> list[str]:
        return sorted(self.ratings["user"].unique())

    @property
    def images(self) -> list[str]:
        return sorted(self.ratings["image"].unique())

    def image_path(self, image: str) -> Path:
        return self.image_root / image

    def profile(self, user: str) -> Profile:
        return self.profiles.get(user, Profile())

    def for_users(self, users: Iterable[str]) -> RatingsTable:
        users = set(map(str, users))
        df = self.ratings[self.ratings["user"].isin(users)]
        return RatingsTable(df, self.scale, {u: p for u, p in self.profiles.items() if u in users},
                            self.image_root, self.name)  # fmt: skip

    def user_ratings(self, user: str) -> pd.DataFrame:
        return self.ratings[self.ratings["user"] == str(user)]

    def mean_scores(self) -> pd.Series:
        """Mean score per image over all users in the table (the 'generic aesthetic' target)."""
        return self.ratings.groupby("image")["score"].mean()

    # ---------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.ratings.to_csv(folder / "ratings.csv", index=False)
        with open(folder / "profiles.jsonl", "w", encoding="utf-8") as fh:
            for user in sorted(self.profiles):
                fh.write(json.dumps({"user": user, **self.profiles[user].to_dict()}, ensure_ascii=False) + "\n")
        try:
            root = str(self.image_root.resolve().relative_to(folder.resolve()))
        except ValueError:
            root = str(self.image_root.resolve())
        meta = {"name": self.name, "scale": self.scale.to_dict(), "image_root": root}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RatingsTable:
        folder = Path(folder)
        for fname in ("ratings.csv", "meta.json"):
            if not (folder / fname).is_file():
                raise SchemaError(f"{folder / fname}: missing (a ratings folder holds ratings.csv and meta.json)")
        try:
            meta = json.loads((folder / "meta.json").read_text())
            scale = Scale.from_dict(meta["scale"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise SchemaError(f"{folder / 'meta.json'}: malformed ({err})") from None
        try:
            df = pd.read_csv(folder / "ratings.csv", dtype={"image": str, "user": str})
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise SchemaError(f"{folder / 'ratings.csv'}: cannot parse ({err})") from None
        profiles: dict[str, Profile] = {}
        pfile = folder / "profiles.jsonl"
        if pfile.is_file():
            for lineno, line in enumerate(pfile.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                src = f"{pfile}:{lineno}"
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as err:
                    raise SchemaError(f"{src}: not valid JSON ({err.msg})") from None
                if "user" not in d:
                    raise SchemaError(f"{src}: profile has no 'user' field")
                profiles[str(d["user"])] = Profile.from_dict(d, source=src)
        root = Path(meta.get("image_root", "."))
        return cls(df, scale, profiles, root if root.is_absolute() else folder / root, meta.get("name", folder.name))
