"""Fine-tune one task model per scoring database and save its task vector tau_i = theta_i - theta_0.

Run (trains every database of a world folder; resumable - rerunning continues from the last epoch checkpoint)::

    python -m taskvec.finetune --world worlds/sim --out taskvec/artifacts/efficientnet-lite0

Inputs are RatingsTable folders ``WORLD/databases/<db>/`` (one mean score per image on the database's own scale;
AVA, TAD66K, KonIQ-10k, SPAQ, PARA or FLICKR-AES converted to that layout work the same). Targets are the scores
normalised to [0, 1]; the loss is MSE on the head's expected score. Only the tail and head train (see
``taskvec.backbones``); the frozen trunk's output is computed once per image and cached as safetensors, which makes
an epoch cost a few milliseconds per image on CPU. The epoch kept is the best by SROCC on a held-out split of the
database itself (never on PIAA users). Optimiser: AdamW with linear warmup + cosine decay; accelerate handles the
device, multi-GPU data sharding and mixed precision.

Output: ``OUT/<db>.safetensors`` (fp16, tail + head deltas only) + ``OUT/<db>.json`` + ``OUT/manifest.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from piaa.models import MIXED_PRECISION_CHOICES, main_process, mixed_precision
from piaa.schema import RatingsTable
from piaa.stats import srocc
from taskvec.backbones import BackboneConfig, ScoringModel, create_backbone
from taskvec.task_vector import TaskVector, TaskVectorConfig, save_task_vector

log = logging.getLogger("taskvec.finetune")
DEFAULT_OUT = Path(__file__).resolve().parent / "artifacts" / "efficientnet-lite0"


@dataclass
class FinetuneConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3  # head learning rate
    tail_lr_mult: float = 0.1  # the pretrained tail moves slower than the fresh head
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    val_frac: float = 0.1
    seed: int = 0
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16" (accelerate)
    max_images: int | None = None  # subsample big databases (seeded)


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


@torch.no_grad()
def predict_from_trunk(model: ScoringModel, feats: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Normalised scores for cached trunk features (eval mode)."""
    was = model.training
    model.eval()
    dev = next(model.head.parameters()).device
    out = [
        model(feats[i : i + batch_size].to(dev).float(), stage="trunk").cpu() for i in range(0, len(feats), batch_size)
    ]
    model.train(was)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def train_task_model(
    model: ScoringModel,
    feats: torch.Tensor,
    targets: np.ndarray,
    config: FinetuneConfig,
    ckpt_dir: str | Path | None = None,
    progress: bool = True,
    desc: str = "finetune",
    stop_after: int | None = None,
) -> dict:
    """The training loop: fits ``model``'s tail + head on (trunk features, normalised targets) in place.

    Checkpoints every epoch into ``ckpt_dir`` and resumes from it (``stop_after`` epochs ends this call early, as an
    interruption would). Leaves the best epoch's weights (by SROCC on a seeded held-out split) in ``model`` and
    returns the metrics/history (``finished`` False when stopped early).
    """
    from accelerate import Accelerator
    from safetensors.torch import load_file, save_file

    y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    if len(y) != len(feats) or len(y) < 4:
        raise ValueError(f"{desc}: need >= 4 images with one target each, got {len(feats)} features/{len(y)} targets")
    rng = np.random.default_rng(config.seed)
    perm = rng.permutation(len(y))
    n_val = max(2, int(round(config.val_frac * len(y))))
    val_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    ds = torch.utils.data.TensorDataset(feats[tr_idx], y[tr_idx])

    acc = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    names = model.trainable_names()
    params = dict(model.named_parameters())
    groups = [{"params": [params[n] for n in names if n.startswith("tail.")], "lr": config.lr * config.tail_lr_mult},
              {"params": [params[n] for n in names if not n.startswith("tail.")], "lr": config.lr}]  # fmt: skip
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(ds) / config.batch_size)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, max(1, int(config.warmup_frac * total))))
    model, opt, sched = acc.prepare(model, opt, sched)
    net = acc.unwrap_model(model)

    state = {"epoch": 0, "best_srocc": -2.0, "best_epoch": 0, "history": []}
    ckpt = Path(ckpt_dir) if ckpt_dir else None
    if ckpt and (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        cur = load_file(str(ckpt / "last.safetensors"))
        net.load_state_dict(cur, strict=False)
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
        sched.load_state_dict(state.pop("scheduler"))
        log.info("%s: resumed at epoch %d from %s", desc, state["epoch"], ckpt)
    best = load_file(str(ckpt / "best.safetensors")) if ckpt and (ckpt / "best.safetensors").is_file() else None

    bar = tqdm(total=total, initial=state["epoch"] * steps_per_epoch, desc=desc, disable=not progress, leave=False)
    last = config.epochs if stop_after is None else min(config.epochs, state["epoch"] + stop_after)
    for epoch in range(state["epoch"], last):
        # data order and dropout depend only on (seed, epoch): a resumed run continues exactly like an unbroken one
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)
        loader = acc.prepare_data_loader(
            torch.utils.data.DataLoader(ds, batch_size=config.batch_size, shuffle=True, generator=gen)
        )
        model.train()
        losses = []
        for xb, yb in loader:
            pred = model(xb.float(), stage="trunk")
            loss = torch.nn.functional.mse_loss(pred.float(), yb.float())
            acc.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        val_pred = predict_from_trunk(net, feats[val_idx])
        val_srocc = srocc(val_pred, y[val_idx].numpy())
        rec = {"epoch": epoch + 1, "train_mse": float(np.mean(losses)), "val_srocc": val_srocc,
               "val_mse": float(np.mean((val_pred - y[val_idx].numpy()) ** 2))}  # fmt: skip
        state["history"].append(rec)
        state["epoch"] = epoch + 1
        if val_srocc > state["best_srocc"]:
            state["best_srocc"], state["best_epoch"] = val_srocc, epoch + 1
            best = {k: v.detach().cpu().clone().contiguous() for k, v in net.trainable_state().items()}
        if ckpt and acc.is_main_process:
            ckpt.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in net.trainable_state().items()}, str(ckpt / "last.safetensors"))
            save_file(best, str(ckpt / "best.safetensors"))
            torch.save(opt.state_dict(), ckpt / "optimizer.pt")
            tmp = ckpt / "state.json.tmp"
            tmp.write_text(json.dumps({**state, "scheduler": sched.state_dict()}))
            os.replace(tmp, ckpt / "state.json")
        log.info("%s epoch %d: %s", desc, epoch + 1, rec)
    bar.close()
    if best is not None:
        net.load_state_dict(best, strict=False)
    return {"best_val_srocc": state["best_srocc"], "best_epoch": state["best_epoch"], "history": state["history"],
            "n_train": len(tr_idx), "n_val": len(val_idx), "finished": state["epoch"] >= config.epochs}  # fmt: skip


def database_targets(table: RatingsTable, max_images: int | None = None, seed: int = 0):
    """(image paths, normalised mean score per image) of one database table."""
    means = table.mean_scores().sort_index()
    images = [str(i) for i in means.index]
    y = table.scale.normalize(means.to_numpy())
    if max_images and len(images) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))
        images, y = [images[i] for i in keep], y[keep]
    return [table.image_path(i) for i in images], y


def finetune_databases(
    databases: dict[str, RatingsTable],
    out: str | Path,
    backbone: BackboneConfig | None = None,
    config: FinetuneConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    simulated: bool = False,
    note: str = "",
    progress: bool = True,
) -> dict:
    """Train one task model per table from the same theta_0 and save the task vectors + a manifest into ``out``."""
    backbone = backbone or BackboneConfig()
    config = config or FinetuneConfig()
    out = Path(out)
    model = create_backbone(backbone)
    base = model.trainable_state()
    fp = model.fingerprint()
    if cache_dir is None:
        from piaa.models import cache_dir as piaa_cache_dir

        cache_dir = piaa_cache_dir() / "taskvec" / out.name
    cache_dir = Path(cache_dir)
    run_tag = hashlib.sha1(json.dumps([asdict(config), fp], sort_keys=True).encode()).hexdigest()[:10]
    results = {}
    for db, table in sorted(databases.items()):
        t0 = time.time()
        paths, y = database_targets(table, config.max_images, config.seed)
        feats = model.trunk_features(paths, cache=cache_dir, progress=progress)
        model.load_state_dict(base, strict=False)
        torch.manual_seed(config.seed)
        ckpt = cache_dir / f"ckpt-{db}-{run_tag}"
        metrics = train_task_model(model, feats, y, config, ckpt_dir=ckpt, progress=progress, desc=f"finetune {db}")
        tv = TaskVector.from_states(base, model.trainable_state())
        summary = {k: v for k, v in metrics.items() if k != "history"} | {"train_s": time.time() - t0}
        cfg = TaskVectorConfig(database=db, backbone=backbone.to_dict(), base_fingerprint=fp,
                               scale=table.scale.to_dict(), n_train=metrics["n_train"], metrics=summary,
                               simulated=simulated, note=note)  # fmt: skip
        results[db] = cfg.metrics
        if main_process():  # one writer in a group of processes (accelerate launch / torchrun)
            save_task_vector(tv, cfg, out)
            kind = "simulated" if simulated else "real"
            print(f"{db}: {len(paths)} images, best epoch {metrics['best_epoch']}, held-out SROCC "
                  f"{metrics['best_val_srocc']:.3f} ({kind} data), {time.time() - t0:.0f} s", flush=True)  # fmt: skip
    manifest = {"backbone": backbone.to_dict(), "base_fingerprint": fp, "databases": sorted(databases),
                "finetune": asdict(config), "simulated": simulated, "note": note, "results": results}  # fmt: skip
    if main_process():
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def load_world_databases(world: str | Path) -> tuple[dict[str, RatingsTable], bool]:
    """The scored databases of a world folder (``databases/<db>/``) and whether the world is simulated."""
    from piaa.worlds import WorldFolder

    folder = WorldFolder.open(world, require_world_json=False)
    if not folder.databases:
        raise FileNotFoundError(f"{folder.root / 'databases'}: no RatingsTable folders (ratings.csv + meta.json) "
                                "inside (a world folder has databases/<db>/)")  # fmt: skip
    return folder.databases, folder.simulated


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m taskvec.finetune", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", required=True, help="world folder with databases/<db>/ RatingsTable folders")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="where task vectors go (default: %(default)s)")
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--tail", type=int, default=None, help="extra trainable blocks/layers (backbone default)")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--databases", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--epochs", type=int, default=FinetuneConfig.epochs)
    ap.add_argument("--batch-size", type=int, default=FinetuneConfig.batch_size)
    ap.add_argument("--lr", type=float, default=FinetuneConfig.lr)
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--mixed-precision", default="no", choices=MIXED_PRECISION_CHOICES,
                    help="autocast (accelerate): no (default: the recipe as validated), auto = bf16 on a CUDA GPU, "
                    "bf16 (also on CPU), fp16 (CUDA only)")  # fmt: skip
    ap.add_argument(
        "--cache-dir",
        default=None,
        help="trunk-feature cache and checkpoints (default: $PIAA_CACHE_DIR/taskvec/<out name>)",
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    try:
        dbs, simulated = load_world_databases(args.world)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.databases:
        want = [d.strip() for d in args.databases.split(",") if d.strip()]
        unknown = sorted(set(want) - set(dbs))
        if unknown:
            print(f"error: unknown database(s) {unknown}; the world has {sorted(dbs)}", file=sys.stderr)
            return 2
        dbs = {d: dbs[d] for d in want}
    try:
        precision = mixed_precision(args.mixed_precision)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    backbone = BackboneConfig(name=args.backbone, tail=args.tail, image_size=args.image_size)
    config = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_images=args.max_images,
                            mixed_precision=precision)  # fmt: skip
    note = f"python -m taskvec.finetune --world {args.world}" + (" (simulated world)" if simulated else "")
    finetune_databases(dbs, args.out, backbone, config, cache_dir=args.cache_dir, simulated=simulated, note=note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
