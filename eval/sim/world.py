"""A loaded simulated world: the folder (via :class:`piaa.worlds.WorldFolder`) plus the hidden truth (oracle).

Library module of ``eval.sim``; the world's files are read by ``piaa.worlds`` (which pmllm/taskvec use too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from piaa.schema import Profile
from piaa.worlds import WorldFolder

from . import raters as sr
from .build import build_world


class SimWorld:
    """A loaded world folder: ratings, databases, folds, attributes and the hidden truth behind the oracle."""

    def __init__(self, root: str | Path):
        self.folder = WorldFolder.open(root)
        self.root, self.info = self.folder.root, self.folder.info
        self.ratings = self.folder.ratings
        self.databases = self.folder.databases
        self.folds = self.folder.folds
        self.attributes = pd.read_csv(self.root / "attributes.csv", dtype={"image": str, "content": str})
        self.truth = json.loads((self.root / "truth" / "tastes.json").read_text())
        self._names = self.truth["features"]
        self._row = {im: i for i, im in enumerate(self.attributes["image"])}
        self._x = sr.feature_matrix(self.attributes, self._names, self.truth["attribute_mean"],
                                    self.truth["attribute_std"])  # fmt: skip
        self._w_pop = sr.vec(self.truth["population"], self._names)

    def _rows(self, images) -> np.ndarray:
        missing = [im for im in images if im not in self._row]
        if missing:
            raise KeyError(f"{self.root}: image(s) not in this world: {missing[:3]}")
        return np.array([self._row[im] for im in images], dtype=int)

    def taste(self, user: str) -> np.ndarray:
        """The rater's total taste weight vector over :attr:`feature_names`."""
        if user not in self.truth["raters"]:
            raise KeyError(f"{self.root}: no simulated rater {user!r}")
        t = self.truth["raters"][user]
        return self._w_pop + sr.vec(t["profile_part"], self._names) + sr.vec(t["idiosyncratic_part"], self._names)

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    def features(self, images) -> np.ndarray:
        """(n, F) standardised attribute + content features of the given images."""
        return self._x[self._rows(list(images))]

    def oracle(self, user: str, images) -> np.ndarray:
        """Noise-free scores (PARA scale, unquantised) of ``user`` for ``images``."""
        t = self.truth["raters"].get(user)
        u = self.features(images) @ self.taste(user) + t["offset"]
        return sr.squash(u, t["slope"], self.truth["kappa"])

    def population(self, images) -> np.ndarray:
        """Noise-free scores of the population-mean taste (no rater information)."""
        return sr.squash(self.features(images) @ self._w_pop, 1.0, self.truth["kappa"])

    def profile_model(self, profile: Profile, images) -> np.ndarray:
        """Noise-free scores of the taste implied by a profile's structured fields alone (no idiosyncrasy)."""
        w = self._w_pop + sr.profile_part(profile, self._names, self.info["config"]["taste"]["profile_gain"])
        return sr.squash(self.features(images) @ w, 1.0, self.truth["kappa"])

    def benchmark(self):
        from eval.api import Benchmark

        return Benchmark(name="sim", table=self.ratings, folds=self.folds, simulated=True, oracle=self.oracle,
                         meta={"world": str(self.root), "simulated": True, "seed": self.info["seed"],
                               "variance_decomposition": self.info["variance_decomposition"]})  # fmt: skip


def load_world(path: str | Path) -> SimWorld:
    return SimWorld(path)


def default_world_dir(quick: bool) -> Path:
    """``$PIAA_WORLD_DIR`` if set, else ``worlds/sim-quick`` / ``worlds/sim`` under the current directory."""
    env = os.environ.get("PIAA_WORLD_DIR")
    return Path(env) if env else Path("worlds") / ("sim-quick" if quick else "sim")


def ensure_world(quick: bool) -> Path:
    """The default world folder (:func:`default_world_dir`), built there if absent."""
    path = default_world_dir(quick)
    if not (path / "world.json").is_file():
        build_world(path, quick=quick)
    return path
