"""taskvec with a tiny random-config CLIP image tower: fine-tune -> task vectors -> both recipes -> score files."""

import json

import numpy as np
import pytest
import torch
from taskvec_synth import make_images, make_table

from piaa.schema import PARA_SCALE, Scale
from taskvec.backbones import BackboneConfig, create_backbone, list_backbones
from taskvec.finetune import FinetuneConfig, finetune_databases
from taskvec.model import PersonalizedScorer, PersonalizedUser
from taskvec.task_vector import TaskVectorMismatchError


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                           image_size=32, patch_size=8, projection_dim=16)  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "tiny-clip"
    CLIPVisionModel(cfg).save_pretrained(path)
    return path


def test_registry_lists_clip_towers():
    assert {"efficientnet-lite0", "clip-vit-b16", "clip-vit-l14"} <= set(list_backbones())
    with pytest.raises(ValueError, match="unknown backbone 'nope'"):
        create_backbone(BackboneConfig(name="nope"))


def test_tiny_clip_end_to_end(clip_dir, tmp_path):
    names, attrs = make_images(tmp_path / "images", 60, seed=5, size=40)
    dbs = {
        "bright": make_table(
            tmp_path / "db" / "bright", tmp_path / "images", names, 1 + 9 * attrs["bright"], Scale(1, 10), "bright"
        ),  # fmt: skip
        "red": make_table(
            tmp_path / "db" / "red", tmp_path / "images", names, 100 * attrs["red"], Scale(0, 100), "red"
        ),
    }
    backbone = BackboneConfig(name=str(clip_dir), tail=1, head_hidden=16)
    model = create_backbone(backbone)
    assert len(model.trunk.layers) == 2 and len(model.tail.layers) == 1
    assert all(n.startswith(("tail.layers.0.", "tail.post_layernorm", "head.")) for n in model.trainable_names())
    out = tmp_path / "tv"
    manifest = finetune_databases(dbs, out, backbone, FinetuneConfig(epochs=3, batch_size=16, lr=3e-3),
                                  cache_dir=tmp_path / "cache", progress=False)  # fmt: skip
    assert manifest["databases"] == ["bright", "red"]
    assert json.loads((out / "bright.json").read_text())["backbone"]["name"] == str(clip_dir)

    scorer = PersonalizedScorer.from_pretrained(out)
    paths = [tmp_path / "images" / n for n in names]
    feats = scorer.features(paths)
    assert feats.shape == (60, 17, 32)  # (images, CLS + 16 patches, hidden) after the 2 frozen layers
    y = PARA_SCALE.quantize(1 + 4 * attrs["red"])
    for recipe, kw in (("fast", {"max_iter": 5}), ("yun2024", {"steps": 20})):
        user = scorer.personalize("u", paths[:20], y[:20], recipe=recipe, scale=PARA_SCALE, **kw)
        s = scorer.score(paths[20:], user=user, batch_size=16).scores  # on the user's scale (PARA 1-5)
        assert s.shape == (40,) and np.isfinite(s).all() and ((s >= 1) & (s <= 5)).all()
        assert np.allclose(PARA_SCALE.normalize(s), scorer.score_features(feats[20:], user), atol=1e-5)
        user.save_pretrained(tmp_path / recipe)
        assert PersonalizedUser.from_pretrained(tmp_path / recipe).config.recipe == recipe

    # task vectors made from another theta_0 (different head seed) are refused with a clear error
    other = create_backbone(BackboneConfig(name=str(clip_dir), tail=1, head_hidden=16, head_seed=1))
    from taskvec.personalize import TaskSet

    with pytest.raises(TaskVectorMismatchError, match="fine-tuned from theta_0"):
        TaskSet.from_dir(out, model=other)
