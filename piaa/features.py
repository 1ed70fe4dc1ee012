"""Batched image -> encoder features, with threaded decoding and an optional safetensors cache.

The one loader used by everything that needs frozen features (baselines, pmllm training, taskvec's cached
computation, benchmarks)::

    from piaa.features import encode_images, iter_pixel_batches
    feats = encode_images(encoder, paths, keep=("pooled",), cache=feature_cache_dir())  # content-keyed file
    feats["pooled"]  # (N, 1280) float16, row i = paths[i]

Decoding runs in a thread pool (PIL releases the GIL) with reduced-size JPEG decoding (``min_side``), so the
encoder is the bottleneck. :func:`iter_encoded` is the one batched path from images to encoder outputs (pmllm's
``visual_tokens`` uses it); pass ``encoder.for_inference()`` (BatchNorm folded, channels-last:
:meth:`piaa.vision.VisionEncoder.for_inference`) for the fast frozen encoder. Library module, no entry point.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from piaa.files import unique_tmp
from piaa.images import ImageDecodeError, load_image


def feature_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where frozen-feature caches live: ``override`` if given, else ``<piaa cache>/features``."""
    from piaa.models import cache_dir

    return Path(override) if override else cache_dir() / "features"


def _decode_batch(encoder, paths: Sequence[Path], pool: ThreadPoolExecutor, start: int,
                  errors: dict[int, str] | None) -> tuple[list[int], torch.Tensor | None]:  # fmt: skip
    """Decode one batch; with ``errors`` (skip policy) undecodable files are left out and recorded by index."""

    prepare = getattr(encoder, "prepare", None)  # resize and crop of decoded files in the threads too

    def one(p: Path):
        try:
            if isinstance(p, Image.Image):  # the caller's (possibly lazy, shared) image: prepared in ``preprocess``
                return p
            img = load_image(p, min_side=encoder.image_size)
            return prepare(img) if prepare is not None else img
        except ImageDecodeError as err:
            if errors is None:
                raise
            return err

    imgs = list(pool.map(one, paths))
    keep = []
    for i, im in enumerate(imgs):
        if isinstance(im, ImageDecodeError):
            errors[start + i] = str(im)
        else:
            keep.append(i)
    x = encoder.preprocess([imgs[i] for i in keep]) if keep else None
    return [start + i for i in keep], x


def iter_pixel_batches(
    encoder, paths: Sequence[str | os.PathLike], batch_size: int = 32, workers: int = 4,
    errors: dict[int, str] | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:  # fmt: skip
    """Yield ``(indices into paths, pixel_values)`` batches; the next batch decodes while the caller computes.

    ``errors=None`` raises :class:`piaa.images.ImageDecodeError` on the first undecodable file; with a dict, such
    files are left out of their batch and recorded as ``errors[index] = reason`` (one bad file never sinks a batch).
    """
    paths = [p if isinstance(p, Image.Image) else Path(p) for p in paths]  # PIL images pass through undecoded
    with ThreadPoolExecutor(max_workers=workers) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        starts = list(range(0, len(paths), batch_size))
        future = ahead.submit(_decode_batch, encoder, paths[:batch_size], pool, 0, errors) if starts else None
        for i in range(len(starts)):
            idx, x = future.result()
            if i + 1 < len(starts):
                nxt = starts[i + 1]
                future = ahead.submit(_decode_batch, encoder, paths[nxt : nxt + batch_size], pool, nxt, errors)
            if idx:
                yield idx, x


@torch.no_grad()
def iter_encoded(
    encoder,
    images: Sequence[str | os.PathLike | Image.Image],
    batch_size: int = 32,
    workers: int = 4,
    device: torch.device | str | None = None,
    errors: dict[int, str] | None = None,
) -> Iterator[tuple[object, object]]:
    """:func:`iter_pixel_batches` through ``encoder``: yields (the batch's rows as that gives them, ``encoder(x)``).

    Image files are decoded at reduced size in threads while the encoder runs; PIL images pass through. The
    encoder output is a :class:`piaa.vision.VisionOutput` for vision encoders. Pixels go to ``device`` if given.
    ``errors``: the per-image error policy of :func:`iter_pixel_batches`.
    """
    encoder.eval()
    for rows, x in iter_pixel_batches(encoder, images, batch_size, workers, errors=errors):
        yield rows, encoder(x if device is None else x.to(device))


# Revision of how cached features are computed: part of every cache key, raised whenever a change to the image path
# moves cached numbers at all (2: the fast path's CPU micro-batches and in-conv padding, ~1 float16 ulp). A cache
# written by older code then cannot mix into a run of this code (it had: results made on an older cache differed
# from a fresh clone's in the 4th decimal for 8 % of the per-user SROCCs).
FEATURES_REVISION = 2


def _key(encoder, paths: Sequence[Path], keep: Sequence[str]) -> str:
    """Content key of a feature cache: :data:`FEATURES_REVISION`, the encoder, what is kept, and every file's path,
    size and mtime."""
    h = hashlib.sha1()
    h.update(f"r{FEATURES_REVISION}|{encoder.name}|{encoder.image_size}|{','.join(keep)}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()


def cache_file(folder: str | os.PathLike, encoder, paths: Sequence[str | os.PathLike], keep: Sequence[str]) -> Path:
    """The one naming scheme of feature caches: ``<folder>/<encoder name>-<content key>.safetensors``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.name)
    return Path(folder) / f"{safe}-{_key(encoder, [Path(p) for p in paths], keep)[:20]}.safetensors"


@torch.no_grad()
def encode_images(
    encoder,
    paths: Sequence[str | os.PathLike],
    *,
    keep: Sequence[str] = ("pooled",),
    batch_size: int = 32,
    dtype: torch.dtype = torch.float16,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    errors: dict[int, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Encode every image; returns ``{"pooled": (N, D)}`` and/or ``{"tokens": (N, T, D)}`` in ``dtype``.

    ``cache`` is a folder: results are stored there under a content-keyed name (:func:`cache_file`) and reused
    while the encoder and the files (path, size, mtime) are unchanged. With ``errors`` (a dict), undecodable files
    get zero rows and ``errors[index] = reason`` instead of raising; such a run neither reads nor writes the cache.
    """
    from safetensors.torch import load_file, save_file

    paths = [Path(p) for p in paths]
    target = cache_file(cache, encoder, paths, keep) if cache and errors is None else None  # skip policy: no cache
    if target is not None and target.is_file():
        return dict(load_file(str(target)))
    encoder.eval()
    rows: dict[str, list[tuple[list[int], torch.Tensor]]] = {k: [] for k in keep}
    bar = tqdm(total=len(paths), desc=f"encoding ({encoder.name})", unit="img", disable=not progress, leave=False)
    for idx, x in iter_pixel_batches(encoder, paths, batch_size, errors=errors):
        res = encoder(x)
        for k in keep:
            rows[k].append((idx, getattr(res, k).to(dtype)))
        bar.update(len(idx))
    bar.close()
    feats = {}
    for k, parts in rows.items():
        if not parts:
            feats[k] = torch.empty(0)
            continue
        out = torch.zeros((len(paths), *parts[0][1].shape[1:]), dtype=dtype)
        for idx, v in parts:
            out[idx] = v
        feats[k] = out
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = unique_tmp(target)  # several processes of one run may write the same cache file
        save_file({k: v.contiguous() for k, v in feats.items()}, str(tmp))
        os.replace(tmp, target)
    return feats
