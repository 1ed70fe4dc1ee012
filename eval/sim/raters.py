"""Rater side of the simulated taste world: features, tastes, PARA-style profiles, free text, scores, databases.

The generative model (documented in ``eval/sim/SIM.md``):

* image features ``x_i`` = standardised pixel attributes (clipped to +-3) + one-hot content indicators;
* rater taste ``w_r = w_pop + P(profile_r) + w_idio_r``: a population mean, a deterministic linear function of the
  PARA-style profile fields (:data:`PROFILE_EFFECTS`) and an idiosyncratic part (Gaussian + one "passion");
* utility ``u_ri = x_i . w_r + b_r``; observed score = PARA scale quantisation of
  ``3 + 2 tanh(kappa a_r (u_ri + e_ri))`` with rating noise ``e_ri ~ N(0, s_r^2)``;
  the oracle is the same without noise and quantisation;
* databases: a panel of virtual raters around a designed database taste (four trait databases, and ``general``,
  whose taste is the population's); the score is their mean opinion, mapped to the database's own scale.

Content classes are not fixed: features have one indicator per class the source photos carry, and the weight
tables name the classes of the bundled photos and of the photo pool (any other class gets 0 there).

Library module, used by ``python -m eval.sim``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from piaa.schema import PARA_SCALE, Profile, Scale

from .images import ATTRIBUTES

AGES = ("18-21", "22-25", "26-29", "30-34", "35-40")  # PARA's age bins
GENDERS = ("male", "female")
EDUCATION = ("junior_high_school", "senior_high_school", "technical_secondary_school", "junior_college", "university")
EXPERIENCE = ("beginner", "competent", "proficient", "expert")  # PARA art/photography experience levels
BIG5 = ("big5_E", "big5_A", "big5_N", "big5_O", "big5_C")

# utility weights per standardised attribute / content indicator. Content classes are whatever the source photos
# carry (the bundled photos' 8 labels, the photo pool's 12 from piaa/data/photo_pool.csv, or --photos sub-folder
# names); a class no table below names simply has weight 0 there (raters still get idiosyncratic content tastes).
POPULATION = {
    "brightness": 0.26, "contrast": 0.26, "colorfulness": 0.325, "saturation": 0.13, "warmth": 0.13,
    "sharpness": 0.52, "noise": -0.39, "clipping": -0.325,
    "content:people": 0.39, "content:animal": 0.65, "content:food": 0.13, "content:vehicle": -0.13,
    "content:space": 0.26, "content:flower": 0.52, "content:plant": 0.39, "content:architecture": 0.13,
    "content:abstract": -0.52, "content:landscape": 0.52, "content:water": 0.39, "content:artwork": 0.0,
    "content:objects": -0.39,
}  # fmt: skip

# profile variable -> {feature: weight per unit of the (centred, scaled) profile variable}
PROFILE_EFFECTS = {
    "photo": {"sharpness": 0.35, "noise": -0.30, "clipping": -0.20, "contrast": 0.10, "content:landscape": 0.15,
              "content:artwork": -0.15},
    "art": {"contrast": 0.15, "saturation": -0.20, "sharpness": 0.10,
            "content:architecture": 0.25, "content:abstract": 0.35, "content:artwork": 0.40},
    "age": {"colorfulness": -0.15, "saturation": -0.10, "content:people": 0.10, "content:animal": -0.10,
            "content:vehicle": -0.20, "content:flower": 0.25, "content:plant": 0.20, "content:architecture": 0.30,
            "content:landscape": 0.15, "content:abstract": -0.10},
    "female": {"content:people": 0.15, "content:animal": 0.25, "content:food": 0.10, "content:vehicle": -0.35,
               "content:space": -0.10, "content:flower": 0.25, "content:plant": 0.20, "content:objects": -0.10},
    "edu": {"content:space": 0.20, "content:architecture": 0.15, "content:abstract": 0.15, "content:artwork": 0.10},
    "E": {"colorfulness": 0.10, "warmth": 0.10, "brightness": 0.15, "content:people": 0.35, "content:food": 0.15,
          "content:water": 0.10},
    "A": {"warmth": 0.20, "content:animal": 0.30, "content:flower": 0.15, "content:plant": 0.15},
    "N": {"brightness": -0.30, "contrast": 0.10, "warmth": -0.15, "content:water": 0.10},
    "O": {"colorfulness": 0.25, "saturation": 0.20, "content:space": 0.30, "content:abstract": 0.25,
          "content:vehicle": -0.05, "content:artwork": 0.25},
    "C": {"sharpness": 0.10, "noise": -0.10, "content:food": -0.10, "content:objects": 0.15},
}  # fmt: skip

# database name -> (scale, individual rating levels, taste). Each has its own image pool. "general" is the AVA-like
# general-aesthetics panel: its taste is the population's (w_pop), so a task vector can carry what people in general
# like; the other four are trait databases.
DATABASES = {
    "technical": (Scale(0.0, 100.0), 5, {"sharpness": 0.6, "noise": -0.5, "clipping": -0.35, "contrast": 0.2,
                                         "brightness": 0.1, "colorfulness": 0.05}),
    "colour": (Scale(1.0, 10.0), 10, {"colorfulness": 0.6, "saturation": 0.45, "warmth": 0.25, "brightness": 0.1,
                                      "sharpness": 0.1, "content:flower": 0.3, "content:plant": 0.25,
                                      "content:artwork": 0.15}),
    "moody": (Scale(1.0, 10.0), 10, {"brightness": -0.5, "contrast": 0.35, "saturation": -0.35, "warmth": -0.2,
                                     "content:space": 0.3, "content:architecture": 0.2, "content:abstract": 0.2,
                                     "content:water": 0.15}),
    "content": (Scale(1.0, 5.0), 5, {"content:people": 0.6, "content:animal": 0.7, "content:food": 0.4,
                                     "content:vehicle": -0.3, "content:space": 0.1, "content:flower": 0.3,
                                     "content:plant": 0.3, "content:landscape": 0.4, "content:water": 0.3,
                                     "content:architecture": -0.1, "content:abstract": -0.7,
                                     "content:objects": -0.4, "sharpness": 0.1}),
    "general": (Scale(1.0, 10.0), 10, POPULATION),
}  # fmt: skip
TRAIT_DATABASES = ("technical", "colour", "moody", "content")


@dataclass(frozen=True)
class TasteConfig:
    profile_gain: float = 0.8  # multiplies PROFILE_EFFECTS
    idio_sd: float = 0.15  # per-feature sd of the idiosyncratic part (attributes)
    idio_content_sd: float = 0.3  # ... of content indicators
    passion_prob: float = 0.7  # chance of one strong personal like/dislike
    passion_size: float = 0.5
    offset_sd: float = 0.3  # per-rater score offset (utility units)
    slope_sd: float = 0.2  # per-rater log-slope of the squashing (scale usage)
    noise_sd: float = 0.5  # rating noise (utility units), per rater times exp(N(0, 0.25))
    kappa: float = 0.35  # squashing slope: score = 3 + 2 tanh(kappa * slope * (u + noise))
    panel: int = 20  # virtual raters per database image


# ------------------------------------------------------------------------------------------------ features
def feature_names(contents: list[str]) -> list[str]:
    """The 8 attributes, then one ``content:<class>`` indicator per content class (sorted)."""
    return list(ATTRIBUTES) + [f"content:{c}" for c in sorted(contents)]


def feature_matrix(attrs: pd.DataFrame, names: list[str], mean: dict, std: dict) -> np.ndarray:
    """Rows of ``attrs`` (columns: attributes + ``content``) -> (n, len(names)) feature matrix."""
    x = np.zeros((len(attrs), len(names)))
    for j, name in enumerate(names):
        if name.startswith("content:"):
            x[:, j] = (attrs["content"].to_numpy() == name.split(":", 1)[1]).astype(float)
        else:
            x[:, j] = np.clip((attrs[name].to_numpy(float) - mean[name]) / std[name], -3.0, 3.0)
    return x


def vec(weights: dict[str, float], names: list[str]) -> np.ndarray:
    """``weights`` as a vector over ``names`` (features it does not name get 0)."""
    return np.array([weights.get(n, 0.0) for n in names], dtype=float)


# ------------------------------------------------------------------------------------------------ profiles
def sample_profile(rng: np.random.Generator) -> Profile:
    """A PARA-style profile (field values as PARA's user table writes them)."""
    big5 = {k: float(np.clip(np.round(rng.normal(5.5, 1.8)), 1, 10)) for k in BIG5}
    return Profile(
        age=AGES[rng.choice(5, p=[0.25, 0.35, 0.2, 0.12, 0.08])],
        gender=GENDERS[rng.integers(2)],
        education=EDUCATION[rng.choice(5, p=[0.05, 0.15, 0.1, 0.25, 0.45])],
        art_experience=EXPERIENCE[rng.choice(4, p=[0.4, 0.35, 0.18, 0.07])],
        photography_experience=EXPERIENCE[rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])],
        **big5,
    )


def profile_variables(p: Profile) -> dict[str, float]:
    """Centred, roughly unit-scale numeric encoding of the PARA fields (missing fields -> 0)."""

    def level(value, levels, centre, scale):
        return (levels.index(value) - centre) / scale if value in levels else 0.0

    out = {
        "age": level(p.age, AGES, 1.3, 1.2),
        "female": {"female": 1.0, "male": -1.0}.get(p.gender or "", 0.0),
        "edu": level(p.education, EDUCATION, 3.0, 1.2),
        "art": level(p.art_experience, EXPERIENCE, 0.9, 0.9),
        "photo": level(p.photography_experience, EXPERIENCE, 1.0, 0.95),
    }
    for k in BIG5:
        v = getattr(p, k)
        out[k[-1]] = 0.0 if v is None else (float(v) - 5.5) / 1.8
    return out


def profile_part(p: Profile, names: list[str], gain: float = 1.0) -> np.ndarray:
    """The deterministic profile-driven taste part ``P(profile)``."""
    w = np.zeros(len(names))
    var = profile_variables(p)
    for key, effects in PROFILE_EFFECTS.items():
        w += gain * var[key] * vec(effects, names)
    return w


# ------------------------------------------------------------------------------------------------ scores
def squash(u: np.ndarray, slope: np.ndarray | float, kappa: float) -> np.ndarray:
    return 3.0 + 2.0 * np.tanh(kappa * np.asarray(slope) * u)


def quantize_para(s: np.ndarray) -> np.ndarray:
    return PARA_SCALE.quantize(s)


def database_scores(
    x: np.ndarray, names: list[str], db: str, rng: np.random.Generator, cfg: TasteConfig
) -> np.ndarray:
    """Mean opinion of a virtual panel (each rates on ``levels`` steps) mapped to the database's scale."""
    scale, levels, taste = DATABASES[db]
    w = vec(taste, names)
    panel = w[None, :] + rng.normal(0, 0.12, size=(cfg.panel, len(names))) * (w != 0)[None, :]
    u = x @ panel.T  # (n, panel)
    u = (u - u.mean()) / (u.std() + 1e-9)
    u = u + rng.normal(0, 0.6, size=u.shape)
    v = 0.5 + 0.5 * np.tanh(0.6 * u)  # 0..1
    individual = 1 + np.clip(np.round(v * (levels - 1)), 0, levels - 1)  # 1..levels
    mos = (individual.mean(axis=1) - 1) / (levels - 1)  # 0..1
    return np.round(scale.denormalize(mos), 3)
