"""What the demo does, without the UI: profile from the form, zero-shot ranking, personalization, sample photos.

The Gradio layer (``demo.app``) only calls :class:`DemoService`; tests call it directly. Models load lazily on
first use and stay in memory. Library module (run the app with ``python -m demo.app``).
"""

from __future__ import annotations

import math
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
    """Profile from the form: free text (cleaned and capped by pmllm's sanitiser) + any non-empty structured fields."""
    from pmllm.constants import TRUNCATION_MARK
    from pmllm.profile import sanitize

    clean = sanitize(text or "", MAX_TEXT - len(TRUNCATION_MARK)) or None
    kept = {k: v.strip() for k, v in fields.items() if isinstance(v, str) and v.strip()}
    return Profile(text=clean, **kept)


class DemoService:
    """Zero-shot ranking (pmllm) and personalization (taskvec + the ensembler) for one demo session."""

    def __init__(self, pmllm_dir: str | Path | None = None, taskvec_dir: str | Path | None = None):
        self.pmllm_dir, self.taskvec_dir = pmllm_dir, taskvec_dir
        self._pmllm = None
        self._taskvec = None
        self._feats: dict[str, object] = {}  # image path -> taskvec trunk features

    make_profile = staticmethod(make_profile)

    @staticmethod
    def sample_photos() -> list[Path]:
        from piaa.photos import sample_photos

        return sample_photos()

    def pmllm(self):
        if self._pmllm is None:
            from pmllm.model import PMLLM

            self._pmllm = PMLLM.from_pretrained(self.pmllm_dir)
        return self._pmllm

    def taskvec(self):
        if self._taskvec is None:
            from taskvec.model import PersonalizedScorer

            self._taskvec = PersonalizedScorer.from_pretrained(self.taskvec_dir)
        return self._taskvec

    def zero_shot(self, profile: Profile, paths: Sequence[str | Path]) -> np.ndarray:
        """Predicted score (1-5) of every photo for the user described by ``profile`` (all must be readable)."""
        return np.asarray(self.pmllm().score([Path(p) for p in paths], profile=profile, scale=PARA_SCALE,
                                             on_error="raise").scores)  # fmt: skip

    def rank(self, profile: Profile, paths: Sequence[str | Path]) -> tuple[list[str], np.ndarray, dict[str, str]]:
        """Zero-shot scores of the readable photos: ``(kept paths, their 1-5 scores, {rejected file: reason})``."""
        res = self.pmllm().score([Path(p) for p in paths], profile=profile, scale=PARA_SCALE, on_error="skip")
        kept = [str(p) for i, p in enumerate(paths) if i not in res.errors]
        rejected = {Path(paths[i]).name: why.split(": ", 1)[-1] for i, why in res.errors.items()}
        return kept, res.scores[res.ok], rejected

    def read_taste(self, profile: Profile) -> list[str]:
        """What the zero-shot model read from the free text, one line per clause (empty if it reads no text)."""
        model = self.pmllm()
        if model.config.personal_input != "fields+text" or not profile.text:
            return []
        return model.reader.read(model.prompt_text(profile)).summary()

    def _features(self, paths: Sequence[str | Path]):
        import torch

        missing = [str(p) for p in paths if str(p) not in self._feats]
        if missing:
            for p, f in zip(missing, self.taskvec().features(missing)):
                self._feats[p] = f
        return torch.stack([self._feats[str(p)] for p in paths])

    def few_shot(self, paths: Sequence[str | Path], rated: dict[int, float]) -> tuple[np.ndarray, float]:
        """taskvec: fit merging coefficients on ``rated`` ({photo index: 1-5}); (scores of all photos, fit seconds)."""
        idx = sorted(rated)
        tv = self.taskvec()
        feats = self._features(paths)
        y = np.array([rated[i] for i in idx], dtype=np.float64)
        user = tv.personalize("demo-user", feats[idx], y, scale=PARA_SCALE, recipe="fast")
        return tv.score_features(feats, user), float(user.config.seconds)

    def personalize(
        self, paths: Sequence[str | Path], rated: dict[int, float], zero_shot: np.ndarray
    ) -> tuple[np.ndarray, str]:
        """Fit the user's task-vector coefficients on ``rated`` ({photo index: 1-5}), blend with ``zero_shot``.

        Returns (blended score per photo on 1-5 for display, a one-line explanation).
        """
        from eval.ensemble import DEFAULT_K0, blend, blend_weight

        idx = sorted(rated)
        y = np.array([rated[i] for i in idx], dtype=np.float64)
        if np.ptp(y) == 0:
            return (
                zero_shot,
                "All your ratings are equal, so they say nothing about order: kept the zero-shot ranking.",
            )
        few, seconds = self.few_shot(paths, rated)
        z = blend(zero_shot, few, k=len(idx), k0=DEFAULT_K0)
        # show the blended order on the familiar 1-5 range: the zero-shot scores, re-assigned by blended rank
        display = np.empty(len(z))
        display[np.argsort(z, kind="stable")] = np.sort(np.asarray(zero_shot, dtype=np.float64))
        w = blend_weight(len(idx), DEFAULT_K0)
        info = (
            f"Personalized with {len(idx)} rating(s): {100 * w:.0f}% weight on your ratings (task vectors), "
            f"{100 * (1 - w):.0f}% on your description. Fit took {seconds:.2f} s."
        )
        return display, info


def rank_order(scores: Sequence[float]) -> np.ndarray:
    """Indices best-first (stable for ties)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
