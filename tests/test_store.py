"""Descriptor store: refits without descriptors give the same potential as fits from scratch,
with new solvers, weights or splits and on any number of ranks."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap.store import StoreError

ROOT = Path(__file__).resolve().parents[1]
INPUT = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    res = mpisnap.fit(INPUT, output_dir=d / "fit", store=d / "cu.h5")
    return d / "cu.h5", res


def close(a, b, tol=1e-10):
    return np.abs(np.asarray(a) - np.asarray(b)).max() <= tol * np.abs(b).max()


def test_refit_from_store_equals_original_fit(stored, tmp_path):
    path, res = stored
    again = mpisnap.fit(INPUT, output_dir=tmp_path, from_store=path)
    assert close(again.coefficients, res.coefficients)
    for a, b in zip(again.metrics, res.metrics):
        assert (a.group, a.kind, a.split, a.weighting, a.ncount) == (b.group, b.kind, b.split, b.weighting, b.ncount)
        assert a.rmse == pytest.approx(b.rmse, rel=1e-10)


@pytest.mark.parametrize("overrides", [
    ["SOLVER.solver=RIDGE", "RIDGE.alpha=1e-3"],
    ["GROUPS.MD=0.5 0.5 10.0 3.0 1.0e-3", "GROUPS.random_seed=7"],
    ["GROUPS.smartweights=1"],
])
def test_refit_with_new_settings_equals_fit_from_scratch(stored, tmp_path, overrides):
    path, _ = stored
    refit = mpisnap.fit(INPUT, output_dir=tmp_path / "a", from_store=path, overrides=overrides)
    scratch = mpisnap.fit(INPUT, output_dir=tmp_path / "b", overrides=overrides)
    assert close(refit.coefficients, scratch.coefficients)
    m1 = refit.metric("*ALL", "Unweighted", "Testing", "Force")
    m2 = scratch.metric("*ALL", "Unweighted", "Testing", "Force")
    assert m1.ncount == m2.ncount and m1.rmse == pytest.approx(m2.rmse, rel=1e-10)


def test_store_written_by_two_ranks_refits_on_one(tmp_path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "-m", "mpisnap", "fit",
                        str(INPUT), "--output-dir", str(tmp_path / "mpi"), "-q",
                        "--store", str(tmp_path / "cu.h5")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "cu.h5.parts")) == ["rank00000.h5", "rank00001.h5"]
    serial = mpisnap.fit(INPUT, output_dir=tmp_path / "serial")
    refit = mpisnap.fit(INPUT, output_dir=tmp_path / "refit", from_store=tmp_path / "cu.h5")
    assert close(refit.coefficients, serial.coefficients)


def test_refit_with_other_descriptor_settings_is_refused(stored, tmp_path):
    path, _ = stored
    with pytest.raises(StoreError, match="different \\[BISPECTRUM\\]"):
        mpisnap.fit(INPUT, output_dir=tmp_path, from_store=path, overrides=["BISPECTRUM.twojmax=4"])
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no such descriptor store"):
        mpisnap.fit(INPUT, output_dir=tmp_path, from_store=tmp_path / "nope.h5")
    shutil.rmtree(tmp_path, ignore_errors=True)
