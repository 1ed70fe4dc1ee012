"""Small data files shared by the products (see ``piaa/data/README.md`` for sources).

``imagenet_classes()`` -> the 1000 ImageNet-1k class names in index order (index 285 = "Egyptian cat").
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """ImageNet-1k class names, one per class index (0..999), human readable (spaces, not underscores)."""
    names = tuple((DATA_DIR / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"{DATA_DIR / 'imagenet_classes.txt'}: expected 1000 class names, found {len(names)}")
    return names
