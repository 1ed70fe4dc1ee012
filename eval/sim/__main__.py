"""``python -m eval.sim``: build a simulated taste world folder.

python -m eval.sim --out worlds/sim-quick --quick      # ~1000 PIAA images, 4 x 600 database images, 80 raters
python -m eval.sim --out worlds/sim                    # ~2500 PIAA images, 4 x 1500, 240 raters
python -m eval.sim --out DIR --photos my_photos/       # your own photos (content label = sub-folder name)
"""

from __future__ import annotations

import argparse

from .build import SIZES, build_world


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eval.sim", description="Build a simulated taste world folder.")
    ap.add_argument("--out", required=True, help="world folder to write (replaced atomically if it exists)")
    ap.add_argument("--quick", action="store_true", help="the quick size (~1000 PIAA images, 80 raters)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photos", default=None,
                    help="folder of photos (content label = sub-folder name), or 'pool' / 'bundled'; default: the "
                    "photo pool when present (make photos), else the bundled photos")  # fmt: skip
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="explicit size (overrides --quick)")
    ap.add_argument("--workers", type=int, default=None, help="image worker processes (default: up to 4)")
    args = ap.parse_args(argv)
    try:
        build_world(args.out, seed=args.seed, quick=args.quick, photos=args.photos, size=args.size,
                    workers=args.workers)  # fmt: skip
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
