"""Build a simulated world folder: images x recorded edits, simulated raters, scoring databases, folds, truth.

``world.json`` is written last and signals readiness; the folder layout is read by :class:`piaa.worlds.WorldFolder`.
Same arguments -> byte-identical ratings, attributes and images. Used by ``python -m eval.sim`` (see
``eval/sim/__init__.py``); the generative model is documented in ``eval/sim/SIM.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

from piaa.photos import Photo, bundled_photos, folder_photos, pool_available, pool_photos, pool_sources
from piaa.schema import PARA_SCALE, Profile, RatingsTable

from . import images as si
from . import raters as sr
from .text import describe

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

    ``size`` overrides ``quick`` ("tiny", "quick", "full" or a :class:`WorldSize`). ``photos``: ``None`` = the
    photo pool when it is present and verifies (``make photos``), else the bundled photos; ``"pool"`` / ``"bundled"``
    force one; any other value is a folder of photos. ``world.json: config.sources`` records the pictures used.
    Same arguments (and the same photos) -> byte-identical ratings, attributes and images.
    """
    t0 = time.time()
    out = Path(out)
    size = SIZES[size] if isinstance(size, str) else size or SIZES["quick" if quick else "full"]
    taste = taste or sr.TasteConfig()
    if size.ratings_per_rater > size.n_piaa:
        raise ValueError(f"ratings_per_rater={size.ratings_per_rater} exceeds n_piaa={size.n_piaa}")
    src, photos_label = source_photos(photos)
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
    folds = make_folds(sorted(raters), seed, size.n_folds)
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
            "photos": photos_label,
            "sources": describe_sources(src, photos_label),
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


def source_photos(photos: str | Path | None) -> tuple[list[Photo], str]:
    """(source photos, label for world.json): the pool, the bundled photos or a folder (see :func:`build_world`)."""
    if photos is None:
        photos = "pool" if pool_available() else "bundled"
    if photos == "pool":
        return pool_photos(), "pool"
    if photos == "bundled":
        return bundled_photos(), "bundled"
    return folder_photos(photos), str(photos)


def describe_sources(src: list[Photo], label: str) -> list[dict]:
    """What world.json records per source picture: name, content, and (pool/bundled) package, path, sha256."""
    known = pool_sources() if label in ("pool", "bundled") else {}
    out = []
    for p in src:
        row = {"name": p.name, "content": p.content}
        if p.name in known:
            row.update({k: known[p.name][k] for k in ("package", "path", "sha256")})
        else:
            row["source"] = label
        out.append(row)
    return out


def fold_of(user: str, seed: int, n_folds: int) -> int:
    """The fold a user is tested in, a seeded function of the user id alone (never of the user list), so a smaller
    world with the same seed puts each of its users in the same fold as a larger one (``u007`` is the same
    simulated person in both: raters are seeded by index).

    Simulated ids ``uNNN`` are taken in blocks of ``n_folds`` consecutive indices, each block spread over all folds
    by a permutation seeded by ``(seed, block)`` (so folds are balanced whenever the rater count is a multiple of
    ``n_folds``); any other id goes to the fold given by a seeded SHA-256 hash of the id.
    """
    m = re.fullmatch(r"u(\d+)", user)
    if m:
        block, pos = divmod(int(m.group(1)), n_folds)
        return int(np.random.default_rng([seed, 4, block]).permutation(n_folds)[pos])
    digest = hashlib.sha256(f"piaa-sim-fold:{seed}:{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_folds


def make_folds(users: list[str], seed: int, n_folds: int) -> list[dict[str, list[str]]]:
    """``n_folds`` user-disjoint folds ``{"train": [...], "test": [...]}`` by :func:`fold_of`."""
    group = {u: fold_of(u, seed, n_folds) for u in users}
    return [{"train": sorted(u for u in users if group[u] != f), "test": sorted(u for u in users if group[u] == f)}
            for f in range(n_folds)]  # fmt: skip


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
