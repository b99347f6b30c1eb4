"""The fit, as short compositions of the stages: in memory (the default), streaming
(``[MEMORY] stream``: rows folded into R and recomputed for the metrics, never kept), refit from
a descriptor store (no descriptors computed), and nonlinear forms (the model trains itself)."""
from __future__ import annotations

import os
import time
from typing import Any, Iterable, Sequence

from ..comm import SerialComm, agree
from ..errors import FitError
from ..plot_process import start_early
from ..results import FitResult
from ..threads import limited, threads_per_rank
from . import rows as _rows
from .compression import compress, finalize
from .evaluation import evaluate, evaluate_blocks, gather_rows, local_sums
from .outputs import finish
from .partitioning import plan
from .setup import Setup, check_targets, prepare
from .solving import solve_compressed, solve_shard
from .timing import Timer

__all__ = ["fit", "fit_in_memory", "fit_streaming", "refit_from_store", "train_nonlinear"]


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
    if write:  # the plot helper, where it can help: matplotlib loads there meanwhile
        start_early()
    nthreads = threads_per_rank(comm, threads)  # same path on every rank (collective or none)
    with limited(nthreads) as pools:
        timer = Timer()
        t_start = time.perf_counter()
        with timer("setup"):
            agree(comm, check_targets, comm.rank, output_dir if write else False, store)
            setup = agree(comm, prepare, source, overrides, plugins, autoload, nthreads)
        stream = bool(setup.settings.memory.stream)
        nonlinear = setup.form is not None and setup.form.kind == "nonlinear"
        if nonlinear:
            _refuse_linear_only(setup, store, from_store)
        if stream and (store is not None or from_store is not None):
            raise FitError("[MEMORY] stream: the descriptor store needs the rows; use one or "
                           "the other")
        show = progress and comm.rank == 0
        setup.progress = show  # for the stages with their own bar (nn training, BAYES evidence)
        if nonlinear:
            # a model that trains itself writes its own checkpoints there (rank 0)
            setup.output_dir = (os.path.abspath(output_dir if output_dir is not None
                                                else os.getcwd()) if write else None)
            result = train_nonlinear(comm, setup, timer)
        elif from_store is not None:
            result = refit_from_store(comm, setup, from_store, timer)
        elif stream:
            result = fit_streaming(comm, setup, timer, progress=show)
        else:
            result = fit_in_memory(comm, setup, timer, progress=show, store=store)
        result.thread_pools = dict(pools, core=nthreads)
        return finish(comm, result, setup, timer, t_start, write, output_dir)


def _refuse_linear_only(setup: Setup, store, from_store) -> None:
    """Options that work on the linear design rows are one-line errors for a nonlinear model
    form (every rank decides the same; before any data is read or file written)."""
    name = setup.form.name
    for given, option in ((store, "--store"), (from_store, "--from-store")):
        if given is not None:
            raise FitError(f"{option}: the descriptor store holds linear design rows; model form "
                           f"{name!r} ({setup.form.kind}) cannot use one (drop {option})")
    if setup.settings.memory.stream:
        src = os.path.basename(setup.settings.source or "") or "settings"
        raise FitError(f"{src}: [MEMORY] stream: model form {name!r} keeps its training data in "
                       f"memory; streaming is not supported for it (set stream = 0)")


def _linear_result(setup: Setup, sol, coef, metrics, rows, timer: Timer) -> FitResult:
    return FitResult(setup.settings, setup.model, coef, dict(sol.info), metrics, rows,
                     timer.times, sol.covariance, reference=setup.reference)


def _solve_and_evaluate(comm, setup: Setup, shard, timer: Timer) -> FitResult:
    if setup.solver.posterior:  # a Bayesian solver: the fit with uncertainty (mpisnap.uq)
        from ..uq.fitting import fit_shard

        return fit_shard(comm, setup, shard, timer)
    with timer("solve"):
        sol = solve_shard(comm, shard, setup)
        coef = setup.model.symmetrize(sol.coefficients)
    with timer("evaluate"):
        metrics, rows = evaluate(comm, shard, coef)
    return _linear_result(setup, sol, coef, metrics, rows, timer)


def fit_in_memory(comm, setup: Setup, timer: Timer, *, progress: bool = False,
                  store=None) -> FitResult:
    """plan → rows (this rank's shard, kept) → [store] → compress + solve → evaluate."""
    with timer("read"):
        pl = plan(comm, setup)
    shard = agree(comm, _rows.build_shard, comm, setup, progress=progress, timer=timer, pl=pl)
    if store is not None:
        from ..store import write_store

        with timer("store"):
            write_store(comm, store, shard, setup.settings)  # collective, agrees on errors
    return _solve_and_evaluate(comm, setup, shard, timer)


def refit_from_store(comm, setup: Setup, path, timer: Timer) -> FitResult:
    """store → this rank's shard (any number of ranks; the store's rows with the new weights and
    split) → compress + solve → evaluate. No configuration is read."""
    from ..store import read_store

    with timer("read"):
        shard = agree(comm, lambda: read_store(comm, path, setup.settings)[0])
    return _solve_and_evaluate(comm, setup, shard, timer)


def fit_streaming(comm, setup: Setup, timer: Timer, *, progress: bool = False) -> FitResult:
    """plan → rows folded into R as they are made (nothing kept) → solve → rows again for the
    metrics (a second pass: memory bounded by one chunk of configurations)."""
    with timer("read"):
        pl = plan(comm, setup)
    if setup.solver.posterior:
        from ..uq.fitting import fit_streaming as fit_posterior_streaming

        return fit_posterior_streaming(comm, setup, pl, timer, progress=progress)
    ncols = setup.model.ncols
    acc = agree(comm, lambda: compress(_rows.iter_blocks(setup, pl, timer=timer,
                                                         progress=progress), ncols))
    with timer("solve"):
        sol = solve_compressed(comm, finalize(comm, acc), setup)
        coef = setup.model.symmetrize(sol.coefficients)
    sums = agree(comm, local_sums, _rows.iter_blocks(setup, pl, timer=timer), coef,
                 pl.config_names, pl.group_names)
    with timer("evaluate"):
        metrics = evaluate_blocks(comm, sums, pl.group_names)
    return _linear_result(setup, sol, coef, metrics, None, timer)


def train_nonlinear(comm, setup: Setup, timer: Timer) -> FitResult:
    """plan → the model trains itself on this rank's configurations (data-parallel over
    ``comm``) and returns the FitResult the writers receive."""
    with timer("read"):
        pl = plan(comm, setup, getattr(setup.model, "owners", None))
    return setup.model.train(comm, setup, pl, timer)
