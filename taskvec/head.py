"""The score head: a K-bin distribution over normalised score values -> an expected score.

As in Yun & Choo (ECCV 2024): ``Linear -> GELU -> Dropout -> Linear -> softmax`` over K bins, score
``= sum_k p_k * v_k``. Our bin values ``v_k`` are ``linspace(0, 1, K)``: every database's scale is normalised to
[0, 1] (``piaa.schema.Scale.normalize``) before training, so heads trained on 1-10, 0-100 or 1-5 databases live in
one space and merging their task vectors is meaningful. :meth:`ScoreHead.expected_score` maps back to any scale.

The initial head (part of theta_0) is drawn from a private seeded generator, so every task model starts from the
same head and the head's delta is part of each task vector. Library module, no entry point.
"""

from __future__ import annotations

import torch
from torch import nn

from piaa.schema import Scale


class ScoreHead(nn.Module):
    def __init__(self, in_dim: int, bins: int = 10, hidden: int = 256, dropout: float = 0.1, seed: int = 0):
        super().__init__()
        if bins < 2:
            raise ValueError(f"score head needs at least 2 bins, got {bins}")
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, bins)
        self.register_buffer("values", torch.linspace(0.0, 1.0, bins), persistent=False)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """Deterministic init from ``seed`` (independent of the global RNG): the shared initial head."""
        g = torch.Generator().manual_seed(int(seed))
        for lin in (self.fc1, self.fc2):
            bound = lin.in_features**-0.5
            lin.weight.copy_(torch.rand(lin.weight.shape, generator=g) * 2 * bound - bound)
            lin.bias.zero_()

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(pooled))))

    def distribution(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, K) probabilities over the bins."""
        return self.logits(pooled).softmax(dim=-1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Expected normalised score in [0, 1], shape (B,)."""
        return self.distribution(pooled) @ self.values.to(pooled.dtype)

    def expected_score(self, pooled: torch.Tensor, scale: Scale) -> torch.Tensor:
        """Expected score on ``scale`` (e.g. 1-10 for AVA, 0-100 for KonIQ), shape (B,)."""
        return scale.min + self.forward(pooled) * (scale.max - scale.min)
