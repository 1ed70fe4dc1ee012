"""Prompt-only baseline: the same frozen LLM, no fusion, told the photo's top ImageNet classes in words.

    from pmllm.baseline import PromptOnly
    base = PromptOnly.create()                       # embedded SmolLM2 + EfficientNet-Lite0
    out = base.score(profile, ["a.jpg", "b.jpg"])   # ScoreOutput(scores, probs), same readout as pmllm

Per user the prefix (template + profile) is computed once; each photo's suffix describes it ("Photo: <image>
(it shows: tabby, Egyptian cat, tiger cat)") followed by the assistant's "It is"; the level-word readout is
:func:`pmllm.readout.readout`. Class names come from ``piaa.data.imagenet_classes()``. Library module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from piaa.data import imagenet_classes
from piaa.schema import PARA_SCALE, Profile, Scale
from pmllm.constants import level_token_ids
from pmllm.hf_llm import cache_tensors, make_cache, output_cache, with_cache
from pmllm.model import ScoreOutput
from pmllm.profile import build_prompt
from pmllm.readout import level_logits, readout


class PromptOnly:
    """Frozen LLM + ImageNet class names in the prompt (no trainable parts)."""

    def __init__(self, llm, tokenizer, encoder, top_k: int = 3):
        if not hasattr(encoder, "classify"):
            raise ValueError(f"the prompt-only baseline needs an ImageNet classifier; {encoder.name} has none")
        self.llm, self.tokenizer, self.encoder, self.top_k = llm, tokenizer, encoder, top_k
        self.level_ids = level_token_ids(tokenizer)
        self.names = imagenet_classes()

    @classmethod
    def create(cls, llm: str = "smollm2-135m-instruct", vision: str = "efficientnet-lite0") -> PromptOnly:
        from piaa.models import create_llm, create_vision_encoder

        model, tok = create_llm(llm)
        return cls(model, tok, create_vision_encoder(vision))

    def _describe_logits(self, logits: torch.Tensor) -> list[str]:
        top = logits.topk(self.top_k, dim=-1).indices.tolist()
        return [", ".join(self.names[i] for i in row) for row in top]

    @torch.no_grad()
    def describe(self, images: Sequence) -> list[str]:
        """Top-k ImageNet class names of each photo (paths or PIL images)."""
        from PIL import Image

        from piaa.images import load_image

        out = []
        for i in range(0, len(images), 32):
            chunk = [im if isinstance(im, Image.Image) else load_image(im, min_side=self.encoder.image_size)
                     for im in images[i : i + 32]]  # fmt: skip
            out += self._describe_logits(self.encoder.classify(self.encoder.preprocess(chunk)))
        return out

    @torch.no_grad()
    def describe_tokens(self, tokens: torch.Tensor) -> list[str]:
        """Same as :meth:`describe` from cached EfficientNet-Lite0 tokens ``(N, 49, 1280)`` (classifier on the
        average-pooled tokens, exactly what ``classify`` computes in eval mode)."""
        net = self.encoder.net
        return self._describe_logits(net._fc(tokens.float().mean(dim=1)))

    @torch.no_grad()
    def score_descriptions(self, profile: Profile, descriptions: Sequence[str], *, scale: Scale = PARA_SCALE,
                           batch_size: int = 32) -> ScoreOutput:  # fmt: skip
        if not descriptions:
            return ScoreOutput(np.empty(0), np.empty((0, len(self.level_ids))))
        unique = sorted(set(descriptions))  # photos with the same description share one suffix computation
        prompts = [build_prompt(self.tokenizer, profile, image_text=d) for d in unique]
        prefix = prompts[0].prefix
        ids = torch.tensor([prefix])
        kv = cache_tensors(output_cache(self.llm.get_decoder()(input_ids=ids, use_cache=True)))
        groups: dict[int, list[int]] = defaultdict(list)
        for i, p in enumerate(prompts):
            groups[len(p.suffix)].append(i)
        logits = torch.empty(len(prompts), len(self.level_ids))
        for length, idx in groups.items():
            for s in range(0, len(idx), batch_size):
                part = idx[s : s + batch_size]
                suffix = torch.tensor([prompts[i].suffix for i in part])
                pos = torch.arange(len(prefix), len(prefix) + length).expand(len(part), length)
                decoder = self.llm.get_decoder()
                out = decoder(input_ids=suffix, position_ids=pos, use_cache=True,
                              **with_cache(decoder, make_cache(kv, len(part))))  # fmt: skip
                logits[part] = level_logits(self.llm, out.last_hidden_state[:, -1], self.level_ids).float().cpu()
        where = {d: i for i, d in enumerate(unique)}
        scores, probs = readout(logits[[where[d] for d in descriptions]], scale)
        return ScoreOutput(scores.double().numpy(), probs.double().numpy())

    def score(self, profile: Profile, images: Sequence, *, scale: Scale = PARA_SCALE) -> ScoreOutput:
        return self.score_descriptions(profile, self.describe(images), scale=scale)
