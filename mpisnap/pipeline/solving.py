"""Stage 5, solve: the compressed system (identical on every rank) → the solver plugin →
coefficients (and, where the solver has one, their covariance).

A Bayesian solver (its record has ``posterior=True``) gets the training rows compressed per
cross-validation fold and row kind instead (:class:`Blocks`, :func:`compress_folds`,
:func:`solve_blocks`): one noise level per kind needs one R per kind, and calibrating the
uncertainty needs the folds apart. Only rows of weight > 0 are compressed there."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Iterable

import numpy as np

from ..comm import agree
from ..errors import FitError
from ..results import DesignShard
from ..tsqr import StreamingR
from .compression import BLOCK_ROWS, Compressed, compress, compress_shard, finalize
from .folds import assign_folds
from .setup import Setup

__all__ = ["solve", "solve_compressed", "solve_shard", "Blocks", "config_folds",
           "compress_folds", "flat_columns", "solve_blocks"]

#: Row kinds (0 energy, 1 force, 2 stress); a :class:`Blocks` code is ``fold · NKINDS + kind``.
NKINDS = 3


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


# -- compressed blocks per fold and kind (posterior solvers) ---------------------------------------

@dataclass(frozen=True)
class Blocks:
    """The training rows of weight > 0 compressed per (fold, kind), identical on every rank.

    ``systems``: code ``fold · 3 + kind`` → :class:`~mpisnap.pipeline.compression.Compressed`
    (only blocks with rows); ``folds``: the fold of each configuration (index of the row labels'
    ``config``; −1 for test entries); ``nfolds``; ``log_weight2``: kind → Σ log w² over its
    rows (their geometric-mean weight is a kind's typical weight);
    ``flat``: (ncols,) the per-element constant columns (named ``El:B0``), which a prior should
    leave free. Cost: ``nfolds · 3`` triangles of ``(ncols + 1)²`` floats, whatever the rows."""

    systems: dict
    folds: np.ndarray
    nfolds: int
    log_weight2: dict
    flat: np.ndarray

    @property
    def ncols(self) -> int:
        return int(self.flat.size)

    @property
    def kinds(self) -> list[int]:
        """Row kinds with rows, ascending."""
        return sorted({code % NKINDS for code in self.systems})

    @property
    def nrows(self) -> int:
        return int(sum(c.nrows for c in self.systems.values()))

    @staticmethod
    def decode(code: int) -> tuple[int, int]:
        """(fold, kind) of a block code."""
        return divmod(int(code), NKINDS)

    def kind_rows(self, kind: int) -> int:
        return int(sum(c.nrows for code, c in self.systems.items() if code % NKINDS == kind))


def flat_columns(model) -> np.ndarray:
    """The per-element constant columns of a linear model (column names ending ``:B0``)."""
    return np.array([str(n).endswith(":B0") for n in model.column_names()], dtype=bool)


def config_folds(comm, shard: DesignShard, nfolds: int, seed: int = 0) -> np.ndarray:
    """Collective: the fold of every configuration of the training set
    (:func:`~mpisnap.pipeline.folds.assign_folds`: by configuration, stratified by group, −1 for
    test entries), from the row labels of every rank's shard (one triple per configuration is
    exchanged). Configurations without rows take no part."""
    lab = shard.labels
    cfg, first = np.unique(lab["config"], return_index=True)
    mine = [(int(c), int(lab["group"][i]), bool(lab["test"][i])) for c, i in zip(cfg, first)]
    every = sorted({t for part in comm.allgather(mine) for t in part})
    entries = [SimpleNamespace(test=t, ref=SimpleNamespace(name=shard.config_names[c],
                                                           group=shard.group_names[g]))
               for c, g, t in every]
    folds = np.full(len(shard.config_names), -1, dtype=np.int64)
    if every:
        folds[[c for c, _, _ in every]] = assign_folds(entries, nfolds, seed)
    return folds


def compress_folds(comm, blocks: Iterable, ncols: int, folds: np.ndarray, nfolds: int,
                   flat: np.ndarray) -> Blocks:
    """Collective: the training rows of weight > 0 of the ``(A, b, w, labels)`` ``blocks`` (all
    of this rank's rows; test rows are skipped) folded into one R per (fold, kind), combined over
    ranks (:func:`~mpisnap.pipeline.compression.finalize`)."""
    folds = np.asarray(folds, dtype=np.int64)
    logw2 = np.zeros(NKINDS)

    def rows():
        for A, b, w, lab in blocks:
            keep = (w > 0) & ~lab["test"]
            if not keep.all():
                A, b, w, lab = A[keep], b[keep], w[keep], lab[keep]
            if len(b):
                logw2[:] += np.bincount(lab["kind"], weights=2.0 * np.log(w), minlength=NKINDS)
                yield A, b, w, lab

    def key(lab):
        return folds[lab["config"]] * NKINDS + lab["kind"].astype(np.int64)

    accs = agree(comm, lambda: compress(rows(), ncols, key=key))
    systems = finalize(comm, accs, ncols)
    total = comm.allreduce(logw2)
    kinds = {c % NKINDS for c, s in systems.items() if s.nrows > 0}
    return Blocks({c: s for c, s in systems.items() if s.nrows > 0}, folds, int(nfolds),
                  {k: float(total[k]) for k in sorted(kinds)}, np.asarray(flat, dtype=bool))


def solve_blocks(comm, blocks: Blocks, setup: Setup):
    """A posterior solver on ``blocks`` (the same on every rank, so are errors)."""

    def run():
        if blocks.nrows == 0:
            raise FitError("no training rows with weight > 0 (every group has training_size 0, "
                           "no labels or zero weights)")
        for c in blocks.systems.values():
            if not (np.all(np.isfinite(c.R)) and np.all(np.isfinite(c.qb))):
                raise FitError("the design matrix or truth contains NaN or infinite values")
        rnorm2 = float(sum(c.rnorm2 for c in blocks.systems.values()))
        return setup.solver.solve(None, None, setup.settings, nrows=blocks.nrows, rnorm2=rnorm2,
                                  blocks=blocks)

    return agree(comm, run)
