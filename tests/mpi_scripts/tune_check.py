"""Run under ``mpiexec -n N python tune_check.py INPUT SEED [OVERRIDE ...]``: the cross-validation
blocks of INPUT on N ranks. Prints, on rank 0, one JSON line: for the input's point and a random
point (seeded), the trial's weights, alpha and CV errors (per kind and per group); whether every
rank holds bit-identical blocks and errors; and the objectives of a short search (12 trials).
Any failure aborts the job (no rank waits in a collective)."""
import hashlib
import json
import sys
import traceback

import numpy as np
from mpi4py import MPI


def main(comm):
    from mpisnap.tuning.driver import cross_validator
    from mpisnap.tuning.search import search

    inp, seed, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    cv = cross_validator(inp, overrides=overrides, comm=comm, autoload=False, folds=4, seed=3,
                         threads=1)
    rng = np.random.default_rng(seed)
    points = [cv.space.x0, cv.space.x0 + rng.uniform(-1, 1, cv.space.size)]
    out = []
    h = hashlib.sha256()
    for code in sorted(cv.blocks.blocks):
        c = cv.blocks.blocks[code]
        h.update(np.ascontiguousarray(c.R).tobytes() + c.qb.tobytes())
    for x in points:
        e = cv.errors(x)
        out.append({"weights": cv.weights(x), "alpha": cv.alpha(x), "rmse": e.rmse,
                    "group_rmse": [[g, k, v] for (g, k), v in e.group_rmse.items()]})
        h.update(repr(sorted(e.group_rmse.items())).encode())
    digests = comm.allgather(h.hexdigest())
    trials = search(comm, cv.space, cv.trial, trials=12, seed=seed)
    mine = [t.objective for t in trials]
    same_trials = all(o == mine for o in comm.allgather(mine))
    folds = cv.blocks.index.folds.tolist()
    if comm.rank == 0:
        print(json.dumps({"points": out, "identical": len(set(digests)) == 1 and same_trials,
                          "folds": folds, "objectives": mine,
                          "x": [list(t.x) for t in trials]}))


if __name__ == "__main__":
    comm = MPI.COMM_WORLD
    try:
        main(comm)
    except BaseException:  # noqa: BLE001 - never leave the other ranks waiting
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        comm.Abort(1)
