"""Does a stated preference move photos as far as it moves the simulated raters who state it?

The steer benchmark (:mod:`pmllm.steer`) measures the like - dislike shift on real pictures. This check asks the
same question inside the simulated world, where the answer is known: every simulated rater whose free text names a
content class (the world's truth, ``truth/tastes.json``: ``mentioned``) rated some of the world's pictures (280 each in
``worlds/sim``). For each
such statement it takes the pictures of that class among the rater's rated ones and reports their mean percentile
rank (0 = bottom, 1 = top of the rater's pictures) under

* ``truth``: the rater's own ratings (ties share their rank);
* ``full`` / ``text`` / ``empty``: pmllm's scores of the same pictures from the rater's full profile, from the free
  text alone, and from the empty profile (what the model does without being told anything).

With ``--kinds property`` (or ``both``) the photo properties a rater's text names (brightness, colourfulness,
sharpness, ...: the world's pixel attributes) are measured too: the Spearman of each column's scores with the
attribute over the rater's pictures, signed by the statement (1 = ordered exactly the stated way round).

Statements are grouped by kind, by their sign (a like or a dislike: the sign of the rater's personal weight on the
feature) and by whether the rater is a training or a test user of the fold the checkpoint was fitted on
(``--users`` keeps one of the two). Numbers are SIMULATED. Run::

    python -m pmllm.steer_sim --world worlds/sim [--fold 0] [--out runs/steer_sim.json]   # ~8 min on 2 cores
    python -m pmllm.steer_sim --kinds property --users test --out runs/steer_sim_property.json  # ~11 min
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pmllm.steer import mean_percentile

COLUMNS = ("truth", "full", "text", "empty")


def statements(truth: dict, kinds: tuple[str, ...] = ("content",)) -> list[tuple[str, str, int]]:
    """``(user, feature, sign)`` of every feature of ``kinds`` a simulated rater's text names: a content class
    (``"content"``, given by its class name) or a photo attribute (``"property"``, by its attribute name)."""
    out = []
    for user, t in sorted(truth["raters"].items()):
        for feature in t["mentioned"]:
            kind = "content" if feature.startswith("content:") else "property"
            if kind in kinds:
                personal = t["profile_part"].get(feature, 0.0) + t["idiosyncratic_part"].get(feature, 0.0)
                out.append((user, feature.split(":", 1)[-1], 1 if personal > 0 else -1))
    return out


def signed_spearman(scores: np.ndarray, values: np.ndarray, sign: int) -> float:
    """``sign`` x Spearman of ``scores`` with ``values`` (0 where either is constant: :func:`piaa.stats.srocc`)."""
    from piaa.stats import srocc

    return float(sign * srocc(scores, values))


def run(world: Path, fold: int, checkpoint: str | None, kinds: tuple[str, ...] = ("content",), users: str = "all",
        progress: bool = True) -> dict:  # fmt: skip
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from piaa.features import feature_cache_dir
    from piaa.schema import PARA_SCALE, Profile, RatingsTable
    from piaa.worlds import users_of_fold
    from pmllm.grounding import grounding_stats
    from pmllm.model import PMLLM
    from pmllm.train import visual_tokens_for

    table = RatingsTable.load(world / "ratings")
    truth = json.loads((world / "truth" / "tastes.json").read_text())
    attrs = pd.read_csv(world / "attributes.csv", dtype={"image": str, "content": str}).set_index("image")
    train = set(users_of_fold(str(world / "folds.json"), fold, table))
    model = PMLLM.from_pretrained(checkpoint) if checkpoint else PMLLM.from_pretrained()
    fitted = model.config.meta.get("personal_head", {}).get("fold", model.config.meta.get("fold"))
    if fitted is not None and int(fitted) != fold:
        print(f"pmllm.steer_sim: warning: the checkpoint was fitted on fold {fitted}'s training users; the train/test "
              f"split below is fold {fold}'s", file=sys.stderr)  # fmt: skip
    cache = feature_cache_dir(None)
    by_user: dict[str, list[tuple[str, int]]] = {}
    for user, feature, sign in statements(truth, kinds):
        if users == "all" or (user in train) == (users == "train"):
            by_user.setdefault(user, []).append((feature, sign))
    rows = []
    ratings = table.ratings
    with torch.no_grad():
        for user, stated in tqdm(sorted(by_user.items()), desc="simulated raters", disable=not progress):
            sub = ratings[ratings["user"] == user]
            images = sub["image"].tolist()
            tokens = visual_tokens_for(model, table, images, cache)
            stats = grounding_stats([table.image_path(i) for i in images], cache=cache)
            prof = table.profile(user)
            scores = {"truth": sub["score"].to_numpy(dtype=np.float64)}
            for name, p in (("full", prof), ("text", Profile(text=prof.text)), ("empty", Profile())):
                scores[name] = model.score_tokens(p, tokens, scale=PARA_SCALE, stats=stats).scores
            own = attrs.reindex(images)
            split = "train" if user in train else "test"
            for feature, sign in stated:
                if feature in own.columns and feature != "content":  # a property: signed Spearman
                    values = own[feature].to_numpy(dtype=np.float64)
                    rows.append({"user": user, "split": split, "kind": "property", "feature": feature, "sign": sign,
                                 **{c: signed_spearman(scores[c], values, sign) for c in COLUMNS}})  # fmt: skip
                    continue
                labels = own["content"].to_numpy() == feature
                if not labels.any() or labels.all():
                    continue
                rows.append({"user": user, "split": split, "kind": "content", "feature": feature, "sign": sign,
                             "n_pictures": int(labels.sum()),
                             **{c: mean_percentile([scores[c]], labels) for c in COLUMNS}})  # fmt: skip
    return {"world": str(world), "fold": fold, "checkpoint": checkpoint or "default", "simulated": True,
            "statements": rows, "summary": summarise(rows)}  # fmt: skip


def summarise(rows: list[dict]) -> list[dict]:
    """Mean (and SD) per (kind, split, sign) group and over both splits: the percentile of a content class's
    pictures, the signed Spearman of a property."""
    out = []
    for kind in ("content", "property"):
        for split in ("train", "test", "all"):
            for sign in (1, -1):
                group = [r for r in rows if r["kind"] == kind and r["sign"] == sign and split in ("all", r["split"])]
                if group:
                    out.append(_group_row(group, kind, split, sign))
    return out


def _group_row(group: list[dict], kind: str, split: str, sign: int) -> dict:
    row = {"kind": kind, "split": split, "stated": "like" if sign > 0 else "dislike", "n": len(group),
           "users": len({r["user"] for r in group})}  # fmt: skip
    for c in COLUMNS:
        v = np.array([r[c] for r in group])
        row[c], row[c + "_sd"] = float(v.mean()), float(v.std())
    return row


def format_table(summary: list[dict]) -> str:
    head = f"{'kind':<9} {'users':<6} {'stated':<8} {'n':>4} {'raters':>6}  " + "  ".join(f"{c:>13}" for c in COLUMNS)
    lines = ["SIMULATED, mean ± SD over statements. content: mean percentile (0 = bottom, 1 = top) of the stated "
             "class's pictures among the rater's rated pictures; property: Spearman of the scores with the "
             "property, signed by the statement (1 = the stated way round)", head]  # fmt: skip
    for r in summary:
        cells = "  ".join(f"{r[c]:.2f} ± {r[c + '_sd']:.2f}".rjust(13) for c in COLUMNS)
        lines.append(f"{r['kind']:<9} {r['split']:<6} {r['stated']:<8} {r['n']:>4} {r['users']:>6}  {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pmllm.steer_sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default="worlds/sim", help="a simulated world folder (python -m eval.sim)")
    ap.add_argument("--fold", type=int, default=0, help="the fold whose training users the checkpoint was fitted on")
    ap.add_argument("--checkpoint", "--pmllm", default=None, help="pmllm checkpoint (default: the committed one)")
    ap.add_argument("--out", default="runs/steer_sim.json", help="JSON result (default runs/steer_sim.json)")
    ap.add_argument(
        "--kinds",
        choices=["content", "property", "both"],
        default="content",
        help="which stated features to measure: content classes (default), photo properties, or both",
    )
    ap.add_argument(
        "--users",
        choices=["all", "train", "test"],
        default="all",
        help="the fold's training users, its test users, or all (default)",
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    world = Path(args.world)
    need = [world / "truth" / "tastes.json", world / "ratings", world / "attributes.csv", world / "folds.json"]
    missing = [str(p.relative_to(world)) for p in need if not p.exists()]
    if missing:
        print(f"pmllm.steer_sim: error: {world} is not a simulated world with its truth (missing "
              f"{', '.join(missing)}; python -m eval.sim --out {world} makes one)", file=sys.stderr)  # fmt: skip
        return 2
    from piaa.schema import SchemaError

    try:
        kinds = ("content", "property") if args.kinds == "both" else (args.kinds,)
        result = run(world, args.fold, args.checkpoint, kinds, args.users)
    except (SchemaError, ValueError, IndexError, KeyError) as err:
        print(f"pmllm.steer_sim: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(result["summary"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
