"""Benchmark registry: names -> small specs that know how to load an :class:`eval.api.Benchmark`.

Registry: :func:`benchmark_specs` / :func:`list_benchmarks` / :func:`create_benchmark`. The built-in ``sim`` and
``synthetic`` benchmarks plus every PIAA dataset of the readers registry (``eval.readers``: its reader classes and
``DATASETS`` metadata are the one table of real datasets). The simulated world loads through ``eval.sim``.
Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import hashlib
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
    needs_root: bool = True  # real datasets: --root is the folder holding the dataset as distributed
    default_shots: tuple[int, ...] = (0, 10, 100)


_BUILTIN: dict[str, BenchmarkSpec] = {
    "sim": BenchmarkSpec(
        "sim", "simulated taste world (python -m eval.sim); numbers are SIMULATED, never real-data results",
        simulated=True, kind="sim", needs_root=False,
    ),
    "synthetic": BenchmarkSpec(
        "synthetic", "tiny generated benchmark for smoke tests (eval.synthetic; --root = where to write it)",
        simulated=True, kind="synthetic", needs_root=False, default_shots=(0, 10),
    ),
}  # fmt: skip


def benchmark_specs() -> dict[str, BenchmarkSpec]:
    """The built-in benchmarks plus one per PIAA reader of ``eval.readers`` (its registry is the one table of real
    datasets: name, reader class and metadata)."""
    from eval.readers import DATASETS, list_readers

    real = {n: BenchmarkSpec(n, DATASETS[n].title) for n in list_readers("piaa")}
    return {**_BUILTIN, **real}


def list_benchmarks() -> list[str]:
    return sorted(benchmark_specs())


def create_benchmark(name: str, root: str | Path | None = None, *, quick: bool = False) -> tuple[Benchmark, dict]:
    """Alias of :func:`load_benchmark` (the registry's ``create_*`` name)."""
    return load_benchmark(name, root, quick=quick)


def load_benchmark(name: str, root: str | Path | None = None, *, quick: bool = False) -> tuple[Benchmark, dict]:
    """``(benchmark, info)``; ``info`` holds extra report material (for sim: the world's ``world.json``)."""
    specs = benchmark_specs()
    if name not in specs:
        raise BenchmarkNotAvailableError(f"unknown benchmark {name!r}; known: {', '.join(sorted(specs))}")
    spec = specs[name]
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
    from eval.readers import DATASETS
    from eval.readers import create_benchmark as read_benchmark

    try:
        benchmark = read_benchmark(name, Path(root))
    except (ValueError, OSError, KeyError) as err:  # SchemaError is a ValueError
        raise BenchmarkNotAvailableError(f"{name}: cannot read the dataset under {root}: {err}") from None
    if not benchmark.folds:
        raise BenchmarkNotAvailableError(f"{name}: the reader returned no user folds")
    meta = benchmark.meta or {}
    return benchmark, {"citation": DATASETS[name].title, "fold_source": meta.get("fold_source"),
                       "read_report": meta.get("read_report")}  # fmt: skip


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
    meta = world.info  # parsed once, by piaa.worlds.WorldFolder
    info = {
        "world_json_sha256": hashlib.sha256((path / "world.json").read_bytes()).hexdigest(),
        "world_root": str(path),
        "world_seed": meta.get("seed"),
        "world_config": meta.get("config"),
        "variance_decomposition": meta.get("variance_decomposition"),
    }
    return benchmark, info
