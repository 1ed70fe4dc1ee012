"""Personalized scoring: a user is a small set of merging coefficients over shared task vectors.

::

    from taskvec.model import PersonalizedScorer
    scorer = PersonalizedScorer.from_pretrained()             # theta_0 + the embedded task vectors
    user = scorer.personalize("alice", support_paths, support_scores, scale_range=4.0)   # recipe "fast"
    user.save_pretrained("users/alice")                      # kilobytes: alpha + references to the task vectors
    scores = scorer.score(query_paths, user)                 # normalised [0, 1]; only the ranking matters

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

from taskvec.personalize import FitResult, TaskSet, create_recipe

DEFAULT_ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "efficientnet-lite0"


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
    init_srocc: list[float] = field(default_factory=list)
    fallback: bool = False


class PersonalizedUser:
    """alpha (G, T) + :class:`UserConfig`. Saved as ``alpha.safetensors`` + ``user.json`` (a few kilobytes)."""

    def __init__(self, alpha: torch.Tensor, config: UserConfig):
        self.alpha = alpha.detach().float().cpu()
        self.config = config

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
    def from_pretrained(cls, folder: str | os.PathLike = DEFAULT_ARTIFACTS) -> PersonalizedScorer:
        return cls(TaskSet.from_dir(folder), source=str(folder))

    # ------------------------------------------------------------------ features
    def features(self, paths: Sequence[str | os.PathLike], cache: str | os.PathLike | None = None,
                 progress: bool = False) -> torch.Tensor:  # fmt: skip
        """Trunk outputs of image files (fp16), via the BN-folded channels-last trunk."""
        if not self._folded:
            self.model.fold_batchnorm()
            self._folded = True
        return self.model.trunk_features(paths, cache=cache, progress=progress)

    # ------------------------------------------------------------------ users
    def personalize(self, user: str, support, scores, *, recipe: str = "fast", scale_range: float = 1.0,
                    **kwargs) -> PersonalizedUser:  # fmt: skip
        """Fit alpha on a support set: ``support`` is a list of image paths or a tensor of trunk features."""
        feats = support if isinstance(support, torch.Tensor) else self.features(support)
        res: FitResult = create_recipe(recipe)(self.ts, feats, scores, scale_range=scale_range, **kwargs)
        cfg = UserConfig(user=str(user), recipe=recipe, tasks=list(res.tasks), groups=res.groups,
                         base_fingerprint=self._fp, task_vectors=self.source,
                         backbone=self.model.config.to_dict(), k=len(feats), seconds=res.seconds,
                         init_srocc=[float(x) for x in res.init_srocc], fallback=res.fallback)  # fmt: skip
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
    def score(self, paths: Sequence[str | os.PathLike], user: PersonalizedUser | None = None,
              batch_size: int = 32, workers: int = 4) -> np.ndarray:  # fmt: skip
        """Score image files for a user: decode (threaded, reduced-size), trunk, merged tail + head."""
        from piaa.features import iter_pixel_batches

        if not self._folded:
            self.model.fold_batchnorm()
            self._folded = True
        params = self.merged_params(user) if user is not None else {}
        self.model.eval()
        trunk = self.model.trunk.to(memory_format=torch.channels_last)
        out = np.zeros(len(paths))
        for idx, x in iter_pixel_batches(self.model.encoder, list(paths), batch_size, workers):
            h = trunk(x.contiguous(memory_format=torch.channels_last))
            s = functional_call(self.model, params, (h,), {"stage": "trunk"})
            out[idx] = s.numpy()
        return out
