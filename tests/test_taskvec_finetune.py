"""taskvec.finetune: the loss goes down on a tiny synthetic database, resuming equals not stopping, CLI output."""

import json

import numpy as np
import pytest
import torch
from taskvec_synth import make_images, make_table

from piaa.schema import Scale
from taskvec.backbones import BackboneConfig, create_backbone
from taskvec.finetune import FinetuneConfig, database_targets, main, train_task_model

SMALL = BackboneConfig(image_size=64)


@pytest.fixture(scope="module")
def bright_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    names, attrs = make_images(root / "images", 100, seed=1)
    table = make_table(root / "databases" / "bright", root / "images", names, 1 + 9 * attrs["bright"],
                       Scale(1, 10), "bright")  # fmt: skip
    make_table(root / "databases" / "red", root / "images", names, 100 * attrs["red"], Scale(0, 100), "red")
    (root / "world.json").write_text(json.dumps({"simulated": True}))
    model = create_backbone(SMALL)
    paths, y = database_targets(table)
    feats = model.trunk_features(paths)
    return root, model, feats, y


def test_loss_decreases_and_resume_matches_uninterrupted(bright_db, tmp_path):
    _, model, feats, y = bright_db
    base = model.trainable_state()
    cfg = FinetuneConfig(epochs=5, batch_size=16, val_frac=0.2)
    torch.manual_seed(0)
    full = train_task_model(model, feats, y, cfg, ckpt_dir=tmp_path / "a", progress=False)
    hist = full["history"]
    assert hist[-1]["train_mse"] < 0.6 * hist[0]["train_mse"], hist
    assert full["best_val_srocc"] > 0.5 and full["finished"]
    w_full = model.trainable_state()
    for k in base:  # training changed the tail and the head, not just one of them
        if k in ("tail.conv_head.weight", "head.fc2.weight"):
            assert not torch.equal(base[k], w_full[k])

    model.load_state_dict(base, strict=False)
    part = train_task_model(model, feats, y, cfg, ckpt_dir=tmp_path / "b", progress=False, stop_after=2)
    assert not part["finished"] and len(part["history"]) == 2
    model.load_state_dict(base, strict=False)  # a fresh process would start from theta_0 and the checkpoint
    resumed = train_task_model(model, feats, y, cfg, ckpt_dir=tmp_path / "b", progress=False)
    assert resumed["finished"] and [h["epoch"] for h in resumed["history"]] == list(range(1, 6))
    for k, v in model.trainable_state().items():
        assert torch.allclose(v, w_full[k], atol=1e-5), k
    model.load_state_dict(base, strict=False)


def test_trunk_is_frozen_and_bn_stats_fixed(bright_db):
    _, model, feats, y = bright_db
    bn = model.tail.bn
    before = bn.running_mean.clone()
    model.train()
    assert not model.trunk.training and not any(p.requires_grad for p in model.trunk.parameters())
    model(feats[:4].float(), stage="trunk").sum().backward()
    assert torch.equal(bn.running_mean, before)
    model.zero_grad(set_to_none=True)
    model.eval()


def test_cli_trains_every_database(bright_db, tmp_path, capsys):
    root, *_ = bright_db
    out = tmp_path / "tv"
    rc = main(["--world", str(root), "--out", str(out), "--epochs", "2", "--image-size", "64", "--batch-size", "16",
               "--cache-dir", str(tmp_path / "cache"), "--threads", "1"])  # fmt: skip
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["databases"] == ["bright", "red"] and manifest["simulated"] is True
    cfg = json.loads((out / "red.json").read_text())
    assert cfg["scale"]["max"] == 100 and cfg["simulated"] and cfg["base_fingerprint"] == manifest["base_fingerprint"]
    # compact: only the tail + head tensors, stored fp16
    from safetensors import safe_open

    with safe_open(str(out / "red.safetensors"), "pt") as fh:
        keys = list(fh.keys())
        assert all(k.startswith(("tail.", "head.")) for k in keys)
        assert fh.get_tensor(keys[0]).dtype == torch.float16
    assert "simulated" in capsys.readouterr().out
    assert main(["--world", str(tmp_path / "nowhere")]) == 2
    assert main(["--world", str(root), "--databases", "bogus", "--out", str(out)]) == 2
    assert np.isfinite(manifest["results"]["bright"]["best_val_srocc"])


def _finetune_argv(root, out, cache, *extra) -> list[str]:
    return ["--world", str(root), "--databases", "bright", "--out", str(out), "--epochs", "2", "--image-size", "64",
            "--batch-size", "16", "--cache-dir", str(cache), "--threads", "1", *extra]  # fmt: skip


def test_two_cpu_processes_finetune(bright_db, tmp_path):
    """The multi-GPU path (accelerate's data sharding and DDP), run as two CPU processes under torchrun (gloo); only
    the main process writes the task vector, the manifest and the summary line."""
    from tests.launch import run_module

    root, *_ = bright_db
    out = tmp_path / "tv"
    run = run_module("taskvec.finetune", _finetune_argv(root, out, tmp_path / "cache"), nproc=2)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "manifest.json").read_text())["results"]["bright"]
    assert result["finished"] and np.isfinite(result["best_val_srocc"]) and result["n_train"] == 90
    assert run.stdout.count("bright: ") == 1


def test_bf16_autocast_finetunes_on_cpu(bright_db, tmp_path):
    """The GPU's bf16 mixed-precision path, run on CPU (where no GPU is lent), in a process of its own (accelerate
    fixes the precision once per process): the task vector differs from float32's, which it could not without
    autocast; fp16 is refused on CPU."""
    from safetensors.torch import load_file

    from tests.launch import run_module

    root, *_ = bright_db
    vectors = {}
    for precision in ("bf16", "no"):
        out = tmp_path / precision
        run = run_module("taskvec.finetune", _finetune_argv(root, out, tmp_path / "cache", "--mixed-precision",
                                                           precision))  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["finetune"]["mixed_precision"] == precision and manifest["results"]["bright"]["finished"]
        vectors[precision] = load_file(str(out / "bright.safetensors"))
    assert any(not torch.equal(vectors["bf16"][k], vectors["no"][k]) for k in vectors["no"])
    if not torch.cuda.is_available():
        assert main(_finetune_argv(root, tmp_path / "fp16", tmp_path / "cache", "--mixed-precision", "fp16")) == 2
