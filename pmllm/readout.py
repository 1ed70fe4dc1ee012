"""The ONE score readout: rating-level logits -> probabilities -> expected level -> score on the target scale.

Every pmllm score (the fused model, the prompt-only baseline, training) goes through :func:`readout`; its inverse
:func:`soft_targets` turns scores into the soft level distributions used as cross-entropy targets in training.

Example::

    logits = level_logits(llm, hidden, level_ids)       # (N, 5) at the answer position
    scores, probs = readout(logits, PARA_SCALE)

Library module, no entry point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from piaa.schema import Scale
from pmllm.constants import LEVEL_WEIGHTS


def level_logits(llm, hidden: torch.Tensor, level_ids: list[int]) -> torch.Tensor:
    """Next-token logits of the K level words ``(N, K)`` (or any K words' first tokens) from the answer position's
    final hidden states ``(N, D)``.

    Only the LM head's rows for those words are applied (the same numbers as the full next-token logits' columns,
    without computing the whole vocabulary), for decoders whose head is one linear layer, optionally followed by a
    final logit soft-capping (Llama/SmolLM, Qwen, Mistral, Gemma); a model that scales its logits some other way
    (e.g. Cohere's ``logit_scale``) is refused rather than read wrongly.
    """
    config = llm.config.get_text_config() if hasattr(llm.config, "get_text_config") else llm.config
    for name in ("logit_scale", "logits_scaling"):
        if getattr(config, name, None) not in (None, 1, 1.0):
            raise ValueError(f"level_logits: {type(llm).__name__} scales its logits ({name}); not supported")
    head = llm.get_output_embeddings()
    idx = torch.as_tensor(level_ids, device=head.weight.device)
    bias = head.bias[idx] if getattr(head, "bias", None) is not None else None
    # the head's own device and dtype (a model split over devices may hold it apart from the last layer)
    out = F.linear(hidden.to(device=head.weight.device, dtype=head.weight.dtype), head.weight[idx], bias)
    cap = getattr(config, "final_logit_softcapping", None)
    return (torch.tanh(out / cap) * cap if cap else out).to(hidden.device)


def readout(logits: torch.Tensor, scale: Scale | None = None,
            shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(scores, probs)`` from level logits ``(N, K)``: the one score rule.

    ``probs = softmax(logits)`` over the K level words; the expected level ``sum(probs * LEVEL_WEIGHTS)`` lies in
    ``[min(w), max(w)]``, is normalised to ``u`` in [0, 1], moved by the personal head's ``shift`` (in units of the
    scale's range) and clipped back to [0, 1], then mapped linearly onto ``scale`` (``None`` -> the raw expected
    level, no shift). So every score lies on the scale whatever the profile. Differentiable (inside the range).
    """
    w = torch.tensor(LEVEL_WEIGHTS, dtype=torch.float32, device=logits.device)
    if logits.shape[-1] != len(w):
        raise ValueError(f"readout expects {len(w)} level logits, got shape {tuple(logits.shape)}")
    probs = torch.softmax(logits.float(), dim=-1)
    expected = probs @ w
    if scale is None:
        return expected, probs
    u = (expected - w.min()) / (w.max() - w.min())
    if shift is not None:
        u = (u + shift.to(u.dtype)).clamp(0.0, 1.0)
    return scale.min + u * (scale.max - scale.min), probs


def soft_targets(scores: torch.Tensor, scale: Scale) -> torch.Tensor:
    """Scores on ``scale`` -> ``(N, K)`` level distributions whose expectation is the score (linear interpolation
    between the two nearest levels), the training target for the cross-entropy term."""
    w = torch.tensor(LEVEL_WEIGHTS, dtype=torch.float32, device=scores.device)
    u = ((scores.float() - scale.min) / (scale.max - scale.min)).clamp(0.0, 1.0)
    t = w.min() + u * (w.max() - w.min())  # position on the level axis
    k = len(w)
    idx = torch.searchsorted(w, t.contiguous(), right=True).clamp(1, k - 1)  # upper neighbour
    lo, hi = w[idx - 1], w[idx]
    frac = ((t - lo) / (hi - lo)).clamp(0.0, 1.0)
    out = torch.zeros(*scores.shape, k, device=scores.device)
    out.scatter_(-1, (idx - 1).unsqueeze(-1), (1 - frac).unsqueeze(-1))
    out.scatter_add_(-1, idx.unsqueeze(-1), frac.unsqueeze(-1))
    return out
