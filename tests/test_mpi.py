"""The same input gives the same potential on 1, 2, 3 or 4 MPI processes (launched with the
mpich wheel's mpiexec), in streaming mode too; an error on a non-zero rank ends the run with that
rank's message. Every launch has a timeout as a deadlock net."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap.metrics import read_metrics
from mpisnap.testing import teachers as T

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT"


def mpiexec():
    exe = Path(sys.executable).parent / "mpiexec"
    return str(exe) if exe.exists() else shutil.which("mpiexec")


def run_mpi(n, args, cwd, timeout=180, script=False):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    exe = [str(Path(sys.executable).parent / "mpisnap")] if script else [sys.executable, "-m", "mpisnap"]
    cmd = [mpiexec(), "-n", str(n), *exe, "fit", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def coefficients(path):
    _, _, blocks = T.read_snapcoeff(path)
    return np.concatenate(list(blocks.values()))


def metrics(path):
    return {(m.group, m.weighting, m.split, m.kind): m for m in read_metrics(path)}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    result = mpisnap.fit(EXAMPLE / "Cu_EMT.in", output_dir=out)
    return out, result


@pytest.mark.parametrize("nranks, script", [(1, False), (2, False), (2, True), (3, False), (4, False)])
def test_same_potential_on_any_number_of_ranks(serial, nranks, script, tmp_path):
    """``mpiexec -n N python -m mpisnap fit`` and ``mpiexec -n N mpisnap fit``."""
    ref_dir, _ = serial
    p = run_mpi(nranks, [str(EXAMPLE / "Cu_EMT.in"), "--output-dir", str(tmp_path), "-q"], tmp_path,
                script=script)
    assert p.returncode == 0, p.stderr
    a, b = coefficients(tmp_path / "Cu_EMT_pot.snapcoeff"), coefficients(ref_dir / "Cu_EMT_pot.snapcoeff")
    assert np.abs(a - b).max() <= 1e-10 * np.abs(b).max()
    ma, mb = metrics(tmp_path / "Cu_EMT_metrics.md"), metrics(ref_dir / "Cu_EMT_metrics.md")
    assert ma.keys() == mb.keys()
    for k in mb:
        assert ma[k].ncount == mb[k].ncount
        for f in ("mae", "rmse"):  # the Markdown table has 6 significant digits
            assert getattr(ma[k], f) == pytest.approx(getattr(mb[k], f), rel=1e-5), (k, f)


def test_streaming_mode_on_two_ranks_equals_the_serial_fit(serial, tmp_path):
    ref_dir, ref = serial
    p = run_mpi(2, [str(EXAMPLE / "Cu_EMT.in"), "--output-dir", str(tmp_path), "-q",
                    "--set", "MEMORY.stream=1"], tmp_path)
    assert p.returncode == 0, p.stderr
    a, b = coefficients(tmp_path / "Cu_EMT_pot.snapcoeff"), coefficients(ref_dir / "Cu_EMT_pot.snapcoeff")
    assert np.abs(a - b).max() <= 1e-10 * np.abs(b).max()
    ma = metrics(tmp_path / "Cu_EMT_metrics.md")
    m = ref.metric("*ALL", "Unweighted", "Training", "Force")
    assert ma[("*ALL", "Unweighted", "Training", "Force")].rmse == pytest.approx(m.rmse, rel=1e-5)


def test_streaming_in_process_equals_stored_shard(serial, tmp_path):
    _, ref = serial
    res = mpisnap.fit(EXAMPLE / "Cu_EMT.in", output_dir=tmp_path, overrides=["MEMORY.stream=1"])
    assert res.shard is None
    assert np.abs(res.coefficients - ref.coefficients).max() <= 1e-10 * np.abs(ref.coefficients).max()
    for a, b in zip(res.metrics, ref.metrics):
        assert (a.group, a.weighting, a.split, a.kind, a.ncount) == (b.group, b.weighting, b.split, b.kind, b.ncount)
        assert a.rmse == pytest.approx(b.rmse, rel=1e-10)


def test_teacher_recovery_on_three_ranks(tmp_path):
    inp = T.write_dataset(T.TEACHERS["Ta06A"], tmp_path, n=10, seed=1)
    mpisnap.fit(inp, output_dir=tmp_path / "serial")
    p = run_mpi(3, [str(inp), "--output-dir", str(tmp_path / "mpi"), "-q"], tmp_path)
    assert p.returncode == 0, p.stderr
    got = coefficients(tmp_path / "mpi" / "Ta06A_fit.snapcoeff")
    want = coefficients(tmp_path / "serial" / "Ta06A_fit.snapcoeff")
    assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max()
    _, _, published = T.read_snapcoeff(T.TEACHERS["Ta06A"].snapcoeff)
    pub = published["Ta"]
    assert np.abs(got - pub).max() <= 1e-8 * np.abs(pub).max()


def test_error_on_a_nonzero_rank_ends_the_run_with_its_message(tmp_path):
    work = tmp_path / "Cu_EMT"
    shutil.copytree(EXAMPLE, work)
    from mpisnap.training_set import training_set
    from mpisnap.partition import assign
    from mpisnap.pipeline import estimate_costs, prepare

    pieces = prepare(work / "Cu_EMT.in")
    entries = training_set(pieces.settings, pieces.reader)
    costs = estimate_costs(pieces, entries, range(len(entries)))
    owner = assign([costs[i] for i in range(len(entries))], 2)
    mine = np.flatnonzero(owner == 1)  # the configurations rank 1 of 2 will read
    victim = Path(entries[mine[len(mine) // 2]].ref.source)
    victim.write_text("{ this is not JSON")
    out = tmp_path / "out"
    t0 = time.perf_counter()
    p = run_mpi(2, [str(work / "Cu_EMT.in"), "--output-dir", str(out)], tmp_path, timeout=60)
    elapsed = time.perf_counter() - t0
    assert p.returncode != 0
    assert elapsed < 30
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("mpisnap: error")]
    assert len(lines) == 1, p.stderr
    assert "rank 1" in lines[0] and victim.name in lines[0]
    assert "Traceback" not in p.stderr
    assert not out.exists() or not any(out.iterdir())


def test_error_on_every_rank_is_printed_once(tmp_path):
    """A settings error (the same on every rank) gives one message and exit status 2."""
    p = run_mpi(3, [str(EXAMPLE / "Cu_EMT.in"), "--output-dir", str(tmp_path / "out"),
                    "--set", "SOLVER.solver=NOPE"], tmp_path, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("mpisnap: error")]
    assert len(lines) == 1 and "choose one of" in lines[0], p.stderr
