"""eval.results: the README block is rendered from eval.run's results files and replaces only its own block."""

import pytest

from eval.results import END, START, main


def test_renders_from_runs_and_rewrites_only_its_block(tmp_path):
    from eval.run import main as run_main

    out = tmp_path / "results"
    common = ["--benchmark", "synthetic", "--root", str(tmp_path / "bench"), "--folds", "0", "--no-progress"]
    assert run_main([*common, "--scorers", "random,population-mean,oracle,support-residual", "--shots", "0,10",
                     "--repeats", "2", "--out", str(out / "main")]) == 0  # fmt: skip
    assert run_main([*common, "--scorers", "random", "--shots", "10", "--out", str(out / "yun2024")]) == 0
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\noutro\n")
    assert main(["--root", str(tmp_path / "bench"), "--out", str(out), "--readme", str(readme), "--no-run"]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| population-mean |" in text and "support-residual − population-mean | 10 |" not in text
    assert "Simulated raters, not real data" in text and "python -m eval.run --benchmark sim" in text
    block = text.split(START)[1].split(END)[0]
    assert "| oracle |" in block and "| pmllm | — | — |" in block  # not run here: shown as missing, not invented
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="needs exactly one <!-- results:start -->"):
        main(["--out", str(out), "--readme", str(readme), "--no-run"])


def test_replace_block_rewrites_only_the_named_block(tmp_path):
    from piaa.readme import ReadmeError, replace_block

    readme = tmp_path / "README.md"
    follow = "<!-- follow:start -->\nkeep\n<!-- follow:end -->\n"
    readme.write_text(f"a\n<!-- steer:start -->\nold\n<!-- steer:end -->\nb\n{follow}")
    replace_block(readme, "steer", "| new |\n")
    assert readme.read_text() == f"a\n<!-- steer:start -->\n| new |\n<!-- steer:end -->\nb\n{follow}"
    readme.write_text("<!-- steer:start -->x<!-- steer:end --><!-- steer:start -->y<!-- steer:end -->")
    with pytest.raises(ReadmeError, match="exactly one <!-- steer:start -->"):
        replace_block(readme, "steer", "z")


def test_runs_show_progress_unless_asked_not_to():
    """`make results` takes ~45 min: its two eval.run runs keep their progress bars unless --no-progress is given."""
    import argparse

    from eval.results import run_args

    base = {"root": "w", "seed": 0, "repeats": 3, "ref_users": 6, "max_users": None, "threads": 2, "out": "o"}
    shown = run_args(argparse.Namespace(**base, no_progress=False))
    quiet = run_args(argparse.Namespace(**base, no_progress=True))
    assert set(shown) == {"main", "yun2024"} and not any("--no-progress" in a for a in shown.values())
    assert all("--no-progress" in a for a in quiet.values())
