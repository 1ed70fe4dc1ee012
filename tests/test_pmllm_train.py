"""pmllm training on a tiny synthetic ratings table: the loss goes down, an interrupted run resumes exactly,
profile coarsening, and clear errors for bad input."""

import json

import numpy as np
import pytest
import torch

from piaa.schema import Profile, RatingsTable, SchemaError
from pmllm.train import coarsen, main, parse_args, population_targets, step_plan, train


def _argv(tiny_dirs, root, out, *extra) -> list[str]:
    return [
        "--ratings", str(root / "ratings"), "--users-from", str(root / "folds.json"), "--fold", "0",
        "--out", str(out), "--llm", str(tiny_dirs / "lm"), "--vision", str(tiny_dirs / "clip"),
        "--d-attn", "16", "--n-heads", "2", "--d-profile", "8", "--images-per-step", "6", "--epochs", "3",
        "--lr", "3e-3", "--save-every", "4", "--log-every", "2", "--cache-dir", str(root / "cache"), "--threads", "1",
        *extra,
    ]  # fmt: skip


def _args(tiny_dirs, root, out, *extra):
    return parse_args(_argv(tiny_dirs, root, out, *extra))


def test_loss_decreases_and_resume_is_exact(tiny_dirs, tiny_table, tmp_path):
    out = train(_args(tiny_dirs, tiny_table, tmp_path / "full", "--no-coarsen"))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 24  # 4 users x 2 chunks x 3 epochs
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:2]])
    assert (out / "train_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the loss curve is plotted
    meta = json.loads((out / "pmllm_config.json").read_text())["meta"]
    assert meta["fold"] == 0 and meta["n_train_users"] == 4 and meta["steps_done"] == 24
    # interrupted after 8 steps, then resumed with the same command: identical weights at the end
    part = tmp_path / "part"
    train(_args(tiny_dirs, tiny_table, part, "--no-coarsen", "--max-steps", "24", "--stop-after", "8"))
    assert json.loads((part / "pmllm_config.json").read_text())["meta"]["steps_done"] == 8
    train(_args(tiny_dirs, tiny_table, part, "--no-coarsen", "--max-steps", "24", "--resume"))
    from safetensors.torch import load_file

    a, b = load_file(str(out / "fusion_model.safetensors")), load_file(str(part / "fusion_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_lora_trains_resumes_exactly_and_scores_cached_equal_naive(tiny_dirs, tiny_table, tmp_path):
    from pmllm.model import PMLLM
    from tests.pmllm_tiny import PROFILE, images

    full = PMLLM.from_pretrained(train(_args(tiny_dirs, tiny_table, tmp_path / "full", "--no-coarsen", "--lora", "4",
                                             "--max-steps", "8")))  # fmt: skip
    state = full.trainable_state_dict()
    lora_b = [k for k in state if "lora_B" in k]
    assert lora_b and max(float(state[k].detach().abs().max()) for k in lora_b) > 0  # trained (B starts at 0)
    part = tmp_path / "part"
    train(_args(tiny_dirs, tiny_table, part, "--no-coarsen", "--lora", "4", "--max-steps", "8", "--stop-after", "4"))
    resumed = PMLLM.from_pretrained(train(_args(tiny_dirs, tiny_table, part, "--no-coarsen", "--lora", "4",
                                                "--max-steps", "8", "--resume")))  # fmt: skip
    again = resumed.trainable_state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    imgs = images(3)
    cached, naive = full.score(imgs, profile=PROFILE).scores, full.score(imgs, profile=PROFILE, cached=False).scores
    assert np.abs(cached - naive).max() < 1e-4


def test_bf16_autocast_trains_on_cpu(tiny_dirs, tiny_table, tmp_path):
    """The GPU's bf16 autocast path, run on CPU (where no GPU is lent), in a process of its own (accelerate fixes
    the precision once per process): it trains to other weights than float32 does, which it could not without
    autocast; fp16, which accelerate would silently run as float32 on CPU, is refused."""
    from safetensors.torch import load_file

    from tests.launch import run_module

    runs = {}
    for precision in ("bf16", "no"):
        out = tmp_path / precision
        argv = _argv(tiny_dirs, tiny_table, out, "--no-coarsen", "--max-steps", "4", "--mixed-precision", precision)
        run = run_module("pmllm.train", argv)
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads((out / "pmllm_config.json").read_text())["meta"]["mixed_precision"] == precision
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == 4 and np.isfinite([r["loss"] for r in log]).all()
        runs[precision] = load_file(str(out / "fusion_model.safetensors"))
    assert any(not torch.equal(runs["bf16"][k], runs["no"][k]) for k in runs["no"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="fp16 needs a CUDA GPU"):
            main(_argv(tiny_dirs, tiny_table, tmp_path / "fp16", "--mixed-precision", "fp16"))


def test_two_cpu_processes_share_the_steps(tiny_dirs, tiny_table, tmp_path):
    """The multi-GPU path (DDP through accelerate), run as two CPU processes under torchrun (gloo): each process
    takes half of the 8 planned steps, only the main one writes the log, the checkpoint and the last line."""
    from tests.launch import run_module

    out = tmp_path / "ddp"
    run = run_module("pmllm.train", _argv(tiny_dirs, tiny_table, out, "--no-coarsen", "--max-steps", "8"), nproc=2)
    assert run.returncode == 0, run.stderr[-2000:]
    meta = json.loads((out / "pmllm_config.json").read_text())["meta"]
    assert meta["steps_total"] == meta["steps_done"] == 4  # 8 steps shared by 2 processes (each alone would run 8)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and np.isfinite([r["loss"] for r in log]).all()
    assert run.stdout.count("saved ") == 1


def test_step_plan_uses_only_training_users(tiny_table):
    table = RatingsTable.load(tiny_table / "ratings")
    plan = step_plan(table, ["u0", "u1"], epochs=2, per_step=5, seed=0)
    assert {u for u, _ in plan} == {"u0", "u1"}
    for u, rows in plan:
        assert set(table.ratings.loc[rows, "user"]) == {u} and len(rows) >= 2
    assert plan == step_plan(table, ["u0", "u1"], epochs=2, per_step=5, seed=0)


def test_coarsen_produces_coarse_and_empty_profiles():
    full = Profile(age="22-25", gender="female", education="university", big5_E=3.0, text="I love cats")
    rng = np.random.default_rng(0)
    views = [coarsen(full, rng) for _ in range(400)]
    assert any(v.is_empty() for v in views)
    assert any(v.text and not v.structured() for v in views)  # text only
    assert any(v.structured() and not v.text for v in views)  # structured only
    assert any(v == full for v in views)
    assert all(set(v.structured()) <= set(full.structured()) for v in views)


def test_empty_views_learn_the_population_mean(tiny_dirs, tiny_table, tmp_path):
    table = RatingsTable.load(tiny_table / "ratings")
    index = {im: i for i, im in enumerate(table.images)}
    idx, y = population_targets(table, index)
    r = table.ratings
    for i, v in zip(idx, y):
        assert v == pytest.approx(r.loc[r["image"] == table.images[i], "score"].mean(), abs=1e-6)
    assert len(idx) == r["image"].nunique()
    rng = np.random.default_rng(0)
    assert all(coarsen(Profile(age="22-25", text="cats"), rng, p_empty=1.0).is_empty() for _ in range(20))
    out = train(_args(tiny_dirs, tiny_table, tmp_path / "pop", "--p-empty", "1.0", "--max-steps", "4"))
    meta = json.loads((out / "pmllm_config.json").read_text())["meta"]
    assert meta["p_empty"] == 1.0 and meta["empty_target"] == "population" and meta["steps_done"] == 4
    own = train(_args(tiny_dirs, tiny_table, tmp_path / "own", "--p-empty", "1.0", "--max-steps", "4",
                      "--empty-target", "user"))  # fmt: skip
    from safetensors.torch import load_file

    a, b = load_file(str(out / "fusion_model.safetensors")), load_file(str(own / "fusion_model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the population targets are what the empty steps learned
    with pytest.raises(SystemExit, match="--p-empty 1.5"):
        main([*map(str, ["--ratings", tiny_table / "ratings", "--out", tmp_path / "bad", "--p-empty", "1.5"])])


def test_gates_learn_the_profile_code(tiny_dirs, tiny_table, tmp_path):
    """--gate-code fields+text: the gates' field vocabulary comes from the training users, the reader's polarity is
    calibrated on their texts, the zero-initialised code projection learns, and the checkpoint records it."""
    out = train(_args(tiny_dirs, tiny_table, tmp_path / "gated", "--gate-code", "fields+text", "--max-steps", "6"))
    cfg = json.loads((out / "pmllm_config.json").read_text())
    assert cfg["gate_text"] is True and cfg["gate_vocab"]["age"] == ["22-25"]
    assert cfg["meta"]["gate_code"] == "fields+text"
    assert cfg["text_polarity"] != [0.0, 1.0]
    from safetensors.torch import load_file

    w = load_file(str(out / "fusion_model.safetensors"))["profile_proj.code_fc.weight"]
    assert w.abs().max() > 0  # it learned from its zero start
    plain = train(_args(tiny_dirs, tiny_table, tmp_path / "plain", "--max-steps", "2"))
    assert "profile_proj.code_fc.weight" not in load_file(str(plain / "fusion_model.safetensors"))


def test_bad_input_gives_clear_errors(tiny_dirs, tiny_table, tmp_path, capsys):
    (tmp_path / "folds.json").write_text(json.dumps({"folds": [{"train": ["nobody"], "test": []}]}))
    with pytest.raises(SystemExit, match="absent from the ratings"):
        main(["--ratings", str(tiny_table / "ratings"), "--users-from", str(tmp_path / "folds.json"),
              "--out", str(tmp_path / "o")])  # fmt: skip
    with pytest.raises(SystemExit, match="ratings.csv"):
        main(["--ratings", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(SchemaError):
        from piaa.worlds import users_of_fold

        users_of_fold(str(tmp_path / "nope.json"), 0, RatingsTable.load(tiny_table / "ratings"))
