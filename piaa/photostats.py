"""Measured photo properties: classical pixel formulas any part of the product can use (no learned model).

:func:`attributes` gives brightness, RMS contrast, Hasler-Suesstrunk colourfulness, HSV saturation, warmth, log
variance of the Laplacian (sharpness), an Immerkaer noise estimate and clipping for one RGB picture (PIL image or
``(H, W, 3)`` / ``(H, W)`` uint8 array); :data:`ATTRIBUTES` names them in order. The simulated world
(:mod:`eval.sim.images`) measures its pictures with these formulas and pmllm's steerability benchmark
(:mod:`pmllm.steer`) correlates score shifts with them.

Library module, no entry point::

    from piaa.photostats import attributes
    attributes(Image.open("a.jpg").convert("RGB"))["brightness"]   # mean luma in [0, 1]
    photo_stats(["a.jpg", "b.png"])                                 # (2, 8) array, ATTRIBUTES order

:func:`photo_stats` measures files at a fixed working size (short side :data:`STATS_SIDE`), so the numbers of a
camera file and of its downsized copy agree; the few-shot model (``eval.fewshot``) uses them as features that
carry light and colour, which ImageNet features are trained to ignore.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from piaa.files import unique_tmp

STATS_SIDE = 256  # short side (pixels) at which photo_stats measures a file
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


def _stats_of_file(path) -> np.ndarray:
    from piaa.images import load_image

    img = path.convert("RGB") if isinstance(path, Image.Image) else load_image(path, min_side=STATS_SIDE)
    w, h = img.size
    if min(w, h) > STATS_SIDE:
        f = STATS_SIDE / min(w, h)
        img = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BILINEAR)
    a = attributes(img)
    return np.array([a[k] for k in ATTRIBUTES], dtype=np.float64)


def photo_stats(paths, errors: dict[int, str] | None = None, workers: int = 2, cache=None,
                progress: bool = False) -> np.ndarray:  # fmt: skip
    """(n, len(ATTRIBUTES)) attributes of image files (or PIL images) measured at short side :data:`STATS_SIDE`.

    ``errors``: a dict to collect ``{index: reason}`` for files that cannot be decoded (their rows are NaN); with
    ``errors=None`` the first bad file raises :class:`piaa.images.ImageDecodeError`. ``cache``: a folder; the
    matrix is kept there under the feature caches' content-keyed name (:func:`piaa.features.cache_file`).
    """
    return measure_files(paths, _stats_of_file, ATTRIBUTES, ("photostats", STATS_SIDE), errors=errors,
                         workers=workers, cache=cache, progress=progress, desc="photo stats")  # fmt: skip


def measure_files(paths, measure, columns: tuple[str, ...], name: tuple[str, int], *,
                  errors: dict[int, str] | None = None, workers: int = 2, cache=None, progress: bool = False,
                  desc: str = "measuring") -> np.ndarray:  # fmt: skip
    """``(n, len(columns))``: ``measure(path or PIL image)`` (a row of floats) of every file, in threads.

    The one loop behind :func:`photo_stats` and :func:`piaa.faces.face_stats`: undecodable files get NaN rows and
    ``errors[index] = reason`` (or raise with ``errors=None``); ``cache`` keeps the matrix under the feature
    caches' content-keyed name for ``name`` = (what is measured, working size), never for PIL images or runs
    that collect errors.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from tqdm.auto import tqdm

    from piaa.images import ImageDecodeError

    paths = list(paths)
    target = None
    if cache is not None and errors is None and not any(isinstance(p, Image.Image) for p in paths):
        from piaa.features import cache_file

        key = SimpleNamespace(name=name[0], image_size=name[1])
        target = cache_file(cache, key, paths, columns).with_suffix(".npy")
        if target.is_file():
            return np.load(target)

    def one(p):
        try:
            return measure(p)
        except ImageDecodeError as err:
            if errors is None:
                raise
            return err

    with ThreadPoolExecutor(max(1, workers)) as pool:
        it = pool.map(one, paths)
        rows = list(tqdm(it, total=len(paths), desc=desc, unit="img", disable=not progress, leave=False))
    out = np.full((len(rows), len(columns)), np.nan)
    for i, r in enumerate(rows):
        if isinstance(r, Exception):
            errors[i] = str(r)  # type: ignore[index]
        else:
            out[i] = r
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = unique_tmp(target)  # several processes of one run may write the same cache file
        np.save(tmp, out)
        os.replace(tmp, target)
    return out
