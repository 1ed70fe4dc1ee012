"""Read one dataset folder in its native format and print a summary (optionally save it as a RatingsTable folder).

Usage::

    python -m eval.readers para /data/PARA
    python -m eval.readers flickr-aes /data/FLICKR-AES --out tables/flickr-aes
    python -m eval.readers aadb /data/AADB --no-check-images
"""

from __future__ import annotations

import argparse
import sys
import warnings

from piaa.schema import SchemaError

from . import DATASETS, ReaderWarning, create_reader, list_readers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.readers", description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=list_readers())
    ap.add_argument("root", help="the dataset folder as released")
    ap.add_argument("--no-check-images", action="store_true", help="do not check that image files exist")
    ap.add_argument("--out", help="save the ratings as a piaa.schema.RatingsTable folder here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    reader = create_reader(args.name, args.root, check_images=not args.no_check_images)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReaderWarning)  # the report below lists them
            table = reader.read()
            folds = reader.folds(table, seed=args.seed) if reader.is_piaa and len(table.users) > 1 else []
    except SchemaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = DATASETS[args.name]
    s = table.ratings["score"]
    print(f"{info.title}: {len(table.ratings)} ratings, {len(table.images)} images, {len(table.users)} users")
    sc = table.scale
    print(f"  scale [{sc.min}, {sc.max}] step {sc.step}; scores {s.min():.3g}..{s.max():.3g} mean {s.mean():.3g}")
    print(f"  image root {table.image_root}")
    n_prof = sum(not p.is_empty() for p in table.profiles.values())
    print(f"  users with a non-empty profile: {n_prof}")
    for i, (tr, te) in enumerate(folds, 1):
        print(f"  fold {i}: {len(tr)} train users, {len(te)} test users")
    rep = reader.report.to_dict()
    for what, n in rep["dropped"].items():
        print(f"  dropped: {n} {what}")
    for note in rep["notes"]:
        print(f"  note: {note}")
    if args.out:
        print(f"  saved to {table.save(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
