"""Native-format benchmark readers: point ``root`` at a dataset folder as released, get a ``RatingsTable``.

Registry (a plain dict; see ``eval/readers/meta.py`` for each dataset's scale, files and format sources)::

    from eval.readers import create_reader, create_benchmark, list_readers

    table = create_reader("para", "/data/PARA").read()          # piaa.schema.RatingsTable
    bench = create_benchmark("flickr-aes", "/data/FLICKR-AES")   # eval.api.Benchmark with user-disjoint folds

PIAA benchmarks (``flickr-aes``, ``para``, ``lapis``, ``aadb``, ``real-cur``) have folds; the general databases
(``ava``, ``koniq10k``, ``spaq``, ``tad66k``) give one mean score per image (``user == <name>``) for task vectors.
Drops (duplicates, missing images, empty cells) are counted in ``reader.report`` / ``bench.meta["read_report"]``
and announced with a :class:`ReaderWarning`; malformed files raise ``piaa.schema.SchemaError``.

Summarise a dataset folder: ``python -m eval.readers NAME ROOT``. Library package; no side effects at import.
"""

from __future__ import annotations

from pathlib import Path

from .base import DatasetReader
from .common import ReaderWarning, ReadReport
from .folds import check_folds
from .general import AVAReader, KonIQReader, SPAQReader, TAD66KReader
from .meta import DATASETS, DatasetInfo
from .piaa import FlickrAESReader, LapisReader, ParaReader
from .piaa_extra import AADBReader, RealCurReader

READERS: dict[str, type[DatasetReader]] = {
    "flickr-aes": FlickrAESReader,
    "para": ParaReader,
    "lapis": LapisReader,
    "aadb": AADBReader,
    "real-cur": RealCurReader,
    "ava": AVAReader,
    "koniq10k": KonIQReader,
    "spaq": SPAQReader,
    "tad66k": TAD66KReader,
}


def list_readers(kind: str | None = None) -> list[str]:
    """Reader names, optionally only ``kind="piaa"`` or ``kind="general"``."""
    return [n for n in READERS if kind is None or DATASETS[n].kind == kind]


def create_reader(name: str, root: str | Path, **options) -> DatasetReader:
    """A reader for dataset ``name`` rooted at ``root`` (options: ``check_images``, AADB ``mode``, KonIQ
    ``score_column``)."""
    try:
        cls = READERS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark reader {name!r}; available: {list_readers()}") from None
    return cls(root, **options)


def create_benchmark(name: str, root: str | Path, *, seed: int = 0, n_folds: int = 4, **options):
    """An ``eval.api.Benchmark`` for a PIAA dataset: its ratings, profiles and user-disjoint folds.

    flickr-aes: one fold (other workers, the 37 published test workers); para: the 4 published folds, or
    ``n_folds`` seeded ones with a note in ``meta["read_report"]["notes"]`` when the ratings' user ids do not fit
    them; lapis, aadb (per-rater file needed), real-cur: ``n_folds`` seeded user-disjoint folds.
    ``meta["fold_source"]`` says which.
    """
    from eval.api import Benchmark

    reader = create_reader(name, root, **options)
    if not reader.is_piaa:
        raise ValueError(f"{name} is a general database (one score per image), not a PIAA benchmark; "
                         f"PIAA readers: {list_readers('piaa')}")  # fmt: skip
    table = reader.read()
    folds = reader.folds(table, seed=seed, n_folds=n_folds)
    check_folds(folds, table.users, name)
    info = reader.info
    meta = {
        "dataset": info.title,
        "root": str(reader.root),
        "fold_source": reader.fold_source or f"seeded user k-fold (k={n_folds}, seed={seed})",
        "read_report": reader.report.to_dict(),  # its "notes" carry warnings such as a fold fallback
    }
    return Benchmark(name=name, table=table, folds=folds, simulated=False, meta=meta)


__all__ = [
    "READERS",
    "DATASETS",
    "DatasetInfo",
    "DatasetReader",
    "ReadReport",
    "ReaderWarning",
    "create_reader",
    "create_benchmark",
    "list_readers",
]
