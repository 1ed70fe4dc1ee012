"""Read one dataset folder in its native format and print a summary (optionally save it as a RatingsTable folder).

Usage::

    python -m eval.readers para /data/PARA
    python -m eval.readers flickr-aes /data/FLICKR-AES --out tables/flickr-aes
    python -m eval.readers real-cur /data/REAL-CUR --n-folds 3
    python -m eval.readers aadb /data/AADB --no-check-images

Exit status: 0 read (and, for PIAA datasets, folds set up); 1 read, but the user folds could not be set up (the
summary is still printed, the reason on stderr; try a smaller ``--n-folds``); 2 the dataset could not be read.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from piaa.schema import RatingsTable, SchemaError

from . import DATASETS, ReaderWarning, create_reader, list_readers
from .base import DatasetReader
from .folds import Fold, check_folds


def _n_folds(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 2:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 2, got {text!r}")
    return n


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m eval.readers", description=__doc__.splitlines()[0],
                                 epilog="Exit status: 0 read; 1 read but no user folds; 2 cannot read.")  # fmt: skip
    ap.add_argument("name", choices=list_readers())
    ap.add_argument("root", help="the dataset folder as released")
    ap.add_argument("--no-check-images", action="store_true", help="do not check that image files exist")
    ap.add_argument("--out", help="save the ratings as a piaa.schema.RatingsTable folder here")
    ap.add_argument("--seed", type=int, default=0, help="seed of the seeded user folds (default 0)")
    folds_help = "seeded user-disjoint folds (default 4; FLICKR-AES and PARA use their published folds)"
    ap.add_argument("--n-folds", type=_n_folds, default=4, help=folds_help)
    return ap


def _folds(reader: DatasetReader, table: RatingsTable, args: argparse.Namespace) -> tuple[list[Fold], str | None]:
    """``(folds, None)``, or ``([], why)`` when they cannot be set up (the read itself succeeded)."""
    if not reader.is_piaa:
        return [], None
    if len(table.users) < 2:
        return [], f"{len(table.users)} user: user-disjoint folds need at least 2"
    try:
        folds = reader.folds(table, seed=args.seed, n_folds=args.n_folds)
        check_folds(folds, table.users, args.name)
    except (SchemaError, ValueError) as err:
        hint = f" (try --n-folds {len(table.users)} or fewer)" if len(table.users) < args.n_folds else ""
        return [], f"{err}{hint}"
    return folds, None


def _summary(args: argparse.Namespace, reader: DatasetReader, table: RatingsTable, folds: list[Fold]) -> None:
    info = DATASETS[args.name]
    s = table.ratings["score"]
    print(f"{info.title}: {len(table.ratings)} ratings, {len(table.images)} images, {len(table.users)} users")
    sc = table.scale
    print(f"  scale [{sc.min}, {sc.max}] step {sc.step}; scores {s.min():.3g}..{s.max():.3g} mean {s.mean():.3g}")
    print(f"  image root {table.image_root}")
    n_prof = sum(not p.is_empty() for p in table.profiles.values())
    print(f"  users with a non-empty profile: {n_prof}")
    if folds and reader.fold_source:
        print(f"  folds: {reader.fold_source}")
    for i, (tr, te) in enumerate(folds, 1):
        print(f"  fold {i}: {len(tr)} train users, {len(te)} test users")
    rep = reader.report.to_dict()
    for what, n in rep["dropped"].items():
        print(f"  dropped: {n} {what}")
    for note in rep["notes"]:
        print(f"  note: {note}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reader = create_reader(args.name, args.root, check_images=not args.no_check_images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)  # the report below lists them
        try:
            table = reader.read()
        except (ValueError, OSError) as err:  # SchemaError is a ValueError
            print(f"error: {err}", file=sys.stderr)
            return 2
        folds, fold_error = _folds(reader, table, args)
    _summary(args, reader, table, folds)
    if fold_error:
        print(f"  folds: not set up: {fold_error}")
    if args.out:
        try:
            print(f"  saved to {table.save(args.out)}")
        except OSError as err:
            print(f"error: cannot save to {args.out}: {err}", file=sys.stderr)
            return 2
    if fold_error:
        print(f"error: user folds: {fold_error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
