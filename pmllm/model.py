"""PMLLM: a frozen causal LM + a frozen vision encoder + trainable projector and selective fusion modules.

Scoring one user's photos::

    from pmllm.model import PMLLM
    model = PMLLM.from_pretrained()                     # the committed default: embedded SmolLM2 + EfficientNet-Lite0
    out = model.score(["a.jpg", "b.jpg"], profile=Profile(text="I love moody night streets"))
    out.scores, out.details["probs"]                                    # PARA scale 1-5, level probabilities

How it runs: the chat-templated profile prefix goes through the frozen LLM once per user; its keys/values and the
pooled profile representation are cached (LRU). Each photo is a short suffix (~13 tokens) scored in a batch
against the prefix cache expanded over the batch. Fusion modules, attached with forward hooks to configurable
decoder layers, act only on positions after the profile and cross-attend to the photo's projected visual tokens;
the answer position's level-word logits go through :func:`pmllm.readout.readout`. ``cached=False`` runs the
naive path (prefix + suffix for every photo, no cache) and gives the same scores (tested to 1e-4).

Checkpoints hold only the trainable parts (projector, profile projector, fusion modules, LoRA adapters if any):
``pmllm_config.json`` (:class:`pmllm.config.PMLLMConfig`) + ``fusion_model.safetensors`` (+
``grounding.safetensors``: the class-to-concept assignment of a grounded checkpoint and the reader's concept-phrase
embeddings, so that neither is re-encoded at load). Library module, no entry point (see ``pmllm.train``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from piaa.schema import PARA_SCALE, Profile, Scale
from piaa.scoring import ScoreResult
from pmllm.config import (
    CONFIG_NAME,
    DEFAULT_CHECKPOINT,
    PERSONAL_INPUTS,
    TRAINABLE_PREFIXES,
    WEIGHTS_NAME,
    PMLLMConfig,
)
from pmllm.constants import MAX_TEXT_CHARS, TASTE_CONCEPTS, level_token_ids
from pmllm.fusion import PersonalHead, ProfileProjector, SelectiveFusion, VisualProjector, encode_fields
from pmllm.hf_llm import cache_tensors, decoder_layers, make_cache, output_cache, with_cache
from pmllm.profile import PromptIds, build_prompt, sanitize
from pmllm.readout import level_logits, readout


@dataclass
class PrefixState:
    """One user's cached prefix: per-layer (key, value) tensors ``(1, heads, P, dim)`` and the pooled profile."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    pooled: torch.Tensor  # (1, d_model)
    length: int


@dataclass
class ProfileCode:
    """One profile, cleaned, rendered and read once (:meth:`PMLLM.encode_profile`): the prompt the LLM reads, the
    free text as the prompt shows it, what the reader made of it, and the personal head's input vector."""

    prompt: PromptIds
    text: str  # the free text as the prompt shows it (sanitised, cut to MAX_TEXT_CHARS); "" without text
    reading: Any  # pmllm.taste_text.TasteReading, or None where the checkpoint does not read free text / no text
    vector: torch.Tensor | None  # (1, n) head input of a "fields"/"fields+text" checkpoint; None for "pooled"
    gate: torch.Tensor | None = None  # (1, d_code) the gates' profile code; None where the gates see only the LLM

    @property
    def taste(self) -> torch.Tensor | None:
        """``(1, len(TASTE_CONCEPTS))`` taste code of the free text, or None where nothing was read."""
        return None if self.reading is None else self.reading.code[None]

    def what_i_read(self) -> list[str]:
        """What the model used from the free text (and what it could not use), one line per clause."""
        return [] if self.reading is None else self.reading.summary()


@dataclass
class ScoreOutput:
    scores: np.ndarray  # (N,) on the requested scale
    probs: np.ndarray  # (N, K) level-word probabilities
    # (N,) what the free text alone says of each photo (:meth:`PMLLM.stated_taste`); None where nothing was read
    words: np.ndarray | None = None


@dataclass
class _Ctx:
    visual: torch.Tensor | None = None  # projected visual tokens (B, M, D)
    pooled: torch.Tensor | None = None  # pooled profile hidden state (1 or B, D)
    span: tuple[int, int] | None = None  # profile tokens inside the current sequence (capture pooled)
    fuse_from: int = 0  # first position the fusion modules act on
    expand_to: int = 0  # >0: the batch-1 suffix is expanded to this many photos at the first fusion layer
    profile: torch.Tensor | None = None  # projected profile code, computed lazily
    code: torch.Tensor | None = None  # (1, d_code) the gates' profile code (ProfileCode.gate), if they read one


def _hidden(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


class PMLLM(nn.Module):
    """Frozen LLM + frozen vision encoder + trainable profile-aware selective fusion. See the module docstring."""

    def __init__(self, config: PMLLMConfig | None = None, *, llm=None, tokenizer=None, encoder=None,
                 quantization: str | None = None, prefix_cache_size: int = 64):  # fmt: skip
        super().__init__()
        from piaa.models import create_llm, create_vision_encoder

        self.config = config = config or PMLLMConfig()
        if llm is None:
            llm, tokenizer = create_llm(config.llm, quantization=quantization)
        if tokenizer is None:
            raise ValueError("a tokenizer is required with a given llm")
        self.llm, self.tokenizer = llm, tokenizer
        self.encoder = encoder if encoder is not None else create_vision_encoder(config.vision)
        for p in list(self.llm.parameters()) + list(self.encoder.parameters()):
            p.requires_grad_(False)
        text_cfg = llm.config.get_text_config() if hasattr(llm.config, "get_text_config") else llm.config
        d_model = int(text_cfg.hidden_size)
        layers = decoder_layers(llm)
        n = len(layers)
        if config.fusion_layers is None:
            config.fusion_layers = sorted({min(n - 1, max(0, round(n * f))) for f in (0.73, 0.83, 0.93)})
        bad = [i for i in config.fusion_layers if not 0 <= i < n]
        if bad or not config.fusion_layers:
            raise ValueError(f"fusion_layers {config.fusion_layers} invalid for an LLM with {n} decoder layers")
        config.fusion_layers = sorted(int(i) for i in config.fusion_layers)
        self.level_ids = level_token_ids(tokenizer)
        self.projector = VisualProjector(self.encoder.token_dim, d_model)
        self.profile_proj = ProfileProjector(d_model, config.d_profile, self.gate_code_dim)
        self.fusions = nn.ModuleDict(
            {str(i): SelectiveFusion(d_model, config.d_profile, config.d_attn, config.n_heads)
             for i in config.fusion_layers}
        )  # fmt: skip
        self.personal = None
        if config.personal_rank:
            if config.personal_input not in PERSONAL_INPUTS:
                raise ValueError(f"personal_input must be one of {PERSONAL_INPUTS}, got {config.personal_input!r}")
            fields_mode = config.personal_input != "pooled"
            d_in = len(encode_fields(Profile(), config.personal_vocab)[0]) if fields_mode else d_model
            d_in += len(TASTE_CONCEPTS) if config.personal_input == "fields+text" else 0
            self.personal = PersonalHead(d_in, self.encoder.token_dim, config.personal_rank,
                                         norm_profile=not fields_mode)  # fmt: skip
        if config.lora_r:
            self._attach_lora()
        self._ctx: _Ctx | None = None
        self._head_kv: tuple[tuple, list] | None = None
        self._prefix_cache: OrderedDict[tuple, PrefixState] = OrderedDict()
        self._prefix_cache_size = prefix_cache_size
        self._reader = None  # pmllm.taste_text.TasteReader, built on first use ("fields+text" mode)
        self._hooks = [layers[config.fusion_layers[0]].register_forward_pre_hook(self._capture, with_kwargs=True)]
        for i in config.fusion_layers:
            self._hooks.append(layers[i].register_forward_hook(self._make_fuse_hook(str(i))))
        dev = next(llm.parameters()).device
        if not quantization:
            self.to(dev)
        else:  # the quantized LLM stays where bitsandbytes put it
            for m in (self.encoder, self.projector, self.profile_proj, self.fusions, self.personal):
                if m is not None:
                    m.to(dev)
        self.eval()

    # ------------------------------------------------------------------------------------------- plumbing
    def _attach_lora(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        cfg = LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha, lora_dropout=0.0,
                         target_modules=list(self.config.lora_targets))  # fmt: skip
        inject_adapter_in_model(cfg, self.llm)
        for name, p in self.llm.named_parameters():
            p.requires_grad_("lora_" in name)

    def _capture(self, module, args, kwargs):
        """Pre-hook of the first fusion layer: pool the profile, and/or fan the shared suffix out to N photos."""
        ctx = self._ctx
        if ctx is None:
            return None
        if ctx.span is not None:
            a, b = ctx.span
            ctx.pooled = _hidden(args, kwargs)[:, a:b].mean(dim=1)
        if ctx.expand_to:
            h = _hidden(args, kwargs).expand(ctx.expand_to, -1, -1)
            if args:
                return (h, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": h}
        return None

    def _make_fuse_hook(self, key: str):
        def hook(module, args, output):
            ctx = self._ctx
            if ctx is None or ctx.visual is None:
                return None
            h = output[0] if isinstance(output, tuple) else output
            if ctx.profile is None:
                if ctx.pooled is None:
                    raise RuntimeError("fusion needs the profile representation; none was captured")
                ctx.profile = self.profile_proj(ctx.pooled, ctx.code).expand(h.shape[0], -1)
            s = ctx.fuse_from
            fused = self.fusions[key](h[:, s:], ctx.visual, ctx.profile)
            h = torch.cat([h[:, :s], fused], dim=1) if s else fused
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    @contextlib.contextmanager
    def _context(self, ctx: _Ctx):
        prev, self._ctx = self._ctx, ctx
        try:
            yield ctx
        finally:
            self._ctx = prev

    def forget_users(self) -> None:
        """Drop every per-user cache (profile prefixes, free-text readings); the next call reads each user anew."""
        self._prefix_cache.clear()
        if self._reader is not None:
            self._reader.forget()

    def train(self, mode: bool = True) -> PMLLM:
        super().train(mode)
        self.llm.eval()  # frozen parts never switch dropout/batch-norm to training behaviour
        self.encoder.eval()
        self._prefix_cache.clear()
        self._head_kv = None
        if self._reader is not None and self.config.lora_r:  # LoRA adapters change what the LLM reads: anew
            self._reader.forget(head=True)
        return self

    @property
    def device(self) -> torch.device:
        return self.projector.fc1.weight.device

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if n.startswith(TRAINABLE_PREFIXES) or "lora_" in n}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.trainable_state_dict().values())

    # -------------------------------------------------------------------------------------------- forward
    def prompt(self, profile: Profile) -> PromptIds:
        return build_prompt(self.tokenizer, profile)

    def _head(self, prompt: PromptIds) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Keys/values of the fixed chat-template head before the profile (same for every user), cached once (again
        for a moved or cast LLM)."""
        n = prompt.span[0]
        if n == 0:
            return 0, None
        param = next(self.llm.parameters())
        key = (tuple(prompt.prefix[:n]), param.device, param.dtype)
        if self._head_kv is None or self._head_kv[0] != key or torch.is_grad_enabled():
            ids = torch.tensor([list(key[0])], device=self.device)
            out = self.llm.get_decoder()(input_ids=ids, use_cache=True)
            kv = cache_tensors(output_cache(out))
            if torch.is_grad_enabled():  # LoRA training: the head changes with the adapters, do not cache it
                return n, kv
            self._head_kv = (key, kv)
        return n, self._head_kv[1]

    def encode_prefix(self, prompt: PromptIds) -> PrefixState:
        """Run the profile prefix through the LLM once: cached keys/values + pooled profile representation.

        The template head before the profile is identical for all users and is itself computed only once.
        """
        n, head = self._head(prompt)
        ids = torch.tensor([prompt.prefix[n:]], device=self.device)
        pos = torch.arange(n, len(prompt.prefix), device=self.device).unsqueeze(0)
        cache = make_cache(head, 1) if head is not None else None
        with self._context(_Ctx(span=(prompt.span[0] - n, prompt.span[1] - n))) as ctx:
            decoder = self.llm.get_decoder()
            out = decoder(input_ids=ids, position_ids=pos, use_cache=True, **with_cache(decoder, cache))
        return PrefixState(cache_tensors(output_cache(out)), ctx.pooled, len(prompt.prefix))

    def prefix_state(self, prompt: PromptIds) -> PrefixState:
        """:meth:`encode_prefix` with an LRU cache (inference only: training and LoRA change the prefix)."""
        if self.training or torch.is_grad_enabled():
            return self.encode_prefix(prompt)
        key = (tuple(prompt.prefix), prompt.span)
        if key in self._prefix_cache:
            self._prefix_cache.move_to_end(key)
            return self._prefix_cache[key]
        state = self.encode_prefix(prompt)
        self._prefix_cache[key] = state
        while len(self._prefix_cache) > self._prefix_cache_size:
            self._prefix_cache.popitem(last=False)
        return state

    def level_logits_cached(self, state: PrefixState, suffix: list[int], tokens: torch.Tensor,
                            code: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Level logits ``(N, K)`` for N photos (frozen visual tokens ``(N, M, d_visual)``) against one prefix
        (``code``: the gates' profile code, :attr:`ProfileCode.gate`, where they read one).

        The suffix is identical for every photo until the first fusion layer, so the layers below it run once
        (batch 1) and the hidden states fan out to N photos there; the prefix cache is expanded (as views) only
        for the layers from the first fusion layer up.
        """
        n, s = tokens.shape[0], len(suffix)
        visual = self.projector(tokens.to(self.device))
        ids = torch.tensor([suffix], device=self.device)
        pos = torch.arange(state.length, state.length + s, device=self.device).unsqueeze(0)
        first = self.config.fusion_layers[0]
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (k, v) in enumerate(state.kv):
            b = n if i >= first else 1
            cache.update(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1), i)
        decoder = self.llm.get_decoder()
        with self._context(_Ctx(visual=visual, pooled=state.pooled, fuse_from=0, expand_to=n, code=code)):
            out = decoder(input_ids=ids, position_ids=pos, use_cache=True, **with_cache(decoder, cache))
        return level_logits(self.llm, out.last_hidden_state[:, -1], self.level_ids)

    def level_logits_naive(self, prompt: PromptIds, tokens: torch.Tensor, *, with_pooled: bool = False,
                           code: torch.Tensor | None = None):  # fmt: skip
        """Same as :meth:`level_logits_cached` without any cache: the whole prompt for every photo.

        ``with_pooled=True`` returns ``(logits, pooled profile representation)``.
        """
        n = tokens.shape[0]
        visual = self.projector(tokens.to(self.device))
        ids = torch.tensor(prompt.prefix + prompt.suffix, device=self.device).expand(n, -1)
        with self._context(_Ctx(visual=visual, span=prompt.span, fuse_from=len(prompt.prefix), code=code)) as ctx:
            out = self.llm.get_decoder()(input_ids=ids, use_cache=False)
        logits = level_logits(self.llm, out.last_hidden_state[:, -1], self.level_ids)
        return (logits, ctx.pooled) if with_pooled else logits

    def personal_delta(self, pooled: torch.Tensor, tokens: torch.Tensor, profile: Profile | ProfileCode | None = None,
                       stats: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """``(shift, words)``: the personal shift ``(N,)`` of the normalised expected level (the bilinear head's,
        plus the grounded term of the free text where the config has one; ``stats``: the photos'
        :func:`pmllm.grounding.grounding_stats` rows, for the property concepts and the face reading), and that
        grounded term alone (:meth:`stated_taste`; None where there is none). Zeros and None without a head.
        ``profile``: a :class:`ProfileCode` (or a profile, encoded here)."""
        if self.personal is None:
            return torch.zeros(tokens.shape[0], device=self.device), None
        code = profile if isinstance(profile, ProfileCode) else self.encode_profile(profile or Profile())
        delta = self.personal((pooled if code.vector is None else code.vector).to(self.device),
                              tokens.to(self.device).float().mean(1))  # fmt: skip
        words = self.stated_taste(code, tokens, stats)
        return (delta, None) if words is None else (delta + words.to(delta), words)

    def stated_taste(self, code: ProfileCode, tokens: torch.Tensor, stats: np.ndarray | None = None
                     ) -> torch.Tensor | None:  # fmt: skip
        """``(N,)`` the grounded term of the free text alone: the taste code read from the words times each
        photo's measured evidence of those concepts (:func:`pmllm.grounding.grounded_shift`), without the
        population's taste or the learned head. None where the checkpoint has no grounding or nothing was read."""
        taste = code.taste
        if not self.config.grounding or taste is None or not bool(taste.any()):
            return None
        from pmllm.grounding import grounded_shift

        return grounded_shift(taste, self.photo_evidence(tokens, stats), self.config.grounding["weights"])

    def photo_evidence(self, tokens: torch.Tensor, stats: np.ndarray | None = None) -> torch.Tensor:
        """Standardised per-concept evidence ``(N, len(TASTE_CONCEPTS))`` of photos (:mod:`pmllm.grounding`)."""
        from pmllm.grounding import raw_evidence, standardise

        g = self.config.grounding
        raw = raw_evidence(self.encoder.class_logits(tokens), self.class_assignment, stats, tokens.shape[0])
        return standardise(raw, g["centre"], g["scale"])

    @property
    def class_assignment(self) -> torch.Tensor:
        """ImageNet class names' soft assignment to the subject concepts (:func:`pmllm.grounding.class_assignment`,
        the reader's sentence encoder): loaded with the checkpoint (``grounding.safetensors``), else computed once."""
        if self.__dict__.get("_class_assign") is None:
            from piaa.data import imagenet_classes
            from pmllm.grounding import class_assignment

            self.__dict__["_class_assign"] = class_assignment(self.reader.encoder, imagenet_classes())
        return self.__dict__["_class_assign"]

    @property
    def reader(self):
        """The free-text :class:`pmllm.taste_text.TasteReader` (frozen LLM + frozen sentence encoder)."""
        if self._reader is None:
            from piaa.models import create_text_encoder
            from pmllm.taste_text import TasteReader

            centre, scale = self.config.text_polarity
            encoder = create_text_encoder(self.config.text_encoder, device=str(self.device))
            self._reader = TasteReader(self.llm, self.tokenizer, encoder, centre=centre, scale=scale,
                                       concepts=self.__dict__.get("_concept_emb"))  # fmt: skip
        return self._reader

    @property
    def reads_text(self) -> bool:
        """Whether this checkpoint reads the free text (a ``personal_input="fields+text"`` head, or gates that see
        the taste code): the one place that asks."""
        head = self.personal is not None and self.config.personal_input == "fields+text"
        return head or self.config.gate_text

    @property
    def gate_code_dim(self) -> int:
        """Length of the gates' profile code (0: the gates see only the pooled LLM state)."""
        cfg = self.config
        if not (cfg.gate_vocab or cfg.gate_text):
            return 0
        return len(encode_fields(Profile(), cfg.gate_vocab)[0]) + (len(TASTE_CONCEPTS) if cfg.gate_text else 0)

    def encode_profile(self, profile: Profile) -> ProfileCode:
        """The one profile encoder: the prompt, the free text as the prompt shows it, the reader's reading of it,
        and the personal head's input (encoded fields [+ text weight x taste code]; None for a "pooled" head)."""
        text = self.prompt_text(profile) if profile.text else ""
        reading = self.reader.read(text) if self.reads_text and text else None
        taste = reading.code[None] if reading is not None else torch.zeros(1, len(TASTE_CONCEPTS))
        vector = gate = None
        if self.personal is not None and self.config.personal_input != "pooled":
            vector = encode_fields(profile, self.config.personal_vocab)
            if self.config.personal_input == "fields+text":
                vector = torch.cat([vector, self.config.text_weight * taste], dim=1)
        if self.gate_code_dim:
            gate = encode_fields(profile, self.config.gate_vocab)
            gate = torch.cat([gate, taste], dim=1) if self.config.gate_text else gate
            gate = gate.to(self.device)
        return ProfileCode(self.prompt(profile), text, reading, vector, gate)

    def prompt_text(self, profile: Profile) -> str:
        """The free text exactly as the prompt shows it (sanitised, cut to ``MAX_TEXT_CHARS``)."""
        special = tuple(getattr(self.tokenizer, "all_special_tokens", ()) or ())
        return sanitize(profile.text or "", MAX_TEXT_CHARS, special)

    def forward(self, prompt: PromptIds, tokens: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """Training forward: level logits ``(N, K)`` for one user's prompt and N photos' frozen visual tokens
        (``code``: the gates' profile code, :attr:`ProfileCode.gate`, where they read one)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(self.config.lora_r)):
            state = self.encode_prefix(prompt)
        return self.level_logits_cached(state, prompt.suffix, tokens, code)

    # ------------------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def prepare(self) -> PMLLM:
        """Do now most of the one-off work of the first scoring call (~0.5 s of the embedded default's on 2 cores): run
        the chat template's head before the profile, whose keys/values every later call reuses; where the model reads
        free text, load the reader and run its few-shot head; build the vision encoder's inference copy. Returns the
        model. (The first call still pays its first sentence encoding and first forwards at new shapes.)"""
        self._head(self.prompt(Profile(text="I like photos.")))
        if self.reads_text:
            self.reader.prepare()
        self.inference_encoder()
        return self

    def inference_encoder(self):
        """The frozen encoder's fast inference copy (:meth:`piaa.vision.VisionEncoder.for_inference`), built once.

        Lite0: BatchNorm folded, channels-last; same tokens to ~1e-4. Kept outside the module tree, so
        ``self.encoder``, ``state_dict`` and checkpoints see the weights as loaded. Rebuilt if the encoder moves.
        """
        param = next(self.encoder.parameters(), None)
        key = (id(self.encoder), param.device if param is not None else None)
        cached = self.__dict__.get("_fast_encoder")
        if cached is None or cached[0] != key:
            cached = (key, self.encoder.for_inference())
            object.__setattr__(self, "_fast_encoder", cached)  # not a submodule: no state_dict entries
        return cached[1]

    @torch.no_grad()
    def visual_tokens(self, images: Sequence, batch_size: int = 32,
                      errors: dict[int, str] | None = None) -> torch.Tensor:  # fmt: skip
        """Frozen visual tokens ``(N, M, d_visual)`` for paths / PIL images, through piaa's one fast image path.

        :func:`piaa.features.iter_encoded`: threaded reduced-size decoding (``piaa.images``) overlapping the
        encoder's :meth:`inference_encoder` copy (same tokens as ``self.encoder`` to ~1e-4).
        """
        from piaa.features import iter_encoded

        enc = self.inference_encoder()
        out = [res.tokens.float() for _, res in iter_encoded(enc, list(images), batch_size, device=self.device,
                                                             errors=errors)]  # fmt: skip
        return torch.cat(out) if out else torch.empty(0, self.encoder.num_tokens, self.encoder.token_dim)

    @torch.no_grad()
    def score_tokens(self, profile: Profile, tokens: torch.Tensor, *, scale: Scale = PARA_SCALE, cached: bool = True,
                     batch_size: int = 32, stats: np.ndarray | None = None) -> ScoreOutput:  # fmt: skip
        """Scores for precomputed frozen visual tokens ``(N, M, d_visual)``; ``stats``: the same photos'
        :func:`pmllm.grounding.grounding_stats` rows (photo statistics and face share: the property concepts' and
        the face reading's grounded evidence; without them those have none; photo_stats rows: no face reading)."""
        code = self.encode_profile(profile)
        prompt = code.prompt
        state = self.prefix_state(prompt) if cached else None
        logits, deltas, words = [], [], []
        for i in range(0, tokens.shape[0], batch_size):
            t = tokens[i : i + batch_size]
            if cached:
                logits.append(self.level_logits_cached(state, prompt.suffix, t, code.gate))
                pooled = state.pooled
            else:
                lg, pooled = self.level_logits_naive(prompt, t, with_pooled=True, code=code.gate)
                logits.append(lg)
            st = None if stats is None else stats[i : i + batch_size]
            delta, stated = self.personal_delta(pooled, t, code, st)
            deltas.append(delta)
            words.append(stated)
        if not logits:
            return ScoreOutput(np.empty(0), np.empty((0, len(self.level_ids))))
        scores, probs = readout(torch.cat(logits), scale, shift=torch.cat(deltas))  # shift: exact 0 when untrained
        stated = None if any(w is None for w in words) else torch.cat(words).cpu().double().numpy()
        return ScoreOutput(scores.cpu().double().numpy(), probs.cpu().double().numpy(), stated)

    @torch.no_grad()
    def score(self, images: Sequence, *, profile: Profile | None = None, user=None, scale: Scale | None = None,
              on_error: str = "skip", cached: bool = True, batch_size: int = 32,
              stats: np.ndarray | None = None) -> ScoreResult:  # fmt: skip
        """Score photos (paths or PIL images) for the user described by ``profile`` (the contract of
        :mod:`piaa.scoring`). A saved ``user`` that carries a profile stands in for a missing ``profile``.

        Scores are on ``scale`` (default PARA's 1-5, step 0.5; the readout is bounded to the scale); ``details``
        holds the level probabilities ``probs`` (scored images x levels) and, where the free text was read,
        ``words`` (:meth:`stated_taste` of the scored images: what the text alone says). ``on_error="skip"`` scores the
        decodable images and reports each other one in ``errors``; ``"raise"`` raises on the first. With a ``user``
        and no ``scale``, the scores are on the scale the user rated on. ``stats``: the images'
        :func:`pmllm.grounding.grounding_stats` rows (one per image), where the caller already measured them.
        """
        from piaa.scoring import assemble, check_on_error

        errors: dict[int, str] | None = {} if check_on_error(on_error) == "skip" else None
        if profile is None:
            profile = getattr(user, "profile", None) or Profile()
        scale = scale or getattr(user, "scale", None) or PARA_SCALE
        tokens = self.visual_tokens(images, batch_size, errors=errors)
        good = [i for i in range(len(images)) if not errors or i not in errors]
        if not (self.config.grounding and self.reads_text and profile.text):  # the grounded term's pixel evidence
            stats = None
        elif stats is not None:
            if len(stats) != len(images):
                raise ValueError(f"stats: {len(stats)} rows for {len(images)} images")
            stats = np.asarray(stats, dtype=np.float64)[good]
        else:
            from pmllm.grounding import grounding_stats

            stats = grounding_stats([images[i] for i in good], errors={})
        out = self.score_tokens(profile, tokens, scale=scale, cached=cached, batch_size=batch_size, stats=stats)
        details = {"probs": out.probs} if out.words is None else {"probs": out.probs, "words": out.words}
        return assemble(len(images), good, out.scores, scale, list(images), errors or {}, details)

    # ------------------------------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``pmllm_config.json`` + ``fusion_model.safetensors`` (trainable parts only)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state_dict().items()}
        save_file(tensors, str(path / WEIGHTS_NAME), metadata={"format": "pt"})
        (path / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        if self.config.grounding:  # saved, so that scoring never re-encodes the 1000 class names or the concepts
            from pmllm.grounding import concepts_key, save_extras

            concepts = self.reader.concepts if self.reads_text else None
            save_extras(path, self.class_assignment, concepts, concepts_key(self.config.text_encoder))
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, llm=None, tokenizer=None, encoder=None,
                        quantization: str | None = None) -> PMLLM:  # fmt: skip
        """Load a checkpoint written by :meth:`save_pretrained` (frozen models resolved by name unless given);
        no ``path``: the committed default (:data:`DEFAULT_CHECKPOINT`)."""
        from safetensors.torch import load_file

        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name}: missing (a pmllm checkpoint holds {CONFIG_NAME} and "
                                        f"{WEIGHTS_NAME})")  # fmt: skip
        from piaa.config import load_config

        config = load_config(PMLLMConfig, path / CONFIG_NAME)
        model = cls(config, llm=llm, tokenizer=tokenizer, encoder=encoder, quantization=quantization)
        state = load_file(str(path / WEIGHTS_NAME))
        expected = model.trainable_state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"{path / WEIGHTS_NAME}: does not match the config (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")  # fmt: skip
        with torch.no_grad():
            for k, p in expected.items():
                if p.shape != state[k].shape:
                    raise ValueError(f"{path / WEIGHTS_NAME}: {k} has shape {tuple(state[k].shape)}, "
                                     f"expected {tuple(p.shape)}")  # fmt: skip
                p.copy_(state[k].to(p.dtype))
        if config.grounding:
            from pmllm.grounding import concepts_key, load_extras

            extras = load_extras(path, concepts_key(config.text_encoder))
            if extras is not None:  # else the assignment is computed on first use, the phrases encoded
                model.__dict__["_class_assign"], model.__dict__["_concept_emb"] = extras
        return model
