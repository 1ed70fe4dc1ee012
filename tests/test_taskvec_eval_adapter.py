"""The shipped task vectors load against the embedded backbone; the eval adapters fit/predict on a tiny benchmark."""

import json

import numpy as np
import pandas as pd
import pytest
from taskvec_synth import make_images

from eval.api import Benchmark, UserTask
from piaa.schema import PARA_SCALE, RatingsTable
from taskvec.model import DEFAULT_ARTIFACTS


def test_shipped_artifacts_are_compact_and_match_theta0():
    manifest = json.loads((DEFAULT_ARTIFACTS / "manifest.json").read_text())
    assert manifest["simulated"] is True and len(manifest["databases"]) >= 2
    total = sum(f.stat().st_size for f in DEFAULT_ARTIFACTS.iterdir())
    assert total < 60e6
    from taskvec.personalize import TaskSet

    ts = TaskSet.from_dir(DEFAULT_ARTIFACTS)  # refuses task vectors made from another theta_0
    assert ts.names == sorted(manifest["databases"]) and all(k.startswith(("tail.", "head.")) for k in ts.keys)


@pytest.mark.parametrize("name", ["taskvec", "taskvec-yun2024"])
def test_adapter_fit_predict(tmp_path, name):
    from eval.scorers import create_scorer

    names, attrs = make_images(tmp_path / "img", 24, seed=7, size=64)
    y = PARA_SCALE.quantize(1 + 4 * attrs["bright"])
    df = pd.DataFrame({"image": names, "user": "u1", "score": y})
    table = RatingsTable(df, PARA_SCALE, {}, tmp_path / "img", "tiny")
    bench = Benchmark("tiny", table, [([], ["u1"])], simulated=True)
    kw = {"recipe_kwargs": {"steps": 10}} if name == "taskvec-yun2024" else {}
    context = {"seed": 0, "quick": True, "out_dir": None, "benchmark_name": "tiny", "cache_dir": tmp_path / "c"}
    scorer = create_scorer(name, context=context, **kw)  # through the one registry
    assert scorer.name == name and scorer.needs_support
    scorer.fit(bench, [])
    task = UserTask("u1", table.profile("u1"), names[:12], y[:12], names[12:] + ["extra.jpg"], PARA_SCALE,
                    tmp_path / "img", shots=12)  # fmt: skip
    (tmp_path / "img" / "extra.jpg").write_bytes((tmp_path / "img" / names[0]).read_bytes())  # not in the table
    pred = scorer.predict(task)
    assert pred.shape == (13,) and np.isfinite(pred).all()
    with pytest.warns(UserWarning, match="1 support image"):
        scorer.predict(UserTask("u1", table.profile("u1"), names[:1], y[:1], names[12:], PARA_SCALE, tmp_path / "img"))
