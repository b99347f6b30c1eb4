"""The uncertainty of a BAYES fit does not depend on the number of MPI ranks: ``mpiexec -n N mpisnap
fit`` of the bundled example with N = 1, 2, 3 writes the same posterior, noise levels, calibration
scales and per-row standard deviations (≤ 1e-10 relative), each rank having computed its own
rows' standard deviations (the design matrix is never gathered). Every launch has a timeout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT_bayes.in"


def _mpiexec() -> str:
    exe = Path(sys.executable).parent / "mpiexec"
    return str(exe) if exe.exists() else shutil.which("mpiexec")


def _read(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as h:
        return {"mean": h["posterior/mean"][()], "cov": h["posterior/covariance"][()],
                "noise": h["noise/std"][()], "scale": h["calibration/scale"][()],
                "rows": h["rows"][()], "configs": h["configurations"][()]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = {}
    for n in (1, 2, 3):
        d = tmp_path_factory.mktemp(f"ranks{n}")
        cmd = [_mpiexec(), "-n", str(n), sys.executable, "-m", "mpisnap", "fit", str(EXAMPLE),
               "--output-dir", str(d), "-q", "--set", "UQ.nsamples=0"]
        p = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stderr
        out[n] = _read(d / "Cu_EMT_bayes_uq.h5")
    return out


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("nranks", [2, 3])
def test_same_uncertainty_on_any_number_of_ranks(runs, nranks):
    ref, got = runs[1], runs[nranks]
    assert _rel(got["mean"], ref["mean"]) <= 1e-10
    assert _rel(got["cov"], ref["cov"]) <= 1e-10
    assert _rel(got["noise"], ref["noise"]) <= 1e-10
    assert _rel(got["scale"], ref["scale"]) <= 1e-10
    a, b = got["rows"], ref["rows"]
    for name in ("config", "kind", "atom", "component", "test"):
        np.testing.assert_array_equal(a[name], b[name])
    for name in ("std", "std_raw", "std_model"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-10, atol=0, err_msg=name)
    np.testing.assert_array_equal(got["configs"]["config"], ref["configs"]["config"])
