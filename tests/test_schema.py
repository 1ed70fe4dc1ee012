"""piaa.schema: the scale, profile validation, the one ratings validator every entry point calls, a user's ratings
CSV (scale given or inferred) and RatingsTable's row numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from piaa.schema import (
    PARA_SCALE,
    Profile,
    RatingsTable,
    Scale,
    SchemaError,
    infer_scale,
    read_ratings_csv,
    validate_ratings,
)


# ------------------------------------------------------------------------------------------------ Scale
@pytest.mark.parametrize(
    "args, message",
    [
        ((5, 1), r"max \(1\) must be greater than min \(5\)"),
        ((3, 3), r"max \(3\) must be greater than min \(3\)"),
        ((1, 5, 0), r"step must be > 0 .* got 0"),
        ((1, 5, -0.5), r"step must be > 0 .* got -0.5"),
        ((1, 5, 10), r"step must be > 0 and at most max - min \(4\), got 10"),
        ((math.nan, 5), r"min must be a finite number, got nan"),
        ((1, math.inf), r"max must be a finite number, got inf"),
        ((1, 5, math.inf), r"step must be a finite number"),
        ((True, 5), r"min must be a finite number, got True"),
        (("1", 5), r"min must be a finite number, got '1'"),
    ],
)
def test_scale_refuses_empty_or_broken_ranges(args, message):
    with pytest.raises(SchemaError, match="invalid scale: " + message):
        Scale(*args)


def test_scale_problem_and_describe():
    assert PARA_SCALE.problem(4.5) is None and PARA_SCALE.problem(1) is None and PARA_SCALE.problem(5.0) is None
    assert "not on the scale's step 0.5" in PARA_SCALE.problem(4.7)
    assert "outside the scale [1, 5]" in PARA_SCALE.problem(7) and "outside" in PARA_SCALE.problem(-3)
    assert Scale(0, 100).problem(42.43) is None and Scale(0, 100).problem(100.5) is not None
    assert PARA_SCALE.describe() == "1-5 step 0.5" and Scale(0, 100).describe() == "0-100"
    assert PARA_SCALE.range == 4.0


# ------------------------------------------------------------------------------------------------ Profile
@pytest.mark.parametrize(
    "kw, message",
    [
        ({"big5_E": "high"}, r"profile field big5_E must be a number, got 'high'"),
        ({"big5_A": math.inf}, r"profile field big5_A must be a finite number, got inf"),
        ({"big5_N": -math.inf}, r"profile field big5_N must be a finite number, got -inf"),
        ({"big5_O": "nan"}, r"profile field big5_O must be a finite number, got 'nan'"),
        ({"big5_C": True}, r"profile field big5_C must be a number, got True"),
        ({"big5_E": ""}, r"profile field big5_E must be a number, got ''"),
        ({"big5_E": [4]}, r"profile field big5_E must be a number, got \[4\]"),
        ({"vaiak": (1, 2, "lots")}, r"profile field vaiak\[2\] must be a number, got 'lots'"),
        ({"vaiak2": (1, math.nan)}, r"profile field vaiak2\[1\] must be a number|finite"),
        ({"vaiak": "1234567"}, r"profile field vaiak must be a list of numbers"),
    ],
)
def test_profile_refuses_non_numeric_and_non_finite_fields(kw, message):
    with pytest.raises(SchemaError, match=message):
        Profile(**kw)


def test_profile_numbers_are_normalised_and_text_fields_kept():
    p = Profile(big5_E=" 4.5 ", big5_A=np.float32(3), big5_N=7, vaiak=[1, "2", 3.0], age="22-25", gender="female")
    assert (p.big5_E, p.big5_A, p.big5_N) == (4.5, 3.0, 7.0) and all(type(x) is float for x in p.vaiak)
    assert p.vaiak == (1.0, 2.0, 3.0) and p.age == "22-25" and p.gender == "female"
    # the float NaN is pandas' "missing value": not given, the same as None (render_profile relies on it)
    assert Profile(big5_E=math.nan) == Profile() and Profile(big5_E=math.nan).structured() == {}
    assert Profile(education="PhD", nationality="Italy").structured() == {"education": "PhD", "nationality": "Italy"}


def test_profile_key_is_equal_for_equal_profiles_only():
    a = Profile(age="22-25", big5_E="7", text="I like fog", extra={"b": "1", "a": "2"})
    same = Profile(text="I like fog", big5_E=7.0, age="22-25", extra={"a": "2", "b": "1"})
    assert a.key() == same.key() and Profile.from_dict(json.loads(a.key())).key() == a.key()
    assert len({a.key(), Profile(age="22-25", big5_E=7.0, text="I like sun").key(), Profile().key()}) == 3


def test_profile_from_dict_names_the_source():
    with pytest.raises(SchemaError, match=r"users\.jsonl:3: profile field big5_E must be a number, got 'high'"):
        Profile.from_dict({"user": "u1", "big5_E": "high"}, source="users.jsonl:3")
    with pytest.raises(SchemaError, match=r"p: profile field vaiak\[0\] must be a number"):
        Profile.from_dict({"vaiak": ["x"]}, source="p")
    assert Profile.from_dict({"big5_E": "5", "vaiak": [1, 2]}) == Profile(big5_E=5.0, vaiak=(1.0, 2.0))


# ------------------------------------------------------------------------------------------------ validate_ratings
def test_validate_ratings_accepts_and_normalises():
    images, scores = validate_ratings(["a.jpg", "b.jpg", "c.jpg"], [4.5, "2", np.int64(3)], PARA_SCALE)
    assert images == ["a.jpg", "b.jpg", "c.jpg"] and scores.dtype == np.float64
    assert scores.tolist() == [4.5, 2.0, 3.0]
    images, scores = validate_ratings(["a", "b"], np.array([1.0, 5.0]), PARA_SCALE)
    assert scores.tolist() == [1.0, 5.0]


@pytest.mark.parametrize(
    "score, why",
    [
        (7, r"score 7 is outside the scale \[1, 5\]"),
        (-3, r"score -3 is outside the scale \[1, 5\]"),
        (4.7, r"score 4.7 is not on the scale's step 0.5"),
        (True, r"score True is a boolean"),
        ("good", r"score 'good' is not a number"),
        (None, r"score None is not a number"),
        (math.nan, r"score nan is not a finite number"),
        (math.inf, r"score inf is not a finite number"),
        (np.float64(4.7), r"score 4.7 is not on the scale's step 0.5"),  # written as a person reads it, not np.float64
        (np.int64(7), r"score 7 is outside the scale"),
    ],
)
def test_validate_ratings_refuses_each_bad_score(score, why):
    with pytest.raises(SchemaError, match=rf"^demo table: row 2: image 'b\.jpg': {why}"):
        validate_ratings(["a.jpg", "b.jpg"], [3, score], PARA_SCALE, source="demo table")


def test_validate_ratings_duplicates():
    images, scores = validate_ratings(["a", "b", "a"], [4, 2, 4.0], PARA_SCALE)  # same score twice = one rating
    assert images == ["a", "b"] and scores.tolist() == [4.0, 2.0]
    with pytest.raises(SchemaError, match=r"ratings: row 3: image 'a': score 2 conflicts with score 4 .* row 1"):
        validate_ratings(["a", "b", "a"], [4, 2, 2], PARA_SCALE)
    with pytest.raises(SchemaError, match=r"^me\.csv:7: image 'a': .*conflicts.* at me\.csv:2"):
        validate_ratings(["a", "b", "a"], [4, 2, 2], PARA_SCALE, source="me.csv", lines=[2, 3, 7])


def test_validate_ratings_lists_every_problem_and_checks_shape():
    with pytest.raises(SchemaError) as err:
        validate_ratings(["a", "b", "c", "d"], [7, 3, True, 4.7], PARA_SCALE)
    assert len(err.value.problems) == 3 and "and 2 more" in str(err.value)
    assert "row 1" in err.value.problems[0] and "row 3" in err.value.problems[1] and "row 4" in err.value.problems[2]
    with pytest.raises(SchemaError, match="2 images but 1 scores"):
        validate_ratings(["a", "b"], [3], PARA_SCALE)
    with pytest.raises(SchemaError, match="no ratings"):
        validate_ratings([], [], PARA_SCALE)
    with pytest.raises(SchemaError, match="image name '' is empty"):
        validate_ratings([""], [3], PARA_SCALE)
    with pytest.raises(SchemaError, match="scale must be a piaa.schema.Scale"):
        validate_ratings(["a"], [3], 4.0)


# ------------------------------------------------------------------------------------------------ ratings CSV
def _csv(tmp_path, text: str, name: str = "ratings.csv", **kw):
    p = tmp_path / name
    p.write_text(text, encoding=kw.pop("encoding", "utf-8"), newline="")
    return p


@pytest.mark.parametrize(
    "scores, scale",
    [
        ([4.5, 1, 3], PARA_SCALE),
        ([7, 1, 10], Scale(1, 10)),
        ([4.7, 1, 3], Scale(1, 10)),  # off PARA's step: the next scale that holds it
        ([0, 55.5, 100], Scale(0, 100)),
        ([-2, 0.5, 3], Scale(-2, 3)),  # none of the usual scales: min..max
    ],
)
def test_read_ratings_csv_infers_the_scale(tmp_path, scores, scale):
    p = _csv(tmp_path, "image,score\n" + "".join(f"p{i}.jpg,{s}\n" for i, s in enumerate(scores)))
    got = read_ratings_csv(p)
    assert got.scale == scale and got.scale_inferred is True
    assert got.images == ["p0.jpg", "p1.jpg", "p2.jpg"] and got.scores.tolist() == [float(s) for s in scores]
    assert got.lines == [2, 3, 4] and got.users is None


def test_read_ratings_csv_given_scale_errors_name_file_and_line(tmp_path):
    p = _csv(tmp_path, "image,score\r\na.jpg,4\r\n\r\nb.jpg,4.7\r\nc.jpg,9\r\n")
    with pytest.raises(SchemaError) as err:
        read_ratings_csv(p, PARA_SCALE)
    msg = str(err.value)
    assert msg.startswith(f"{p}:4: image 'b.jpg': score '4.7' is not on the scale's step 0.5")
    assert f"{p}:5: image 'c.jpg': score '9' is outside the scale [1, 5]" in msg
    ok = read_ratings_csv(p, Scale(1, 10))
    assert ok.scale_inferred is False and ok.scores.tolist() == [4.0, 4.7, 9.0] and ok.lines == [2, 4, 5]


def test_read_ratings_csv_header_users_blanks_and_duplicates(tmp_path):
    p = _csv(tmp_path, "a.jpg,4\nb.jpg,2\n")
    with pytest.raises(SchemaError, match=r"ratings\.csv:1: missing column\(s\) \['image', 'score'\].*add the header"):
        read_ratings_csv(p)
    p = _csv(tmp_path, "\ufeffUser, Image, Score, note\nann,a.jpg,4,\nbob,a.jpg,2,x\nann,b.jpg,,\nann,a.jpg,4,\n")
    got = read_ratings_csv(p)  # BOM, case and spaces in the header; two users may rate the same image
    assert got.users == ["ann", "bob"] and got.images == ["a.jpg", "a.jpg"] and got.skipped_blank == 1
    ann = got.for_user("ann")
    assert ann.images == ["a.jpg"] and ann.scores.tolist() == [4.0] and ann.lines == [2]
    with pytest.raises(SchemaError, match="no ratings by user 'cy'"):
        got.for_user("cy")
    p = _csv(tmp_path, "user,image,score\nann,a.jpg,4\nann,a.jpg,3\n")
    with pytest.raises(SchemaError, match=r"ratings\.csv:3: image 'a\.jpg': score '3' conflicts with score 4 .*:2"):
        read_ratings_csv(p)
    p = _csv(tmp_path, "image,score\na.jpg\nb.jpg,3,extra\n")
    with pytest.raises(SchemaError, match=r"ratings\.csv:2: expected 2 fields .* got 1.*ratings\.csv:3: expected"):
        read_ratings_csv(p)


def test_read_ratings_csv_unreadable_inputs(tmp_path):
    with pytest.raises(SchemaError, match="no such ratings file"):
        read_ratings_csv(tmp_path / "nope.csv")
    with pytest.raises(SchemaError, match="empty file"):
        read_ratings_csv(_csv(tmp_path, "\n\n"))
    with pytest.raises(SchemaError, match="every score cell is empty"):
        read_ratings_csv(_csv(tmp_path, "image,score\na.jpg,\n"))
    with pytest.raises(SchemaError, match=r"ratings\.csv:3: image 'b\.jpg': score 'great' is not a number"):
        read_ratings_csv(_csv(tmp_path, "image,score\na.jpg,3\nb.jpg,great\n"))
    with pytest.raises(SchemaError, match="cannot infer a rating scale: every score is 200"):
        read_ratings_csv(_csv(tmp_path, "image,score\na.jpg,200\nb.jpg,200\n"))
    (tmp_path / "latin.csv").write_bytes(b"image,score\ncaf\xe9.jpg,3\n")
    with pytest.raises(SchemaError, match=r"latin\.csv:2: not UTF-8"):
        read_ratings_csv(tmp_path / "latin.csv")
    assert infer_scale([1, 2, 5]) == PARA_SCALE


# ------------------------------------------------------------------------------------------------ RatingsTable
def test_ratings_table_rows_are_one_based(tmp_path):
    df = pd.DataFrame({"image": ["a", "b", "c"], "user": ["u", "u", "v"], "score": [3, 4, 9]})
    with pytest.raises(SchemaError, match=r"^ratings: row 3 \(image 'c', user 'v'\): score 9 is outside the scale"):
        RatingsTable(df, PARA_SCALE)
    df = pd.DataFrame({"image": ["a", "b"], "user": ["u", "u"], "score": ["x", 3]}, index=[10, 11])
    with pytest.raises(SchemaError, match=r"row 1 \(image 'a', user 'u'\): score 'x' is missing or not a finite"):
        RatingsTable(df, PARA_SCALE, name="mine")
    ok = RatingsTable(pd.DataFrame({"image": ["a", "b"], "user": ["u", "u"], "score": [3, 4.5]}), PARA_SCALE)
    folder = ok.save(tmp_path / "t")
    (folder / "ratings.csv").write_text("image,user,score\na,u,3\nb,u,11\n")
    with pytest.raises(SchemaError, match=r"t/ratings\.csv:3 \(image 'b', user 'u'\): score 11 is outside"):
        RatingsTable.load(folder)
