"""Run the bundled example fit on every rank of COMM_WORLD and print, on rank 0, one JSON line:
per rank, the thread pools in effect during the fit and the core's OpenMP thread count.
Usage: mpiexec -n N python thread_pools.py EXAMPLE.in [THREADS]"""
import json
import sys

from mpi4py import MPI

import mpisnap

comm = MPI.COMM_WORLD
threads = int(sys.argv[2]) if len(sys.argv) > 2 else None
result = mpisnap.fit(sys.argv[1], comm=comm, threads=threads, write=False)
mine = dict(result.thread_pools, descriptor=result.model.descriptor.threads)
everyone = comm.gather(mine, root=0)
if comm.rank == 0:
    print(json.dumps(everyone))
