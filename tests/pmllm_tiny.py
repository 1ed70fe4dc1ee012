"""Tiny random pmllm models for the tests (the fixtures ``tiny_dirs`` / ``tiny_table`` live in conftest.py)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from piaa.schema import Profile
from pmllm.config import PMLLMConfig
from pmllm.model import PMLLM

PROFILE = Profile(age="30-34", gender="male", big5_O=6.0, text="Moody, dark night streets are my thing.")


def tiny_model(tiny_dirs, **kw) -> PMLLM:
    torch.manual_seed(1)
    cfg = PMLLMConfig(llm=str(tiny_dirs / "lm"), vision=str(tiny_dirs / "clip"), d_attn=16, n_heads=2,
                      d_profile=8, **kw)  # fmt: skip
    return PMLLM(cfg)


def open_gates(model: PMLLM, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for f in model.fusions.values():
            f.alpha.copy_(torch.randn(f.alpha.shape, generator=g))


def images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)) for i in range(n)]
