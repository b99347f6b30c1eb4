"""LAMMPS under ``mpiexec``: each rank's LAMMPS instance is its own (``MPI.COMM_SELF``), so the
``lammps`` reference engine and the ``lammps`` learning oracle give on 2 ranks what they give on 1.
Before, every instance spanned ``COMM_WORLD``: atoms of all ranks were summed (``created 17 of 16
atoms``) or a rank waited in a collective the others never entered."""
import numpy as np
import pytest

import mpisnap
from mpisnap.testing import teachers as T
from test_mpi import coefficients, run_mpi


def test_fit_with_the_lammps_reference_engine_on_two_ranks_equals_one(tmp_path):
    inp = T.write_dataset(T.TEACHERS["Ta06A"], tmp_path, n=6, seed=5)
    one = mpisnap.fit(inp, output_dir=tmp_path / "one", overrides=["REFERENCE.engine=lammps"],
                      autoload=False)
    p = run_mpi(2, [str(inp), "--output-dir", str(tmp_path / "two"), "-q",
                    "--set", "REFERENCE.engine=lammps"], tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    two = coefficients(next((tmp_path / "two").glob("*.snapcoeff")))
    assert np.abs(two - one.coefficients).max() <= 1e-10 * np.abs(one.coefficients).max()


@pytest.mark.parametrize("ranks", ["0", "all"])
def test_learning_with_the_lammps_oracle_on_two_ranks_equals_one(tmp_path, ranks):
    """``oracle_ranks = 0`` (only rank 0 opens LAMMPS) and ``all`` (each rank labels its share):
    the same labels, byte for byte, as one process."""
    from test_learn import learn_on_two_ranks, make_campaign

    learn = ("pool = pool.extxyz\noracle = lammps\noracle_pair_style = lj/cut 6.0\n"
             f"oracle_pair_coeff = * * 0.4 2.3\nbudget = 4\nbatch_size = 2\n"
             f"oracle_ranks = {ranks}")
    inp = make_campaign(tmp_path, learn, npool=8, nseeds=3)
    mpisnap.learn(str(inp), output_dir=str(tmp_path / "one"), autoload=False, threads=1)
    p = learn_on_two_ranks(inp, tmp_path / "two", timeout=120)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "two" / "learn_labels.csv").read_text() == \
        (tmp_path / "one" / "learn_labels.csv").read_text()
    labelled = sorted((tmp_path / "one").glob("labelled/*/*.json"))
    assert len(labelled) == 4
    for f in labelled:
        assert (tmp_path / "two" / f.relative_to(tmp_path / "one")).read_bytes() == f.read_bytes()
