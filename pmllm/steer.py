"""Real-photo steerability benchmark (issue 12 item 4): does a taste sentence move real photos the right way?

Run::

    python -m pmllm.steer [--photos pool|bundled|DIR] [--out runs/steer.json] [--checkpoint DIR]
    python -m pmllm.steer --clauses          # only the clause set (reader accuracy), no photo scoring
    python -m pmllm.steer --no-clauses       # only the photo probes

**Pictures**: the real photo pool (:func:`piaa.photos.pool_photos`, 85 pictures, content labels checked by eye in
``piaa/data/photo_pool.csv``; ``make photos`` fetches it). Without the pool the command says so and exits 2;
``--photos bundled`` uses the 13 photos bundled with scikit-image/-learn/matplotlib instead (too few per class for
most content probes: a content probe needs ``MIN_LABELLED`` pictures with and without its label, else it is
reported as not measured), ``--photos DIR`` any folder (content label = first sub-folder name).

**Probes** (``pmllm/data/steer_probes.json``): per content concept or photo property, several like wordings and
several dislike wordings written for this benchmark. Every wording is scored as a free-text-only profile on the
1-5 scale (the photos are encoded once; each profile is one :meth:`pmllm.model.PMLLM.score_tokens` call, which is
what :meth:`~pmllm.model.PMLLM.score` runs after encoding). Per picture, ``shift = mean score over the like
wordings - mean score over the dislike wordings``.

* content probe: ``AUC`` of the shift, pictures with the label vs without (1 = every labelled picture moves up
  more than every other; 0.5 = no steering; < 0.5 = the wrong way). Target ``AUC >= 0.85``.
* property probe: Spearman of the shift with the measured property (:func:`piaa.photostats.attributes`).
  Target ``Spearman >= 0.5``.
* baseline: the same statistic on the empty profile's scores (how the model ranks the pictures with no text).
* what the user sees (``seen_like`` / ``seen_dislike``): the AUC and the Spearman say the shift goes the right way,
  not whether it is large enough to beat the model's prior. Content: the labelled pictures' mean percentile rank
  among all pictures (1 = top) under the like wordings and under the dislike wordings; property: the Spearman of
  the scores themselves with the property under each. ``sides_ok``: like above the middle (> 0.5; property > 0)
  and dislike below it (< 0.5; property < 0), i.e. "I can't stand X" puts X in the lower half.

**Clause set** (``pmllm/data/steer_clauses.csv``): hand-written clauses (plain, negation, intensity, tolerance,
questions, hedges, idioms, and the two halves of contrast sentences as :func:`pmllm.taste_text.split_clauses` cuts
them), each with the ``TASTE_CONCEPTS`` concept and polarity it expresses. Each clause is read by the model's
:class:`~pmllm.taste_text.TasteReader`:

* polarity correct: ``sign(weight) == polarity`` for +1/-1; for tolerance/neutral clauses (polarity 0, "I don't
  mind grain") correct when ``|weight| < TOLERANCE_BAND`` (the reader neither likes nor dislikes it strongly);
* concept correct: the top concept equals the labelled one (*exact*), or lies in the same group of near-synonym
  concepts (*group*, :data:`CONCEPT_GROUPS`; a concept outside every group is its own group);
* both: polarity correct and concept correct by group; this is the reported reader accuracy (target >= 90 %).

Six more clause sets, written after the main one in other words, are read the same way and reported beside it
(``LATER_CLAUSE_FILES``: ``steer_clauses_heldout.csv``, ``steer_clauses_blind.csv``, ``steer_clauses_blind2.csv``,
``steer_clauses_blind3.csv``, ``steer_clauses_blind4.csv``, ``steer_clauses_blind5.csv``).

The JSON (``--out``) holds the configuration, every picture (content, properties), every wording's scores, each
probe's metric and each clause's reading. These are measurements of the model as it is; nothing is tuned here.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pmllm.constants import TASTE_CONCEPTS

DATA = Path(__file__).parent / "data"
PROBES_FILE = DATA / "steer_probes.json"
CLAUSES_FILE = DATA / "steer_clauses.csv"
# clause sets written after the main one, in other words: "held-out" before the reader's concept descriptions were
# written (their failures were seen), "blind" after, read once before one rule change (see the model card),
# "blind-2" (72 clauses, more hedges, questions and tolerance) after the face reading, read once (its failures, like
# every set's, were seen before the tolerance rule); "blind-3" (48 + 2 clauses) after the tolerance rule, read once
# before one tolerance phrasing was added (model card); "blind-4" (50 clauses, 10 questions) committed before the
# rhetorical-question rule and read once before it (one clause, found to repeat a held-out one, replaced after);
# "blind-5" (50 clauses) written after every rule and read once
LATER_CLAUSE_FILES = {"held-out": DATA / "steer_clauses_heldout.csv", "blind": DATA / "steer_clauses_blind.csv",
                      **{f"blind-{n}": DATA / f"steer_clauses_blind{n}.csv" for n in (2, 3, 4, 5)}}  # fmt: skip
CLAUSE_COLUMNS = ("clause", "concept", "polarity", "kind", "sentence")
TARGET_AUC = 0.85  # issue 12: every content probe
TARGET_SPEARMAN = 0.5  # issue 12: every property probe
TARGET_CLAUSES = 0.90  # issue 12: reader accuracy on the clause set
MIN_LABELLED = 3  # a content probe is measured only with this many pictures with and without its label
TOLERANCE_BAND = 0.5  # a polarity-0 clause is read correctly when |weight| < this
# near-synonym concepts of TASTE_CONCEPTS: a clause read as another member of its group counts as concept-correct
CONCEPT_GROUPS: dict[str, tuple[str, ...]] = {
    "colour": ("colourful photos", "vivid saturated colours"),
    "faded": ("pastel faded colours", "vintage look"),
    "people": ("portraits of people", "children", "weddings"),
    "scenery": ("landscapes", "mountains", "forests", "snow"),
    "urban": ("buildings and architecture", "city streets"),
    "night sky": ("night photography", "space and stars"),
}


class SteerError(RuntimeError):
    """A probe/clause file is malformed, or the pictures cannot be had (message for the user, no traceback)."""


# ------------------------------------------------------------------------------------------------ data files
def load_probes(path: str | Path = PROBES_FILE) -> dict:
    """The probe file: ``{"content": [{name, labels, like, dislike}], "property": [{name, attribute, like,
    dislike}]}``; raises :class:`SteerError` when a probe lacks a field or has fewer than 3 wordings a side."""
    from piaa.photostats import ATTRIBUTES

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    for kind, key in (("content", "labels"), ("property", "attribute")):
        for p in data.get(kind, []):
            if not p.get("name") or not p.get(key):
                raise SteerError(f"{path}: {kind} probe {p!r} needs 'name' and '{key}'")
            for side in ("like", "dislike"):
                words = p.get(side) or []
                if len(words) < 3 or not all(isinstance(w, str) and w.strip() for w in words):
                    raise SteerError(f"{path}: probe {p['name']!r} needs >= 3 non-empty '{side}' wordings")
            if kind == "property" and p["attribute"] not in ATTRIBUTES:
                raise SteerError(f"{path}: probe {p['name']!r}: unknown attribute {p['attribute']!r}")
    return data


def load_clauses(path: str | Path = CLAUSES_FILE) -> list[dict]:
    """The clause set's rows (``clause, concept, polarity, kind, sentence``), polarity as int in {-1, 0, 1};
    raises :class:`SteerError` naming the first bad row."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CLAUSE_COLUMNS:
            raise SteerError(f"{path}: columns {reader.fieldnames} != {list(CLAUSE_COLUMNS)}")
        rows = list(reader)
    for i, row in enumerate(rows, start=2):
        if row["concept"] not in TASTE_CONCEPTS:
            raise SteerError(f"{path}:{i}: concept {row['concept']!r} is not one of pmllm.constants.TASTE_CONCEPTS")
        if row["polarity"] not in ("-1", "0", "1") or not row["clause"].strip():
            raise SteerError(f"{path}:{i}: needs a clause and polarity -1, 0 or 1 (got {row['polarity']!r})")
        row["polarity"] = int(row["polarity"])
    return rows


def concept_group(concept: str) -> str:
    """The near-synonym group of ``concept`` (:data:`CONCEPT_GROUPS`), or the concept itself."""
    return next((g for g, members in CONCEPT_GROUPS.items() if concept in members), concept)


# ------------------------------------------------------------------------------------------------ metrics
def auc(values: Sequence[float], labels: Sequence[bool]) -> float:
    """P(value of a labelled item > value of an unlabelled one), ties count 1/2 (Mann-Whitney); NaN if a side is
    empty."""
    v, y = np.asarray(values, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = v[y], v[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def shift(like: np.ndarray, dislike: np.ndarray) -> np.ndarray:
    """Per picture: mean over like wordings minus mean over dislike wordings (``(wordings, pictures)`` each)."""
    return np.asarray(like, dtype=np.float64).mean(axis=0) - np.asarray(dislike, dtype=np.float64).mean(axis=0)


def mean_percentile(scores: Sequence[np.ndarray], labels: Sequence[bool]) -> float:
    """Where a user sees the labelled pictures: their mean percentile rank among all pictures (0 = bottom,
    1 = top, ties share their average rank), averaged over the wordings' ``scores``."""
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=bool)
    return float(np.mean([((rankdata(s) - 1) / max(len(s) - 1, 1))[y].mean() for s in scores]))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (0.0 when undefined), :func:`piaa.stats.srocc`."""
    from piaa.stats import srocc

    return srocc(a, b)


# ------------------------------------------------------------------------------------------------ pictures
def load_pictures(source: str) -> tuple[list, str]:
    """``(photos, description)`` for ``--photos``; raises :class:`SteerError` when the pool is absent."""
    from piaa import photos as P

    if source == "pool":
        if not P.pool_available():
            raise SteerError(f"no complete photo pool in {P.pool_dir()}: run 'make photos' (python -m piaa.photos "
                             "fetch), or use --photos bundled (13 bundled photos, fewer concepts)")  # fmt: skip
        try:
            return P.pool_photos(), "photo pool (piaa/data/photo_pool.csv)"
        except P.PoolError as err:
            raise SteerError(str(err)) from None
    if source == "bundled":
        return P.bundled_photos(), "bundled photos (scikit-image/-learn/matplotlib)"
    try:
        return P.folder_photos(source), f"folder {source}"
    except FileNotFoundError as err:
        raise SteerError(str(err)) from None


# ------------------------------------------------------------------------------------------------ scoring
def score_texts(model, tokens, texts: Sequence[str | None], log: Callable[[str], None],
                stats: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``{text: scores (pictures,)}`` for free-text-only profiles (``None``/"" = the empty profile), 1-5 scale;
    ``stats``: the pictures' :func:`pmllm.grounding.grounding_stats` rows, as :meth:`PMLLM.score` measures them."""
    from piaa.schema import PARA_SCALE, Profile

    out: dict[str, np.ndarray] = {}
    t0 = time.time()
    for i, text in enumerate(texts):
        key = text or ""
        if key in out:
            continue
        out[key] = model.score_tokens(Profile(text=text or None), tokens, scale=PARA_SCALE, stats=stats).scores
        log(f"[{i + 1}/{len(texts)}] {time.time() - t0:.0f}s  {key or '(empty profile)'}")
    return out


def probe_rows(probes: dict, photos: list, attrs: list[dict], scores: dict[str, np.ndarray]) -> list[dict]:
    """One result per probe: metric, value, target, pass, baseline, mean shifts (content: labelled vs rest)."""
    base = scores[""]
    rows = []
    for p in probes.get("content", []):
        labels = np.array([ph.content in p["labels"] for ph in photos])
        row = {"probe": p["name"], "kind": "content", "metric": "AUC", "target": TARGET_AUC,
               "labels": p["labels"], "n_labelled": int(labels.sum()), "n_other": int((~labels).sum())}  # fmt: skip
        if min(row["n_labelled"], row["n_other"]) < MIN_LABELLED:
            rows.append(
                {
                    **row,
                    "value": None,
                    "baseline": None,
                    "passed": None,
                    "note": f"not measured: {row['n_labelled']} labelled pictures (needs the photo pool)",
                }
            )
            continue
        s = shift([scores[t] for t in p["like"]], [scores[t] for t in p["dislike"]])
        value = auc(s, labels)
        side = {"seen_like": mean_percentile([scores[t] for t in p["like"]], labels),
                "seen_dislike": mean_percentile([scores[t] for t in p["dislike"]], labels),
                "seen_empty": mean_percentile([base], labels)}  # fmt: skip
        side["sides_ok"] = bool(side["seen_like"] > 0.5 > side["seen_dislike"])
        rows.append({**row, "value": value, "baseline": auc(base, labels), "passed": bool(value >= TARGET_AUC),
                     **side, "mean_shift_labelled": float(s[labels].mean()),
                     "mean_shift_other": float(s[~labels].mean()), "shift": s.tolist()})  # fmt: skip
    for p in probes.get("property", []):
        prop = np.array([a[p["attribute"]] for a in attrs])
        s = shift([scores[t] for t in p["like"]], [scores[t] for t in p["dislike"]])
        value = spearman(s, prop)
        like = float(np.mean([spearman(scores[t], prop) for t in p["like"]]))
        dislike = float(np.mean([spearman(scores[t], prop) for t in p["dislike"]]))
        rows.append({"probe": p["name"], "kind": "property", "metric": "Spearman", "target": TARGET_SPEARMAN,
                     "seen_like": like, "seen_dislike": dislike, "seen_empty": spearman(base, prop),
                     "sides_ok": bool(like > 0 > dislike),
                     "attribute": p["attribute"], "value": value, "baseline": spearman(base, prop),
                     "passed": bool(value >= TARGET_SPEARMAN), "mean_shift": float(s.mean()),
                     "shift": s.tolist()})  # fmt: skip
    return rows


def format_table(rows: list[dict]) -> str:
    """The printed table: one row per probe."""
    head = (f"{'probe':<14} {'kind':<8} {'n+':>3} {'metric':<8} {'value':>6} {'target':>7} {'pass':<5} "
            f"{'empty-profile':>13}  {'seen like/dislike':<18} {'sides':<5}  mean shift")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        n = str(r["n_labelled"]) if r["kind"] == "content" else "-"
        if r["value"] is None:
            lines.append(f"{r['probe']:<14} {r['kind']:<8} {n:>3} {r['metric']:<8} {'n/a':>6} "
                         f"{'>= ' + format(r['target'], '.2f'):>7} {'-':<5} {'':>13}  {r['note']}")  # fmt: skip
            continue
        if r["kind"] == "content":
            ms = f"{r['mean_shift_labelled']:+.3f} labelled / {r['mean_shift_other']:+.3f} other"
        else:
            ms = f"{r['mean_shift']:+.3f} ({r['attribute']})"
        seen = f"{r['seen_like']:+.2f} / {r['seen_dislike']:+.2f}"
        lines.append(f"{r['probe']:<14} {r['kind']:<8} {n:>3} {r['metric']:<8} {r['value']:>6.3f} "
                     f"{'>= ' + format(r['target'], '.2f'):>7} {'PASS' if r['passed'] else 'FAIL':<5} "
                     f"{r['baseline']:>13.3f}  {seen:<18} {'ok' if r['sides_ok'] else 'NO':<5}  {ms}")  # fmt: skip
    return "\n".join(lines)


def readme_block(result: dict) -> str:
    """The README's steerability block (``--readme``): one row per probe and the reader's accuracy."""
    lines = [f"Real pictures ({result.get('photos', 'no photos')}), checkpoint `{result['checkpoint']}`; made by "
             "`python -m pmllm.steer --out pmllm/results/steer.json --readme README.md`.", "",
             "| probe | kind | metric | value | target | empty profile | seen: like / dislike / empty | on its side |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result.get("probes", []):
        value = "n/a" if r["value"] is None else f"{r['value']:.3f}"
        base = "" if r.get("baseline") is None else f"{r['baseline']:.3f}"
        seen = side = ""
        if r.get("seen_like") is not None:
            seen = f"{r['seen_like']:.2f} / {r['seen_dislike']:.2f} / {r['seen_empty']:.2f}"
            side = "yes" if r["sides_ok"] else "**no**"
        lines.append(f"| {r['probe']} | {r['kind']} | {r['metric']} | {value} | ≥ {r['target']:.2f} | {base} | {seen} "
                     f"| {side} |")  # fmt: skip
    if "clauses" in result:
        acc = result["clauses"]["all"]
        pol, grp, both = (100 * acc[k] for k in ("polarity_ok", "concept_group", "both"))
        lines.append(f"| clause reader ({acc['n']} clauses; polarity {pol:.1f} %, concept group {grp:.1f} %) | both | "
                     f"accuracy | {both:.1f} % | ≥ 90 % | | | |")  # fmt: skip
        for name, later in result["clauses"].get("later_sets", {}).items():
            lines.append(f"| clause reader, {name} set ({later['n']} clauses written later) | both | accuracy | "
                         f"{100 * later['both']:.1f} % | ≥ 90 % | | | |")  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ clauses
def judge_clause(row: dict, weight: float | None, concept: str | None) -> dict:
    """Whether one reading (``weight``/``concept`` of the clause; ``None`` = nothing read) is right."""
    if weight is None:
        return {"polarity_ok": False, "concept_exact": False, "concept_group": False, "both": False}
    pol = row["polarity"]
    polarity_ok = abs(weight) < TOLERANCE_BAND if pol == 0 else bool(np.sign(weight) == pol)
    exact = concept == row["concept"]
    group = concept_group(concept) == concept_group(row["concept"])
    return {"polarity_ok": polarity_ok, "concept_exact": exact, "concept_group": group,
            "both": bool(polarity_ok and group)}  # fmt: skip


def clause_accuracy(reader, clauses: list[dict]) -> dict:
    """Read every clause with ``reader`` (a :class:`pmllm.taste_text.TasteReader`); per-clause readings and the
    accuracies (all clauses, signed only, tolerance only, per kind) plus how contrast sentences were split."""
    from pmllm.taste_text import split_clauses

    readings = []
    for row in clauses:
        r = reader.read(row["clause"])
        w, c = (float(r.weight[0]), r.concept[0]) if r.clauses else (None, None)
        readings.append({**row, "weight": w, "read_concept": c, **judge_clause(row, w, c)})

    def rate(sel: list[dict]) -> dict:
        n = len(sel)
        return {"n": n, **{k: (sum(r[k] for r in sel) / n if n else float("nan"))
                           for k in ("polarity_ok", "concept_exact", "concept_group", "both")}}  # fmt: skip

    sentences = sorted({r["sentence"] for r in clauses if r["sentence"]})
    split_ok = sum(all(r["clause"].lower() in [c.lower() for c in split_clauses(s)]
                       for r in clauses if r["sentence"] == s) for s in sentences)  # fmt: skip
    return {
        "all": rate(readings),
        "signed": rate([r for r in readings if r["polarity"] != 0]),
        "tolerance": rate([r for r in readings if r["polarity"] == 0]),
        "by_kind": {k: rate([r for r in readings if r["kind"] == k]) for k in sorted({r["kind"] for r in clauses})},
        "contrast_sentences_split_as_written": [split_ok, len(sentences)],
        "readings": readings,
    }


def format_clauses(acc: dict) -> str:
    """The printed clause-accuracy summary."""
    lines = [f"{'clauses':<22} {'n':>4} {'polarity':>9} {'concept':>8} {'group':>6} {'both':>6}"]
    for name, r in [("all", acc["all"]), ("signed (+1/-1)", acc["signed"]), ("tolerance (0)", acc["tolerance"])] + [
        (f"  {k}", v) for k, v in acc["by_kind"].items()
    ]:
        lines.append(f"{name:<22} {r['n']:>4} {r['polarity_ok']:>9.1%} {r['concept_exact']:>8.1%} "
                     f"{r['concept_group']:>6.1%} {r['both']:>6.1%}")  # fmt: skip
    ok, n = acc["contrast_sentences_split_as_written"]
    both = acc["all"]["both"]
    lines.append(f"contrast sentences split as written: {ok}/{n}")
    lines.append(
        f"reader accuracy (polarity and concept group both right): {both:.1%} "
        f"(target >= {TARGET_CLAUSES:.0%}: {'PASS' if both >= TARGET_CLAUSES else 'FAIL'})"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CLI
def run(args: argparse.Namespace) -> dict:
    """The benchmark for parsed ``args``; prints the tables and returns the JSON-able result."""
    from pmllm.model import PMLLM

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    probes, clauses = load_probes(args.probes), load_clauses(args.clause_file)
    photos, what = (None, None) if args.clauses else load_pictures(args.photos)
    model = PMLLM.from_pretrained(args.checkpoint)
    result: dict = {"checkpoint": str(args.checkpoint or "default"), "probes_file": str(args.probes),
                    "clauses_file": str(args.clause_file), "targets": {"auc": TARGET_AUC, "spearman": TARGET_SPEARMAN,
                    "clauses": TARGET_CLAUSES}, "concept_groups": CONCEPT_GROUPS}  # fmt: skip
    if photos is not None:
        from piaa.photostats import attributes
        from pmllm.grounding import grounding_stats

        print(f"pictures: {len(photos)} from the {what}")
        if args.photos != "pool":
            print("note: the content probes need the photo pool (make photos); probes with fewer than "
                  f"{MIN_LABELLED} labelled pictures are not measured")  # fmt: skip
        attrs = [attributes(p.image) for p in photos]
        tokens = model.visual_tokens([p.image for p in photos])
        wanted = {p["name"] for p in probes["content"]
                  if min(sum(ph.content in p["labels"] for ph in photos),
                         sum(ph.content not in p["labels"] for ph in photos)) >= MIN_LABELLED}  # fmt: skip
        texts: list[str | None] = [None]
        for p in [q for q in probes["content"] if q["name"] in wanted] + probes["property"]:
            texts += p["like"] + p["dislike"]
        scores = score_texts(model, tokens, texts, log, stats=grounding_stats([p.image for p in photos], errors={}))
        rows = probe_rows(probes, photos, attrs, scores)
        print(format_table(rows))
        result.update(
            photos=what,
            pictures=[{"name": p.name, "content": p.content, **a} for p, a in zip(photos, attrs)],  # fmt: skip
            scores={k: v.tolist() for k, v in scores.items()},
            probes=rows,
        )
    if not args.no_clauses:
        acc = clause_accuracy(model.reader, clauses)
        print(format_clauses(acc))
        if Path(args.clause_file) == CLAUSES_FILE:
            acc["later_sets"] = {}
            for name, path in LATER_CLAUSE_FILES.items():
                later = clause_accuracy(model.reader, load_clauses(path))
                acc["later_sets"][name] = {**later["all"], "file": str(path), "readings": later["readings"]}
                print(f"{name} clause set ({later['all']['n']} clauses): both right {later['all']['both']:.1%}")
        result["clauses"] = acc
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pmllm.steer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", default="pool", help="pool (default) | bundled | a folder (label = sub-folder)")
    ap.add_argument("--out", default="runs/steer.json", help="JSON result (default runs/steer.json)")
    ap.add_argument(
        "--checkpoint",
        "--pmllm",
        dest="checkpoint",
        default=None,
        help="pmllm checkpoint folder (default: the committed one)",
    )
    ap.add_argument("--clauses", action="store_true", help="only the clause set (reader accuracy), no photos")
    ap.add_argument("--no-clauses", action="store_true", help="only the photo probes, not the clause set")
    ap.add_argument("--readme", help="also replace the README's <!-- steer:start --> ... <!-- steer:end --> block")
    ap.add_argument("--probes", default=str(PROBES_FILE), help=argparse.SUPPRESS)
    ap.add_argument("--clause-file", default=str(CLAUSES_FILE), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        result = run(args)
    except (SteerError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    if args.readme:
        from piaa.readme import ReadmeError, replace_block

        try:
            replace_block(args.readme, "steer", readme_block(result))
        except ReadmeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"rewrote the steer block of {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
