"""Train the nn form on the Cu example with every rank count from one launch: first all ranks
through the command line (``mpisnap fit``, files in ``<OUT>/cli``), then ranks {0, 1} as one
communicator while rank 2 trains alone (``mpisnap.fit``; each run's rank 0 saves the network's
parameters and loss history as ``<OUT>/nn_<size>.npz``).
Usage: mpiexec -n 3 python nn_ranks.py OUT SECTION.key=value ..."""
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

import mpisnap
from mpisnap import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "Cu_EMT" / "Cu_EMT.in"
out = Path(sys.argv[1])
overrides = ["CALCULATOR.nonlinear=1", "SOLVER.solver=PYTORCH", *sys.argv[2:]]

world = MPI.COMM_WORLD
args = ["fit", str(EXAMPLE), "--output-dir", str(out / "cli"), "-q", "--threads", "1"]
code = cli.main(args + [a for o in overrides for a in ("--set", o)])
if code:
    sys.exit(code)
sub = world.Split(color=int(world.rank >= 2), key=world.rank)
res = mpisnap.fit(EXAMPLE, overrides=overrides, comm=sub, write=False, threads=1)
if sub.rank == 0:
    np.savez(out / f"nn_{sub.size}.npz", coef=res.coefficients,
             loss=[h["train_loss"] for h in res.model.history])
sub.Free()
