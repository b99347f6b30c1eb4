"""``mpisnap ARGS`` with a fault injected on one rank: ``FAULT_RANK`` (default 1) raises
ZeroDivisionError in the metrics reduction — a collective the other ranks are already waiting in,
so only that rank knows. Usage: mpiexec -n 2 python cli_fault.py fit INPUT ..."""
import os
import sys

from mpi4py import MPI

from mpisnap import cli, metrics

if MPI.COMM_WORLD.rank == int(os.environ.get("FAULT_RANK", "1")):
    def reduce_sums(comm, sums):
        return 1 / 0

    metrics.reduce_sums = reduce_sums

sys.exit(cli.main(sys.argv[1:]))
