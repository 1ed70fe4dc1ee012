"""pmllm.steer_sim: the simulated check of how far a stated content preference moves photos (the parts that need
no model; the whole check runs on the committed world, ~8 min, and is reported in the model card)."""

import numpy as np
import pytest

from pmllm import steer, steer_sim


def test_statements_take_content_mentions_with_the_sign_of_the_personal_weight():
    truth = {"raters": {
        "u1": {"mentioned": ["content:animal", "brightness"], "profile_part": {"content:animal": 0.2},
               "idiosyncratic_part": {"content:animal": -1.0}},
        "u0": {"mentioned": ["content:food"], "profile_part": {}, "idiosyncratic_part": {"content:food": 0.7}},
        "u2": {"mentioned": ["noise"], "profile_part": {}, "idiosyncratic_part": {}},
    }}  # fmt: skip
    assert steer_sim.statements(truth) == [("u0", "food", 1), ("u1", "animal", -1)]
    truth["raters"]["u2"]["idiosyncratic_part"]["noise"] = 0.4
    assert steer_sim.statements(truth, ("property",)) == [("u1", "brightness", -1), ("u2", "noise", 1)]
    assert len(steer_sim.statements(truth, ("content", "property"))) == 4


def test_signed_spearman_follows_the_stated_direction():
    v = np.array([0.1, 0.5, 0.2, 0.9])
    assert steer_sim.signed_spearman(v * 2, v, 1) == pytest.approx(1.0)
    assert steer_sim.signed_spearman(v * 2, v, -1) == pytest.approx(-1.0)
    assert steer_sim.signed_spearman(np.ones(4), v, 1) == 0.0


def test_mean_percentile_top_bottom_and_ties():
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert steer.mean_percentile([s], s == 5) == 1.0  # the one implementation steer_sim uses
    assert steer.mean_percentile([s], s == 1) == 0.0
    assert steer.mean_percentile([np.ones(5)], np.array([1, 0, 0, 0, 0], bool)) == pytest.approx(0.5)


def test_summary_groups_by_split_and_sign_and_prints_simulated():
    rows = [{"user": f"u{i}", "split": "train" if i < 3 else "test", "kind": "content", "feature": "animal",
             "sign": 1 if i % 2 else -1, "n_pictures": 5, "truth": i / 10, "full": 0.5, "text": 0.5, "empty": 0.4}
            for i in range(6)]  # fmt: skip
    summary = steer_sim.summarise(rows)
    groups = {(r["split"], r["stated"]): r for r in summary}
    assert groups[("all", "like")]["n"] == 3 and groups[("all", "dislike")]["n"] == 3
    assert groups[("train", "dislike")]["truth"] == pytest.approx(0.1)  # u0, u2
    assert groups[("test", "like")]["truth"] == pytest.approx(0.4)  # u3, u5
    table = steer_sim.format_table(summary)
    assert table.startswith("SIMULATED") and "0.10 ± 0.10" in table
    prop = [{**r, "kind": "property"} for r in rows[:2]]
    assert {r["kind"] for r in steer_sim.summarise(rows + prop)} == {"content", "property"}


def test_not_a_world_is_a_usage_error(tmp_path, capsys):
    assert steer_sim.main(["--world", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    assert "is not a simulated world" in capsys.readouterr().err
