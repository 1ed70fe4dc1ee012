"""Tests of piaa.photos: the photo-pool manifest, checksum verification, idempotent fetch, the missing-apt-get
message, near-duplicate hashes and the demo's sample photos. None of them calls apt-get (CI has no pool)."""

import csv
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from piaa import photos as ph


def _picture(seed: int, size=(360, 240)) -> Image.Image:
    """A smooth random 'scene' (blurred noise + gradient), different per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    arr = np.asarray(img, dtype=float) + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.fixture()
def fake_package(tmp_path):
    """A fake extracted Debian package with three pictures and a manifest listing them."""
    root = tmp_path / "x-opencv-doc"
    folder = root / "usr/share/doc/opencv-doc/examples/data"
    folder.mkdir(parents=True)
    rows = []
    for i, content in enumerate(["animal", "food", "animal"]):
        path = folder / f"pic{i}.png"
        _picture(i).save(path)
        rows.append({"name": f"ocv-pic{i}", "package": "opencv-doc", "path": str(path.relative_to(root)),
                     "sha256": ph.sha256_file(path), "kind": "photo", "content": content,
                     "licence": "Apache-2.0 AND BSD-3-Clause", "notes": ""})  # fmt: skip
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ph.MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return root, manifest


# ------------------------------------------------------------------------------------------------ manifest
def test_manifest_is_well_formed():
    entries = ph.read_manifest()
    assert len(entries) >= 80
    names = [e.name for e in entries]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9_\-]+", n) for n in names)
    assert all(re.fullmatch(r"[0-9a-f]{64}", e.sha256) for e in entries)
    assert len({e.sha256 for e in entries}) == len(entries)  # no file listed twice
    assert {e.kind for e in entries} <= set(ph.KINDS)
    assert {e.content for e in entries} <= set(ph.CONTENT_CLASSES)
    assert all(e.licence and e.path for e in entries)
    allowed = set(ph.DEBIAN_PACKAGES) | {"scikit-image", "scikit-learn", "matplotlib"}
    assert {e.package for e in entries} <= allowed
    assert {e.package for e in entries} >= set(ph.DEBIAN_PACKAGES)
    counts = {c: sum(e.content == c for e in entries) for c in {e.content for e in entries}}
    assert len(counts) >= 8 and "artwork" in counts
    assert min(counts.values()) >= 3, counts
    # one picture per wallpaper set
    sets = [e.path.split("/")[3] for e in entries if e.package == "plasma-workspace-wallpapers"]
    assert len(sets) == len(set(sets))


def test_manifest_lists_the_bundled_photos():
    by = {e.name: e for e in ph.read_manifest()}
    for photo in ph.bundled_photos():
        entry = by[photo.name]
        root = ph.python_package_root(entry.package)
        assert ph.sha256_file(root / entry.path) == entry.sha256


def test_read_manifest_refuses_wrong_columns(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("name,package\nx,y\n")
    with pytest.raises(ph.PoolError, match="columns"):
        ph.read_manifest(bad)


# ------------------------------------------------------------------------------------------------ verification
def test_install_verifies_checksums_and_pool_reads_back(fake_package, tmp_path):
    root, manifest = fake_package
    dest = tmp_path / "pool"
    ph.install_from_roots(ph.read_manifest(manifest), {"opencv-doc": root}, dest, log=lambda s: None)
    got = ph.pool_photos(dest, manifest=manifest)
    assert [p.name for p in got] == ["ocv-pic0", "ocv-pic1", "ocv-pic2"]
    assert [p.content for p in got] == ["animal", "food", "animal"]
    assert all(p.image.mode == "RGB" and min(p.image.size) == 240 for p in got)


def test_corrupted_original_is_refused_by_name(fake_package, tmp_path):
    root, manifest = fake_package
    entries = ph.read_manifest(manifest)
    victim = root / entries[1].path
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ph.PoolError, match=r"ocv-pic1: checksum mismatch .*pic1\.png"):
        ph.install_from_roots(entries, {"opencv-doc": root}, tmp_path / "pool", log=lambda s: None)
    assert not (tmp_path / "pool" / ph.POOL_INDEX).exists()  # nothing recorded for a pool that did not verify
    with pytest.raises(ph.PoolError, match="no photo pool"):
        ph.pool_photos(tmp_path / "pool", manifest=manifest)


def test_altered_stored_picture_makes_the_pool_incomplete(fake_package, tmp_path):
    root, manifest = fake_package
    dest = ph.install_from_roots(ph.read_manifest(manifest), {"opencv-doc": root}, tmp_path / "p", log=lambda s: 0)
    _picture(99).save(dest / "ocv-pic2.jpg")
    with pytest.raises(ph.PoolError, match="incomplete or altered.*ocv-pic2"):
        ph.pool_photos(dest, manifest=manifest)


def test_fetch_is_idempotent(fake_package, tmp_path, monkeypatch):
    root, manifest = fake_package
    calls = []

    def fake_extract(pkg, work, debs, log):
        calls.append(pkg)
        shutil.copytree(root, work / "x")
        return work / "x"

    monkeypatch.setattr(ph, "_extract_package", fake_extract)
    logs = []
    dest = tmp_path / "pool"
    ph.fetch_pool(dest, manifest=manifest, log=logs.append)
    assert calls == ["opencv-doc"] and "ready" in logs[-1]
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    logs.clear()
    ph.fetch_pool(dest, manifest=manifest, log=logs.append)
    assert calls == ["opencv-doc"]  # no second download
    assert logs == [f"photo pool up to date: 3 pictures in {dest} (nothing to do)"]
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before
    # a deleted picture is fetched again, and only that one
    (dest / "ocv-pic0.jpg").unlink()
    logs.clear()
    ph.fetch_pool(dest, manifest=manifest, log=logs.append)
    assert calls == ["opencv-doc"] * 2 and logs[0].startswith("photo pool: 1 of 3 pictures")
    assert len(ph.pool_photos(dest, manifest=manifest)) == 3


def test_missing_apt_get_gives_one_line_pointing_to_photos_flag(fake_package, tmp_path, monkeypatch, capsys):
    _, manifest = fake_package
    monkeypatch.setattr(ph, "MANIFEST", manifest)
    monkeypatch.setattr(ph.shutil, "which", lambda name: None)
    with pytest.raises(ph.PoolError, match=r"--photos DIR"):
        ph.fetch_pool(tmp_path / "pool", log=lambda s: None)
    with pytest.raises(SystemExit) as exc:
        ph.main(["fetch", "--dest", str(tmp_path / "pool2")])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "apt-get" in err and "python -m eval.sim" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ sample photos
def test_sample_photos_fall_back_to_bundled_without_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(ph, "pool_dir", lambda: tmp_path / "no-pool")
    assert not ph.pool_available()
    paths = ph.sample_photos(tmp_path / "s", n=4)
    bundled = [p.name for p in ph.bundled_photos()[:4]]
    assert [p.name for p in paths] == [f"{i:02d}-{n}.jpg" for i, n in enumerate(bundled)]
    assert ph.available_photos()[0].name == bundled[0]


def test_sample_photos_use_the_pool_spread_over_classes(fake_package, tmp_path, monkeypatch):
    root, manifest = fake_package
    dest = ph.install_from_roots(ph.read_manifest(manifest), {"opencv-doc": root}, tmp_path / "p", log=lambda s: 0)
    monkeypatch.setattr(ph, "MANIFEST", manifest)
    monkeypatch.setattr(ph, "pool_dir", lambda: dest)
    assert ph.pool_available()
    paths = ph.sample_photos(tmp_path / "s", n=2)
    assert [p.name for p in paths] == ["00-ocv-pic0.jpg", "01-ocv-pic1.jpg"]  # one animal, one food
    assert [p.name for p in ph.available_photos()] == ["ocv-pic0", "ocv-pic1", "ocv-pic2"]


def test_spread_over_classes_round_robin():
    mk = [ph.Photo("a0", "a", None), ph.Photo("a1", "a", None), ph.Photo("a2", "a", None),
          ph.Photo("b0", "b", None), ph.Photo("c0", "c", None)]  # fmt: skip
    assert [p.name for p in ph.spread_over_classes(mk, 4)] == ["a0", "b0", "c0", "a1"]
    assert len(ph.spread_over_classes(mk, 99)) == 5


# ------------------------------------------------------------------------------------------------ near-duplicates
def test_near_duplicates_catch_copies_not_distinct_pictures():
    a = _picture(1)
    gray = a.convert("L").convert("RGB")
    smaller = a.resize((180, 120))
    pics = {"a": a, "a_gray": gray, "a_small": smaller, "b": _picture(2), "c": _picture(3)}
    found = {(x, y) for x, y, _ in ph.near_duplicates(pics)}
    assert {("a", "a_gray"), ("a", "a_small"), ("a_gray", "a_small")} <= found
    assert not any("b" in pair or "c" in pair for pair in found)


def test_hashes_are_64_bit_and_deterministic():
    img = _picture(5)
    assert 0 <= ph.average_hash(img) < 2**64 and 0 <= ph.dct_hash(img) < 2**64
    assert ph.dct_hash(img) == ph.dct_hash(img.copy())
    assert ph.hamming(0b1011, 0b0001) == 2


def test_contact_sheet(tmp_path):
    photos = [ph.Photo(f"p{i}", "animal" if i % 2 else "food", _picture(i)) for i in range(5)]
    out = ph.contact_sheet(photos, tmp_path / "sheet.png", cols=3, cell=64)
    with Image.open(out) as im:
        assert im.size == (3 * 64, 2 * (64 + 24))


@pytest.mark.skipif(not ph.pool_available(), reason="no photo pool on this machine (make photos)")
def test_the_real_pool_verifies_and_has_no_near_duplicates():
    pool = ph.pool_photos()
    assert len(pool) == len(ph.read_manifest())
    assert ph.near_duplicates({p.name: p.image for p in pool}) == []


def test_folder_photos_read_the_same_files_as_the_cli(tmp_path):
    """One rule for a folder's photos (piaa.photos.photo_files): pmllm.steer's --photos reader leaves hidden folders
    such as .thumbnails/ out, as `piaa score DIR` does; labels come from the first sub-folder."""
    from piaa.cli import collect_images

    img = Image.new("RGB", (400, 360), (120, 80, 40))
    for rel in ("plant/a.jpg", "b.png", ".thumbnails/plant/c.jpg", "plant/.d.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp_path / rel)
    got = ph.folder_photos(tmp_path)
    assert [(p.name, p.content) for p in got] == [("b", "photo"), ("plant_a", "plant")]
    assert [str(p) for p in ph.photo_files(tmp_path)] == collect_images([str(tmp_path)])
