"""What pmllm needs from a Hugging Face causal LM, across transformers releases: its decoder layers (where the fusion
modules hook in) and its KV cache (the per-user profile prefix is encoded once and every photo's suffix appends to a
copy expanded over the batch). Library module, no entry point.
"""

from __future__ import annotations

import torch
from torch import nn


def decoder_layers(llm: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a Hugging Face causal LM (Llama/Qwen/Mistral/Gemma/Phi/GPT-2/NeoX layouts)."""
    base = llm.get_decoder() if hasattr(llm, "get_decoder") else llm
    for obj, attr in ((base, "layers"), (base, "h"), (getattr(base, "decoder", None), "layers"), (llm, "layers")):
        layers = getattr(obj, attr, None) if obj is not None else None
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ValueError(f"cannot find the decoder layers of {type(llm).__name__}; pmllm supports HF decoder-only LMs")


def cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of a transformers cache object."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))  # older transformers


def with_cache(module: nn.Module, cache) -> dict:
    """The keyword a transformers model takes its KV cache by: ``cache`` (transformers >= 5.x, where
    ``past_key_values`` is deprecated) or ``past_key_values`` (older releases)."""
    import inspect

    params = inspect.signature(module.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


def output_cache(out):
    """The KV cache a forward returned (``out.cache``, or ``out.past_key_values`` on older transformers)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def make_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], batch: int):
    """A fresh DynamicCache holding ``kv`` expanded (views) over ``batch`` rows; the suffix appends to it."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (k, v) in enumerate(kv):
        cache.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
    return cache
