"""Split-conformal calibration of predictive standard deviations, with distributed, exact order
statistics (no rank gathers the scores).

SNAP is never the true model, so Bayesian intervals alone under-cover on real data. The
calibration uses cross-validation inside the training split: every training configuration is
held out once (its fold's posterior is fitted without it), and each held-out row of kind k gives a
score ``z = |b − a·μ₋f| / σ₋f`` (σ the raw predictive standard deviation). With n scores of kind k
the split-conformal quantile at level p is the ``⌈(n+1)p⌉``-th smallest score (Vovk et al. 2005;
Lei et al. 2018, "Distribution-free predictive inference for regression", JASA 113:1094), and
the reported standard deviations of kind k are scaled by ``s_k = q_k / Φ⁻¹((1+p)/2)``, so that
``±Φ⁻¹((1+p)/2) σ`` (±1.645 σ at p = 0.9) is the conformal interval. Its coverage guarantee
holds for exchangeable configurations; rows of one configuration are not independent, so it is
a guarantee per configuration draw, not per row.

The order statistic is found by bisection on the bit patterns of the non-negative scores: at
most 64 ``allreduce`` calls of one integer each, exactly the same value on any number of ranks.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["order_statistic", "conformal_quantile", "z_of", "LEVELS", "RELIABILITY_LEVELS"]

#: Coverage levels reported.
LEVELS = (0.5, 0.9, 0.95)
#: Nominal levels of the reliability curve.
RELIABILITY_LEVELS = tuple(np.round(np.r_[np.arange(0.05, 0.951, 0.05), 0.99], 2))


def z_of(level: float) -> float:
    """Half-width in standard deviations of the central ``level`` interval of a normal law."""
    return NormalDist().inv_cdf(0.5 * (1.0 + float(level)))


def order_statistic(comm, values: np.ndarray, k: int) -> float:
    """The ``k``-th smallest (1-based) of the non-negative, finite ``values`` of every rank
    (collective; the same on every rank, for any distribution of the values)."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    if v.size and (not np.all(np.isfinite(v)) or v.min() < 0):
        raise ValueError("order_statistic: values must be finite and >= 0")
    bits = np.sort(v.view(np.int64))  # non-negative doubles sort like their bit patterns
    total = comm.allreduce(int(bits.size))
    if not 1 <= k <= total:
        raise ValueError(f"order_statistic: k = {k} outside 1..{total}")
    lo = 0
    hi = max(comm.allgather(int(bits[-1]) if bits.size else 0))
    while lo < hi:
        mid = (lo + hi) // 2
        count = comm.allreduce(int(np.searchsorted(bits, mid, side="right")))
        if count >= k:
            hi = mid
        else:
            lo = mid + 1
    return float(np.array([lo], dtype=np.int64).view(np.float64)[0])


def conformal_quantile(comm, scores: np.ndarray, level: float) -> tuple[float, int]:
    """``(q, n)``: the split-conformal quantile of the scores of every rank at ``level`` (the
    ``⌈(n+1)·level⌉``-th smallest; the largest when there are too few scores: then the
    guarantee is only approximate) and the number of scores n (NaN, 0 without scores)."""
    n = comm.allreduce(int(np.size(scores)))
    if n == 0:
        return float("nan"), 0
    k = min(int(math.ceil((n + 1) * float(level))), n)
    return order_statistic(comm, scores, k), n
