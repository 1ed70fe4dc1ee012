"""Trainable parts of pmllm: the visual projector, the profile projector and the selective fusion modules.

:class:`SelectiveFusion` is inserted after a decoder layer of the frozen LLM. For the hidden states ``h`` of the
positions after the profile (the per-photo suffix) it computes

    a = CrossAttention(query = Norm(h), keys/values = projected visual tokens)
    g = sigmoid(W_g [Norm(h); p] + b_g)              # per-channel gate, profile-aware selection
    h <- h + alpha * g * a                           # alpha: per-channel scale, initialised to exactly 0

where ``p`` is the user's profile representation (mean-pooled frozen hidden state over the profile tokens, then
:class:`ProfileProjector`; with ``gate_vocab``/``gate_text`` in the config it also reads the profile code, the
encoded fields and the free text's taste code, through a zero-initialised projection). Because ``alpha`` starts at 0
the untrained model adds exact zeros: it reproduces the frozen LLM bit for bit (tested). The design follows the
paper's description (gated cross-attention from the LLM's evolving hidden states to visual tokens, selection
conditioned on the profile); the equations are ours.

Library module, no entry point.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class VisualProjector(nn.Module):
    """Frozen visual tokens ``(B, M, d_visual)`` -> LLM width ``(B, M, d_model)``."""

    def __init__(self, d_visual: int, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_visual)
        self.fc1 = nn.Linear(d_visual, d_model)
        self.fc2 = nn.Linear(d_model, d_model)
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.fc1(self.norm(tokens.to(self.fc1.weight.dtype)))
        return self.out_norm(self.fc2(F.gelu(x)))


class ProfileProjector(nn.Module):
    """Pooled frozen hidden state of the profile ``(B, d_model)`` [+ the profile code ``(B, d_code)``] -> the gates'
    profile input ``(B, d_profile)``: ``tanh(fc(LN(pooled)) + code_fc(code))``.

    ``d_code > 0``: the gates also see the profile code (encoded fields + the free text's taste code,
    :meth:`pmllm.model.PMLLM.encode_profile`) through ``code_fc``, initialised to exactly 0 (a projector that has
    not learned it gives the pooled-only input bit for bit)."""

    def __init__(self, d_model: int, d_profile: int, d_code: int = 0):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, d_profile)
        self.code_fc = None
        if d_code:
            self.code_fc = nn.Linear(d_code, d_profile)
            nn.init.zeros_(self.code_fc.weight)
            nn.init.zeros_(self.code_fc.bias)

    def forward(self, pooled: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        x = self.fc(self.norm(pooled.to(self.fc.weight.dtype)))
        if self.code_fc is not None:
            if code is None:
                raise ValueError("this profile projector reads the profile code; none was given")
            x = x + self.code_fc(code.to(x))
        return torch.tanh(x)


class SelectiveFusion(nn.Module):
    """Gated, profile-aware cross-attention from LLM hidden states to visual tokens (see module docstring)."""

    def __init__(self, d_model: int, d_profile: int, d_attn: int = 256, n_heads: int = 4):
        super().__init__()
        if d_attn % n_heads:
            raise ValueError(f"d_attn={d_attn} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_attn, bias=False)
        self.k = nn.Linear(d_model, d_attn, bias=False)
        self.v = nn.Linear(d_model, d_attn, bias=False)
        self.o = nn.Linear(d_attn, d_model, bias=False)
        self.gate = nn.Linear(d_model + d_profile, d_model)
        nn.init.normal_(self.gate.weight, std=0.02)
        nn.init.zeros_(self.gate.bias)
        self.alpha = nn.Parameter(torch.zeros(d_model))  # closed at init: the module adds exactly 0

    def forward(self, h: torch.Tensor, visual: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """``h (B, T, D)``, ``visual (B, M, D)``, ``profile (B, d_profile)`` -> the new ``h``."""
        dtype = h.dtype
        x = self.norm(h.to(self.q.weight.dtype))
        b, t, _ = x.shape
        m = visual.shape[1]
        heads = self.n_heads
        q = self.q(x).view(b, t, heads, -1).transpose(1, 2)
        k = self.k(visual).view(b, m, heads, -1).transpose(1, 2)
        v = self.v(visual).view(b, m, heads, -1).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, -1)
        a = self.o(a)
        p = profile.to(x.dtype).unsqueeze(1).expand(b, t, profile.shape[-1])
        g = torch.sigmoid(self.gate(torch.cat([x, p], dim=-1)))
        return h + (self.alpha * g * a).to(dtype)


class PersonalHead(nn.Module):
    """Small bilinear profile x photo readout term: ``s = (P LN(p)) . (V LN(v_mean)) * gain``.

    ``p`` is the pooled frozen profile hidden state (the same one the fusion modules see) or, in "fields" mode,
    the encoded structured profile fields (:func:`encode_fields`; no norm, so an empty profile gives ``p = 0`` and,
    with zero ``p_proj`` bias, exactly no shift), ``v_mean`` the mean of
    the photo's frozen visual tokens. ``s`` is added to the readout's normalised expected level (``[0, 1]`` before
    mapping onto the scale), so it shifts the score, not the level probabilities. ``gain`` starts at exactly 0:
    an untrained head adds exact zeros (the untrained model still equals the frozen LLM).
    """

    def __init__(self, d_model: int, d_visual: int, rank: int, *, norm_profile: bool = True):
        super().__init__()
        self.p_norm = nn.LayerNorm(d_model, elementwise_affine=False) if norm_profile else nn.Identity()
        self.v_norm = nn.LayerNorm(d_visual, elementwise_affine=False)
        self.p_proj = nn.Linear(d_model, rank)
        self.v_proj = nn.Linear(d_visual, rank)
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, pooled: torch.Tensor, visual_mean: torch.Tensor) -> torch.Tensor:
        """``pooled (1 or N, d_model)``, ``visual_mean (N, d_visual)`` -> ``(N,)``."""
        a = self.p_proj(self.p_norm(pooled.float()))
        b = self.v_proj(self.v_norm(visual_mean.float()))
        return self.gain * (a * b).sum(-1) / a.shape[-1] ** 0.5


MAX_Z = 4.0  # standardised numeric profile fields are clipped to this many training-user standard deviations


def encode_fields(profile, vocab: dict[str, list]) -> torch.Tensor:
    """Structured profile fields -> a fixed vector ``(1, n)`` for the personal head's "fields" mode.

    ``vocab`` maps a field to ``["num", mean, sd]`` (standardised value, clipped to +-``MAX_Z``: a value far outside
    what training users gave is "very high", not an overflow) or to its list of categories (one-hot); a missing
    field, a non-finite value, or an unseen category, encodes as zeros (= unknown).
    """
    given = profile.structured()
    out: list[float] = []
    for name, spec in vocab.items():
        v = given.get(name)
        if spec and spec[0] == "num":
            try:
                z = 0.0 if v is None else (float(v) - spec[1]) / spec[2]
            except (TypeError, ValueError):
                z = 0.0
            out.append(max(-MAX_Z, min(MAX_Z, z)) if math.isfinite(z) else 0.0)
        else:
            out += [1.0 if v is not None and str(v) == c else 0.0 for c in spec]
    return torch.tensor([out], dtype=torch.float32)


def fields_vocab(profiles: list) -> dict[str, list]:
    """The encoding vocabulary of :func:`encode_fields`, built from (training users') profiles."""
    vals: dict[str, list] = {}
    for p in profiles:
        for k, v in p.structured().items():
            vals.setdefault(k, []).append(v)
    vocab: dict[str, list] = {}
    for k in sorted(vals):
        vs = vals[k]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs):
            arr = [float(v) for v in vs]
            mean = sum(arr) / len(arr)
            sd = (sum((a - mean) ** 2 for a in arr) / len(arr)) ** 0.5 or 1.0
            vocab[k] = ["num", mean, sd]
        else:
            vocab[k] = sorted({str(v) for v in vs})
    return vocab
