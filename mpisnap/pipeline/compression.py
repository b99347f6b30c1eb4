"""Stage 4, compress: the weighted training rows ``[wA | wb]`` of this rank → a running R factor
(:class:`~mpisnap.tsqr.StreamingR`, a QR of the running R stacked on each new block: memory
``O(block × n + n²)`` however many rows), optionally one R per key of the rows (row kind;
fold, group and kind), so that later stages can weight and combine blocks without the rows:
the weighted residual of a block is ``‖R_k β − (Qᵀb)_k‖² + ρ_k²`` exactly. :func:`finalize`
combines every rank's R (collective), after which every rank holds the same small system.

New rows are folded into an existing accumulator with ``into=`` (incremental refits cost the
new rows only)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Iterable

import numpy as np

from ..results import DesignShard
from ..tsqr import StreamingR

__all__ = ["Compressed", "compress", "compress_shard", "finalize", "shard_blocks"]

#: Rows folded into R at a time (bounds the extra memory of a fold).
BLOCK_ROWS = 20000


@dataclass(frozen=True)
class Compressed:
    """A compressed system, identical on every rank: ``R`` (n, n) upper triangular and ``qb``
    (n,) with ``‖w(Aβ − b)‖² = ‖Rβ − qb‖² + rnorm2`` over its ``nrows`` training rows."""

    R: np.ndarray
    qb: np.ndarray
    rnorm2: float
    nrows: int


def shard_blocks(shard: DesignShard, block_rows: int = BLOCK_ROWS, *, train_only: bool = False):
    """The rows of ``shard`` (only its training rows with ``train_only``) as ``(A, b, w,
    labels)`` blocks of at most ``block_rows`` rows."""
    if not train_only:
        for s in range(0, shard.nrows, block_rows):
            e = s + block_rows
            yield shard.A[s:e], shard.b[s:e], shard.w[s:e], shard.labels[s:e]
        return
    train = np.flatnonzero(shard.train)
    for s in range(0, len(train), block_rows):
        idx = train[s:s + block_rows]
        yield shard.A[idx], shard.b[idx], shard.w[idx], shard.labels[idx]


def compress(blocks: Iterable, ncols: int, *,
             key: Callable[[np.ndarray], np.ndarray] | None = None,
             into: StreamingR | dict | None = None):
    """Fold the training rows (``labels["test"]`` false) of ``(A, b, w, labels)`` ``blocks`` into
    R. Without ``key``: one :class:`~mpisnap.tsqr.StreamingR` (``into``, or a new one). With
    ``key``, a function of a block's labels returning one hashable key per row (e.g.
    ``lambda lab: lab["kind"]``): a dict key → StreamingR (``into``, or a new dict)."""
    if key is None:
        acc = into if into is not None else StreamingR(ncols)
        for A, b, w, lab in blocks:
            t = ~lab["test"]
            if t.all():
                acc.add(A, b, w)
            elif t.any():
                acc.add(A[t], b[t], w[t])
        return acc
    accs: dict[Hashable, StreamingR] = into if into is not None else {}
    for A, b, w, lab in blocks:
        t = ~lab["test"]
        keys = np.asarray(key(lab))
        if keys.ndim != 1 or len(keys) != len(lab):
            raise ValueError("compress: key must return one key per row")
        uniq = sorted(set(keys[t].tolist()))
        for k in uniq:
            sel = t & (keys == k)
            acc = accs.get(k)
            if acc is None:
                acc = accs[k] = StreamingR(ncols)
            acc.add(A[sel], b[sel], w[sel])
    return accs


def compress_shard(shard: DesignShard, *, key=None, into=None, block_rows: int = BLOCK_ROWS):
    """:func:`compress` of a design shard's training rows, ``block_rows`` at a time."""
    return compress(shard_blocks(shard, block_rows, train_only=True), shard.A.shape[1], key=key,
                    into=into)


def finalize(comm, acc: StreamingR | dict, ncols: int | None = None):
    """Collective: every rank's R combined, identical on every rank. A StreamingR gives one
    :class:`Compressed`; a dict gives a dict of them over the union of the ranks' keys (sorted;
    a rank without rows for a key contributes nothing; ``ncols`` is needed then)."""
    if isinstance(acc, StreamingR):
        R, qb, rnorm2 = acc.finalize(comm)
        return Compressed(R, qb, float(rnorm2), int(acc.total_rows))
    keys = sorted(set().union(*comm.allgather(sorted(acc))))
    out = {}
    for k in keys:
        a = acc.get(k)
        if a is None:
            a = StreamingR(ncols)
        out[k] = finalize(comm, a)
    return out
