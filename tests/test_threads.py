"""Every thread pool of a rank follows one number (mpisnap.threads): ``--threads``, else
``OMP_NUM_THREADS``, else the node's cores divided by its ranks. Checked for the rule itself, for
the BLAS limit applied during a fit, and under ``mpiexec -n 2`` for each rank's BLAS and OpenMP
pools (OpenBLAS would otherwise start one thread per core in every rank)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

import mpisnap
from mpisnap.comm import SerialComm
from mpisnap.threads import limited, threads_per_rank

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"
SCRIPT = Path(__file__).parent / "mpi_scripts" / "thread_pools.py"
CORES = len(os.sched_getaffinity(0))


def blas_threads():
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_rule_explicit_then_environment_then_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_rank(SerialComm(), 5) == 5
    assert threads_per_rank(SerialComm()) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # nested OpenMP syntax: the outer level
    assert threads_per_rank(SerialComm()) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads_per_rank(SerialComm()) == CORES
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            threads_per_rank(SerialComm(), bad)


def test_limited_sets_and_restores_blas():
    import numpy  # noqa: F401  (its BLAS is loaded)

    before = blas_threads()
    with limited(1) as pools:
        assert blas_threads() == {1}
        assert pools["blas"] == 1
    assert blas_threads() == before


def test_fit_runs_with_the_requested_pools(tmp_path):
    result = mpisnap.fit(EXAMPLE, output_dir=tmp_path, threads=1)
    assert result.thread_pools["blas"] == 1
    assert result.thread_pools["core"] == 1 and result.model.descriptor.threads == 1
    log = (tmp_path / "Cu_EMT_pot.log").read_text()
    assert "threads per rank: blas 1, core 1" in log


def run(n, *args, env_threads=None):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_threads is not None:
        env["OMP_NUM_THREADS"] = str(env_threads)
    exe = Path(sys.executable).parent / "mpiexec"
    p = subprocess.run([str(exe), "-n", str(n), sys.executable, str(SCRIPT), str(EXAMPLE), *args],
                       env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args, env_threads, expected", [
    ((), None, max(1, CORES // 2)),   # the node's cores shared by its 2 ranks
    ((), 1, 1),                       # OMP_NUM_THREADS
    (("1",), None, 1),                # --threads / threads=
])
def test_each_rank_pools_under_mpi(args, env_threads, expected):
    ranks = run(2, *args, env_threads=env_threads)
    assert len(ranks) == 2
    for pools in ranks:
        assert pools["blas"] == expected, ranks
        assert pools["core"] == expected and pools["descriptor"] == expected, ranks
        if "openmp" in pools:  # the core's libgomp, when threadpoolctl sees it
            assert pools["openmp"] == expected, ranks
