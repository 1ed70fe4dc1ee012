"""The product's ensembler: pmllm (zero-shot, from the profile) and the few-shot model of parts
(:mod:`eval.fewshot`: the profile itself, what its words alone say of each photo, task vectors, a residual ridge)
behind the one scoring contract of :mod:`piaa.scoring`. Used by ``piaa score --user`` and ``piaa personalize``; the
harness adapter is :mod:`eval.scorers_ensemble` and the demo calls the same :class:`eval.fewshot.FewShot`. Library
module::

    ens = Ensemble.from_pretrained()                              # the committed defaults of both products
    user = ens.personalize("me", rated_paths, ratings, scale=PARA_SCALE, profile=me)
    user.save_pretrained("users/me")                              # kilobytes (FewShotUser)
    out = ens.score(paths, user=user)                             # or profile=me alone (zero-shot)
"""

from __future__ import annotations

import warnings

import numpy as np

from eval.fewshot import FewShot, FewShotUser


def _words(zero, rows: list[int]) -> np.ndarray | None:
    """The words part of images ``rows`` from pmllm's result ``zero`` (its ``details["words"]`` follow the scored
    images in order); None where pmllm read no free text."""
    words = zero.details.get("words")
    if words is None:
        return None
    full = np.full(len(zero.scores), np.nan)
    full[zero.ok] = words
    return full[rows]


class Ensemble:
    """Without a user the zero-shot scores are returned as they are. With one, every part the user's weights
    keep is scored and :func:`eval.fewshot.combine` mixes them; the combined normal score is mapped onto ``scale``
    through the normal CDF (monotone: the order is the combination's). The combination is rank-based within the
    scored set, so score a user's photos in one call (``piaa score --user`` does). A photo the user rated (the same
    file content) is shown at their rating, the others placed among them (:func:`piaa.scoring.keep_ratings`).
    ``details`` holds the part weights, their agreement with held-back ratings, each part's scores and alpha."""

    def __init__(self, zero, few, photostats: bool = True):
        self.zero, self.few = zero, few
        self.model = FewShot(few, photostats=photostats)

    @classmethod
    def from_pretrained(cls, pmllm=None, taskvec=None) -> Ensemble:
        from pmllm.model import PMLLM
        from taskvec.model import PersonalizedScorer

        return cls(PMLLM.from_pretrained(pmllm), PersonalizedScorer.from_pretrained(taskvec))

    def personalize(self, name: str, images, scores, *, scale, profile=None, on_error: str = "skip") -> FewShotUser:
        """Fit the user's parts on rated photos (ratings checked by :func:`piaa.schema.validate_ratings`). A photo
        that cannot be decoded is left out with a warning (``on_error="skip"``) or raises (``"raise"``); the
        user's ``taskvec.config.skipped`` lists them."""
        from piaa.schema import Profile, SchemaError, validate_ratings
        from piaa.scoring import check_on_error, content_key

        images, y = validate_ratings(images, scores, scale, source=f"ratings of {name!r}")
        errors: dict[int, str] | None = {} if check_on_error(on_error) == "skip" else None
        x = self.model.inputs(images, errors=errors)
        zero = self.zero.score(images, profile=profile or Profile(), scale=scale, on_error=on_error)
        errors = {**(errors or {}), **zero.errors}
        keep = [i for i in range(len(images)) if i not in errors]
        skipped = {str(images[i]): why for i, why in sorted(errors.items())}
        if len(keep) < 2:
            raise SchemaError(f"ratings of {name!r}: only {len(keep)} of the {len(images)} rated photos could be "
                              "read (personalization needs at least 2): " + "; ".join(skipped.values()))  # fmt: skip
        if skipped:
            warnings.warn(f"{len(skipped)} rated photo(s) could not be read and were left out: "
                          + "; ".join(skipped.values()), stacklevel=2)  # fmt: skip
        words = _words(zero, keep)
        user = self.model.fit(name, x.rows(keep), y[keep], scale, zero=zero.scores[keep], profile=profile,
                              rated_keys=[content_key(images[i]) for i in keep], words=words)  # fmt: skip
        user.taskvec.config.skipped = skipped
        return user

    def score(self, images, *, profile=None, user: FewShotUser | None = None, scale=None, on_error: str = "skip"):
        from scipy.special import ndtr

        from piaa.schema import PARA_SCALE, Profile
        from piaa.scoring import ScoreResult, check_on_error, content_key, keep_ratings

        profile = profile or getattr(user, "profile", None) or Profile()
        scale = scale or getattr(user, "scale", None) or PARA_SCALE
        zero = self.zero.score(images, profile=profile, scale=scale, on_error=on_error)
        if user is None:
            zero.details["weights"] = {"profile": 1.0}
            return zero
        errors: dict[int, str] | None = {} if check_on_error(on_error) == "skip" else None
        x = self.model.inputs(images, errors=errors)
        errors = {**(errors or {}), **zero.errors}
        good = [i for i in range(len(images)) if i not in errors]
        scores = np.full(len(images), np.nan)
        parts = {}
        if good:
            xg = x.rows(good)
            parts = self.model.part_scores(user, xg, zero=zero.scores[good], words=_words(zero, good))
            z = self.model.predict(user, xg, parts=parts)
            scores[good] = scale.min + ndtr(z) * scale.range
        known = user.ratings  # photos the user rated keep their rating (piaa.scoring.keep_ratings)
        rated = {j: known[key] for j, i in enumerate(good) if (key := content_key(images[i])) in known}
        if rated:
            scores[good] = keep_ratings(scores[good], rated, scale)
        details = {"weights": dict(user.config.weights), "agreement": dict(user.config.agreement),
                   "zero_shot": zero.scores, "parts": parts, "alpha": user.taskvec.alpha.numpy().tolist(),
                   "tasks": list(user.taskvec.config.tasks), "rated": len(rated)}  # fmt: skip
        return ScoreResult(scores, scale, zero.images, errors, details)
