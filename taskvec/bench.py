"""Benchmark: per-user fit time and query SROCC of the reference (yun2024) vs fast recipe, and scoring throughput.

Run (prints tables; results on a simulated world are labelled "simulated")::

    python -m taskvec.bench --world worlds/sim --shots 10,100 --users-per-fold 10 --ref-users 6

Protocol: for every fold of ``WORLD/folds.json``, test users only. Each user's rated images are shuffled with a
per-(seed, user, k) RNG; the first k are the support set, all the others the query set (the same split for every
recipe). Both recipes get the same cached trunk features of the support images (the trunk is frozen and identical
in every task model); "fit s" is the wall time of the recipe call from those features to alpha, on ``--threads``
threads. "encode s" (decoding + trunk for k support images) is the same for both and reported separately. The
reference runs on the first ``--ref-users`` users of each fold only (it is slow on CPU); the paired table compares
the recipes on exactly those users. Baselines on the same queries: ``prior`` (uniform alpha, no fitting) and
``population-mean`` (ridge on frozen pooled EfficientNet-Lite0 features -> mean score over the fold's training
users, like the harness's baseline). The paired table gives the mean per-user difference fast - reference and its
standard error (std of the per-user differences / sqrt(users)). Throughput: images/s of
``PersonalizedScorer.score`` (decode + trunk + tail/head) on the first ``--throughput`` photos as JPEG files,
re-encoded at ``--jpeg-size`` (default 1600x1067, quality 90; ``0`` = the world's files as they are) into a
temporary folder before timing, with ``--workers`` decoding threads.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from piaa.schema import RatingsTable
from taskvec.model import DEFAULT_ARTIFACTS, PersonalizedScorer
from taskvec.personalize import create_recipe, srocc


def _rng(seed: int, user: str, k: int) -> np.random.Generator:
    return np.random.default_rng([seed, int.from_bytes(user.encode()[:8].ljust(8, b"\0"), "little") % 2**32, k])


def support_split(ratings, seed: int, user: str, k: int):
    """The seeded split of one user's ratings (rows of ``RatingsTable.user_ratings``): (first k = support, rest)."""
    order = _rng(seed, user, k).permutation(len(ratings))
    return ratings.iloc[order[:k]], ratings.iloc[order[k:]]


def world_trunk_features(scorer: PersonalizedScorer, table: RatingsTable, world: Path) -> torch.Tensor:
    """Frozen trunk outputs of every image of ``table`` (row order ``table.images``), cached per world."""
    from piaa.models import cache_dir

    return scorer.features([table.image_path(i) for i in table.images], progress=True,
                           cache=cache_dir() / "taskvec" / f"bench-{world.name}-trunk.safetensors")  # fmt: skip


def population_mean_predictions(pooled: dict[str, np.ndarray], table: RatingsTable, train_users: list[str]):
    from piaa.stats import fit_population_ridge

    means = table.for_users(train_users).mean_scores()
    predict = fit_population_ridge(np.stack([pooled[i] for i in means.index]), means.to_numpy()).predict
    return lambda images: predict(np.stack([pooled[i] for i in images]))


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    world = Path(args.world)
    simulated = json.loads((world / "world.json").read_text()).get("simulated", False) if (
        world / "world.json").is_file() else False  # fmt: skip
    label = "simulated" if simulated else "real"
    table = RatingsTable.load(world / "ratings")
    folds = json.loads((world / "folds.json").read_text())["folds"]
    scorer = PersonalizedScorer.from_pretrained(args.artifacts)
    ts = scorer.ts
    images = table.images
    t0 = time.perf_counter()
    feats = world_trunk_features(scorer, table, world)
    print(f"trunk features for {len(images)} images: {time.perf_counter() - t0:.1f} s (cached after the first run)")
    index = {img: i for i, img in enumerate(images)}
    with torch.no_grad():  # theta_0's tail = the frozen encoder's pooled features (for the ridge baseline)
        pooled_t = torch.cat([ts.model.tail(feats[i : i + 256].float()) for i in range(0, len(feats), 256)])
    pooled = {img: pooled_t[i].numpy() for i, img in enumerate(images)}
    prior = {k: torch.full((ts.num_tasks,), 1.0 / ts.num_tasks) for k in ts.keys}
    span = table.scale.max - table.scale.min
    shots = [int(s) for s in args.shots.split(",")]
    rows = []
    reuse = {}
    if args.ref_from:
        prev = json.loads(Path(args.ref_from).read_text())
        same = {"world": world.resolve().name, "seed": args.seed}
        if prev.get("args", same) != same:
            raise SystemExit(f"--ref-from {args.ref_from}: made with {prev['args']}, this run is {same}")
        reuse = {(r["fold"], r["user"], r["k"]): r for r in prev["rows"] if "yun2024" in r}
    for fi, fold in enumerate(folds[: args.folds]):
        base = population_mean_predictions(pooled, table, fold["train"])
        first = args.user_offset
        for ui, user in enumerate(sorted(fold["test"])[first : first + args.users_per_fold]):
            ur = table.user_ratings(user)
            for k in shots:
                if len(ur) < k + 10:
                    continue
                sup, qry = support_split(ur, args.seed, user, k)
                sf = feats[[index[i] for i in sup["image"]]]
                qf = feats[[index[i] for i in qry["image"]]]
                yq = qry["score"].to_numpy()
                rec = {"fold": fi, "user": user, "k": k, "n_query": len(qry),
                       "prior": srocc(ts.scores(qf, ts.merged(prior)).numpy(), yq),
                       "population-mean": srocc(base(list(qry["image"])), yq)}  # fmt: skip
                ref_k = [int(x) for x in args.ref_shots.split(",")] if args.ref_shots else shots
                recipes = ["fast"] + (["yun2024"] if ui < args.ref_users and k in ref_k else [])
                old = reuse.get((fi, user, k)) if "yun2024" in recipes else None
                if old is not None:  # the reference is deterministic given world, seed and split: reuse its row
                    if old["n_query"] != len(qry):
                        raise SystemExit(f"--ref-from: {user} k={k}: {old['n_query']} queries there, {len(qry)} here")
                    rec.update({"yun2024": old["yun2024"], "yun2024_s": old["yun2024_s"], "yun2024_reused": True})
                    recipes.remove("yun2024")
                for name in recipes:
                    try:
                        res = create_recipe(name)(ts, sf, sup["score"].to_numpy(), score_range=span, seed=args.seed)
                    except ValueError as err:
                        print(f"  skip {user} k={k} {name}: {err}")
                        continue
                    rec[name] = srocc(ts.scores(qf, ts.merged(res.coefficients())).numpy(), yq)
                    rec[f"{name}_s"] = res.seconds
                rows.append(rec)
                if args.json:  # after every user, so an interrupted run keeps what it measured
                    Path(args.json).write_text(json.dumps({"rows": rows, "label": label, "partial": True}, indent=1))
                print(f"  [{label}] fold {fi} {user} k={k}: " + ", ".join(
                    f"{n} {rec[n]:.3f}" + (f" ({rec[n + '_s']:.2f} s)" if n + "_s" in rec else "")
                    for n in ("prior", "population-mean", "fast", "yun2024") if n in rec), flush=True)  # fmt: skip
    return {"rows": rows, "label": label, "args": {"world": world.resolve().name, "seed": args.seed},
            "ref_from": args.ref_from, "load_avg_end": os.getloadavg(),
            "throughput": throughput(scorer, table, args) if args.throughput else None}  # fmt: skip


def _jpeg_size(text: str) -> tuple[int, int] | None:
    """``"WxH"`` -> (W, H); ``"0"`` -> None (use the world's files as they are)."""
    if text.strip() == "0":
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH (e.g. 1600x1067) or 0, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def throughput(scorer: PersonalizedScorer, table: RatingsTable, args) -> dict:
    """images/s of ``PersonalizedScorer.score`` on the first ``--throughput`` photos, as JPEG files.

    With ``--jpeg-size WxH`` the photos are first re-encoded at that size (quality 90) into a temporary folder
    (not timed), so decoding costs what a camera-sized JPEG costs; ``0`` scores the world's files as they are.
    """
    import tempfile

    from PIL import Image

    src = [table.image_path(i) for i in table.images[: args.throughput]]
    size = args.jpeg_size
    with tempfile.TemporaryDirectory(prefix="taskvec-bench-") as tmp:
        if size is None:
            paths = src
            with Image.open(src[0]) as im:
                shown = f"{im.width}x{im.height} (world files)"
        else:
            paths = []
            for i, p in enumerate(src):
                with Image.open(p) as im:
                    im.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(
                        Path(tmp) / f"{i:05d}.jpg", quality=90
                    )
                paths.append(Path(tmp) / f"{i:05d}.jpg")
            shown = f"{size[0]}x{size[1]} (re-encoded, quality 90)"
        scorer.score(paths[:32], None, batch_size=32, workers=args.workers)  # warm-up (BN folding, allocator)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        scorer.score(paths, None, batch_size=32, workers=args.workers)
        dt = time.perf_counter() - t0
    return {"images_per_s": len(paths) / dt, "n": len(paths), "size": shown, "threads": args.threads,
            "workers": args.workers, "load_avg": load, "load_avg_end": os.getloadavg()[0]}  # fmt: skip


def summarize(result: dict) -> str:
    rows, label = result["rows"], result["label"]
    lines = [f"taskvec benchmark ({label} world; SROCC on each user's query images, mean over users)", ""]
    hdr = f"{'k':>5} {'scorer':<16} {'users':>5} {'SROCC':>7} {'fit s/user':>11}"
    lines += [hdr, "-" * len(hdr)]
    for k in sorted({r["k"] for r in rows}):
        rk = [r for r in rows if r["k"] == k]
        for name in ("population-mean", "prior", "fast", "yun2024"):
            vals = [r[name] for r in rk if name in r]
            if vals:
                t = [r[name + "_s"] for r in rk if name + "_s" in r]
                ts = f"{np.mean(t):11.2f}" if t else f"{'-':>11}"
                lines.append(f"{k:>5} {name:<16} {len(vals):>5} {np.mean(vals):7.3f} {ts}")
    reused = sum(1 for r in rows if r.get("yun2024_reused"))
    note = f"; reference SROCC and s/user of {reused} users reused from {result['ref_from']}" if reused else ""
    lines += ["", f"paired (users where both recipes ran{note}):",
              f"{'k':>5} {'users':>5} {'fast SROCC':>11} {'ref SROCC':>10} {'diff':>7} {'SE':>6} {'fast s':>7} "
              f"{'ref s':>7} {'speed-up':>9}"]  # fmt: skip
    for k in sorted({r["k"] for r in rows}):
        rk = [r for r in rows if r["k"] == k and "yun2024" in r and "fast" in r]
        if rk:
            f, y = np.mean([r["fast"] for r in rk]), np.mean([r["yun2024"] for r in rk])
            fs, ys = np.mean([r["fast_s"] for r in rk]), np.mean([r["yun2024_s"] for r in rk])
            d = np.array([r["fast"] - r["yun2024"] for r in rk])
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            lines.append(f"{k:>5} {len(rk):>5} {f:11.3f} {y:10.3f} {d.mean():+7.3f} {se:6.3f} {fs:7.2f} {ys:7.2f} "
                         f"{ys / fs:8.1f}x")  # fmt: skip
    if any("yun2024" in r and "fast" in r for r in rows):
        lines.append("(diff: mean over users of fast - reference SROCC; SE: std of the per-user diffs / sqrt(users))")
    tp = result.get("throughput")
    if tp:
        lines += ["", f"scoring throughput from JPEG files: {tp['images_per_s']:.1f} images/s ({tp['n']} images of "
                      f"{tp['size']}, {tp['threads']} threads, {tp['workers']} decode workers, load average "
                      f"{tp['load_avg']:.2f} at start, {tp['load_avg_end']:.2f} at end)"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m taskvec.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default=os.environ.get("PIAA_WORLD_DIR", "worlds/sim"))
    ap.add_argument("--artifacts", default=str(DEFAULT_ARTIFACTS))
    ap.add_argument("--shots", default="10,100")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--users-per-fold", type=int, default=10)
    ap.add_argument("--user-offset", type=int, default=0, help="skip this many test users (sorted by id) per fold")
    ap.add_argument("--ref-users", type=int, default=2, help="users per fold that also run the slow reference")
    ap.add_argument("--ref-shots", default=None, help="shot counts at which the reference runs (default: all)")
    ap.add_argument("--ref-from", default=None,
                    help="reuse the reference's rows (SROCC, s/user) of a previous --json output (same world, "
                         "seed, users, k; the reference is deterministic); the other scorers are re-run")  # fmt: skip
    ap.add_argument("--throughput", type=int, default=256, help="images for the throughput test (0 = skip)")
    ap.add_argument("--jpeg-size", type=_jpeg_size, default=(1600, 1067),
                    help="throughput test: re-encode the photos at WxH, quality 90 (default 1600x1067); "
                         "0 = the world's files as they are")  # fmt: skip
    ap.add_argument("--workers", type=int, default=2, help="JPEG decoding threads for the throughput test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the raw rows here")
    args = ap.parse_args(argv)
    if not (Path(args.world) / "ratings").is_dir():
        print(f"error: {args.world}: not a world folder (no ratings/); build one with `python -m eval.sim`")
        return 2
    result = run(args)
    print()
    print(summarize(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
