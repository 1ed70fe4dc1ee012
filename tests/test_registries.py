"""Every registry target resolves, and every listed scorer runs: scorers (``eval.scorers.SCORERS``), benchmarks
(``eval.benchmarks``), dataset readers (``eval.readers``), models (``piaa.models``), taskvec backbones and
personalization recipes. A broken target (a renamed class, a moved module) fails here, not in a user's run.

The scorers run on a tiny simulated world through ``eval.run.evaluate`` (fold 0, one test user, shots 0 and 10);
the pmllm-family scorers and ``ensemble`` use a tiny random pmllm checkpoint trained on nobody but fold 0's
training users (the committed default was trained on users whose ids the tiny world reuses), ``prompt-only`` the
tiny random LM (the embedded SmolLM2 takes about a minute for its 70 prompts on two busy cores; its folder is checked
below and its prompt-only path in tests/test_pmllm_scorers.py).
"""

from contextlib import nullcontext

import pytest
import torch

from eval.api import Scorer
from eval.benchmarks import BenchmarkNotAvailableError, benchmark_specs, list_benchmarks, load_benchmark
from eval.readers import DATASETS, READERS, ReaderWarning, create_reader, list_readers
from eval.run import evaluate
from eval.scorers import SCORERS, ScorerNotAvailableError, create_scorer, lazy, list_scorers
from piaa.models import (
    ModelNotAvailableError,
    create_text_encoder,
    create_vision_encoder,
    list_llms,
    list_text_encoders,
    list_vision_encoders,
)
from taskvec.backbones import BACKBONES, BackboneConfig, ScoringModel, create_backbone, list_backbones
from taskvec.personalize import RECIPES, create_recipe, list_recipes
from tests.pmllm_tiny import open_gates, tiny_model

PMLLM_FAMILY = ("pmllm", "pmllm-structured", "pmllm-text", "pmllm-demographics", "pmllm-empty")


def resolve_all() -> dict[str, object]:
    """``{name: the scorer class or factory behind it}``; a lazy target that cannot be imported raises."""
    out = {}
    for name in list_scorers():
        factory = SCORERS[name]
        out[name] = factory.resolve() if hasattr(factory, "resolve") else factory
        assert callable(out[name]), name
    return out


# ------------------------------------------------------------------------------------------------ scorers
def test_every_scorer_target_resolves():
    targets = resolve_all()
    assert set(targets) == set(SCORERS) and {"taskvec", "pmllm", "ensemble", "population-mean"} <= set(targets)


@pytest.mark.parametrize(
    "name, target",
    [("taskvec", "eval.scorers_taskvec:nope"), ("ensemble", "eval.no_such_module:EnsembleScorer")],
)
def test_a_broken_target_is_caught(monkeypatch, name, target):
    monkeypatch.setitem(SCORERS, name, lazy(target))
    with pytest.raises(ScorerNotAvailableError, match=target.split(":")[0]):
        resolve_all()
    with pytest.raises(ScorerNotAvailableError, match="cannot be loaded"):
        create_scorer(name)
    with pytest.raises(ScorerNotAvailableError, match="unknown scorer 'nope'"):
        create_scorer("nope")


def test_every_scorer_refuses_an_unknown_option():
    context = {"seed": 0, "cache_dir": None, "quick": True, "out_dir": None, "progress": False}
    for name in list_scorers():  # a misspelt --scorer-options entry is an error, never silently ignored
        with pytest.raises(TypeError, match="no_such_option"):
            create_scorer(name, context=context, no_such_option=1)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from eval.sim import build_world

    out = build_world(tmp_path_factory.mktemp("world") / "tiny", seed=0, size="tiny", workers=1, verbose=False)
    benchmark, info = load_benchmark("sim", out)
    return benchmark, info


@pytest.fixture(scope="module")
def tiny_checkpoint(sim, tiny_dirs, tmp_path_factory):
    benchmark, _ = sim
    model = tiny_model(tiny_dirs)
    open_gates(model)
    model.config.meta = {"train_users": sorted(map(str, benchmark.folds[0][0]))}
    folder = tmp_path_factory.mktemp("pmllm") / "ckpt"
    model.save_pretrained(folder)
    return folder


def scorer_options(checkpoint, tiny_dirs) -> dict[str, dict]:
    """Per-scorer keywords for the tiny run; a scorer not named here runs with its defaults."""
    return {
        **{n: {"checkpoint": checkpoint} for n in PMLLM_FAMILY},
        "ensemble": {"pmllm_checkpoint": checkpoint},
        "ensemble-no-photostats": {"pmllm_checkpoint": checkpoint},
        "prompt-only": {"llm": str(tiny_dirs / "lm")},
        "taskvec-yun2024": {"recipe_kwargs": {"steps": 10}},
    }


def test_every_scorer_runs_on_a_tiny_world(sim, tiny_checkpoint, tiny_dirs, tmp_path):
    benchmark, info = sim
    assert benchmark.simulated and benchmark.oracle is not None and info["world_root"]
    options = scorer_options(tiny_checkpoint, tiny_dirs)
    assert set(options) <= set(list_scorers())  # no stale names here either
    context = {"seed": 0, "cache_dir": tmp_path / "cache", "quick": True, "out_dir": tmp_path, "progress": False,
               "benchmark_name": "sim"}  # fmt: skip
    torch.manual_seed(0)
    scorers = [create_scorer(n, context=context, **options.get(n, {})) for n in list_scorers()]
    assert all(isinstance(s, Scorer) for s in scorers) and [s.name for s in scorers] == list_scorers()
    recipes = {s.recipe for s in scorers if hasattr(s, "recipe")}
    assert recipes == set(list_recipes())  # every personalization recipe runs through a registered scorer
    run = evaluate(benchmark, scorers, shots=[0, 10], repeats=1, seed=0, folds=[0], max_users=1, progress=False)
    assert run["dropped"] == {} and run["fold_skips"] == {}
    for s in scorers:
        shots = {r.shots for r in run["per_user"] if r.method == s.name}
        assert shots == ({10} if s.needs_support else {0, 10}), (s.name, shots)
    assert len(run["per_user"]) == sum(1 if s.needs_support else 2 for s in scorers)  # one user per shot count


# ------------------------------------------------------------------------------------------------ benchmarks
def test_every_benchmark_name_maps_to_a_loader(tmp_path):
    specs = benchmark_specs()
    assert list_benchmarks() == sorted(specs) and {"sim", "synthetic"} <= set(specs)
    real = [n for n, s in specs.items() if s.kind == "reader"]
    assert sorted(real) == sorted(list_readers("piaa")) and real  # every PIAA reader is a benchmark
    for name, spec in specs.items():
        assert spec.kind in ("reader", "sim", "synthetic") and spec.name == name, name
        if spec.kind != "reader":
            continue
        assert name in READERS and DATASETS[name].kind == "piaa", name
        with pytest.raises(BenchmarkNotAvailableError, match="/nonexistent"):
            load_benchmark(name, "/nonexistent")
        with pytest.raises(BenchmarkNotAvailableError, match="--root"):
            load_benchmark(name)
    with pytest.raises(BenchmarkNotAvailableError, match="unknown benchmark 'nope'"):
        load_benchmark("nope")
    bench, _ = load_benchmark("synthetic", tmp_path / "synthetic")
    assert bench.folds and len(bench.table.users) > 0


def test_sim_benchmark_loads(sim, tmp_path):
    benchmark, info = sim
    assert benchmark.folds and set(benchmark.folds[0][1]) <= set(benchmark.table.users)
    with pytest.raises(BenchmarkNotAvailableError, match="no world.json"):
        load_benchmark("sim", tmp_path)


def test_every_reader_is_registered_with_metadata_and_reads_or_refuses(tmp_path):
    assert set(READERS) == set(DATASETS) and sorted(list_readers()) == sorted(READERS)
    for name, cls in READERS.items():
        reader = create_reader(name, tmp_path)
        assert isinstance(reader, cls) and reader.name == name and reader.info is DATASETS[name], name
        assert DATASETS[name].kind in ("piaa", "general"), name
        # an empty folder: a clear refusal, not NotImplementedError (aadb first announces its mean-score fallback)
        announced = pytest.warns(ReaderWarning, match="no per-rater file") if name == "aadb" else nullcontext()
        with pytest.raises((ValueError, OSError)), announced:
            reader.read()
    with pytest.raises(KeyError, match="unknown benchmark reader 'nope'"):
        create_reader("nope", tmp_path)


# ------------------------------------------------------------------------------------------------ models
def test_every_embedded_model_resolves():
    from piaa.models import LLMS, TEXT_ENCODERS

    assert list_llms() and list_vision_encoders() and list_text_encoders()
    for name in list_llms():  # the LLM's folder (config, tokenizer, weights); prompt-only above loads it
        assert (LLMS[name]() / "config.json").is_file(), name
    for name in list_vision_encoders():
        enc = create_vision_encoder(name)
        assert enc.token_dim > 0 and not any(p.requires_grad for p in enc.parameters()), name
    for name in list_text_encoders():
        assert (TEXT_ENCODERS[name]() / "config.json").is_file(), name
        assert create_text_encoder(name) is not None


def test_every_backbone_builds_or_names_the_missing_weights():
    assert list_backbones() == sorted(BACKBONES) and "efficientnet-lite0" in BACKBONES
    for name in list_backbones():
        try:
            model = create_backbone(BackboneConfig(name=name))
        except ModelNotAvailableError as err:  # CLIP weights ship in no package registry
            assert "not available" in str(err), name
            continue
        assert isinstance(model, ScoringModel) and model.trainable_names(), name


def test_every_recipe_resolves():
    assert list_recipes() == sorted(RECIPES)
    for name in list_recipes():
        assert create_recipe(name) is RECIPES[name] and callable(RECIPES[name])
