"""The photo pool the product owns: real photographs to build worlds from and to show as demo samples.

* :func:`bundled_photos` - the real photographs that ship offline with scikit-image, scikit-learn and matplotlib,
  each with a content label (people, animal, food, vehicle, space, flower, architecture, abstract).
* :func:`folder_photos` - any folder of photos (``--photos DIR``); the content label is the first sub-folder name
  (``DIR/animal/cat.jpg`` -> ``animal``) or ``photo`` for files directly in ``DIR``.

Library module, no side effects on import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from piaa.images import ImageDecodeError, load_image

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_SHORT_SIDE = 320  # photos are decoded at least this large (the simulated world renders at this short side)

# (name, content label, how to find it); only the real colour/grayscale photographs, no drawings or textures.
_SKIMAGE = (
    ("astronaut", "people", "astronaut.png"),
    ("camera", "people", "camera.png"),
    ("chelsea", "animal", "chelsea.png"),
    ("coffee", "food", "coffee.png"),
    ("rocket", "vehicle", "rocket.jpg"),
    ("motorcycle", "vehicle", "motorcycle_left.png"),
    ("hubble_deep_field", "space", "hubble_deep_field.jpg"),
    ("moon", "space", "moon.png"),
    ("immunohistochemistry", "abstract", "ihc.png"),
    ("retina", "abstract", "retina.jpg"),
)
_SKLEARN = (("china", "architecture", "china.jpg"), ("flower", "flower", "flower.jpg"))
_MATPLOTLIB = (("grace_hopper", "people", "grace_hopper.jpg"),)


@dataclass
class Photo:
    name: str
    content: str
    image: Image.Image  # RGB


def _shrink(img: Image.Image, max_short: int = 720) -> Image.Image:
    """Keep sources modest so every crop still has >= MIN_SHORT_SIDE px but rendering stays fast."""
    s = min(img.size)
    if s <= max_short:
        return img
    f = max_short / s
    return img.resize((round(img.width * f), round(img.height * f)), Image.LANCZOS)


def bundled_photos() -> list[Photo]:
    """The real photographs bundled with the installed scikit-image / scikit-learn / matplotlib (offline)."""
    out: list[Photo] = []
    try:
        import skimage.data

        for name, content, fname in _SKIMAGE:
            path = Path(skimage.data.data_dir) / fname
            if path.is_file():
                out.append(Photo(name, content, _shrink(load_image(path))))
    except ImportError:
        pass
    try:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
        for name, content, fname in _SKLEARN:
            if (folder / fname).is_file():
                out.append(Photo(name, content, _shrink(load_image(folder / fname))))
    except ImportError:
        pass
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "sample_data"
        for name, content, fname in _MATPLOTLIB:
            if (folder / fname).is_file():
                out.append(Photo(name, content, _shrink(load_image(folder / fname))))
    except ImportError:
        pass
    if not out:
        raise RuntimeError("no bundled sample photos found (scikit-image/scikit-learn/matplotlib); use --photos DIR")
    return out


def folder_photos(folder: str | Path) -> list[Photo]:
    """Every decodable photo under ``folder`` (sorted, recursive); content label = first sub-folder name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--photos {folder}: not a folder")
    out: list[Photo] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS and p.is_file()):
        rel = path.relative_to(folder)
        content = rel.parts[0].lower().replace(" ", "_") if len(rel.parts) > 1 else "photo"
        try:
            img = load_image(path, min_side=MIN_SHORT_SIDE)
        except ImageDecodeError as err:
            print(f"skipping {err}")
            continue
        if min(img.size) < 64:
            print(f"skipping {path}: too small ({img.size[0]}x{img.size[1]})")
            continue
        name = str(rel.with_suffix("")).replace(os.sep, "_").replace(" ", "_")
        out.append(Photo(name, content, _shrink(img)))
    if not out:
        raise FileNotFoundError(f"--photos {folder}: no decodable photos ({', '.join(PHOTO_EXTENSIONS)})")
    return out


def sample_photos(folder: str | Path | None = None, n: int = 16) -> list[Path]:
    """Up to ``n`` real photos for a user who uploads none, as JPEG files in ``folder`` (default
    ``$PIAA_CACHE_DIR/demo-samples``): the bundled photographs, resized to at most 640 px on the long side.

    Written once and reused; the file names say what each photo is (``03-chelsea.jpg``).
    """
    from piaa.models import cache_dir

    folder = Path(folder) if folder else cache_dir() / "demo-samples"
    photos = bundled_photos()[:n]
    paths = [folder / f"{i:02d}-{p.name}.jpg" for i, p in enumerate(photos)]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    for photo, path in zip(photos, paths):
        img = photo.image.copy()
        img.thumbnail((640, 640), Image.LANCZOS)
        tmp = path.with_suffix(".tmp")
        img.save(tmp, format="JPEG", quality=90)
        tmp.replace(path)
    return paths
