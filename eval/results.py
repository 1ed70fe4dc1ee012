"""``make results``: regenerate the README's simulated results table from ``eval.run`` alone.

    python -m eval.results --root worlds/sim --seed 0                  # what `make results` runs (~45 min)
    python -m eval.results --root worlds/sim --seed 0 --max-users 20   # the first 20 test users (~15 min)
    python -m eval.results --root worlds/sim --no-run                  # re-render from the results in --out

Two ``eval.run`` runs on fold 0 of the world, all its test users (or the first ``--max-users`` by id):

* ``main`` - every product scorer (pmllm and its coarse-profile ablations, taskvec, the residual part, the
  ensemble, and both without photo statistics, which are the simulated raters' own formulas) and the baselines
  (random, population-mean, support-residual, oracle) at shots 0 / 10 / 100, ``--repeats`` repeats (default 3);
* ``yun2024`` - the reference task-vector recipe beside the fast one on the first ``--ref-users`` test users
  (it takes ~15 s per fit on CPU), shots 10 / 100, one repeat.

The table is mean per-user SROCC with the 95% CI over users; the paired differences are those the README's claims
rest on (per user, same episodes; mean ± SE over users), computed from the runs' per-user records with
``eval.metrics.paired_differences``. The block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
the README is replaced by exactly what this prints. Numbers are SIMULATED.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from eval.metrics import UserScore, paired_differences
from eval.report import fmt_ci, fmt_num, method_shots_table
from piaa.readme import markers

MAIN = ["random", "population-mean", "support-residual", "oracle", "pmllm", "pmllm-structured", "pmllm-text",
        "pmllm-empty", "taskvec", "residual", "residual-no-photostats", "ensemble",
        "ensemble-no-photostats"]  # fmt: skip
CLAIMS = [  # (method, reference, shots): the comparisons the README states
    ("ensemble", "pmllm", 0),
    *[("ensemble", ref, k) for k in (10, 100)
      for ref in ("pmllm", "taskvec", "residual", "support-residual", "population-mean")],
    *[("ensemble-no-photostats", ref, k) for k in (10, 100)
      for ref in ("pmllm", "taskvec", "residual-no-photostats", "support-residual", "population-mean")],
    ("taskvec", "population-mean", 10), ("taskvec", "population-mean", 100),
    ("pmllm", "population-mean", 0), ("pmllm-text", "pmllm-empty", 0), ("pmllm-empty", "population-mean", 0),
    ("support-residual", "population-mean", 100), ("taskvec", "taskvec-yun2024", 100),
]  # fmt: skip


def run_args(args: argparse.Namespace) -> dict[str, list[str]]:
    common = ["--benchmark", "sim", "--root", args.root, "--folds", "0", "--seed", str(args.seed),
              "--threads", str(args.threads), *(["--no-progress"] if args.no_progress else [])]  # fmt: skip
    users = ["--max-users", str(args.max_users)] if args.max_users else []
    return {
        "main": [*common, "--scorers", ",".join(MAIN), "--shots", "0,10,100", "--repeats", str(args.repeats),
                 *users, "--reference", "population-mean", "--out", str(Path(args.out) / "main")],
        "yun2024": [*common, "--scorers", "taskvec,taskvec-yun2024", "--shots", "10,100", "--repeats", "1",
                    "--max-users", str(args.ref_users), "--reference", "taskvec-yun2024",
                    "--out", str(Path(args.out) / "yun2024")],
    }  # fmt: skip


def _records(results: dict) -> list[UserScore]:
    nan = float("nan")
    return [UserScore(**{**r, "srocc": nan if r["srocc"] is None else r["srocc"],
                         "plcc": nan if r["plcc"] is None else r["plcc"]}) for r in results["per_user"]]  # fmt: skip


def render(main: dict, ref: dict, commands: dict[str, str], seconds: dict[str, float]) -> str:
    """The README block: the table, the paired differences and how they were made."""
    aggs = {(a["method"], a["shots"]): a["srocc"] for a in main["aggregates"]}
    shots = sorted({k for _, k in aggs})
    if not aggs:
        raise SystemExit("eval.results: the main run has no results (every scorer was dropped; see its results.md)")
    n_users = max(a["n_users"] for a in aggs.values())
    cfg = main["config"]
    who = (f"the first {n_users} (by id) of its held-out test users" if cfg.get("max_users")
           else f"all {n_users} held-out test users")  # fmt: skip
    lines = [f"Simulated world `{Path(cfg['root']).name}` (seed {cfg['seed']}), fold 0, {who}, {cfg['repeats']} "
             "repeats per few-shot user; mean per-user SROCC [95% CI over users]. **Simulated raters, not real "
             "data.**", ""]  # fmt: skip

    def cell(m: str, k: int) -> str:
        a = aggs.get((m, k))
        return "—" if a is None or a["mean"] is None else f"{fmt_num(a['mean'])} {fmt_ci(a['ci95'])}"

    lines += method_shots_table(MAIN, shots, cell, first="scorer")
    ref_aggs = {(a["method"], a["shots"]): a["srocc"] for a in ref["aggregates"]}
    for m in ("taskvec", "taskvec-yun2024"):
        cells = [f"{ref_aggs[(m, k)]['mean']:.3f} ({ref_aggs[(m, k)]['n_users']} users)" if (m, k) in ref_aggs
                 else "—" for k in shots]  # fmt: skip
        lines.append(f"| {m} (reference subset) | " + " | ".join(cells) + " |")
    records = {"main": _records(main), "yun2024": _records(ref)}
    lines += ["", "Paired per-user differences (same users and episodes; mean ± SE over users, users better):", "",
              "| claim | shots | difference | users better |", "|---|---|---|---|"]  # fmt: skip
    for method, reference, k in CLAIMS:
        recs = records["yun2024" if reference == "taskvec-yun2024" else "main"]
        rows = [d for d in paired_differences(recs, reference) if d["method"] == method and d["shots"] == k]
        if rows:
            d = rows[0]
            lines.append(f"| {method} − {reference} | {k} | {d['mean_diff']:+.4f} ± {fmt_num(d['se'], 4)} | "
                         f"{d['n_better']}/{d['n_users']} |")  # fmt: skip
    lines += ["", "Made by `make results` (`python -m eval.results`), which ran:", ""]
    lines += [f"* `{commands[name]}` ({seconds.get(name, float('nan')) / 60:.0f} min)" for name in ("main", "yun2024")]
    return "\n".join(lines)


START, END = markers("results")


def write_readme(readme: Path, block: str) -> None:
    from piaa.readme import ReadmeError, replace_block

    try:
        replace_block(readme, "results", block)
    except ReadmeError as err:
        raise SystemExit(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.results", description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", "--root", dest="root", default="worlds/sim", help="the simulated world folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-users", type=int, default=6, help="test users the slow reference recipe runs on")
    ap.add_argument(
        "--max-users",
        type=int,
        default=None,
        help="only the first N test users in the main run (default: all; the README says which)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 on a shared or busy machine)")
    ap.add_argument("--out", default="results/sim", help="where the two runs' results go (committed)")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--no-run", action="store_true", help="only re-render from the results in --out")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (on stderr) from the two runs")
    args = ap.parse_args(argv)
    from eval.run import main as run_main

    runs = run_args(args)
    seconds: dict[str, float] = {}
    timing = Path(args.out) / "seconds.json"
    if not args.no_run:
        for step, (name, argv_run) in enumerate(runs.items(), 1):
            print(f"eval.results: run {step} of {len(runs)} ({name}): python -m eval.run {' '.join(argv_run)}",
                  file=sys.stderr, flush=True)  # fmt: skip
            t0 = time.perf_counter()
            if run_main(argv_run) != 0:
                print(f"eval.results: the {name} run failed", file=sys.stderr)
                return 2
            seconds[name] = time.perf_counter() - t0
        timing.write_text(json.dumps(seconds))
    elif timing.is_file():
        seconds = json.loads(timing.read_text())
    missing = [n for n in runs if not (Path(args.out) / n / "results.json").is_file()]
    if missing:
        print(
            f"eval.results: no results of the {missing} run(s) under {args.out}; run without --no-run", file=sys.stderr
        )
        return 2
    loaded = {n: json.loads((Path(args.out) / n / "results.json").read_text()) for n in runs}
    commands = {n: "python -m eval.run " + " ".join(a) for n, a in runs.items()}
    block = render(loaded["main"], loaded["yun2024"], commands, seconds)
    print(block)
    write_readme(Path(args.readme), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
