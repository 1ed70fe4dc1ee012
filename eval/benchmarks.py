"""Benchmark registry: names -> small specs that know how to load an :class:`eval.api.Benchmark`.

Per-dataset metadata is data (``BenchmarkSpec``); loading real datasets goes through the readers registry
(``eval.readers.READERS``, imported only when a real benchmark is asked for), the simulated world through
``eval.sim`` (``ensure_world`` / ``load_world``). Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from eval.api import Benchmark


class BenchmarkNotAvailableError(RuntimeError):
    """The benchmark's loader (readers module, sim module) or data cannot be found; the message says what to do."""


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    simulated: bool = False
    kind: str = "reader"  # "reader" (real dataset via eval.readers), "sim" (eval.sim world), "synthetic" (tests)
    reader: str | None = None  # key in eval.readers.READERS (real datasets)
    needs_root: bool = True  # real datasets: --root is the folder holding the dataset as distributed
    default_shots: tuple[int, ...] = (0, 10, 100)
    citation: str = ""


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "sim": BenchmarkSpec(
        "sim", "simulated taste world (python -m eval.sim); numbers are SIMULATED, never real-data results",
        simulated=True, kind="sim", needs_root=False,
    ),
    "synthetic": BenchmarkSpec(
        "synthetic", "tiny generated benchmark for smoke tests (eval.synthetic; --root = where to write it)",
        simulated=True, kind="synthetic", needs_root=False, default_shots=(0, 10),
    ),
    "flickr-aes": BenchmarkSpec(
        "flickr-aes", "FLICKR-AES: 210 AMT workers, 40k Flickr photos, 1-5 stars", reader="flickr-aes",
        citation="Ren et al., Personalized Image Aesthetics, ICCV 2017",
    ),
    "para": BenchmarkSpec(
        "para", "PARA: 438 raters with profiles, 31k photos, 1-5 step 0.5", reader="para",
        citation="Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
    ),
    "lapis": BenchmarkSpec(
        "lapis", "LAPIS: art images rated 0-100 by raters with demographics/VAIAK", reader="lapis",
        citation="Maerten et al., LAPIS: Leuven Art Personalized Image Set, 2025",
    ),
    "aadb": BenchmarkSpec(
        "aadb", "AADB: 10k photos with per-rater scores (rater ids)", reader="aadb",
        citation="Kong et al., Photo Aesthetics Ranking Network with Attributes and Content Adaptation, ECCV 2016",
    ),
    "real-cur": BenchmarkSpec(
        "real-cur", "REAL-CUR: real users' curated personal photo collections", reader="real-cur",
        citation="Ren et al., Personalized Image Aesthetics, ICCV 2017 (REAL-CUR test set)",
    ),
}  # fmt: skip


def list_benchmarks() -> list[str]:
    return sorted(BENCHMARKS)


def load_benchmark(name: str, root: str | Path | None = None, *, quick: bool = False) -> tuple[Benchmark, dict]:
    """``(benchmark, info)``; ``info`` holds extra report material (for sim: the world's ``world.json``)."""
    if name not in BENCHMARKS:
        raise BenchmarkNotAvailableError(f"unknown benchmark {name!r}; known: {', '.join(list_benchmarks())}")
    spec = BENCHMARKS[name]
    if spec.kind == "sim":
        return _load_sim(root, quick)
    if spec.kind == "synthetic":
        from eval.synthetic import make_benchmark

        folder = Path(root) if root is not None else Path("runs") / "synthetic-benchmark"
        return make_benchmark(folder), {"variance_decomposition": None, "note": "eval.synthetic test fixture"}
    if root is None:
        raise BenchmarkNotAvailableError(f"benchmark {name!r} is a real dataset: pass --root <folder holding it>")
    if not Path(root).exists():
        raise BenchmarkNotAvailableError(f"--root {root}: no such folder")
    try:
        from eval.readers import READERS, create_benchmark
    except ImportError as err:
        raise BenchmarkNotAvailableError(
            f"benchmark {name!r} needs the dataset readers (eval/readers, registry READERS), which cannot be "
            f"imported in this checkout: {err}"
        ) from None
    if spec.reader not in READERS:
        raise BenchmarkNotAvailableError(
            f"the readers registry has no reader {spec.reader!r} (it has: {', '.join(sorted(READERS))})"
        )
    try:
        benchmark = create_benchmark(spec.reader, Path(root))
    except (ValueError, OSError, KeyError) as err:  # SchemaError is a ValueError
        raise BenchmarkNotAvailableError(f"{name}: cannot read the dataset under {root}: {err}") from None
    if not benchmark.folds:
        raise BenchmarkNotAvailableError(f"{name}: the reader returned no user folds")
    return benchmark, {"citation": spec.citation}


def world_changed(info: dict) -> bool:
    """True if the simulated world folder was rebuilt since :func:`load_benchmark` read it (mixed-state run)."""
    if not info.get("world_root") or not info.get("world_json_sha256"):
        return False
    wfile = Path(info["world_root"]) / "world.json"
    return not wfile.is_file() or hashlib.sha256(wfile.read_bytes()).hexdigest() != info["world_json_sha256"]


def _load_sim(root: str | Path | None, quick: bool) -> tuple[Benchmark, dict]:
    try:
        from eval.sim import ensure_world, load_world
    except ImportError as err:
        raise BenchmarkNotAvailableError(
            f"benchmark 'sim' needs the simulated world package eval/sim/, which cannot be imported: {err}"
        ) from None
    path = Path(root) if root is not None else ensure_world(quick)
    if not (path / "world.json").is_file():
        raise BenchmarkNotAvailableError(f"{path}: not a simulated world folder (no world.json)")
    try:
        world = load_world(path)
        benchmark = world.benchmark()
    except (ValueError, OSError, KeyError) as err:  # SchemaError is a ValueError
        raise BenchmarkNotAvailableError(f"{path}: cannot load the simulated world: {err}") from None
    benchmark.simulated = True
    raw = (path / "world.json").read_bytes()
    meta = json.loads(raw)
    info = {
        "world_json_sha256": hashlib.sha256(raw).hexdigest(),
        "world_root": str(path),
        "world_seed": meta.get("seed"),
        "world_config": meta.get("config"),
        "variance_decomposition": meta.get("variance_decomposition"),
    }
    return benchmark, info
