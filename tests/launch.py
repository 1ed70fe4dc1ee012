"""Run a project module as a child process (``python -m``), or as a ``torchrun`` group of CPU processes, for the
tests of the mixed-precision and multi-process paths (accelerate fixes both once per process). A run past its time
limit is killed with its whole process group, workers included, and reported with the end of its stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def run_module(module: str, argv: list[str], *, nproc: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m module argv`` (``nproc`` > 0: ``torchrun --standalone --nproc_per_node nproc``, one thread
    each); returns the finished process with its stdout and stderr."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc else []
    cmd = [sys.executable, *launcher, "-m", module, *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{module}: still running after {timeout:.0f} s, killed: {err[-2000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
