"""Compare settings of the fast recipe on tuning users kept apart from the benchmark's (prints a table).

Run::

    python -m taskvec.tune --world worlds/sim --users 6:10 --bench-users 6 \\
        --configs '{"1/k": {"l2": 0.01}, "0.3/k": {"l2": 0.003}, "0.1/k": {"l2": 0.001}, "0": {"l2": 0}}'

Users: the test users ``[a:b]`` (sorted by id) of every fold; the run refuses to start if they overlap the first
``--bench-users`` test users of any fold (the ones ``python -m taskvec.bench`` compares the recipes on). Each user's
ratings are split exactly as the bench splits them (``--k`` support images, the rest held out); every config is fit
on the support set and scored by SROCC on that tuning user's held-out ratings. The first config is the baseline of
the paired differences (mean +- standard error over users).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from piaa.schema import RatingsTable
from taskvec.bench import support_split, world_trunk_features
from taskvec.model import DEFAULT_ARTIFACTS, PersonalizedScorer
from taskvec.personalize import fit_fast, srocc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m taskvec.tune", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default=os.environ.get("PIAA_WORLD_DIR", "worlds/sim"))
    ap.add_argument("--artifacts", default=str(DEFAULT_ARTIFACTS))
    ap.add_argument("--users", default="6:10", help="slice a:b of each fold's sorted test users")
    ap.add_argument("--bench-users", type=int, default=6, help="first test users per fold that must not be used")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--configs", default='{"default": {}}', help="JSON {name: fit_fast keyword arguments}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    world = Path(args.world)
    table = RatingsTable.load(world / "ratings")
    folds = json.loads((world / "folds.json").read_text())["folds"]
    lo, hi = (int(v) for v in args.users.split(":"))
    users = [u for f in folds for u in sorted(f["test"])[lo:hi]]
    bench = {u for f in folds for u in sorted(f["test"])[: args.bench_users]}
    if bench & set(users):
        print(f"error: tuning users overlap the benchmark's: {sorted(bench & set(users))[:5]}")
        return 2
    configs = json.loads(args.configs)
    scorer = PersonalizedScorer.from_pretrained(args.artifacts)
    ts = scorer.ts
    feats = world_trunk_features(scorer, table, world)
    index = {img: i for i, img in enumerate(table.images)}
    span = table.scale.max - table.scale.min
    res: dict[str, list[tuple[float, float]]] = {n: [] for n in configs}
    for u in users:
        ur = table.user_ratings(u)
        if len(ur) < args.k + 10:
            continue
        sup, held = support_split(ur, args.seed, u, args.k)
        sf, hf = feats[[index[i] for i in sup["image"]]], feats[[index[i] for i in held["image"]]]
        for name, kw in configs.items():
            fit = fit_fast(ts, sf, sup["score"].to_numpy(), score_range=span, seed=args.seed, **kw)
            pred = ts.scores(hf, ts.merged(fit.coefficients())).numpy()
            res[name].append((srocc(pred, held["score"].to_numpy()), fit.seconds))
        print(f"  {u}: " + ", ".join(f"{n} {v[-1][0]:.3f}" for n, v in res.items()), flush=True)
    base = np.array([v[0] for v in res[next(iter(configs))]])
    print(f"\nfast-recipe tuning, k={args.k}, {len(base)} users (test users {args.users} of each fold), "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'config':<16} {'SROCC':>7} {'diff':>8} {'SE':>7} {'fit s':>6}")
    for name, v in res.items():
        s, t = np.array([x[0] for x in v]), np.array([x[1] for x in v])
        d = s - base
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"{name:<16} {s.mean():7.4f} {d.mean():+8.4f} {se:7.4f} {t.mean():6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
