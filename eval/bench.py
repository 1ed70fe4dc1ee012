"""Speed benchmark of the few-shot model of parts (:mod:`eval.fewshot`): what a user waits for after rating.

Run (prints a table)::

    python -m eval.bench --world worlds/sim --shots 10,100 --users 12

For the first ``--users`` test users of the world (sorted by id) it draws ``k`` rated images per user (seeded) and
times :meth:`eval.fewshot.FewShot.fit` - every part (task-vector fit, its out-of-fold check, the residual ridge's
feature-set and penalty search) and the weighting rule - from frozen features computed beforehand (trunk features,
photo statistics; cached), on ``--threads`` threads. The profile part's predictions are a stand-in array: pmllm's
zero-shot forward is timed by ``python -m pmllm.bench``. Accuracy is not measured here (``python -m eval.run``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def run(args) -> list[dict]:
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
    x = model.from_trunk(trunk, stats)
    index = {img: i for i, img in enumerate(table.images)}
    users = sorted({u for _, test in world.folds for u in test})[: args.users]
    rows = []
    for k in (int(s) for s in args.shots.split(",")):
        times = []
        for ui, user in enumerate(users):
            ur = table.user_ratings(user)
            if len(ur) < k:
                continue
            pick = np.random.default_rng([args.seed, ui, k]).permutation(len(ur))[:k]
            rows_x = x.rows([index[str(i)] for i in ur["image"].to_numpy()[pick]])
            y = ur["score"].to_numpy(dtype=np.float64)[pick]
            zero = np.random.default_rng(ui).normal(size=k)  # stand-in profile predictions (see the docstring)
            t = time.perf_counter()
            model.fit(user, rows_x, y, table.scale, zero=zero)
            times.append(time.perf_counter() - t)
        if times:
            rows.append({"k": k, "users": len(times), "median_s": float(np.median(times)),
                         "mean_s": float(np.mean(times)), "max_s": float(np.max(times))})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default="worlds/sim")
    ap.add_argument("--shots", default="10,100")
    ap.add_argument("--users", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    rows = run(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nfew-shot model of parts: fit time per user ({args.threads} threads, load average {load:.2f})\n")
    print("| k | users | median s | mean s | max s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['k']} | {r['users']} | {r['median_s']:.3f} | {r['mean_s']:.3f} | {r['max_s']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
