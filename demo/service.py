"""What the demo does, without the UI: profile from the form, zero-shot ranking, personalization, sample photos.

The models behind every session: :class:`DemoService` (shared by all sessions; each model used by one thread at a
time). What a session does with them and the user store is :mod:`demo.session`; the Gradio layer (``demo.app``)
only calls that. Models load lazily on first use (``warm()`` loads them up front) and stay in memory. Library
module (run the app with ``python -m demo.app``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from piaa.schema import PARA_SCALE, Profile, validate_ratings
from piaa.scoring import keep_ratings

MAX_TEXT = 2000  # characters kept from the free-text box (pmllm applies its own token budget after this)


def parse_ratings(table, names: Sequence[str]) -> dict[int, float]:
    """Read the ratings table -> ``{photo index: rating}``; blank cells are skipped.

    ``table`` is a pandas DataFrame or a list of ``[name, rating]`` rows. The ratings are checked by
    :func:`piaa.schema.validate_ratings` on the 1-5 step-0.5 scale (4.7, ``True``, "great", 7 or NaN-like text are
    refused, naming the photo and the value); a name that is not one of ``names`` is refused too. Raises
    ``ValueError`` (:class:`piaa.schema.SchemaError`) with a message for the page.
    """
    rows = table.values.tolist() if hasattr(table, "values") else list(table or [])
    index = {n: i for i, n in enumerate(names)}
    given: list[tuple[str, object]] = []
    for row in rows:
        if len(row) < 2:
            continue
        name, value = str(row[0]), row[1]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        if name not in index:
            raise ValueError(f"the table names a photo that is not one of yours: {name!r}")
        given.append((name, value))
    if not given:
        return {}
    shown, values = validate_ratings([n for n, _ in given], [v for _, v in given], PARA_SCALE, source="your ratings")
    return {index[n]: float(v) for n, v in zip(shown, values)}


def make_profile(text: str | None, **fields: str | None) -> Profile:
    """Profile from the form: free text (cleaned and capped by pmllm's sanitiser) + any non-empty structured fields."""
    from pmllm.constants import TRUNCATION_MARK
    from pmllm.profile import sanitize

    clean = sanitize(text or "", MAX_TEXT - len(TRUNCATION_MARK)) or None
    kept = {k: v.strip() for k, v in fields.items() if isinstance(v, str) and v.strip()}
    return Profile(text=clean, **kept)


class Personalized(NamedTuple):
    """What :meth:`DemoService.personalize` returns."""

    scores: np.ndarray  # blended order shown on the 1-5 values of the zero-shot scores
    info: str  # one line for the page
    user: object | None  # the fitted taskvec.model.PersonalizedUser (None when the ratings say nothing)


MAX_CACHED_FEATURES = 4096


class DemoService:
    """Zero-shot ranking (pmllm) and personalization (the few-shot model of parts), shared by every demo session.

    Models load lazily on first use (or all at once with :meth:`warm`) and stay in memory; each model is used by
    one thread at a time."""

    def __init__(self, pmllm_dir: str | Path | None = None, taskvec_dir: str | Path | None = None):
        self.pmllm_dir, self.taskvec_dir = pmllm_dir, taskvec_dir
        self._pmllm = None
        self._taskvec = None
        self._feats: dict[str, object] = {}  # image path (content-addressed in the store) -> trunk features
        self._grounding: dict[str, np.ndarray] = {}  # image path -> pmllm.grounding.grounding_stats row (NaN: unread)
        self._words: dict[tuple[str, str], float] = {}  # (profile JSON, image path) -> the few-shot words part
        self._fewshot = None
        self._pmllm_lock, self._taskvec_lock, self._stats_lock = threading.RLock(), threading.RLock(), threading.Lock()
        self._scored = False  # whether the zero-shot model has scored yet (its first call pays one-off costs)
        self._ranking = 0  # rankings in progress (the warm-up's later steps wait for none, not to slow a user's)
        self._idle = threading.Condition()

    make_profile = staticmethod(make_profile)

    @staticmethod
    def sample_photos() -> list[Path]:
        from piaa.photos import sample_photos

        return sample_photos()

    def pmllm(self):
        with self._pmllm_lock:
            if self._pmllm is None:
                from pmllm.model import PMLLM

                self._pmllm = PMLLM.from_pretrained(self.pmllm_dir)
            return self._pmllm

    def taskvec(self):
        with self._taskvec_lock:
            if self._taskvec is None:
                from taskvec.model import PersonalizedScorer

                self._taskvec = PersonalizedScorer.from_pretrained(self.taskvec_dir)
            return self._taskvec

    def warm(self) -> float:
        """Load both models and run each once on one sample photo (so the first user does not wait); seconds."""
        import time

        t0 = time.perf_counter()
        self.pmllm()  # first: the zero-shot model is all a first ranking needs
        with self._pmllm_lock:  # its first call's one-off work (the text reader too), while a user who uploaded
            if not self._scored:  # still measures the photos (none once a ranking has scored: that one did most of it)
                self.pmllm().prepare()
        photo = self.sample_photos()[:1]  # after it: picking the samples reads the pool (~0.3 s on 2 cores)
        profile = self.make_profile("I like calm, colourful photos.")
        with self._idle:  # a user who ranked during start-up goes first
            self._idle.wait_for(lambda: self._ranking == 0, timeout=60)
        self.read_taste(profile)  # loads the text reader and reads once
        with self._idle:
            waiting = self._ranking > 0
        if not waiting:  # a user who ranked during start-up goes first; else warm the scoring path on one photo
            self.rank(profile, photo)
        with self._idle:  # a user's first ranking, waiting for the zero-shot model, goes before personalization's
            self._idle.wait_for(lambda: self._ranking == 0, timeout=60)
        self._features(photo)
        return time.perf_counter() - t0

    def _score(self, profile: Profile, paths: Sequence[str | Path], on_error: str, stats=None):
        """pmllm's :class:`~piaa.scoring.ScoreResult` of ``paths`` on the 1-5 scale (the model used by one thread)."""
        with self._pmllm_lock:
            res = self.pmllm().score([Path(p) for p in paths], profile=profile, scale=PARA_SCALE, on_error=on_error,
                                     stats=stats)  # fmt: skip
            self._scored = True
        return res

    def zero_shot(self, profile: Profile, paths: Sequence[str | Path]) -> np.ndarray:
        """Predicted score (1-5) of every photo for the user described by ``profile`` (all must be readable)."""
        return np.asarray(self._score(profile, paths, "raise").scores)

    def rank(self, profile: Profile, paths: Sequence[str | Path]) -> tuple[list[str], np.ndarray, dict[str, str]]:
        """Zero-shot scores of the readable photos: ``(kept paths, their 1-5 scores, {rejected file: reason})``."""
        with self._idle:
            self._ranking += 1
        try:
            # the pixel evidence of a text's concepts needs no model: measured while a model still loading loads
            stats = self._measured(paths) if profile.text else None
            with self._pmllm_lock:
                res = self._score(profile, paths, "skip", stats)
                if profile.text:  # the free-text reader loads on first use: keep it with the ranking (warm() too)
                    self.read_taste(profile)
        finally:
            with self._idle:
                self._ranking -= 1
                self._idle.notify_all()
        kept = [str(p) for i, p in enumerate(paths) if i not in res.errors]
        rejected = {Path(paths[i]).name: why.split(": ", 1)[-1] for i, why in res.errors.items()}
        if "words" in res.details:  # kept for personalization's words part (words(): the same values)
            who = profile.key()
            self._store(self._words, [(who, p) for p in kept], res.details["words"])
        return kept, res.scores[res.ok], rejected

    def words(self, profile: Profile | None, paths: Sequence[str | Path]) -> np.ndarray | None:
        """The few-shot model's words part for ``paths`` (:meth:`pmllm.model.PMLLM.stated_taste`: what the free
        text alone says of each photo): from the ranking that computed it, else computed; None without a text."""
        if profile is None or not profile.text:
            return None

        def compute(missing: list[str]):
            res = self._score(profile, missing, "raise", self._measured(missing))
            return res.details.get("words", np.full(len(missing), np.nan))  # NaN: this model reads no words

        who = profile.key()
        out = np.array(self._cached(self._words, paths, compute, key=lambda p: (who, p)), dtype=np.float64)
        return None if np.isnan(out).any() else out

    def read_taste(self, profile: Profile) -> list[str]:
        """What the zero-shot model read from the free text, one line per clause (empty if it reads no text)."""
        with self._pmllm_lock:
            return self.pmllm().encode_profile(profile).what_i_read()

    @staticmethod
    def _store(cache: dict, keys: Sequence, values) -> None:
        """Add ``keys`` -> ``values`` to a cache of at most :data:`MAX_CACHED_FEATURES` entries (emptied when full)."""
        if len(cache) + len(keys) > MAX_CACHED_FEATURES:
            cache.clear()
        cache.update(zip(keys, values))

    @classmethod
    def _cached(cls, cache: dict, paths: Sequence[str | Path], compute, key=lambda path: path) -> list:
        """Rows of ``paths`` from ``cache`` (``key(path)`` -> row), computing the missing ones with
        ``compute(missing paths)``."""
        paths = [str(p) for p in paths]
        missing = [p for p in paths if key(p) not in cache]
        if missing:
            cls._store(cache, [key(p) for p in missing], compute(missing))
        return [cache[key(p)] for p in paths]

    def _features(self, paths: Sequence[str | Path]):
        import torch

        with self._taskvec_lock:
            return torch.stack(self._cached(self._feats, paths, lambda missing: self.taskvec().features(missing)))

    def _measured(self, paths: Sequence[str | Path]) -> np.ndarray:
        """:func:`pmllm.grounding.grounding_stats` rows of ``paths`` (photo statistics, then the face share; NaN
        for a file that cannot be decoded), cached per path: the ranking's grounded term and personalization's
        photo statistics read the same rows."""
        from pmllm.grounding import grounding_stats

        with self._stats_lock:
            return np.stack(self._cached(self._grounding, paths, lambda missing: grounding_stats(missing, errors={})))

    def _stats(self, paths: Sequence[str | Path]) -> np.ndarray:
        from piaa.photostats import ATTRIBUTES

        return self._measured(paths)[:, : len(ATTRIBUTES)]

    def fewshot(self):
        """The few-shot model of parts (:class:`eval.fewshot.FewShot`) over the taskvec scorer."""
        from eval.fewshot import FewShot

        with self._taskvec_lock:
            if self._fewshot is None:
                self._fewshot = FewShot(self.taskvec())
            return self._fewshot

    def fit(self, paths: Sequence[str | Path], rated: dict[int, float], name: str = "demo-user",
            profile: Profile | None = None, zero_shot: np.ndarray | None = None):  # fmt: skip
        """The few-shot model of parts fitted on ``rated`` ({photo index: 1-5}; ``zero_shot``: the profile part's
        scores of every photo, None for no profile part; the words part comes from ``profile``'s text,
        :meth:`words`): ``(FewShotUser, combined score of every photo)``."""
        idx = sorted(rated)
        y = np.array([rated[i] for i in idx], dtype=np.float64)
        zero = None if zero_shot is None else np.asarray(zero_shot, dtype=np.float64)
        words = None if zero is None else self.words(profile, paths)  # before the taskvec lock: it takes pmllm's
        with self._taskvec_lock:
            model = self.fewshot()
            x = model.from_trunk(self._features(paths), self._stats(paths))
            user = model.fit(name, x.rows(idx), y, PARA_SCALE, zero=None if zero is None else zero[idx],
                             profile=profile, words=None if words is None else words[idx])  # fmt: skip
            return user, model.predict(user, x, zero=zero, words=words)

    def few_shot(self, paths: Sequence[str | Path], rated: dict[int, float]) -> tuple[np.ndarray, float]:
        """The ratings' parts alone (no profile): (combined score of every photo, fit seconds)."""
        user, scores = self.fit(paths, rated)
        return scores, float(user.config.seconds)

    def personalize(self, paths: Sequence[str | Path], rated: dict[int, float], zero_shot: np.ndarray,
                    name: str = "demo-user", profile: Profile | None = None) -> Personalized:  # fmt: skip
        """Fit the few-shot model of parts on ``rated`` ({photo index: 1-5}) with ``zero_shot`` as its profile part.

        Returns (score per photo on 1-5 for display, a one-line explanation, the fitted
        :class:`eval.fewshot.FewShotUser`). A rated photo is shown at its rating
        (:func:`piaa.scoring.keep_ratings`), so it is never ranked against what the user said.
        """
        idx = sorted(rated)
        y = np.array([rated[i] for i in idx], dtype=np.float64)
        if np.ptp(y) == 0:
            note = "All your ratings are equal, so they say nothing about order: kept the zero-shot ranking."
            return Personalized(np.asarray(zero_shot, dtype=np.float64), note, None)
        user, z = self.fit(paths, rated, name=name, profile=profile, zero_shot=zero_shot)
        # show the combined order on the familiar 1-5 range: the zero-shot scores, re-assigned by combined rank ...
        display = np.empty(len(z))
        display[np.argsort(z, kind="stable")] = np.sort(np.asarray(zero_shot, dtype=np.float64))
        # ... and every rated photo at its own rating, the unrated ones placed among them by the model
        display = keep_ratings(display, rated, PARA_SCALE)
        return Personalized(display, weights_note(user), user)


PART_LABELS = {"profile": "your description", "words": "what your words say of each photo",
               "taskvec": "task vectors fitted to your ratings",
               "residual": "a photo-feature model of your ratings"}  # fmt: skip


def weights_note(user) -> str:
    """One line for the page: how much each part counts and how well it predicted ratings it had not seen (below
    :data:`eval.fewshot.MIN_CV` ratings that agreement only moves a part's usual weight: the page says so)."""
    from eval.fewshot import MIN_CV, RESTATES

    w = user.config.weights
    total = sum(w.values()) or 1.0
    k = user.config.k
    parts = []
    for name, weight in sorted(w.items(), key=lambda t: -t[1]):
        agree = user.config.agreement.get(name)
        seen = ""
        if name in RESTATES and weight == 0:  # not a part that failed: one that counts only when the ratings say so
            seen = (f" (it counts once your ratings follow it better than {PART_LABELS[RESTATES[name]]}"
                    + (f", from {MIN_CV} ratings on)" if k < MIN_CV else ")"))  # fmt: skip
        elif agree == agree and agree:  # NaN: not checked; 0: nothing to say
            seen = (
                f" (rank agreement {agree:+.2f} with ratings it did not see)"
                if k >= MIN_CV
                else f" (rank agreement {agree:+.2f} on {k} rating(s): too few to overrule its usual weight)"
            )
        parts.append(f"{PART_LABELS.get(name, name)} {100 * weight / total:.0f}%{seen}")
    return (f"Personalized with {k} rating(s). How much each part counts: " + "; ".join(parts)
            + f". Fit took {user.config.seconds:.2f} s.")  # fmt: skip


def rank_order(scores: Sequence[float]) -> np.ndarray:
    """Indices best-first (stable for ties)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
