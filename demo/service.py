"""What the demo does, without the UI: profile from the form, zero-shot ranking, personalization, sample photos.

The Gradio layer (``demo.app``) only calls :class:`DemoService`; tests call it directly. Models load lazily on
first use and stay in memory. Library module (run the app with ``python -m demo.app``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from piaa.schema import PARA_SCALE, Profile

MAX_TEXT = 2000  # characters kept from the free-text box (pmllm applies its own token budget after this)


def parse_ratings(table, names: Sequence[str]) -> dict[int, float]:
    """Read the editable ratings table -> ``{photo index: rating}``; blank cells are skipped.

    ``table`` is a pandas DataFrame or a list of ``[name, rating]`` rows. A rating must be a number in 1..5;
    anything else raises ``ValueError`` naming the photo and the value.
    """
    rows = table.values.tolist() if hasattr(table, "values") else list(table or [])
    index = {n: i for i, n in enumerate(names)}
    out: dict[int, float] = {}
    for row in rows:
        if len(row) < 2:
            continue
        name, value = str(row[0]), row[1]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"rating for {name!r} must be a number from 1 to 5, got {value!r}") from None
        if not (PARA_SCALE.min <= v <= PARA_SCALE.max) or math.isnan(v):
            raise ValueError(f"rating for {name!r} must be between 1 and 5, got {v:g}")
        if name not in index:
            raise ValueError(f"the table names a photo that is not loaded: {name!r}")
        out[index[name]] = v
    return out


def make_profile(text: str | None, **fields: str | None) -> Profile:
    """Profile from the form: free text (control characters removed, capped) + any non-empty structured fields."""
    clean = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text or "").strip()[:MAX_TEXT] or None
    kept = {k: v.strip() for k, v in fields.items() if isinstance(v, str) and v.strip()}
    return Profile(text=clean, **kept)


def rank_order(scores: Sequence[float]) -> np.ndarray:
    """Indices best-first (stable for ties)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
