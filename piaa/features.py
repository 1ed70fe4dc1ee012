"""Batched image -> encoder features, with threaded decoding and an optional safetensors cache.

The one loader used by everything that needs frozen features (baselines, pmllm training, taskvec's cached
computation, benchmarks)::

    from piaa.features import encode_images, iter_pixel_batches
    feats = encode_images(encoder, paths, keep=("pooled",), cache="cache/lite0.safetensors")
    feats["pooled"]  # (N, 1280) float16, row i = paths[i]

Decoding runs in a thread pool (PIL releases the GIL) with reduced-size JPEG decoding (``min_side``), so the
encoder is the bottleneck. Library module, no entry point.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm.auto import tqdm

from piaa.images import load_image


def feature_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where frozen-feature caches live: ``override`` if given, else ``<piaa cache>/features``."""
    from piaa.models import cache_dir

    return Path(override) if override else cache_dir() / "features"


def _decode_batch(encoder, paths: Sequence[Path], pool: ThreadPoolExecutor) -> torch.Tensor:
    imgs = list(pool.map(lambda p: load_image(p, min_side=encoder.image_size), paths))
    return encoder.preprocess(imgs)


def iter_pixel_batches(
    encoder, paths: Sequence[str | os.PathLike], batch_size: int = 32, workers: int = 4
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start_index, pixel_values)`` batches; the next batch decodes while the caller computes."""
    paths = [Path(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        starts = list(range(0, len(paths), batch_size))
        future = ahead.submit(_decode_batch, encoder, paths[:batch_size], pool) if starts else None
        for i, s in enumerate(starts):
            x = future.result()
            if i + 1 < len(starts):
                nxt = starts[i + 1]
                future = ahead.submit(_decode_batch, encoder, paths[nxt : nxt + batch_size], pool)
            yield s, x


def _key(encoder, paths: Sequence[Path], keep: Sequence[str]) -> str:
    h = hashlib.sha1()
    h.update(f"{encoder.name}|{encoder.image_size}|{','.join(keep)}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()


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
) -> dict[str, torch.Tensor]:
    """Encode every image; returns ``{"pooled": (N, D)}`` and/or ``{"tokens": (N, T, D)}`` in ``dtype``.

    With ``cache``, results are stored in that safetensors file and reused while the encoder and the files
    (path, size, mtime) are unchanged.
    """
    from safetensors.torch import load_file, save_file

    paths = [Path(p) for p in paths]
    key = _key(encoder, paths, keep) if cache else ""
    if cache and Path(cache).is_file():
        from safetensors import safe_open

        with safe_open(str(cache), "pt") as fh:
            if (fh.metadata() or {}).get("key") == key:
                return dict(load_file(str(cache)))
    encoder.eval()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keep}
    bar = tqdm(total=len(paths), desc=f"encoding ({encoder.name})", unit="img", disable=not progress, leave=False)
    for _, x in iter_pixel_batches(encoder, paths, batch_size):
        res = encoder(x)
        for k in keep:
            out[k].append(getattr(res, k).to(dtype))
        bar.update(len(x))
    bar.close()
    feats = {k: torch.cat(v) if v else torch.empty(0) for k, v in out.items()}
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cache) + ".tmp")
        save_file({k: v.contiguous() for k, v in feats.items()}, str(tmp), metadata={"key": key})
        os.replace(tmp, cache)
    return feats
