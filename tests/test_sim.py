"""Tests of the simulated taste world (eval.sim): contract, determinism, attributes, tastes, free text."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import spearmanr

from eval import sim
from eval.sim import images as si
from eval.sim import raters as sr
from eval.sim.__main__ import main as sim_main
from eval.sim.build import fold_of, make_folds
from eval.sim.text import keywords
from piaa.photos import bundled_photos
from piaa.schema import PARA_SCALE, Profile, RatingsTable

MINI = sim.WorldSize(n_piaa=20, n_db=4, n_raters=6, ratings_per_rater=10)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "tiny"
    sim.build_world(out, seed=0, size="tiny", workers=1, verbose=False)
    return out


@pytest.fixture(scope="module")
def photos():
    return bundled_photos()


def synthetic_attributes(n: int, seed: int = 0) -> pd.DataFrame:
    """Attribute rows without rendering (for statistics over many raters, fast)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({a: rng.normal(size=n) for a in si.ATTRIBUTES})
    contents = ["people", "animal", "food", "vehicle", "space", "flower", "architecture", "abstract"]
    df["content"] = [contents[i] for i in rng.integers(len(contents), size=n)]
    df["image"] = [f"piaa_{i:05d}.jpg" for i in range(n)]
    df["pool"] = "piaa"
    return df


@pytest.fixture(scope="module")
def synthetic_raters():
    attrs = synthetic_attributes(400)
    names, mean, std = sim.feature_space(attrs)
    size = sim.WorldSize(400, 0, 120, 300)
    frames, profiles, truth, parts = sim.simulate_raters(attrs, names, mean, std, seed=3, size=size,
                                                         taste=sr.TasteConfig())  # fmt: skip
    return attrs, names, mean, std, frames, profiles, truth, parts


# ------------------------------------------------------------------------------------------------ contract
def test_world_folder_contract(tiny_world):
    info = json.loads((tiny_world / "world.json").read_text())
    assert info["simulated"] is True and info["seed"] == 0
    assert set(info["variance_decomposition"]) >= {"latent", "score", "score_within_user"}
    table = RatingsTable.load(tiny_world / "ratings")
    assert table.scale == PARA_SCALE
    assert table.image_root.resolve() == (tiny_world / "images").resolve()
    assert all(table.image_path(im).is_file() for im in table.images)
    assert len(table.users) == sim.SIZES["tiny"].n_raters
    for user in table.users:
        p = table.profile(user)
        assert p.age and p.gender and p.photography_experience and p.big5_O is not None and p.text
    piaa_images = set(table.images)
    for db in info["databases"]:
        dbt = RatingsTable.load(tiny_world / "databases" / db)
        assert set(dbt.users) == {db}
        assert len(dbt.images) == len(dbt.ratings) == sim.SIZES["tiny"].n_db
        assert not piaa_images & set(dbt.images)
        assert all(dbt.image_path(im).is_file() for im in dbt.images)
        assert dbt.ratings["score"].std() > 0
    folds = json.loads((tiny_world / "folds.json").read_text())["folds"]
    assert len(folds) == 4
    tests = [set(f["test"]) for f in folds]
    assert set().union(*tests) == set(table.users)
    assert sum(len(t) for t in tests) == len(table.users)
    for f in folds:
        assert not set(f["train"]) & set(f["test"])
        assert set(f["train"]) | set(f["test"]) == set(table.users)
    attrs = pd.read_csv(tiny_world / "attributes.csv")
    assert {"image", "source", "content", *si.EDIT_FIELDS, *si.ATTRIBUTES} <= set(attrs.columns)
    with Image.open(tiny_world / "images" / table.images[0]) as im:
        assert im.format == "JPEG" and min(im.size) == si.SHORT_SIDE


def test_scores_on_scale_and_step(tiny_world):
    scores = RatingsTable.load(tiny_world / "ratings").ratings["score"].to_numpy()
    assert scores.min() >= 1 and scores.max() <= 5
    assert np.allclose(scores * 2, np.round(scores * 2))
    assert len(np.unique(scores)) >= 4


def test_deterministic(tmp_path):
    a = sim.build_world(tmp_path / "a", seed=5, size=MINI, workers=1, verbose=False)
    b = sim.build_world(tmp_path / "b", seed=5, size=MINI, workers=1, verbose=False)
    c = sim.build_world(tmp_path / "c", seed=6, size=MINI, workers=1, verbose=False)
    for f in ("ratings/ratings.csv", "ratings/profiles.jsonl", "attributes.csv", "folds.json",
              "databases/colour/ratings.csv", "images/piaa_00003.jpg"):  # fmt: skip
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "ratings/ratings.csv").read_bytes() != (c / "ratings/ratings.csv").read_bytes()
    assert not list(tmp_path.glob(".*building*"))  # temporary build folders are renamed away


def test_rebuild_replaces_atomically(tmp_path):
    out = sim.build_world(tmp_path / "w", seed=1, size=MINI, workers=1, verbose=False)
    (out / "stale.txt").write_text("x")
    sim.build_world(out, seed=1, size=MINI, workers=1, verbose=False)
    assert (out / "world.json").is_file() and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


# ------------------------------------------------------------------------------------------------ attributes
def _attrs_with(photos, **change):
    by = {p.name: p for p in photos}
    edit = si.sample_edit(0, 3, photos)
    edit.update(blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=92, exposure_ev=0.0, vignette=0.0, grayscale=0,
                saturation_gain=1.0, contrast_gain=1.0, temperature=0.0)  # fmt: skip
    edit.update(change)
    with Image.open(io.BytesIO(si.render(by[edit["source"]], edit, 0, 3))) as im:
        return si.attributes(im.convert("RGB"))


@pytest.mark.parametrize(
    "attribute, low, high",
    [
        ("sharpness", {"blur_sigma": 3.0}, {"blur_sigma": 0.0}),
        ("sharpness", {"blur_sigma": 2.0, "noise_sigma": 12.0}, {"blur_sigma": 0.0, "noise_sigma": 12.0}),
        ("brightness", {"exposure_ev": -1.5}, {"exposure_ev": 0.0}),
        ("brightness", {"exposure_ev": 0.0}, {"exposure_ev": 1.0}),
        ("saturation", {"saturation_gain": 0.0, "grayscale": 1}, {"saturation_gain": 1.0}),
        ("colorfulness", {"saturation_gain": 0.3}, {"saturation_gain": 1.8}),
        ("warmth", {"temperature": -0.8}, {"temperature": 0.8}),
        ("contrast", {"contrast_gain": 0.6}, {"contrast_gain": 1.5}),
        ("noise", {"noise_sigma": 0.0}, {"noise_sigma": 15.0}),
        ("clipping", {"exposure_ev": 0.0}, {"exposure_ev": 1.5, "contrast_gain": 1.6}),
    ],
)
def test_attributes_respond_to_edits(photos, attribute, low, high):
    assert _attrs_with(photos, **low)[attribute] < _attrs_with(photos, **high)[attribute]


def test_bundled_photos_are_real_colour_photos(photos):
    assert len(photos) >= 8
    assert len({p.content for p in photos}) >= 6
    assert all(min(p.image.size) >= 256 for p in photos)


def test_photos_folder(tmp_path):
    rng = np.random.default_rng(0)
    for content in ("cats", "dogs"):
        (tmp_path / "photos" / content).mkdir(parents=True)
        for i in range(2):
            arr = (rng.random((360, 480, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "photos" / content / f"{i}.png")
    (tmp_path / "photos" / "cats" / "broken.jpg").write_bytes(b"not an image")
    out = sim.build_world(tmp_path / "w", photos=tmp_path / "photos", size=MINI, workers=1, verbose=False)
    attrs = pd.read_csv(out / "attributes.csv")
    assert set(attrs["content"]) == {"cats", "dogs"}
    with pytest.raises(SystemExit, match="not a folder"):
        sim_main(["--out", str(tmp_path / "x"), "--photos", str(tmp_path / "missing")])


# ------------------------------------------------------------------------------------------------ tastes
def test_profile_part_changes_rankings(tiny_world):
    world = sim.load_world(tiny_world)
    images = world.ratings.images
    expert = Profile(age="35-40", gender="male", education="university", art_experience="expert",
                     photography_experience="expert", big5_E=2, big5_A=3, big5_N=9, big5_O=9, big5_C=8)  # fmt: skip
    novice = Profile(age="18-21", gender="female", education="senior_high_school", art_experience="beginner",
                     photography_experience="beginner", big5_E=9, big5_A=9, big5_N=2, big5_O=2, big5_C=3)  # fmt: skip
    a, b = world.profile_model(expert, images), world.profile_model(novice, images)
    assert spearmanr(a, b).statistic < 0.9
    assert np.abs(sr.profile_part(expert, world.feature_names)).sum() > 0
    assert np.allclose(world.profile_model(Profile(), images), world.population(images))


def test_profiles_explain_ratings(synthetic_raters):
    """Across many raters, the profile-implied taste predicts each rater better than the population mean."""
    attrs, names, mean, std, frames, profiles, truth, parts = synthetic_raters
    x = sr.feature_matrix(attrs, names, mean, std)
    row = {im: i for i, im in enumerate(attrs["image"])}
    w_pop = sr.vec(sr.POPULATION, names)
    gains, oracle_gains = [], []
    for df in frames:
        user = df["user"].iloc[0]
        xi = x[[row[im] for im in df["image"]]]
        w_prof = w_pop + sr.vec(truth[user]["profile_part"], names)
        w_all = w_prof + sr.vec(truth[user]["idiosyncratic_part"], names)
        r_pop = spearmanr(df["score"], xi @ w_pop).statistic
        gains.append(spearmanr(df["score"], xi @ w_prof).statistic - r_pop)
        oracle_gains.append(spearmanr(df["score"], xi @ w_all).statistic - r_pop)
    assert np.mean(gains) > 0.03 and np.mean(np.array(gains) > 0) > 0.6
    assert np.mean(oracle_gains) > np.mean(gains) + 0.03


def test_oracle_beats_population_mean(tiny_world):
    world = sim.load_world(tiny_world)
    bench = world.benchmark()
    assert bench.name == "sim" and bench.simulated and bench.oracle is not None and len(bench.folds) == 4
    table = world.ratings.ratings
    mean_score = table.groupby("image")["score"].mean()
    r_oracle, r_mean = [], []
    for user, df in table.groupby("user"):
        oracle = bench.oracle(user, df["image"].tolist())
        assert oracle.min() > 1 and oracle.max() < 5
        r_oracle.append(np.corrcoef(df["score"], oracle)[0, 1])
        r_mean.append(np.corrcoef(df["score"], mean_score[df["image"]].to_numpy())[0, 1])
    assert np.mean(r_oracle) > np.mean(r_mean) + 0.05
    with pytest.raises(KeyError, match="not in this world"):
        world.oracle(world.ratings.users[0], ["nope.jpg"])


def test_variance_decomposition_sums_to_one(synthetic_raters, tiny_world):
    parts = synthetic_raters[-1]
    d = sim.variance_decomposition(parts, sr.TasteConfig().kappa)
    for key in ("latent", "score", "score_within_user"):
        assert sum(d[key].values()) == pytest.approx(1.0, abs=1e-9)
        assert all(v > 0 for v in d[key].values()), (key, d[key])
    personal = d["score_within_user"]["profile"] + d["score_within_user"]["idiosyncratic"]
    assert 0.2 < personal < 0.6
    s = d["per_user_srocc"]
    assert s["oracle"] > s["profile"] > s["population"]
    assert "simulated" in sim.format_decomposition(d).lower()
    info = json.loads((tiny_world / "world.json").read_text())
    assert sum(info["variance_decomposition"]["score"].values()) == pytest.approx(1.0, abs=1e-9)


def test_free_text_mentions_strongest_preference(synthetic_raters):
    attrs, names, mean, std, frames, profiles, truth, parts = synthetic_raters
    x = sr.feature_matrix(attrs, names, mean, std)
    sd = x.std(axis=0)
    texts = set()
    for user, t in truth.items():
        personal = sr.vec(t["profile_part"], names) + sr.vec(t["idiosyncratic_part"], names)
        strongest = names[int(np.argmax(np.abs(personal) * sd))]
        assert t["mentioned"][0] == strongest
        text = profiles[user].text
        assert any(k.lower() in text.lower() for k in keywords(strongest)), (strongest, text)
        assert 1 <= len(t["mentioned"]) <= 3
        texts.add(text)
    assert len(texts) == len(truth)  # paraphrase variety: no two raters share a text


def test_ensure_world_uses_env(tiny_world, monkeypatch):
    monkeypatch.setenv("PIAA_WORLD_DIR", str(tiny_world))
    assert sim.ensure_world(quick=True) == tiny_world


# ------------------------------------------------------------------------------------------------ world v2
def test_folds_are_stable_across_world_sizes(tmp_path):
    """A user's fold is a seeded hash of its id: the smaller world's fold-k test (and train) users are a subset of
    the larger world's, so a model trained on the larger world's fold-k training users never meets them as test
    users of the smaller world (rater u007 is the same simulated person in both)."""
    small = sim.build_world(tmp_path / "s", seed=2, size=MINI, workers=1, verbose=False, photos="bundled")
    big_size = sim.WorldSize(n_piaa=20, n_db=4, n_raters=30, ratings_per_rater=10)
    big = sim.build_world(tmp_path / "b", seed=2, size=big_size, workers=1, verbose=False, photos="bundled")
    fs = json.loads((small / "folds.json").read_text())["folds"]
    fb = json.loads((big / "folds.json").read_text())["folds"]
    for k in range(4):
        assert set(fs[k]["test"]) <= set(fb[k]["test"])
        assert set(fs[k]["train"]) <= set(fb[k]["train"])
        assert not set(fb[k]["train"]) & set(fs[k]["test"])
    # the same rater: same profile text in both worlds
    ps = RatingsTable.load(small / "ratings").profiles
    pb = RatingsTable.load(big / "ratings").profiles
    assert ps["u003"].age == pb["u003"].age and ps["u003"].gender == pb["u003"].gender
    # folds of 400 users: a partition, every fold used, another seed gives another assignment
    users = [f"u{i:03d}" for i in range(400)]
    folds = make_folds(users, 0, 4)
    assert sorted(u for f in folds for u in f["test"]) == users
    assert [len(f["test"]) for f in folds] == [100] * 4  # balanced: blocks of 4 consecutive raters
    others = make_folds([f"rater-{i}" for i in range(400)], 0, 4)  # non-simulated ids: a seeded hash
    assert all(60 <= len(f["test"]) <= 140 for f in others)
    assert [fold_of(u, 1, 4) for u in users] != [fold_of(u, 0, 4) for u in users]


def test_general_database_carries_the_population_taste(tiny_world):
    world = sim.load_world(tiny_world)
    assert set(world.databases) == set(sr.DATABASES) and "general" in world.databases
    table = world.databases["general"]
    assert (table.scale.min, table.scale.max) == (1.0, 10.0)
    images = list(table.ratings["image"])
    assert all(im.startswith("general_") for im in images)  # its own image pool
    assert not set(images) & set(world.ratings.ratings["image"])
    pop = world.features(images) @ world._w_pop
    assert spearmanr(table.ratings["score"], pop).statistic > 0.6
    # and not another database's taste: the technical panel ranks the same images differently
    tech = sr.vec(sr.DATABASES["technical"][2], world.feature_names)
    gap = (
        spearmanr(table.ratings["score"], pop).statistic
        - spearmanr(table.ratings["score"], world.features(images) @ tech).statistic
    )
    assert gap > 0.0


def test_world_records_its_source_pictures(tmp_path):
    from piaa.photos import read_manifest

    out = sim.build_world(tmp_path / "w", seed=0, size=MINI, workers=1, verbose=False, photos="bundled")
    info = json.loads((out / "world.json").read_text())
    assert info["config"]["photos"] == "bundled"
    sources = info["config"]["sources"]
    manifest = {e.name: e for e in read_manifest()}
    assert [s["name"] for s in sources] == [p.name for p in bundled_photos()]
    for s in sources:
        assert s["sha256"] == manifest[s["name"]].sha256 and s["package"] == manifest[s["name"]].package
    used = set(pd.read_csv(out / "attributes.csv")["source"])
    assert used <= {s["name"] for s in sources}


def test_raters_and_texts_work_with_any_content_classes():
    from piaa.photos import CONTENT_CLASSES

    attrs = synthetic_attributes(300, seed=4)
    classes = [*CONTENT_CLASSES, "boats"]  # the pool's classes plus one no weight table names
    attrs["content"] = [classes[i] for i in np.random.default_rng(4).integers(len(classes), size=len(attrs))]
    names, mean, std = sim.feature_space(attrs)
    assert "content:boats" in names and "content:artwork" in names
    size = sim.WorldSize(300, 0, 80, 100)
    frames, profiles, truth, parts = sim.simulate_raters(attrs, names, mean, std, seed=5, size=size,
                                                         taste=sr.TasteConfig())  # fmt: skip
    assert keywords("content:boats") == ("pictures of boats", "boats photos", "boats scenes")
    for c in CONTENT_CLASSES:  # every pool class has its own wording (not the name-derived fallback)
        assert f"pictures of {c}" not in keywords(f"content:{c}") or c in ("people", "animals")
    mentioned = [m for t in truth.values() for m in t["mentioned"]]
    assert any(m.startswith("content:") and m not in ("content:people",) for m in mentioned)
    for user, t in truth.items():
        text = profiles[user].text.lower()
        assert any(k.lower() in text for k in keywords(t["mentioned"][0])), (t["mentioned"][0], text)
    # the population and profile tables name every pool class (weights may be 0 but they are designed)
    assert all(f"content:{c}" in sr.POPULATION for c in CONTENT_CLASSES)
