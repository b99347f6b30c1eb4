"""Data-parallel nn training: 1, 2 and 3 MPI ranks give the same network after 5 epochs (to
1e-8 relative; the batches and their order do not depend on the rank count, the gradients are
summed in a fixed order) and ``mpiexec -n 3 mpisnap fit`` writes it as LAMMPS files. One launch
(timeout as a deadlock net): 3 ranks through the command line, then 2 + 1 ranks side by side."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from mpisnap.potential import read_mliap_model

SCRIPT = Path(__file__).resolve().parent / "mpi_scripts" / "nn_ranks.py"


def mpiexec():
    exe = Path(sys.executable).parent / "mpiexec"
    return str(exe) if exe.exists() else shutil.which("mpiexec")


def test_one_two_and_three_ranks_train_the_same_network(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [mpiexec(), "-n", "3", sys.executable, str(SCRIPT), str(tmp_path),
           "PYTORCH.num_epochs=5", "PYTORCH.layer_sizes=num_desc 16 16 1",
           "PYTORCH.batch_size=8", "PYTORCH.learning_rate=2e-3"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    one, two = (np.load(tmp_path / f"nn_{n}.npz") for n in (1, 2))
    three = read_mliap_model(tmp_path / "cli" / "Cu_EMT_pot.mliap.model").coefficients[0]
    ref = one["coef"]
    assert len(one["loss"]) == 5 and one["loss"][-1] < one["loss"][0]
    for got in (two["coef"], three):
        assert np.abs(got - ref).max() <= 1e-8 * np.abs(ref).max()
    assert np.allclose(two["loss"], one["loss"], rtol=1e-10, atol=0)
    log = (tmp_path / "cli" / "Cu_EMT_pot.log").read_text()
    assert "model form: nn" in log and "solver: PYTORCH" in log
