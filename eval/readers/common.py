"""Shared parsing for the native benchmark readers: robust text/CSV reading with line numbers, score checks,
image look-up, duplicate handling and the drop report.

Rules every reader follows (the project's "bad input" rule):

* a malformed file raises :class:`piaa.schema.SchemaError` naming the file, the line and the problem;
* BOMs, CRLF line endings, stray whitespace around fields and quoted fields are accepted;
* rows are never dropped silently: every drop is counted in a :class:`ReadReport` and announced with a
  :class:`ReaderWarning` that carries the counts.

Library module, no entry point.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from piaa.schema import Scale, SchemaError

MISSING_TOKENS = {"", "nan", "NaN", "NA", "N/A", "null", "None"}


class ReaderWarning(UserWarning):
    """Rows were dropped or repaired while reading a benchmark; the message gives the counts."""


@dataclass
class ReadReport:
    """What a reader dropped or repaired, with counts; kept in ``Benchmark.meta['read_report']``."""

    dataset: str
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, what: str, n: int, examples: list[str] | tuple[str, ...] = ()) -> None:
        """Record ``n`` dropped items of kind ``what`` and warn (no-op when ``n == 0``)."""
        if n <= 0:
            return
        self.counts[what] += int(n)
        ex = [str(e) for e in list(examples)[:3]]
        if ex:
            self.examples.setdefault(what, ex)
        tail = f" (e.g. {', '.join(ex)})" if ex else ""
        warnings.warn(f"{self.dataset}: {n} {what}{tail}", ReaderWarning, stacklevel=3)

    def note(self, text: str) -> None:
        self.notes.append(text)
        warnings.warn(f"{self.dataset}: {text}", ReaderWarning, stacklevel=3)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "dropped": dict(self.counts), "examples": self.examples,
                "notes": list(self.notes)}  # fmt: skip


# ------------------------------------------------------------------------------------------------ files
def find_file(root: Path, candidates: tuple[str, ...], what: str, *, required: bool = True) -> Path | None:
    """The first candidate (relative to ``root``) that exists, else a SchemaError listing what was expected."""
    check_root(root)
    for cand in candidates:
        p = root / cand
        if p.exists():
            return p
    if not required:
        return None
    raise SchemaError(f"{root}: missing {what}: expected {' or '.join(repr(c) for c in candidates)}")


def find_dir(root: Path, candidates: tuple[str, ...], what: str, *, required: bool = True) -> Path | None:
    check_root(root)
    for cand in candidates:
        p = root / cand
        if p.is_dir():
            return p
    if not required:
        return None
    raise SchemaError(f"{root}: missing {what} folder: expected {' or '.join(repr(c + '/') for c in candidates)}")


def check_root(root: Path) -> None:
    if not root.is_dir():
        raise SchemaError(f"{root}: dataset folder does not exist (pass --root the folder that holds the dataset)")


def read_text(path: Path, report: ReadReport | None = None) -> str:
    """Decode a text file: UTF-8 with or without BOM, UTF-16 with BOM, else cp1252 (noted in the report)."""
    if not path.is_file():
        raise SchemaError(f"{path}: missing file")
    data = path.read_bytes()
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SchemaError(f"{path}: binary file (NUL bytes), expected text")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise SchemaError(f"{path}:{line}: not UTF-8 text ({err.reason})") from None
        if report is not None:
            report.note(f"{path.name} is not UTF-8 (first bad byte on line {line}); decoded as cp1252")
        return text


@dataclass
class Table:
    """A parsed delimited file: stripped header names, stripped fields and each row's physical line number."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, name: str) -> int | None:
        if name in self.header:
            return self.header.index(name)
        low = [h.lower() for h in self.header]
        return low.index(name.lower()) if name.lower() in low else None

    def has(self, name: str) -> bool:
        return self.index(name) is not None

    def require(self, *names: str) -> None:
        missing = [n for n in names if not self.has(n)]
        if missing:
            hint = ""
            if len(self.header) == 1 and any(d in self.header[0] for d in ";\t|"):
                hint = " (the header looks separated by ';', tab or '|', not ',')"
            raise SchemaError(f"{self.path}:1: missing column(s) {missing}; the header has {self.header}{hint}")

    def col(self, name: str) -> list[str]:
        i = self.index(name)
        if i is None:
            self.require(name)
        return [r[i] for r in self.rows]

    def where(self, row: int) -> str:
        return f"{self.path}:{self.lines[row]}"


def read_table(
    path: Path, *, delimiter: str = ",", report: ReadReport | None = None, text: str | None = None
) -> Table:
    """Parse a delimited file with a header row.

    Quoted fields, CRLF and whitespace after the delimiter (FLICKR-AES's ``", "``) are handled by :mod:`csv`;
    every field is stripped. A row with a different number of fields than the header is an error, except that
    trailing empty fields (a trailing delimiter) are tolerated.
    """
    text = read_text(path, report) if text is None else text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    prev = 0
    try:
        for raw in reader:
            start = prev + 1
            prev = reader.line_num
            if not any(raw) or (len(raw) == 1 and not raw[0].strip()):
                continue
            fields = list(map(str.strip, raw))
            if header is None:
                while fields and not fields[-1]:
                    fields.pop()
                header = fields
                dup = [h for h, c in Counter(header).items() if c > 1]
                if dup:
                    raise SchemaError(f"{path}:{start}: duplicate column name(s) {dup}")
                continue
            if len(fields) != len(header):
                if len(fields) > len(header) and not any(fields[len(header) :]):
                    fields = fields[: len(header)]
                else:
                    raise SchemaError(
                        f"{path}:{start}: wrong field count: expected {len(header)} ({', '.join(header)}), "
                        f"got {len(fields)}"
                    )
            rows.append(fields)
            lines.append(start)
    except csv.Error as err:
        raise SchemaError(f"{path}:{reader.line_num}: cannot parse ({err})") from None
    if header is None:
        raise SchemaError(f"{path}: empty file (expected a header row)")
    return Table(path, header, rows, lines)


def read_whitespace_lines(path: Path, n_fields: int | tuple[int, ...], report: ReadReport | None = None):
    """Yield ``(line_number, fields)`` for a whitespace-separated file without header; checks the field count."""
    allowed = (n_fields,) if isinstance(n_fields, int) else tuple(n_fields)
    for lineno, line in enumerate(read_text(path, report).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in allowed:
            want = " or ".join(map(str, allowed))
            raise SchemaError(f"{path}:{lineno}: wrong field count: expected {want} whitespace-separated, "
                              f"got {len(fields)}")  # fmt: skip
        yield lineno, fields


# ------------------------------------------------------------------------------------------------ values
def parse_scores(
    values: list[str],
    where,
    column: str,
    scale: Scale,
    report: ReadReport,
    *,
    check_step: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Convert score strings to floats. Returns ``(scores, keep)``.

    Empty/NA cells are dropped and counted; text that is not a number, a non-finite value, a score outside
    ``scale`` or (if ``check_step``) off the scale's step grid is a SchemaError at ``where(row)`` (a callable
    giving "file:line").
    """
    s = pd.Series(values, dtype=object).astype(str).str.strip()
    empty = s.isin(MISSING_TOKENS).to_numpy()
    num = pd.to_numeric(s.where(~empty, None), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~empty & ~np.isfinite(num))
    if len(bad):
        i = bad[0]
        raise SchemaError(f"{where(i)}: column {column!r}: score {s.iloc[i]!r} is not a finite number")
    keep = ~empty
    lo, hi = scale.min - 1e-9, scale.max + 1e-9
    out = np.flatnonzero(keep & ((num < lo) | (num > hi)))
    if len(out):
        i = out[0]
        raise SchemaError(f"{where(i)}: column {column!r}: score {s.iloc[i]} is outside the scale "
                          f"[{_fmt(scale.min)}, {_fmt(scale.max)}]")  # fmt: skip
    if check_step and scale.step:
        k = (num - scale.min) / scale.step
        off = np.flatnonzero(keep & (np.abs(k - np.round(k)) > 1e-6))
        if len(off):
            i = off[0]
            raise SchemaError(f"{where(i)}: column {column!r}: score {s.iloc[i]} is not on the scale's step "
                              f"{_fmt(scale.step)} (from {_fmt(scale.min)})")  # fmt: skip
    report.drop(f"ratings with an empty {column!r} dropped", int(empty.sum()),
                [where(i) for i in np.flatnonzero(empty)[:3]])  # fmt: skip
    return num, keep


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse_float(value: str, where: str, column: str) -> float | None:
    """A profile number: None when empty/NA, a SchemaError when not a number."""
    v = value.strip()
    if v in MISSING_TOKENS:
        return None
    try:
        x = float(v)
    except ValueError:
        raise SchemaError(f"{where}: column {column!r}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise SchemaError(f"{where}: column {column!r}: {value!r} is not a finite number")
    return x


def clean_text(value: str) -> str | None:
    v = value.strip()
    return None if v in MISSING_TOKENS else v


def number_text(value: str) -> str | None:
    """A number kept as text the way a person would write it ("34.0" -> "34")."""
    v = clean_text(value)
    if v is None:
        return None
    try:
        x = float(v)
    except ValueError:
        return v
    return str(int(x)) if math.isfinite(x) and x.is_integer() else v


_TAG = re.compile(r"<[^>]+>")


def strip_tags(value: str) -> str:
    return _TAG.sub("", value).strip()


# ------------------------------------------------------------------------------------------------ images
class ImageIndex:
    """Existence checks against folder listings (one ``scandir`` per folder, not one ``stat`` per image)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._dirs: dict[str, set[str] | None] = {}

    def _listing(self, rel_dir: str) -> set[str] | None:
        if rel_dir not in self._dirs:
            d = self.root / rel_dir if rel_dir else self.root
            try:
                with os.scandir(d) as it:
                    self._dirs[rel_dir] = {e.name for e in it if not e.is_dir()}
            except (FileNotFoundError, NotADirectoryError):
                self._dirs[rel_dir] = None
        return self._dirs[rel_dir]

    def exists(self, rel: str) -> bool:
        head, _, name = rel.replace("\\", "/").rpartition("/")
        listing = self._listing(head)
        return listing is not None and name in listing


def drop_missing_images(df: pd.DataFrame, index: ImageIndex, report: ReadReport, source: Path) -> pd.DataFrame:
    """Drop (and count) ratings whose image file is absent; all absent is an error (wrong --root?)."""
    uniq = df["image"].unique()
    present = {im for im in uniq if index.exists(im)}
    missing = [im for im in uniq if im not in present]
    if uniq.size and not present:
        raise SchemaError(f"{source}: none of the {len(uniq)} images it names exist under {index.root} "
                          f"(e.g. {uniq[0]!r}); is --root the dataset folder?")  # fmt: skip
    if missing:
        mask = df["image"].isin(present)
        report.drop(f"ratings dropped because their image file is missing under {index.root} "
                    f"({len(missing)} images)", int((~mask).sum()), sorted(missing)[:3])  # fmt: skip
        df = df[mask]
    return df


def drop_duplicates(df: pd.DataFrame, report: ReadReport, key: tuple[str, ...] = ("user", "image")) -> pd.DataFrame:
    """Keep the first rating of each (user, image); count exact repeats and conflicting repeats separately."""
    dup = df.duplicated(list(key), keep="first")
    if not dup.any():
        return df
    first = df[~dup].set_index(list(key))["score"]
    rep = df[dup]
    firsts = first.reindex(pd.MultiIndex.from_frame(rep[list(key)])).to_numpy()
    same = np.isclose(rep["score"].to_numpy(), firsts)
    ex = [f"{'/'.join(str(r[k]) for k in key)} at line {r['line']}" for _, r in rep.head(3).iterrows()] \
        if "line" in rep else []  # fmt: skip
    report.drop("repeated ratings of the same image by the same user dropped (same score)", int(same.sum()), ex)
    report.drop("repeated ratings with a different score dropped (kept the first)", int((~same).sum()), ex)
    return df[~dup]


def finalize(df: pd.DataFrame) -> pd.DataFrame:
    """The ratings columns in schema order, a clean index."""
    return df[["image", "user", "score"]].reset_index(drop=True)
