"""Stage 5, solve: the compressed system (identical on every rank) → the solver plugin →
coefficients (and, where the solver has one, their covariance)."""
from __future__ import annotations

import numpy as np

from ..comm import agree
from ..errors import FitError
from ..results import DesignShard
from ..tsqr import StreamingR
from .compression import BLOCK_ROWS, Compressed, compress_shard, finalize
from .setup import Setup

__all__ = ["solve", "solve_compressed", "solve_shard"]


def solve_compressed(comm, system: Compressed, setup: Setup):
    """The solver plugin on ``system`` (the same on every rank, so are errors; :func:`agree`
    still reports one message)."""

    def run():
        if system.nrows == 0:
            raise FitError("no training rows (every group has training_size 0 or no labels)")
        if not (np.all(np.isfinite(system.R)) and np.all(np.isfinite(system.qb))):
            raise FitError("the design matrix or truth contains NaN or infinite values")
        return setup.solver.solve(system.R, system.qb, setup.settings, nrows=system.nrows,
                                  rnorm2=system.rnorm2)

    return agree(comm, run)


def solve(comm, acc: StreamingR, setup: Setup):
    """Cross-rank combine of the R factors (every rank gets the same R), then the solver."""
    return solve_compressed(comm, finalize(comm, acc), setup)


def solve_shard(comm, shard: DesignShard, setup: Setup, *, block_rows: int = BLOCK_ROWS):
    """Distributed TSQR of the weighted training rows of ``shard``, then the solver."""
    return solve(comm, compress_shard(shard, block_rows=block_rows), setup)
