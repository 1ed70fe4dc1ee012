"""Render an evaluation's ``results.json`` content as ``results.md`` (Markdown tables) and ``per_user_srocc.png``.

Simulated runs say "simulated" in the title of the table and the plot. Library module used by
``python -m eval.run``; no entry point.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def fmt_num(x: float | None, nd: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def fmt_ci(ci: list) -> str:
    lo, hi = ci
    return "—" if lo is None or math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"


def title(results: dict) -> str:
    tag = "SIMULATED world" if results.get("simulated") else "real data"
    return f"PIAA evaluation: {results['benchmark']} ({tag})"


def _flatten(d, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    if isinstance(d, dict):
        for k, v in d.items():
            rows.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        rows.append((prefix, d))
    return rows


def variance_table(vd: dict) -> list[str]:
    """Markdown lines for world.json's ``variance_decomposition``: a parts x views table when it has the
    sim world's shape (``latent`` / ``score`` / ``score_within_user`` share dicts), else flattened key/value rows."""
    views = [k for k in ("latent", "score", "score_within_user") if isinstance(vd.get(k), dict)]
    lines = []
    if views:
        parts = list(dict.fromkeys(p for v in views for p in vd[v]))
        lines += [
            "Shares of variance per generative part (simulated).",
            "",
            "| part | " + " | ".join(v.replace("_", " ") for v in views) + " |",
            "|---|" + "---|" * len(views),
        ]
        for p in parts:
            lines.append(f"| {p} | " + " | ".join(fmt_num(vd[v].get(p)) for v in views) + " |")
        lines.append("")
    rest = {k: v for k, v in vd.items() if k not in views and k != "simulated"}
    if rest:
        lines += ["| quantity | value |", "|---|---|"]
        for k, v in _flatten(rest):
            lines.append(f"| {k} | {fmt_num(v, 4) if isinstance(v, float) else v} |")
    return lines


def method_shots_table(methods, shots, cell, first: str = "method") -> list[str]:
    """Markdown lines of a methods x shot counts table; ``cell(method, shots)`` gives each cell's text."""
    out = ["| " + first + " | " + " | ".join("zero-shot" if k == 0 else f"{k}-shot" for k in shots) + " |",
           "|---|" + "---|" * len(shots)]  # fmt: skip
    return out + [f"| {m} | " + " | ".join(cell(m, k) for k in shots) + " |" for m in methods]


def markdown(results: dict) -> str:
    aggs = results["aggregates"]
    methods = list(dict.fromkeys(a["method"] for a in aggs))
    shots = sorted({a["shots"] for a in aggs})
    by = {(a["method"], a["shots"]): a for a in aggs}
    cfg = results["config"]
    out = [f"# {title(results)}", ""]
    if results.get("simulated"):
        out += ["> **Simulated**: these numbers come from a simulated world of raters; they are not "
                "results on real raters.", ""]  # fmt: skip
    if cfg.get("warning"):
        out += [f"> **Warning**: {cfg['warning']}", ""]
    dataset = results.get("dataset") or {}
    if dataset.get("fold_source"):
        out += [f"Folds: {dataset['fold_source']}.", ""]
    notes = (dataset.get("read_report") or {}).get("notes") or []
    out += [f"> **Reader note**: {n}" for n in notes] + ([""] if notes else [])
    out += [
        f"Protocol: zero-shot = user-disjoint folds, all of a test user's ratings are the query; k-shot = k support "
        f"images drawn uniformly per (seed, user, repeat), the rest are the query. Folds {cfg['folds']}, "
        f"{cfg['repeats']} repeat(s) per few-shot user, seed {cfg['seed']}, min query {cfg['min_query']}. "
        + (f"Only the first {cfg['max_users']} test users of each fold (by id). " if cfg.get("max_users") else "")
        + "Mean over users of the per-user SROCC (averaged over repeats); ± = std over repeats of the user-mean; "
        "CI = 95% t-interval over users.",
        "",
        "## Mean per-user SROCC" + (" (simulated)" if results.get("simulated") else ""),
        "",
    ]

    def cell(m: str, k: int) -> str:
        a = by.get((m, k))
        return "n/a" if a is None else f"{fmt_num(a['srocc']['mean'])} ± {fmt_num(a['srocc']['std'])}"

    out += method_shots_table(methods, shots, cell, first="method")
    out += ["", "## Details", "",
            "| method | shots | SROCC mean ± std | SROCC 95% CI | PLCC mean ± std | PLCC 95% CI | users | repeats | "
            "constant preds |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in methods:
        for k in shots:
            a = by.get((m, k))
            if a is None:
                continue
            s, p = a["srocc"], a["plcc"]
            out.append(
                f"| {m} | {k} | {fmt_num(s['mean'])} ± {fmt_num(s['std'])} | {fmt_ci(s['ci95'])} | "
                f"{fmt_num(p['mean'])} ± {fmt_num(p['std'])} | {fmt_ci(p['ci95'])} | {s['n_users']} | "
                f"{s['n_repeats']} | {a['n_constant']} |"
            )
    out += paired_table(results)
    skipped = results.get("skipped", {}).get("counts", {})
    out += ["", "## Skipped users", ""]
    if any(skipped.values()):
        out += ["| shots | reason | count |", "|---|---|---|"]
        for k, reasons in skipped.items():
            for reason, n in reasons.items():
                out.append(f"| {k} | {reason} | {n} |")
    else:
        out.append("None.")
    dropped = results.get("dropped_scorers") or {}
    if dropped:
        out += ["", "## Scorers not run", ""] + [f"- `{k}`: {v}" for k, v in dropped.items()]
    fold_skips = results.get("scorer_fold_skips") or {}
    if fold_skips:
        out += ["", "## Scorers skipped on some folds", ""]
        out += [f"- `{k}`, fold {f}: {why}" for k, v in fold_skips.items() for f, why in v.items()]
    vd = (results.get("world") or {}).get("variance_decomposition")
    if results.get("simulated"):
        out += ["", "## Variance decomposition of the simulated ratings (from world.json)", ""]
        if vd:
            out += variance_table(vd)
        else:
            out.append("world.json has no variance_decomposition.")
    timing = results.get("scorers") or {}
    if timing:
        out += ["", "## Scorer cost", "", "| method | fit s (all folds) | predict s (all episodes) |", "|---|---|---|"]
        for m, t in timing.items():
            out.append(f"| {m} | {fmt_num(t.get('fit_seconds'), 1)} | {fmt_num(t.get('predict_seconds'), 1)} |")
    out.append("")
    return "\n".join(out)


def paired_table(results: dict) -> list[str]:
    """Markdown lines: per-user SROCC differences of every method vs the run's reference (same episodes)."""
    paired = results.get("paired") or []
    if not paired:
        return []
    ref = paired[0]["reference"]
    out = ["", f"## Paired differences vs `{ref}`" + (" (simulated)" if results.get("simulated") else ""), "",
           "Per user: mean over the repeats both methods ran of (method - reference) SROCC; then mean over users, "
           "SE = std of the per-user differences / sqrt(users).", "",
           "| method | shots | mean difference | SE | 95% CI | better for |", "|---|---|---|---|---|---|"]  # fmt: skip
    for d in paired:
        out.append(f"| {d['method']} | {d['shots']} | {d['mean_diff']:+.4f} | {fmt_num(d['se'], 4)} | "
                   f"{fmt_ci(d['ci95'])} | {d['n_better']}/{d['n_users']} |")  # fmt: skip
    return out


def plot_per_user(results: dict, path: str | Path) -> Path:
    """Box + strip plot of per-user SROCC (mean over repeats), one panel per shot count, one box per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_user: dict[tuple[str, int], dict[str, list[float]]] = {}
    for r in results["per_user"]:
        per_user.setdefault((r["method"], r["shots"]), {}).setdefault(f"{r['fold']}/{r['user']}", []).append(
            r["srocc"]
        )
    methods = list(dict.fromkeys(r["method"] for r in results["aggregates"]))
    shots = sorted({k for _, k in per_user})
    fig, axes = plt.subplots(1, max(1, len(shots)), figsize=(1.2 + 1.1 * len(methods) * len(shots) + 1, 4.2),
                             sharey=True, squeeze=False)  # fmt: skip
    rng = np.random.default_rng(0)
    for ax, k in zip(axes[0], shots):
        names = [m for m in methods if (m, k) in per_user]
        data = [np.array([np.mean(v) for v in per_user[(m, k)].values()]) for m in names]
        if data:
            ax.boxplot(data, showfliers=False, widths=0.6)
            for i, d in enumerate(data, 1):
                ax.scatter(i + rng.uniform(-0.18, 0.18, len(d)), d, s=6, alpha=0.45, color="C0", zorder=3)
            ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
        ax.axhline(0, color="grey", lw=0.8, ls=":")
        ax.set_title("zero-shot" if k == 0 else f"{k}-shot")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("per-user SROCC (mean over repeats)")
    fig.suptitle(title(results))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
