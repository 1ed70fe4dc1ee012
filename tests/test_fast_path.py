"""piaa's one fast image path: the BN-folded channels-last encoder gives the plain encoder's outputs.

Checked on real bundled photos (piaa.photos), through the batched file path (piaa.features.iter_encoded) that pmllm
uses, and for taskvec's folded trunk (its fingerprint, hence its feature caches, survive folding).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from piaa.efficientnet_lite import fold_batchnorm
from piaa.photos import bundled_photos

TOL = 1e-4


@pytest.fixture(scope="module")
def photos():
    found = bundled_photos()
    if len(found) < 3:
        pytest.skip("fewer than 3 bundled photos installed")
    return [p.image for p in found[:4]]


@pytest.fixture(scope="module")
def photo_files(photos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, img in enumerate(photos):
        paths.append(folder / f"p{i}.jpg")
        img.save(paths[-1], quality=92)
    return paths


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_fused_encoder_matches_plain_on_real_photos(embedded_vision, photos):
    before = _state(embedded_vision)
    fast = embedded_vision.for_inference()
    assert fast is not embedded_vision and fast.channels_last and not fast.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # stem, blocks and head all folded
    x = embedded_vision.preprocess(photos)
    with torch.no_grad():
        plain, fused = embedded_vision(x), fast(x)
    assert fused.tokens.shape == plain.tokens.shape == (len(photos), 49, 1280)
    assert (fused.tokens - plain.tokens).abs().max().item() < TOL
    assert (fused.pooled - plain.pooled).abs().max().item() < TOL
    assert plain.tokens.abs().max().item() > 0.1  # not a trivially-zero comparison
    after = _state(embedded_vision)  # the original encoder is untouched (it may be shared)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert (fast.classify(x) - embedded_vision.classify(x)).abs().max().item() < 1e-3


def test_cpu_micro_batches_give_the_whole_batch_result(embedded_vision, photos):
    from piaa.vision import CPU_MICRO_BATCH, in_micro_batches

    seen = []
    x = torch.arange(11.0).view(11, 1)
    assert torch.equal(in_micro_batches(lambda t: seen.append(len(t)) or t * 2, x, size=4), x * 2)
    assert seen == [4, 4, 3]
    imgs = (photos * 3)[: 2 * CPU_MICRO_BATCH + 1]  # more than one micro-batch, the last one short
    x = embedded_vision.preprocess(imgs)
    with torch.no_grad():
        plain, fused = embedded_vision(x), embedded_vision.for_inference()(x)
    assert (fused.tokens - plain.tokens).abs().max().item() < TOL


def test_fold_batchnorm_is_idempotent_and_skips_missing_parts(embedded_vision):
    import copy

    net = fold_batchnorm(copy.deepcopy(embedded_vision.net))
    once = {k: v.clone() for k, v in net.state_dict().items()}
    fold_batchnorm(net)
    assert all(torch.equal(once[k], v) for k, v in net.state_dict().items())
    fold_batchnorm(nn.Linear(3, 3))  # nothing to fold: no error


def test_batched_file_path_matches_plain_module(embedded_vision, photos, photo_files):
    from piaa.features import iter_encoded
    from piaa.images import load_image

    fast = embedded_vision.for_inference()
    mixed = [photo_files[0], photos[1], *photo_files[2:]]  # paths and PIL images in one call
    got = torch.cat([res.tokens for _, res in iter_encoded(fast, mixed, batch_size=2)])
    imgs = [photos[1] if i == 1 else load_image(p, min_side=224) for i, p in enumerate(photo_files)]
    with torch.no_grad():
        ref = embedded_vision(embedded_vision.preprocess(imgs)).tokens
    assert (got - ref).abs().max().item() < TOL


def test_pmllm_visual_tokens_use_fast_copy_and_keep_weights(embedded_vision, tiny_dirs, photos, photo_files):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from piaa.images import load_image
    from piaa.schema import Profile
    from pmllm.config import PMLLMConfig
    from pmllm.model import PMLLM

    llm = LlamaForCausalLM.from_pretrained(str(tiny_dirs / "lm"))
    tok = AutoTokenizer.from_pretrained(str(tiny_dirs / "lm"))
    torch.manual_seed(0)
    model = PMLLM(PMLLMConfig(), llm=llm, tokenizer=tok, encoder=embedded_vision)
    for fusion in model.fusions.values():  # open the gates so the visual tokens reach the score
        for p in fusion.parameters():
            torch.nn.init.normal_(p, std=0.5)
    before, trainable = _state(model), sorted(model.trainable_state_dict())
    images = [*photo_files[:2], photos[2]]  # paths and a PIL image
    tokens = model.visual_tokens(images, batch_size=2)
    imgs = [load_image(p, min_side=224) for p in photo_files[:2]] + [photos[2]]
    with torch.no_grad():
        ref = embedded_vision(embedded_vision.preprocess(imgs)).tokens
    assert (tokens - ref).abs().max().item() < TOL
    profile = Profile(text="I love bright photos")
    fast, plain = model.score_tokens(profile, tokens).scores, model.score_tokens(profile, ref).scores
    assert abs(fast - plain).max() < TOL
    assert model.inference_encoder() is model.inference_encoder()  # built once
    after = _state(model)  # the frozen encoder's weights, state_dict and trainable parts are unchanged
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert sorted(model.trainable_state_dict()) == trainable


def test_taskvec_trunk_fingerprint_survives_folding(photo_files):
    from piaa.images import load_image
    from taskvec.backbones import create_backbone

    model = create_backbone("efficientnet-lite0").eval()  # eval: the head's dropout off
    fp = model.trunk_fingerprint()
    plain_trunk = model.trunk
    net_before = _state(model.encoder.net)
    x = model.encoder.preprocess([load_image(p) for p in photo_files])
    with torch.no_grad():
        ref_h, ref_s = plain_trunk(x), model(x)
    model.fold_batchnorm()
    assert model.trunk is not plain_trunk
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.trunk.modules())
    assert model.trunk_fingerprint() == fp
    model._trunk_fp = None  # recomputing from the folded tensors would differ: the cached value is what counts
    assert model.trunk_fingerprint() != fp
    model._trunk_fp = fp
    with torch.no_grad():
        assert (model.trunk(x) - ref_h).abs().max().item() < TOL
        assert (model(x) - ref_s).abs().max().item() < TOL
    after = _state(model.encoder.net)  # the encoder's network (shared modules) stays as loaded
    assert all(torch.equal(net_before[k], after[k]) for k in net_before)
