"""``[UQ]`` with a solver that has no posterior (SVD, RIDGE, …) is a one-line error naming the
section and the solver, before any work; the command line exits 2 and writes nothing."""
import subprocess
import sys
from pathlib import Path

import pytest

import mpisnap
from mpisnap.errors import FitError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT"


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mpisnap", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("inp, sets", [
    ("Cu_EMT_bayes.in", ["SOLVER.solver=SVD"]),         # the example's [UQ] section, SVD
    ("Cu_EMT.in", ["SOLVER.solver=RIDGE", "UQ.folds=3"]),  # [UQ] given by an override alone
])
def test_uq_section_with_a_non_bayesian_solver_is_a_one_line_error(tmp_path, inp, sets):
    out = tmp_path / "out"
    args = [a for s in sets for a in ("--set", s)]
    proc = run("fit", EXAMPLE / inp, *args, "--output-dir", out, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    solver = sets[0].split("=")[1]
    assert lines[0].startswith(f"mpisnap: error: {inp}: [UQ]:")
    assert f"solver = {solver}" in lines[0] and "BAYES" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_python_api_raises_it_and_bayes_takes_the_section(tmp_path):
    with pytest.raises(FitError, match=r"Cu_EMT_bayes\.in: \[UQ\]: .*solver = SVD has no "
                                       r"posterior"):
        mpisnap.fit(EXAMPLE / "Cu_EMT_bayes.in", overrides=["SOLVER.solver=SVD"],
                    output_dir=tmp_path / "out", autoload=False)
    assert not (tmp_path / "out").exists()
    setup = mpisnap.pipeline.prepare(EXAMPLE / "Cu_EMT_bayes.in", autoload=False)
    assert setup.solver.posterior and "UQ" in setup.settings.sections
