"""Train pmllm's fusion modules (and projectors; optionally LoRA) on the training users of a ratings table.

    python -m pmllm.train --ratings WORLD/ratings --users-from WORLD/folds.json --fold 0 \\
        --out pmllm/checkpoints/default [--epochs 2] [--images-per-step 32] [--lora 0] [--resume] \\
        [--gate-code none|fields|fields+text]   # what the fusion gates see besides the pooled LLM state

Multi-GPU: ``accelerate launch --num_processes 4 -m pmllm.train ...`` (each process takes a disjoint share of the
steps; gradients of the trainable parts are averaged by DDP); several CPU processes: ``torchrun --nproc_per_node 2
-m pmllm.train ... --threads 1``. ``--mixed-precision auto`` (default): bf16 autocast on a CUDA GPU, fp32 on CPU.
``--quantization 4bit|8bit`` loads the frozen LLM with bitsandbytes (CUDA only).

One step = one training user: their profile, randomly coarsened (structured fields dropped, free text dropped,
sometimes everything dropped, so coarse and empty profiles are in the training distribution), and a batch of
their rated photos. Where the view is empty (``--p-empty``), nothing personal is left to predict: the step's
targets are the population's, the mean score of each photo over the training users, for a batch of photos drawn
from all the training users' rated photos (``--empty-target population``, the default; ``user`` keeps that user's
own ratings). Loss = cross-entropy to soft level targets (:func:`pmllm.readout.soft_targets`) + a pairwise RankNet
term on the expected scores (within the user, or within the population's means). Frozen visual tokens are
precomputed once and cached (safetensors). The step plan is a deterministic function of ``--seed``, so
``--resume`` continues exactly where a run stopped (weights, optimizer and scheduler are saved every
``--save-every`` steps).
Test users of the fold are never read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from piaa.features import feature_cache_dir
from piaa.models import MIXED_PRECISION_CHOICES, main_process, mixed_precision
from piaa.schema import DEMOGRAPHIC_FIELDS, Profile, RatingsTable, SchemaError
from piaa.worlds import users_of_fold
from pmllm.config import PMLLMConfig
from pmllm.fusion import fields_vocab
from pmllm.model import PMLLM
from pmllm.readout import readout, soft_targets

STATE_NAME = "train_state.pt"


def coarsen(profile: Profile, rng: np.random.Generator, p_field: float = 0.3, p_text: float = 0.25,
            p_structured: float = 0.2, p_empty: float = 0.08) -> Profile:  # fmt: skip
    """A random coarser view of ``profile`` (training augmentation for coarse/empty profiles at test time)."""
    r = rng.random()
    if r < p_empty:
        return Profile()
    fields = list(profile.structured())
    if r < p_empty + 0.07:  # demographics only, one of the evaluation ablations
        keep = {f for f in fields if f in DEMOGRAPHIC_FIELDS}
    elif rng.random() < p_structured:
        keep = set()
    else:
        keep = {f for f in fields if rng.random() >= p_field}
    if profile.text and rng.random() >= p_text and r >= p_empty + 0.07:
        keep.add("text")
    return profile.subset(keep)


def calibrate_reader(model: PMLLM, profiles: list[Profile], main: bool = True) -> list:
    """Read the training users' free texts; set the reader's polarity centre/scale (and the config's) to the
    median/sd of the raw polarity over their clauses. Returns each profile's reading under that calibration.
    ``main``: whether this process reports (the main one of a group of processes)."""
    reader = model.reader
    readings = [reader.read(model.prompt_text(p)) for p in tqdm(profiles, desc="reading free texts", disable=not main)]
    pol = np.array([p for r in readings for p in r.polarity], dtype=np.float64)
    centre, scale = (float(np.median(pol)), float(pol.std()) or 1.0) if len(pol) > 1 else (0.0, 1.0)
    reader.set_polarity(centre, scale)
    model.config.text_polarity = [centre, scale]
    if main:
        print(f"free text: {len(pol)} clauses of {len(profiles)} users; polarity centre {centre:.3f}, "
              f"scale {scale:.3f}")  # fmt: skip
    return [reader.recode(r) for r in readings]


def visual_tokens_for(model: PMLLM, table: RatingsTable, images: list[str], cache_dir: Path | None) -> torch.Tensor:
    """Frozen visual tokens ``(N, M, D)`` (float16) for ``images``, cached (content-keyed) in ``cache_dir``."""
    from piaa.features import encode_images

    paths = [table.image_path(i) for i in images]
    encoder = model.inference_encoder()  # the fast frozen copy (same name, same tokens to 1e-4: caches stay valid)
    return encode_images(encoder, paths, keep=("tokens",), cache=cache_dir, batch_size=32)["tokens"]


def step_plan(table: RatingsTable, users: list[str], epochs: int, per_step: int, seed: int) -> list[tuple[str, list]]:
    """Deterministic list of (user, [row indices]) steps: each epoch visits every user's ratings in chunks."""
    rng = np.random.default_rng(seed)
    by_user = {u: table.ratings.index[table.ratings["user"] == u].to_numpy() for u in users}
    plan = []
    for _ in range(epochs):
        epoch = []
        for u in users:
            rows = rng.permutation(by_user[u])
            n_chunks = max(1, math.ceil(len(rows) / per_step))
            epoch += [(u, c.tolist()) for c in np.array_split(rows, n_chunks) if len(c) >= 2]
        order = rng.permutation(len(epoch))
        plan += [epoch[i] for i in order]
    return plan


def population_targets(table: RatingsTable, img_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(image indices, mean score over the table's users)`` of every rated photo: what an empty profile predicts."""
    means = table.mean_scores().sort_index()
    return np.array([img_index[i] for i in means.index]), means.to_numpy(dtype=np.float32)


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 4.0) -> torch.Tensor:
    """RankNet loss over all pairs of one user's photos with different target scores."""
    dp = pred.unsqueeze(1) - pred.unsqueeze(0)
    dt = target.unsqueeze(1) - target.unsqueeze(0)
    mask = dt > 1e-6
    if not mask.any():
        return pred.sum() * 0.0
    return F.softplus(-beta * dp[mask]).mean()


def train(args: argparse.Namespace) -> Path:
    """The training loop (one explicit function). Returns the output checkpoint directory."""
    from accelerate import Accelerator

    torch.set_num_threads(args.threads)
    # cpu=True without CUDA: accelerate then sees a torchrun group of CPU processes (else each one alone); Apple's
    # MPS is not used
    acc = Accelerator(mixed_precision=mixed_precision(args.mixed_precision), cpu=not torch.cuda.is_available())
    out = Path(args.out)
    table = RatingsTable.load(args.ratings)
    users = users_of_fold(args.users_from, args.fold, table)
    all_images = table.images  # photos are inputs, not ratings: encode them all (one cache shared with evaluation)
    table = table.for_users(users)
    resume = args.resume and (out / STATE_NAME).is_file()
    if resume:
        model = PMLLM.from_pretrained(out, quantization=args.quantization)
        config = model.config
    else:
        layers = [int(x) for x in args.fusion_layers.split(",")] if args.fusion_layers else None
        config = PMLLMConfig(llm=args.llm, vision=args.vision, fusion_layers=layers, d_attn=args.d_attn,
                             n_heads=args.n_heads, d_profile=args.d_profile, lora_r=args.lora)  # fmt: skip
        if args.gate_code != "none":  # the gates see the profile code: its field vocabulary from training users
            config.gate_vocab = fields_vocab([table.profile(u) for u in users])
            config.gate_text = args.gate_code == "fields+text"
        torch.manual_seed(args.seed)
        model = PMLLM(config, quantization=args.quantization)
        if config.gate_text:
            calibrate_reader(model, [table.profile(u) for u in users], main=main_process())
    images = all_images
    cache_dir = None if args.no_cache else feature_cache_dir(args.cache_dir)
    tokens = visual_tokens_for(model, table, images, cache_dir)
    img_index = {im: i for i, im in enumerate(images)}
    plan = step_plan(table, users, args.epochs, args.images_per_step, args.seed)
    if args.max_steps:
        plan = plan[: args.max_steps]
    n_steps = len(plan) // acc.num_processes  # every process runs the same number of steps (DDP)
    plan = plan[acc.process_index :: acc.num_processes][:n_steps]
    if n_steps == 0:
        raise ValueError(f"{args.ratings}: no training steps (no user with at least 2 ratings among {len(users)})")
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warm = max(1, int(0.05 * n_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, n_steps))))
    )
    start = 0
    if resume:
        state = torch.load(out / STATE_NAME, map_location="cpu", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])
        acc.print(f"resuming at step {start}/{n_steps}")
    model, opt = acc.prepare(model, opt)
    core: PMLLM = acc.unwrap_model(model)
    core.train()
    scale = table.scale
    ratings = table.ratings
    pop = population_targets(table, img_index) if args.empty_target == "population" else None
    log_path = out / "train_log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    t0, running = time.time(), []
    bar = tqdm(range(start, n_steps), desc="pmllm train", disable=not acc.is_local_main_process, initial=start,
               total=n_steps)  # fmt: skip
    for step in bar:
        user, rows = plan[step]
        rng = np.random.default_rng([args.seed, step, acc.process_index])
        profile = coarsen(table.profile(user), rng, p_empty=args.p_empty) if args.coarsen else table.profile(user)
        code = core.encode_profile(profile) if core.gate_code_dim else None  # the reader caches each text's reading
        prompt = code.prompt if code is not None else core.prompt(profile)
        if pop is not None and profile.is_empty():  # an empty view: the population's mean scores are the target
            pick = rng.choice(len(pop[0]), size=min(len(rows), len(pop[0])), replace=False)
            idx, y = pop[0][pick].tolist(), torch.tensor(pop[1][pick], dtype=torch.float32, device=acc.device)
        else:
            idx = [img_index[ratings.at[r, "image"]] for r in rows]
            y = torch.tensor(ratings.loc[rows, "score"].to_numpy(), dtype=torch.float32, device=acc.device)
        with acc.autocast():
            gate = None if code is None else code.gate
            logits = model(prompt, tokens[idx].to(acc.device, torch.float32), gate).float()
        ce = -(soft_targets(y, scale) * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        expected, _ = readout(logits, None)
        rank = pairwise_rank_loss(expected, y)
        loss = ce + args.rank_weight * rank
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(core.trainable_parameters(), 1.0)
        opt.step()
        sched.step()
        running.append((loss.item(), ce.item(), rank.item()))
        if (step + 1) % args.log_every == 0 or step + 1 == n_steps:
            m = np.mean(running, axis=0)
            running = []
            bar.set_postfix(loss=f"{m[0]:.4f}", ce=f"{m[1]:.4f}", rank=f"{m[2]:.4f}")
            if acc.is_main_process:
                rec = {"step": step + 1, "loss": m[0], "ce": m[1], "rank": m[2], "lr": sched.get_last_lr()[0],
                       "elapsed_s": round(time.time() - t0, 1)}  # fmt: skip
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
        stop = bool(args.stop_after) and step + 1 >= args.stop_after
        if ((step + 1) % args.save_every == 0 or step + 1 == n_steps or stop) and acc.is_main_process:
            _save(core, opt, sched, step + 1, out, args, users, n_steps, time.time() - t0)
        acc.wait_for_everyone()
        if stop:
            break
    bar.close()
    core.eval()
    if acc.is_main_process and log_path.is_file():
        plot_train_log(log_path, out / "train_loss.png")
    return out


def plot_train_log(log_path: Path, png: Path) -> Path:
    """Loss curves (total, cross-entropy, rank) of a ``train_log.jsonl`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("loss", "ce", "rank"):
        ax.plot([r["step"] for r in recs], [r[key] for r in recs], label=key)
    ax.set_xlabel("step (one training user each)")
    ax.set_ylabel("training loss")
    ax.set_title(f"pmllm training ({Path(log_path).parent.name})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def _save(core: PMLLM, opt, sched, step: int, out: Path, args, users: list[str], n_steps: int, secs: float) -> None:
    core.config.meta = {
        "trained_on": str(args.ratings), "users_from": args.users_from, "fold": args.fold,
        "n_train_users": len(users), "train_users": sorted(map(str, users)),
        "steps_done": step, "steps_total": n_steps, "epochs": args.epochs,
        "images_per_step": args.images_per_step, "lr": args.lr, "rank_weight": args.rank_weight, "seed": args.seed,
        "coarsen": args.coarsen, "p_empty": args.p_empty, "empty_target": args.empty_target,
        "gate_code": args.gate_code, "mixed_precision": mixed_precision(args.mixed_precision),
        "train_seconds_this_run": round(secs, 1),
        "command": "python -m pmllm.train " + " ".join(sys.argv[1:]),
    }  # fmt: skip
    core.save_pretrained(out)
    tmp = out / (STATE_NAME + ".tmp")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step}, tmp)
    tmp.replace(out / STATE_NAME)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = PMLLMConfig()
    ap = argparse.ArgumentParser(prog="python -m pmllm.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratings", required=True, help="a RatingsTable folder (e.g. WORLD/ratings)")
    ap.add_argument("--users-from", help="folds.json; train on the 'train' users of --fold (default: all users)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--out", required=True, help="checkpoint directory (save_pretrained format)")
    ap.add_argument("--llm", default=d.llm)
    ap.add_argument("--vision", default=d.vision)
    ap.add_argument("--fusion-layers", default=None, help="comma-separated decoder layer indices")
    ap.add_argument("--d-attn", type=int, default=d.d_attn)
    ap.add_argument("--n-heads", type=int, default=d.n_heads)
    ap.add_argument("--d-profile", type=int, default=d.d_profile)
    ap.add_argument("--lora", type=int, default=0, help="LoRA rank on the LLM (0 = LLM frozen, the default)")
    ap.add_argument("--quantization", choices=["4bit", "8bit"], default=None, help="bitsandbytes LLM (CUDA)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--images-per-step", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--rank-weight", type=float, default=1.0)
    ap.add_argument("--no-coarsen", dest="coarsen", action="store_false", help="always use the full profile")
    ap.add_argument("--p-empty", type=float, default=0.2, help="share of steps whose profile view is empty")
    ap.add_argument("--empty-target", choices=["population", "user"], default="population",
                    help="an empty view's targets: photo means over training users, or the user's own")  # fmt: skip
    ap.add_argument("--gate-code", choices=["none", "fields", "fields+text"], default="none",
                    help="what the fusion gates see besides the pooled LLM state: nothing, the encoded structured "
                    "fields, or those and the free text's taste code (pmllm.taste_text)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mixed-precision", default="auto", choices=MIXED_PRECISION_CHOICES,
                    help="autocast of the forward (accelerate): auto = bf16 on a CUDA GPU, none on CPU; bf16 also "
                    "runs on CPU (slower there unless it has bf16 units); fp16 needs CUDA")  # fmt: skip
    # the flag before --mixed-precision, kept for old command lines: same as --mixed-precision no
    ap.add_argument("--fp32", dest="mixed_precision", action="store_const", const="no", help=argparse.SUPPRESS)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--resume", action="store_true", help="continue from --out if it holds a train state")
    ap.add_argument("--stop-after", type=int, default=0, help="stop (and save) after this step; resume later")
    ap.add_argument("--cache-dir", default=None, help="where frozen visual tokens are cached")
    ap.add_argument("--no-cache", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not 0.0 <= args.p_empty <= 1.0:
        sys.exit(f"pmllm.train: error: --p-empty {args.p_empty:g} is not a share in [0, 1]")
    try:
        mixed_precision(args.mixed_precision)
    except ValueError as err:
        sys.exit(f"pmllm.train: error: {err}")
    try:
        out = train(args)
    except (SchemaError, FileNotFoundError, ValueError) as err:
        sys.exit(f"pmllm.train: error: {err}")
    if main_process():  # one line from a group of processes (accelerate launch / torchrun)
        print(f"saved {out}")


if __name__ == "__main__":
    main()
