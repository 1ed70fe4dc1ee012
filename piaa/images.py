"""Safe image decoding: the one place where files on disk become RGB pictures.

Every reader, scorer and the demo decodes through :func:`load_image`, so the same rules hold everywhere:

* EXIF orientation is applied (a phone photo shot in portrait stays upright);
* any PIL mode (P, PA, LA, L, I;16, I, F, CMYK, RGBA, ...) becomes 8-bit RGB, alpha composited on white;
* a decompression bomb (more pixels than ``PIAA_MAX_IMAGE_PIXELS``, default 120 000 000, read at each call) is
  refused before decoding with an error giving the image's size, the limit and how to raise it; PIL's own
  ``Image.MAX_IMAGE_PIXELS`` guard (warning at 89.5 Mpx, error at 179 Mpx) never refuses an image under that limit;
* truncated, corrupt or non-image files raise :class:`ImageDecodeError` naming the file;
* when only a small picture is needed (``min_side``), JPEGs are decoded at reduced size with PIL's ``draft``.

Usage::

    from piaa.images import load_image
    img = load_image("photo.jpg", min_side=224)
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# The default limit (pixels). PIL warns above 89.5 Mpx and refuses above 179 Mpx; we refuse above the limit instead.
MAX_PIXELS = 120_000_000
ENV_VAR = "PIAA_MAX_IMAGE_PIXELS"
_PIL_PIXELS = re.compile(r"\((\d+) pixels\)")


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


def max_image_pixels() -> int:
    """The pixel limit now: ``$PIAA_MAX_IMAGE_PIXELS`` (read at each call; ``_`` separators allowed) or 120 000 000.

    Raises :class:`ValueError` naming the variable when it is set to something that is not a positive integer.
    """
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{ENV_VAR}={raw!r} must be a positive whole number of pixels (e.g. 200000000)")
    return value


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}" if pixels >= 1e6 else f"{pixels / 1e6:.2g}"


def _too_large(name: str, limit: int, size: tuple[int, int] | None = None, pixels: int | None = None) -> str:
    if size is not None:
        pixels = size[0] * size[1]
        what = f"{size[0]}\u00d7{size[1]} = {_mp(pixels)} megapixels"
    elif pixels is not None:
        what = f"{_mp(pixels)} megapixels"
    else:
        what = "over PIL's own limit"
    suggest = ((pixels if pixels is not None else 2 * limit) // 10_000_000 + 1) * 10_000_000
    return (
        f"{name}: image is too large: {what}, over the limit of {_mp(limit)} megapixels ({limit:,} pixels; "
        f"decompression bomb guard); if the file is trusted, raise the limit with the environment variable "
        f"{ENV_VAR} (e.g. {ENV_VAR}={suggest})"
    )


def _open_header(stream: BinaryIO) -> Image.Image | None:
    """Identify ``stream`` and read its header with PIL's plugin registry, without PIL's own size guard.

    Used only when ``Image.open`` refused a size that our limit (checked by the caller) may still allow, or to
    report the size of a refused file; no global PIL setting is changed, so other threads keep PIL's guard.
    """
    Image.init()
    stream.seek(0)
    prefix = stream.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            ok = True if accept is None else accept(prefix)
            if isinstance(ok, str) or not ok:
                continue
            stream.seek(0)
            return factory(stream, "")
        except (SyntaxError, IndexError, TypeError, ValueError, OSError, struct.error):
            continue
    return None


def _open(stream: BinaryIO, name: str, limit: int) -> Image.Image:
    """``Image.open`` with our limit in charge of the size: PIL's warning is silenced, and its error is overruled
    when the image is within ``limit``. Raises :class:`ImageDecodeError` for unidentifiable or too-large files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(stream)
        except UnidentifiedImageError:
            raise ImageDecodeError(f"{name}: not an image file PIL can identify") from None
        except Image.DecompressionBombError as exc:
            img = _open_header(stream)
            if img is None:
                m = _PIL_PIXELS.search(str(exc))
                raise ImageDecodeError(_too_large(name, limit, pixels=int(m.group(1)) if m else None)) from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"{name}: image has an empty size {w}x{h}")
    if w * h > limit:
        raise ImageDecodeError(_too_large(name, limit, size=(w, h)))
    return img


def load_image(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    min_side: int | None = None,
    max_pixels: int | None = None,
) -> Image.Image:
    """Decode ``source`` (path, bytes or binary stream) into an upright RGB :class:`PIL.Image.Image`.

    ``min_side``: the caller needs at least this many pixels on the short side; JPEGs are then decoded at the
    smallest power-of-two reduction that keeps the short side >= ``min_side`` (much faster for camera files).
    ``max_pixels``: refuse images with more pixels (default: :func:`max_image_pixels`, i.e. ``$PIAA_MAX_IMAGE_PIXELS``
    read now, else 120 000 000).
    Raises :class:`ImageDecodeError` (a ``ValueError``) naming the file for every failure.
    """
    name = _name(source)
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{name}: file is empty (0 bytes)")
        try:
            stream: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in finally
        except OSError as err:  # unreadable (permissions, a vanished network file): this image only
            raise ImageDecodeError(f"{name}: cannot be read ({err.strerror or err})") from None
    elif isinstance(source, bytes):
        if not source:
            raise ImageDecodeError(f"{name}: file is empty (0 bytes)")
        stream = io.BytesIO(source)
    else:
        stream = source
        if not (hasattr(stream, "seekable") and stream.seekable()):  # a pipe or socket: the header is read twice
            stream = io.BytesIO(stream.read())
    try:
        img = _open(stream, name, limit)
        w, h = img.size
        if min_side and img.format == "JPEG":
            short = min(w, h)
            scale = 1
            while scale < 8 and short // (scale * 2) >= min_side:
                scale *= 2
            if scale > 1:
                img.draft("RGB", (max(1, w // scale), max(1, h // scale)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:  # a multi-frame GIF / tiled TIFF checked again by PIL while loading
        m = _PIL_PIXELS.search(str(exc))
        raise ImageDecodeError(_too_large(name, limit, pixels=int(m.group(1)) if m else None)) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated", "broken data stream", ...)
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from None
    finally:
        if isinstance(source, (str, os.PathLike)):
            stream.close()
