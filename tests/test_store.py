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


# -- writing never destroys: only mpisnap stores are overwritten, all or nothing --------------------

def snapshot(path: Path) -> dict:
    """The bytes of a store's master file and of its parts."""
    files = {path.name: path.read_bytes()}
    for part in sorted(Path(str(path) + ".parts").iterdir()):
        files[part.name] = part.read_bytes()
    return files


def test_a_store_is_replaced_all_or_nothing(tmp_path, monkeypatch):
    import mpisnap.store as store_mod
    from mpisnap.store import read_store
    from mpisnap.settings import load_settings
    from mpisnap.comm import SerialComm

    path = tmp_path / "cu.h5"
    mpisnap.fit(INPUT, write=False, store=path)
    before = snapshot(path)

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(store_mod, "_write_master", full)
    with pytest.raises(OSError, match="No space left"):
        mpisnap.fit(INPUT, write=False, store=path, overrides=["BISPECTRUM.twojmax=4"])
    monkeypatch.undo()
    assert snapshot(path) == before  # the previous store, untouched and complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cu.h5", "cu.h5.parts"]  # no debris
    # a successful rewrite replaces master and parts together
    mpisnap.fit(INPUT, write=False, store=path, overrides=["BISPECTRUM.twojmax=4"])
    assert snapshot(path) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cu.h5", "cu.h5.parts"]
    shard, _ = read_store(SerialComm(), path, load_settings(INPUT, ["BISPECTRUM.twojmax=4"]))
    assert shard.A.shape[1] == 1 + 14  # twojmax 4: 14 bispectrum components and the constant
    with pytest.raises(StoreError, match="different"):
        read_store(SerialComm(), path, load_settings(INPUT))


def test_only_an_mpisnap_store_is_overwritten(tmp_path):
    from mpisnap.store import check_store_target

    other = tmp_path / "data.h5"
    other.write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="not an mpisnap descriptor store; refusing"):
        check_store_target(other)
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        check_store_target(tmp_path / "dir.h5")
    parts = tmp_path / "new.h5.parts"
    parts.mkdir()
    (parts / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="notes.txt"):
        check_store_target(tmp_path / "new.h5")
    (tmp_path / "f").write_text("")
    with pytest.raises(StoreError, match="not a directory"):
        check_store_target(tmp_path / "f" / "s.h5")
    assert check_store_target(tmp_path / "fresh.h5") == str(tmp_path / "fresh.h5")
    assert other.read_bytes() == b"not hdf5" and (parts / "notes.txt").read_text() == "mine"


def test_a_damaged_store_is_a_clear_error(stored, tmp_path):
    path, _ = stored
    copy = tmp_path / "copy.h5"
    shutil.copy(path, copy)
    shutil.copytree(str(path) + ".parts", str(copy) + ".parts")
    (Path(str(copy) + ".parts") / "rank00000.h5").unlink()
    with pytest.raises(StoreError, match="part .*rank00000.h5 is missing"):
        mpisnap.fit(INPUT, write=False, from_store=copy)
    with pytest.raises(StoreError, match="is a directory"):
        mpisnap.fit(INPUT, write=False, from_store=tmp_path)
