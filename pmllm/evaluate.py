"""Zero-shot evaluation of pmllm on the held-out users of a world folder (mean per-user SROCC).

    python -m pmllm.evaluate --world worlds/sim-quick --fold 0 --checkpoint pmllm/checkpoints/default \\
        --out pmllm/results/sim-quick-fold0.json

Rows: ``pmllm`` (full profile), the coarse-profile ablations ``pmllm-structured`` (PARA + LAPIS fields),
``pmllm-text`` (free text only), ``pmllm-demographics`` and ``pmllm-empty``; ``prompt-only`` (the same frozen LLM,
no fusion, told the top-3 ImageNet classes in words); ``population-ridge`` (ridge regression on frozen Lite0
pooled features, fitted to the training users' mean score per image: one score per image for everybody).
Only the fold's *test* users are scored and the checkpoint must not have been trained on any of them (checked
against its recorded fold). Reads the world folder directly (``ratings/`` + ``folds.json``); pmllm does not
import ``eval``. Numbers on a simulated world are labelled "simulated" in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from piaa.features import feature_cache_dir
from piaa.schema import DEMOGRAPHIC_FIELDS, LAPIS_FIELDS, PARA_FIELDS, Profile, RatingsTable, SchemaError
from piaa.stats import fit_population_ridge, srocc

ABLATIONS: dict[str, tuple[str, ...] | None] = {
    "pmllm": None,  # full profile
    "pmllm-structured": PARA_FIELDS + LAPIS_FIELDS,
    "pmllm-text": ("text",),
    "pmllm-demographics": DEMOGRAPHIC_FIELDS,
    "pmllm-empty": (),
}


def coarse(profile: Profile, keep: tuple[str, ...] | None) -> Profile:
    """The profile restricted to the ``keep`` fields (``None`` = unchanged)."""
    return profile if keep is None else profile.subset(keep)


def evaluate(args: argparse.Namespace) -> dict:
    from pmllm.baseline import PromptOnly
    from pmllm.model import PMLLM
    from pmllm.train import load_users, visual_tokens_for

    torch.set_num_threads(args.threads)
    world = Path(args.world)
    table = RatingsTable.load(world / "ratings")
    folds = json.loads((world / "folds.json").read_text())["folds"]
    test_users = [str(u) for u in folds[args.fold]["test"]]
    train_users = load_users(str(world / "folds.json"), args.fold, table)
    if set(test_users) & set(train_users):
        raise SchemaError(f"{world / 'folds.json'}: fold {args.fold} train and test users overlap")
    model = PMLLM.from_pretrained(args.checkpoint)
    meta = model.config.meta
    if meta.get("users_from") and meta.get("fold") is not None:
        ck_train = set(load_users(meta["users_from"], int(meta["fold"]), table)) if Path(
            meta["users_from"]).is_file() else set()  # fmt: skip
        if ck_train & set(test_users):
            raise SchemaError(f"{args.checkpoint} was trained on {len(ck_train & set(test_users))} of the test "
                              f"users of fold {args.fold}; evaluate on the fold it held out")  # fmt: skip
    if args.max_users:
        test_users = test_users[: args.max_users]
    rng = np.random.default_rng(0)
    per_user_rows = {}
    for u in test_users:
        rows = table.user_ratings(u)
        if args.max_images and len(rows) > args.max_images:
            rows = rows.iloc[np.sort(rng.choice(len(rows), args.max_images, replace=False))]
        per_user_rows[u] = rows
    images = table.images  # all photos (inputs, not ratings): one feature cache shared with training
    train_table = table.for_users(train_users)
    train_images = sorted(train_table.ratings["image"].unique())
    tokens = visual_tokens_for(model, table, images, feature_cache_dir(args.cache_dir))
    index = {im: i for i, im in enumerate(images)}
    # population reference: ridge on pooled frozen features -> training users' mean score per image
    train_tokens = tokens[[index[im] for im in train_images]]
    means = train_table.mean_scores().reindex(train_images).to_numpy()
    predict = fit_population_ridge(train_tokens.float().mean(1).numpy(), means).predict
    base = PromptOnly(model.llm, model.tokenizer, model.encoder) if not args.no_prompt_only else None
    results: dict[str, list[float]] = {k: [] for k in [*ABLATIONS, "prompt-only", "population-ridge"]}
    t0 = time.time()
    for u in tqdm(test_users, desc="evaluating users"):
        rows = per_user_rows[u]
        y = rows["score"].to_numpy()
        idx = [index[im] for im in rows["image"]]
        t = tokens[idx].float()
        profile = table.profile(u)
        for name, keep in ABLATIONS.items():
            pred = model.score_tokens(coarse(profile, keep), t, scale=table.scale, batch_size=args.batch_size)
            results[name].append(srocc(pred.scores, y))
        if base is not None:
            pred = base.score_descriptions(profile, base.describe_tokens(t), scale=table.scale)
            results["prompt-only"].append(srocc(pred.scores, y))
        results["population-ridge"].append(srocc(predict(t.mean(1).numpy()), y))
    summary = {
        "simulated": bool(json.loads((world / "world.json").read_text()).get("simulated", False))
        if (world / "world.json").is_file() else False,
        "world": str(world), "fold": args.fold, "checkpoint": str(args.checkpoint),
        "n_test_users": len(test_users), "images_per_user": int(np.mean([len(r) for r in per_user_rows.values()])),
        "metric": "mean per-user SROCC (held-out users, zero-shot)", "seconds": round(time.time() - t0, 1),
        "rows": {k: {"mean_srocc": float(np.mean(v)), "sd": float(np.std(v)), "n": len(v)}
                 for k, v in results.items() if v},
        "per_user": {k: dict(zip(test_users, map(float, v))) for k, v in results.items() if v},
    }  # fmt: skip
    return summary


def print_table(summary: dict) -> None:
    label = " (SIMULATED world)" if summary["simulated"] else ""
    print(f"\n{summary['metric']}{label}: {summary['world']} fold {summary['fold']}, "
          f"{summary['n_test_users']} test users x ~{summary['images_per_user']} photos")  # fmt: skip
    print(f"{'scorer':<22}{'mean SROCC':>12}{'sd':>8}")
    for k, v in summary["rows"].items():
        print(f"{k:<22}{v['mean_srocc']:>12.4f}{v['sd']:>8.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pmllm.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", required=True, help="a world folder (ratings/, folds.json)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--checkpoint", default=str(Path(__file__).parent / "checkpoints" / "default"))
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    ap.add_argument("--max-users", type=int, default=0)
    ap.add_argument("--max-images", type=int, default=0, help="random subset of each user's photos (0 = all)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--no-prompt-only", action="store_true")
    args = ap.parse_args(argv)
    try:
        summary = evaluate(args)
    except (SchemaError, FileNotFoundError, ValueError) as err:
        sys.exit(f"pmllm.evaluate: error: {err}")
    print_table(summary)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
