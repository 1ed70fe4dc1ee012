"""Does the product follow a user's ratings on real photos? Synthetic users with measurable tastes rate k real
pictures; the check reports how well the order shown for the other pictures follows the taste.

Tastes (each a number per picture, measured, never learned): ``bright`` / ``dark`` (mean luma), ``colourful`` /
``muted`` (Hasler-Suesstrunk colourfulness), both from :func:`piaa.photostats.photo_stats`, and one content class
(``abstract``, the pool's largest: the manifest's label). A user rates k random pictures 1-5 (step 0.5) by the
taste's rank; the product fits the few-shot model of parts (:class:`eval.fewshot.FewShot`, the profile part being
pmllm's zero-shot prediction from a sentence saying the taste, the words part what that sentence alone says of each
picture) and shows every picture; the rated ones at their
rating (:func:`piaa.scoring.keep_ratings`). Reported: Spearman of the shown order of the *unrated* pictures with
the taste, mean and SD over ``--repeats`` random draws of the rated pictures, next to zero-shot's on the same
pictures, at k = 5, 10, 20, with and without photo statistics in the residual part. The light and colour tastes
use the same formulas as the photo statistics, so the "without" rows are the fair test of the learned features
(the words part reads those statistics too, for a sentence about light or colour: it is in both columns).
A content taste is a 0/1 label, tied within each group, so no order reaches 1: the table gives the best possible
Spearman (:func:`ceiling`) beside it. ``--content all`` adds one taste per labelled pool class with at least
:data:`MIN_CLASS` pictures ("I love photos of animals."), the same check for every subject, not only the largest.

Pictures: the real photo pool (``make photos``), all of it; or ``--photos DIR`` (pictures the project has never
seen; a picture that cannot be decoded is named and left out). There the content tastes read each picture's label
from the sub-folder it is in (``DIR/plant/rose.jpg``: plant; :func:`folder_labels`), named as the pool's classes
(``abstract``, ``animal``, ``architecture``, ``artwork``, ``food``, ``landscape``, ``objects``, ``people``, ``plant``,
``vehicle``, ``water``; other names are reported and left out), and are skipped when any picture lies directly in
``DIR``. Run::

    python -m eval.follow --out results/follow [--readme README.md]   # ~1 min on 2 cores; table, JSON and a plot
    python -m eval.follow --content all --out results/follow-classes    # every content class (~2 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

TASTES = {  # name: (sentence the user writes, how the taste is measured)
    "bright": ("I like bright, light photos.", "brightness", +1),
    "dark": ("I like dark, dim photos.", "brightness", -1),
    "colourful": ("I like vivid, colourful photos.", "colorfulness", +1),
    "muted": ("I like muted, desaturated colours.", "colorfulness", -1),
    "abstract": ("I love abstract pictures.", "content:abstract", +1),
}
SHOTS = (5, 10, 20)
# ``--content all``: one more taste per pool class with at least MIN_CLASS pictures (the sentence a user would write)
CONTENT_SENTENCES = {
    "animal": "I love photos of animals.", "architecture": "I love photos of buildings.",
    "artwork": "I love paintings and artwork.", "food": "I love photos of food.",
    "landscape": "I love landscape photos.", "objects": "I love photos of everyday objects.",
    "people": "I love photos of people.", "plant": "I love photos of plants and flowers.",
    "vehicle": "I love photos of cars and other vehicles.", "water": "I love photos of water and the sea.",
}  # fmt: skip
MIN_CLASS = 5


def content_tastes(contents: list[str] | None) -> dict[str, tuple[str, str, int]]:
    """The ``--content all`` tastes: every labelled class with at least :data:`MIN_CLASS` pictures (abstract is
    already in :data:`TASTES`)."""
    if contents is None:
        return {}
    counts = {c: contents.count(c) for c in set(contents)}
    return {c: (sentence, f"content:{c}", +1) for c, sentence in CONTENT_SENTENCES.items()
            if counts.get(c, 0) >= MIN_CLASS}  # fmt: skip


def check_tastes(contents: list[str] | None, every_class: bool, folder: bool) -> tuple[dict, list[str]]:
    """The tastes to check and a note for each thing left out. ``every_class``: ``--content all``; ``folder``: the
    labels are sub-folder names (``--photos DIR``), which must be the pool's class names (``abstract`` and
    :data:`CONTENT_SENTENCES`' keys) to give a taste; there the abstract taste, too, needs :data:`MIN_CLASS`
    pictures."""
    tastes = {**TASTES, **(content_tastes(contents) if every_class else {})}
    notes = []
    if folder and contents is not None:
        known = {"abstract", *CONTENT_SENTENCES}
        if unknown := sorted(set(contents) - known):
            notes.append(f"sub-folder(s) {', '.join(unknown)} name no content taste (class names: "
                         f"{', '.join(sorted(known))})")  # fmt: skip
        n_abstract = contents.count("abstract")
        if n_abstract < MIN_CLASS:
            tastes.pop("abstract")
            if n_abstract:
                notes.append(f"abstract: {n_abstract} picture(s), fewer than {MIN_CLASS}: not checked")
    return tastes, notes


def taste_values(stats: np.ndarray, contents: list[str] | None, taste: str, tastes: dict | None = None
                 ) -> np.ndarray | None:  # fmt: skip
    from piaa.photostats import ATTRIBUTES

    _, measure, sign = (tastes or TASTES)[taste]
    if measure.startswith("content:"):
        if contents is None:
            return None
        return sign * np.array([c == measure.split(":", 1)[1] for c in contents], dtype=np.float64)
    return sign * stats[:, ATTRIBUTES.index(measure)]


def ratings_of(values: np.ndarray) -> np.ndarray:
    """1-5 (step 0.5) by the taste's rank among all pictures."""
    from scipy.stats import rankdata

    from piaa.schema import PARA_SCALE

    pct = (rankdata(values) - 1) / max(len(values) - 1, 1)
    return PARA_SCALE.quantize(1 + 4 * pct)


def folder_labels(folder: str | Path, paths: list[Path]) -> list[str] | None:
    """Content labels of the pictures under ``folder`` (:func:`piaa.photos.folder_label`: the sub-folder each is
    in); None when any picture lies directly in ``folder``."""
    from piaa.photos import folder_label

    labels = [folder_label(Path(p).relative_to(folder)) for p in paths]
    return None if not labels or None in labels else labels


def load_pictures(folder: str | None, work: Path) -> tuple[list[Path], list[str] | None]:
    from piaa.photos import pool_photos

    if folder:
        from piaa.cli import collect_images

        paths = [Path(p) for p in collect_images([folder])]
        return paths, folder_labels(folder, paths)
    paths, contents = [], []
    for ph in pool_photos():
        paths.append(work / f"{ph.name}.jpg")
        ph.image.save(paths[-1], quality=92)
        contents.append(ph.content)
    return paths, contents


def ceiling(values: np.ndarray) -> float:
    """The best Spearman any strict order of the pictures can reach with ``values``: 1 for a measured property;
    for a content class (a 0/1 label, tied within each group) about ``sqrt(3 p (1 - p))`` with ``p`` the class
    share (0.66 for 15 of 85 pictures, 0.47 for 7)."""
    from scipy.stats import rankdata

    from piaa.stats import srocc

    return float(srocc(rankdata(values, method="ordinal"), values))


def run_check(paths, contents, stats: np.ndarray, repeats: int, seed: int, tastes: dict | None = None
              ) -> list[dict]:  # fmt: skip
    """The check's rows; ``stats``: the pictures' :func:`pmllm.grounding.grounding_stats` (from :func:`readable`:
    photo statistics, then the face share, which only the zero-shot part reads); ``tastes``: default
    :data:`TASTES`."""
    from tqdm.auto import tqdm

    from eval.fewshot import FewShot
    from piaa.photostats import ATTRIBUTES
    from piaa.schema import PARA_SCALE, Profile
    from piaa.scoring import keep_ratings
    from piaa.stats import srocc
    from pmllm.model import PMLLM
    from taskvec.model import PersonalizedScorer

    pm, tv = PMLLM.from_pretrained(), PersonalizedScorer.from_pretrained()
    models = {True: FewShot(tv, photostats=True), False: FewShot(tv, photostats=False)}
    trunk = tv.features(paths)
    photo = stats[:, : len(ATTRIBUTES)]
    inputs = {ps: m.from_trunk(trunk, photo if ps else None) for ps, m in models.items()}
    tokens = pm.visual_tokens(paths)  # encoded once: PMLLM.score is visual_tokens + grounding_stats + score_tokens
    zeros: dict[str, object] = {}  # taste -> pmllm's ScoreOutput (scores: the profile part; words: the words part)
    rows = []
    tastes = tastes or TASTES
    todo = [(t, k) for t in tastes for k in SHOTS]
    for taste, k in tqdm(todo, desc="tastes x shots", unit="cell"):
        values = taste_values(stats, contents, taste, tastes)
        if values is None:
            continue
        if taste not in zeros:  # the same for every k
            profile = Profile(text=tastes[taste][0])
            zeros[taste] = pm.score_tokens(profile, tokens, scale=PARA_SCALE, stats=stats)
        zero, words = zeros[taste].scores, zeros[taste].words
        y = ratings_of(values)
        for ps, model in models.items():
            got, base, best = [], [], []
            for r in range(repeats):
                rated = np.sort(np.random.default_rng([seed, k, r]).permutation(len(paths))[:k])
                rest = np.setdiff1d(np.arange(len(paths)), rated)
                if np.ptp(y[rated]) == 0:
                    continue
                x = inputs[ps]
                user = model.fit(taste, x.rows(rated), y[rated], PARA_SCALE, zero=zero[rated],
                                 words=None if words is None else words[rated])  # fmt: skip
                shown = keep_ratings(model.predict(user, x, zero=zero, words=words), {int(i): y[i] for i in rated},
                                     PARA_SCALE)  # fmt: skip
                got.append(srocc(shown[rest], values[rest]))
                base.append(srocc(zero[rest], values[rest]))
                best.append(ceiling(values[rest]))
            if not got:  # every draw rated only pictures of one kind (a small class): nothing to report
                continue
            rows.append({"taste": taste, "shots": k, "photostats": ps, "n_pictures": len(paths),
                         "n_taste": int(np.sum(values != 0)) if tastes[taste][1].startswith("content:") else None,
                         "ceiling": float(np.mean(best)),
                         "repeats": len(got), "shown": float(np.mean(got)), "shown_sd": float(np.std(got)),
                         "zero_shot": float(np.mean(base)), "zero_shot_sd": float(np.std(base))})  # fmt: skip
    return rows


def _mean_sd(row: dict) -> str:
    """``mean ± SD`` of a row's shown Spearman; one draw has no SD."""
    return f"{row['shown']:.3f} ± {row['shown_sd']:.3f}" if row["repeats"] > 1 else f"{row['shown']:.3f} (1 draw)"


def render(rows: list[dict], source: str) -> str:
    lines = [f"Real-photo following check ({source}; synthetic tastes, measured, not simulated raters): Spearman "
             "of the shown order of the unrated pictures with the taste, mean ± SD over random draws of the rated "
             "ones; zero-shot = pmllm from the taste's sentence on the same pictures; best possible = the Spearman "
             "of a perfect order (below 1 for a content class, whose pictures tie); draws = the random draws that "
             "rated pictures of more than one rating (a draw whose ratings are all equal is left out).", "",
             "| taste | k | draws | shown (with photo stats) | shown (without) | zero-shot | best possible |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    by = {(r["taste"], r["shots"], r["photostats"]): r for r in rows}
    for taste in dict.fromkeys(r["taste"] for r in rows):
        for k in SHOTS:
            a, b = by.get((taste, k, True)), by.get((taste, k, False))
            if a is None:
                continue
            name = taste if a.get("n_taste") is None else f"{taste} ({a['n_taste']} pictures)"
            cells = [name, k, a["repeats"], _mean_sd(a), _mean_sd(b), f"{a['zero_shot']:.3f}", f"{a['ceiling']:.2f}"]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path, k: int = 10) -> Path:
    """``follow.png``: the measured tastes' curves over k (left); per content class, zero-shot, the shown order
    after ``k`` ratings and the best possible Spearman (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    content = [t for t in dict.fromkeys(r["taste"] for r in rows) if any(
        r["taste"] == t and r.get("n_taste") is not None for r in rows)]  # fmt: skip
    props = [t for t in dict.fromkeys(r["taste"] for r in rows) if t not in content]
    if content:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    else:  # pictures without content labels (a flat --photos DIR): the measured tastes alone
        fig, ax = plt.subplots(figsize=(7, 4))
    for i, taste in enumerate(props):
        color = f"C{i}"
        for ps, style in ((True, "-o"), (False, ":s")):
            rs = [r for r in rows if r["taste"] == taste and r["photostats"] is ps]
            ax.plot([r["shots"] for r in rs], [r["shown"] for r in rs], style, color=color,
                    label=f"{taste}" + ("" if ps else " (no photo stats)"))  # fmt: skip
        ax.axhline(rs[0]["zero_shot"], color=color, lw=0.8, ls="--")
    ax.axhline(0.5, color="k", lw=0.5)
    ax.set(xlabel="ratings (k)", ylabel="Spearman, unrated pictures", xticks=list(SHOTS),
           title="Light and colour tastes (dashed: zero-shot)")  # fmt: skip
    ax.legend(fontsize=7, ncol=2)
    if content:
        _content_panel(bx, rows, content, k)
    fig.tight_layout()
    path = out / "follow.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _content_panel(bx, rows: list[dict], content: list[str], k: int) -> None:
    """Per content class: zero-shot, the shown order after ``k`` ratings, the best possible Spearman."""
    at = {r["taste"]: r for r in rows if r["shots"] == k and r["photostats"] is True and r["taste"] in content}
    names = [t for t in content if t in at]
    pos = np.arange(len(names))
    bx.barh(pos + 0.2, [at[t]["zero_shot"] for t in names], 0.4, color="0.7", label="zero-shot (sentence only)")
    bx.barh(pos - 0.2, [at[t]["shown"] for t in names], 0.4, color="C0", label=f"shown after {k} ratings")
    bx.scatter([at[t]["ceiling"] for t in names], pos, marker="|", s=300, color="k", label="best possible")
    bx.set(yticks=pos, yticklabels=[f"{t} ({at[t]['n_taste']})" for t in names], xlabel="Spearman, unrated pictures",
           title="'I love photos of X': one content class")  # fmt: skip
    bx.axvline(0, color="k", lw=0.5)
    bx.set_ylim(max(len(names), 3) - 0.5, -0.5)  # top to bottom; thin bars when there are few classes
    bx.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)


def readable(paths: list[Path], contents: list[str] | None):
    """``(paths, contents, grounding_stats rows)`` of the pictures that decode, and one ``"FILE: reason"`` line for
    each that does not (the statistics are measured once, here)."""
    from pmllm.grounding import grounding_stats

    errors: dict[int, str] = {}
    stats = grounding_stats(paths, errors=errors)
    keep = [i for i in range(len(paths)) if i not in errors]
    lines = [f"{paths[i]}: {why}" for i, why in sorted(errors.items())]
    kept = None if contents is None else [contents[i] for i in keep]
    return [paths[i] for i in keep], kept, stats[keep], lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.follow", description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", help="a folder of pictures instead of the real photo pool (content tastes: labels "
                    "from sub-folder names named as the pool's classes, DIR/CLASS/picture)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=10, help="random draws of the rated pictures per taste and k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--content",
        choices=["abstract", "all"],
        default="abstract",
        help="content tastes: the pool's largest class (default) or every class with at least "
        f"{MIN_CLASS} pictures (a longer run, not for --readme)",
    )
    ap.add_argument("--out", default="results/follow")
    ap.add_argument("--readme", help="also replace the README's <!-- follow:start --> ... <!-- follow:end --> block")
    args = ap.parse_args(argv)
    if args.readme and args.content != "abstract":
        ap.error("--readme takes the README's check (--content abstract)")
    from piaa.photos import PoolError

    with tempfile.TemporaryDirectory() as tmp:
        try:
            paths, contents = load_pictures(args.photos, Path(tmp))
        except PoolError as err:
            print(f"eval.follow: {err}", file=sys.stderr)
            return 2
        paths, contents, stats, bad = readable(paths, contents)
        for line in bad:
            print(f"eval.follow: left out {line}", file=sys.stderr)
        if len(paths) < max(SHOTS) + 5:
            print(f"eval.follow: {len(paths)} readable pictures; the check needs at least {max(SHOTS) + 5}",
                  file=sys.stderr)  # fmt: skip
            return 2
        tastes, notes = check_tastes(contents, args.content == "all", bool(args.photos))
        for line in notes:
            print(f"eval.follow: {line}", file=sys.stderr)
        rows = run_check(paths, contents, stats, args.repeats, args.seed, tastes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = args.photos or f"the real photo pool, {len(paths)} pictures"
    (out / "follow.json").write_text(json.dumps({"source": source, "rows": rows}, indent=1) + "\n")
    text = render(rows, source)
    (out / "follow.md").write_text(text + "\n")
    print(text)
    if args.readme:
        from piaa.readme import ReadmeError, replace_block

        try:
            replace_block(args.readme, "follow", text)
        except ReadmeError as err:
            print(f"eval.follow: {err}", file=sys.stderr)
            return 2
    print(f"wrote {out / 'follow.json'}, {out / 'follow.md'}, {plot(rows, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
