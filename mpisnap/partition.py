"""Assigning configurations to MPI ranks: a pure function, tested without MPI."""
from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np

__all__ = ["assign", "imbalance"]


def assign(costs: Sequence[float], nranks: int) -> np.ndarray:
    """Owner rank of each item, balancing the summed cost (longest processing time first).

    Deterministic: items are taken in decreasing cost (ties by index) and each goes to the rank
    with the least load so far (ties to the lowest rank). Within a rank, items keep their input
    order when the caller selects ``np.flatnonzero(owner == rank)``.
    """
    if nranks < 1:
        raise ValueError(f"nranks must be >= 1, got {nranks}")
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 1 or np.any(~np.isfinite(costs)) or np.any(costs < 0):
        raise ValueError("costs must be a 1-d array of finite non-negative numbers")
    owner = np.zeros(len(costs), dtype=np.int64)
    if nranks == 1:
        return owner
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    heap = [(0.0, r) for r in range(nranks)]
    for i in order:
        load, r = heapq.heappop(heap)
        owner[i] = r
        heapq.heappush(heap, (load + costs[i], r))
    return owner


def imbalance(costs: Sequence[float], owner: np.ndarray, nranks: int) -> float:
    """max(load) / mean(load) − 1 (0 = perfect balance)."""
    loads = np.bincount(owner, weights=np.asarray(costs, float), minlength=nranks)
    mean = loads.mean()
    return float(loads.max() / mean - 1.0) if mean > 0 else 0.0
