"""pmllm model: closed gates == frozen LLM (exact), cached == naive scores, save/load bit-exact, LoRA placement,
tiny random Llama + tiny CLIP end to end, and the embedded SmolLM2 + EfficientNet-Lite0 default."""

import numpy as np
import pytest
import torch

from piaa.schema import PARA_SCALE, Profile
from pmllm.config import PMLLMConfig
from pmllm.model import PMLLM, _Ctx
from tests.pmllm_tiny import PROFILE, images, open_gates, tiny_model


def _assert_closed_equals_frozen(model: PMLLM, n: int = 3):
    prompt = model.prompt(PROFILE)
    ids = torch.tensor(prompt.prefix + prompt.suffix).expand(n, -1)
    tokens = torch.randn(n, model.encoder.num_tokens, model.encoder.token_dim)
    with torch.no_grad():
        frozen = model.llm(input_ids=ids).logits
        visual = model.projector(tokens)
        with model._context(_Ctx(visual=visual, span=prompt.span, fuse_from=len(prompt.prefix))) as ctx:
            fused = model.llm(input_ids=ids).logits
        assert ctx.profile is not None  # the fusion modules really ran
    assert torch.equal(frozen, fused)  # bit-exact: closed gates add exact zeros
    open_gates(model)
    with torch.no_grad(), model._context(_Ctx(visual=visual, span=prompt.span, fuse_from=len(prompt.prefix))):
        opened = model.llm(input_ids=ids).logits
    assert torch.equal(opened[:, : len(prompt.prefix)], frozen[:, : len(prompt.prefix)])  # profile untouched
    assert not torch.allclose(opened[:, -1], frozen[:, -1])  # ... and the answer position does see the photo


def test_untrained_equals_frozen_llm_tiny(tiny_dirs):
    model = tiny_model(tiny_dirs)
    assert model.config.fusion_layers == [3]
    _assert_closed_equals_frozen(model)


def test_cached_equals_naive_and_batches_independent(tiny_dirs):
    model = tiny_model(tiny_dirs)
    open_gates(model, seed=3)
    imgs = images(7)
    a = model.score(imgs, profile=PROFILE, batch_size=3)
    b = model.score(imgs, profile=PROFILE, cached=False, batch_size=4)
    assert a.scores.shape == (7,) and a.details["probs"].shape == (7, 5)
    assert np.abs(a.scores - b.scores).max() < 1e-4 and np.abs(a.details["probs"] - b.details["probs"]).max() < 1e-4
    assert np.ptp(a.scores) > 0  # different photos get different scores
    one = model.score(imgs[2:3], profile=PROFILE)
    assert abs(one.scores[0] - a.scores[2]) < 1e-4
    assert (a.scores >= PARA_SCALE.min).all() and (a.scores <= PARA_SCALE.max).all()
    other = model.score(imgs, profile=Profile(text="Bright, airy beach photos."))
    assert np.abs(other.scores - a.scores).max() > 1e-6  # the profile matters
    assert len(model._prefix_cache) == 2  # one cached prefix per user profile


def test_prepare_does_the_first_calls_work_and_changes_no_score(tiny_dirs):
    from pmllm.fusion import fields_vocab

    kw = {"gate_vocab": fields_vocab([PROFILE]), "gate_text": True}  # a model that reads the free text
    fresh, ready = tiny_model(tiny_dirs, **kw), tiny_model(tiny_dirs, **kw)
    for model in (fresh, ready):
        open_gates(model, seed=4)
    assert ready.reads_text and fresh._reader is None and fresh._head_kv is None
    assert ready.prepare() is ready
    assert ready._head_kv is not None and "_fast_encoder" in ready.__dict__  # the template head, the encoder copy
    assert ready._reader is not None and ready.reader._head_kv is not None  # the reader loaded, its head run
    imgs = images(3, seed=2)
    assert np.array_equal(fresh.score(imgs, profile=PROFILE).scores, ready.score(imgs, profile=PROFILE).scores)


def test_bf16_llm_scores_like_fp32_and_cached_equals_naive(tiny_dirs):
    """A GPU user's usual set-up, run on CPU (where no GPU is lent): the frozen LLM in bfloat16, the trainable
    fusion modules in float32; the hooks cast between them."""
    from piaa.models import create_llm

    ref = tiny_model(tiny_dirs)
    open_gates(ref, seed=4)
    llm, tok = create_llm(str(tiny_dirs / "lm"), dtype=torch.bfloat16)
    half = PMLLM(ref.config, llm=llm, tokenizer=tok, encoder=ref.encoder)
    half.load_state_dict(ref.trainable_state_dict(), strict=False)
    assert next(half.llm.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in half.trainable_parameters())
    imgs = images(4, seed=2)
    a, b = ref.score(imgs, profile=PROFILE).scores, half.score(imgs, profile=PROFILE).scores
    c = half.score(imgs, profile=PROFILE, cached=False).scores
    assert np.isfinite(b).all() and not np.array_equal(a, b)  # really another precision ...
    assert np.abs(a - b).max() < 0.05 and np.abs(b - c).max() < 1e-2  # ... and the same scores to its resolution


def test_save_load_bit_exact(tiny_dirs, tmp_path):
    model = tiny_model(tiny_dirs)
    open_gates(model, seed=5)
    model.save_pretrained(tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["fusion_model.safetensors", "pmllm_config.json"]
    loaded = PMLLM.from_pretrained(tmp_path / "ck")
    sa, sb = model.trainable_state_dict(), loaded.trainable_state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    imgs = images(4, seed=1)
    assert np.array_equal(model.score(imgs, profile=PROFILE).scores, loaded.score(imgs, profile=PROFILE).scores)
    (tmp_path / "bad").mkdir()
    with pytest.raises(FileNotFoundError, match="pmllm_config.json"):
        PMLLM.from_pretrained(tmp_path / "bad")


def test_gates_see_the_profile_code(tiny_dirs, tmp_path):
    """The gates' profile code (encoded fields + the free text's taste code) enters through a zero-initialised
    projection: untrained, scores equal the pooled-only model's bit for bit; once it has weights, the code moves
    the scores, cached == naive, and save/load keeps it."""
    from pmllm.constants import TASTE_CONCEPTS
    from pmllm.fusion import encode_fields, fields_vocab

    vocab = fields_vocab([PROFILE, Profile(age="22-25", gender="female", big5_O=3.0)])
    plain = tiny_model(tiny_dirs)
    gated = tiny_model(tiny_dirs, gate_vocab=vocab, gate_text=True)
    assert gated.gate_code_dim == len(encode_fields(Profile(), vocab)[0]) + len(TASTE_CONCEPTS)
    assert plain.gate_code_dim == 0 and plain.encode_profile(PROFILE).gate is None
    missing = gated.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["profile_proj.code_fc.bias", "profile_proj.code_fc.weight"]
    open_gates(plain, seed=4)
    open_gates(gated, seed=4)
    imgs = images(5, seed=2)
    code = gated.encode_profile(PROFILE)
    assert code.gate.shape == (1, gated.gate_code_dim) and code.reading is not None
    assert np.array_equal(gated.score(imgs, profile=PROFILE).scores, plain.score(imgs, profile=PROFILE).scores)
    with torch.no_grad():
        gated.profile_proj.code_fc.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
    a = gated.score(imgs, profile=PROFILE)
    assert np.abs(a.scores - plain.score(imgs, profile=PROFILE).scores).max() > 1e-6  # the code moves the scores
    b = gated.score(imgs, profile=PROFILE, cached=False)
    assert np.abs(a.scores - b.scores).max() < 1e-4
    gated.save_pretrained(tmp_path / "gated")
    loaded = PMLLM.from_pretrained(tmp_path / "gated")
    assert loaded.config.gate_vocab == vocab and loaded.config.gate_text is True
    assert np.array_equal(loaded.score(imgs, profile=PROFILE).scores, a.scores)
    with pytest.raises(ValueError, match="profile code"):
        gated.profile_proj(torch.zeros(1, gated.profile_proj.norm.normalized_shape[0]))


def test_lora_attaches_only_to_the_llm(tiny_dirs, tmp_path):
    model = tiny_model(tiny_dirs, lora_r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if "lora_" in n}
    assert lora and all(n.startswith("llm.") for n in lora)
    assert not any(n.startswith("encoder.") for n in trainable)
    frozen_llm = [n for n, p in model.llm.named_parameters() if not p.requires_grad]
    assert frozen_llm and all("lora_" not in n for n in frozen_llm)
    assert set(model.trainable_state_dict()) == trainable
    model.save_pretrained(tmp_path / "ck")
    loaded = PMLLM.from_pretrained(tmp_path / "ck")
    assert any("lora_" in k for k in loaded.trainable_state_dict())
    assert PMLLM(PMLLMConfig(llm=str(tiny_dirs / "lm"), vision=str(tiny_dirs / "clip"))).config.lora_r == 0


def test_bad_fusion_layers(tiny_dirs):
    with pytest.raises(ValueError, match="fusion_layers"):
        tiny_model(tiny_dirs, fusion_layers=[7])


def test_embedded_default_untrained_equals_frozen_and_caches(embedded_llm, embedded_vision):
    llm, tok = embedded_llm
    model = PMLLM(PMLLMConfig(), llm=llm, tokenizer=tok, encoder=embedded_vision)
    try:
        assert model.config.fusion_layers == [22, 25, 28]
        _assert_closed_equals_frozen(model, n=2)
        open_gates(model, seed=1)
        tokens = torch.rand(3, 49, 1280)
        a = model.score_tokens(PROFILE, tokens)
        b = model.score_tokens(PROFILE, tokens, cached=False)
        assert np.abs(a.scores - b.scores).max() < 1e-4
    finally:
        for h in model._hooks:  # the session-scoped LLM is shared with other tests
            h.remove()


@pytest.mark.gpu
@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_llm_on_cuda(quantization):
    model = PMLLM(PMLLMConfig(), quantization=quantization)
    assert model.device.type == "cuda"
    open_gates(model)
    tokens = torch.rand(4, 49, 1280)
    a = model.score_tokens(PROFILE, tokens)
    b = model.score_tokens(PROFILE, tokens, cached=False)
    assert np.isfinite(a.scores).all() and np.abs(a.scores - b.scores).max() < 5e-2  # low-precision kernels
