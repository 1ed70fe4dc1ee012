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
