"""eval.follow's picture handling: a picture that cannot be decoded is named and left out, never a traceback."""

from pathlib import Path

import numpy as np
from PIL import Image

from eval import follow


def _folder(tmp_path: Path, n_good: int) -> list[Path]:
    paths = []
    for i in range(n_good):
        p = tmp_path / f"good{i:02d}.jpg"
        Image.new("RGB", (64, 48), (10 * i % 255, 80, 200 - 5 * i)).save(p)
        paths.append(p)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(paths[0].read_bytes()[:60])
    (tmp_path / "notes.jpg").write_text("not a picture")
    return sorted(tmp_path.iterdir())


def test_readable_names_each_bad_picture_and_keeps_labels_aligned(tmp_path):
    paths = _folder(tmp_path, 4)
    labels = [p.stem for p in paths]
    kept, kept_labels, stats, bad = follow.readable(paths, labels)
    assert stats.shape[0] == len(kept) and np.isfinite(stats).all()
    assert [p.name for p in kept] == [f"good{i:02d}.jpg" for i in range(4)]
    assert kept_labels == [p.stem for p in kept]
    assert sorted(Path(line.split(": ", 1)[0]).name for line in bad) == ["cut.jpg", "empty.jpg", "notes.jpg"]
    assert all(line.split(": ", 1)[1] for line in bad)  # each with its reason


def test_main_counts_only_readable_pictures_and_says_which_were_left_out(tmp_path, capsys):
    _folder(tmp_path, follow.SHOTS[-1] + 2)  # 3 bad files would make it long enough; the readable ones are not
    assert follow.main(["--photos", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "left out" in err and "cut.jpg" in err and "empty.jpg" in err and "notes.jpg" in err
    assert f"{follow.SHOTS[-1] + 2} readable pictures" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_folder_of_class_folders_labels_its_pictures(tmp_path):
    for cls, n in (("Plant", 2), ("abstract", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.new("RGB", (64, 48), (40 * i, 90, 10)).save(tmp_path / cls / f"{i}.png")
    paths, labels = follow.load_pictures(str(tmp_path), tmp_path / "work")
    assert [p.name for p in paths] == ["0.png", "1.png", "0.png", "1.png", "2.png"]  # sorted: "Plant" < "abstract"
    assert labels == ["plant", "plant", "abstract", "abstract", "abstract"] == [p.parent.name.lower() for p in paths]
    Image.new("RGB", (64, 48)).save(tmp_path / "loose.png")  # a picture outside every class folder: no labels
    assert follow.load_pictures(str(tmp_path), tmp_path / "work")[1] is None


def test_a_folders_labels_give_tastes_only_when_they_name_a_class_with_enough_pictures():
    labels = ["plant"] * 6 + ["flowers"] * 5 + ["abstract"] * 2
    tastes, notes = follow.check_tastes(labels, every_class=True, folder=True)
    assert "plant" in tastes and "flowers" not in tastes and "abstract" not in tastes  # 2 abstract pictures: too few
    assert any("flowers" in n and "no content taste" in n for n in notes) and any("abstract: 2" in n for n in notes)
    assert "abstract" in follow.check_tastes(labels + ["abstract"] * 3, every_class=False, folder=True)[0]
    pool = follow.check_tastes(["abstract"] * 2 + ["nope"], every_class=False, folder=False)  # the pool: as before
    assert pool == (follow.TASTES, [])


def test_ceiling_is_one_for_a_property_and_sqrt_3p1mp_for_a_class():
    rng = np.random.default_rng(0)
    assert follow.ceiling(rng.normal(size=40)) == 1.0
    label = np.zeros(85)
    label[rng.permutation(85)[:15]] = 1
    best = follow.ceiling(label)
    assert abs(best - np.sqrt(3 * (15 / 85) * (70 / 85))) < 0.02 and best < 0.7
    # a perfect order reaches it, an order with one mistake does not
    from piaa.stats import srocc

    perfect = label * 10 + rng.random(85)
    assert srocc(perfect, label) == best
    swap = perfect.copy()
    lo, hi = np.argmin(np.where(label == 1, perfect, np.inf)), np.argmax(np.where(label == 0, perfect, -np.inf))
    swap[lo], swap[hi] = swap[hi], swap[lo]
    assert srocc(swap, label) < best


def test_render_and_plot_say_what_the_draws_support(tmp_path):
    row = {"taste": "people", "shots": 5, "n_taste": 7, "ceiling": 0.46, "repeats": 1, "shown": 0.2, "shown_sd": 0.0,
           "zero_shot": 0.25, "zero_shot_sd": 0.0}  # fmt: skip
    rows = [{**row, "photostats": True}, {**row, "photostats": False}]
    text = follow.render(rows, "test")
    assert "| people (7 pictures) | 5 | 1 | 0.200 (1 draw) | 0.200 (1 draw) | 0.250 | 0.46 |" in text
    assert "±" not in text.split("\n")[-1]  # no SD from a single draw
    props = [{**r, "taste": "bright", "n_taste": None, "ceiling": 1.0, "repeats": 10} for r in rows]
    assert follow.plot(props, tmp_path).is_file()  # no content labels (a flat --photos DIR): one panel


def test_content_tastes_take_each_class_with_enough_pictures():
    contents = ["animal"] * 6 + ["food"] * 4 + ["abstract"] * 9 + ["nope"] * 7
    tastes = follow.content_tastes(contents)
    assert list(tastes) == ["animal"]  # food has too few pictures, abstract is already a taste, nope has no sentence
    assert tastes["animal"][1] == "content:animal" and "animals" in tastes["animal"][0]
    values = follow.taste_values(np.zeros((len(contents), 8)), contents, "animal", tastes)
    assert values.sum() == 6 and follow.content_tastes(None) == {}


def test_readme_takes_only_the_default_check(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as err:
        follow.main(["--content", "all", "--readme", str(tmp_path / "README.md")])
    assert err.value.code == 2 and "--readme takes" in capsys.readouterr().err
