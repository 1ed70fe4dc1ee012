"""The one scoring contract every scorer a user touches follows (pmllm, taskvec, the ensemble)::

    result = model.score(images, profile=..., user=..., scale=..., on_error="skip")
    result.scores            # (N,) on result.scale; NaN where an image could not be scored
    result.errors            # {index: reason} for the images that could not be scored
    result.details           # what the model has besides the score (level probabilities, alpha, blend weight)
    result.ranking()         # indices of the scored images, best first
    result.rows()            # one dict per input, best first then failures: image, score, rank, error

``images`` are paths or PIL images; ``profile`` is a :class:`piaa.schema.Profile` (who they are for, in words and
fields), ``user`` a saved user (ratings model) where the scorer has one; ``scale`` is the :class:`Scale` the scores
are returned on (default: the scale the model or user was fitted on). ``on_error="skip"`` (the default for batch
calls) scores the good images and reports each bad one with its reason; ``"raise"`` raises on the first.
Library module, no entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from piaa.schema import Scale

ON_ERROR = ("skip", "raise")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def image_name(image: Any) -> str:
    """How an input is named in results: its path, or ``<PIL image WxH>``."""
    if isinstance(image, (str, Path)):
        return str(image)
    size = getattr(image, "size", None)
    return f"<image {size[0]}x{size[1]}>" if size else repr(image)


@dataclass
class ScoreResult:
    """Scores of a batch of images on ``scale`` (see the module docstring)."""

    scores: np.ndarray
    scale: Scale
    images: list[str]
    errors: dict[int, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if len(self.scores) != len(self.images):
            raise ValueError(f"{len(self.scores)} scores for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the images that were scored."""
        mask = np.ones(len(self.images), dtype=bool)
        mask[list(self.errors)] = False
        return mask

    def ranking(self) -> list[int]:
        """Indices of the scored images, best first (ties keep input order)."""
        good = np.flatnonzero(self.ok)
        return [int(i) for i in good[np.argsort(-self.scores[good], kind="stable")]]

    def rows(self) -> list[dict[str, Any]]:
        """One row per input, best first, then the failures: ``{image, score, rank}`` or ``{image, error}``."""
        out = [{"image": self.images[i], "score": float(self.scores[i]), "rank": r + 1, "error": None}
               for r, i in enumerate(self.ranking())]  # fmt: skip
        out += [{"image": self.images[i], "score": None, "rank": None, "error": self.errors[i]}
                for i in sorted(self.errors)]  # fmt: skip
        return out


def assemble(n: int, good: list[int], values: np.ndarray, scale: Scale, images: list, errors: dict[int, str],
             details: dict | None = None) -> ScoreResult:  # fmt: skip
    """A :class:`ScoreResult` for ``n`` inputs from the ``values`` of the ``good`` ones (NaN elsewhere)."""
    scores = np.full(n, np.nan)
    scores[good] = values
    return ScoreResult(scores, scale, [image_name(im) for im in images], dict(errors), dict(details or {}))


def content_key(image: Any) -> str | None:
    """sha256 of an image file's bytes (how a saved user recognises a photo they rated); None if unreadable."""
    import hashlib

    try:
        return hashlib.sha256(Path(image).read_bytes()).hexdigest() if isinstance(image, (str, Path)) else None
    except OSError:
        return None


def keep_ratings(scores: np.ndarray, rated: dict[int, float], scale: Scale) -> np.ndarray:
    """What a user is shown after rating some photos: a rated photo shows its own rating, so a photo rated 5 is
    always above one rated 1; an unrated photo shows the model's score mapped onto the ratings by a monotone
    (isotonic) fit of the ratings on the model's scores of the rated photos, so it is placed among the rated ones
    by the model. Photos the model places beyond every rated one go on towards the scale's end (at most half of
    the way, by their distance in units of the rated photos' span of model scores, so a photo's value does not
    depend on the other unrated photos) instead of all showing the lowest or highest rating. Where the model's
    order contradicts every rating, the fit is flat (the unrated photos sit at the user's mean rating). A rated
    and an unrated photo on the same value: the rated one first.
    """
    from sklearn.isotonic import IsotonicRegression

    scores = np.asarray(scores, dtype=np.float64)
    out = scores.copy()
    idx = sorted(rated)
    if not idx:
        return out
    y = np.array([rated[i] for i in idx], dtype=np.float64)
    unrated = np.setdiff1d(np.arange(len(scores)), idx)
    if len(unrated):
        fit = IsotonicRegression(out_of_bounds="clip").fit(scores[idx], y)
        s_un = scores[unrated]
        shown = fit.predict(s_un)
        lo, hi = scores[idx].min(), scores[idx].max()
        y_lo, y_hi = fit.predict([lo, hi])
        if y_hi > y_lo and hi > lo:  # the model agrees with the ratings: beyond them, go on towards the scale's ends
            below, above = s_un < lo, s_un > hi  # distance in units of the rated photos' span of model scores
            shown[below] -= 0.5 * (y_lo - scale.min) * -np.expm1(-(lo - s_un[below]) / (hi - lo))
            shown[above] += 0.5 * (scale.max - y_hi) * -np.expm1(-(s_un[above] - hi) / (hi - lo))
        # a tiny model-order tiebreak inside each step, kept below the scale's resolution and below rated photos
        tie = 1e-6 * (s_un - scores.min()) / (np.ptp(scores) or 1.0)
        out[unrated] = np.clip(shown - 2e-6 + tie, scale.min, scale.max)
    out[idx] = y
    return out
