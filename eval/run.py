"""Evaluate scorers on a benchmark under the zero-shot and few-shot protocols; write results + report + plot.

This is the project's only accuracy harness: every per-user SROCC in the README, the model cards and the
benchmarks' tables comes from here (the ``pmllm`` and ``taskvec`` presets replace the products' former evaluation
scripts; ``pmllm.bench`` / ``taskvec.bench`` measure speed and memory only).

Usage::

    python -m eval.run --benchmark sim --quick                  # simulated world (built if absent), baselines
    python -m eval.run --benchmark sim --shots 0,10,100 --repeats 10
    python -m eval.run --benchmark sim --root worlds/sim --folds 0 --preset pmllm     # pmllm's profile ablations
    python -m eval.run --benchmark sim --root worlds/sim --preset taskvec --max-users 6  # fast vs reference recipe
    python -m eval.run --benchmark para --root /data/PARA --scorers random,population-mean
    python -m eval.run --list                                    # benchmarks, scorers and presets

Per fold, every scorer is fitted once on the fold's training users (``Scorer.fit``), then scores every episode of
every requested shot count (``eval.protocols``). Scorers with ``needs_support`` run only at shots > 0; zero-shot
scorers run at every shot count (on few-shot query sets they ignore the support). ``oracle`` runs only on
simulated benchmarks. Writes into ``--out`` (default ``runs/<benchmark>-<UTC timestamp>``):

* ``results.json`` - config, every per-user per-repeat SROCC/PLCC, aggregates, paired differences against the
  ``--reference`` scorer (same users and episodes; mean, SE, CI), skipped users (with reasons);
* ``results.md`` - method x shots table (mean per-user SROCC ± std over repeats, 95% CI over users, PLCC), the
  paired differences, skips, and for the simulated world its variance decomposition;
* ``per_user_srocc.png`` - per-user SROCC per method and shot count.

Simulated runs are labelled "simulated" in all three.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from eval.api import Benchmark, FoldNotSupported, Scorer
from eval.benchmarks import BenchmarkNotAvailableError, benchmark_specs, list_benchmarks, load_benchmark, world_changed
from eval.metrics import UserScore, aggregate, correlations, paired_differences
from eval.protocols import DEFAULT_MIN_QUERY, SkipLog, count_episodes, episodes
from eval.report import markdown, plot_per_user, variance_table
from eval.scorers import BASELINES, ScorerNotAvailableError, create_scorer, list_scorers

QUICK_REPEATS = 3
QUICK_FOLDS = (0, 1)


class RunError(RuntimeError):
    """A bad flag or an unusable benchmark/scorer; printed as one line, no traceback."""


def _int_list(text: str, flag: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise RunError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise RunError(f"{flag}: empty list")
    return vals


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def evaluate(
    benchmark: Benchmark,
    scorers: list[Scorer],
    *,
    shots: list[int],
    repeats: int,
    seed: int,
    folds: list[int],
    min_query: int = DEFAULT_MIN_QUERY,
    progress: bool = True,
    max_users: int | None = None,
    user_offset: int = 0,
) -> dict:
    """Run the protocols; returns ``{"per_user": [UserScore], "skips": SkipLog, "scorers": {...}, "dropped": {...}}``.

    A scorer whose ``fit`` or ``predict`` raises (or returns unusable predictions) is dropped for the rest of the
    run with the reason recorded and its partial records discarded; the others go on.
    """
    records: list[UserScore] = []
    skips = SkipLog()
    cost = {s.name: {"fit_seconds": 0.0, "predict_seconds": 0.0, "needs_support": bool(s.needs_support)}
            for s in scorers}  # fmt: skip
    dropped: dict[str, str] = {}
    fold_skips: dict[str, dict[int, str]] = {}  # scorer -> {fold: why} (FoldNotSupported)
    active = list(scorers)

    def drop(s: Scorer, where: str, err: Exception) -> None:
        """Drop a failing scorer for the rest of the run and discard its partial records (no half-evaluated rows)."""
        tb = traceback.extract_tb(err.__traceback__)
        at = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        dropped[s.name] = f"{where}: {type(err).__name__}: {err}{at}"
        if s in active:
            active.remove(s)
        records[:] = [r for r in records if r.method != s.name]
        print(f"[eval.run] dropping scorer {s.name}: {dropped[s.name]}", file=sys.stderr)

    for f in folds:
        train_users = sorted(map(str, benchmark.folds[f][0]))
        skip_here: set[str] = set()
        for s in list(active):
            t0 = time.perf_counter()
            try:
                s.fit(benchmark, train_users)
            except FoldNotSupported as err:
                skip_here.add(s.name)
                fold_skips.setdefault(s.name, {})[f] = str(err)
                print(f"[eval.run] {s.name} skips fold {f}: {err}", file=sys.stderr)
            except Exception as err:  # noqa: BLE001 - one broken scorer must not lose the others' results
                drop(s, f"fit failed on fold {f}", err)
            cost[s.name]["fit_seconds"] += time.perf_counter() - t0
        for k in shots:
            run_here = [s for s in active if (k > 0 or not s.needs_support) and s.name not in skip_here]
            if not run_here:
                continue
            total = count_episodes(benchmark, shots=k, repeats=repeats, folds=[f], min_query=min_query,
                                   max_users=max_users, user_offset=user_offset)  # fmt: skip
            bar = tqdm(total=total, desc=f"fold {f} {k}-shot", unit="ep", disable=not progress, leave=False)
            for ep in episodes(benchmark, shots=k, repeats=repeats, seed=seed, folds=[f], min_query=min_query,
                               skips=skips, max_users=max_users, user_offset=user_offset):  # fmt: skip
                for s in list(run_here):
                    t0 = time.perf_counter()
                    try:
                        pred = s.predict(ep.task)
                        srocc, plcc, note = correlations(pred, ep.query_scores)
                    except Exception as err:  # noqa: BLE001 - MetricError (wrong length, NaN) or a scorer bug
                        drop(s, f"predict failed on fold {f}, user {ep.task.user}, {k}-shot", err)
                        run_here.remove(s)
                        continue
                    finally:
                        cost[s.name]["predict_seconds"] += time.perf_counter() - t0
                    records.append(UserScore(s.name, k, f, ep.task.user, ep.task.repeat, len(ep.query_scores),
                                             srocc, plcc, note))  # fmt: skip
                bar.update(1)
            bar.close()
    return {"per_user": records, "skips": skips, "scorers": cost, "dropped": dropped, "fold_skips": fold_skips}


def build_results(benchmark: Benchmark, run: dict, config: dict, info: dict) -> dict:
    aggs = aggregate(run["per_user"])
    order = {n: i for i, n in enumerate(config["scorers"])}
    rows = [{"method": m, "shots": k, **v} for (m, k), v in aggs.items()]
    rows.sort(key=lambda r: (order.get(r["method"], 99), r["shots"]))
    return {
        "benchmark": benchmark.name,
        "simulated": bool(benchmark.simulated),
        "label": "simulated" if benchmark.simulated else "real",
        "config": config,
        "world": info if benchmark.simulated else None,
        "dataset": None if benchmark.simulated else info,
        "n_users": len(benchmark.table.users),
        "n_images": len(benchmark.table.images),
        "n_ratings": len(benchmark.table.ratings),
        "aggregates": rows,
        "paired": paired_differences(run["per_user"], config["reference"]) if config.get("reference") else [],
        "per_user": [r.to_dict() for r in run["per_user"]],
        "skipped": {"counts": run["skips"].counts(), "items": run["skips"].to_list()},
        "scorers": run["scorers"],
        "dropped_scorers": run["dropped"],
        "scorer_fold_skips": run.get("fold_skips", {}),
    }


def _json_safe(x):
    """NaN/inf -> None (strict JSON), numpy scalars -> Python, paths -> str."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_outputs(results: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "per_user_srocc.png"}
    results = _json_safe(results)
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, allow_nan=False))
    os.replace(tmp, paths["json"])
    paths["md"].write_text(markdown(results))
    plot_per_user(results, paths["png"])
    return paths


PRESETS: dict[str, dict] = {
    "baselines": {"scorers": ["random", "population-mean", "support-residual", "oracle"]},
    "pmllm": {  # zero-shot: the profile ablations of pmllm against the population model and the prompt-only LLM
        "scorers": ["pmllm", "pmllm-structured", "pmllm-text", "pmllm-demographics", "pmllm-empty", "prompt-only",
                    "population-mean", "oracle"],
        "shots": [0], "reference": "pmllm-empty",
    },
    "taskvec": {  # few-shot: the fast recipe against the reference recipe of Yun & Choo (ECCV 2024)
        "scorers": ["taskvec", "taskvec-yun2024", "population-mean"], "shots": [10, 100],
        "reference": "taskvec-yun2024",
    },
    "product": {  # every product scorer and every baseline
        "scorers": ["random", "population-mean", "support-residual", "oracle", "pmllm", "pmllm-structured",
                    "pmllm-text", "pmllm-empty", "taskvec", "ensemble"],
        "shots": [0, 10, 100],
    },
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", default="sim", help="a benchmark name (--list shows them)")
    p.add_argument(
        "--root",
        "--world",
        dest="root",
        help="dataset folder (real benchmarks) or a simulated world folder (sim; --world is the same flag)",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named set of scorers/shots (flags override it)")
    p.add_argument("--scorers", help="comma list (default: the baselines random,population-mean[,oracle])")
    p.add_argument("--scorer-options", default="{}",
                   help='JSON {scorer: {keyword: value}} passed to the scorers\' factories, e.g. '
                        '\'{"taskvec": {"recipe_kwargs": {"l2": 0.003}}}\'')  # fmt: skip
    p.add_argument("--reference", help="scorer the paired differences are taken against (default: "
                                       "population-mean if it runs, else the first scorer)")  # fmt: skip
    p.add_argument("--shots", help="comma list of shot counts, 0 = zero-shot (default 0,10,100)")
    p.add_argument("--repeats", type=int, help="few-shot repeats per user (default 10; --quick: 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", help="comma list of fold indices (default: all; --quick: 0,1)")
    p.add_argument("--min-query", type=int, default=DEFAULT_MIN_QUERY, help="minimum query images per user")
    p.add_argument("--max-users", type=int, default=None,
                   help="only the first N test users of each fold (sorted by id)")  # fmt: skip
    p.add_argument("--user-offset", type=int, default=0,
                   help="skip the first N test users of each fold (sorted by id): a user set disjoint from "
                        "another run's --max-users N")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="sim-quick world, 3 repeats, folds 0,1")
    p.add_argument("--out", help="output folder (default runs/<benchmark>-<UTC timestamp>)")
    p.add_argument("--cache-dir", help="feature cache folder (default $PIAA_CACHE_DIR/features)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--list", action="store_true", help="list benchmarks, scorers and presets, then exit")
    return p.parse_args(argv)


def _folds(args: argparse.Namespace, benchmark: Benchmark) -> list[int]:
    n_folds = len(benchmark.folds)
    if args.folds:
        folds = _int_list(args.folds, "--folds")
    else:
        folds = [f for f in QUICK_FOLDS if f < n_folds] if args.quick else list(range(n_folds))
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise RunError(f"--folds: {bad} out of range; {benchmark.name} has {n_folds} fold(s)")
    return folds


def _scorer_names(args: argparse.Namespace, preset: dict, benchmark: Benchmark) -> list[str]:
    if args.scorers:
        names = [s.strip() for s in args.scorers.split(",") if s.strip()]
    elif preset.get("scorers"):
        names = list(preset["scorers"])
    else:
        names = [n for n in BASELINES if n != "oracle" or benchmark.oracle is not None]
    unknown = [n for n in names if n not in list_scorers()]
    if unknown:
        raise RunError(f"--scorers: unknown {unknown}; registered: {', '.join(list_scorers())}")
    return names


def _scorer_options(text: str, names: list[str]) -> dict[str, dict]:
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunError(f"--scorer-options: not valid JSON ({err.msg})") from None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise RunError('--scorer-options: expected {"scorer": {"keyword": value}}')
    stray = sorted(set(options) - set(names))
    if stray:
        raise RunError(f"--scorer-options: names {stray} are not among the scorers run ({', '.join(names)})")
    return options


def build_scorers(names: list[str], context: dict, benchmark: Benchmark,
                  options: dict[str, dict]) -> tuple[list[Scorer], dict[str, str]]:  # fmt: skip
    """Create the named scorers; those that cannot run here are returned in ``dropped`` with the reason."""
    scorers, dropped = [], {}
    for n in names:
        try:
            s = create_scorer(n, context=context, **options.get(n, {}))
        except ScorerNotAvailableError as err:
            dropped[n] = str(err)
            continue
        except TypeError as err:
            raise RunError(f"--scorer-options for {n}: {err}") from None
        if getattr(s, "requires_oracle", False) and benchmark.oracle is None:
            dropped[n] = "needs an oracle (simulated benchmarks only)"
            continue
        scorers.append(s)
    for n, why in dropped.items():
        print(f"[eval.run] not running {n}: {why}", file=sys.stderr)
    if not scorers:
        raise RunError("no scorer can run: " + "; ".join(f"{k}: {v}" for k, v in dropped.items()))
    return scorers, dropped


def _settings(args: argparse.Namespace) -> tuple[dict, list[int], int]:
    """(preset, shots, repeats) from the flags; flags override the preset."""
    preset = PRESETS.get(args.preset or "", {})
    specs = benchmark_specs()
    if args.benchmark not in specs:
        raise RunError(f"--benchmark: unknown {args.benchmark!r}; known: {', '.join(sorted(specs))}")
    if args.shots:
        shots = _int_list(args.shots, "--shots")
    else:
        shots = list(preset.get("shots") or specs[args.benchmark].default_shots)
    if any(k < 0 for k in shots):
        raise RunError("--shots: shot counts must be >= 0")
    repeats = args.repeats if args.repeats is not None else (QUICK_REPEATS if args.quick else 10)
    if repeats < 1:
        raise RunError("--repeats must be >= 1")
    if args.max_users is not None and args.max_users < 1 or args.user_offset < 0:
        raise RunError("--max-users must be >= 1 and --user-offset >= 0")
    return preset, shots, repeats


def run(args: argparse.Namespace) -> dict[str, Path]:
    preset, shots, repeats = _settings(args)
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        benchmark, info = load_benchmark(args.benchmark, args.root, quick=args.quick)
    except BenchmarkNotAvailableError as err:
        raise RunError(str(err)) from None
    folds = _folds(args, benchmark)
    names = _scorer_names(args, preset, benchmark)
    options = _scorer_options(args.scorer_options, names)
    out = Path(args.out) if args.out else Path("runs") / f"{args.benchmark}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    context = {"seed": args.seed, "cache_dir": args.cache_dir, "quick": args.quick, "out_dir": out,
               "benchmark_name": benchmark.name, "progress": not args.no_progress}  # fmt: skip
    scorers, dropped = build_scorers(names, context, benchmark, options)
    run_names = [s.name for s in scorers]
    reference = args.reference or preset.get("reference")
    if reference is None or reference not in run_names:
        reference = "population-mean" if "population-mean" in run_names else run_names[0]
    config = {
        "benchmark": args.benchmark, "root": args.root, "preset": args.preset, "scorers": names,
        "scorer_options": options, "reference": reference, "shots": shots, "repeats": repeats, "seed": args.seed,
        "folds": folds, "min_query": args.min_query, "quick": args.quick, "max_users": args.max_users,
        "user_offset": args.user_offset, "git_commit": _git_commit(), "python": platform.python_version(),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    t0 = time.perf_counter()
    result = evaluate(benchmark, scorers, shots=shots, repeats=repeats, seed=args.seed, folds=folds,
                      min_query=args.min_query, progress=not args.no_progress, max_users=args.max_users,
                      user_offset=args.user_offset)  # fmt: skip
    result["dropped"] = {**dropped, **result["dropped"]}
    config["eval_seconds"] = round(time.perf_counter() - t0, 2)
    if world_changed(info):
        config["warning"] = "the simulated world folder was rebuilt during this run: results mix two worlds; rerun"
        print(f"[eval.run] WARNING: {config['warning']}", file=sys.stderr)
    results = build_results(benchmark, result, config, info)
    paths = write_outputs(results, out)
    print_summary(results, info if benchmark.simulated else None)
    print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return paths


def print_summary(results: dict, world_info: dict | None) -> None:
    label = " (SIMULATED)" if results["simulated"] else ""
    print(f"\nmean per-user SROCC{label}:")
    for a in results["aggregates"]:
        s = a["srocc"]
        print(f"  {a['method']:<24} {a['shots']:>4}-shot  {s['mean']:.3f} ± {s['std']:.3f}  "
              f"95% CI [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]  users={s['n_users']}")  # fmt: skip
    if results["paired"]:
        print(f"\npaired per-user SROCC differences vs {results['config']['reference']}{label}:")
        for d in results["paired"]:
            print(f"  {d['method']:<24} {d['shots']:>4}-shot  {d['mean_diff']:+.4f} ± {d['se']:.4f} (SE)  "
                  f"better for {d['n_better']}/{d['n_users']} users")  # fmt: skip
    vd = (world_info or {}).get("variance_decomposition")
    if vd:
        print("\n".join(["", "variance decomposition of the SIMULATED ratings (world.json):", *variance_table(vd)]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("benchmarks:", ", ".join(list_benchmarks()))
        print("scorers:   ", ", ".join(list_scorers()))
        print("presets:   ", ", ".join(f"{k} ({', '.join(v['scorers'])})" for k, v in PRESETS.items()))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        run(args)
    except RunError as err:
        print(f"eval.run: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
