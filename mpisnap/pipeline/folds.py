"""Compressed blocks per cross-validation fold, group and row kind — shared by tuning
(cross-validated weights), uncertainty calibration (conformal quantiles from CV residuals) and
active learning (per-round refits).

Folds are by configuration, inside the training split (test entries get fold −1 and are never
compressed): within each group the training entries are shuffled by
``numpy.random.default_rng([seed, crc32(group)])`` and dealt to the folds in turn, so every fold
has a share of every group (stratified), a group with fewer than K configurations takes part in
fewer folds, and the assignment depends only on the seed, the group names and the entry names.

Blocks are compressed rows (:func:`mpisnap.pipeline.compression.compress` with the key of a
:class:`BlockIndex`); :func:`combine` stacks chosen blocks, each scaled, and reduces them by QR
(never normal equations, which would square the condition number): O(blocks · n³) flops per
combination and ``(n + 1)²`` floats per block, independent of the number of rows. The weighted
residual of a block for coefficients β is ``‖R_k β − (Qᵀb)_k‖² + ρ_k²`` (:func:`residual`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..comm import SerialComm
from ..tsqr import StreamingR
from .compression import Compressed, finalize

__all__ = ["assign_folds", "BlockIndex", "combine", "residual"]


def assign_folds(entries, nfolds: int, seed: int = 0) -> np.ndarray:
    """Fold (0 .. nfolds−1) of each training entry, −1 for test entries (see the module
    docstring)."""
    if nfolds < 2:
        raise ValueError(f"folds must be >= 2, got {nfolds}")
    folds = np.full(len(entries), -1, dtype=np.int64)
    by_group: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        if not e.test:
            by_group.setdefault(e.ref.group, []).append(i)
    for group, idx in by_group.items():
        idx = sorted(idx, key=lambda i: entries[i].ref.name)
        rng = np.random.default_rng([int(seed), zlib.crc32(group.encode())])
        order = rng.permutation(len(idx))
        for k, j in enumerate(order):
            folds[idx[j]] = k % nfolds
    return folds


@dataclass(frozen=True)
class BlockIndex:
    """Integer codes of (fold, group, kind) blocks: ``code = (fold·ngroups + group)·3 + kind``.
    ``folds``: the fold of each configuration (:func:`assign_folds`; indexed by the labels'
    ``config``). ``key`` is the function to give :func:`~mpisnap.pipeline.compress`."""

    folds: np.ndarray
    ngroups: int

    def key(self, labels: np.ndarray) -> np.ndarray:
        fold = self.folds[labels["config"]]
        return (fold * self.ngroups + labels["group"].astype(np.int64)) * 3 + labels["kind"]

    def decode(self, code: int) -> tuple[int, int, int]:
        """(fold, group, kind) of a block code."""
        fg, kind = divmod(int(code), 3)
        fold, group = divmod(fg, self.ngroups)
        return fold, group, kind


def combine(blocks: Mapping[int, Compressed], scale: Callable[[int], float] | Mapping[int, float],
            ncols: int | None = None) -> Compressed:
    """The system of the chosen blocks, each block's rows multiplied by ``scale[code]`` (a
    scale of 0 leaves a block out): a QR of the stacked, scaled triangles. Local (every rank
    holds the blocks), deterministic (blocks in code order)."""
    get = scale if callable(scale) else (lambda c: scale.get(c, 0.0))
    n = ncols if ncols is not None else next(iter(blocks.values())).R.shape[0]
    acc = StreamingR(n, defer_errors=False)
    rho2, nrows = 0.0, 0
    for code in sorted(blocks):
        s = float(get(code))
        if s == 0.0:
            continue
        c = blocks[code]
        acc.add(c.R, c.qb, np.full(c.R.shape[0], s))
        rho2 += s * s * c.rnorm2
        nrows += c.nrows
    out = finalize(SerialComm(), acc)
    return Compressed(out.R, out.qb, out.rnorm2 + rho2, nrows)


def residual(block: Compressed, beta: np.ndarray) -> float:
    """Weighted sum of squared residuals of the block's rows for coefficients ``beta``."""
    r = block.R @ beta - block.qb
    return float(r @ r + block.rnorm2)
