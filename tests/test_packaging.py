"""The wheel is what the README uses: every package (piaa, pmllm, taskvec, eval, demo) with its data files."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("piaa-*.whl")
    return whl


def test_wheel_holds_every_package_and_the_committed_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in ("piaa", "pmllm", "taskvec", "eval", "demo", "eval/sim", "eval/readers"):
        assert f"{pkg}/__init__.py" in names, pkg
    committed = [p.relative_to(ROOT).as_posix() for d in ("pmllm/checkpoints/default", "taskvec/artifacts")
                 for p in (ROOT / d).rglob("*") if p.is_file()]  # fmt: skip
    assert committed and not [p for p in committed if p not in names]
    for data in ("eval/data/para_user_folds/TestUserIDs_Fold1.txt", "eval/data/flickr_aes_test_workers.csv",
                 "piaa/data/imagenet_classes.txt", "piaa/data/photo_pool.csv", "eval/sim/SIM.md"):  # fmt: skip
        assert data in names, data
    assert not [n for n in names if n.startswith(("tests/", "worlds/", "runs/"))]
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "piaa = piaa.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
