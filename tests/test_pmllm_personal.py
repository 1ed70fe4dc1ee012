"""pmllm's bilinear personal head: zero-initialised == no head (exact), cached == naive with a trained-looking
head, save/load bit-exact, the profile changes the shift, and train_personal learns a tiny table's personal taste
without reading the fold's test users."""

import json

import numpy as np
import pytest
import torch

from piaa.schema import Profile, RatingsTable
from pmllm.model import PMLLM
from pmllm.train_personal import main as personal_main
from pmllm.train_personal import residuals
from tests.pmllm_tiny import PROFILE, images, open_gates, tiny_model


def fit_personal_head(tiny_dirs, tiny_table, tmp_path, *extra: str) -> None:
    """Save an untrained tiny base for fold 0 to ``tmp_path/base``, fit a personal head on it into ``tmp_path/out``."""
    base = tiny_model(tiny_dirs)
    base.config.meta = {"users_from": str(tiny_table / "folds.json"), "fold": 0}
    base.save_pretrained(tmp_path / "base")
    personal_main([
        "--base", str(tmp_path / "base"), "--ratings", str(tiny_table / "ratings"),
        "--users-from", str(tiny_table / "folds.json"), "--out", str(tmp_path / "out"), "--val-frac", "0.25",
        "--cache-dir", str(tiny_table / "cache"), *extra,
    ])  # fmt: skip


def _perturb(model: PMLLM, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.personal.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))


def test_zero_head_is_exact_and_cached_equals_naive(tiny_dirs, tmp_path):
    plain = tiny_model(tiny_dirs)
    with_head = tiny_model(tiny_dirs, personal_rank=4)
    assert "personal.gain" in with_head.trainable_state_dict() and "personal.gain" not in plain.trainable_state_dict()
    imgs = images(5)
    a, b = plain.score(imgs, profile=PROFILE), with_head.score(imgs, profile=PROFILE)
    assert np.array_equal(a.scores, b.scores)  # gain 0: adds exact zeros, same fusion init
    _perturb(with_head)
    open_gates(with_head, seed=2)
    c = with_head.score(imgs, profile=PROFILE, batch_size=2)
    d = with_head.score(imgs, profile=PROFILE, cached=False, batch_size=3)
    assert np.abs(c.scores - d.scores).max() < 1e-4 and np.abs(c.details["probs"] - d.details["probs"]).max() < 1e-4
    other = with_head.score(imgs, profile=Profile(text="Bright beaches."))
    assert np.abs(other.scores - c.scores).max() > 1e-4
    with_head.save_pretrained(tmp_path / "ck")
    loaded = PMLLM.from_pretrained(tmp_path / "ck")
    assert loaded.config.personal_rank == 4
    assert np.array_equal(loaded.score(imgs, profile=PROFILE).scores, with_head.score(imgs, profile=PROFILE).scores)


def test_residuals_leave_one_out_and_centred(tiny_table):
    table = RatingsTable.load(tiny_table / "ratings")
    fit = ["u0", "u1", "u2", "u3"]
    rows = table.ratings.index.to_numpy()
    res, mean = residuals(table, fit, rows, 4.0)
    r = table.ratings
    i = int(np.flatnonzero((r["user"] == "u0").to_numpy() & (r["image"] == "img00.jpg").to_numpy())[0])
    others = r[(r["image"] == "img00.jpg") & r["user"].isin(["u1", "u2", "u3"])]["score"].mean()
    assert abs(mean[i] - others) < 1e-9  # leave-one-out photo mean
    for u in r["user"].unique():
        assert abs(res[(r["user"] == u).to_numpy()].mean()) < 1e-5


def test_train_personal_learns_tiny_taste(tiny_dirs, tiny_table, tmp_path):
    fit_personal_head(tiny_dirs, tiny_table, tmp_path, "--rank", "4", "--views", "2", "--iters", "80", "--lr", "0.03",
                      "--wd-grid", "0.01")  # fmt: skip
    cfg = json.loads((tmp_path / "out" / "pmllm_config.json").read_text())
    ph = cfg["meta"]["personal_head"]
    assert cfg["personal_rank"] == 4 and ph["n_train_users"] == 4 and ph["selected_on"].startswith("validation")
    val = json.loads((tmp_path / "out" / "personal_validation.json").read_text())
    assert set(val["val_users"]) <= {"u0", "u1", "u2", "u3"}  # test users u4, u5 never used
    model = PMLLM.from_pretrained(tmp_path / "out")
    assert float(model.personal.gain.detach()) != 0.0
    table = RatingsTable.load(tiny_table / "ratings")
    imgs = [table.image_path(f"img{i:02d}.jpg") for i in range(12)]
    bright = model.score(imgs, profile=Profile(age="22-25", text="I love bright photos")).scores
    dark = model.score(imgs, profile=Profile(age="22-25", text="I love dark photos")).scores
    # the head's shift differs between the two tastes in the right direction (bright photos have high index)
    diff = bright - dark
    assert np.corrcoef(diff, np.arange(12))[0, 1] > 0


def test_fields_encoding_and_exact_ridge_head():
    from pmllm.fusion import encode_fields, fields_vocab
    from pmllm.train_personal import head_from_ridge

    profs = [Profile(age="22-25", gender="male", big5_O=6.0), Profile(age="30-34", gender="female", big5_O=2.0)]
    vocab = fields_vocab(profs)
    assert vocab["age"] == ["22-25", "30-34"] and vocab["big5_O"][0] == "num"
    f = encode_fields(profs[0], vocab)[0].tolist()
    assert f == [1.0, 0.0, 1.0, 0.0, 1.0]  # age one-hot, big5_O standardised, gender one-hot (female, male)
    assert torch.count_nonzero(encode_fields(Profile(), vocab)) == 0  # empty profile = all unknown = zeros
    assert torch.count_nonzero(encode_fields(Profile(age="70+"), vocab)) == 0  # unseen category = unknown
    rng = np.random.default_rng(0)
    n_f, kv, d_vis = 5, 3, 12
    w, a, mu = rng.normal(size=(n_f, kv)), rng.normal(size=(kv, d_vis)), rng.normal(size=d_vis)
    head = head_from_ridge(w, a, mu)
    fvec, v = torch.randn(4, n_f), torch.randn(4, d_vis)
    got = head(fvec, v).detach().double().numpy()
    vn = torch.nn.functional.layer_norm(v, (d_vis,)).double().numpy()
    want = np.einsum("nf,fk,nk->n", fvec.double().numpy(), w, (vn - mu) @ a.T)
    assert np.abs(got - want).max() < 1e-3 * (1 + np.abs(want).max())
    assert torch.equal(head(torch.zeros(4, n_f), v).detach(), torch.zeros(4))  # empty profile: exactly no shift


def test_train_personal_fields_mode(tiny_dirs, tiny_table, tmp_path):
    fit_personal_head(tiny_dirs, tiny_table, tmp_path, "--input", "fields", "--views", "1", "--kv-grid", "2",
                      "--alpha-grid", "1", "10")  # fmt: skip
    cfg = json.loads((tmp_path / "out" / "pmllm_config.json").read_text())
    assert cfg["personal_input"] == "fields" and cfg["personal_vocab"]["age"] == ["22-25"]
    assert cfg["meta"]["personal_head"]["ridge_alpha"] in (1.0, 10.0)
    model = PMLLM.from_pretrained(tmp_path / "out")
    table = RatingsTable.load(tiny_table / "ratings")
    imgs = [table.image_path(f"img{i:02d}.jpg") for i in range(5)]
    plain = PMLLM.from_pretrained(tmp_path / "base")
    # empty profile: the head adds exactly nothing, the scores are the base model's
    assert np.array_equal(model.score(imgs, profile=Profile()).scores, plain.score(imgs, profile=Profile()).scores)
    a = model.score(imgs, profile=Profile(age="22-25"))
    b = model.score(imgs, profile=Profile(age="22-25"), cached=False)
    assert np.abs(a.scores - b.scores).max() < 1e-4


def test_fields_ridge_too_large_is_refused_before_allocating():
    """A --kv-grid whose ridge LAPACK cannot index (n*n >= 2**31) is a clear error naming the flag, raised before
    the normal matrix is allocated (at kv 256 with the default profile size it used to segfault)."""
    from pmllm.train_personal import MAX_UNKNOWNS, check_ridge_size, fit_fields_ridge

    check_ridge_size(10, 4)  # small: accepted
    with pytest.raises(ValueError, match=r"--kv-grid 300: the fields ridge would have 60002 unknowns"):
        check_ridge_size(200, 300)
    rng = np.random.default_rng(0)
    fviews, vn = rng.normal(size=(2, 1, 200)), rng.normal(size=(300, 300))
    with pytest.raises(ValueError, match="use --kv-grid values of at most"):
        fit_fields_ridge(fviews, vn, np.array([0, 1]), np.array([0, 1]), np.zeros(2), 300, [1.0], np.arange(300))
    assert 200 * 231 + 2 <= MAX_UNKNOWNS < 200 * 232 + 2  # the bound is LAPACK's 32-bit one
