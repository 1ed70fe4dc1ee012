"""Image side of the simulated taste world: source photos, recorded edits, pixel-formula attributes.

Source photos come from :mod:`piaa.photos` (the bundled photos, the photo pool, or ``--photos DIR``).

* :func:`sample_edit` - deterministic random edit parameters (crop/composition, exposure, contrast, saturation,
  grayscale, colour temperature, vignette, blur, noise, JPEG quality) for image number ``index``.
* :func:`render` - apply an edit to a source photo, returning JPEG bytes (~320 px short side).
* :func:`attributes` - classical pixel formulas on the decoded result (brightness, RMS contrast, Hasler-Suesstrunk
  colourfulness, HSV saturation, warmth, log variance of the Laplacian, Immerkaer noise estimate, clipping);
  defined in :mod:`piaa.photostats` (the product's core) and re-exported here with ``ATTRIBUTES``.
* :func:`make_images` - render + save + measure many images, in parallel worker processes.

Everything is a pure function of (seed, index, sources), so a world rebuilds byte-identically. Library module,
used by ``python -m eval.sim``.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from piaa.photos import Photo
from piaa.photostats import ATTRIBUTES, attributes  # noqa: F401  (re-exported: eval.sim.images.ATTRIBUTES)
from piaa.photostats import luma as _luma

SHORT_SIDE = 320
EDIT_FIELDS = (
    "crop_x0", "crop_y0", "crop_x1", "crop_y1", "flip", "exposure_ev", "contrast_gain", "saturation_gain",
    "grayscale", "temperature", "vignette", "blur_sigma", "noise_sigma", "jpeg_quality",
)  # fmt: skip


# ------------------------------------------------------------------------------------------------ edits
def sample_edit(seed: int, index: int, photos: Sequence[Photo]) -> dict:
    """The recorded edit for image ``index`` of a world with ``seed``: a pure function of its arguments.

    The content class is drawn uniformly first, then a photo of that class, so contents are balanced.
    """
    rng = np.random.default_rng([seed, 7919, index])
    contents = sorted({p.content for p in photos})
    content = contents[rng.integers(len(contents))]
    candidates = [i for i, p in enumerate(photos) if p.content == content]
    src = candidates[rng.integers(len(candidates))]
    w, h = photos[src].image.size
    # crop short side as a fraction of the photo's short side (at most 2x upsampling to SHORT_SIDE)
    zoom = rng.uniform(min(1.0, max(0.35, SHORT_SIDE / 2 / min(w, h))), 1.0)
    aspect = [4 / 3, 3 / 2, 1.0, 3 / 4, 2 / 3][rng.integers(5)]  # crop width / height
    ch = zoom * min(w, h)
    cw = ch * aspect
    if cw > w:
        ch, cw = ch * w / cw, w
    if ch > h:
        cw, ch = cw * h / ch, h
    x0 = rng.uniform(0, w - cw)
    y0 = rng.uniform(0, h - ch)
    gray = bool(rng.random() < 0.08)
    return {
        "source": photos[src].name,
        "content": content,
        "crop_x0": round(x0 / w, 4),
        "crop_y0": round(y0 / h, 4),
        "crop_x1": round((x0 + cw) / w, 4),
        "crop_y1": round((y0 + ch) / h, 4),
        "flip": int(rng.random() < 0.5),
        "exposure_ev": round(float(np.clip(rng.normal(0.0, 0.6), -2.0, 1.5)), 3),
        "contrast_gain": round(float(np.clip(np.exp(rng.normal(0.0, 0.25)), 0.5, 1.8)), 3),
        "saturation_gain": 0.0 if gray else round(float(np.clip(np.exp(rng.normal(0.0, 0.4)), 0.2, 2.4)), 3),
        "grayscale": int(gray),
        "temperature": round(float(np.clip(rng.normal(0.0, 0.45), -1.0, 1.0)), 3),
        "vignette": 0.0 if rng.random() < 0.6 else round(float(rng.uniform(0.1, 0.7)), 3),
        "blur_sigma": 0.0 if rng.random() < 0.45 else round(float(rng.uniform(0.4, 3.5)), 3),
        "noise_sigma": 0.0 if rng.random() < 0.5 else round(float(rng.uniform(2.0, 22.0)), 2),
        "jpeg_quality": int(rng.integers(80, 96)) if rng.random() < 0.7 else int(rng.integers(12, 80)),
    }


def render(photo: Photo, edit: dict, seed: int, index: int) -> bytes:
    """Apply ``edit`` to ``photo``; returns the JPEG bytes (short side ``SHORT_SIDE``)."""
    w, h = photo.image.size
    box = (edit["crop_x0"] * w, edit["crop_y0"] * h, edit["crop_x1"] * w, edit["crop_y1"] * h)
    bw, bh = box[2] - box[0], box[3] - box[1]
    f = SHORT_SIDE / min(bw, bh)
    size = (max(SHORT_SIDE, round(bw * f)), max(SHORT_SIDE, round(bh * f)))
    img = photo.image.resize(size, Image.BICUBIC, box=box, reducing_gap=2.0)
    if edit["flip"]:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    # exposure in (approximately) linear light, as a lookup table on the 8-bit values
    lut = np.clip((np.arange(256) / 255.0) ** 2.2 * (2.0 ** edit["exposure_ev"]), 0, 1) ** (1 / 2.2)
    img = img.point((np.round(lut * 255)).astype(np.uint8).tolist() * 3)
    x = np.asarray(img, dtype=np.float32) / 255.0
    # contrast around the mean luma, saturation around each pixel's luma, colour temperature: one affine map
    m = float(_luma(x).mean())
    c, s, t = edit["contrast_gain"], edit["saturation_gain"], edit["temperature"]
    luma = np.array([0.299, 0.587, 0.114])
    sat = s * np.eye(3) + (1 - s) * np.ones((3, 1)) * luma[None, :]
    temp = np.diag([1 + 0.16 * t, 1 + 0.02 * t, 1 - 0.16 * t])
    a = c * temp @ sat
    b = (1 - c) * m * temp @ np.ones(3)
    x = x @ a.T.astype(np.float32) + b.astype(np.float32)
    if edit["vignette"] > 0:
        hh, ww = x.shape[:2]
        yy = ((np.arange(hh, dtype=np.float32) - hh / 2) / (hh / 2)) ** 2
        xx = ((np.arange(ww, dtype=np.float32) - ww / 2) / (ww / 2)) ** 2
        x = x * (1 - edit["vignette"] * np.clip((yy[:, None] + xx[None, :]) / 2, 0, 1))[..., None]
    img = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
    if edit["blur_sigma"] > 0:
        img = img.filter(ImageFilter.GaussianBlur(radius=edit["blur_sigma"]))
    if edit["noise_sigma"] > 0:
        rng = np.random.default_rng([seed, 104729, index])
        arr = np.asarray(img, dtype=np.float32)
        sd = np.float32(edit["noise_sigma"])
        arr = arr + rng.standard_normal(arr.shape[:2], dtype=np.float32)[..., None] * (0.6 * sd)
        arr = arr + rng.standard_normal(arr.shape, dtype=np.float32) * (0.5 * sd)
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(edit["jpeg_quality"]), optimize=False)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ attributes
# attributes(img) -> dict: moved to piaa.photostats (imported above, re-exported here)


# ------------------------------------------------------------------------------------------------ batch
_WORKER: dict = {}


def _init_worker(photos: list[Photo], seed: int, out_dir: str) -> None:
    _WORKER.update(photos=photos, seed=seed, out_dir=out_dir, by_name={p.name: p for p in photos})


def _one(job: tuple[int, str]) -> dict:
    index, fname = job
    photos, seed = _WORKER["photos"], _WORKER["seed"]
    edit = sample_edit(seed, index, photos)
    data = render(_WORKER["by_name"][edit["source"]], edit, seed, index)
    (Path(_WORKER["out_dir"]) / fname).write_bytes(data)
    with Image.open(io.BytesIO(data)) as im:
        attrs = attributes(im.convert("RGB"))
    return {"image": fname, **edit, **attrs}


def make_images(
    jobs: Sequence[tuple[int, str]], photos: list[Photo], seed: int, out_dir: Path, *, workers: int | None = None,
    desc: str = "images",
) -> list[dict]:  # fmt: skip
    """Render, save (``out_dir/fname``) and measure ``jobs = [(index, fname), ...]``; rows in job order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 64:
        _init_worker(photos, seed, str(out_dir))
        return [_one(j) for j in tqdm(jobs, desc=desc, unit="img", leave=False)]
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(photos, seed, str(out_dir))) as pool:  # fmt: skip
        return list(tqdm(pool.map(_one, jobs, chunksize=16), total=len(jobs), desc=desc, unit="img", leave=False))
