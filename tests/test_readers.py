"""Native-format PIAA readers (FLICKR-AES, PARA, LAPIS): fixtures written in the datasets' exact release formats
(quirks included), parsed values, published/seeded folds, and clear errors on malformed variants."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from eval.readers import READERS, ReaderWarning, create_benchmark, create_reader, list_readers
from eval.readers.folds import flickr_aes_test_workers, para_published_folds
from piaa.schema import RatingsTable, SchemaError
from tests.reader_warnings import expect_warnings


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (120, 30, 200)).save(path, "JPEG")


def _read(name, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        return create_reader(name, root, **kw).read()


# ------------------------------------------------------------------------------------------------ FLICKR-AES
TRAIN_WORKERS = ["A1TRAINWORKER1", "A2TRAINWORKER2", "A3TRAINWORKER3"]


def _flickr(root: Path, *, bom=False, crlf=False, lines_extra=(), images=True) -> dict:
    """The release layout: the per-worker CSV with its ', ' separator, the image score file, 40K/."""
    workers = TRAIN_WORKERS + flickr_aes_test_workers()
    expected = {}
    rows = ["worker, imagePair, score"]
    for w_i, w in enumerate(workers):
        for j in range(3):
            img = f"farm{j + 1}_{100 + (w_i + j) % 7}_1234{j}_abcd_b.jpg"
            score = 1 + (w_i + j) % 5
            rows.append(f"{w}, {img}, {score}")
            expected[(w, img)] = float(score)
    rows += list(lines_extra)
    nl = "\r\n" if crlf else "\n"
    text = ("\ufeff" if bom else "") + nl.join(rows) + nl
    root.mkdir(parents=True, exist_ok=True)
    (root / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text(text, encoding="utf-8", newline="")
    imgs = sorted({img for _, img in expected})
    (root / "FLICKR-AES_image_score.txt").write_text("".join(f" {im} {2.5 + i / 10}\n" for i, im in enumerate(imgs)))
    if images:
        for im in imgs:
            _img(root / "40K" / im)
    return expected


def test_flickr_aes_parses_native_csv_and_published_fold(tmp_path):
    expected = _flickr(tmp_path)
    table = _read("flickr-aes", tmp_path)
    assert isinstance(table, RatingsTable)
    got = {(r.user, r.image): r.score for r in table.ratings.itertuples()}
    assert got == expected  # no leading spaces survive in users, image names or scores
    assert table.scale.min == 1 and table.scale.max == 5
    assert all(table.image_path(im).is_file() for im in table.images)
    assert all(p.is_empty() for p in table.profiles.values()) and set(table.profiles) == set(table.users)
    bench = create_benchmark("flickr-aes", tmp_path)
    assert len(bench.folds) == 1
    train, test = bench.folds[0]
    assert sorted(test) == sorted(flickr_aes_test_workers()) and len(test) == 37
    assert train == sorted(TRAIN_WORKERS) and not set(train) & set(test)
    assert bench.simulated is False and bench.meta["read_report"]["dropped"] == {}


def test_flickr_aes_bom_crlf_and_image_scores(tmp_path):
    expected = _flickr(tmp_path, bom=True, crlf=True)
    table = _read("flickr-aes", tmp_path)
    assert {(r.user, r.image): r.score for r in table.ratings.itertuples()} == expected
    s = create_reader("flickr-aes", tmp_path).image_scores()
    assert len(s) == len(table.images) and not any(n.startswith(" ") for n in s.index)
    assert s.iloc[0] == pytest.approx(2.5)


def test_flickr_aes_counts_duplicates_and_missing_images(tmp_path):
    w, img = TRAIN_WORKERS[0], "farm1_100_12340_abcd_b.jpg"  # the fixture gives this pair score 1
    expected = _flickr(tmp_path / "d", lines_extra=[f"{w}, {img}, 5", f"{w}, {img}, 1"])
    assert expected[(w, img)] == 1.0
    reader = create_reader("flickr-aes", tmp_path / "d")
    with pytest.warns(ReaderWarning, match="repeated ratings"):
        table = reader.read()
    rep = reader.report.to_dict()["dropped"]
    assert rep["repeated ratings of the same image by the same user dropped (same score)"] == 1
    assert rep["repeated ratings with a different score dropped (kept the first)"] == 1
    assert table.user_ratings(w).set_index("image").loc[img, "score"] == 1.0  # kept the first
    assert len(table.ratings) == len(expected)
    # one image file deleted -> its ratings dropped and counted; all deleted -> error
    root = tmp_path / "m"
    _flickr(root)
    victim = sorted((root / "40K").iterdir())[0]
    victim.unlink()
    with pytest.warns(ReaderWarning, match="image file is missing"):
        table = create_reader("flickr-aes", root).read()
    assert victim.name not in table.images
    for p in (root / "40K").iterdir():
        p.unlink()
    with pytest.raises(SchemaError, match="none of the .* images"):
        _read("flickr-aes", root)


@pytest.mark.parametrize(
    "extra, message",
    [
        ("A1TRAINWORKER1, farm9_1_x_b.jpg, abc", r"each_worker\.csv:\d+: column 'score': score 'abc' is not"),
        ("A1TRAINWORKER1, farm9_1_x_b.jpg, 6", r"each_worker\.csv:\d+: .*outside the scale \[1, 5\]"),
        ("A1TRAINWORKER1, farm9_1_x_b.jpg, 2.5", r"not on the scale's step 1"),
        ("A1TRAINWORKER1, farm9_1_x_b.jpg", r"each_worker\.csv:\d+: wrong field count: expected 3"),
        (", farm9_1_x_b.jpg, 3", r"column 'worker' is empty"),
    ],
)
def test_flickr_aes_malformed_rows(tmp_path, extra, message):
    _flickr(tmp_path, lines_extra=[extra])
    with pytest.raises(SchemaError, match=message):
        _read("flickr-aes", tmp_path)


def test_flickr_aes_error_names_line_number(tmp_path):
    _flickr(tmp_path, lines_extra=["A1TRAINWORKER1, farm9_1_x_b.jpg, x"])
    n_lines = len((tmp_path / "FLICKR-AES_image_labeled_by_each_worker.csv").read_text().splitlines())
    with pytest.raises(SchemaError, match=rf"each_worker\.csv:{n_lines}:"):
        _read("flickr-aes", tmp_path)


def test_flickr_aes_missing_pieces(tmp_path):
    with pytest.raises(SchemaError, match="dataset folder does not exist"):
        _read("flickr-aes", tmp_path / "nope")
    tmp_path.joinpath("x").mkdir()
    with pytest.raises(SchemaError, match="FLICKR-AES_image_labeled_by_each_worker.csv"):
        _read("flickr-aes", tmp_path / "x")
    _flickr(tmp_path / "y", images=False)
    with pytest.raises(SchemaError, match="missing image folder: expected '40K/'"):
        _read("flickr-aes", tmp_path / "y")
    assert len(_read("flickr-aes", tmp_path / "y", check_images=False).ratings) == 40 * 3
    p = tmp_path / "z"
    p.mkdir()
    (p / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text("worker, image, score\nA, b.jpg, 3\n")
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['imagePair'\]"):
        _read("flickr-aes", p, check_images=False)


# ------------------------------------------------------------------------------------------------ PARA
PARA_HEADER = ("sessionId,imageName,userId,aestheticScore,qualityScore,compositionScore,colorScore,dofScore,"
               "contentScore,lightScore,contentPreference,willingnessToShare,semantic")  # fmt: skip
USERINFO_HEADER = ("userId,age,gender,EducationalLevel,artExperience,photographyExperience,personality-E,"
                   "personality-A,personality-N,personality-O,personality-C")  # fmt: skip


def _para_users() -> list[str]:
    """Two real test users from each published fold, so the published folds apply to the fixture."""
    return [u for _, test in para_published_folds() for u in test[:2]]


def _para(root: Path, *, extra_rows=(), info_rows=None, nested=True, users=None) -> dict:
    users = _para_users() if users is None else users
    rows, expected = [PARA_HEADER], {}
    for i, u in enumerate(users):
        for j in range(3):
            sess, name = f"session{j}", f"iaa_pub{i * 3 + j}_.jpg"
            score = 1.0 + ((i + 2 * j) % 9) * 0.5
            rows.append(f'{sess},{name},{u},{score},3.0,3,3,3,3,3,2,2,"people, portrait"')
            expected[(u, f"{sess}/{name}")] = score
            _img(root / "imgs" / sess / name if nested else root / "imgs" / name)
    rows += list(extra_rows)
    (root / "annotation").mkdir(parents=True, exist_ok=True)
    (root / "annotation" / "PARA-Images.csv").write_text("\r\n".join(rows) + "\r\n")
    if info_rows is None:
        info_rows = [f"{u},{'22-25' if i % 2 else '18-21'},{'male' if i % 2 else 'female'},university,"
                     f"competent,beginner,{i % 9 + 1},5,4,6,7" for i, u in enumerate(users[:-1])]  # fmt: skip
    (root / "annotation" / "PARA-UserInfo.csv").write_text("\n".join([USERINFO_HEADER, *info_rows]) + "\n")
    return expected


def test_para_ratings_profiles_and_published_folds(tmp_path):
    expected = _para(tmp_path)
    users = _para_users()
    reader = create_reader("para", tmp_path)
    with pytest.warns(ReaderWarning, match="no user-info row"):
        table = reader.read()
    assert {(r.user, r.image): r.score for r in table.ratings.itertuples()} == expected
    assert table.scale.step == 0.5 and table.image_root == tmp_path / "imgs"
    assert all(table.image_path(im).is_file() for im in table.images)
    p = table.profile(users[1])
    assert (p.age, p.gender, p.education, p.art_experience, p.photography_experience) == (
        "22-25", "male", "university", "competent", "beginner")  # fmt: skip
    assert (p.big5_E, p.big5_A, p.big5_N, p.big5_O, p.big5_C) == (2.0, 5.0, 4.0, 6.0, 7.0)
    assert table.profile(users[-1]).is_empty()  # no user-info row -> empty profile
    with expect_warnings("no user-info row", "users listed in the published folds but absent from the ratings"):
        bench = create_benchmark("para", tmp_path)
    assert len(bench.folds) == 4
    tests = [set(te) for _, te in bench.folds]
    assert set().union(*tests) == set(users) and sum(map(len, tests)) == len(users)
    for (tr, te), k in zip(bench.folds, range(4)):
        assert set(te) == set(users[2 * k : 2 * k + 2]) and not set(tr) & set(te)
        assert set(tr) | set(te) == set(users)
    dropped = bench.meta["read_report"]["dropped"]
    assert dropped["users listed in the published folds but absent from the ratings"] == 438 - len(users)
    assert bench.meta["fold_source"].startswith("published user folds") and bench.meta["read_report"]["notes"] == []


def test_para_reexported_user_ids_fall_back_to_seeded_folds(tmp_path):
    """Ratings whose user ids are not PARA's (a re-export renumbered them): seeded user-disjoint folds + a note."""
    users = [f"user{i:02d}" for i in range(10)]
    _para(tmp_path, users=users)
    with expect_warnings("0 of the 10 rated users are in the published folds", "no user-info row"):
        bench = create_benchmark("para", tmp_path, seed=3, n_folds=5)
    assert len(bench.folds) == 5 and all(len(te) == 2 for _, te in bench.folds)
    assert sorted(u for _, te in bench.folds for u in te) == users
    assert all(not set(tr) & set(te) and set(tr) | set(te) == set(users) for tr, te in bench.folds)
    assert bench.meta["fold_source"].startswith("seeded user k-fold (k=5, seed=3)")
    (note,) = bench.meta["read_report"]["notes"]
    assert "published fold 1 has no test user with ratings" in note and "5 seeded user-disjoint folds" in note
    # partial data: real PARA ids, but only from folds 1 and 2's test sets -> folds 3 and 4 would be empty
    part = _para_users()[:4] + ["extra1", "extra2"]
    _para(tmp_path / "part", users=part)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        bench = create_benchmark("para", tmp_path / "part", n_folds=3)
    assert len(bench.folds) == 3 and sorted(u for _, te in bench.folds for u in te) == sorted(part)
    assert "4 of the 6 rated users" in bench.meta["read_report"]["notes"][0]
    assert "published fold 3 has no test user" in bench.meta["read_report"]["notes"][0]
    # every published fold has a test user, but most rated users are in none of them -> seeded too
    many = _para_users() + [f"new{i}" for i in range(10)]
    _para(tmp_path / "many", users=many)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        bench = create_benchmark("para", tmp_path / "many")
    assert sorted(u for _, te in bench.folds for u in te) == sorted(many)
    assert "8 of the 18 rated users" in bench.meta["read_report"]["notes"][0]
    assert "most rated users are in no published fold" in bench.meta["read_report"]["notes"][0]
    # too few users for the seeded fallback: a clear error, not "published fold 1 has no test user"
    _para(tmp_path / "few", users=["a", "b", "c"])
    with pytest.raises(SchemaError, match="cannot make 4 user-disjoint folds from 3 users"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        create_benchmark("para", tmp_path / "few")


def test_para_flat_image_folder_is_accepted(tmp_path):
    _para(tmp_path, nested=False)
    table = _read("para", tmp_path)
    assert all(table.image_path(im).is_file() for im in table.images) and "/" not in table.images[0]


@pytest.mark.parametrize(
    "row, message",
    [
        ("session0,iaa_pub0_.jpg,Uextra,3.3,3,3,3,3,3,3,2,2,x", r"Images\.csv:\d+: .*not on the scale's step 0\.5"),
        ("session0,iaa_pub0_.jpg,Uextra,5.5,3,3,3,3,3,3,2,2,x", r"PARA-Images\.csv:\d+: .*outside the scale"),
        ("session0,iaa_pub0_.jpg,Uextra,good,3,3,3,3,3,3,2,2,x", r"'aestheticScore': score 'good' is not a"),
        ("session0,iaa_pub0_.jpg,Uextra,3,3", r"wrong field count: expected 13"),
    ],
)
def test_para_malformed(tmp_path, row, message):
    _para(tmp_path, extra_rows=[row])
    with pytest.raises(SchemaError, match=message):
        _read("para", tmp_path)


def test_para_userinfo_errors(tmp_path):
    u = _para_users()[0]
    _para(tmp_path, info_rows=[f"{u},22-25,male,university,competent,beginner,many,5,4,6,7"])
    with pytest.raises(SchemaError, match=r"PARA-UserInfo\.csv:2: column 'personality-E': 'many' is not a number"):
        _read("para", tmp_path)
    (tmp_path / "annotation" / "PARA-UserInfo.csv").unlink()
    with pytest.raises(SchemaError, match="PARA-UserInfo.csv"):
        _read("para", tmp_path)


# ------------------------------------------------------------------------------------------------ LAPIS
LAPIS_VAIAK_COLS = [f"VAIAK{i}" for i in range(1, 8)] + [f"2VAIAK{i}" for i in range(1, 5)]
LAPIS_HEADER = ",".join(["file", "image_id", "response", "participant_id", "age", "nationality", "demo_gender",
                         "demo_edu", "demo_colorblind", "style", "genre", *LAPIS_VAIAK_COLS])  # fmt: skip


def _lapis(root: Path, *, n_users=10, extra_rows=()) -> dict:
    rows, expected = [LAPIS_HEADER], {}
    for u in range(n_users):
        for j in range(3):
            name = f"img_{(u + j) % 8}.jpg"
            score = (u * 13 + j * 29) % 101
            vaiak = ",".join(str((u + k) % 7 + 1) for k in range(7))
            vaiak2 = ",".join(str((u + k) % 5 + 1) for k in range(4))
            demo = f'{20 + u}.0,belgian,{"female" if u % 2 else "male"},"Master\'s or equivalent",No'
            rows.append(f"Impressionism/{name},{(u + j) % 8},{score},{100 + u},{demo},Impressionism,landscape,"
                        f"{vaiak},{vaiak2}")  # fmt: skip
            expected[(str(100 + u), name)] = float(score)
            _img(root / "images" / name)
    rows += list(extra_rows)
    (root / "annotation").mkdir(parents=True, exist_ok=True)
    (root / "annotation" / "LAPIS_individualratings_metaANDdemodata.csv").write_text("\n".join(rows) + "\n")
    return expected


def test_lapis_ratings_profiles_and_seeded_folds(tmp_path):
    expected = _lapis(tmp_path)
    table = _read("lapis", tmp_path)
    assert {(r.user, r.image): r.score for r in table.ratings.itertuples()} == expected
    assert (table.scale.min, table.scale.max) == (0, 100)
    p = table.profile("103")
    assert (p.age, p.nationality, p.gender, p.education, p.colorblind) == (
        "23", "belgian", "female", "Master's or equivalent", "No")  # fmt: skip
    assert p.vaiak == tuple(float((3 + k) % 7 + 1) for k in range(7)) and len(p.vaiak2) == 4
    b0, b1, b2 = (create_benchmark("lapis", tmp_path, seed=s) for s in (0, 0, 1))
    assert len(b0.folds) == 4 and b0.folds == b1.folds and b0.folds != b2.folds
    tests = [set(te) for _, te in b0.folds]
    assert set().union(*tests) == set(table.users) and sum(map(len, tests)) == 10
    assert all(not set(tr) & set(te) and set(tr) | set(te) == set(table.users) for tr, te in b0.folds)
    saved = RatingsTable.load(table.save(tmp_path / "saved"))
    assert saved.profile("103") == p and len(saved.ratings) == len(table.ratings)


def test_lapis_empty_and_bad_cells(tmp_path):
    row = "Impressionism/img_0.jpg,0,,999,30,belgian,male,Doctorate,No,Impressionism,landscape,1,2,3,4,5,6,7,1,2,3,4"
    _lapis(tmp_path, extra_rows=[row])
    reader = create_reader("lapis", tmp_path)
    with pytest.warns(ReaderWarning, match="empty 'response'"):
        table = reader.read()
    assert "999" not in table.users
    _lapis(tmp_path / "b", extra_rows=[row.replace(",,999", ",101,999")])
    with pytest.raises(SchemaError, match=r"LAPIS_individualratings_metaANDdemodata\.csv:32: .*outside the scale"):
        _read("lapis", tmp_path / "b")
    _lapis(tmp_path / "c", extra_rows=[row.replace(",,999", ",50,999").replace(",1,2,3,4,5,6,7,", ",1,x,3,4,5,6,7,")])
    with pytest.raises(SchemaError, match=r"column 'VAIAK2': 'x' is not a number"):
        _read("lapis", tmp_path / "c")


def test_registry():
    assert set(READERS) == {"flickr-aes", "para", "lapis", "aadb", "real-cur", "ava", "koniq10k", "spaq", "tad66k"}
    assert list_readers("piaa") == ["flickr-aes", "para", "lapis", "aadb", "real-cur"]
    with pytest.raises(KeyError, match="unknown benchmark reader"):
        create_reader("nope", ".")
    with pytest.raises(ValueError, match="general database"):
        create_benchmark("ava", ".")


def test_published_split_copies():
    workers = flickr_aes_test_workers()
    assert len(workers) == 37 and all(w.isalnum() for w in workers)
    folds = para_published_folds()
    tests = [set(te) for _, te in folds]
    assert len(set().union(*tests)) == 438 == sum(map(len, tests))
    assert all(not set(tr) & set(te) and len(set(tr) | set(te)) == 438 for tr, te in folds)


def test_cli_summary(tmp_path, capsys):
    from eval.readers.__main__ import main

    _flickr(tmp_path / "f")
    assert main(["flickr-aes", str(tmp_path / "f"), "--out", str(tmp_path / "table")]) == 0
    out = capsys.readouterr().out
    assert "120 ratings" in out and "fold 1: 3 train users, 37 test users" in out
    assert len(RatingsTable.load(tmp_path / "table").ratings) == 120
    assert main(["flickr-aes", str(tmp_path / "missing")]) == 2
    assert "dataset folder does not exist" in capsys.readouterr().err


def test_cli_para_fallback_and_summary_when_folds_fail(tmp_path, capsys):
    from eval.readers.__main__ import main

    _para(tmp_path / "p", users=[f"user{i:02d}" for i in range(6)])
    assert main(["para", str(tmp_path / "p"), "--n-folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "18 ratings" in out and "folds: seeded user k-fold (k=3, seed=0)" in out
    assert "fold 3: 4 train users, 2 test users" in out and "note: 0 of the 6 rated users" in out
    # 3 users, 4 folds asked: the read summary is still printed, then why no folds; exit 1
    _para(tmp_path / "q", users=["a", "b", "c"])
    assert main(["para", str(tmp_path / "q"), "--out", str(tmp_path / "saved")]) == 1
    cap = capsys.readouterr()
    assert "9 ratings, 9 images, 3 users" in cap.out and "saved to" in cap.out
    assert "folds: not set up: cannot make 4 user-disjoint folds from 3 users (try --n-folds 3 or fewer)" in cap.out
    assert "error: user folds:" in cap.err and "Traceback" not in cap.err
    assert len(RatingsTable.load(tmp_path / "saved").ratings) == 9
    with pytest.raises(SystemExit) as exc:
        main(["para", str(tmp_path / "q"), "--n-folds", "1"])
    assert exc.value.code == 2 and "--n-folds: must be a whole number >= 2, got '1'" in capsys.readouterr().err


def test_eval_run_on_reexported_para_records_the_seeded_folds(tmp_path, capsys):
    """The harness runs on such data and its results say the folds are seeded, with the reader's note."""
    import json

    from eval.run import main as run_main

    _para(tmp_path / "para", users=[f"user{i:02d}" for i in range(8)])
    with expect_warnings("published folds", "no user-info row"):
        code = run_main(["--benchmark", "para", "--root", str(tmp_path / "para"), "--scorers", "random", "--shots",
                         "0", "--min-query", "2", "--out", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert code == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["dataset"]["fold_source"].startswith("seeded user k-fold")
    assert "published fold 1 has no test user with ratings" in res["dataset"]["read_report"]["notes"][0]
    md = (tmp_path / "run" / "results.md").read_text()
    assert "Folds: seeded user k-fold" in md and "Reader note" in md
