"""Stage 3, rows: this rank's configurations → descriptors (C++ core) → design-matrix rows of
the model form, with truth (minus reference potential and ESHIFT), weights and row labels.

:func:`iter_blocks` yields the rows one configuration at a time in bounded memory (the
streaming mode folds them straight into R); :func:`build_shard` keeps them as this rank's
:class:`~mpisnap.results.DesignShard`. Rows of configurations outside the training set (e.g. new
labels to fold into a fit) come from the same functions with a partition of those entries
(:func:`~mpisnap.pipeline.partitioning.own_all`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..models import LinearModel, RowsInPlace
from ..records import Configuration
from ..results import LABEL_DTYPE, DesignShard
from .partitioning import Partition, plan
from .reading import load, naming
from .setup import Setup
from .timing import Timer, progress as _progress

__all__ = ["iter_blocks", "build_shard"]


def _descriptors(descriptor, batch: Sequence[Configuration]) -> list:
    """Descriptors of a batch; an error names the configuration that caused it."""
    kw = [dict(positions=c.positions, cell=c.cell, pbc=c.pbc, symbols=c.symbols) for c in batch]
    try:
        return descriptor.compute_batch(kw)
    except ValueError:
        for c, k in zip(batch, kw):  # find the culprit, one by one
            with naming(c.name):
                descriptor.compute(**k)
        raise


def _in_place(model, c: Configuration, max_atoms: int) -> bool:
    """Whether configuration ``c`` is computed alone and block by block, its rows written in place
    (:class:`~mpisnap.models.RowsInPlace`): one of at least ``max_atoms`` atoms, when the model
    can."""
    return c.natoms >= max_atoms and isinstance(model, RowsInPlace)


def iter_blocks(setup: Setup, pl: Partition, *, timer: Timer, progress: bool = False,
                chunk: int = 64, max_atoms: int = 2048,
                configs: Sequence[Configuration] | None = None, out: np.ndarray | None = None):
    """Design rows of this rank's configurations, one ``(A, b, w, labels)`` block per
    configuration, reading and computing ``chunk`` configurations at a time (nothing is kept
    between chunks). ``configs``: this rank's configurations, already loaded.

    Memory stays bounded whatever the sizes: a chunk holds about ``max_atoms`` atoms, and a
    configuration of ``max_atoms`` atoms or more is computed on its own, a block of atoms at a
    time, its force rows accumulated straight into its rows (``model.rows_into``), so the working
    memory beyond its rows is bounded (tens of MiB), and an interrupt (KeyboardInterrupt, e.g.
    from SIGTERM) takes effect between blocks. ``out``: a C-contiguous float64 array with room for
    every row (``model.row_count``); each configuration's rows are written into the next rows of
    ``out`` and the yielded ``A`` are views of it (no second copy of any rows)."""
    settings, model, reader = setup.settings, setup.model, setup.reader
    gindex = {g: k for k, g in enumerate(pl.group_names)}
    eshift = settings.eshift
    kinds = setup.kinds
    types = settings.bispectrum.type
    bar = _progress(len(pl.mine), progress)
    r_out = 0

    def chunks():
        """Consecutive configurations, at most ``chunk`` of them and about ``max_atoms`` atoms:
        the memory of a chunk is bounded whatever the order and sizes of the data. A
        configuration computed in place makes a chunk of its own."""
        idx, batch, atoms = [], [], 0
        for k, i in enumerate(pl.mine):
            with timer("read"):
                c = configs[k] if configs is not None else load(reader, pl.entries[i].ref, types)
            if batch and _in_place(model, c, max_atoms):
                yield idx, batch
                idx, batch, atoms = [], [], 0
            idx.append(i)
            batch.append(c)
            atoms += c.natoms
            if len(batch) >= chunk or atoms >= max_atoms:
                yield idx, batch
                idx, batch, atoms = [], [], 0
        if batch:
            yield idx, batch

    def labelled(i, c, A, b, kind, atom, comp):
        entry = pl.entries[i]
        with naming(c.name):
            we, wf, wv = entry.row_weights(c.natoms)
        w = np.choose(kind, [we, wf, wv]).astype(float)
        lab = np.empty(len(b), LABEL_DTYPE)
        lab["config"] = i
        lab["group"] = gindex[entry.ref.group]
        lab["kind"] = kind
        lab["atom"] = atom
        lab["component"] = comp
        lab["test"] = entry.test
        return A, b, w, lab

    def room(nrows):
        if out is not None and r_out + nrows > len(out):
            raise RuntimeError(f"model {model.name!r}: row_count disagrees with rows")

    try:
        for idx, batch in chunks():
            with timer("reference"):
                refs = []
                for c in batch:
                    with naming(c.name):
                        refs.append(setup.reference.compute(c)
                                    if setup.reference is not None else None)
            if len(batch) == 1 and _in_place(model, batch[0], max_atoms):
                (i,), (c,), (r,) = idx, batch, refs
                nrows = model.row_count(c, kinds)
                room(nrows)
                A = out[r_out:r_out + nrows] if out is not None else np.empty((nrows, model.ncols))
                es = float(sum(eshift[s] for s in c.symbols))
                with timer("descriptors"), naming(c.name):  # descriptors and rows, in one pass
                    rest = model.rows_into(A, c, r, es, kinds)
                r_out += nrows
                yield labelled(i, c, A, *rest)
                bar.update(1)
                continue
            with timer("descriptors"):
                descs = _descriptors(model.descriptor, batch)
            for i, c, d, r in zip(idx, batch, descs, refs):
                with timer("design matrix"):
                    es = float(sum(eshift[s] for s in c.symbols))
                    with naming(c.name):
                        A, b, kind, atom, comp = model.rows(c, d, r, es, kinds)
                    if out is not None:
                        room(len(b))
                        out[r_out:r_out + len(b)] = A
                        A = out[r_out:r_out + len(b)]
                    r_out += len(b)
                    block = labelled(i, c, A, b, kind, atom, comp)
                yield block
            bar.update(len(batch))
    finally:
        bar.close()


def build_shard(comm, setup: Setup, *, progress: bool = False, timer: Timer | None = None,
                chunk: int = 64, pl: Partition | None = None) -> DesignShard:
    """Read this rank's configurations and compute their design rows (this rank's shard).
    ``pl``: the partition (default: :func:`~mpisnap.pipeline.partitioning.plan`)."""
    timer = timer or Timer()
    if pl is None:
        with timer("read"):
            pl = plan(comm, setup)
    model = setup.model
    if isinstance(model, LinearModel):  # it counts its rows: preallocate, peak ≈ |A| + one chunk
        with timer("read"):
            types = setup.settings.bispectrum.type
            configs = [load(setup.reader, pl.entries[i].ref, types) for i in pl.mine]
            nrows = sum(model.row_count(c, setup.kinds) for c in configs)
        A = np.empty((nrows, model.ncols))
        b = np.empty(nrows)
        w = np.empty(nrows)
        lab = np.empty(nrows, LABEL_DTYPE)
        r = 0
        for Ab, bb, wb, lb in iter_blocks(setup, pl, timer=timer, progress=progress, chunk=chunk,
                                          configs=configs, out=A):  # rows written into A
            n = len(bb)
            b[r:r + n], w[r:r + n], lab[r:r + n] = bb, wb, lb
            r += n
        if r != nrows:
            raise RuntimeError(f"model {model.name!r}: row_count disagrees with rows ({r} != {nrows})")
        return DesignShard(A, b, w, lab, pl.config_names, pl.group_names)
    blocks = list(iter_blocks(setup, pl, timer=timer, progress=progress, chunk=chunk))
    with timer("design matrix"):
        nrows = sum(len(blk[1]) for blk in blocks)
        A = np.empty((nrows, model.ncols))
        b = np.empty(nrows)
        w = np.empty(nrows)
        lab = np.empty(nrows, LABEL_DTYPE)
        r = 0
        blocks.reverse()
        while blocks:
            Ab, bb, wb, lb = blocks.pop()
            n = len(bb)
            A[r:r + n], b[r:r + n], w[r:r + n], lab[r:r + n] = Ab, bb, wb, lb
            r += n
    return DesignShard(A, b, w, lab, pl.config_names, pl.group_names)
