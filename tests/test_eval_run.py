"""End-to-end `python -m eval.run` on the tiny synthetic benchmark (real EfficientNet-Lite0 features)."""

import contextlib
import hashlib
import json

import numpy as np
import pytest

from eval.report import variance_table
from eval.run import main


def test_run_writes_three_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--benchmark", "synthetic", "--root", str(tmp_path / "bench"), "--shots", "0,10,100", "--repeats", "2",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["simulated"] is True and res["label"] == "simulated"
    assert (out / "per_user_srocc.png").stat().st_size > 5000
    md = (out / "results.md").read_text()
    assert "SIMULATED" in md and "| random |" in md and "| population-mean |" in md and "| oracle |" in md
    aggs = {(a["method"], a["shots"]): a for a in res["aggregates"]}
    assert set(aggs) == {(m, k) for m in ("random", "population-mean", "oracle") for k in (0, 10)} | {
        ("support-residual", 10)  # needs_support: few-shot only
    }
    # 60 images per user: 100-shot users are all skipped for too few ratings and counted
    assert res["skipped"]["counts"]["100"] == {"too few ratings": 12}
    assert aggs[("random", 10)]["srocc"]["n_repeats"] == 2 and aggs[("random", 0)]["srocc"]["n_repeats"] == 1
    n_users = len({(r["fold"], r["user"]) for r in res["per_user"] if r["shots"] == 0})
    assert n_users == 12
    assert len([r for r in res["per_user"] if r["method"] == "random" and r["shots"] == 10]) == 12 * 2
    sr = {k: v["srocc"]["mean"] for k, v in aggs.items()}
    assert sr[("oracle", 0)] > sr[("population-mean", 0)] > sr[("random", 0)]
    assert "mean per-user SROCC (SIMULATED)" in capsys.readouterr().out
    assert sr[("support-residual", 10)] > sr[("population-mean", 10)]


def test_variance_table_renders_sim_world_shape():
    vd = {"simulated": True, "latent": {"population": 0.5, "noise": 0.5}, "score": {"population": 0.4, "noise": 0.6},
          "per_user_srocc": {"oracle": 0.8}}  # fmt: skip
    text = "\n".join(variance_table(vd))
    assert "| population | 0.500 | 0.400 |" in text and "| noise | 0.500 | 0.600 |" in text
    assert "per_user_srocc.oracle | 0.8000" in text


def test_bad_flags_are_one_line_errors(tmp_path, capsys):
    assert main(["--benchmark", "nope"]) == 2
    assert "unknown 'nope'" in capsys.readouterr().err
    assert main(["--benchmark", "para"]) == 2
    assert "--root" in capsys.readouterr().err
    assert main(["--benchmark", "synthetic", "--root", str(tmp_path), "--scorers", "zzz", "--no-progress"]) == 2
    assert "unknown ['zzz']" in capsys.readouterr().err
    assert main(["--benchmark", "synthetic", "--root", str(tmp_path), "--folds", "9"]) == 2
    assert "out of range" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["flickr-aes", "para", "lapis", "aadb", "real-cur"])
def test_real_benchmark_without_readers_is_clear(tmp_path, capsys, name):
    # an empty folder: either the readers module is missing or the reader reports the missing files; no traceback
    from eval.readers import ReaderWarning

    announced = pytest.warns(ReaderWarning, match="no per-rater file") if name == "aadb" else contextlib.nullcontext()
    with announced:  # AADB first says it falls back to the per-image means, then that those are missing too
        assert main(["--benchmark", name, "--root", str(tmp_path)]) == 2
    assert name in capsys.readouterr().err or "readers" in capsys.readouterr().err


def test_evaluate_fits_on_training_users_only(tmp_path):
    from eval.api import Scorer
    from eval.run import evaluate
    from eval.synthetic import make_benchmark

    bench = make_benchmark(tmp_path, n_users=9, n_images=30, n_folds=3, write_images=False)
    log = []

    class Spy(Scorer):
        name = "spy"

        def fit(self, benchmark, train_users):
            log.append(("fit", set(train_users)))

        def predict(self, task):
            log.append(("predict", task.user, task.shots))
            assert task.query_images and not set(task.support_images) & set(task.query_images)
            return np.arange(len(task.query_images), dtype=float)

    class FewOnly(Spy):
        name = "few"
        needs_support = True

    res = evaluate(bench, [Spy(), FewOnly()], shots=[0, 10], repeats=2, seed=0, folds=[0, 2], progress=False)
    fits = [e[1] for e in log if e[0] == "fit"]
    assert len(fits) == 4  # 2 scorers x 2 folds, once per fold for all shot counts
    current = None
    for e in log:
        if e[0] == "fit":
            current = e[1]
        else:
            assert e[1] not in current  # never a training user of the fold being scored
    assert {(r.method, r.shots) for r in res["per_user"]} == {("spy", 0), ("spy", 10), ("few", 10)}
    assert {r.fold for r in res["per_user"]} == {0, 2}


def test_world_changed_detection(tmp_path):
    from eval.benchmarks import world_changed

    (tmp_path / "world.json").write_text('{"seed": 0}')
    info = {"world_root": str(tmp_path), "world_json_sha256": hashlib.sha256(b'{"seed": 0}').hexdigest()}
    assert not world_changed(info)
    (tmp_path / "world.json").write_text('{"seed": 1}')
    assert world_changed(info)
    assert not world_changed({})


def test_failing_scorer_is_dropped_others_kept(tmp_path):
    from eval.api import Scorer
    from eval.run import evaluate
    from eval.synthetic import make_benchmark

    bench = make_benchmark(tmp_path, n_users=6, n_images=30, n_folds=2, write_images=False)

    class Good(Scorer):
        name = "good"

        def predict(self, task):
            return np.arange(len(task.query_images), dtype=float)

    class WrongLength(Good):
        name = "wrong-length"

        def predict(self, task):
            return np.zeros(3)

    class BadFit(Good):
        name = "bad-fit"

        def fit(self, benchmark, train_users):
            raise FileNotFoundError("checkpoint.safetensors")

    res = evaluate(bench, [Good(), WrongLength(), BadFit()], shots=[0], repeats=1, seed=0, folds=[0, 1],
                   progress=False)  # fmt: skip
    assert {r.method for r in res["per_user"]} == {"good"}
    assert len(res["per_user"]) == 6
    assert "predict failed" in res["dropped"]["wrong-length"] and "predictions for" in res["dropped"]["wrong-length"]
    assert "fit failed on fold 0" in res["dropped"]["bad-fit"] and "checkpoint" in res["dropped"]["bad-fit"]


def test_fold_not_supported_skips_only_that_fold(tmp_path):
    from eval.api import FoldNotSupported, Scorer
    from eval.run import evaluate
    from eval.synthetic import make_benchmark

    bench = make_benchmark(tmp_path, n_users=9, n_images=30, n_folds=3, write_images=False)

    class OnlyFoldZero(Scorer):
        name = "only-fold-0"

        def fit(self, benchmark, train_users):
            if sorted(train_users) != sorted(map(str, benchmark.folds[0][0])):
                raise FoldNotSupported("trained on these users")

        def predict(self, task):
            return np.arange(len(task.query_images), dtype=float)

    run = evaluate(bench, [OnlyFoldZero()], shots=[0], repeats=1, seed=0, folds=[0, 1, 2], progress=False)
    assert {r.fold for r in run["per_user"]} == {0}
    assert set(run["fold_skips"]["only-fold-0"]) == {1, 2} and not run["dropped"]


def test_world_and_root_are_one_flag(tmp_path):
    """``eval.run`` takes the world folder as ``--world`` too, like the other entry points (``--root`` kept)."""
    from eval.run import parse_args

    assert parse_args(["--world", str(tmp_path)]).root == parse_args(["--root", str(tmp_path)]).root == str(tmp_path)
