"""The scorer registry and the baseline scorers.

Registry: ``SCORERS`` is a plain dict ``name -> factory`` (a :class:`eval.api.Scorer` subclass or any callable
returning one). ``create_scorer(name, **kw)`` builds one, ``list_scorers()`` lists the names.

Baselines (defined here):

* ``random`` - seeded uniform noise per (seed, user, repeat, shots): the chance level (SROCC ~ 0).
* ``population-mean`` - a ridge regressor on frozen EfficientNet-Lite0 pooled features, trained per fold on the
  mean score per image over the fold's **training users only**; predicts the same for every user (the generic
  aesthetic model every PIAA method must beat). Features are cached (safetensors) under
  ``$PIAA_CACHE_DIR/features/`` via :func:`piaa.features.encode_images`; the ridge penalty is chosen by
  generalized cross-validation on those training targets (never on test ratings).
* ``support-residual`` - few-shot: population-mean plus a ridge fitted to the user's support residuals.
* ``oracle`` - simulated worlds only: the world's noise-free scores for the user (the ceiling set by rating noise).

Extension point: another method is registered by **one dict entry** pointing at its adapter module, imported only
when the scorer is created, e.g.::

    SCORERS["taskvec"] = lazy("eval.scorers_taskvec:TaskVecScorer")

A factory may accept any of the run-context keywords ``seed``, ``cache_dir``, ``quick``, ``out_dir``,
``benchmark_name``, ``progress``; ``python -m eval.run`` passes those that the factory's signature names (all of
them if it takes ``**kwargs``). Scorers set ``needs_support = True`` to run only in few-shot; zero-shot scorers run
at every shot count (they ignore the support set), so they share the results table with the few-shot ones.
``fit`` runs once per fold (for all shot counts); ``eval.protocols.fold_key(train_users)`` names a per-fold
checkpoint. A scorer that raises is dropped from the run with its reason recorded; the others' results stay.

Library module, no entry point (see ``python -m eval.run``).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable

import numpy as np

from eval.api import Benchmark, Scorer, UserTask
from eval.protocols import stable_int
from piaa.stats import RIDGE_ALPHAS


class ScorerNotAvailableError(RuntimeError):
    """An unknown scorer name, or a registered scorer whose adapter module cannot be imported."""


# ------------------------------------------------------------------------------------------------ features
_FEATURE_MEMO: dict[tuple, dict[str, np.ndarray]] = {}


def benchmark_features(
    benchmark: Benchmark,
    encoder_name: str = "efficientnet-lite0",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Pooled frozen-encoder features of every image in the benchmark: ``{image: (D,) float32}``.

    Encodes all rated images once (train and test users' images alike - images are inputs, not ratings), cached on
    disk and memoized in the process.
    """
    images = benchmark.table.images
    key = (benchmark.name, str(benchmark.table.image_root), encoder_name, len(images))
    if key not in _FEATURE_MEMO:
        from piaa.features import encode_images, feature_cache_dir
        from piaa.models import create_vision_encoder

        encoder = create_vision_encoder(encoder_name)
        paths = [benchmark.image_path(i) for i in images]
        feats = encode_images(encoder, paths, keep=("pooled",), cache=feature_cache_dir(cache_dir),
                              progress=progress)["pooled"]  # fmt: skip
        arr = feats.float().numpy()
        _FEATURE_MEMO[key] = {img: arr[i] for i, img in enumerate(images)}
    return _FEATURE_MEMO[key]


# ------------------------------------------------------------------------------------------------ baselines
class RandomScorer(Scorer):
    """Uniform random scores, reproducible per (seed, user, repeat, shots)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def predict(self, task: UserTask) -> np.ndarray:
        ss = np.random.SeedSequence([self.seed, stable_int(task.user), task.repeat, task.shots, 7])
        return np.random.default_rng(ss).random(len(task.query_images))


def training_targets(benchmark: Benchmark, train_users: list[str]) -> tuple[list[str], np.ndarray]:
    """Mean score per image over the fold's training users only (images no training user rated are absent)."""
    table = benchmark.table.for_users(train_users)
    means = table.mean_scores().sort_index()
    return [str(i) for i in means.index], means.to_numpy(dtype=np.float64)


class PopulationMeanScorer(Scorer):
    """Ridge on frozen pooled features -> the training users' mean score; the same prediction for every user."""

    name = "population-mean"

    def __init__(
        self,
        encoder: str = "efficientnet-lite0",
        alphas: tuple[float, ...] = RIDGE_ALPHAS,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        self.encoder = encoder
        self.alphas = tuple(float(a) for a in alphas)
        self.cache_dir = cache_dir
        self.progress = progress
        self.model = None
        self.features: dict[str, np.ndarray] = {}
        self.alpha_: float | None = None

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:
        from piaa.stats import fit_population_ridge

        if not train_users:
            raise ValueError(f"{benchmark.name}: population-mean needs training users, the fold has none")
        self.features = benchmark_features(benchmark, self.encoder, self.cache_dir, progress=self.progress)
        images, y = training_targets(benchmark, train_users)
        x = np.stack([self.features[i] for i in images])
        self.model = fit_population_ridge(x, y, self.alphas)
        self.alpha_ = float(self.model[-1].alpha_)

    def predict(self, task: UserTask) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("population-mean: call fit(benchmark, train_users) before predict")
        missing = [i for i in task.query_images if i not in self.features]
        if missing:
            raise KeyError(f"population-mean: no features for {len(missing)} image(s), e.g. {missing[0]}")
        x = np.stack([self.features[i] for i in task.query_images])
        return self.model.predict(x)


class SupportResidualScorer(PopulationMeanScorer):
    """Few-shot baseline: population-mean + a ridge on the same features fitted to the user's support residuals.

    The residual ridge's penalty is chosen by leave-one-out (GCV) on the support set alone; with a large penalty
    it falls back to population-mean. The personal-residual idea follows Ren et al. (ICCV 2017).
    """

    name = "support-residual"
    needs_support = True

    def predict(self, task: UserTask) -> np.ndarray:
        base = super().predict(task)
        if len(task.support_images) < 3:
            return base
        scaler = self.model[0]
        xs = scaler.transform(np.stack([self.features[i] for i in task.support_images]))
        resid = np.asarray(task.support_scores, dtype=np.float64) - self.model[-1].predict(xs)
        xq = scaler.transform(np.stack([self.features[i] for i in task.query_images]))
        return base + loo_ridge(xs, resid, xq, self.alphas)


def loo_ridge(x: np.ndarray, y: np.ndarray, xq: np.ndarray, alphas: tuple[float, ...]) -> np.ndarray:
    """Predictions for ``xq`` of :class:`piaa.stats.LooRidge` fitted on the few rows ``x, y``."""
    from piaa.stats import LooRidge

    return LooRidge.fit(x, y, alphas).predict(xq)


class OracleScorer(Scorer):
    """The simulated world's noise-free scores for the user (needs ``Benchmark.oracle``)."""

    name = "oracle"
    requires_oracle = True

    def __init__(self):
        self.benchmark: Benchmark | None = None

    def fit(self, benchmark: Benchmark, train_users: list[str]) -> None:
        if benchmark.oracle is None:
            raise ScorerNotAvailableError(f"oracle: benchmark {benchmark.name!r} has no oracle (simulated only)")
        self.benchmark = benchmark

    def predict(self, task: UserTask) -> np.ndarray:
        if self.benchmark is None:
            raise RuntimeError("oracle: call fit(benchmark, train_users) before predict")
        return np.asarray(self.benchmark.oracle(task.user, task.query_images), dtype=np.float64)


# ------------------------------------------------------------------------------------------------ registry
def lazy(target: str) -> Callable[..., Scorer]:
    """A factory for ``"package.module:Attr"`` that imports the module only when the scorer is created."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ValueError(f"lazy scorer target must look like 'package.module:Attr', got {target!r}")

    def resolve() -> Callable[..., Scorer]:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ScorerNotAvailableError(f"scorer adapter {target} cannot be loaded: {err}") from None

    def factory(**kw) -> Scorer:
        return resolve()(**kw)

    factory.resolve = resolve  # type: ignore[attr-defined]
    factory.target = target  # type: ignore[attr-defined]
    factory.__name__ = f"lazy({target})"
    return factory


SCORERS: dict[str, Callable[..., Scorer]] = {
    "random": RandomScorer,
    "population-mean": PopulationMeanScorer,
    "oracle": OracleScorer,
    "support-residual": SupportResidualScorer,
    # Methods: one entry each, imported only when created.
    "taskvec": lazy("eval.scorers_taskvec:create_fast"),
    "taskvec-yun2024": lazy("eval.scorers_taskvec:create_yun2024"),
    "pmllm": lazy("eval.scorers_pmllm:PMLLMScorer"),
    "pmllm-structured": lazy("eval.scorers_pmllm:PMLLMStructuredScorer"),
    "pmllm-text": lazy("eval.scorers_pmllm:PMLLMTextScorer"),
    "pmllm-demographics": lazy("eval.scorers_pmllm:PMLLMDemographicsScorer"),
    "pmllm-empty": lazy("eval.scorers_pmllm:PMLLMEmptyScorer"),
    "prompt-only": lazy("eval.scorers_pmllm:PromptOnlyScorer"),
    "ensemble": lazy("eval.scorers_ensemble:EnsembleScorer"),
    "ensemble-no-photostats": lazy("eval.scorers_ensemble:create_no_photostats"),
    "residual": lazy("eval.scorers_ensemble:create_residual"),
    "residual-no-photostats": lazy("eval.scorers_ensemble:create_residual_no_photostats"),
}

BASELINES = ("random", "population-mean", "support-residual", "oracle")


def list_scorers() -> list[str]:
    return sorted(SCORERS)


def _accepted(factory: Callable, context: dict) -> dict:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(context)
    return {k: v for k, v in context.items() if k in params}


def create_scorer(name: str, *, context: dict | None = None, **kw) -> Scorer:
    """Build the scorer registered as ``name``; its ``.name`` is set to ``name`` (the results-table row).

    ``kw`` go to the factory as given; of ``context`` (run-wide values such as ``seed``, ``cache_dir``) only the
    keys the factory's signature names are passed.
    """
    if name not in SCORERS:
        raise ScorerNotAvailableError(f"unknown scorer {name!r}; registered: {', '.join(list_scorers())}")
    factory = SCORERS[name]
    target = factory.resolve() if hasattr(factory, "resolve") else factory
    args = {**_accepted(target, context or {}), **kw}
    scorer = target(**args)
    scorer.name = name
    return scorer
