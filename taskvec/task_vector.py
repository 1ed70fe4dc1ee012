"""Task vectors tau = theta_task - theta_0 (Ilharco et al., "Editing models with task arithmetic", 2023).

:class:`TaskVector` is a small dict of tensors with ``+``, ``-``, unary ``-``, scalar ``*`` and ``apply_to``.
:func:`merge` is the one implementation of theta_0 + sum_t alpha_t * tau_t: ``TaskVector.apply_to``, the merged
weights of a :class:`taskvec.personalize.TaskSet` and the fast recipe's partly cached forward all go through it.
Non-floating entries of a state dict (integer buffers such as BatchNorm's ``num_batches_tracked``) cannot be
subtracted meaningfully; they are left out and listed in ``skipped``. ``only_changed=True`` also leaves out
tensors fine-tuning did not touch (frozen trunk), which is what makes our task vectors compact.

On disk a task vector is ``NAME.safetensors`` (fp16 by default) next to ``NAME.json`` (:class:`TaskVectorConfig`:
backbone config, theta_0 fingerprint, database, scale, metrics). Loading checks the fingerprint against the
theta_0 it will be applied to and refuses a mismatch with a clear error. Library module, no entry point.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn


def merge(
    base: dict[str, torch.Tensor],
    taus: dict[str, torch.Tensor],
    coef: dict[str, torch.Tensor],
    keys: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """``{key: base[key] + sum_t coef[key][t] * taus[key][t]}`` for ``keys`` (default: every key of ``taus``).

    ``taus[key]`` stacks the T task vectors' tensors, (T, *shape); ``coef[key]`` is (T,). Differentiable in
    ``coef`` (the recipes fit it by gradient); ``base`` is not modified.
    """
    keys = taus.keys() if keys is None else keys
    return {k: base[k] + torch.tensordot(coef[k], taus[k], dims=1) for k in keys}


class TaskVector:
    def __init__(self, vector: dict[str, torch.Tensor], skipped: tuple[str, ...] = ()):
        self.vector = dict(vector)
        self.skipped = tuple(skipped)

    @classmethod
    def from_states(cls, base: dict, finetuned: dict, only_changed: bool = False) -> TaskVector:
        vec, skipped = {}, []
        for k, v in finetuned.items():
            if not v.is_floating_point():
                skipped.append(k)
            elif not (only_changed and torch.equal(v, base[k])):
                vec[k] = (v.detach().float() - base[k].detach().float()).cpu()
        return cls(vec, tuple(skipped))

    def _combine(self, other: TaskVector, sign: float) -> TaskVector:
        keys = sorted(set(self.vector) | set(other.vector))
        zero = {k: torch.zeros_like(self.vector.get(k, other.vector.get(k))) for k in keys}
        out = {k: self.vector.get(k, zero[k]) + sign * other.vector.get(k, zero[k]) for k in keys}
        return TaskVector(out, tuple(sorted(set(self.skipped) | set(other.skipped))))

    def __add__(self, other: TaskVector) -> TaskVector:
        return self._combine(other, 1.0)

    def __radd__(self, other):  # sum([tv1, tv2, ...]) starts from 0
        return self if other == 0 else self.__add__(other)

    def __sub__(self, other: TaskVector) -> TaskVector:
        return self._combine(other, -1.0)

    def __neg__(self) -> TaskVector:
        return TaskVector({k: -v for k, v in self.vector.items()}, self.skipped)

    def __mul__(self, c: float) -> TaskVector:
        return TaskVector({k: float(c) * v for k, v in self.vector.items()}, self.skipped)

    __rmul__ = __mul__

    def apply_to(self, base: nn.Module | dict, scaling: float = 1.0) -> dict[str, torch.Tensor]:
        """theta_0 + scaling * tau as a new state dict (a module given as ``base`` is also updated in place)."""
        state = base.state_dict() if isinstance(base, nn.Module) else base
        missing = [k for k in self.vector if k not in state]
        if missing:
            raise KeyError(f"task vector tensor {missing[0]!r} is not in the model it is applied to")
        taus = {k: d.to(state[k].device).float()[None] for k, d in self.vector.items()}
        coef = {k: torch.full((1,), float(scaling), device=t.device) for k, t in taus.items()}
        merged = merge({k: state[k].float() for k in taus}, taus, coef)
        out = {k: merged[k].to(v.dtype) if k in merged else v.clone() for k, v in state.items()}
        if isinstance(base, nn.Module):
            base.load_state_dict(out)
        return out


# ------------------------------------------------------------------------------------------------- storage
class TaskVectorMismatchError(ValueError):
    """A task vector was made from a different theta_0 (backbone/head/seed) than the one it is applied to."""


@dataclass
class TaskVectorConfig:
    database: str
    backbone: dict  # BackboneConfig.to_dict()
    base_fingerprint: str  # sha256 of theta_0 (ScoringModel.fingerprint())
    scale: dict  # the database's rating scale (piaa.schema.Scale.to_dict()); the head predicts it normalised
    dtype: str = "float16"
    skipped: list[str] = field(default_factory=list)
    n_train: int = 0
    metrics: dict = field(default_factory=dict)
    simulated: bool = False
    note: str = ""


def save_task_vector(tv: TaskVector, config: TaskVectorConfig, folder: str | Path) -> Path:
    """Write ``folder/<database>.safetensors`` (in ``config.dtype``) and ``folder/<database>.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, config.dtype)
    config.skipped = list(tv.skipped)
    path = folder / f"{config.database}.safetensors"
    save_file({k: v.to(dtype).contiguous() for k, v in tv.vector.items()}, str(path),
              metadata={"base_fingerprint": config.base_fingerprint})  # fmt: skip
    (folder / f"{config.database}.json").write_text(json.dumps(asdict(config), indent=2))
    return path


def load_task_vector(path: str | Path, expect_fingerprint: str | None = None) -> tuple[TaskVector, TaskVectorConfig]:
    """Load ``X.safetensors`` + ``X.json`` (as float32); with ``expect_fingerprint`` refuse another theta_0."""
    from safetensors.torch import load_file

    path = Path(path).with_suffix(".safetensors")
    meta = path.with_suffix(".json")
    for f in (path, meta):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing (a task vector is NAME.safetensors + NAME.json)")
    from piaa.config import load_config

    config = load_config(TaskVectorConfig, meta)
    if expect_fingerprint is not None and config.base_fingerprint != expect_fingerprint:
        raise TaskVectorMismatchError(
            f"{path}: task vector for database {config.database!r} was fine-tuned from theta_0 "
            f"{config.base_fingerprint[:12]}..., but the model it is applied to is {expect_fingerprint[:12]}... "
            f"(different backbone weights, tail or head config/seed: {config.backbone}); retrain it with "
            "`python -m taskvec.finetune` for this backbone"
        )
    vec = {k: v.float() for k, v in load_file(str(path)).items()}
    return TaskVector(vec, tuple(config.skipped)), config
