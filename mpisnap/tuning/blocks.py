"""Compressed cross-validation blocks: the training rows reduced, once, in the distributed
pipeline, to one small triangular system per (fold, group, row kind), from which every trial's K
fold fits and their held-out errors are computed without touching a row again.

Rows. The rows come from the fit's own stages (:func:`~mpisnap.pipeline.build_shard` or, with
``[MEMORY] stream``, :func:`~mpisnap.pipeline.iter_blocks`) for a partition whose entries carry
*base* weights, which do not depend on the group weights being tuned: 1, or with
``[GROUPS] smartweights`` 1/(configurations of the group's split) — so a row's weight is still
divided by 3N (force) or 6 (stress) as the fit divides it. A trial's weight of a block is then the
group weight W(g, k) times its base rows: ``w_trial(row) = W(g, k) · w_base(row)`` exactly as the
fit would weight it.

Compression. Each rank sorts its training rows by block code (:class:`~mpisnap.pipeline.folds.
BlockIndex`: ``(fold · groups + group) · 3 + kind``) and folds each code's rows into its own R
(:func:`~mpisnap.pipeline.compress`); :func:`~mpisnap.pipeline.finalize` combines every rank's R
by the TSQR reduction, so every rank ends with the same blocks. No rank gathers rows.

Validation errors are unweighted (the metrics' units: eV/atom, eV/Å, bar). Where a block's base
weight is one constant c (no smartweights; or energy and stress rows; or force rows of
configurations of one size) the unit-weight residual is the block's residual divided by c²; where
it varies (force rows with smartweights and mixed sizes) a second, unit-weight block is kept.

Memory, on every rank: at most ``(n + 1)²`` doubles per block (an energy block has as many rows as
configurations when that is fewer), K·G·kinds blocks, K·G more for unit-weight force blocks
(smartweights),
plus the pre-reduced fold complements of :mod:`.crossval` (K per tuned value). Over the budget
(``[TUNE] memory``) :func:`estimate_bytes` tells the driver to use coarser blocks, one per
(fold, kind) with the input's group weights folded in (``coarse``): then only one factor per
kind can be tuned.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..pipeline.compression import BLOCK_ROWS, Compressed, compress, finalize
from ..pipeline.folds import BlockIndex
from ..pipeline.partitioning import Partition

__all__ = ["CVBlocks", "base_partition", "build_blocks", "fold_rows", "finish_blocks",
           "estimate_bytes", "trimmed"]

KINDS = ("energy", "force", "stress")


def base_partition(pl: Partition, smartweights: bool) -> Partition:
    """``pl`` with every entry's group weights replaced by base weights: 1, or 1/(number of the
    group's configurations in the entry's split) with smartweights (see the module docstring)."""
    count: dict[tuple[str, bool], int] = {}
    for e in pl.entries:
        count[(e.ref.group, e.test)] = count.get((e.ref.group, e.test), 0) + 1
    entries = []
    for e in pl.entries:
        u = 1.0 / count[(e.ref.group, e.test)] if smartweights else 1.0
        entries.append(dataclasses.replace(e, eweight=u, fweight=u, vweight=u))
    return Partition(entries, pl.mine, pl.config_names, pl.group_names)


def trimmed(c: Compressed) -> Compressed:
    """``c`` with R cut to its first ``min(nrows, n)`` rows (the others are zero)."""
    k = min(int(c.nrows), c.R.shape[0])
    return Compressed(np.ascontiguousarray(c.R[:k]), c.qb[:k].copy(), c.rnorm2, c.nrows)


def estimate_bytes(ncols: int, nfolds: int, ngroups: int, nkinds: int, nunit: int,
                   nclasses: int) -> int:
    """Upper bound of the blocks' memory per rank (bytes): K·G·kinds blocks, K·G·``nunit``
    unit-weight blocks, K·classes fold complements, ``(n + 1)²`` doubles each."""
    nblocks = nfolds * ngroups * (nkinds + nunit) + nfolds * nclasses
    return nblocks * (ncols + 1) ** 2 * 8


@dataclass
class CVBlocks:
    """The compressed blocks of one tune, identical on every rank.

    ``index``: the block codes (groups collapsed to one, ``"*ALL"``, when ``coarse``);
    ``blocks``: code → :class:`~mpisnap.pipeline.compression.Compressed` (R trimmed, rows
    weighted by the base weights, or by the input's weights when ``coarse``); ``unit``: code →
    the unit-weight block where the weights vary inside a block; ``unit_scale``: code → c, the
    constant weight of the block's rows where they do not (unit residual = residual / c²);
    ``group_names``: the groups the codes index; ``ncols``."""

    index: BlockIndex
    blocks: dict
    unit: dict
    unit_scale: dict
    group_names: list
    ncols: int
    coarse: bool = False

    def decode(self, code: int) -> tuple[int, int, int]:
        return self.index.decode(code)

    def nbytes(self) -> int:
        return sum(c.R.nbytes + c.qb.nbytes for d in (self.blocks, self.unit) for c in d.values())


def _key_fn(index: BlockIndex, coarse: bool):
    if not coarse:
        return index.key

    def key(lab):
        return index.folds[lab["config"]] * 3 + lab["kind"]
    return key


class _Folder:
    """Folds rows into per-code accumulators, a code's rows at a time (a block of rows holding
    several codes is sorted by code first, so each accumulator gets its rows in one QR rather
    than a sliver per configuration), and keeps the smallest and largest weight per code."""

    def __init__(self, ncols: int, key, unit_kinds: tuple[int, ...]):
        self.ncols, self.key, self.unit_kinds = ncols, key, unit_kinds
        self.accs: dict = {}
        self.unit_accs: dict = {}
        self.wmin: dict = {}
        self.wmax: dict = {}

    def add(self, A, b, w, lab) -> None:
        t = ~lab["test"] & (w > 0)
        if not t.any():
            return
        keys = np.asarray(self.key(lab))[t]
        rows = np.flatnonzero(t)
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        cuts = np.flatnonzero(np.diff(ks)) + 1
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(ks)]):
            code = int(ks[s])
            for s2 in range(s, e, BLOCK_ROWS):
                idx = rows[order[s2:min(e, s2 + BLOCK_ROWS)]]
                sub = (A[idx], b[idx], w[idx], lab[idx])
                compress([sub], self.ncols, key=lambda lb, c=code: np.full(len(lb), c),
                         into=self.accs)
                ws = w[idx]
                self.wmin[code] = min(self.wmin.get(code, np.inf), float(ws.min()))
                self.wmax[code] = max(self.wmax.get(code, 0.0), float(ws.max()))
                if int(lab["kind"][idx[0]]) in self.unit_kinds:
                    compress([(sub[0], sub[1], np.ones(len(idx)), sub[3])], self.ncols,
                             key=lambda lb, c=code: np.full(len(lb), c), into=self.unit_accs)


def _rebatched(blocks, rows: int = BLOCK_ROWS):
    """Per-configuration ``(A, b, w, labels)`` blocks joined into blocks of about ``rows`` rows
    (so that each code's accumulator gets its rows in few QRs)."""
    buf, n = [], 0
    for blk in blocks:
        buf.append(blk)
        n += len(blk[1])
        if n >= rows:
            yield tuple(np.concatenate([x[i] for x in buf]) for i in range(4))
            buf, n = [], 0
    if buf:
        yield tuple(np.concatenate([x[i] for x in buf]) for i in range(4))


def fold_rows(index: BlockIndex, ncols: int, *, shard=None, blocks=None, coarse: bool = False,
              unit_kinds: tuple[int, ...] = ()) -> _Folder:
    """Local (no collective): this rank's training rows (``shard``, a
    :class:`~mpisnap.results.DesignShard`, or ``blocks``, an iterable of ``(A, b, w, labels)``)
    folded into one accumulator per block code. ``unit_kinds``: the row kinds (0 energy, 1 force,
    2 stress) also folded with unit weights, because their weights may vary inside a block (force
    rows with smartweights; every kind in coarse blocks, which mix the groups' weights)."""
    folder = _Folder(ncols, _key_fn(index, coarse), tuple(unit_kinds))
    if shard is not None:
        folder.add(shard.A, shard.b, shard.w, shard.labels)
    else:
        for blk in _rebatched(blocks):
            folder.add(*blk)
    return folder


def finish_blocks(comm, folder: _Folder, index: BlockIndex, group_names, *,
                  coarse: bool = False) -> CVBlocks:
    """Collective: every rank's accumulators combined (TSQR reduction) into the same
    :class:`CVBlocks` on every rank; a unit-weight block whose weights turn out constant is
    dropped again."""
    ncols = folder.ncols
    out = finalize(comm, folder.accs, ncols)
    units = finalize(comm, folder.unit_accs, ncols) if folder.unit_kinds else {}
    lo = comm.allgather(folder.wmin)
    hi = comm.allgather(folder.wmax)
    wmin = {c: min(d[c] for d in lo if c in d) for c in out}
    wmax = {c: max(d[c] for d in hi if c in d) for c in out}
    unit, scale = {}, {}
    for code in out:
        if wmin[code] == wmax[code]:
            scale[code] = wmin[code]
        elif code in units:
            unit[code] = trimmed(units[code])
        else:  # pragma: no cover - unit_kinds covers every block whose weights can vary
            raise RuntimeError(f"block {code}: weights vary but no unit-weight block was kept")
    blocks_ = {c: trimmed(v) for c, v in out.items()}
    names = ["*ALL"] if coarse else list(group_names)
    idx = BlockIndex(index.folds, 1) if coarse else index
    return CVBlocks(idx, blocks_, unit, scale, names, ncols, coarse)


def build_blocks(comm, index: BlockIndex, group_names, ncols: int, *, shard=None, blocks=None,
                 coarse: bool = False, unit_kinds: tuple[int, ...] = ()) -> CVBlocks:
    """Collective: :func:`fold_rows` then :func:`finish_blocks` (the :class:`CVBlocks` of every
    rank's training rows, identical on every rank)."""
    folder = fold_rows(index, ncols, shard=shard, blocks=blocks, coarse=coarse,
                       unit_kinds=unit_kinds)
    return finish_blocks(comm, folder, index, group_names, coarse=coarse)
