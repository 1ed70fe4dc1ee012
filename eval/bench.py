"""Speed benchmark of the few-shot model of parts (:mod:`eval.fewshot`): what a user waits for after rating.

Run (prints a table)::

    python -m eval.bench --world worlds/sim --shots 10,100 --users 12
    python -m eval.bench --check-held-back --shots 5,10,20,100 --users 24   # first-order vs refitted folds

For the first ``--users`` test users of the world (sorted by id) it draws ``k`` rated images per user (seeded) and
times :meth:`eval.fewshot.FewShot.fit` - every part (task-vector fit, its out-of-fold check, the residual ridge's
feature-set and penalty search) and the weighting rule - from frozen features computed beforehand (trunk features,
photo statistics; cached), on ``--threads`` threads. The profile part's predictions are a stand-in array: pmllm's
zero-shot forward is timed by ``python -m pmllm.bench``. Accuracy is not measured here (``python -m eval.run``).
A process's first fit (one-off work: ``torch.optim`` imports ``torch._dynamo``, which the demo and the CLI have
already imported with transformers) is done before the table and printed on its own line.
``--check-held-back`` instead compares the taskvec part's first-order out-of-fold check with exact refits of its
folds, on training users of fold 0.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _setup(args):
    """The world, the few-shot model and every image's part inputs (features cached after the first run)."""
    import torch

    from eval.fewshot import FewShot
    from piaa.features import feature_cache_dir
    from piaa.photostats import photo_stats
    from piaa.worlds import WorldFolder
    from taskvec.model import PersonalizedScorer

    torch.set_num_threads(args.threads)
    world = WorldFolder.open(args.world)
    table = world.ratings
    scorer = PersonalizedScorer.from_pretrained()
    paths = [table.image_path(i) for i in table.images]
    t0 = time.perf_counter()
    trunk = scorer.features(paths, cache=feature_cache_dir(), progress=True)
    stats = photo_stats(paths, cache=feature_cache_dir(), progress=True)
    print(f"features of {len(paths)} images: {time.perf_counter() - t0:.1f} s (cached after the first run)")
    model = FewShot(scorer)
    return world, model, model.from_trunk(trunk, stats)


def _episodes(args, world, x, users, k: int):
    """(user index, user, part inputs of k rated images, their ratings) per user with at least k ratings."""
    table = world.ratings
    index = {img: i for i, img in enumerate(table.images)}
    for ui, user in enumerate(users):
        ur = table.user_ratings(user)
        if len(ur) < k:
            continue
        pick = np.random.default_rng([args.seed, ui, k]).permutation(len(ur))[:k]
        rated = x.rows([index[str(i)] for i in ur["image"].to_numpy()[pick]])
        yield ui, user, rated, ur["score"].to_numpy(dtype=np.float64)[pick]


def first_fit(model, world, x, user, k: int = 10) -> float:
    """Seconds of one fit of k rated images, timed apart from the table: a process's first fit also pays one-off
    work, above all importing ``torch._dynamo`` (``torch.optim`` does on first use), which the demo and the CLI have
    done already (pmllm's transformers imports it), so the table times later fits."""
    idx = np.arange(k)
    scale = world.ratings.scale
    y = scale.quantize(np.linspace(scale.min, scale.max, k))
    zero, words = np.random.default_rng(0).normal(size=(2, k))
    t = time.perf_counter()
    model.fit(user, x.rows(idx), y, scale, zero=zero, words=words)
    return time.perf_counter() - t


def run(args) -> list[dict]:
    world, model, x = _setup(args)
    users = sorted({u for _, test in world.folds for u in test})[: args.users]
    if users:
        print(f"first fit in this process (not in the table): {first_fit(model, world, x, users[0]):.2f} s")
    rows = []
    for k in (int(s) for s in args.shots.split(",")):
        times = []
        for ui, user, rows_x, y in _episodes(args, world, x, users, k):
            zero, words = np.random.default_rng(ui).normal(size=(2, k))  # stand-in profile / words predictions
            t = time.perf_counter()
            model.fit(user, rows_x, y, world.ratings.scale, zero=zero, words=words)
            times.append(time.perf_counter() - t)
        if times:
            rows.append({"k": k, "users": len(times), "median_s": float(np.median(times)),
                         "mean_s": float(np.mean(times)), "max_s": float(np.max(times))})  # fmt: skip
    return rows


def check_held_back(args) -> list[dict]:
    """The taskvec part's first-order out-of-fold predictions against exact refits of every fold, on training
    users of fold 0 (never the users results are reported for): Spearman with the ratings of each, their
    difference, the two predictions' Spearman with each other and the time of each."""
    from dataclasses import replace

    from piaa.stats import srocc

    world, model, x = _setup(args)
    exact = replace(model, held_back="refit")
    users = sorted(world.folds[0][0])[: args.users]
    scale = world.ratings.scale
    rows = []
    for k in (int(s) for s in args.shots.split(",")):
        diff, agree, t_fo, t_ex = [], [], [], []
        for _, user, rows_x, y in _episodes(args, world, x, users, k):
            cache = model._first_cache(rows_x, y)
            tv = model._taskvec(user, rows_x, y, scale, cache)
            t = time.perf_counter()
            fo = model._taskvec_held_back(rows_x, y, scale, tv, cache)
            t_fo.append(time.perf_counter() - t)
            t = time.perf_counter()
            ex = exact._taskvec_held_back(rows_x, y, scale, tv, cache)
            t_ex.append(time.perf_counter() - t)
            if fo is not None:
                diff.append(srocc(fo, y) - srocc(ex, y))
                agree.append(srocc(fo, ex))
        if diff:
            rows.append({"k": k, "users": len(diff), "d_mean": float(np.mean(diff)), "d_sd": float(np.std(diff)),
                         "d_max": float(np.max(np.abs(diff))), "agree_median": float(np.median(agree)),
                         "agree_min": float(np.min(agree)), "first_order_s": float(np.median(t_fo)),
                         "refit_s": float(np.median(t_ex))})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default="worlds/sim")
    ap.add_argument("--shots", default="10,100")
    ap.add_argument("--users", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-held-back", action="store_true",
                    help="compare the taskvec part's first-order held-back check with exact refits of its folds "
                    "(training users of fold 0) instead of timing the fit")  # fmt: skip
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.check_held_back:
        rows = check_held_back(args)
        print(f"\ntaskvec held-back check, first-order vs refit ({args.threads} threads, load average {load:.2f}); "
              "rho: Spearman of the out-of-fold predictions with the ratings\n")  # fmt: skip
        print("| k | users | rho first-order - refit, mean ± SD | max abs | Spearman(first-order, refit) median (min) "
              "| first-order s | refit s |\n|---|---|---|---|---|---|---|")  # fmt: skip
        for r in rows:
            agree = f"{r['agree_median']:.3f} ({r['agree_min']:.3f})"
            print(f"| {r['k']} | {r['users']} | {r['d_mean']:+.4f} ± {r['d_sd']:.4f} | {r['d_max']:.3f} | {agree} | "
                  f"{r['first_order_s']:.3f} | {r['refit_s']:.3f} |")  # fmt: skip
        return 0
    rows = run(args)
    print(f"\nfew-shot model of parts: fit time per user ({args.threads} threads, load average {load:.2f})\n")
    print("| k | users | median s | mean s | max s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['k']} | {r['users']} | {r['median_s']:.3f} | {r['mean_s']:.3f} | {r['max_s']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
