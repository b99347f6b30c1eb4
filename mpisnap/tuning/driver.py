""":func:`tune`: setup → rows (the fit's stages) → compressed CV blocks → search → the tuned fit
→ outputs. The algorithm is described in :mod:`mpisnap.tuning`."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..comm import SerialComm, agree
from ..errors import FitError
from ..plot_process import start_early
from ..pipeline import (build_shard, evaluate, fit_streaming, iter_blocks, plan, prepare,
                        solve_compressed, solve_shard)
from ..pipeline.folds import BlockIndex, assign_folds
from ..pipeline.setup import check_targets
from ..pipeline.timing import Timer
from ..results import FitResult
from ..threads import limited, threads_per_rank
from .blocks import KINDS, CVBlocks, base_partition, estimate_bytes, finish_blocks, fold_rows
from .crossval import CrossValidator, Space, Trial, alpha_section, stack
from .search import best as best_of
from .search import search

__all__ = ["tune", "TuneResult", "cross_validator"]

log = logging.getLogger("mpisnap")

MIB = 1024 * 1024
#: Below this many columns the blocks are combined and the trials run with one BLAS thread per
#: rank: threads only add synchronisation to QRs of a few hundred rows (badly so on a loaded
#: node); larger systems use the rank's threads.
SEARCH_THREADS_MIN_COLS = 128


@dataclass
class TuneResult:
    """What :func:`tune` produced (identical on every rank, except ``files``: rank 0's).

    ``trials``: every :class:`~mpisnap.tuning.crossval.Trial` (trial 0: the input's weights),
    ``best`` the lowest objective; ``weights``: group → tuned (energy, force, stress) weights;
    ``alpha``: the tuned alpha (None when not tuned); ``space``: the tuned values' names and
    bounds; ``settings``: the tuned input as :class:`~mpisnap.settings.Settings`; ``fit``: the
    final fit (a :class:`~mpisnap.results.FitResult`, as ``mpisnap fit`` of the tuned input
    gives it); ``input_metrics``: the metrics of the fit at the input's weights (None in
    streaming mode); ``notices``: e.g. the fallback to per-kind blocks."""

    trials: list
    best: Trial
    weights: dict
    alpha: float | None
    space: Space
    settings: Any
    fit: FitResult
    input_metrics: list | None = None
    notices: list = field(default_factory=list)
    files: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    coarse: bool = False

    @property
    def baseline(self) -> Trial:
        return self.trials[0]


def _options_overrides(options: Mapping[str, Any]) -> list[str]:
    out = []
    for k, v in options.items():
        if isinstance(v, (list, tuple)):
            v = " ".join(str(x) for x in v)
        elif isinstance(v, bool):
            v = int(v)
        elif v is None:
            v = "auto" if k == "regularisation" else None
            if v is None:
                continue
        out.append(f"TUNE.{k}={v}")
    return out


def tune(source, *, overrides: Sequence[str] = (), output_dir: str | os.PathLike | None = None,
         comm=None, plugins: Iterable[Any] = (), autoload: bool | None = None,
         write: bool = True, threads: int | None = None, progress: bool = False,
         objective: Callable | None = None, **options) -> TuneResult:
    """Choose group weights (and the solver's alpha) by K-fold cross-validation, then fit with
    them. ``source``: an input file (path) or a dict of sections; ``options``: ``[TUNE]`` keys
    (``folds=5, trials=100, weights="kinds", objective=("energy", "force")`` …), applied as
    overrides; ``objective``: a callable ``CVErrors → float`` to minimise instead of the default
    (see :class:`~mpisnap.tuning.crossval.CVErrors`). The other arguments are those of
    :func:`mpisnap.fit`. With ``write`` rank 0 writes, all or nothing, into ``output_dir``:
    ``<stem>_tuned.in``, the tuned fit's files as ``mpisnap fit`` writes them,
    ``<stem>_tune.md`` (best trials, weights, CV errors before/after), ``<stem>_tune_trials.csv``
    and the plots ``<stem>_tune_objective.png``, ``<stem>_tune_cv_errors.png``. Every rank must
    call it with the same arguments; an error on any rank raises on every rank."""
    from ..settings import Settings

    if isinstance(source, Settings) or not isinstance(source, (str, os.PathLike, Mapping)):
        raise FitError("tune: source must be an input file or a dict of sections (the tuned "
                       "input is written from it)")
    comm = comm if comm is not None else SerialComm()
    if write:  # the plot helper, where it can help (mpisnap.plot_process)
        start_early()
    overrides = list(overrides) + _options_overrides(options)
    nthreads = threads_per_rank(comm, threads)
    with limited(nthreads) as pools:
        return _tune(comm, source, overrides, output_dir, plugins, autoload, write, nthreads,
                     progress, objective, pools)


def _input_weights(settings) -> dict[str, tuple]:
    return {g.name: (float(g.eweight), float(g.fweight), float(g.vweight))
            for g in settings.groups}


def _exact_weights(entries, shard) -> np.ndarray:
    """Per-row weights of ``shard`` from ``entries`` exactly as the fit computes them (the
    atom count of a configuration from its force rows' atom indices; it matters only there)."""
    lab = shard.labels
    nconf = len(entries)
    natoms = np.ones(nconf, dtype=np.int64)
    f = lab["kind"] == 1
    if f.any():
        np.maximum.at(natoms, lab["config"][f], lab["atom"][f].astype(np.int64) + 1)
    w = np.empty(len(lab))
    cfg = lab["config"]
    if len(cfg) == 0:
        return w
    starts = np.flatnonzero(np.r_[True, cfg[1:] != cfg[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(cfg)]):
        c = int(cfg[s])
        we, wf, wv = entries[c].row_weights(int(natoms[c]))
        w[s:e] = np.choose(lab["kind"][s:e], [we, wf, wv]).astype(float)
    return w


def _cells(cvb: CVBlocks, weights: Mapping[str, tuple], kinds: Sequence[str]) -> list[tuple]:
    """The (group, kind) cells of ``kinds`` with rows and an input weight > 0, in group and kind
    order."""
    have = {(cvb.group_names[g], KINDS[k]) for g, k in
            (cvb.decode(c)[1:] for c in cvb.blocks)}
    out = []
    for g in cvb.group_names:
        for k in kinds:
            if (g, k) not in have:
                continue
            if g == "*ALL" or weights[g][KINDS.index(k)] > 0:
                out.append((g, k))
    return out


@dataclass
class _Job:
    """What a tune works on, decided before any row is computed."""

    comm: Any
    setup: Any
    opts: Any
    pl: Any
    index: BlockIndex
    ntrain: int
    kinds: list           # the objective's row kinds (their weights are tuned)
    weights_in: dict      # group -> input (energy, force, stress) weights
    mode: str             # groups, kinds or none
    coarse: bool          # blocks per (fold, kind) with the input's weights
    alpha_section: str | None
    notices: list
    timer: Timer
    show: bool

    @property
    def name(self) -> str:
        src = self.setup.settings.source
        return os.path.basename(src) or src


def cross_validator(source, *, overrides: Sequence[str] = (), comm=None,
                    plugins: Iterable[Any] = (), autoload: bool | None = None,
                    threads: int | None = None, objective: Callable | None = None,
                    blocks: CVBlocks | None = None, **options) -> CrossValidator:
    """Collective: the :class:`~mpisnap.tuning.crossval.CrossValidator` of an input (rows
    computed and compressed into blocks, the input's CV errors as its baseline), for scripted
    searches and for other uses of cross-validated refits: ``cv.errors(x)``, ``cv.trial(i, x)``,
    ``cv.weights(x)``, ``cv.coefficients(fold, x)``; ``cv.space`` names and bounds the tuned
    values; ``cv.blocks`` are the blocks. ``blocks``: the ``cv.blocks`` of an earlier call with
    the same input and ``[TUNE]`` folds, seed and memory (no rows are computed then). Arguments
    as :func:`tune`."""
    comm = comm if comm is not None else SerialComm()
    overrides = list(overrides) + _options_overrides(options)
    nthreads = threads_per_rank(comm, threads)
    with limited(nthreads):
        job = _plan(comm, source, overrides, plugins, autoload, nthreads, Timer(), None, False,
                    False)
        if blocks is None:
            blocks, _ = _rows_and_blocks(job, lambda: limited(nthreads))
        elif blocks.coarse != job.coarse or not np.array_equal(blocks.index.folds,
                                                                job.index.folds):
            raise FitError("cross_validator: the blocks were made with other folds or memory")
        return _validator(job, blocks, objective)


def _plan(comm, source, overrides, plugins, autoload, nthreads, timer, output_dir, write,
          show) -> _Job:
    with timer("setup"):
        agree(comm, check_targets, comm.rank, output_dir if write else False, None)
        setup = agree(comm, prepare, source, overrides, plugins, autoload, nthreads, verb="tune")
    settings = setup.settings
    name = os.path.basename(settings.source) or settings.source
    opts = settings.section("TUNE")
    if setup.form is not None and setup.form.kind != "linear":
        raise FitError(f"{name}: [CALCULATOR] model: tune needs a linear model form (model form "
                       f"{setup.form.name!r} is {setup.form.kind})")
    fitted = [k for k, on in zip(KINDS, setup.kinds) if on]
    weights_in = _input_weights(settings)
    if opts.objective is not None:
        missing = [k for k in opts.objective if k not in fitted]
        if missing:
            raise FitError(f"{name}: [TUNE] objective: {', '.join(missing)} rows are not "
                           f"fitted ([CALCULATOR])")
        kinds = list(opts.objective)
    else:
        kinds = [k for k in fitted if any(w[KINDS.index(k)] > 0 for w in weights_in.values())]
    asec = alpha_section(settings)
    if opts.regularisation and asec is None:
        raise FitError(f"{name}: [TUNE] regularisation: solver {settings.solver.solver} has no "
                       f"alpha to tune (use RIDGE or LASSO)")
    tune_alpha = asec if (opts.regularisation is None or opts.regularisation) else None
    with timer("read"):
        pl = plan(comm, setup)
    folds = assign_folds(pl.entries, opts.folds, opts.seed)
    ntrain = int((folds >= 0).sum())
    if ntrain < opts.folds:
        raise FitError(f"{name}: [TUNE] folds: {opts.folds} folds need at least {opts.folds} "
                       f"training configurations, got {ntrain}")
    ncols, ngroups, mode = setup.model.ncols, len(pl.group_names), opts.weights
    smart = bool(settings.group_options.smartweights)
    nclasses = (ngroups * len(kinds) if mode == "groups" else len(kinds)) + 1
    need = estimate_bytes(ncols, opts.folds, ngroups, len(fitted),
                          int(smart and "force" in fitted), nclasses)
    coarse = need > opts.memory * MIB
    notices: list[str] = []
    if coarse:
        need_c = estimate_bytes(ncols, opts.folds, 1, len(fitted), len(fitted), len(kinds) + 1)
        if need_c > opts.memory * MIB:
            raise FitError(f"{name}: [TUNE] memory: the blocks need {need_c / MIB:.3g} MiB even "
                           f"per (fold, kind); allow more")
        msg = (f"[TUNE] memory: blocks per (fold, group, kind) would need up to "
               f"{need / MIB:.3g} MiB > {opts.memory:g} MiB; using blocks per (fold, kind) with "
               f"the input's group weights")
        if mode == "groups":
            msg += ": one weight per kind is tuned (weights = kinds)"
            mode = "kinds"
        notices.append(msg)
        if comm.rank == 0:
            log.warning("%s", msg)
    return _Job(comm, setup, opts, pl, BlockIndex(folds, ngroups), ntrain, kinds, weights_in,
                mode, coarse, tune_alpha, notices, timer, show)


def _rows_and_blocks(job: _Job, small_threads):
    """The rows (this rank's shard, kept unless streaming) folded into the CV blocks (identical
    on every rank). Returns ``(blocks, shard or None)``."""
    comm, setup, timer = job.comm, job.setup, job.timer
    ncols = setup.model.ncols
    smart = bool(setup.settings.group_options.smartweights)
    pl_rows = job.pl if job.coarse else base_partition(job.pl, smart)
    kw = dict(coarse=job.coarse, unit_kinds=(0, 1, 2) if job.coarse else (1,) if smart else ())
    shard = None
    if setup.settings.memory.stream:  # rows folded into the blocks as they are made
        folder = agree(comm, lambda: fold_rows(job.index, ncols, blocks=iter_blocks(
            setup, pl_rows, timer=timer, progress=job.show), **kw))
    else:
        shard = agree(comm, build_shard, comm, setup, progress=job.show, timer=timer, pl=pl_rows)
        with timer("compress"), small_threads():
            folder = agree(comm, fold_rows, job.index, ncols, shard=shard, **kw)
    with timer("compress"), small_threads():
        blocks = finish_blocks(comm, folder, job.index, job.pl.group_names, coarse=job.coarse)
    return blocks, shard


def _validator(job: _Job, cvb: CVBlocks, objective) -> CrossValidator:
    """The cross-validator of the tuned cells (one held fixed), its baseline computed."""
    tuned = _cells(cvb, job.weights_in, job.kinds) if job.mode != "none" else []
    fixed = None
    if tuned:
        forces = [c for c in tuned if c[1] == "force"]
        fixed = forces[0] if forces else tuned[0]
    opts = job.opts
    emax = None if opts.max_energy_rmse is None else opts.max_energy_rmse / 1000.0
    cv = agree(job.comm, CrossValidator, cvb, job.setup.solver, job.setup.model,
               job.setup.settings, job.weights_in, tuned, fixed, job.mode, job.alpha_section,
               job.kinds, objective, emax, opts.range, opts.alpha_range, balance=opts.balance)
    if cv.space.size == 0:
        raise FitError(f"{job.name}: [TUNE]: nothing to tune (weights = {job.mode}: "
                       f"{len(tuned)} weight(s) of {', '.join(job.kinds) or 'no kinds'}, one held "
                       f"fixed; regularisation {'on' if job.alpha_section else 'off'})")
    base = agree(job.comm, cv.errors, cv.space.x0)
    cv.baseline, cv.baseline_group = dict(base.rmse), dict(base.group_rmse)
    return cv


def _tuned_settings(job: _Job, source, overrides, best: Trial):
    """The tuned input (raw sections) and its Settings as ``mpisnap fit`` reads them."""
    from ..settings import load_settings
    from .outputs import raw_input, tuned_raw

    settings = job.setup.settings
    alpha = best.alpha if job.alpha_section else None
    raw = tuned_raw(raw_input(source, overrides), settings, best.weights, job.alpha_section,
                    alpha)
    return raw, load_settings(raw, base_dir=settings.base_dir, verb="fit",
                              sections=job.setup.registry.all("settings_sections"))


def _evidence_progress(setup):
    """A Bayesian solver's evidence bar follows ``setup.progress`` (as in ``mpisnap fit``)."""
    if not setup.solver.posterior:
        return contextlib.nullcontext()
    from ..uq.solver import showing_progress

    return showing_progress(setup.progress)


def _final_fit(job: _Job, cv: CrossValidator, shard, setup_t):
    """The fit of the tuned input as ``mpisnap fit`` makes it (the kept shard reweighted
    exactly as the fit weights it; streaming: the streaming fit), and the metrics of the fit at
    the input's weights (from the blocks' whole system; None when streaming)."""
    from ..pipeline.compression import Compressed
    from ..training_set import training_set

    comm, setup, timer = job.comm, job.setup, job.timer
    if shard is None:
        return fit_streaming(comm, setup_t, timer, progress=job.show), None
    n = setup.model.ncols
    entries_t = agree(comm, training_set, setup_t.settings, setup.reader)
    if [e.ref.name for e in entries_t] != [e.ref.name for e in job.pl.entries]:
        raise RuntimeError("tune: the tuned input lists other configurations")
    with timer("evaluate"):
        full = stack(cv.full_parts(), n)
        R = np.zeros((n, n))
        R[:full.R.shape[0]] = full.R
        qb = np.zeros(n)
        qb[:len(full.qb)] = full.qb
        sol0 = solve_compressed(comm, Compressed(R, qb, full.rnorm2, full.nrows), setup)
        shard.w = _exact_weights(job.pl.entries, shard)
        input_metrics, _ = evaluate(comm, shard, setup.model.symmetrize(sol0.coefficients))
    shard.w = _exact_weights(entries_t, shard)
    with timer("solve"), _evidence_progress(setup_t):
        sol = solve_shard(comm, shard, setup_t)
        coef = setup.model.symmetrize(sol.coefficients)
    with timer("evaluate"):
        metrics, rows = evaluate(comm, shard, coef)
    return FitResult(setup_t.settings, setup.model, coef, dict(sol.info), metrics, rows,
                     timer.times, sol.covariance, reference=setup.reference), input_metrics


def _tune(comm, source, overrides, output_dir, plugins, autoload, write, nthreads, progress,
          objective, pools) -> TuneResult:
    timer = Timer()
    t_start = time.perf_counter()
    job = _plan(comm, source, overrides, plugins, autoload, nthreads, timer, output_dir, write,
                progress and comm.rank == 0)
    ncols = job.setup.model.ncols

    def small_threads():
        return limited(nthreads if ncols >= SEARCH_THREADS_MIN_COLS else 1)

    cvb, shard = _rows_and_blocks(job, small_threads)
    with small_threads():
        with timer("cross-validation setup"):
            cv = _validator(job, cvb, objective)
        if comm.rank == 0:
            log.info("tune: %d configurations in %d folds, %d blocks (%.1f MiB), %d tuned "
                     "values (%s), %d trials", job.ntrain, job.opts.folds,
                     len(cvb.blocks) + len(cvb.unit), cvb.nbytes() / MIB, cv.space.size,
                     job.mode, job.opts.trials)
        with timer("search"):
            history = search(comm, cv.space, cv.trial, trials=job.opts.trials,
                             seed=job.opts.seed, optimizer=job.opts.optimizer,
                             population=job.opts.population, progress=job.show,
                             coarse=cv.coarse_stage())
    best = best_of(history)
    raw_t, settings_t = agree(comm, _tuned_settings, job, source, overrides, best)
    setup_t = dataclasses.replace(job.setup, settings=settings_t, progress=job.show)
    result, input_metrics = _final_fit(job, cv, shard, setup_t)
    result.thread_pools = dict(pools, core=nthreads)
    stem = (os.path.splitext(os.path.basename(os.fspath(source)))[0]
            if not isinstance(source, Mapping) else job.setup.settings.outfile.potential)
    out = TuneResult(history, best, dict(best.weights),
                     best.alpha if job.alpha_section else None, cv.space, settings_t, result,
                     input_metrics, job.notices, coarse=job.coarse)
    if write:
        def outputs():
            if comm.rank != 0:
                return None
            target = os.fspath(output_dir) if output_dir is not None else os.getcwd()
            with timer("outputs"):
                return _write(target, stem, out, raw_t, source, job.opts, setup_t, t_start,
                              job.mode)

        files = agree(comm, outputs)
        if comm.rank == 0:
            out.files = files
    result.timings["total"] = time.perf_counter() - t_start
    out.timings = dict(timer.times)
    return out


def _write(target, stem, out: TuneResult, raw_t, source, opts, setup_t, t_start, mode):
    from ..io import output_transaction
    from ..pipeline.outputs import write_outputs
    from . import outputs as O

    with output_transaction(target) as tx:
        tuned_in = os.path.join(tx.path, f"{stem}_tuned.in")
        header = O.header_lines(source, opts.folds, opts.seed, len(out.trials), out.best)
        with open(tuned_in, "w", encoding="utf-8") as fh:
            fh.write(O.format_input(raw_t, header))
        out.fit.settings = dataclasses.replace(out.fit.settings, source=tx.final(tuned_in))
        with open(os.path.join(tx.path, f"{stem}_tune_trials.csv"), "w", encoding="utf-8") as fh:
            O.write_trials_csv(fh, out.trials, out.space.names)
        groups = [g.name for g in out.settings.groups]
        with open(os.path.join(tx.path, f"{stem}_tune.md"), "w", encoding="utf-8") as fh:
            fh.write(O.format_report(out.trials, out.best, nbest=opts.best, groups=groups,
                                     folds=opts.folds, seed=opts.seed, space=out.space,
                                     mode=mode, metrics_before=out.input_metrics,
                                     metrics_after=out.fit.metrics, notices=out.notices))
        with open(os.path.join(tx.path, f"{stem}_tune_objective.png"), "wb") as fh:
            O.plot_objective(fh, out.trials)
        with open(os.path.join(tx.path, f"{stem}_tune_cv_errors.png"), "wb") as fh:
            O.plot_cv_errors(fh, out.trials[0], out.best, groups)
        # the potential, metrics, plots and run log of the tuned fit, as mpisnap fit writes them
        fit_files = write_outputs(out.fit, tx.path, setup_t, t_start)
    out.fit.files = [tx.final(f) for f in fit_files]
    return tx.files
