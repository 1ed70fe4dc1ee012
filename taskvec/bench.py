"""Speed benchmark of taskvec: per-user fit time of the fast vs the reference (yun2024) recipe, and throughput.

Run (prints tables)::

    python -m taskvec.bench --world worlds/sim --shots 10,100 --users 12 --ref-users 4

Accuracy is not measured here: ``python -m eval.run --preset taskvec`` compares the recipes' per-user SROCC on
the harness's episodes. This script times what a user waits for. For the first ``--users`` test users (sorted by
id, across the world's folds) it draws ``k`` support images per user (seeded), gives both recipes the same cached
trunk features (the trunk is frozen and identical in every task model) and times the recipe call from those
features to alpha on ``--threads`` threads; the reference runs on the first ``--ref-users`` of them only (it is
slow on CPU). Throughput: images/s of ``PersonalizedScorer.score`` (decode + trunk + tail/head) on the first
``--throughput`` photos as JPEG files, re-encoded at ``--jpeg-size`` (default 1600x1067, quality 90; ``0`` = the
world's files as they are) into a temporary folder before timing, with ``--workers`` decoding threads.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from piaa.schema import RatingsTable, SchemaError
from piaa.worlds import WorldFolder
from taskvec.model import DEFAULT_ARTIFACTS, PersonalizedScorer
from taskvec.personalize import create_recipe


def world_trunk_features(scorer: PersonalizedScorer, table: RatingsTable) -> torch.Tensor:
    """Frozen trunk outputs of every image of ``table`` (row order ``table.images``), cached by content."""
    from piaa.features import feature_cache_dir

    return scorer.features([table.image_path(i) for i in table.images], progress=True,
                           cache=feature_cache_dir())  # fmt: skip


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    world = WorldFolder.open(args.world)
    table = world.ratings
    scorer = PersonalizedScorer.from_pretrained(args.artifacts)
    t0 = time.perf_counter()
    feats = world_trunk_features(scorer, table)
    print(f"trunk features for {len(table.images)} images: {time.perf_counter() - t0:.1f} s (cached after the first "
          "run)")  # fmt: skip
    index = {img: i for i, img in enumerate(table.images)}
    span = table.scale.range
    users = sorted({u for _, test in world.folds for u in test})[: args.users]
    rows = []
    for ui, user in enumerate(users):
        ur = table.user_ratings(user)
        for k in (int(s) for s in args.shots.split(",")):
            if len(ur) < k:
                continue
            order = np.random.default_rng([args.seed, ui, k]).permutation(len(ur))[:k]
            sup = ur.iloc[order]
            sf = feats[[index[i] for i in sup["image"]]]
            rec = {"user": user, "k": k}
            for name in ["fast"] + (["yun2024"] if ui < args.ref_users else []):
                res = create_recipe(name)(scorer.ts, sf, sup["score"].to_numpy(), scale_range=span, seed=args.seed)
                rec[f"{name}_s"] = res.seconds
            rows.append(rec)
            print(f"  {user} k={k}: " + ", ".join(f"{n} {rec[n + '_s']:.2f} s" for n in ("fast", "yun2024")
                                                  if n + "_s" in rec), flush=True)  # fmt: skip
    return {"rows": rows, "label": world.label, "load_avg_end": os.getloadavg(),
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
        scorer.score(paths[:32], user=None, batch_size=32, workers=args.workers)  # warm-up (BN folding, allocator)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        scorer.score(paths, user=None, batch_size=32, workers=args.workers)
        dt = time.perf_counter() - t0
    return {"images_per_s": len(paths) / dt, "n": len(paths), "size": shown, "threads": args.threads,
            "workers": args.workers, "load_avg": load, "load_avg_end": os.getloadavg()[0]}  # fmt: skip


def summarize(result: dict) -> str:
    rows = result["rows"]
    lines = [f"taskvec fit time per user ({result['label']} world's ratings; seconds from cached trunk features to "
             "alpha)", ""]  # fmt: skip
    hdr = f"{'k':>5} {'users':>5} {'fast s':>7} {'fast median':>11} {'ref users':>9} {'ref s':>7} {'speed-up':>9}"
    lines += [hdr, "-" * len(hdr)]
    for k in sorted({r["k"] for r in rows}):
        fast = np.array([r["fast_s"] for r in rows if r["k"] == k])
        both = [r for r in rows if r["k"] == k and "yun2024_s" in r]
        ref = f"{np.mean([r['yun2024_s'] for r in both]):7.2f}" if both else f"{'-':>7}"
        ratio = f"{np.mean([r['yun2024_s'] / r['fast_s'] for r in both]):8.1f}x" if both else f"{'-':>9}"
        lines.append(f"{k:>5} {len(fast):>5} {fast.mean():7.2f} {np.median(fast):11.2f} {len(both):>9} {ref} {ratio}")
    lines.append("(speed-up: mean over the users where both ran of reference s / fast s)")
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
    ap.add_argument("--users", type=int, default=12, help="test users timed (sorted by id, across folds)")
    ap.add_argument("--ref-users", type=int, default=4, help="of those, how many also run the slow reference")
    ap.add_argument("--throughput", type=int, default=256, help="images for the throughput test (0 = skip)")
    ap.add_argument("--jpeg-size", type=_jpeg_size, default=(1600, 1067),
                    help="throughput test: re-encode the photos at WxH, quality 90 (default 1600x1067); "
                         "0 = the world's files as they are")  # fmt: skip
    ap.add_argument("--workers", type=int, default=2, help="JPEG decoding threads for the throughput test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", "--json", dest="json", default=None, help="also write the raw rows here (JSON)")
    args = ap.parse_args(argv)
    try:
        result = run(args)
    except SchemaError as err:
        print(f"taskvec.bench: error: {err}")
        return 2
    print()
    print(summarize(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
