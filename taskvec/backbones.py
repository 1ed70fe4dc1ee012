"""Image-scoring backbones behind one registry: a frozen trunk, a fine-tuned tail and a K-bin score head.

Every task model is ``head(tail(trunk(pixels)))``. Only the tail and head are fine-tuned, so

* task vectors hold only tail + head tensors (compact: "only tensors that fine-tuning changes");
* the trunk is identical in theta_0, every task model and every merged user model, so its output is computed once
  per image and cached (:meth:`ScoringModel.trunk_features`) for fine-tuning, per-user fitting and scoring.

Registry (``BACKBONES``, :func:`create_backbone`, :func:`list_backbones`):

* ``efficientnet-lite0`` (embedded default, real ImageNet weights from piaa): trunk = stem + MBConv blocks,
  tail = the last ``tail`` MBConv blocks (default 0) + the 1x1 ``conv_head`` (320->1280) + its BatchNorm. With
  ``tail=0`` the tail's first op is linear in its weight, which the fast per-user recipe exploits.
* ``clip-vit-b16`` / ``clip-vit-l14`` (``openai/clip-vit-base-patch16`` / ``-large-patch14``) and any local
  CLIP/SigLIP directory: trunk = patch embeddings + all but the last ``tail`` (default 2) transformer layers, tail =
  those layers + the final LayerNorm on the CLS token. Weights come from a local dir or the HF cache (piaa).

BatchNorm always uses its frozen running statistics (eval-mode BN, also while fine-tuning: small data).
Library module, no entry point.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from taskvec.head import ScoreHead


@dataclass
class BackboneConfig:
    name: str = "efficientnet-lite0"  # registry name, local directory or HF id
    tail: int | None = None  # lite0: extra MBConv blocks before conv_head (default 0); CLIP: last layers (default 2)
    image_size: int | None = None  # input resolution; None = the encoder's own (224 for lite0)
    head_bins: int = 10
    head_hidden: int = 256
    head_dropout: float = 0.1
    head_seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "backbone config") -> BackboneConfig:
        """Unknown keys are refused (naming ``source``), as for every config (``piaa.config``)."""
        from piaa.config import config_from_dict

        return config_from_dict(cls, d, source)


# ------------------------------------------------------------------------------------------- EfficientNet
class LiteTrunk(nn.Module):
    def __init__(self, net, n_blocks: int):
        super().__init__()
        self._conv_stem, self._bn0 = net._conv_stem, net._bn0
        self._blocks = nn.ModuleList(list(net._blocks)[:n_blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return x


def _tokens(h: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B * H * W, C) float32, contiguous: a 1x1 conv on it is one 2-D GEMM."""
    return h.flatten(2).transpose(1, 2).reshape(-1, h.shape[1]).float()


class LiteTail(nn.Module):
    """Trailing MBConv blocks + 1x1 conv_head + BN (frozen stats) + ReLU6 + global average pool -> (B, 1280)."""

    def __init__(self, net, n_blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(list(net._blocks)[len(net._blocks) - n_blocks :] if n_blocks else [])
        self.conv_head, self.bn = net._conv_head, net._bn1
        # the fast recipe caches x @ W for every task's W when the tail starts with this linear op
        self.first_linear = None if n_blocks else "conv_head.weight"

    def first(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) trunk output -> (B, H*W, 1280) output of the 1x1 conv with ``weight`` (linear in it)."""
        return (_tokens(h) @ weight.flatten(1).t().float()).reshape(len(h), -1, weight.shape[0])

    @torch.no_grad()
    def first_stack(self, h: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`first` for each of ``weights`` -> (len(weights), B, H*W, 1280), no gradient: each product is
        written straight into its slice of the result (no second copy of the stack: the per-user cache of the fast
        recipe, built about a fifth faster than by stacking)."""
        tokens = _tokens(h)
        out = torch.empty(len(weights), len(tokens), weights[0].shape[0], dtype=tokens.dtype, device=tokens.device)
        for w, o in zip(weights, out):
            torch.matmul(tokens, w.flatten(1).t().float(), out=o)
        return out.view(len(weights), len(h), -1, weights[0].shape[0])

    def rest(self, y: torch.Tensor) -> torch.Tensor:
        """(B, P, 1280) conv_head output -> pooled (B, 1280): frozen-stat BN, ReLU6, mean over positions."""
        b, p, c = y.shape
        bn = self.bn
        z = F.batch_norm(y.reshape(b * p, c), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return F.relu6(z).reshape(b, p, c).mean(dim=1)

    def bn_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen-statistics BN as ``z = scale * y + shift`` (per channel, differentiable in its weights)."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return scale, bn.bias - bn.running_mean * scale

    def mask_sums(self, stack: torch.Tensor, a: torch.Tensor) -> MaskSums:
        """:class:`MaskSums` of the mix ``stack[0] + sum_t a[t] * stack[1 + t]`` of a (T+1, B, P, 1280) stack of
        :meth:`first` outputs, streamed over the stack once in cache-sized chunks, no gradient."""
        with torch.no_grad():
            scale, shift = self.bn_affine()
            return mask_sums(stack, a, scale, shift)

    def rest_sums(self, sums: MaskSums, a: torch.Tensor) -> torch.Tensor:
        """:meth:`rest` of the mix with coefficients ``a`` from its :class:`MaskSums` taken at ``a`` -> pooled (B,
        1280): ``(scale * (inside[0] + a . inside[1:]) + shift * n + 6 * n_top) / P``. Exact in value, and in its
        derivatives in ``a`` and the BN weights (ReLU6 is linear inside each mask), on (T+1, B, 1280) numbers
        instead of (T+1, B, P, 1280)."""
        scale, shift = self.bn_affine()
        mixed = sums.inside[0] + torch.tensordot(a.to(sums.inside.dtype), sums.inside[1:], dims=1)
        return (scale * mixed + shift * sums.n + 6.0 * sums.n_top) / sums.positions

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            h = blk(h)
        return self.rest(self.first(h, self.conv_head.weight))


class MaskSums(NamedTuple):
    """What the tail's BN + ReLU6 + mean pool keeps of a mix of first-op outputs at one mix, per image and channel:
    ``inside[t]`` the sum of stack slice ``t`` over the positions where the normalised mix ``z`` is in ReLU6's
    linear range (0 < z < 6), ``n`` the count of those positions, ``n_top`` of the clipped ones (z >= 6)."""

    inside: torch.Tensor  # (T+1, B, C)
    n: torch.Tensor  # (B, C)
    n_top: torch.Tensor  # (B, C)
    positions: int


MASK_CHUNK_BYTES = 3 << 20  # stack bytes per chunk in mask_sums: the chunk's mix and products stay in the cache


def mask_sums(stack: torch.Tensor, a: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> MaskSums:
    """:class:`MaskSums` of ``z = scale * (stack[0] + sum_t a[t] * stack[1 + t]) + shift`` (stack (T+1, B, P,
    C)), a chunk of images at a time (no copy of the whole mix)."""
    t1, b, p, c = stack.shape
    inside, n, n_top = stack.new_empty(t1, b, c), stack.new_empty(b, c), stack.new_empty(b, c)
    one = stack.new_ones(())
    step = max(1, MASK_CHUNK_BYTES // (t1 * p * c * stack.element_size()))
    a = a.detach().to(stack.dtype)[None]
    for i in range(0, b, step):
        st = stack[:, i : i + step]
        flat = st.reshape(t1, -1)
        z = torch.addcmul(shift, torch.addmm(flat[:1], a, flat[1:]).view(st.shape[1:]), scale)
        mask = torch.ops.aten.hardtanh_backward(one.expand_as(z), z, 0.0, 6.0)  # 1 where 0 < z < 6, else 0
        torch.sum(mask, 1, out=n[i : i + step])
        torch.sum(z >= 6.0, 1, out=n_top[i : i + step])
        torch.sum(st * mask, 2, out=inside[:, i : i + step])
    return MaskSums(inside, n, n_top, p)


def _lite0(tail: int | None):
    from piaa.models import create_vision_encoder

    enc = create_vision_encoder("efficientnet-lite0", freeze=False)
    n = 0 if tail is None else int(tail)
    total = len(enc.net._blocks)
    if not 0 <= n < total:
        raise ValueError(f"efficientnet-lite0: tail must be in 0..{total - 1} MBConv blocks, got {n}")
    return enc, LiteTrunk(enc.net, total - n), LiteTail(enc.net, n), enc.net.feature_dim


# ------------------------------------------------------------------------------------------------- CLIP
class ViTTrunk(nn.Module):
    def __init__(self, vm, n_layers: int):
        super().__init__()
        self.embeddings, self.pre_layrnorm = vm.embeddings, getattr(vm, "pre_layrnorm", None)
        self.layers = nn.ModuleList(list(vm.encoder.layers)[:n_layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embeddings(x.to(self.embeddings.patch_embedding.weight.dtype))
        if self.pre_layrnorm is not None:
            h = self.pre_layrnorm(h)
        for layer in self.layers:
            h = layer(h, None)
        return h


class ViTTail(nn.Module):
    first_linear = None

    def __init__(self, vm, n_layers: int):
        super().__init__()
        layers = list(vm.encoder.layers)
        self.layers = nn.ModuleList(layers[len(layers) - n_layers :])
        self.post_layernorm = vm.post_layernorm

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h, None)
        return self.post_layernorm(h[:, 0])


def _clip(name: str, tail: int | None):
    from piaa.models import create_vision_encoder

    enc = create_vision_encoder(name, freeze=False)
    vm = getattr(enc.model, "vision_model", enc.model)
    total = len(vm.encoder.layers)
    n = 2 if tail is None else int(tail)
    if not 1 <= n <= total:
        raise ValueError(f"{name}: tail must be 1..{total} transformer layers, got {n}")
    return enc, ViTTrunk(vm, total - n), ViTTail(vm, n), enc.token_dim


BACKBONES: dict[str, Callable] = {
    "efficientnet-lite0": _lite0,
    "clip-vit-b16": lambda tail: _clip("openai/clip-vit-base-patch16", tail),
    "clip-vit-l14": lambda tail: _clip("openai/clip-vit-large-patch14", tail),
}


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


# ------------------------------------------------------------------------------------------- the model
def run_trunk(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The frozen trunk for inference on preprocessed pixels: channels-last memory, CPU micro-batches (the one
    path of :meth:`ScoringModel.trunk_features` and of scoring from files)."""
    from piaa.vision import in_micro_batches

    return in_micro_batches(trunk, x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)


class _TrunkEncoder(nn.Module):
    """Adapter so :func:`piaa.features.encode_images` can cache trunk outputs (``tokens`` = trunk output)."""

    def __init__(self, model: ScoringModel):
        super().__init__()
        self.trunk, self.encoder = model.trunk, model.encoder
        self.name = f"taskvec-trunk-{model.config.name.replace('/', '_')}-{model.trunk_fingerprint()[:12]}"
        self.image_size = model.encoder.image_size

    def prepare(self, image):
        return self.encoder.prepare(image)

    def preprocess(self, images):
        return self.encoder.preprocess(images)

    def forward(self, x: torch.Tensor):
        from piaa.vision import VisionOutput

        h = run_trunk(self.trunk, x)
        return VisionOutput(tokens=h, pooled=h.flatten(1)[:, :1])


def _fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        v = tensors[k].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{k}|{tuple(v.shape)}|".encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()


class ScoringModel(nn.Module):
    """``head(tail(trunk(x)))``; ``forward(x, stage=...)`` enters at ``"pixels"``, ``"trunk"`` or ``"first"``
    (and the fast recipe's ``"sums"`` / ``"mask-sums"``).

    Returns the expected normalised score in [0, 1] (B,), except at ``"mask-sums"`` (the stack's
    :class:`MaskSums`). Only ``tail.*`` and ``head.*`` are trainable.
    """

    def __init__(self, config: BackboneConfig, encoder, trunk: nn.Module, tail: nn.Module, dim: int):
        super().__init__()
        self.config = config
        # owns preprocess(); its modules are shared with trunk/tail, so it is kept out of the module tree
        object.__setattr__(self, "encoder", encoder)
        self.trunk, self.tail = trunk, tail
        self.head = ScoreHead(dim, config.head_bins, config.head_hidden, config.head_dropout, config.head_seed)
        self.trunk.eval().requires_grad_(False)
        self._trunk_fp: str | None = None

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    def train(self, mode: bool = True) -> ScoringModel:
        super().train(mode)
        self.trunk.eval()  # frozen trunk: BN statistics and dropout fixed
        return self

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if n.startswith(("tail.", "head."))]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        params = dict(self.named_parameters())
        return {n: params[n].detach().clone() for n in self.trainable_names()}

    def forward(self, x, stage: str = "pixels", mix: torch.Tensor | None = None):
        """Expected normalised scores (B,) of ``x`` entering at ``stage``: ``"pixels"``, ``"trunk"`` (trunk
        features) or ``"first"`` (the (B, P, C) output of the tail's first linear op; with ``mix`` a (T+1, B, P, C)
        stack of them, mixed as ``x[0] + sum_t mix[t] * x[1 + t]``: the fast recipe's cache). The fast recipe's
        first-order refits also use ``"mask-sums"`` (returns such a stack's :class:`MaskSums` at ``mix``, no
        scores) and ``"sums"`` (scores from those sums, ``x`` as a tuple: :meth:`LiteTail.rest_sums`)."""
        if stage in ("sums", "mask-sums") and mix is None:
            raise ValueError(f"stage {stage!r} needs the mix coefficients (mix=...)")
        if stage == "pixels":
            x = self.trunk(x)
            stage = "trunk"
        if stage == "trunk":
            pooled = self.tail(x)
        elif stage == "first" and mix is None:
            pooled = self.tail.rest(x)
        elif stage == "first":
            pooled = self.tail.rest_sums(self.tail.mask_sums(x, mix), mix)
        elif stage == "sums":
            pooled = self.tail.rest_sums(MaskSums(*x), mix)
        elif stage == "mask-sums":
            return self.tail.mask_sums(x, mix)
        else:
            raise ValueError(f"stage must be 'pixels', 'trunk', 'first', 'sums' or 'mask-sums', got {stage!r}")
        return self.head(pooled.float())

    # ------------------------------------------------------------------ identity of theta_0
    def fingerprint(self) -> str:
        """sha256 of theta_0 as this model holds it (trunk + tail + head, all floating tensors)."""
        return _fingerprint({k: v for k, v in self.state_dict().items() if v.is_floating_point()})

    def trunk_fingerprint(self) -> str:
        if self._trunk_fp is None:
            self._trunk_fp = _fingerprint(dict(self.trunk.state_dict()))
        return self._trunk_fp

    # ------------------------------------------------------------------ cached frozen computation
    @torch.inference_mode()
    def trunk_features(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        cache: str | os.PathLike | None = None,
        batch_size: int = 32,
        progress: bool = False,
        errors: dict[int, str] | None = None,
    ) -> torch.Tensor:
        """Trunk outputs for image files (fp16, row i = paths[i]); cached (content-keyed) in the folder ``cache``.

        ``errors``: the per-image error policy of :func:`piaa.features.encode_images` (bad files: zero rows)."""
        from piaa.features import encode_images

        self.trunk.to(memory_format=torch.channels_last)
        enc = _TrunkEncoder(self)
        out = encode_images(enc, paths, keep=("tokens",), batch_size=batch_size, cache=cache, progress=progress,
                            errors=errors)  # fmt: skip
        return out["tokens"]

    def fold_batchnorm(self) -> ScoringModel:
        """Inference speed: the trunk becomes a copy with every frozen-statistics BatchNorm folded into its conv.

        EfficientNet trunks only (:func:`piaa.efficientnet_lite.fold_batchnorm`; others are left as they are). A copy,
        so the encoder's network, which shares the trunk's modules, stays as loaded. The trunk keeps its pre-folding
        fingerprint (same function), so feature caches stay valid.
        """
        from piaa.efficientnet_lite import fold_batchnorm

        self.trunk_fingerprint()
        if isinstance(self.trunk, LiteTrunk):
            self.trunk = fold_batchnorm(copy.deepcopy(self.trunk))
        return self


def create_backbone(config: BackboneConfig | str | None = None) -> ScoringModel:
    """theta_0: the pretrained backbone split into trunk/tail plus the seeded initial head."""
    if config is None or isinstance(config, str):
        config = BackboneConfig(name=config or "efficientnet-lite0")
    if config.name in BACKBONES:
        enc, trunk, tail, dim = BACKBONES[config.name](config.tail)
    elif Path(config.name).expanduser().is_dir() or "/" in config.name:
        enc, trunk, tail, dim = _clip(config.name, config.tail)
    else:
        raise ValueError(f"unknown backbone {config.name!r}; registered: {list_backbones()} or a local CLIP dir")
    if config.image_size:
        enc.image_size = int(config.image_size)  # preprocess() and reduced-size decoding follow it
    return ScoringModel(config, enc, trunk, tail, dim)
