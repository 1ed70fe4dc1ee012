"""Free-text self-descriptions for simulated raters, generated from their own taste.

:func:`describe` picks the rater's 1-3 strongest *personal* preferences (profile + idiosyncratic part, weighted by
how much each feature varies over the images, i.e. by its effect on the rater's scores), words each as a like,
a dislike or a tolerance (depending on the sign of the personal part and of the total taste), and assembles them
with varied templates, synonyms and order ("I love warm, colourful pictures of animals; blurry shots annoy me").
Every content class of the world can be mentioned: the pool's classes have their own wording (:data:`POLES`),
any other class is worded from its name (:func:`poles`).

Library module, used by ``eval.sim``.
"""

from __future__ import annotations

import numpy as np

# feature -> (phrases for the high pole, phrases for the low pole); content features have only one pole.
POLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "brightness": (("bright, airy photos", "light, sunny pictures", "bright images"),
                   ("dark, moody pictures", "low-key, shadowy photos", "dark images")),
    "contrast": (("punchy, high-contrast images", "strong contrasts", "contrasty photos"),
                 ("flat, low-contrast pictures", "soft, low-contrast images", "gentle, flat tones")),
    "colorfulness": (("colourful pictures", "colour-rich pictures", "rich, colourful scenes"),
                     ("muted colours", "subdued, colourless pictures", "understated palettes")),
    "saturation": (("vivid, saturated colours", "bold, saturated hues", "intense colours"),
                   ("washed-out, desaturated colours", "faded, pastel tones", "black-and-white or faded photos")),
    "warmth": (("warm tones", "warm, golden light", "warm, orange hues"),
               ("cool, bluish tones", "cold, blue casts", "cool colour casts")),
    "sharpness": (("sharp, crisp detail", "tack-sharp photos", "crisp, detailed pictures"),
                  ("blurry shots", "soft, out-of-focus pictures", "blurred photos")),
    "noise": (("grainy, noisy photos", "film grain and noise", "grainy pictures"),
              ("clean, noise-free images", "smooth, grain-free photos", "clean pictures")),
    "clipping": (("blown-out highlights and crushed blacks", "extreme, clipped exposures", "clipped highlights"),
                 ("well-exposed pictures", "balanced exposures", "properly exposed photos")),
    "content:people": (("pictures of people", "portraits", "photos of people"), ()),
    "content:animal": (("animals", "pictures of animals", "pets and wildlife"), ()),
    "content:food": (("food photos", "pictures of food and drinks", "food shots"), ()),
    "content:vehicle": (("cars, bikes and rockets", "vehicles", "pictures of vehicles and machines"), ()),
    "content:space": (("space and astronomy pictures", "images of space and the night sky", "astronomy photos"), ()),
    "content:flower": (("flowers", "pictures of flowers and plants", "floral close-ups"), ()),
    "content:architecture": (("buildings and architecture", "buildings and temples", "pictures of buildings"), ()),
    "content:abstract": (("abstract images", "abstract shapes and patterns", "abstract, graphic pictures"), ()),
    "content:plant": (("plants and flowers", "pictures of leaves and plants", "greenery and plant close-ups"), ()),
    "content:landscape": (("landscapes", "wide landscape views", "nature scenery"), ()),
    "content:water": (("lakes and the sea", "pictures of water and shorelines", "seascapes and lakeside scenes"), ()),
    "content:artwork": (("paintings and illustrations", "artworks and drawings", "illustrated, painterly pictures"),
                        ()),
    "content:objects": (("still lifes of everyday objects", "close-ups of objects", "pictures of things on a table"),
                        ()),
}  # fmt: skip


def poles(feature: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(high-pole phrases, low-pole phrases) for ``feature``; a content class without wording of its own is
    worded from its name (``content:boats`` -> "pictures of boats"), so any content class can be talked about."""
    if feature in POLES:
        return POLES[feature]
    if feature.startswith("content:"):
        word = feature.split(":", 1)[1].replace("_", " ")
        return (f"pictures of {word}", f"{word} photos", f"{word} scenes"), ()
    raise KeyError(f"no wording for feature {feature!r}")


LIKE = ("I love {}", "I really enjoy {}", "I'm drawn to {}", "give me {} any day", "nothing beats {} for me",
        "I'm a big fan of {}", "I can't get enough of {}", "{} always catch my eye")  # fmt: skip
DISLIKE = ("{} annoy me", "I can't stand {}", "I dislike {}", "I'm not a fan of {}", "{} leave me cold",
           "I tend to skip {}", "{} bore me", "I really don't like {}")  # fmt: skip
TOLERATE = ("I don't mind {}", "{} don't bother me much", "I'm fine with {}", "I can live with {}")
MEH = ("I'm not especially into {}", "{} don't do much for me", "I'm lukewarm about {}")
OPENERS = ("", "", "", "Honestly, ", "When it comes to photos, ", "In short: ", "For me, ", "Personally, ")
JOINERS = ("; ", ". ", ", and ", ". Also, ", " - and ", "; also, ")


def keywords(feature: str) -> tuple[str, ...]:
    """Every phrase that can name ``feature`` in a text (used by tests and analyses)."""
    hi, lo = poles(feature)
    return hi + lo


def _clause(rng: np.random.Generator, feature: str, personal: float, total: float) -> str:
    hi, lo = poles(feature)
    if not lo:  # content: like / dislike / lukewarm
        np_ = hi[rng.integers(len(hi))]
        if personal > 0:
            frames = LIKE if total > 0 else TOLERATE
        else:
            frames = DISLIKE if total < 0 else MEH
        return frames[rng.integers(len(frames))].format(np_)
    if personal > 0 and total > 0:  # likes the high pole / dislikes the low pole
        options = [(LIKE, hi), (DISLIKE, lo)]
    elif personal < 0 and total < 0:
        options = [(LIKE, lo), (DISLIKE, hi)]
    elif personal > 0:
        options = [(TOLERATE, hi)]
    else:
        options = [(TOLERATE, lo)]
    frames, nps = options[rng.integers(len(options))]
    return frames[rng.integers(len(frames))].format(nps[rng.integers(len(nps))])


def describe(
    rng: np.random.Generator, names: list[str], personal: np.ndarray, total: np.ndarray, feature_sd: np.ndarray
) -> tuple[str, list[str]]:
    """(text, mentioned features, strongest first) for one rater."""
    importance = np.abs(personal) * feature_sd
    order = [j for j in np.argsort(-importance, kind="stable") if names[j] in POLES or names[j].startswith("content:")]
    k = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3]))
    chosen = order[:k]
    clauses = [_clause(rng, names[j], personal[j], total[j]) for j in chosen]
    mentioned = [names[j] for j in chosen]
    # shuffle the order of everything but keep the strongest preference in the text
    perm = rng.permutation(len(clauses))
    clauses = [clauses[i] for i in perm]
    text = clauses[0]
    for c in clauses[1:]:
        joiner = JOINERS[rng.integers(len(JOINERS))]
        text += joiner + (c[0].upper() + c[1:] if joiner == ". " else c)
    text = OPENERS[rng.integers(len(OPENERS))] + text
    return text[0].upper() + text[1:] + ".", mentioned
