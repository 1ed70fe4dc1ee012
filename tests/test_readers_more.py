"""Native-format readers for AADB, REAL-CUR and the general databases (AVA, KonIQ-10k, SPAQ, TAD66K): fixtures in
the exact release formats, parsed values, folds and clear errors on malformed variants."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from eval.readers import ReaderWarning, create_benchmark, create_reader
from eval.readers.piaa_extra import aadb_image_name
from eval.readers.xlsx import read_xlsx_rows
from piaa.schema import SchemaError
from tests.reader_warnings import expect_warnings


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (20, 130, 60)).save(path, "JPEG")


def _read(name, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        return create_reader(name, root, **kw).read()


# ------------------------------------------------------------------------------------------------ AADB
def _aadb_lists(root: Path, names: list[str]) -> None:
    lab = root / "imgListFiles_label"
    lab.mkdir(parents=True, exist_ok=True)
    split = {"Train": names[:4], "Validation": names[4:5], "Test": names[5:]}
    for s, ns in split.items():
        (lab / f"imgList{s}Regression_score.txt").write_text("".join(f"{n} {0.1 * (i + 2):.1f}\n" for i, n in
                                                                      enumerate(ns)))  # fmt: skip
    for n in names:
        _img(root / "datasetImages_originalSize" / n)


AADB_URLS = [f"https://farm{k % 3 + 1}.staticflickr.com/{200 + k}/{1000 + k}_ab{k}cd_b.jpg" for k in range(6)]
AADB_NAMES = [aadb_image_name(u) for u in AADB_URLS]


def test_aadb_image_name_rule():
    assert aadb_image_name("https://farm1.staticflickr.com/255/1945_8ee7_b.jpg") == "farm1_255_1945_8ee7_b.jpg"
    assert aadb_image_name("not a url") is None


def test_aadb_mean_scores_without_per_rater_file(tmp_path):
    _aadb_lists(tmp_path, AADB_NAMES)
    (tmp_path / "imgListFiles_label" / "imgListTestNewRegression_score.txt").write_text(f"{AADB_NAMES[5]} 0.9\n")
    reader = create_reader("aadb", tmp_path)
    no_rater_file = ("no per-rater file", "test list: read imgListTestRegression_score.txt; ignored imgListTestNew")
    with expect_warnings(*no_rater_file):
        table = reader.read()
    assert any("ignored imgListTestNewRegression_score.txt" in n for n in reader.report.notes)
    assert table.users == ["aadb"] and (table.scale.min, table.scale.max) == (0, 1)
    assert table.ratings.set_index("image").loc[AADB_NAMES[0], "score"] == pytest.approx(0.2)
    assert len(table.ratings) == 6 and all(table.image_path(i).is_file() for i in table.images)
    with pytest.raises(SchemaError, match="per-rater file"), expect_warnings(*no_rater_file):
        create_benchmark("aadb", tmp_path)
    (tmp_path / "imgListFiles_label" / "imgListTestRegression_score.txt").write_text("a.jpg 0.5 extra\n")
    with pytest.raises(SchemaError, match=r"imgListTestRegression_score\.txt:1: wrong field count"):
        _read("aadb", tmp_path)
    (tmp_path / "imgListFiles_label" / "imgListTestRegression_score.txt").write_text(f"{AADB_NAMES[5]} 1.3\n")
    with pytest.raises(SchemaError, match=r"outside the scale \[0, 1\]"):
        _read("aadb", tmp_path)


def test_aadb_per_rater_amt_file(tmp_path):
    _aadb_lists(tmp_path, AADB_NAMES)
    header = "HITId,WorkerId,Input.image_url1,Input.image_url2,Answer.overallScore1,Answer.overallScore2"
    rows, expected = [header], {}
    for w in range(8):
        for h in range(3):
            a, b = (w + h) % 6, (w + h + 1) % 6
            sa, sb = 1 + (w + h) % 5, 1 + (w * h) % 5
            rows.append(f"H{h},W{w},{AADB_URLS[a]},{AADB_URLS[b]},{sa},{sb}")
            expected.setdefault((f"W{w}", AADB_NAMES[a]), float(sa))
            expected.setdefault((f"W{w}", AADB_NAMES[b]), float(sb))
    rows.append("H9,W0,https://farm9.staticflickr.com/1/notinlists_b.jpg,,4,")  # outside lists, empty slot
    rows.append(f"H9,W9,{AADB_URLS[0]},{AADB_URLS[1]},0,3")  # 0 = no rating
    expected[("W9", AADB_NAMES[1])] = 3.0
    (tmp_path / "AADB_AllinAll.csv").write_text("\n".join(rows) + "\n")
    reader = create_reader("aadb", tmp_path)
    amt_drops = ("1 AMT ratings of images outside the AADB image lists dropped", "1 answers of 0 .* dropped",
                 "1 empty image slots in the AMT file skipped", "1 repeated ratings of the same image .*same score",
                 "15 repeated ratings with a different score dropped")  # fmt: skip
    with expect_warnings(*amt_drops):
        table = reader.read()
    got = {(r.user, r.image): r.score for r in table.ratings.itertuples()}
    assert got == expected and (table.scale.min, table.scale.max, table.scale.step) == (1, 5, 1)
    dropped = reader.report.to_dict()["dropped"]
    assert dropped["AMT ratings of images outside the AADB image lists dropped"] == 1
    assert dropped["answers of 0 (no rating; public loaders count only 1-5) dropped"] == 1
    with expect_warnings(*amt_drops):
        bench = create_benchmark("aadb", tmp_path, seed=3)
    assert len(bench.folds) == 4 and set().union(*(set(te) for _, te in bench.folds)) == set(table.users)
    (tmp_path / "AADB_AllinAll.csv").write_text(header + f"\nH1,W1,{AADB_URLS[0]},{AADB_URLS[1]},7,3\n")
    with pytest.raises(SchemaError, match=r"AADB_AllinAll\.csv:2: column 'Answer\.overallScore'.*outside the scale"):
        _read("aadb", tmp_path)
    (tmp_path / "AADB_AllinAll.csv").write_text("HITId,Input.image_url1,Answer.overallScore1\nH1,x,3\n")
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['WorkerId'\]"):
        _read("aadb", tmp_path)


# ------------------------------------------------------------------------------------------------ REAL-CUR
def _realcur(base: Path) -> dict:
    expected = {}
    for w in range(5):
        for k in range(4):
            score = 1 + (w + k) % 5
            _img(base / f"album{w}" / str(score) / f"IMG_{k:04d}.JPG")
            expected[(f"album{w}", f"album{w}/{score}/IMG_{k:04d}.JPG")] = float(score)
    return expected


def test_real_cur_folder_layout(tmp_path):
    expected = _realcur(tmp_path / "images")
    (tmp_path / "images" / "album0" / "3" / "notes.txt").write_text("not an image")
    (tmp_path / "images" / "album0" / ".DS_Store").write_text("")
    reader = create_reader("real-cur", tmp_path)
    with pytest.warns(ReaderWarning, match="non-image files ignored"):
        table = reader.read()
    assert {(r.user, r.image): r.score for r in table.ratings.itertuples()} == expected
    assert all(table.image_path(i).is_file() for i in table.images)
    with pytest.warns(ReaderWarning, match="1 non-image files ignored"):
        bench = create_benchmark("real-cur", tmp_path, n_folds=5)
    assert len(bench.folds) == 5 and all(len(te) == 1 for _, te in bench.folds)
    # the same layout directly under the root works too
    assert len(_read("real-cur", tmp_path / "images").ratings) == len(expected)
    _img(tmp_path / "images" / "album1" / "great" / "x.jpg")
    with pytest.raises(SchemaError, match=r"album1/great: folder name 'great' is not a score"):
        _read("real-cur", tmp_path)
    (tmp_path / "images" / "album1" / "great" / "x.jpg").unlink()
    (tmp_path / "images" / "album1" / "great").rmdir()
    _img(tmp_path / "images" / "album1" / "7" / "x.jpg")
    with pytest.raises(SchemaError, match="folder name '7' is not a score"):
        _read("real-cur", tmp_path)
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(SchemaError, match="no worker folders"):
        _read("real-cur", tmp_path / "empty_root")


def test_real_cur_cli_takes_n_folds(tmp_path, capsys):
    """Three workers: the default 4 folds cannot be made, --n-folds 3 can; the summary prints either way."""
    from eval.readers.__main__ import main

    for w in range(3):
        for k in range(2):
            _img(tmp_path / "images" / f"album{w}" / str(k + 2) / f"IMG_{k}.JPG")
    assert main(["real-cur", str(tmp_path)]) == 1
    cap = capsys.readouterr()
    assert "6 ratings, 6 images, 3 users" in cap.out and "cannot make 4 user-disjoint folds from 3 users" in cap.out
    assert main(["real-cur", str(tmp_path), "--n-folds", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "folds: seeded user k-fold (k=3, seed=1)" in out and out.count("train users, 1 test users") == 3


def test_real_cur_same_photo_in_two_score_folders(tmp_path):
    _img(tmp_path / "images" / "me" / "2" / "a.jpg")
    _img(tmp_path / "images" / "me" / "4" / "a.jpg")
    _img(tmp_path / "images" / "me" / "4" / "b.jpg")
    reader = create_reader("real-cur", tmp_path)
    with pytest.warns(ReaderWarning, match="different score"):
        table = reader.read()
    assert sorted(table.ratings["score"]) == [2.0, 4.0]


# ------------------------------------------------------------------------------------------------ AVA
def _ava(root: Path, lines: list[str], ids: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    for i in ids:
        _img(root / "images" / f"{i}.jpg")


def test_ava_fifteen_columns_and_vote_mean(tmp_path):
    lines = ["1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396", "2 953958 10 7 15 26 26 21 10 8 1 2 15 21 1396",
             "3 954184 0 0 0 0 0 0 0 0 0 0 0 0 1396"]  # fmt: skip
    _ava(tmp_path, lines, ["953619", "953958", "954184"])
    reader = create_reader("ava", tmp_path)
    with pytest.warns(ReaderWarning, match="no votes"):
        table = reader.read()
    s = table.ratings.set_index("image")["score"]
    c = [0, 1, 5, 17, 38, 36, 15, 6, 5, 1]
    assert s["953619.jpg"] == pytest.approx(sum((k + 1) * v for k, v in enumerate(c)) / sum(c))
    assert "954184.jpg" not in s and table.users == ["ava"] and table.scale.max == 10
    _ava(tmp_path / "b", ["1 953619 0 1 5 17 38 36 15 6 5 1 1 22"], ["953619"])
    with pytest.raises(SchemaError, match=r"AVA\.txt:1: wrong field count: expected 15"):
        _read("ava", tmp_path / "b")
    _ava(tmp_path / "c", ["1 953619 0 1 5 x 38 36 15 6 5 1 1 22 1396"], ["953619"])
    with pytest.raises(SchemaError, match=r"AVA\.txt:1: vote count 'x'"):
        _read("ava", tmp_path / "c")


# ------------------------------------------------------------------------------------------------ KonIQ-10k
KONIQ_HEADER = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"


def test_koniq_mos_and_zscore(tmp_path):
    rows = [KONIQ_HEADER, '"10004473376.jpg",0,0,25,73,7,105,3.828571429,0.527277069,77.38392857',
            "10007357496.jpg,0,3,45,47,1,96,3.479166667,0.580003052,68.67434758"]  # fmt: skip
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text("\r\n".join(rows) + "\r\n")
    for n in ("10004473376.jpg", "10007357496.jpg"):
        _img(tmp_path / "1024x768" / n)
    t = _read("koniq10k", tmp_path)
    assert t.ratings.set_index("image")["score"]["10004473376.jpg"] == pytest.approx(3.828571429)
    assert (t.scale.min, t.scale.max) == (1, 5) and t.users == ["koniq10k"]
    z = _read("koniq10k", tmp_path, score_column="MOS_zscore")
    assert z.scale.max == 100 and z.ratings["score"].max() == pytest.approx(77.38392857)
    rows.append("1.jpg,0,0,0,0,0,0,6.1,0,50")
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text("\n".join(rows))
    with pytest.raises(SchemaError, match=r"distributions\.csv:4: column 'MOS': score 6\.1 is outside"):
        _read("koniq10k", tmp_path)


# ------------------------------------------------------------------------------------------------ SPAQ
def _write_xlsx(path: Path, rows: list[list]) -> None:
    """A minimal real .xlsx: workbook, relationships, shared strings and one sheet."""
    strings: list[str] = []

    def cell(ref: str, v) -> str:
        if isinstance(v, str):
            if v not in strings:
                strings.append(v)
            return f'<c r="{ref}" t="s"><v>{strings.index(v)}</v></c>'
        return f'<c r="{ref}"><v>{v}</v></c>'

    body = "".join(f'<row r="{i + 1}">' + "".join(cell(f"{chr(65 + j)}{i + 1}", v) for j, v in enumerate(r))
                   + "</row>" for i, r in enumerate(rows))  # fmt: skip
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                   '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')  # fmt: skip
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
                   "</Relationships>")  # fmt: skip
        z.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">' + "".join(f"<si><t>{s}</t></si>" for s in
                                                                            strings) + "</sst>")  # fmt: skip
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{main}"><sheetData>{body}</sheetData></worksheet>')


SPAQ_ROWS = [
    ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"],
    ["00001.png", 42.43, 43.2, 37.1, 44.6, 46.2, 43.1],
    ["00002.png", 73.0, 66.1, 70.5, 69.2, 70.3, 71.6],
]


def test_spaq_xlsx_and_csv_export(tmp_path):
    (tmp_path / "Annotations").mkdir()
    _write_xlsx(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx", SPAQ_ROWS)
    assert read_xlsx_rows(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx")[1][1][0] == "00001.png"
    for n in ("00001.png", "00002.png"):
        _img(tmp_path / "TestImage" / n)
    t = _read("spaq", tmp_path)
    assert t.ratings.set_index("image")["score"].to_dict() == {"00001.png": 42.43, "00002.png": 73.0}
    assert (t.scale.min, t.scale.max) == (0, 100)
    csv_root = tmp_path / "csv"
    (csv_root / "Annotations").mkdir(parents=True)
    (csv_root / "Annotations" / "MOS and Image attribute scores.csv").write_text(
        "\n".join(",".join(map(str, r)) for r in SPAQ_ROWS) + "\n", encoding="utf-8-sig"
    )
    (csv_root / "TestImage").symlink_to(tmp_path / "TestImage")
    assert _read("spaq", csv_root).ratings.equals(t.ratings)
    (tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx").write_bytes(b"not a zip")
    with pytest.raises(SchemaError, match=r"scores\.xlsx: not a valid \.xlsx"):
        _read("spaq", tmp_path)
    _write_xlsx(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx",
                [SPAQ_ROWS[0], ["00001.png", "high", 1, 1, 1, 1, 1]])  # fmt: skip
    with pytest.raises(SchemaError, match=r"scores\.xlsx:2: column 'MOS': score 'high' is not"):
        _read("spaq", tmp_path)
    with pytest.raises(SchemaError, match="MOS and Image attribute scores.xlsx"):
        _read("spaq", tmp_path / "TestImage")


def test_spaq_repackaged_dataset_testimage_layout(tmp_path):
    """Common re-packagings put the images in Dataset/TestImage/ (annotation still in Annotations/)."""
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "MOS and Image attribute scores.csv").write_text(
        "\n".join(",".join(map(str, r)) for r in SPAQ_ROWS) + "\n"
    )
    with pytest.raises(SchemaError, match=r"missing image folder: expected 'TestImage/' .* 'Dataset/TestImage/'"):
        _read("spaq", tmp_path)
    for n in ("00001.png", "00002.png"):
        _img(tmp_path / "Dataset" / "TestImage" / n)
    t = _read("spaq", tmp_path)
    assert t.image_root == tmp_path / "Dataset" / "TestImage" and all(t.image_path(i).is_file() for i in t.images)
    assert t.ratings.set_index("image")["score"].to_dict() == {"00001.png": 42.43, "00002.png": 73.0}


# ------------------------------------------------------------------------------------------------ TAD66K
def test_tad66k_merge_labels(tmp_path):
    merge = tmp_path / "labels" / "merge"
    merge.mkdir(parents=True)
    (merge / "train.csv").write_text("image,score\n1000.jpg,5.61\n1001.jpg,4.2\n")
    (merge / "test.csv").write_text("image,score\n2000.jpg,6.05\n1001.jpg,4.2\n")
    for n in ("1000.jpg", "1001.jpg", "2000.jpg"):
        _img(tmp_path / "imgs" / n)
    reader = create_reader("tad66k", tmp_path)
    with pytest.warns(ReaderWarning, match="same score"):
        t = reader.read()
    assert t.ratings.set_index("image")["score"].to_dict() == {"1000.jpg": 5.61, "1001.jpg": 4.2, "2000.jpg": 6.05}
    (merge / "test.csv").write_text("img,score\n2000.jpg,6.05\n")
    with pytest.raises(SchemaError, match=r"test\.csv:1: missing column\(s\) \['image'\]"):
        _read("tad66k", tmp_path)
    (merge / "test.csv").unlink()
    (merge / "train.csv").unlink()
    with pytest.raises(SchemaError, match="labels/merge/train.csv"):
        _read("tad66k", tmp_path)
