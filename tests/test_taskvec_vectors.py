"""taskvec: TaskVector arithmetic against direct state-dict computation, the one merge function, storage, head
expected scores."""

import json

import pytest
import torch
from torch import nn

from piaa.schema import PARA_SCALE, Scale
from taskvec.head import ScoreHead
from taskvec.task_vector import (
    TaskVector,
    TaskVectorConfig,
    TaskVectorMismatchError,
    load_task_vector,
    merge,
    save_task_vector,
)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(4))
    net(torch.randn(2, 3, 6, 6))  # materialise the lazy layer, move BN running stats, bump num_batches_tracked
    return net


def test_arithmetic_matches_direct_state_dict_computation():
    base, a, b, c = (_net(s).state_dict() for s in range(4))
    ta, tb, tc = (TaskVector.from_states(base, s) for s in (a, b, c))
    combo = 0.7 * ta + tb - tc * 0.25 + (-ta) * 0.1
    got = combo.apply_to(base)
    for k, v in base.items():
        if not v.is_floating_point():
            assert torch.equal(got[k], v)  # integer buffers untouched
            continue
        want = v + 0.7 * (a[k] - v) + (b[k] - v) - 0.25 * (c[k] - v) - 0.1 * (a[k] - v)
        assert torch.allclose(got[k], want, atol=1e-6, rtol=0), k
    assert sum([ta, tb]).vector.keys() == ta.vector.keys()
    assert torch.allclose((ta + tb).apply_to(base, scaling=0.5)["0.weight"], base["0.weight"] + 0.5 * (
        a["0.weight"] - base["0.weight"] + b["0.weight"] - base["0.weight"]), atol=1e-6)  # fmt: skip


def test_integer_buffers_are_skipped_explicitly_and_module_apply():
    base_net, ft = _net(0), _net(1)
    tv = TaskVector.from_states(base_net.state_dict(), ft.state_dict())
    assert tv.skipped == ("1.num_batches_tracked",)
    assert "1.num_batches_tracked" not in tv.vector and "1.running_mean" in tv.vector
    tv.apply_to(base_net)  # a module is updated in place
    for k, v in ft.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(base_net.state_dict()[k], v, atol=1e-6)


def test_only_changed_keeps_touched_tensors():
    base = _net(0).state_dict()
    ft = {k: v.clone() for k, v in base.items()}
    ft["3.bias"] += 1.0
    tv = TaskVector.from_states(base, ft, only_changed=True)
    assert set(tv.vector) == {"3.bias"}
    with pytest.raises(KeyError, match="nope"):
        TaskVector({"nope": torch.zeros(1)}).apply_to(base)


def test_merge_is_theta0_plus_weighted_taus_differentiable_in_coef():
    base, a, b = (_net(s).state_dict() for s in range(3))
    ta, tb = (TaskVector.from_states(base, s) for s in (a, b))
    keys = sorted(ta.vector)
    taus = {k: torch.stack([ta.vector[k], tb.vector[k]]) for k in keys}
    coef = {k: torch.tensor([0.3, -1.2], requires_grad=True) for k in keys}
    got = merge(base, taus, coef)
    want = (0.3 * ta + tb * -1.2).apply_to(base)  # apply_to itself goes through merge; check against the states
    for k in keys:
        direct = base[k] + 0.3 * (a[k] - base[k]) - 1.2 * (b[k] - base[k])
        assert torch.allclose(got[k], direct, atol=1e-6) and torch.allclose(want[k], direct, atol=1e-6), k
    sum(v.sum() for v in got.values()).backward()
    for k in keys:  # d/dcoef_t of sum(theta) = sum(tau_t)
        assert torch.allclose(coef[k].grad, taus[k].flatten(1).sum(1), atol=1e-4), k
    assert set(merge(base, taus, coef, keys=keys[:1])) == {keys[0]}
    assert all(torch.equal(base[k], _net(0).state_dict()[k]) for k in keys)  # base untouched


def test_save_load_roundtrip_and_fingerprint_mismatch(tmp_path):
    base, ft = _net(0).state_dict(), _net(1).state_dict()
    tv = TaskVector.from_states(base, ft)
    cfg = TaskVectorConfig(database="dbA", backbone={"name": "toy"}, base_fingerprint="f" * 64,
                           scale=Scale(1, 10).to_dict(), dtype="float32")  # fmt: skip
    save_task_vector(tv, cfg, tmp_path)
    tv2, cfg2 = load_task_vector(tmp_path / "dbA", expect_fingerprint="f" * 64)
    assert cfg2.skipped == ["1.num_batches_tracked"] and cfg2.scale == {"min": 1.0, "max": 10.0, "step": None}
    for k in tv.vector:
        assert torch.equal(tv.vector[k], tv2.vector[k])
    with pytest.raises(TaskVectorMismatchError, match="dbA.*fine-tuned from theta_0 ffff"):
        load_task_vector(tmp_path / "dbA.safetensors", expect_fingerprint="0" * 64)
    cfg.dtype, cfg.database = "float16", "dbB"
    save_task_vector(tv, cfg, tmp_path)
    tv3, _ = load_task_vector(tmp_path / "dbB")
    assert (tmp_path / "dbB.safetensors").stat().st_size < (tmp_path / "dbA.safetensors").stat().st_size
    assert torch.allclose(tv3.vector["0.weight"], tv.vector["0.weight"], atol=1e-3)
    (tmp_path / "dbB.json").write_text("{not json")
    with pytest.raises(ValueError, match="dbB.json: malformed"):
        load_task_vector(tmp_path / "dbB")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_task_vector(tmp_path / "nothing")
    assert json.loads((tmp_path / "dbA.json").read_text())["database"] == "dbA"


@pytest.mark.parametrize("scale", [PARA_SCALE, Scale(1, 10), Scale(0, 100), Scale(-3, 3, 1)])
def test_head_expected_score_on_scales(scale):
    head = ScoreHead(16, bins=10, hidden=8, dropout=0.0, seed=3)
    x = torch.randn(5, 16) * 3
    p = head.distribution(x)
    assert torch.allclose(p.sum(-1), torch.ones(5), atol=1e-6)
    want = p @ torch.linspace(scale.min, scale.max, 10)
    got = head.expected_score(x, scale)
    assert torch.allclose(got, want, atol=1e-4) and ((got >= scale.min) & (got <= scale.max)).all()
    # a head that puts all mass on the top bin predicts the scale maximum
    with torch.no_grad():
        head.fc2.bias.copy_(torch.tensor([0.0] * 9 + [100.0]))
        head.fc2.weight.zero_()
    assert torch.allclose(head.expected_score(x, scale), torch.full((5,), float(scale.max)), atol=1e-4)


def test_head_init_is_seeded_and_independent_of_global_rng():
    torch.manual_seed(1)
    h1 = ScoreHead(8, seed=5)
    torch.manual_seed(2)
    h2 = ScoreHead(8, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(h1.state_dict().values(), h2.state_dict().values()))
    assert not torch.equal(ScoreHead(8, seed=6).fc1.weight, h1.fc1.weight)
    with pytest.raises(ValueError, match="2 bins"):
        ScoreHead(8, bins=1)
