"""Tiny synthetic benchmarks for tests: generated images, raters with a shared and a personal taste, an oracle.

Not the simulated taste world (that is ``eval.sim``); this is a seconds-fast fixture for unit and end-to-end
tests of the harness and the scorers::

    from eval.synthetic import make_benchmark
    bench = make_benchmark(tmp_path, n_users=12, n_images=60, seed=0)

Each image is a small JPEG whose brightness and redness are drawn at random; a user's noise-free score is
``w_shared * brightness + w_user * redness`` (so a population model can learn the shared part from pixels and the
personal part differs by user); ratings add noise and are quantized to the PARA scale. Library module, no entry
point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from eval.api import Benchmark
from piaa.schema import PARA_SCALE, Profile, RatingsTable


def make_benchmark(
    folder: str | Path,
    *,
    n_users: int = 12,
    n_images: int = 60,
    n_folds: int = 3,
    ratings_per_user: int | None = None,
    noise: float = 0.15,
    seed: int = 0,
    image_size: int = 40,
    write_images: bool = True,
    name: str = "synthetic",
) -> Benchmark:
    """A simulated-style :class:`Benchmark` with ``n_users`` raters over ``n_images`` generated images.

    ``ratings_per_user``: each user rates a random subset of that size (default: every image).
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    bright = rng.uniform(0.1, 0.9, n_images)
    red = rng.uniform(0.0, 1.0, n_images)
    names = [f"img{i:04d}.jpg" for i in range(n_images)]
    if write_images:
        for i, n in enumerate(names):
            px = rng.uniform(-12, 12, (image_size, image_size, 3))
            base = np.array([red[i], 0.5 * (1 - red[i]), 1 - red[i]]) * bright[i] * 255
            arr = np.clip(base + px, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(img_dir / n, quality=90)
    users = [f"u{j:03d}" for j in range(n_users)]
    w_user = rng.normal(0.0, 1.0, n_users)
    attrs = pd.DataFrame({"bright": bright, "red": red}, index=names)

    def clean(user: str, images) -> np.ndarray:
        j = users.index(str(user))
        a = attrs.loc[list(images)]
        return 3.0 + 1.6 * (a["bright"].to_numpy() - 0.5) + 0.8 * w_user[j] * (a["red"].to_numpy() - 0.5)

    rows = []
    for user in users:
        imgs = names if ratings_per_user is None else list(rng.choice(names, ratings_per_user, replace=False))
        s = PARA_SCALE.quantize(clean(user, imgs) + rng.normal(0, noise, len(imgs)))
        rows += [(i, user, float(v)) for i, v in zip(imgs, s)]
    profiles = {u: Profile(age="22-25", text=f"synthetic rater {u}") for u in users}
    table = RatingsTable(pd.DataFrame(rows, columns=["image", "user", "score"]), PARA_SCALE, profiles, img_dir, name)
    perm = [users[i] for i in rng.permutation(n_users)]
    chunks = [perm[k::n_folds] for k in range(n_folds)]
    folds = [([u for u in users if u not in set(c)], sorted(c)) for c in chunks]
    return Benchmark(name=name, table=table, folds=folds, simulated=True, oracle=clean, meta={"synthetic": True})
