"""A PMLLM checkpoint's config: :class:`PMLLMConfig`, saved as ``pmllm_config.json`` next to
``fusion_model.safetensors`` (the trainable parts; :meth:`pmllm.model.PMLLM.save_pretrained` /
:meth:`~pmllm.model.PMLLM.from_pretrained`), and the file names. Unknown keys are refused, as for every config
(:mod:`piaa.config`). Library module, no entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default"
CONFIG_NAME = "pmllm_config.json"
WEIGHTS_NAME = "fusion_model.safetensors"
TRAINABLE_PREFIXES = ("projector.", "profile_proj.", "fusions.", "personal.")
PERSONAL_INPUTS = ("pooled", "fields", "fields+text")


@dataclass
class PMLLMConfig:
    llm: str = "smollm2-135m-instruct"
    vision: str = "efficientnet-lite0"
    fusion_layers: list[int] | None = None  # None -> about 73%, 83%, 93% of the depth (22, 25, 28 of 30)
    d_attn: int = 256
    n_heads: int = 4
    d_profile: int = 64
    lora_r: int = 0  # 0 = LLM fully frozen (default)
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    personal_rank: int = 0  # >0: a bilinear profile x photo score term (pmllm.fusion.PersonalHead); 0 = none
    personal_input: str = "pooled"  # "pooled": the LLM's pooled profile state; "fields": encoded structured fields;
    # "fields+text": those fields and the free text's taste code (pmllm.taste_text), concatenated
    personal_vocab: dict[str, list] = field(default_factory=dict)  # "fields" modes: pmllm.fusion.encode_fields
    text_encoder: str = "all-minilm-l6-v2"  # "fields+text": sentence encoder (piaa.models.create_text_encoder)
    text_polarity: list[float] = field(default_factory=lambda: [0.0, 1.0])  # "fields+text": LLM polarity centre, scale
    text_weight: float = 1.0  # "fields+text": multiplier of the taste code in the head's input
    # "fields+text": the taste code read off the photo through frozen knowledge (pmllm.grounding); {} = off, else
    # {"weights": [subject, property], "centre"/"scale": [per concept, then the face and entropy readings]}
    # (pmllm.train_personal)
    grounding: dict[str, list[float]] = field(default_factory=dict)
    # the gates' profile code (pmllm.fusion.ProfileProjector): {} and False = the pooled LLM state alone; else the
    # structured fields encoded with this vocabulary (pmllm.fusion.encode_fields) [+ the free text's taste code]
    gate_vocab: dict[str, list] = field(default_factory=dict)
    gate_text: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # provenance (what it was trained on, command, ...)

    @classmethod
    def from_dict(cls, d: dict, source: str = CONFIG_NAME) -> PMLLMConfig:
        """Unknown keys are refused (naming ``source``), as for every config (``piaa.config``)."""
        from piaa.config import config_from_dict

        return config_from_dict(cls, d, source)
