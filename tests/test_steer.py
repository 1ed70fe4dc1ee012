"""Tests of the real-photo steerability benchmark (pmllm.steer): its data files, metrics, CLI errors, photostats.

Light: no model is loaded and no benchmark is run (``python -m pmllm.steer`` does that).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from piaa import photostats
from piaa.photos import CONTENT_CLASSES
from pmllm import steer
from pmllm.constants import TASTE_CONCEPTS
from pmllm.taste_text import split_clauses


# ------------------------------------------------------------------------------------------------ data files
def test_probe_file_is_well_formed():
    probes = steer.load_probes()
    assert len(probes["content"]) >= 5 and len(probes["property"]) >= 3
    for p in probes["content"] + probes["property"]:
        assert len(p["like"]) >= 3 and len(p["dislike"]) >= 3, p["name"]
        assert not set(p["like"]) & set(p["dislike"]), p["name"]
    for p in probes["content"]:
        assert set(p["labels"]) <= set(CONTENT_CLASSES) | {"flower"}, p  # "flower": the bundled photos' label
    assert {p["attribute"] for p in probes["property"]} <= set(photostats.ATTRIBUTES)
    assert {"brightness", "sharpness"} <= {p["attribute"] for p in probes["property"]}
    names = [p["name"] for p in probes["content"] + probes["property"]]
    assert len(names) == len(set(names))
    assert steer.PROBES_FILE.parent.parent == Path(steer.__file__).parent  # package data, inside pmllm/


def test_probe_file_errors_are_named(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"content": [{"name": "x", "labels": ["animal"], "like": ["a", "b"], "dislike": ["c"]}]}')
    with pytest.raises(steer.SteerError, match="'x' needs >= 3"):
        steer.load_probes(bad)


def test_clause_file_is_well_formed():
    rows = steer.load_clauses()
    assert len(rows) >= 150
    assert all(r["concept"] in TASTE_CONCEPTS for r in rows)
    assert all(r["polarity"] in (-1, 0, 1) for r in rows)
    assert len({r["clause"].lower() for r in rows}) == len(rows), "duplicate clauses"
    kinds = Counter(r["kind"] for r in rows)
    assert {"negation", "contrast", "intensity", "tolerance", "question", "hedge"} <= set(kinds)
    assert Counter(r["polarity"] for r in rows)[-1] >= 50 and Counter(r["polarity"] for r in rows)[1] >= 50
    for r in rows:  # each row is one clause as the reader cuts text (a question keeps its "?"); contrast halves
        assert split_clauses(r["clause"]) == [r["clause"].strip(" .;,-!\"'")], r["clause"]  # come from their sentence
        assert bool(r["sentence"]) == (r["kind"] == "contrast"), r
    assert len({r["concept"] for r in rows}) >= 30


def test_later_clause_sets_are_well_formed_and_new():
    seen = {r["clause"].lower() for r in steer.load_clauses()}
    for name, path in steer.LATER_CLAUSE_FILES.items():
        rows = steer.load_clauses(path)
        assert len(rows) >= 50 and all(r["concept"] in TASTE_CONCEPTS and r["polarity"] in (-1, 0, 1) for r in rows)
        clauses = {r["clause"].lower() for r in rows}
        assert len(clauses) == len(rows) and not clauses & seen, f"{name}: a clause repeats one written before"
        seen |= clauses


def test_clause_file_errors_are_named(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("clause,concept,polarity,kind,sentence\nI like it,kittens,1,plain,\n")
    with pytest.raises(steer.SteerError, match=r"c.csv:2: concept 'kittens'"):
        steer.load_clauses(bad)


def test_concept_groups_name_real_concepts():
    members = [c for g in steer.CONCEPT_GROUPS.values() for c in g]
    assert set(members) <= set(TASTE_CONCEPTS) and len(members) == len(set(members))
    assert steer.concept_group("mountains") == steer.concept_group("landscapes")
    assert steer.concept_group("food") == "food"


# ------------------------------------------------------------------------------------------------ metrics
def test_auc_on_hand_made_numbers():
    assert steer.auc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert steer.auc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert steer.auc([1, 1, 1], [True, False, False]) == 0.5  # ties count 1/2
    assert steer.auc([1, 2, 3], [True, False, True]) == 0.5  # pairs (1,2) lost, (3,2) won
    assert steer.auc([0.9, 0.1, 0.5, 0.4], [True, False, True, False]) == 1.0
    assert steer.auc([0.2, 0.6, 0.5, 0.1], [True, False, True, False]) == 0.5  # (0.2>0.1, 0.5>0.1) of 4 pairs
    assert np.isnan(steer.auc([1, 2], [True, True]))


def test_shift_is_like_mean_minus_dislike_mean():
    like = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 3.0]])  # (wordings, pictures)
    dislike = np.array([[0.0, 0.0, 3.0], [1.0, 1.0, 3.0], [2.0, 2.0, 3.0]])
    np.testing.assert_allclose(steer.shift(like, dislike), [1.0, 2.0, 0.0])


def test_spearman_follows_ranks():
    assert steer.spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert steer.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_judge_clause_polarity_and_groups():
    row = {"concept": "landscapes", "polarity": 1}
    assert steer.judge_clause(row, 0.3, "mountains") == {"polarity_ok": True, "concept_exact": False,
                                                          "concept_group": True, "both": True}  # fmt: skip
    assert not steer.judge_clause(row, -0.3, "landscapes")["both"]
    assert not steer.judge_clause(row, None, None)["polarity_ok"]  # nothing read = wrong
    tol = {"concept": "grainy noisy photos", "polarity": 0}
    assert steer.judge_clause(tol, 0.2, "grainy noisy photos")["both"]
    assert not steer.judge_clause(tol, -0.8, "grainy noisy photos")["polarity_ok"]


def test_probe_rows_on_made_up_scores():
    photos = [SimpleNamespace(content=c) for c in ["animal"] * 3 + ["food"] * 4]
    attrs = [{"brightness": float(i)} for i in range(7)]
    probes = {"content": [{"name": "animal", "labels": ["animal"], "like": ["l1", "l2", "l3"],
                           "dislike": ["d1", "d2", "d3"]},
                          {"name": "space", "labels": ["space"], "like": ["s1"], "dislike": ["s2"]}],
              "property": [{"name": "bright", "attribute": "brightness", "like": ["l1", "l2", "l3"],
                            "dislike": ["d1", "d2", "d3"]}]}  # fmt: skip
    up = np.array([1.0, 1, 1, 0, 0, 0, 0])
    scores = {"": np.full(7, 3.0), **{t: 3 + up * 0.5 for t in ("l1", "l2", "l3")},
              **{t: 3 - np.arange(7) * 0.01 for t in ("d1", "d2", "d3")}}  # fmt: skip
    rows = {r["probe"]: r for r in steer.probe_rows(probes, photos, attrs, scores)}
    assert rows["animal"]["value"] == 1.0 and rows["animal"]["passed"] and rows["animal"]["baseline"] == 0.5
    assert rows["space"]["value"] is None and "not measured" in rows["space"]["note"]
    assert rows["bright"]["kind"] == "property" and rows["bright"]["value"] < 0.5 and not rows["bright"]["passed"]
    assert "FAIL" in steer.format_table(list(rows.values())) and "n/a" in steer.format_table(list(rows.values()))
    # what the user sees: the animals stay on top under the dislike wordings too (ranks 7, 6, 5 of 7)
    animal = rows["animal"]
    assert animal["seen_like"] == pytest.approx(5 / 6) and animal["seen_dislike"] == pytest.approx(5 / 6)
    assert rows["animal"]["seen_empty"] == pytest.approx(0.5) and not rows["animal"]["sides_ok"]
    assert rows["bright"]["seen_dislike"] == pytest.approx(-1.0) and rows["bright"]["seen_like"] < 0
    assert not rows["bright"]["sides_ok"] and " NO " in steer.format_table(list(rows.values()))
    fair = {**scores, **{t: 3 - up * 0.5 for t in ("d1", "d2", "d3")}}
    assert {r["probe"]: r for r in steer.probe_rows(probes, photos, attrs, fair)}["animal"]["sides_ok"]


# ------------------------------------------------------------------------------------------------ photostats
def test_photostats_brighter_image_has_higher_brightness():
    rng = np.random.default_rng(0)
    base = rng.integers(40, 120, size=(64, 80, 3)).astype(np.uint8)
    dark, bright = Image.fromarray(base), Image.fromarray((base.astype(np.int32) + 100).clip(0, 255).astype(np.uint8))
    a, b = photostats.attributes(dark), photostats.attributes(bright)
    assert set(a) == set(photostats.ATTRIBUTES)
    assert b["brightness"] > a["brightness"] + 0.3


def test_sim_uses_the_core_formulas():
    from eval.sim import images as si

    assert si.attributes is photostats.attributes and si.ATTRIBUTES == photostats.ATTRIBUTES


def test_pmllm_steer_imports_no_eval_or_taskvec():
    tree = ast.parse(Path(steer.__file__).read_text(encoding="utf-8"))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in mods if m.split(".")[0] in ("eval", "taskvec")}


# ------------------------------------------------------------------------------------------------ CLI
def test_missing_pool_says_make_photos_and_exits_2(monkeypatch, tmp_path, capsys):
    import piaa.photos

    monkeypatch.setattr(piaa.photos, "pool_available", lambda folder=None: False)
    monkeypatch.setattr("pmllm.model.PMLLM.from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    assert steer.main(["--out", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert "make photos" in err and "--photos bundled" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()


def test_readme_block_lists_every_probe_and_the_reader():
    from pmllm.steer import readme_block

    result = {"checkpoint": "default", "photos": "photo pool",
              "probes": [{"probe": "animal", "kind": "content", "metric": "AUC", "value": 0.9, "target": 0.85,
                          "baseline": 0.8, "seen_like": 0.8, "seen_dislike": 0.3, "seen_empty": 0.6, "sides_ok": True},
                         {"probe": "food", "kind": "content", "metric": "AUC", "value": None, "target": 0.85,
                          "baseline": None}],
              "clauses": {"all": {"n": 10, "polarity_ok": 0.9, "concept_group": 0.8, "both": 0.7},
                          "later_sets": {"blind": {"n": 5, "both": 0.6}}}}  # fmt: skip
    block = readme_block(result)
    assert "| animal | content | AUC | 0.900 | ≥ 0.85 | 0.800 | 0.80 / 0.30 / 0.60 | yes |" in block
    assert "| food | content | AUC | n/a |" in block
    assert "| clause reader (10 clauses; polarity 90.0 %, concept group 80.0 %) | both | accuracy | 70.0 % |" in block
    assert "| clause reader, blind set (5 clauses written later) | both | accuracy | 60.0 % |" in block
