"""Safe image decoding: the one place where files on disk become RGB pictures.

Every reader, scorer and the demo decodes through :func:`load_image`, so the same rules hold everywhere:

* EXIF orientation is applied (a phone photo shot in portrait stays upright);
* any PIL mode (P, PA, LA, L, I;16, I, F, CMYK, RGBA, ...) becomes 8-bit RGB, alpha composited on white;
* a decompression bomb (more than ``MAX_PIXELS`` pixels) is refused with a clear error before decoding;
* truncated, corrupt or non-image files raise :class:`ImageDecodeError` naming the file;
* when only a small picture is needed (``min_side``), JPEGs are decoded at reduced size with PIL's ``draft``.

Usage::

    from piaa.images import load_image
    img = load_image("photo.jpg", min_side=224)
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 89.5 Mpx is PIL's own warning threshold; twice that is its error threshold. We refuse above this value.
MAX_PIXELS = int(os.environ.get("PIAA_MAX_IMAGE_PIXELS", 120_000_000))


class ImageDecodeError(ValueError):
    """A file could not be decoded as an image; the message names the file and the reason."""


def _name(source: str | os.PathLike | bytes | BinaryIO) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return "<bytes>"
    return getattr(source, "name", "<stream>")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, 16-bit/float rescaled to 0..255)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 65535.0
        else:
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    min_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` (path, bytes or binary stream) into an upright RGB :class:`PIL.Image.Image`.

    ``min_side``: the caller needs at least this many pixels on the short side; JPEGs are then decoded at the
    smallest power-of-two reduction that keeps the short side >= ``min_side`` (much faster for camera files).
    Raises :class:`ImageDecodeError` (a ``ValueError``) naming the file for every failure.
    """
    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{name}: file is empty (0 bytes)")
        stream: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in finally
    elif isinstance(source, bytes):
        if not source:
            raise ImageDecodeError(f"{name}: file is empty (0 bytes)")
        stream = io.BytesIO(source)
    else:
        stream = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(stream)
            except UnidentifiedImageError:
                raise ImageDecodeError(f"{name}: not an image file PIL can identify") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageDecodeError(f"{name}: image is too large (decompression bomb guard)") from None
            w, h = img.size
            if w <= 0 or h <= 0:
                raise ImageDecodeError(f"{name}: image has an empty size {w}x{h}")
            if w * h > max_pixels:
                raise ImageDecodeError(
                    f"{name}: image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                    "(decompression bomb guard; raise PIAA_MAX_IMAGE_PIXELS if the file is trusted)"
                )
            if min_side and img.format == "JPEG":
                short = min(w, h)
                scale = 1
                while scale < 8 and short // (scale * 2) >= min_side:
                    scale *= 2
                if scale > 1:
                    img.draft("RGB", (max(1, w // scale), max(1, h // scale)))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated", "broken data stream", ...)
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from None
    finally:
        if isinstance(source, (str, os.PathLike)):
            stream.close()


def is_image_file(path: str | os.PathLike) -> bool:
    """Cheap extension check used when scanning folders (decoding still validates the content)."""
    return Path(path).suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
