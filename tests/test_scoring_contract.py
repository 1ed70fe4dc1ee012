"""One scoring contract: pmllm, taskvec and the ensemble score a list of image paths with the same call shape,
return scores on the requested scale, and report a bad file by name while scoring the rest."""

import numpy as np
import pytest

from piaa.photos import sample_photos
from piaa.schema import PARA_SCALE, Profile, Scale, SchemaError
from piaa.scoring import ScoreResult

TEN = Scale(1.0, 10.0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contract")
    good = [str(p) for p in sample_photos(folder / "samples", n=6)]
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return good, str(folder / "broken.jpg")


@pytest.fixture(scope="module")
def ensemble():
    from eval.ensemble import Ensemble

    return Ensemble.from_pretrained()  # both products' committed defaults, loaded by from_pretrained()


def test_same_call_shape_same_contract(ensemble, photos):
    good, bad = photos
    me = Profile(text="I love warm colourful pictures of animals")
    user = ensemble.personalize("me", good[:4], [5.0, 1.0, 4.0, 2.0], scale=PARA_SCALE, profile=me)
    images = [good[0], bad, *good[1:]]
    calls = {"pmllm": (ensemble.zero, {"profile": me}), "taskvec": (ensemble.few, {"user": user.taskvec}),
             "ensemble": (ensemble, {"user": user})}  # fmt: skip
    for name, (model, who) in calls.items():
        for scale in (PARA_SCALE, TEN):
            out = model.score(images, scale=scale, **who)
            assert isinstance(out, ScoreResult) and out.scale == scale, name
            ok = out.scores[out.ok]
            assert len(ok) == 6 and np.all((ok >= scale.min) & (ok <= scale.max)), (name, ok)
            assert set(out.errors) == {1} and "broken.jpg" in out.errors[1], name
            assert np.isnan(out.scores[1]) and out.rows()[-1]["error"] == out.errors[1]
            assert [r["rank"] for r in out.rows()[:6]] == [1, 2, 3, 4, 5, 6]
        with pytest.raises(ValueError, match="broken.jpg"):
            model.score(images, on_error="raise", **who)
    # default scale: what the model or the user was fitted on
    assert ensemble.zero.score(good, profile=me).scale == PARA_SCALE
    assert ensemble.few.score(good, user=user.taskvec).scale == PARA_SCALE
    assert set(ensemble.score(good, user=user).details["weights"]) == {"profile", "words", "taskvec", "residual"}
    assert ensemble.score(good, profile=me).details["weights"] == {"profile": 1.0}
    alpha = ensemble.few.score(good, user=user.taskvec).details["alpha"]
    assert np.asarray(alpha).shape == tuple(user.taskvec.alpha.shape)
    assert ensemble.zero.score(good, profile=me).details["probs"].shape == (6, 5)


def test_personalize_refuses_bad_ratings(ensemble, photos):
    good, _ = photos
    for bad, why in (
        (7.0, "outside the scale"),
        (4.7, "step"),
        (True, "boolean"),
        (float("nan"), "not a finite number"),
    ):
        with pytest.raises(SchemaError, match=why):
            ensemble.personalize("me", good[:3], [5.0, 1.0, bad], scale=PARA_SCALE)
    with pytest.raises(SchemaError, match="conflicts with score 5 for the same image"):
        ensemble.personalize("me", [good[0], good[0], good[1]], [5.0, 1.0, 3.0], scale=PARA_SCALE)
    with pytest.raises(SchemaError):
        Scale(5.0, 1.0)  # an empty range (scale_range <= 0) cannot be made


def test_rated_photos_keep_their_rating_and_unrated_follow_the_model():
    from piaa.scoring import keep_ratings

    model = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 4.5, 1.5, 3.5])  # the model's order: 0 > 5 > 1 > 7 > 2 > 3 > 6 > 4
    rated = {0: 1.0, 1: 1.0, 2: 5.0, 3: 5.0}  # the user rates the model's top two 1 and the next two 5
    shown = keep_ratings(model, rated, PARA_SCALE)
    order = list(np.argsort(-shown, kind="stable"))
    assert [shown[i] for i in rated] == [1.0, 1.0, 5.0, 5.0]
    assert max(order.index(2), order.index(3)) < min(order.index(0), order.index(1))  # rated 5 above rated 1
    assert np.all((shown >= 1) & (shown <= 5))
    agree = keep_ratings(model, {0: 5.0, 4: 1.0}, PARA_SCALE)  # ratings that agree with the model
    assert list(np.argsort(-agree, kind="stable")) == list(np.argsort(-model, kind="stable"))
    inner = keep_ratings(model, {5: 4.0, 6: 2.0}, PARA_SCALE)  # the model ranks 0 above and 4 below both ratings
    assert list(np.argsort(-inner, kind="stable")) == list(np.argsort(-model, kind="stable"))
    assert 4.0 < inner[0] <= 4.5 and 1.5 - 1e-5 <= inner[4] < 2.0  # spread beyond the ratings, at most half-way on
    assert len({round(v, 3) for v in inner}) == len(inner)  # no two photos shown on the same value
    more = keep_ratings(np.append(model, 9.0), {5: 4.0, 6: 2.0}, PARA_SCALE)  # another photo far above
    assert np.allclose(more[:-1], inner) and inner[0] < more[-1] <= 4.5  # the others' values do not move
