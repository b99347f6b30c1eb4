"""Stage 6, evaluate: each rank predicts its own rows; error sums per group, row kind and
train/test split are reduced over ranks into the metrics table (FitSNAP's columns). Rank 0 gets
the per-row table (labels, truth, weight, prediction) for plots and row dumps, never ``A``."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .. import metrics as metrics_mod
from ..results import LABEL_DTYPE, DesignShard, MetricRow

__all__ = ["evaluate", "evaluate_blocks", "gather_rows"]


def _rows(comm, sums, group_names) -> list[MetricRow]:
    return metrics_mod.metric_rows(metrics_mod.reduce_sums(comm, sums), group_names)


def evaluate(comm, shard: DesignShard, coefficients: np.ndarray
             ) -> tuple[list[MetricRow], DesignShard | None]:
    """Predict ``shard``'s rows (sets ``shard.predictions``), reduce the metrics over ranks;
    returns them and, on rank 0, the per-row table of every rank (:func:`gather_rows`; the
    shard itself on one process)."""
    shard.predictions = shard.A @ coefficients
    rows = _rows(comm, metrics_mod.partial_sums(shard), shard.group_names)
    return rows, (gather_rows(comm, shard) if comm.size > 1 else shard)


def local_sums(blocks: Iterable, coefficients: np.ndarray, config_names: Sequence[str],
               group_names: Sequence[str]) -> np.ndarray:
    """This rank's error sums over ``(A, b, w, labels)`` ``blocks`` (nothing is kept)."""
    total = None
    for A, b, w, lab in blocks:
        part = DesignShard(A, b, w, lab, list(config_names), list(group_names), A @ coefficients)
        s = metrics_mod.partial_sums(part)
        total = s if total is None else total + s
    if total is None:
        ncols = len(coefficients)
        total = metrics_mod.partial_sums(DesignShard(
            np.zeros((0, ncols)), np.zeros(0), np.zeros(0), np.zeros(0, LABEL_DTYPE),
            list(config_names), list(group_names), np.zeros(0)))
    return total


def evaluate_blocks(comm, sums: np.ndarray, group_names: Sequence[str]) -> list[MetricRow]:
    """The metrics table from every rank's :func:`local_sums` (collective)."""
    return _rows(comm, sums, group_names)


def gather_rows(comm, shard: DesignShard) -> DesignShard | None:
    """Rank 0 gets every rank's per-row table (labels, truth, weight, prediction; a few bytes per
    row) for the parity plot and row dumps — never the design matrix itself (``A`` is None there;
    the descriptor store writes A per rank)."""
    parts = comm.gather((shard.b, shard.w, shard.labels, shard.predictions), root=0)
    if comm.rank != 0:
        return None
    b, w, lab, pred = (np.concatenate([p[k] for p in parts]) for k in range(4))
    return DesignShard(None, b, w, lab, shard.config_names, shard.group_names, pred)
