"""The simulated taste world: real photos x recorded edits, simulated raters with PARA-style profiles.

The only place in this project where learning can be measured (no real PIAA images/ratings ship with it). Every
number derived from it is *simulated*. The generative model is documented in ``eval/SIM.md``.

Build a world folder (contract in the project brief; ``world.json`` is written last and signals readiness)::

    python -m eval.sim --out worlds/sim-quick --quick      # ~1000 PIAA images, 4 x 600 database images, 80 raters
    python -m eval.sim --out worlds/sim                    # ~2500 PIAA images, 4 x 1500, 240 raters
    python -m eval.sim --out DIR --photos my_photos/       # your own photos (content label = sub-folder name)

Python API (the harness may import it; ``pmllm``/``taskvec`` read the folders instead)::

    from eval.sim import build_world, load_world, ensure_world
    world = load_world(ensure_world(quick=True))
    bench = world.benchmark()                 # eval.api.Benchmark(name="sim", simulated=True, oracle=world.oracle)
    world.oracle("u000", ["piaa_00001.jpg"])  # noise-free scores on the PARA scale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

from piaa.schema import PARA_SCALE, Profile, RatingsTable, SchemaError

from . import sim_images as si
from . import sim_raters as sr
from .sim_text import describe

DB_INDEX_BASE = 1_000_000  # image index offset per database pool (pools never share an edit index)


@dataclass(frozen=True)
class WorldSize:
    n_piaa: int
    n_db: int  # images per database
    n_raters: int
    ratings_per_rater: int
    n_folds: int = 4


SIZES = {
    "full": WorldSize(2500, 1500, 240, 280),
    "quick": WorldSize(1000, 600, 80, 280),
    "tiny": WorldSize(48, 16, 12, 40),  # unit tests
}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ build
def build_world(
    out: str | Path,
    *,
    seed: int = 0,
    quick: bool = False,
    photos: str | Path | None = None,
    size: str | WorldSize | None = None,
    taste: sr.TasteConfig | None = None,
    workers: int | None = None,
    verbose: bool = True,
) -> Path:
    """Build a world folder at ``out`` (built in a temporary sibling folder, then renamed into place).

    ``size`` overrides ``quick`` ("tiny", "quick", "full" or a :class:`WorldSize`); ``photos`` is a folder of
    photos replacing the bundled ones. Same arguments -> byte-identical ratings, attributes and images.
    """
    t0 = time.time()
    out = Path(out)
    size = SIZES[size] if isinstance(size, str) else size or SIZES["quick" if quick else "full"]
    taste = taste or sr.TasteConfig()
    if size.ratings_per_rater > size.n_piaa:
        raise ValueError(f"ratings_per_rater={size.ratings_per_rater} exceeds n_piaa={size.n_piaa}")
    src = si.folder_photos(photos) if photos else si.bundled_photos()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    # ---- images + attributes
    jobs = [(i, f"piaa_{i:05d}.jpg") for i in range(size.n_piaa)]
    for k, db in enumerate(sr.DATABASES):
        jobs += [(DB_INDEX_BASE * (k + 1) + j, f"{db}_{j:05d}.jpg") for j in range(size.n_db)]
    rows = si.make_images(jobs, src, seed, tmp / "images", workers=workers, desc="simulated world images")
    attrs = pd.DataFrame(rows)
    attrs.insert(1, "pool", ["piaa"] * size.n_piaa + [db for db in sr.DATABASES for _ in range(size.n_db)])
    attrs = attrs[["image", "pool", "source", "content", *si.EDIT_FIELDS, *si.ATTRIBUTES]]
    attrs.to_csv(tmp / "attributes.csv", index=False, float_format="%.6g")
    # re-read so that features are computed from exactly what load_world sees
    attrs = pd.read_csv(tmp / "attributes.csv", dtype={"image": str, "content": str})

    piaa = attrs[attrs["pool"] == "piaa"].reset_index(drop=True)
    names, mean, std = feature_space(attrs)
    frames, profiles, raters, parts = simulate_raters(piaa, names, mean, std, seed=seed, size=size, taste=taste,
                                                      verbose=verbose)  # fmt: skip
    w_pop = sr.vec(sr.POPULATION, names)
    ratings = RatingsTable(pd.concat(frames, ignore_index=True), PARA_SCALE, profiles, tmp / "images", "sim")
    _save_table(ratings, tmp / "ratings")

    # ---- scoring databases (disjoint image pools)
    for k, db in enumerate(sr.DATABASES):
        pool = attrs[attrs["pool"] == db].reset_index(drop=True)
        scores = sr.database_scores(sr.feature_matrix(pool, names, mean, std), names, db,
                                    np.random.default_rng([seed, 3, k]), taste)  # fmt: skip
        table = RatingsTable(pd.DataFrame({"image": pool["image"], "user": db, "score": scores}),
                             sr.DATABASES[db][0], {}, tmp / "images", db)  # fmt: skip
        _save_table(table, tmp / "databases" / db)

    # ---- folds, hidden truth, summary (world.json last)
    users = sorted(raters)
    order = np.random.default_rng([seed, 4]).permutation(len(users))
    groups = [sorted(users[i] for i in order[f :: size.n_folds]) for f in range(size.n_folds)]
    folds = [{"train": sorted(u for g in groups[:f] + groups[f + 1 :] for u in g), "test": groups[f]}
             for f in range(size.n_folds)]  # fmt: skip
    (tmp / "folds.json").write_text(json.dumps({"folds": folds}, indent=1))
    truth = {
        "simulated": True,
        "features": names,
        "attribute_mean": mean,
        "attribute_std": std,
        "population": dict(zip(names, w_pop.tolist())),
        "kappa": taste.kappa,
        "databases": {db: {"scale": s.to_dict(), "taste": t} for db, (s, _, t) in sr.DATABASES.items()},
        "raters": raters,
    }
    (tmp / "truth").mkdir()
    (tmp / "truth" / "tastes.json").write_text(json.dumps(truth, indent=1))
    decomposition = variance_decomposition(parts, taste.kappa)
    world = {
        "simulated": True,
        "seed": seed,
        "config": {
            "size": asdict(size),
            "taste": asdict(taste),
            "photos": str(photos) if photos else "bundled",
            "sources": [{"name": p.name, "content": p.content} for p in src],
            "scale": PARA_SCALE.to_dict(),
            "features": names,
        },  # fmt: skip
        "variance_decomposition": decomposition,
        "databases": list(sr.DATABASES),
        "counts": {
            "piaa_images": size.n_piaa,
            "database_images": size.n_db,
            "raters": size.n_raters,
            "ratings": len(ratings.ratings),
        },  # fmt: skip
    }
    (tmp / "world.json").write_text(json.dumps(world, indent=1))
    _swap_into_place(tmp, out)
    if verbose:
        print(f"simulated world written to {out} in {time.time() - t0:.0f}s")
        print(format_decomposition(decomposition))
    return out


def feature_space(attrs: pd.DataFrame) -> tuple[list[str], dict, dict]:
    """Feature names and the attribute standardisation (mean/std over the PIAA pool)."""
    piaa = attrs[attrs["pool"] == "piaa"]
    names = sr.feature_names(sorted(attrs["content"].unique()))
    mean = {a: float(piaa[a].mean()) for a in si.ATTRIBUTES}
    std = {a: float(piaa[a].std()) or 1.0 for a in si.ATTRIBUTES}
    return names, mean, std


def simulate_raters(
    piaa: pd.DataFrame, names: list[str], mean: dict, std: dict, *, seed: int, size: WorldSize,
    taste: sr.TasteConfig, verbose: bool = False,
) -> tuple[list[pd.DataFrame], dict[str, Profile], dict[str, dict], pd.DataFrame]:  # fmt: skip
    """Profiles, tastes, texts and ratings of the PIAA raters: (rating frames, profiles, truth, parts)."""
    x = sr.feature_matrix(piaa, names, mean, std)
    feature_sd = x.std(axis=0)
    w_pop = sr.vec(sr.POPULATION, names)
    raters, profiles, frames, parts = {}, {}, [], []
    for r in tqdm(range(size.n_raters), desc="simulated raters", leave=False, disable=not verbose):
        rng = np.random.default_rng([seed, 2, r])
        user = f"u{r:03d}"
        prof = sr.sample_profile(rng)
        w_prof = sr.profile_part(prof, names, taste.profile_gain)
        is_content = np.array([n.startswith("content:") for n in names])
        w_idio = rng.normal(0, 1, len(names)) * np.where(is_content, taste.idio_content_sd, taste.idio_sd)
        if rng.random() < taste.passion_prob:
            j = int(rng.integers(len(names)))
            w_idio[j] += rng.choice([-1.0, 1.0]) * taste.passion_size * (2.0 if is_content[j] else 1.0)
        offset = float(rng.normal(0, taste.offset_sd))
        slope = float(np.exp(rng.normal(0, taste.slope_sd)))
        noise_sd = float(taste.noise_sd * np.exp(rng.normal(0, 0.25)))
        total = w_pop + w_prof + w_idio
        text, mentioned = describe(rng, names, w_prof + w_idio, total, feature_sd)
        prof.text = text
        profiles[user] = prof
        idx = np.sort(rng.choice(size.n_piaa, size=size.ratings_per_rater, replace=False))
        xi = x[idx]
        u_pop, u_prof, u_idio = xi @ w_pop, xi @ w_prof, xi @ w_idio + offset
        noise = rng.normal(0, noise_sd, len(idx))
        score = sr.quantize_para(sr.squash(u_pop + u_prof + u_idio + noise, slope, taste.kappa))
        frames.append(pd.DataFrame({"image": piaa["image"].to_numpy()[idx], "user": user, "score": score}))
        parts.append(pd.DataFrame({"user": user, "pop": u_pop, "prof": u_prof, "idio": u_idio, "noise": noise,
                                   "slope": slope, "score": score}))  # fmt: skip
        raters[user] = {
            "profile_part": dict(zip(names, np.round(w_prof, 6).tolist())),
            "idiosyncratic_part": dict(zip(names, np.round(w_idio, 6).tolist())),
            "offset": round(offset, 6), "slope": round(slope, 6), "noise_sd": round(noise_sd, 6),
            "mentioned": mentioned,
        }  # fmt: skip
    return frames, profiles, raters, pd.concat(parts, ignore_index=True)


def _save_table(table: RatingsTable, folder: Path) -> None:
    table.save(folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["image_root"] = os.path.relpath(table.image_root, folder)  # "../images" / "../../images": relocatable
    meta["simulated"] = True
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is renamed away first and then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ analysis
def variance_decomposition(parts: pd.DataFrame, kappa: float) -> dict:
    """How much of the simulated ratings each generative part explains.

    ``latent``: variance shares of the independent utility parts (population / profile / idiosyncratic incl. the
    rater offset / rating noise), summing to 1. ``score`` and ``score_within_user``: sequential R^2 on the
    observed PARA scores (all ratings pooled, and after removing each rater's mean): R^2 of the population-only
    prediction, gain from adding the profile part, gain from the full (oracle) taste, and the rest (noise incl.
    quantisation). ``per_user_srocc``: mean per-rater Spearman of the observed scores with each prediction.
    """
    comp = {"population": parts["pop"], "profile": parts["prof"], "idiosyncratic": parts["idio"],
            "noise": parts["noise"]}  # fmt: skip
    var = {k: float(np.var(v)) for k, v in comp.items()}
    tot = sum(var.values())
    latent = {k: v / tot for k, v in var.items()}
    preds = {
        "population": sr.squash(parts["pop"].to_numpy(), 1.0, kappa),
        "profile": sr.squash((parts["pop"] + parts["prof"]).to_numpy(), 1.0, kappa),
        "oracle": sr.squash((parts["pop"] + parts["prof"] + parts["idio"]).to_numpy(), parts["slope"], kappa),
    }
    obs = parts["score"].to_numpy()

    def shares(y, p):
        r2 = [float(np.corrcoef(y, p[k])[0, 1] ** 2) for k in ("population", "profile", "oracle")]
        return {"population": r2[0], "profile": r2[1] - r2[0], "idiosyncratic": r2[2] - r2[1], "noise": 1 - r2[2]}

    g = parts["user"].to_numpy()

    def centred(v):
        return v - pd.Series(v).groupby(g).transform("mean").to_numpy()

    srocc = {k: [] for k in preds}
    for _, idx in parts.groupby("user").indices.items():
        for k, p in preds.items():
            srocc[k].append(spearmanr(obs[idx], p[idx]).statistic)
    return {
        "simulated": True,
        "latent": latent,
        "score": shares(obs, preds),
        "score_within_user": shares(centred(obs), {k: centred(v) for k, v in preds.items()}),
        "per_user_srocc": {k: float(np.nanmean(v)) for k, v in srocc.items()},
        "score_mean": float(obs.mean()),
        "score_sd": float(obs.std()),
    }


def format_decomposition(d: dict) -> str:
    rows = ["Variance decomposition of the SIMULATED ratings (shares of variance):",
            f"{'part':<15}{'latent':>9}{'score':>9}{'within-user':>13}"]  # fmt: skip
    for k in ("population", "profile", "idiosyncratic", "noise"):
        rows.append(f"{k:<15}{d['latent'][k]:>9.3f}{d['score'][k]:>9.3f}{d['score_within_user'][k]:>13.3f}")
    s = d["per_user_srocc"]
    rows.append(
        f"simulated per-user SROCC with observed scores: population-only {s['population']:.3f}, "
        f"+profile {s['profile']:.3f}, oracle {s['oracle']:.3f}  (scores mean {d['score_mean']:.2f}, "
        f"sd {d['score_sd']:.2f})"
    )
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ load
class SimWorld:
    """A loaded world folder: ratings, databases, folds, attributes and the hidden truth behind the oracle."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        wfile = self.root / "world.json"
        if not wfile.is_file():
            raise SchemaError(f"{wfile}: missing - not a (finished) simulated world; build with python -m eval.sim")
        self.info = json.loads(wfile.read_text())
        self.ratings = RatingsTable.load(self.root / "ratings")
        self.databases = {db: RatingsTable.load(self.root / "databases" / db) for db in self.info["databases"]}
        folds = json.loads((self.root / "folds.json").read_text())["folds"]
        self.folds = [(list(f["train"]), list(f["test"])) for f in folds]
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
        from .api import Benchmark

        return Benchmark(name="sim", table=self.ratings, folds=self.folds, simulated=True, oracle=self.oracle,
                         meta={"world": str(self.root), "simulated": True, "seed": self.info["seed"],
                               "variance_decomposition": self.info["variance_decomposition"]})  # fmt: skip


def load_world(path: str | Path) -> SimWorld:
    return SimWorld(path)


def ensure_world(quick: bool) -> Path:
    """The world folder ``$PIAA_WORLD_DIR`` (if set) or ``worlds/sim-quick`` / ``worlds/sim``; built if absent."""
    env = os.environ.get("PIAA_WORLD_DIR")
    path = Path(env) if env else _repo_root() / "worlds" / ("sim-quick" if quick else "sim")
    if not (path / "world.json").is_file():
        build_world(path, quick=quick)
    return path


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eval.sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="world folder to write (replaced atomically if it exists)")
    ap.add_argument("--quick", action="store_true", help="the quick size (~1000 PIAA images, 80 raters)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photos", default=None, help="folder of photos to use instead of the bundled ones")
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="explicit size (overrides --quick)")
    ap.add_argument("--workers", type=int, default=None, help="image worker processes (default: up to 4)")
    args = ap.parse_args(argv)
    try:
        build_world(args.out, seed=args.seed, quick=args.quick, photos=args.photos, size=args.size,
                    workers=args.workers)  # fmt: skip
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
