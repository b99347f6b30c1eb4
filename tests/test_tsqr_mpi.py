"""Real MPI: ``mpiexec -n 1/2/3`` runs tests/mpi_scripts/tsqr_check.py (timeout as a deadlock
net): R equals LAPACK's R of the whole system up to row signs, bit-identical on every rank."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


SCRIPT = Path(__file__).parent / "mpi_scripts" / "tsqr_check.py"
NPROC = 3
TIMEOUT = 120


def _mpiexec() -> str:
    exe = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's (test extra)
    assert exe.exists(), f"no mpiexec next to {sys.executable}: install the test extra"
    return str(exe)


def _run(extra_env=None, nproc=NPROC):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(extra_env or {}))
    t0 = time.monotonic()
    proc = subprocess.run([_mpiexec(), "-n", str(nproc), sys.executable, str(SCRIPT)],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("nproc", [1, 2, NPROC])
def test_tsqr_matches_lapack_and_agrees_across_ranks(nproc):
    proc, _ = _run(nproc=nproc)
    out = proc.stdout
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr}"
    tsqr = dict(re.findall(r"^TSQR rank (\d+) ([0-9a-f]{16})", out, re.M))
    stream = dict(re.findall(r"^STREAM rank (\d+) ([0-9a-f]{16})", out, re.M))
    assert sorted(tsqr) == [str(r) for r in range(nproc)], out
    assert len(set(tsqr.values())) == 1, tsqr           # bit-identical R, Qᵀb, x on all ranks
    assert sorted(stream) == sorted(tsqr) and len(set(stream.values())) == 1, stream
    assert len(re.findall(r"^ERRORPATH rank \d+ ok", out, re.M)) == nproc, out
    assert len(re.findall(r"^DONE rank \d+", out, re.M)) == nproc, out


def test_a_failure_on_one_rank_ends_every_rank():
    proc, elapsed = _run({"TSQR_CHECK_FAIL_RANK": "2"})
    assert proc.returncode != 0
    assert "deliberate failure on rank 2" in proc.stderr
    assert "DONE" not in proc.stdout
    assert elapsed < TIMEOUT
