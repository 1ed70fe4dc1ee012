"""Shared test configuration: offline hub, a session cache for converted weights, the `gpu` marker's skip."""

import os

import pytest

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
