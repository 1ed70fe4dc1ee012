"""Personalized scoring: a user is a small set of merging coefficients over shared task vectors.

::

    from taskvec.model import PersonalizedScorer
    scorer = PersonalizedScorer.from_pretrained()             # theta_0 + the embedded task vectors
    user = scorer.personalize("alice", support_paths, support_scores, scale=PARA_SCALE)   # recipe "fast"
    user.save_pretrained("users/alice")                      # kilobytes: alpha + references to the task vectors
    out = scorer.score(query_paths, user=user)               # out.scores on the user's scale, out.details["alpha"]

Scoring merges theta_0 + sum alpha * tau once per user (kept in a small LRU cache of merged tail/head tensors),
then runs an ordinary forward. The trunk is shared by every user, so its output is computed once per image
(BatchNorm folded into the convs, channels-last, inference mode, threaded reduced-size JPEG decoding) and only the
tail + head run per user. Library module, no entry point (see ``python -m taskvec.bench``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

from piaa.schema import Profile, Scale, SchemaError, validate_ratings
from piaa.scoring import ScoreResult
from taskvec.personalize import FitResult, TaskSet, create_recipe, default_groups, task_alpha

DEFAULT_ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "efficientnet-lite0"
UNIT_SCALE = Scale(0.0, 1.0)  # theta_0's normalised scores (no user, so no rating scale to return them on)


@dataclass
class UserConfig:
    user: str
    recipe: str
    tasks: list[str]  # task vector names (databases), the order of alpha's columns
    groups: list[list[str]]  # tensor names sharing each row of alpha
    base_fingerprint: str  # theta_0 the task vectors were made from
    task_vectors: str = ""  # where they were loaded from (informative)
    backbone: dict = field(default_factory=dict)
    k: int = 0
    seconds: float = 0.0
    init_srocc: list[float] = field(default_factory=list)  # each task alone on the ratings (empty with a prior task)
    fallback: bool = False
    scale: dict = field(default_factory=dict)  # the scale of the ratings it was fitted on (Scale.to_dict())
    profile: dict = field(default_factory=dict)  # what the user wrote about themselves, if given (Profile.to_dict())
    skipped: dict = field(default_factory=dict)  # rated photos that could not be read: {path: reason}
    ratings: dict = field(default_factory=dict)  # {sha256 of a rated photo file: its rating} (piaa.scoring)


class PersonalizedUser:
    """alpha (G, T) + :class:`UserConfig`. Saved as ``alpha.safetensors`` + ``user.json`` (a few kilobytes)."""

    def __init__(self, alpha: torch.Tensor, config: UserConfig):
        self.alpha = alpha.detach().float().cpu()
        self.config = config

    @property
    def scale(self) -> Scale | None:
        """The scale the user's ratings were on (scores default to it)."""
        return Scale.from_dict(self.config.scale) if self.config.scale else None

    @property
    def profile(self) -> Profile | None:
        if not self.config.profile:
            return None
        return Profile.from_dict(self.config.profile, source=f"user {self.config.user!r}")

    @property
    def key(self) -> str:
        h = hashlib.sha1(self.alpha.numpy().tobytes())
        h.update(json.dumps([self.config.tasks, self.config.groups, self.config.base_fingerprint]).encode())
        return f"{self.config.user}-{h.hexdigest()[:16]}"

    def coefficients(self) -> dict[str, torch.Tensor]:
        return {k: self.alpha[g] for g, keys in enumerate(self.config.groups) for k in keys}

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"alpha": self.alpha.contiguous()}, str(folder / "alpha.safetensors"))
        (folder / "user.json").write_text(json.dumps(asdict(self.config), indent=1))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> PersonalizedUser:
        from safetensors.torch import load_file

        folder = Path(folder)
        for f in ("alpha.safetensors", "user.json"):
            if not (folder / f).is_file():
                raise FileNotFoundError(
                    f"{folder / f}: missing (a personalized user is alpha.safetensors + user.json)"
                )
        from piaa.config import load_config

        config = load_config(UserConfig, folder / "user.json")
        alpha = load_file(str(folder / "alpha.safetensors"))["alpha"]
        if tuple(alpha.shape) != (len(config.groups), len(config.tasks)):
            raise ValueError(f"{folder}: alpha has shape {tuple(alpha.shape)}, user.json implies "
                             f"({len(config.groups)}, {len(config.tasks)})")  # fmt: skip
        return cls(alpha, config)


class PersonalizedScorer:
    """theta_0 + task vectors; fits users (:meth:`personalize`) and scores image files or cached features."""

    def __init__(self, taskset: TaskSet, source: str = "", cache_users: int = 32):
        self.ts = taskset
        self.model = taskset.model
        self.source = source
        self._fp = self.model.fingerprint()
        self._merged: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self.cache_users = cache_users
        self._folded = False

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike | None = None) -> PersonalizedScorer:
        """theta_0 + the task vectors in ``folder`` (default: the committed ones, :data:`DEFAULT_ARTIFACTS`)."""
        folder = folder or DEFAULT_ARTIFACTS
        return cls(TaskSet.from_dir(folder), source=str(folder))

    # ------------------------------------------------------------------ features
    def features(self, paths: Sequence[str | os.PathLike], cache: str | os.PathLike | None = None,
                 progress: bool = False, errors: dict[int, str] | None = None) -> torch.Tensor:  # fmt: skip
        """Trunk outputs of image files (fp16), via the BN-folded channels-last trunk; ``errors``: per-image policy
        of :func:`piaa.features.encode_images`."""
        if not self._folded:
            self.model.fold_batchnorm()
            self._folded = True
        return self.model.trunk_features(paths, cache=cache, progress=progress, errors=errors)

    # ------------------------------------------------------------------ users
    def personalize(self, user: str, support, scores, *, scale: Scale, recipe: str = "fast",
                    profile: Profile | None = None, on_error: str = "skip", fit: bool = True,
                    **kwargs) -> PersonalizedUser:  # fmt: skip
        """Fit alpha on a support set rated on ``scale``: ``support`` is a list of image paths or a tensor of trunk
        features. ``fit=False`` fits nothing: the user gets the population task's coefficients (the container of a
        few-shot user whose task-vector part is left out, ``eval.fewshot``; the ratings are still checked).
        Ratings off the scale or its step, non-numeric, NaN or conflicting duplicates are refused
        (:func:`piaa.schema.validate_ratings`). A rated photo that cannot be decoded is left out with a warning
        naming it (``on_error="skip"``) or raises (``"raise"``); the user's ``config.skipped`` lists them."""
        import warnings

        from piaa.scoring import check_on_error, content_key

        names = [f"support[{i}]" for i in range(len(support))] if isinstance(support, torch.Tensor) else support
        images, y = validate_ratings(names, scores, scale, source=f"ratings of {user!r}")
        errors: dict[int, str] | None = {} if check_on_error(on_error) == "skip" else None
        feats = support if isinstance(support, torch.Tensor) else self.features(images, errors=errors)
        skipped = {str(images[i]): why for i, why in (errors or {}).items()}
        if errors:
            keep = [i for i in range(len(images)) if i not in errors]
            feats, y = feats[keep], y[keep]
            if len(keep) < 2:
                raise SchemaError(
                    f"ratings of {user!r}: only {len(keep)} of the {len(images)} rated photos could be "
                    "read (personalization needs at least 2): " + "; ".join(skipped.values())
                )
            warnings.warn(f"{len(errors)} rated photo(s) could not be read and were left out: "
                          + "; ".join(skipped.values()), stacklevel=2)  # fmt: skip
        if not fit and kwargs:
            raise TypeError(f"personalize(fit=False) fits nothing: recipe options {sorted(kwargs)} do not apply")
        if recipe == "fast":  # start from, and pull towards, the population's task model (MODEL_CARD.md)
            kwargs.setdefault("prior_task", self.population_task())
        if fit:
            res: FitResult = create_recipe(recipe)(self.ts, feats, y, scale_range=scale.range, **kwargs)
        else:
            create_recipe(recipe)  # an unknown name is still an error
            groups = default_groups(self.ts.keys, blockwise=recipe == "fast")
            alpha = task_alpha(self.ts, self.population_task(), len(groups))
            res = FitResult(alpha, groups, self.ts.names, recipe, [0.0] * self.ts.num_tasks)
        kept = [im for i, im in enumerate(images) if not errors or i not in errors]
        ratings = {} if isinstance(support, torch.Tensor) else {content_key(im): float(r) for im, r in zip(kept, y)}
        cfg = UserConfig(user=str(user), recipe=recipe, tasks=list(res.tasks), groups=res.groups,
                         base_fingerprint=self._fp, task_vectors=self.source,
                         backbone=self.model.config.to_dict(), k=len(feats), seconds=res.seconds,
                         init_srocc=[float(x) for x in res.init_srocc], fallback=res.fallback,
                         scale=scale.to_dict(), profile=profile.to_dict() if profile else {},
                         skipped=skipped, ratings=ratings)  # fmt: skip
        return PersonalizedUser(res.alpha, cfg)

    def merged_params(self, user: PersonalizedUser) -> dict[str, torch.Tensor]:
        """theta_0 + sum alpha * tau for the tail/head tensors, cached per user (LRU)."""
        c = user.config
        if c.base_fingerprint != self._fp:
            raise ValueError(f"user {c.user!r} was fitted on theta_0 {c.base_fingerprint[:12]}..., this scorer's is "
                             f"{self._fp[:12]}... (different backbone/task vectors)")  # fmt: skip
        if list(c.tasks) != list(self.ts.names):
            raise ValueError(f"user {c.user!r} was fitted on task vectors {c.tasks}, this scorer has {self.ts.names}")
        key = user.key
        if key in self._merged:
            self._merged.move_to_end(key)
            return self._merged[key]
        with torch.no_grad():
            merged = {k: v.detach().clone() for k, v in self.ts.merged(user.coefficients()).items()}
        self._merged[key] = merged
        while len(self._merged) > self.cache_users:
            self._merged.popitem(last=False)
        return merged

    def first_linear_cache(self, feats: torch.Tensor, cache_max_images: int = 256):
        """The fast recipe's per-user cache for trunk features ``feats``, to share across several fits of the same
        photos or subsets of them: ``personalize(..., first_cache=cache)`` or ``first_cache=cache.rows(idx)``."""
        from taskvec.personalize import first_linear_cache

        return first_linear_cache(self.ts, feats, cache_max_images)

    def held_back(self, user: PersonalizedUser, feats: torch.Tensor, scores, folds, *, first_cache=None,
                  l2: float | None = None, prior_task: str | None = None) -> np.ndarray:  # fmt: skip
        """Out-of-fold predictions of a fast-recipe user's own ratings ``scores`` of trunk features ``feats``, on
        the user's scale. For each ``(fit_rows, held_rows)`` of ``folds`` the recipe's objective is refitted on the
        fit rows (start and pull towards ``prior_task``, by default the population's; ``l2`` by default
        :func:`taskvec.personalize.default_l2` of the fold's size) to first order around the user's alpha
        (:class:`taskvec.personalize.Linearized`), and the held rows are predicted. One Jacobian serves every fold
        instead of one nonlinear fit per fold."""
        from taskvec.personalize import default_l2, linearize

        if user.config.recipe != "fast":
            raise ValueError(f"held_back: first-order refits model the fast recipe; user {user.config.user!r} was "
                             f"fitted with {user.config.recipe!r}")  # fmt: skip
        scale = user.scale
        y = np.asarray(scores, dtype=np.float64)
        lin = linearize(self.ts, user.alpha, user.config.groups, feats, first_cache)
        prior = prior_task or self.population_task()
        a0 = task_alpha(self.ts, prior, len(user.config.groups))
        out = np.full(len(y), np.nan)
        for fit, held in folds:
            lam = default_l2(len(fit), prior) if l2 is None else float(l2)
            alpha = lin.refit(fit, y[fit], a0=a0, l2=lam, scale_range=scale.range)
            out[held] = scale.denormalize(lin.predict(alpha, held).numpy().astype(np.float64))
        return out

    def forget_users(self) -> None:
        """Drop the cached merged weights (after scoring one-off users, e.g. a benchmark's episodes)."""
        self._merged.clear()

    @torch.inference_mode()
    def score_features(self, feats: torch.Tensor, user: PersonalizedUser | None = None,
                       batch_size: int = 256) -> np.ndarray:  # fmt: skip
        """Normalised scores in [0, 1] from trunk features; ``user=None`` scores with theta_0's tail/head."""
        params = self.merged_params(user) if user is not None else {}
        self.model.eval()
        out = [functional_call(self.model, params, (feats[i : i + batch_size].float(),), {"stage": "trunk"})
               for i in range(0, len(feats), batch_size)]  # fmt: skip
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    @torch.inference_mode()
    def embed(self, feats: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """theta_0's pooled tail output of trunk features (for Lite0 the pretrained 1280-d pooled features)."""
        out = [self.model.tail(feats[i : i + batch_size].float()) for i in range(0, len(feats), batch_size)]
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 0))

    def population_task(self) -> str:
        """The task vector that stands for the population's taste: ``general`` if present, else the first."""
        return "general" if "general" in self.ts.names else self.ts.names[0]

    @torch.inference_mode()
    def task_scores(self, feats: torch.Tensor, task: str | None = None, batch_size: int = 256) -> np.ndarray:
        """Normalised scores in [0, 1] of one task model (theta_0 + tau_task; default :meth:`population_task`)."""
        task = task or self.population_task()
        if task not in self.ts.names:
            raise KeyError(f"no task vector {task!r}; this scorer has {self.ts.names}")
        onehot = task_alpha(self.ts, task, 1)[0]
        params = self.ts.merged({k: onehot for k in self.ts.keys})
        return self.ts.scores(feats, params, batch_size).numpy().astype(np.float64)

    @torch.inference_mode()
    def score(self, images: Sequence, *, user: PersonalizedUser | None = None, profile: Profile | None = None,
              scale: Scale | None = None, on_error: str = "skip", batch_size: int = 32,
              workers: int = 4) -> ScoreResult:  # fmt: skip
        """Score photos for a user (the contract of :mod:`piaa.scoring`): decode (threaded, reduced-size), trunk,
        merged tail + head. ``user=None`` scores with theta_0 (no personalization); ``profile`` is not used.

        Scores are on ``scale`` (default: the scale the user was fitted on; for theta_0 the normalised [0, 1]);
        ``details["alpha"]`` holds the user's merging coefficients ``(groups, tasks)`` and ``details["tasks"]``
        their task names.
        """
        from piaa.features import iter_pixel_batches
        from piaa.scoring import assemble, check_on_error
        from taskvec.backbones import run_trunk

        errors: dict[int, str] | None = {} if check_on_error(on_error) == "skip" else None
        if not self._folded:
            self.model.fold_batchnorm()
            self._folded = True
        params = self.merged_params(user) if user is not None else {}
        self.model.eval()
        trunk = self.model.trunk.to(memory_format=torch.channels_last)
        good, values = [], []
        for idx, x in iter_pixel_batches(self.model.encoder, list(images), batch_size, workers, errors=errors):
            h = run_trunk(trunk, x)
            values.append(functional_call(self.model, params, (h,), {"stage": "trunk"}).numpy())
            good += idx
        scale = scale or (user.scale if user is not None else None) or UNIT_SCALE
        norm = np.concatenate(values) if values else np.zeros(0)
        details = {"tasks": list(self.ts.names)}
        if user is not None:
            details["alpha"] = user.alpha.numpy().tolist()
        return assemble(len(images), good, scale.denormalize(norm), scale, list(images), errors or {}, details)
