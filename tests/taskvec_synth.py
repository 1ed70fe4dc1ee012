"""Tiny synthetic data for the taskvec tests: JPEG files with known attributes and RatingsTable folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from piaa.schema import RatingsTable, Scale


def make_images(folder: Path, n: int, seed: int = 0, size: int = 48) -> tuple[list[str], dict[str, np.ndarray]]:
    """``n`` JPEGs with a random colour, brightness and stripe contrast; returns names and those attributes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names, bright, red, contrast = [], [], [], []
    xs = np.arange(size)[None, :, None]
    for i in range(n):
        b, r, c = rng.uniform(0.15, 0.85), rng.uniform(0, 1), rng.uniform(0, 0.4)
        base = np.array([r, 1 - r, rng.uniform(0, 1)]) * b
        stripes = c * np.sign(np.sin(xs / 3.0 + i))
        arr = np.clip(base[None, None, :] + stripes + rng.normal(0, 0.02, (size, size, 3)), 0, 1)
        name = f"img{i:04d}.jpg"
        Image.fromarray((arr * 255).astype(np.uint8)).save(folder / name, quality=92)
        names.append(name)
        bright.append(b)
        red.append(r)
        contrast.append(c)
    return names, {"bright": np.array(bright), "red": np.array(red), "contrast": np.array(contrast)}


def make_table(folder: Path, image_root: Path, images: list[str], scores, scale: Scale, user: str) -> RatingsTable:
    df = pd.DataFrame({"image": images, "user": user, "score": scale.quantize(np.asarray(scores, dtype=float))})
    table = RatingsTable(df, scale, {}, image_root, user)
    table.save(folder)
    return RatingsTable.load(folder)
