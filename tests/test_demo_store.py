"""The demo's memory (demo.store) and its session flows (demo.session) on a stand-in for the models: SQLite in WAL
mode, content-addressed photos with limits, validated ratings, the fitted user as a row, deletion, and one user's
session never reaching another's photos."""

import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from demo.service import Personalized
from demo.session import Demo, movement, taste_summary
from demo.store import StoreError, UserStore, clean_name
from piaa.images import load_image
from piaa.photos import sample_photos
from piaa.schema import Profile, SchemaError
from taskvec.model import PersonalizedUser, UserConfig

TASKS = ["color", "light", "content"]


def fake_user(name: str = "ada") -> PersonalizedUser:
    cfg = UserConfig(user=name, recipe="fast", tasks=TASKS, groups=[["a.w"], ["b.w"]], base_fingerprint="f" * 40, k=2)
    return PersonalizedUser(torch.tensor([[0.5, 0.1, -0.2], [0.3, 0.1, 0.0]]), cfg)


class FakeService:
    """The models' part of DemoService: scores = mean brightness; personalizing reverses the order."""

    def __init__(self, samples):
        self.samples = samples

    def sample_photos(self):
        return self.samples

    def rank(self, profile, paths):
        kept, scores, rejected = [], [], {}
        for p in paths:
            try:
                scores.append(1 + 4 * np.asarray(load_image(p).convert("L"), dtype=float).mean() / 255)
                kept.append(str(p))
            except Exception as err:  # noqa: BLE001 - the stand-in reports every failure like pmllm does
                rejected[str(p).rsplit("/", 1)[-1]] = str(err)
        return kept, np.array(scores), rejected

    def read_taste(self, profile):
        return []

    def personalize(self, paths, rated, zero_shot, name="demo-user", profile=None):
        fitted = SimpleNamespace(taskvec=fake_user(name))  # a FewShotUser's taskvec part is what the store keeps
        return Personalized(-np.asarray(zero_shot), f"Personalized with {len(rated)} rating(s).", fitted)


@pytest.fixture
def photos(tmp_path_factory):
    return sample_photos(tmp_path_factory.mktemp("samples"), n=4)


@pytest.fixture
def store(tmp_path):
    return UserStore(tmp_path / "users.sqlite3", max_photo_bytes=2**20, max_photos=5)


def upload_copies(tmp_path, photos, names=None):
    """Files as Gradio leaves uploads in its temp folder."""
    out = []
    for i, p in enumerate(photos):
        d = tmp_path / "gradio-tmp" / f"u{i}"
        d.mkdir(parents=True, exist_ok=True)
        out.append(d / (names[i] if names else p.name))
        out[-1].write_bytes(p.read_bytes())
    return out


def test_database_is_wal_with_the_tables(store):
    con = sqlite3.connect(store.db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "photos", "ratings", "rankings", "models"} <= tables


def test_users_by_name_and_profile(store):
    ada = store.open_user("  Ada   Lovelace ", {"text": "calm seas"})
    assert ada.name == "Ada Lovelace" and store.get_user("ada lovelace") == ada
    assert store.open_user("ADA LOVELACE").profile == {"text": "calm seas"}
    assert store.open_user("Ada Lovelace", {"age": "22-25"}).profile == {"age": "22-25"}
    assert store.get_user("Grace") is None
    for bad, why in [("", "Enter your name"), ("x" * 41, "at most 40"), ("a\x00b", "control")]:
        with pytest.raises(StoreError, match=why):
            clean_name(bad)


def test_photos_are_copied_by_content_hash_with_limits(store, photos, tmp_path):
    import hashlib

    ada = store.open_user("ada")
    p = store.add_photo(ada, photos[0])
    assert (
        p.sha256 == hashlib.sha256(photos[0].read_bytes()).hexdigest()
        and p.path.read_bytes() == photos[0].read_bytes()
    )
    assert p.path.parent.parent == store.root and p.name == photos[0].name
    assert store.add_photo(ada, photos[0]) == p  # the same content twice is one photo
    other = tmp_path / "other" / photos[0].name
    other.parent.mkdir()
    other.write_bytes(photos[1].read_bytes())
    assert store.add_photo(ada, other).name.endswith("(2).jpg")  # same name, other content: names stay unique
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff" * (2**20 + 1))
    with pytest.raises(StoreError, match=r"huge.jpg: 1.0 MB is over the limit of 1 MB"):
        store.add_photo(ada, big)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(StoreError, match="empty.jpg: the file is empty"):
        store.add_photo(ada, tmp_path / "empty.jpg")
    for i in range(3):
        f = tmp_path / f"n{i}.jpg"
        f.write_bytes(photos[2].read_bytes() + bytes([i]))
        store.add_photo(ada, f)
    f.write_bytes(b"one too many")
    with pytest.raises(StoreError, match=r"n2.jpg: you already have 5 photos, the most .* \(5\)"):
        store.add_photo(ada, f)
    assert len(store.photos(ada)) == 5 and not list(store.root.glob("*/.upload-*"))


def test_ratings_are_validated_on_the_para_scale(store, photos):
    ada = store.open_user("ada")
    a, b = (store.add_photo(ada, p) for p in photos[:2])
    assert store.set_ratings(ada, {a.sha256: 4.5, b.sha256: "2"}) == {a.sha256: 4.5, b.sha256: 2.0}
    for value, why in [(4.7, "not on the scale's step 0.5"), (True, "is a boolean"), (7, "outside the scale")]:
        with pytest.raises(SchemaError, match=f"{b.name}'.*{value!r}.*{why}"):
            store.set_ratings(ada, {a.sha256: 3, b.sha256: value})
    assert store.ratings(ada) == {a.sha256: 4.5, b.sha256: 2.0}  # a refused batch changes nothing
    with pytest.raises(StoreError, match="not one of your photos"):
        store.set_ratings(ada, {"0" * 64: 3})


def test_model_round_trip_and_delete(store, photos):
    ada = store.open_user("ada")
    p = store.add_photo(ada, photos[0])
    store.set_ratings(ada, {p.sha256: 3})
    store.save_ranking(ada, "zero_shot", {p.sha256: 3.2}, "note")
    store.save_model(ada, fake_user())
    back = store.load_model(ada)
    assert torch.equal(back.alpha, fake_user().alpha) and back.config == fake_user().config
    assert taste_summary(back) == (TASKS, pytest.approx([0.4, 0.1, -0.1]))
    assert store.ranking(ada, "zero_shot") == ({p.sha256: 3.2}, "note")
    assert store.delete_user(ada) == 1
    assert store.get_user("ada") is None and not p.path.exists() and not p.path.parent.exists()
    con = sqlite3.connect(store.db)
    assert all(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] == 0 for t in ("photos", "ratings", "models"))


def test_a_user_cannot_reach_another_users_photos(store, photos, tmp_path):
    demo = Demo(FakeService(photos), store)
    demo.rank("ada", Profile(text="bright"), upload_copies(tmp_path / "a", photos[:2]))
    demo.rank("bob", Profile(text="dark"), upload_copies(tmp_path / "b", photos[2:], names=["secret.jpg", "b.jpg"]))
    ada, bob = store.get_user("ada"), store.get_user("bob")
    secret = next(p for p in store.photos(bob) if p.name == "secret.jpg")
    with pytest.raises(StoreError, match="not one of your photos"):
        store.photo(ada, secret.sha256)
    assert all(str(store.root / ada.token) in path for path, _ in demo.view(ada).gallery)
    note = demo.save_ratings("ada", [["secret.jpg", 4]])  # naming bob's photo from ada's session
    assert "not one of yours" in note and store.ratings(ada) == {} and store.ratings(bob) == {}
    view = demo.personalize("ada", [["secret.jpg", 4], [photos[0].name, 2]])
    assert "not one of yours" in view.note and not view.gallery


def test_session_flow_restores_everything(store, photos, tmp_path):
    demo = Demo(FakeService(photos), store)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(photos[0].read_bytes()[:300])
    uploads = upload_copies(tmp_path, photos[:3]) + [bad]
    view = demo.rank("Ada", Profile(text="bright", age="22-25"), uploads)
    assert len(view.gallery) == 3 and "Skipped 1 file(s):\n* broken.jpg:" in view.note
    assert not any(u.exists() for u in uploads)  # uploads are not left in the temp folder
    assert [r[0] for r in view.table] == [c.split(" · ")[0].split(" ", 1)[1] for _, c in view.gallery]
    rows = [[view.table[0][0], 4.7], [view.table[1][0], 2]]
    assert "4.7" in demo.personalize("Ada", rows).note and store.ratings(store.get_user("ada")) == {}
    rows[0][1] = 5
    after = demo.personalize("Ada", rows)
    assert after.alpha == (TASKS, pytest.approx([0.4, 0.1, -0.1])) and "photos moved" in after.note
    assert any("↑" in c for _, c in after.gallery) and sum(after.moved.values()) == 0
    back = demo.continue_as("ada")
    assert (back.gallery, back.table, back.alpha) == (after.gallery, after.table, after.alpha)
    assert back.profile == {"text": "bright", "age": "22-25", "gender": "", "photography_experience": ""}
    assert "Welcome back, Ada" in back.note and "photos moved" in back.note
    assert "No saved data" in demo.continue_as("Grace").note
    assert "Deleted Ada's data" in demo.delete("Ada").note and "No saved data" in demo.continue_as("Ada").note


def test_samples_are_stored_when_nothing_is_uploaded(store, photos):
    view = Demo(FakeService(photos), store).rank("ada", Profile())
    assert len(view.gallery) == 4 and "sample photos" in view.note and len(store.photos(store.get_user("ada"))) == 4


def test_movement_counts_places():
    assert movement({"a": 3, "b": 2, "c": 1}, {"a": 1, "b": 2, "c": 3}) == {"a": -2, "b": 0, "c": 2}
