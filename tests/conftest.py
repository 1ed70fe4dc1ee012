"""Shared test configuration and fixtures: offline hub, the `gpu` marker's skip, the embedded models, and the tiny
random pmllm models and ratings table several test files use (helpers that build models: tests/pmllm_tiny.py)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from piaa.schema import PARA_SCALE, Profile, RatingsTable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def embedded_llm():
    """The embedded SmolLM2 (converted once into the user cache, then loaded from it)."""
    from piaa.models import create_llm

    return create_llm("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def embedded_vision():
    from piaa.models import create_vision_encoder

    return create_vision_encoder("efficientnet-lite0")


@pytest.fixture(scope="session")
def embedded_text():
    from piaa.models import create_text_encoder

    return create_text_encoder("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """A tiny random Llama LM (with SmolLM2's tokenizer and chat template) and a tiny random CLIP vision tower."""
    from transformers import AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from piaa.models import smollm2_dir

    root = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(str(smollm2_dir()))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(root / "lm")
    tok.save_pretrained(root / "lm")
    vcfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            image_size=32, patch_size=8)  # fmt: skip
    CLIPVisionModel(vcfg).save_pretrained(root / "clip")
    return root


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory):
    """6 users x 12 photos; bright photos are liked by 'bright' users and disliked by 'dark' users."""
    root = tmp_path_factory.mktemp("table")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    levels = np.linspace(20, 235, 12)
    for i, v in enumerate(levels):
        arr = np.clip(rng.normal(v, 10, (36, 36, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "images" / f"img{i:02d}.jpg")
    rows, profiles = [], {}
    for u in range(6):
        likes_bright = u % 2 == 0
        profiles[f"u{u}"] = Profile(age="22-25", text="I love bright photos" if likes_bright else "I love dark photos")
        for i in range(12):
            s = 1 + 4 * (i / 11 if likes_bright else 1 - i / 11)
            rows.append({"image": f"img{i:02d}.jpg", "user": f"u{u}", "score": float(PARA_SCALE.quantize(s))})
    table = RatingsTable(pd.DataFrame(rows), PARA_SCALE, profiles, root / "images", "tiny")
    table.save(root / "ratings")
    (root / "folds.json").write_text(
        json.dumps({"folds": [{"train": ["u0", "u1", "u2", "u3"], "test": ["u4", "u5"]}]})
    )
    return root
