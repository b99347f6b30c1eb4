"""A fit with a Bayesian solver, composed of the pipeline's stages (:mod:`mpisnap.pipeline`):
rows → compressed blocks per fold and kind → posterior solver → evaluate → uncertainty stage.
:mod:`mpisnap.pipeline.modes` hands a fit here when the solver record has ``posterior=True``.

In memory (and refitting from a descriptor store) the rows are this rank's shard; streaming,
they are made again for the metrics pass, which feeds the uncertainty stage as well (no third
pass; no per-row table is kept)."""
from __future__ import annotations

import numpy as np

from ..comm import agree
from ..results import FitResult
from .analysis import RowAnalysis, UQResult
from .linalg import small_blas
from .posterior import posterior, leave_one_out
from .settings import uq_options
from .solver import fold_triangles, hyper_of, problem_of, showing_progress

__all__ = ["fit_shard", "fit_streaming", "analysis_for", "noise_variances"]


def noise_variances(problem, hyper) -> np.ndarray:
    """(3,) label noise variance per kind (NaN for kinds without rows)."""
    out = np.full(3, np.nan)
    for k in problem.kinds:
        if 0 <= k < 3:
            out[k] = 1.0 / (hyper.alpha[k] * problem.typical_w2[k])
    return out


def analysis_for(blocks, sol, coefficients, options) -> RowAnalysis:
    """The row analysis of a BAYES solution: the full posterior and one per held-out fold, with
    the solution's hyper-parameters.

    The folds' hyper-parameters are deliberately not re-optimised: that would cost ``nfolds``
    more evidence optimisations (the dominant cost of the solve, minutes at 1,600 columns), and
    the held-out scores are then normalised by the noise levels the reported σ uses. The price
    is a small leak (the held-out rows helped choose α_k and λ): on the Cu_EMT example,
    re-optimising per fold raises the conformal quantiles by 3 % (energy), 1 % (force) and 6 %
    (stress), measured by ``scripts/uq_fold_leak.py``. The test split's coverage, when there
    is one, has no leak (README, Uncertainty)."""
    with small_blas(blocks.ncols):
        problem = problem_of(blocks)
        hyper = hyper_of(sol.info)
        full = posterior(problem, hyper, nugget=options.cov_nugget)
        loo = leave_one_out(fold_triangles(problem, blocks, hyper))
        folds = [None if t is None else posterior(problem, hyper, [(1.0, t)],
                                                   nugget=options.cov_nugget) for t in loo]
    alpha = np.array([hyper.alpha.get(k, np.nan) for k in range(3)])
    return RowAnalysis(full, coefficients, folds, blocks.folds, noise_variances(problem, hyper),
                       alpha)


def _result(setup, sol, coef, metrics, rows, timer, uq: UQResult) -> FitResult:
    r = FitResult(setup.settings, setup.model, coef, dict(sol.info), metrics, rows, timer.times,
                  sol.covariance, reference=setup.reference)
    r.uq = uq
    return r


def _check_folds(folds: np.ndarray, nfolds: int) -> None:
    from ..errors import FitError

    used = np.unique(folds[folds >= 0])
    if used.size < 2:
        raise FitError(f"[UQ] folds: calibration by {nfolds}-fold cross-validation needs at "
                       f"least 2 training configurations with rows, got {used.size}")


def _add_all(stage: RowAnalysis, blocks) -> None:
    for blk in blocks:
        stage.add(*blk)


def fit_shard(comm, setup, shard, timer) -> FitResult:
    """This rank's shard (kept) → blocks → BAYES → evaluate → uncertainty stage."""
    from ..pipeline.compression import shard_blocks
    from ..pipeline.evaluation import evaluate
    from ..pipeline.solving import compress_folds, config_folds, flat_columns, solve_blocks

    opts = uq_options(setup.settings)
    ncols = setup.model.ncols
    with timer("solve"):
        folds = config_folds(comm, shard, opts.folds, opts.seed)
        agree(comm, _check_folds, folds, opts.folds)
        blocks = compress_folds(comm, shard_blocks(shard, train_only=True), ncols, folds,
                                opts.folds, flat_columns(setup.model))
        with showing_progress(setup.progress):
            sol = solve_blocks(comm, blocks, setup)
        coef = setup.model.symmetrize(sol.coefficients)
    with timer("evaluate"):
        metrics, rows = evaluate(comm, shard, coef)
    with timer("uncertainty"):
        stage = agree(comm, analysis_for, blocks, sol, coef, opts)
        agree(comm, _add_all, stage, shard_blocks(shard))
        uq = stage.finish(comm, opts, setup.solver.name, sol.info, shard.config_names,
                          shard.group_names, keep_rows=True)
    return _result(setup, sol, coef, metrics, rows, timer, uq)


def fit_streaming(comm, setup, pl, timer, *, progress: bool = False) -> FitResult:
    """Rows folded into the blocks as they are made → BAYES → rows again for the metrics and
    the uncertainty stage (one more pass, nothing kept)."""
    from ..pipeline.evaluation import evaluate_blocks, local_sums
    from ..pipeline.folds import assign_folds
    from ..pipeline.rows import iter_blocks
    from ..pipeline.solving import compress_folds, flat_columns, solve_blocks

    opts = uq_options(setup.settings)
    ncols = setup.model.ncols
    folds = assign_folds(pl.entries, opts.folds, opts.seed)
    agree(comm, _check_folds, folds, opts.folds)
    blocks = compress_folds(comm, iter_blocks(setup, pl, timer=timer, progress=progress), ncols,
                            folds, opts.folds, flat_columns(setup.model))
    with timer("solve"), showing_progress(setup.progress):
        sol = solve_blocks(comm, blocks, setup)
        coef = setup.model.symmetrize(sol.coefficients)
    stage = agree(comm, analysis_for, blocks, sol, coef, opts)

    def feed(rows):
        for blk in rows:
            stage.add(*blk)
            yield blk

    sums = agree(comm, local_sums, feed(iter_blocks(setup, pl, timer=timer)), coef,
                 pl.config_names, pl.group_names)
    with timer("evaluate"):
        metrics = evaluate_blocks(comm, sums, pl.group_names)
    with timer("uncertainty"):
        uq = stage.finish(comm, opts, setup.solver.name, sol.info, pl.config_names,
                          pl.group_names, keep_rows=False)
    return _result(setup, sol, coef, metrics, None, timer, uq)

