"""What one person does in the demo, without the UI: continue as NAME, rank, rate, personalize, delete.

:class:`Demo` joins the models (:class:`demo.service.DemoService`) and the memory (:class:`demo.store.UserStore`).
Every call names the user it acts for and returns a :class:`View` - what the page shows: the profile, the
gallery (path, caption with the file name), the ratings table (in gallery order), a note and the user's
task-vector coefficients. Photo paths come only from the store's rows for that user; names in the ratings table
are resolved among that user's photos alone. Bad input becomes a note, never an exception. Library module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demo.service import DemoService, parse_ratings, rank_order
from demo.store import Photo, StoreError, User, UserStore
from piaa.schema import Profile, SchemaError

PROFILE_FIELDS = ("text", "age", "gender", "photography_experience")  # the form's fields
# what the user is told after a ranking from their words: the words move it by less than people expect (the README's
# known gaps, pmllm.steer / pmllm.steer_sim), ratings move it by more
WORDS_HINT = ("Your words shift the ranking, but only a little; rate a few photos below and press *Personalize* to "
              "make it follow you.")  # fmt: skip


@dataclass
class View:
    """What the page shows for one user."""

    user: str | None = None
    profile: dict = field(default_factory=dict)
    gallery: list[tuple[str, str]] = field(default_factory=list)
    table: list[list] = field(default_factory=list)
    note: str = ""
    alpha: tuple[list[str], list[float]] | None = None  # task names, mean coefficient per task
    moved: dict[str, int] = field(default_factory=dict)  # photo name -> places moved up (+) or down (-)


def taste_summary(fitted) -> tuple[list[str], list[float]]:
    """A fitted taskvec user's coefficients averaged over tensor groups: (task names, mean alpha per task)."""
    alpha = np.asarray(fitted.alpha, dtype=np.float64).reshape(len(fitted.config.groups), -1)
    return list(fitted.config.tasks), [float(v) for v in alpha.mean(axis=0)]


def movement(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Places each photo moved from the ``before`` ranking to the ``after`` one (+ = up), by key."""
    keys = [k for k in before if k in after]
    rank_b = {keys[i]: r for r, i in enumerate(rank_order([before[k] for k in keys]))}
    rank_a = {keys[i]: r for r, i in enumerate(rank_order([after[k] for k in keys]))}
    return {k: rank_b[k] - rank_a[k] for k in keys}


def _arrow(n: int) -> str:
    return f" ↑{n}" if n > 0 else f" ↓{-n}" if n < 0 else ""


class Demo:
    """The demo's flows for any number of concurrent sessions (see the module docstring)."""

    def __init__(self, service: DemoService, store: UserStore):
        self.service, self.store = service, store

    # ------------------------------------------------------------------ views
    def view(self, user: User, note: str = "") -> View:
        """The page for ``user`` as stored: the blended ranking when there is one, else the zero-shot one."""
        photos = {p.sha256: p for p in self.store.photos(user)}
        ratings = self.store.ratings(user)
        zero, blended = self.store.ranking(user, "zero_shot"), self.store.ranking(user, "blended")
        fitted = self.store.load_model(user)
        out = View(user=user.name, profile={k: user.profile.get(k) or "" for k in PROFILE_FIELDS}, note=note,
                   alpha=taste_summary(fitted) if fitted is not None else None)  # fmt: skip
        scores, label, moved = {}, "predicted", {}
        if blended and zero:
            scores, label = blended[0], "blended"
            moved = movement(zero[0], blended[0])
        elif zero:
            scores = zero[0]
        ranked = [s for s in scores if s in photos]
        order = [ranked[i] for i in rank_order([scores[s] for s in ranked])] if ranked else []
        order += [s for s in photos if s not in scores]  # stored but not ranked yet
        for r, sha in enumerate(order):
            name = photos[sha].name
            caption = f"#{r + 1} {name}" + (f" · {label} {scores[sha]:.2f}" if sha in scores else "")
            out.gallery.append((str(photos[sha].path), caption + _arrow(moved.get(sha, 0))))
            out.table.append([name, ratings.get(sha)])
        out.moved = {photos[s].name: n for s, n in moved.items() if s in photos}
        return out

    def _notice(self, note: str, name: str | None = None) -> View:
        return View(user=name, note=note)

    # ------------------------------------------------------------------ flows
    def continue_as(self, name: str) -> View:
        """Restore a returning user's profile, photos, ratings and ranking."""
        try:
            user = self.store.get_user(name)
        except StoreError as err:
            return self._notice(f"⚠️ {err}")
        if user is None:
            return self._notice(f"No saved data for {' '.join(str(name).split())!r} yet: describe your taste and "
                                "press *Rank my photos* to start.")  # fmt: skip
        n = len(self.store.photos(user))
        blended = self.store.ranking(user, "blended")
        note = (
            f"Welcome back, {user.name}: restored your profile, {n} photo(s) and {len(self.store.ratings(user))} "
            "rating(s)."
        )
        if blended:
            note += "\n\n" + blended[1]
        view = self.view(user, note)
        if view.moved:
            view.note += "\n\n" + self._moved_note(view.moved)
        return view

    def rank(self, name: str, profile: Profile, uploads: Sequence[str | os.PathLike] = ()) -> View:
        """Store the profile and the uploads (temp files removed), rank all the user's photos zero-shot."""
        try:
            user = self.store.open_user(name, profile.to_dict())
        except StoreError as err:
            return self._notice(f"⚠️ {err}")
        refused: dict[str, str] = {}
        for up in uploads:
            try:
                self.store.add_photo(user, up)
            except StoreError as err:
                who, _, why = str(err).partition(": ")
                refused[who] = why
            finally:
                Path(up).unlink(missing_ok=True)  # the upload now lives in the store (or was refused)
        photos = self.store.photos(user)
        samples = not photos and not uploads
        if samples:
            photos = [self.store.add_photo(user, p) for p in self.service.sample_photos()]
        if not photos:
            return self._notice("None of your files could be read as a photo, so nothing was ranked:"
                                + _bullets(refused), user.name)  # fmt: skip
        kept, scores, rejected = self.service.rank(profile, [str(p.path) for p in photos])
        by_file = {p.path.name: p for p in photos}
        for file, why in rejected.items():
            photo = by_file[file]
            refused[photo.name] = why
            self.store.remove_photo(user, photo.sha256)  # an unreadable file is not kept
        if not kept:
            return self._notice("None of your files could be read as a photo, so nothing was ranked:"
                                + _bullets(refused), user.name)  # fmt: skip
        by_path = {str(p.path): p for p in photos}
        self.store.save_ranking(user, "zero_shot", {by_path[k].sha256: float(s) for k, s in zip(kept, scores)})
        self.store.drop_ranking(user, "blended")
        note = f"Ranked {len(kept)} photos from your description alone (zero-shot, 1–5 scale)."
        if samples:
            note += " These are sample photos: upload your own to rank them."
        if refused:
            note += f"\n\nSkipped {len(refused)} file(s):" + _bullets(refused)
        read = self.service.read_taste(profile)
        if read:
            note += "\n\nWhat I read in your words:" + "".join(f"\n* {line}" for line in read)
            note += f"\n\n{WORDS_HINT}"
        return self.view(user, note)

    def _rated(self, user: User, table) -> dict[str, float]:
        """The table's ratings as {sha256: score}, validated; raises ValueError with the page's message."""
        photos: list[Photo] = self.store.photos(user)
        rated = parse_ratings(table, [p.name for p in photos])
        return {photos[i].sha256: v for i, v in rated.items()}

    def save_ratings(self, name: str | None, table) -> str:
        """Store the table's ratings (replacing the user's previous ones); a note saying what was saved."""
        user = self.store.get_user(name) if name else None
        if user is None:
            return "Rank some photos (or continue as a saved user) first."
        try:
            saved = self.store.set_ratings(user, self._rated(user, table))
        except (ValueError, StoreError) as err:
            return f"⚠️ {err}"
        return f"Saved {len(saved)} rating(s)."

    def personalize(self, name: str | None, table) -> View:
        """Store the ratings, fit the user's task-vector coefficients, blend; the view shows what moved."""
        user = self.store.get_user(name) if name else None
        if user is None:
            return self._notice("Rank some photos (or continue as a saved user) first.")
        try:
            rated = self.store.set_ratings(user, self._rated(user, table))
        except (ValueError, SchemaError, StoreError) as err:
            return self._notice(f"⚠️ {err}", user.name)
        zero = self.store.ranking(user, "zero_shot")
        if zero is None:
            return self._notice("Rank your photos first, then rate a few.", user.name)
        shas = list(zero[0])
        if sum(s in rated for s in shas) < 2:
            return self.view(user, f"Saved {len(rated)} rating(s). Rate at least 2 photos (1–5) in the table, then "
                             "press Personalize.")  # fmt: skip
        paths = [str(self.store.photo(user, s).path) for s in shas]
        idx = {i: rated[s] for i, s in enumerate(shas) if s in rated}
        profile = Profile.from_dict(user.profile, source=f"user {user.name!r}") if user.profile else None
        res = self.service.personalize(paths, idx, np.array([zero[0][s] for s in shas]), name=user.name,
                                       profile=profile)  # fmt: skip
        if res.user is None:
            self.store.drop_ranking(user, "blended")
            return self.view(user, res.info)
        self.store.save_model(user, res.user.taskvec)  # its taste summary; the ranking itself is stored below
        self.store.save_ranking(user, "blended", dict(zip(shas, (float(v) for v in res.scores))), res.info)
        view = self.view(user, res.info)
        view.note += "\n\n" + self._moved_note(view.moved)
        return view

    @staticmethod
    def _moved_note(moved: dict[str, int]) -> str:
        movers = sorted(((n, k) for k, n in moved.items() if n), key=lambda t: -abs(t[0]))
        if not movers:
            return "Your ratings agree with the zero-shot order: nothing moved."
        listed = ", ".join(f"{k}{_arrow(n)}" for n, k in movers[:8]) + (" …" if len(movers) > 8 else "")
        return f"{len(movers)} of {len(moved)} photos moved: {listed}."

    def delete(self, name: str | None) -> View:
        """Delete the user's rows and stored photos."""
        user = self.store.get_user(name) if name else None
        if user is None:
            return self._notice("Nothing to delete: no saved data for this session.")
        n = self.store.delete_user(user)
        return self._notice(f"Deleted {user.name}'s data: profile, {n} stored photo(s), ratings and model.")


def _bullets(items: dict[str, str]) -> str:
    return "".join(f"\n* {k}: {v}" for k, v in items.items())
