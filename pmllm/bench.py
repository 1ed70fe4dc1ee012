"""Benchmark: images/s and peak memory scoring N photos for one user, cached prefix vs naive, end to end.

    python -m pmllm.bench [--checkpoint pmllm/checkpoints/default] [--n 64] [--threads 2] [--images DIR]

Each mode runs in its own subprocess (clean peak RSS): load the model, warm up on the same photos with another
profile (as a running service would be: batch shapes primed, nothing of this user cached), then time
``model.score(photos, profile=profile)`` from JPEG files to scores - decoding, the frozen vision encoder and the LLM
included; ``--repeats`` timed runs (3) in the cached mode, the median shown, each reading the user anew (free text
and prompt prefix). ``cached`` computes the profile prefix once and scores short suffixes in batches; ``naive``
runs the whole prompt for every photo (``cached=False``). Also timed (cached mode): the LLM part alone on
precomputed visual tokens, and the image part alone two ways: piaa's fast path (``model.visual_tokens``: threaded
reduced-size decoding, BN-folded channels-last encoder run in CPU micro-batches) and the plain path (files decoded
one by one, the encoder module as loaded), whose tokens and scores are compared with the fast path's (max abs
difference). Prints a table and checks that both modes give the same scores (max abs difference), with the load
average at the start and the end (a busy machine slows every row; ``CPU s``, the process CPU time of the timed
call, is less sensitive to it). Photos: the first N JPEGs of ``--images`` or, by default, N synthetic 320x240
photos written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PROFILE = {
    "age": "26-29", "gender": "female", "education": "university", "art_experience": "competent",
    "photography_experience": "beginner", "big5_E": 6.0, "big5_A": 5.0, "big5_N": 4.0, "big5_O": 7.0, "big5_C": 5.0,
    "text": "I love warm, colourful pictures of animals and food. Blurry or noisy shots annoy me, and I find dark, "
            "moody scenes depressing.",
}  # fmt: skip


def synthetic_photos(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, 3)
        grad = np.linspace(0, 1, 320)[None, :, None] * rng.integers(-120, 120, 3)
        arr = np.clip(base + grad + rng.normal(0, 20, (240, 320, 3)), 0, 255).astype(np.uint8)
        p = folder / f"photo{i:03d}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        paths.append(p)
    return paths


def plain_visual_tokens(model, paths: list[Path], batch_size: int) -> torch.Tensor:
    """The plain image path: files decoded one at a time, then the encoder module as loaded (no folding)."""
    import torch

    from piaa.images import load_image

    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            imgs = [load_image(p, min_side=model.encoder.image_size) for p in paths[i : i + batch_size]]
            out.append(model.encoder(model.encoder.preprocess(imgs).to(model.device)).tokens.float())
    return torch.cat(out)


def image_path_check(model, profile, paths: list[Path], batch_size: int) -> dict:
    """Time the fast and the plain image paths alone; max |diff| of their tokens and of the scores from them."""
    t = time.perf_counter()
    fast = model.visual_tokens(paths, batch_size)
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    plain = plain_visual_tokens(model, paths, batch_size)
    plain_s = time.perf_counter() - t
    s_fast = model.score_tokens(profile, fast, batch_size=batch_size).scores
    s_plain = model.score_tokens(profile, plain, batch_size=batch_size).scores
    return {"encoder_images_per_s": len(paths) / fast_s, "plain_encoder_images_per_s": len(paths) / plain_s,
            "max_abs_token_diff": float((fast - plain).abs().max()),
            "max_abs_score_diff_fast_vs_plain": float(np.max(np.abs(s_fast - s_plain))), "tokens": fast}  # fmt: skip


def run_mode(args: argparse.Namespace) -> dict:
    """One mode in this process: returns timings, scores and peak RSS."""
    import torch

    torch.set_num_threads(args.threads)
    from piaa.schema import Profile
    from pmllm.config import PMLLMConfig
    from pmllm.model import PMLLM

    paths = [Path(p) for p in json.loads(Path(args.paths_file).read_text())]
    t = time.perf_counter()
    model = PMLLM.from_pretrained(args.checkpoint) if args.checkpoint else PMLLM(PMLLMConfig())
    load_s = time.perf_counter() - t
    profile = Profile.from_dict(PROFILE)
    cached = args.mode == "cached"
    # warm-up: the same photos for another user (a running service: batch shapes primed, this user's prefix not)
    model.score(paths if cached else paths[:4], profile=Profile(text="warm-up"), cached=cached,
                batch_size=args.batch_size)  # fmt: skip
    runs = []
    for _ in range(args.repeats if cached else 1):  # the naive mode takes ~30 s a run: once
        model.forget_users()  # every timed run reads this user anew (free text, prefix)
        t, cpu = time.perf_counter(), time.process_time()
        out = model.score(paths, profile=profile, cached=cached, batch_size=args.batch_size)
        runs.append((time.perf_counter() - t, time.process_time() - cpu))
    total_s, cpu_s = sorted(runs)[len(runs) // 2]  # the median run
    llm_s, check = float("nan"), {}
    if cached:  # the naive LLM part is nearly all of its total already; not repeated (minutes on 2 cores)
        check = image_path_check(model, profile, paths, args.batch_size)
        tokens = check.pop("tokens")
        model.forget_users()
        t = time.perf_counter()
        model.score_tokens(profile, tokens, cached=cached, batch_size=args.batch_size)
        llm_s = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": args.mode, "n": len(paths), "load_s": load_s, "total_s": total_s, "cpu_s": cpu_s,
            "llm_only_s": llm_s,
            "images_per_s": len(paths) / total_s, "llm_images_per_s": len(paths) / llm_s,
            "runs_images_per_s": [len(paths) / r[0] for r in runs],
            "peak_rss_mb": peak_mb, "scores": out.scores.tolist(), **check}  # fmt: skip


def print_table(args: argparse.Namespace, c: dict, n: dict, diff: float, load_start, load_end) -> None:
    ck = args.checkpoint or "(untrained)"
    loads = f"load avg (1/5/15 min) {' '.join(f'{x:.2f}' for x in load_start)} at the start, " \
            f"{' '.join(f'{x:.2f}' for x in load_end)} at the end on {os.cpu_count()} CPUs"  # fmt: skip
    print(f"\npmllm scoring {args.n} photos for one user, {args.threads} threads, checkpoint {ck}\n{loads}")
    print(f"{'mode':<8}{'images/s':>10}{'total s':>10}{'CPU s':>8}{'LLM-only img/s':>16}{'peak RSS MB':>13}")
    for r in (c, n):
        print(f"{r['mode']:<8}{r['images_per_s']:>10.2f}{r['total_s']:>10.2f}{r['cpu_s']:>8.2f}"
              f"{r['llm_images_per_s']:>16.2f}{r['peak_rss_mb']:>13.0f}")  # fmt: skip
    print(f"cached runs: {', '.join(f'{x:.1f}' for x in c['runs_images_per_s'])} img/s (median shown)")
    print(f"speed-up cached/naive: {c['images_per_s'] / n['images_per_s']:.1f}x end to end; "
          f"max |score diff| cached vs naive = {diff:.2e}")  # fmt: skip
    print(f"image part alone: fast path (piaa, BN-folded) {c['encoder_images_per_s']:.2f} img/s, plain module "
          f"{c['plain_encoder_images_per_s']:.2f} img/s; fast vs plain: max |token diff| = "
          f"{c['max_abs_token_diff']:.2e}, max |score diff| = "
          f"{c['max_abs_score_diff_fast_vs_plain']:.2e}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pmllm.bench", description=__doc__.split("\n\n")[0])
    default_ck = Path(__file__).parent / "checkpoints" / "default"
    ap.add_argument("--checkpoint", "--pmllm", dest="checkpoint",
                    default=str(default_ck) if default_ck.is_dir() else "",
                    help="checkpoint dir ('' = untrained default model)")  # fmt: skip
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs in the cached mode (the median is shown)")
    ap.add_argument("--images", default=None, help="folder with JPEG photos (default: synthetic photos)")
    ap.add_argument("--out", default=None, help="write the results JSON here")
    ap.add_argument("--mode", choices=["cached", "naive"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--paths-file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.mode:  # child process
        print("RESULT " + json.dumps(run_mode(args)))
        return
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.images:
            paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[: args.n]
            if len(paths) < args.n:
                sys.exit(f"pmllm.bench: error: {args.images} holds {len(paths)} JPEGs, fewer than --n {args.n}")
        else:
            paths = synthetic_photos(tmp, args.n)
        (tmp / "paths.json").write_text(json.dumps([str(p) for p in paths]))
        results = {}
        for mode in ("cached", "naive"):
            cmd = [sys.executable, "-m", "pmllm.bench", "--mode", mode, "--paths-file", str(tmp / "paths.json"),
                   "--checkpoint", args.checkpoint, "--threads", str(args.threads),
                   "--batch-size", str(args.batch_size), "--repeats", str(args.repeats)]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"pmllm.bench: the {mode} run failed:\n{proc.stderr[-2000:]}")
            results[mode] = json.loads(line[0][7:])
    diff = float(np.max(np.abs(np.array(results["cached"]["scores"]) - np.array(results["naive"]["scores"]))))
    c, n = results["cached"], results["naive"]
    load_end = os.getloadavg()
    print_table(args, c, n, diff, load_start, load_end)
    if args.out:
        summary = {"n": args.n, "threads": args.threads, "checkpoint": args.checkpoint, "max_abs_score_diff": diff,
                   "speedup_end_to_end": c["images_per_s"] / n["images_per_s"],
                   "loadavg_start": list(load_start), "loadavg_end": list(load_end), "cached": c,
                   "naive": n}  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
