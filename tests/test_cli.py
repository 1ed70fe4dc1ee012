"""The ``piaa`` command line as a new user runs it: a folder with good and bad files, a ratings CSV, exit codes."""

import csv
import json
import struct
import subprocess
import sys
import zlib

import pytest

from piaa.cli import main
from piaa.photos import sample_photos


def _bomb_png(path, w=60000, h=60000):
    """A tiny PNG whose header claims w x h pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)  # noqa: E731
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    good = sample_photos(root / "photos", n=4)
    (root / "photos" / "zero.jpg").write_bytes(b"")
    (root / "photos" / "truncated.jpg").write_bytes(good[0].read_bytes()[:300])
    (root / "photos" / "notes.jpg").write_text("this is a text file with a photo's name")
    _bomb_png(root / "photos" / "bomb.png")
    (root / "photos" / "README.txt").write_text("not a photo extension: not picked up from a folder")
    return root, good


def test_score_folder_with_bad_files(folder, capsys):
    root, good = folder
    out = root / "scores.csv"
    code = main(["score", str(root / "photos"), "--profile", "I love calm landscapes", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert code == 1  # some inputs failed
    scored = [r for r in rows if not r["error"]]
    failed = {r["image"].rsplit("/", 1)[-1]: r["error"] for r in rows if r["error"]}
    assert len(scored) == len(good) and [int(r["rank"]) for r in scored] == list(range(1, len(good) + 1))
    assert all(1 <= float(r["score"]) <= 5 for r in scored)
    assert [float(r["score"]) for r in scored] == sorted((float(r["score"]) for r in scored), reverse=True)
    assert set(failed) == {"zero.jpg", "truncated.jpg", "notes.jpg", "bomb.png"}
    assert "megapixels" in failed["bomb.png"] and "README" not in out.read_text()
    err = capsys.readouterr().err
    assert "4 failed" in err and "Traceback" not in err and "zero.jpg" in err
    assert "read: likes 'landscapes'" in err  # what the model took from the words


def test_personalize_names_a_rated_file_it_cannot_read_once(folder, tmp_path, capsys):
    root, good = folder
    ratings = root / "photos" / "ratings-bad.csv"
    rows = "".join(f"{p.name},{s}\n" for p, s in zip(good, (5, 1, 4.5)))
    ratings.write_text("image,score\n" + rows + "zero.jpg,3\n")
    assert main(["personalize", "--ratings", str(ratings), "--out", str(tmp_path / "me")]) == 1
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "left out" in ln)
    assert line.count("zero.jpg") == 1 and "empty" in line and "saved user" in err and "Traceback" not in err


def test_personalize_then_score_with_the_user(folder, tmp_path, capsys):
    root, good = folder
    ratings = root / "photos" / "ratings.csv"
    ratings.write_text("image,score\n" + "".join(f"{p.name},{s}\n" for p, s in zip(good, (5, 1, 4.5, 2))))
    assert (
        main(["personalize", "--ratings", str(ratings), "--out", str(tmp_path / "me"), "--profile", "I like it"]) == 0
    )
    err = capsys.readouterr().err
    assert "scale 1-5 step 0.5 (inferred" in err and "saved user" in err
    assert sum(f.stat().st_size for f in (tmp_path / "me").iterdir()) < 10_000  # kilobytes
    out = tmp_path / "s.json"
    assert main(["score", *map(str, good), "--user", str(tmp_path / "me"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and all(1 <= r["score"] <= 5 for r in rows) and rows[0]["rank"] == 1
    shown = [r["image"] for r in rows]  # the photos the user rated come back in the order of their ratings
    assert shown == [str(good[i]) for i in (0, 2, 3, 1)] and [r["score"] for r in rows] == [5.0, 4.5, 2.0, 1.0]
    ratings.write_text("image,score\n" + f"{good[0].name},7\n{good[1].name},True\n")
    assert main(["personalize", "--ratings", str(ratings), "--scale", "1-5:0.5", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "ratings.csv:2" in err and "ratings.csv:3" in err and "Traceback" not in err


def test_usage_errors_and_help(capsys, tmp_path):
    assert main(["score", str(tmp_path / "empty-folder-that-is-missing"), "--scale", "5-1"]) == 2
    assert main(["score"]) == 2  # argparse usage
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct" in out and "frontalface-alt" in out and "opencv-python-headless" in out
    proc = subprocess.run([sys.executable, "-m", "piaa.cli", "score", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--profile" in proc.stdout and "--user" in proc.stdout


def test_two_processes_write_the_same_file(folder, tmp_path):
    root, _ = folder
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    base = ["score", str(root / "photos"), "--profile", "I love calm landscapes", "--no-progress"]
    assert main([*base, "--out", str(one)]) == 1
    assert main([*base, "--out", str(two), "--processes", "2"]) == 1
    assert one.read_text() == two.read_text()


def test_rank_rows_follow_the_models_finer_order_on_equal_shown_scores():
    from piaa.cli import rank_rows

    rows = [{"index": 0, "image": "unrated.jpg", "score": 4.5, "key": 4.4999989, "error": None},
            {"index": 1, "image": "rated.jpg", "score": 4.5, "key": 4.5, "error": None},
            {"index": 2, "image": "bad.jpg", "score": None, "key": None, "error": "bad.jpg: not an image"},
            {"index": 3, "image": "plain.jpg", "score": 3.0, "error": None}]  # fmt: skip
    ranked = rank_rows(rows)
    assert [r["image"] for r in ranked] == ["rated.jpg", "unrated.jpg", "plain.jpg", "bad.jpg"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, None]


def test_a_folder_gives_its_photo_files_and_leaves_hidden_ones_out(tmp_path):
    from piaa.cli import collect_images

    for rel in ("a.jpg", "sub/b.PNG", ".thumbnails/c.jpg", "sub/.d.jpg", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    got = collect_images([str(tmp_path), str(tmp_path / "missing.jpg")])
    assert got == [str(tmp_path / "a.jpg"), str(tmp_path / "sub" / "b.PNG"), str(tmp_path / "missing.jpg")]
