"""Measured photo properties: classical pixel formulas any part of the product can use (no learned model).

:func:`attributes` gives brightness, RMS contrast, Hasler-Suesstrunk colourfulness, HSV saturation, warmth, log
variance of the Laplacian (sharpness), an Immerkaer noise estimate and clipping for one RGB picture (PIL image or
``(H, W, 3)`` / ``(H, W)`` uint8 array); :data:`ATTRIBUTES` names them in order. The simulated world
(:mod:`eval.sim.images`) measures its pictures with these formulas and pmllm's steerability benchmark
(:mod:`pmllm.steer`) correlates score shifts with them.

Library module, no entry point::

    from piaa.photostats import attributes
    attributes(Image.open("a.jpg").convert("RGB"))["brightness"]   # mean luma in [0, 1]
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ATTRIBUTES = ("brightness", "contrast", "colorfulness", "saturation", "warmth", "sharpness", "noise", "clipping")


def _luma(x: np.ndarray) -> np.ndarray:
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


luma = _luma  # public name: Rec.601 luma of an ``(..., 3)`` RGB array, same units as ``x``


def attributes(img: Image.Image | np.ndarray) -> dict[str, float]:
    """Classical pixel-formula attributes of an RGB picture (independent of any learned model).

    brightness: mean Rec.601 luma in [0, 1]; contrast: RMS contrast (std of luma); colorfulness: Hasler &
    Suesstrunk (2003) M3 on 0-255 values; saturation: mean HSV saturation; warmth: mean(R) - mean(B) in [-1, 1];
    sharpness: log(1 + variance of the 4-neighbour Laplacian of the 2x2-averaged 0-255 luma, minus the part
    explained by the estimated noise); noise: log(1 + Immerkaer (1996) noise sigma); clipping: fraction of
    pixels with luma < 0.02 or > 0.98 (lost shadows/highlights).
    """
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    if x.ndim == 2:
        x = np.stack([x] * 3, axis=-1)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = _luma(x)
    rg = (r - g) * 255
    yb = (0.5 * (r + g) - b) * 255
    colorfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    mx, mn = x.max(axis=-1), x.min(axis=-1)
    sat = np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    y255 = y * 255
    # Immerkaer's mask [[1,-2,1],[-2,4,-2],[1,-2,1]] (difference of two Laplacians) -> noise sigma
    m = (
        y255[:-2, :-2] + y255[:-2, 2:] + y255[2:, :-2] + y255[2:, 2:]
        - 2 * (y255[:-2, 1:-1] + y255[2:, 1:-1] + y255[1:-1, :-2] + y255[1:-1, 2:])
        + 4 * y255[1:-1, 1:-1]
    )  # fmt: skip
    hh, ww = y.shape
    sigma = float(np.sqrt(np.pi / 2) * np.abs(m).sum() / (6 * (ww - 2) * (hh - 2)))
    # sharpness: Laplacian variance at half resolution (2x2 means), minus what the noise alone would give
    # (a 4-neighbour Laplacian of white noise with sd s has variance 20 s^2), so grain is not mistaken for detail
    h2, w2 = hh // 2, ww // 2
    z = y255[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    lap = z[:-2, 1:-1] + z[2:, 1:-1] + z[1:-1, :-2] + z[1:-1, 2:] - 4 * z[1:-1, 1:-1]
    v = float(lap.var())
    v = max(v - 20 * (sigma / 2) ** 2, 0.05 * v)
    return {
        "brightness": float(y.mean()),
        "contrast": float(y.std()),
        "colorfulness": float(colorfulness),
        "saturation": float(sat.mean()),
        "warmth": float(r.mean() - b.mean()),
        "sharpness": float(np.log1p(v)),
        "noise": float(np.log1p(sigma)),
        "clipping": float(((y < 0.02) | (y > 0.98)).mean()),
    }
