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

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class SchemaError(ValueError):
    """Malformed ratings/profile data; the message names the file (and line or field) and the problem.

    Raised for a batch of ratings, it lists every problem; ``err.problems`` (when set) holds them one per item."""

    problems: tuple[str, ...] = ()  # a batch error sets its own


@dataclass(frozen=True)
class Scale:
    min: float
    max: float
    step: float | None = None  # None = continuous

    def __post_init__(self):
        for name in ("min", "max", "step"):
            v = getattr(self, name)
            if v is None and name == "step":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise SchemaError(f"invalid scale: {name} must be a finite number, got {v!r}")
        if self.max <= self.min:
            raise SchemaError(f"invalid scale: max ({_num(self.max)}) must be greater than min ({_num(self.min)})")
        if self.step is not None and not 0 < self.step <= self.max - self.min:
            raise SchemaError(f"invalid scale: step must be > 0 and at most max - min "
                              f"({_num(self.max - self.min)}), got {_num(self.step)}")  # fmt: skip

    @property
    def range(self) -> float:
        """``max - min`` (always > 0)."""
        return float(self.max - self.min)

    def problem(self, x: float) -> str | None:
        """Why the finite number ``x`` is not a rating on this scale (outside it, or off its step), else None."""
        if x < self.min - 1e-9 or x > self.max + 1e-9:
            return f"is outside the scale [{_num(self.min)}, {_num(self.max)}]"
        if self.step:
            k = (x - self.min) / self.step
            if abs(k - round(k)) > 1e-6:
                return f"is not on the scale's step {_num(self.step)} (from {_num(self.min)})"
        return None

    def describe(self) -> str:
        """``"1-5 step 0.5"`` / ``"0-100"``: how a message states the scale."""
        tail = f" step {_num(self.step)}" if self.step else ""
        return f"{_num(self.min)}-{_num(self.max)}{tail}"

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


def _num(x: float) -> str:
    """A number as a person writes it in a message: 5 not 5.0 (nor np.float64(5.0)), 0.5 as 0.5, 3.0000001 in full
    (never rounded into a value on the scale), 1e+300 not 301 digits."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


PARA_SCALE = Scale(1.0, 5.0, 0.5)

# Field groups, used by ablations (coarse profiles) and by prompt rendering.
PARA_FIELDS = (
    "age", "gender", "education", "art_experience", "photography_experience",
    "big5_E", "big5_A", "big5_N", "big5_O", "big5_C",
)  # fmt: skip
BIG5_FIELDS = ("big5_E", "big5_A", "big5_N", "big5_O", "big5_C")
LAPIS_FIELDS = ("nationality", "colorblind", "vaiak", "vaiak2")
DEMOGRAPHIC_FIELDS = ("age", "gender", "education", "nationality")


def _profile_number(name: str, value: Any, *, missing_ok: bool = True) -> float | None:
    """A numeric profile field as a finite float; None / NaN = not given (when ``missing_ok``)."""
    if value is None and missing_ok:
        return None
    x = _as_number(value)
    if x is None:
        raise SchemaError(f"profile field {name} must be a number, got {value!r}")
    if math.isnan(x) and missing_ok and not isinstance(value, str):
        return None  # the float NaN is pandas' "missing"; the text "nan" is refused below like "inf"
    if not math.isfinite(x):
        raise SchemaError(f"profile field {name} must be a finite number, got {value!r}")
    return x


def _as_number(value: Any) -> float | None:
    """``value`` as a float if it is a real number or text that reads as one; None otherwise (booleans included)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


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

    def __post_init__(self):
        """Numeric fields become floats (a number written as text is accepted); a float NaN (pandas' missing
        value) means "not given" (None). Anything else - a word, a boolean, infinity, the text "nan" - is a
        :class:`SchemaError` naming the field and the value. Text fields are kept as given."""
        for name in BIG5_FIELDS:
            setattr(self, name, _profile_number(name, getattr(self, name)))
        for name in ("vaiak", "vaiak2"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
                raise SchemaError(f"profile field {name} must be a list of numbers, got {v!r}")
            items = tuple(_profile_number(f"{name}[{i}]", x, missing_ok=False) for i, x in enumerate(v))
            setattr(self, name, items or None)

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

    def key(self) -> str:
        """The profile as canonical JSON: equal profiles give equal keys (a cache key)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "<profile>") -> Profile:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names - {"user"}
        if unknown:
            raise SchemaError(f"{source}: unknown profile field(s) {sorted(unknown)}")
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("text") is not None and not isinstance(kw["text"], str):
            raise SchemaError(f"{source}: field text must be a string")
        if not isinstance(kw.get("extra") or {}, dict):
            raise SchemaError(f"{source}: field extra must be an object of field: value, got {kw['extra']!r}")
        kw["extra"] = {str(a): str(b) for a, b in (kw.get("extra") or {}).items()}
        try:
            return cls(**kw)
        except SchemaError as err:
            raise SchemaError(f"{source}: {err}") from None


# ------------------------------------------------------------------------------------------------ one user's ratings
MAX_LISTED_PROBLEMS = 5


def _problems_error(problems: list[str]) -> SchemaError:
    """One SchemaError for a batch: the first problem, then up to a few more and the total (``.problems`` has all)."""
    msg = problems[0]
    if len(problems) > 1:
        rest = problems[1:MAX_LISTED_PROBLEMS]
        left = len(problems) - 1 - len(rest)
        msg += f" (and {len(problems) - 1} more: " + "; ".join(rest) + (f"; ... {left} more" if left else "") + ")"
    err = SchemaError(msg)
    err.problems = tuple(problems)
    return err


def _ratings_problems(
    images: Sequence[Any],
    scores: Sequence[Any],
    scale: Scale | None,
    where: Callable[[int], str],
    users: Sequence[str] | None = None,
) -> tuple[list[str], np.ndarray, list[int], list[str]]:
    """Check every rating; returns ``(images, scores, kept positions, problems)`` (a repeat with the same score
    is kept once; ``scale=None`` checks only that scores are finite numbers)."""
    problems: list[str] = []
    out_images: list[str] = []
    out_scores: list[float] = []
    kept: list[int] = []
    first: dict[tuple[str, str], tuple[int, float]] = {}
    for i, (image, value) in enumerate(zip(images, scores)):
        name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where(i)}: image name {image!r} is empty or not a name")
            continue
        name = name.strip()
        x = _as_number(value)
        at = f"{where(i)}: image {name!r}"
        if x is None:
            what = "a boolean" if isinstance(value, (bool, np.bool_)) else "not a number"
            problems.append(f"{at}: score {value!r} is {what}")
            continue
        shown = repr(value) if isinstance(value, str) else _num(x)  # text quoted, numbers as people read them
        if not math.isfinite(x):
            problems.append(f"{at}: score {shown} is not a finite number")
            continue
        why = scale.problem(x) if scale is not None else None
        if why:
            problems.append(f"{at}: score {shown} {why}")
            continue
        key = (users[i] if users is not None else "", name)
        if key in first:
            j, y = first[key]
            if not math.isclose(x, y, rel_tol=0, abs_tol=1e-9):
                problems.append(f"{at}: score {shown} conflicts with score {_num(y)} for the same image at "
                                f"{where(j)}; keep one rating per image")  # fmt: skip
            continue
        first[key] = (i, x)
        out_images.append(name)
        out_scores.append(x)
        kept.append(i)
    return out_images, np.asarray(out_scores, dtype=np.float64), kept, problems


def validate_ratings(
    images: Sequence[str | os.PathLike],
    scores: Sequence[Any],
    scale: Scale,
    *,
    source: str = "ratings",
    lines: Sequence[int] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Check one user's ratings; returns ``(images, scores)`` with scores as float64 on ``scale``.

    Refused (one :class:`SchemaError` listing every problem, each naming ``source``, the 1-based row - or
    ``source:line`` when ``lines`` gives each rating's line in a file -, the image and the value): a score that is
    not a number (booleans included), NaN or infinite, outside ``scale`` or off its step (4.7 on a 1-5 step-0.5
    scale), an empty image name, the same image rated twice with different scores, or lengths that differ. The
    same image rated twice with the same score is one rating (the first kept). No ratings at all is an error.
    Strings that read as numbers ("4.5") are accepted.
    """
    if not isinstance(scale, Scale):
        raise SchemaError(f"{source}: scale must be a piaa.schema.Scale, got {scale!r}")
    if isinstance(scores, (str, bytes)) or not isinstance(scores, (Sequence, np.ndarray, pd.Series)):
        raise SchemaError(f"{source}: scores must be a sequence of numbers, got {scores!r}")
    images, scores = list(images), list(scores)
    if len(images) != len(scores):
        raise SchemaError(f"{source}: {len(images)} images but {len(scores)} scores; give one score per image")
    if lines is not None and len(lines) != len(images):
        raise SchemaError(f"{source}: {len(lines)} line numbers for {len(images)} ratings")
    if not images:
        raise SchemaError(f"{source}: no ratings")

    def where(i: int) -> str:
        return f"{source}:{lines[i]}" if lines is not None else f"{source}: row {i + 1}"

    out_images, out_scores, _, problems = _ratings_problems(images, scores, scale, where)
    if problems:
        raise _problems_error(problems)
    return out_images, out_scores


# Scales tried, in order, when a ratings file does not say which scale it uses.
INFERRED_SCALES = (PARA_SCALE, Scale(1.0, 10.0), Scale(0.0, 100.0))


def infer_scale(scores: Sequence[float]) -> Scale:
    """The first of 1-5 step 0.5 (PARA), 1-10, 0-100 that holds every score, else min..max of the scores.

    Raises :class:`SchemaError` when the scores are empty, not finite, or all equal outside those scales.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0 or not np.isfinite(x).all():
        raise SchemaError("cannot infer a rating scale from no scores or non-finite scores")
    for scale in INFERRED_SCALES:
        if all(scale.problem(v) is None for v in x):
            return scale
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise SchemaError(f"cannot infer a rating scale: every score is {_num(lo)}; give the scale (min, max, step)")
    return Scale(lo, hi)


@dataclass(frozen=True)
class RatingsFile:
    """A user's ratings CSV, checked: images and scores (float64 on ``scale``) in file order, one per image."""

    path: Path
    images: list[str]
    scores: np.ndarray
    scale: Scale
    scale_inferred: bool  # True when the scale was not given and was inferred from the scores (say so to the user)
    lines: list[int]  # each rating's line in the file
    users: list[str] | None = None  # the ``user`` column, when the file has one
    skipped_blank: int = 0  # rows with an empty score cell (not rated), skipped

    def for_user(self, user: str) -> RatingsFile:
        """The ratings of one ``user`` (files with a ``user`` column)."""
        if self.users is None:
            raise SchemaError(f"{self.path}: has no 'user' column")
        keep = [i for i, u in enumerate(self.users) if u == str(user)]
        if not keep:
            raise SchemaError(f"{self.path}: no ratings by user {user!r}; users: {sorted(set(self.users))}")
        return RatingsFile(self.path, [self.images[i] for i in keep], self.scores[keep], self.scale,
                           self.scale_inferred, [self.lines[i] for i in keep], [str(user)] * len(keep))  # fmt: skip


def _read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased) and ``(line, fields)`` rows of a small CSV; blank lines skipped, fields stripped."""
    if not path.is_file():
        raise SchemaError(f"{path}: no such ratings file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SchemaError(f"{path}:{line}: not UTF-8 text ({err.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    prev = 0
    try:
        for raw in reader:
            start, prev = prev + 1, reader.line_num
            fields_ = [f.strip() for f in raw]
            if not any(fields_):
                continue
            if header is None:
                header = [h.lower() for h in fields_]
                continue
            rows.append((start, fields_))
    except csv.Error as err:
        raise SchemaError(f"{path}:{reader.line_num}: cannot parse ({err})") from None
    if header is None:
        raise SchemaError(f"{path}: empty file (expected a header row 'image,score' and one row per rating)")
    return header, rows


def read_ratings_csv(path: str | os.PathLike, scale: Scale | None = None) -> RatingsFile:
    """Read a user's ratings file: a CSV with a header naming ``image`` and ``score`` (optional ``user``), one
    rating per row; other columns are ignored, an empty score cell is a photo left unrated (skipped, counted).

    ``scale=None`` infers it (:func:`infer_scale`; ``RatingsFile.scale_inferred`` is then True, so the caller can
    state it). Raises :class:`SchemaError` naming ``file:line`` and the value for every problem of
    :func:`validate_ratings` (all listed in one error), a missing header or column, or a wrong field count.
    """
    path = Path(path)
    header, rows = _read_csv_rows(path)
    missing = [c for c in ("image", "score") if c not in header]
    if missing:
        looks_like_data = len(header) >= 2 and _as_number(header[1]) is not None
        hint = " (the first line looks like a rating: add the header line 'image,score')" if looks_like_data else ""
        raise SchemaError(f"{path}:1: missing column(s) {missing}; the header has {header}{hint}")
    col = {name: header.index(name) for name in ("image", "score", "user") if name in header}
    problems, kept_rows, skipped = [], [], 0
    for line, f in rows:
        if len(f) <= max(col.values()) or any(f[len(header) :]):
            problems.append(f"{path}:{line}: expected {len(header)} fields ({','.join(header)}), got {len(f)}")
        elif f[col["score"]] == "":
            skipped += 1
        else:
            kept_rows.append((line, f))
    if problems:
        raise _problems_error(problems)
    if not kept_rows:
        raise SchemaError(f"{path}: no ratings (every score cell is empty)" if rows else f"{path}: no ratings")
    lines = [line for line, _ in kept_rows]
    images = [f[col["image"]] for _, f in kept_rows]
    raw = [f[col["score"]] for _, f in kept_rows]
    users = [f[col["user"]] for _, f in kept_rows] if "user" in col else None

    def where(i: int) -> str:
        return f"{path}:{lines[i]}"

    inferred = scale is None
    if inferred:  # numbers first, so the scale is inferred from readable scores only
        _, nums, _, problems = _ratings_problems(images, raw, None, where, users)
        if problems:
            raise _problems_error(problems)
        scale = infer_scale(nums)
    out_images, out_scores, kept, problems = _ratings_problems(images, raw, scale, where, users)
    if problems:
        raise _problems_error(problems)
    return RatingsFile(path, out_images, out_scores, scale, inferred, [lines[i] for i in kept],
                       [users[i] for i in kept] if users is not None else None, skipped)  # fmt: skip


def check_table_scores(df: pd.DataFrame, raw: np.ndarray, scale: Scale, where: Callable[[int], str]) -> None:
    """Every ``df["score"]`` finite and on ``scale``'s range, else a SchemaError at ``where(position)`` (position
    0-based; ``where`` turns it into "row N" or "file:line") naming the image, the user and the value as given."""
    scores = df["score"].to_numpy(dtype=np.float64)

    def at(pos: int) -> str:
        return f"{where(pos)} (image {df['image'].iat[pos]!r}, user {df['user'].iat[pos]!r})"

    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        more = f"; {len(bad)} such ratings in all" if len(bad) > 1 else ""
        raise SchemaError(f"{at(bad[0])}: score {raw[bad[0]]!r} is missing or not a finite number{more}")
    out = np.flatnonzero((scores < scale.min - 1e-9) | (scores > scale.max + 1e-9))
    if len(out):
        more = f"; {len(out)} such ratings in all" if len(out) > 1 else ""
        raise SchemaError(f"{at(out[0])}: score {_num(scores[out[0]])} is outside the scale "
                          f"[{_num(scale.min)}, {_num(scale.max)}]{more}")  # fmt: skip


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
        raw = df["score"].to_numpy()
        df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
        check_table_scores(df, raw, self.scale, lambda pos: f"{self.name}: row {pos + 1}")
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
        if set(cls.COLUMNS) <= set(df.columns):  # name bad scores by file:line (header = line 1)
            checked = df.assign(image=df["image"].astype(str), user=df["user"].astype(str),
                                score=pd.to_numeric(df["score"], errors="coerce"))  # fmt: skip
            check_table_scores(
                checked, df["score"].to_numpy(), scale, lambda pos: f"{folder / 'ratings.csv'}:{pos + 2}"
            )
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
