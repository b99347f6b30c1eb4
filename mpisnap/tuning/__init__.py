"""Group weights and regularisation chosen by cross-validation, at a cost independent of the
number of rows (``mpisnap tune``, :func:`tune`).

A fit is only as good as its group weights. Published SNAP potentials got theirs from an outer
optimiser (differential evolution) that refitted from scratch thousands of times. Here the data
are read and reduced once, by the fit's own stages, to small compressed systems, and every trial
fit and its validation error is a computation on those small matrices:

1. **Folds** (:func:`mpisnap.pipeline.folds.assign_folds`): K folds by configuration, stratified
   by group, inside the training split (the test split is never used); a group with fewer than K
   configurations takes part in fewer folds. Seeded by ``[TUNE] seed``.
2. **Compressed blocks** (:mod:`.blocks`): the rows, with base weights that do not depend on
   the tuned weights, are reduced to one R per (fold, group, row kind) by the distributed TSQR of
   the fit (no rank gathers A); every rank ends with the same blocks. The weighted residual of
   any block is ``‖R_k β − (Qᵀb)_k‖² + ρ_k²`` exactly. Memory: ``(n + 1)²`` doubles per block;
   over ``[TUNE] memory``, coarser blocks per (fold, kind).
3. **A trial** (:mod:`.crossval`): for each fold, the QR of the stacked, scaled, pre-reduced fold
   complements (one triangle per tuned value: O(tuned values · n³) flops, never normal
   equations), the fit's solver plugin, and the held-out blocks' residuals in unit weights give
   the CV RMSE per group and kind, in the metrics' units.
4. **The search** (:mod:`.search`): SciPy differential evolution on log10 weight factors (and
   log10 alpha), deterministic for a seed, the trials of each generation spread over the ranks
   (deferred updating); or a random search. Weights are scale-invariant: the force weight of the
   first group with force rows (else the first tuned weight) is held at its input value.
5. **The tuned fit** (:mod:`.driver`): the tuned input is written (absolute data paths; runnable
   with ``mpisnap fit``) and fitted exactly as ``mpisnap fit`` fits it; its files are written
   by the same writer plugins, all in one output transaction with the tune's own report, trial
   table and plots (:mod:`.outputs`).

The default objective is ``Σ_kind CV-RMSE_kind(w) / CV-RMSE_kind(input weights)``: RMSE, because
the compressed blocks give squared residuals (an MAE cannot be computed from them); the final
fit reports MAE as well. Settings: ``[TUNE]`` (:mod:`mpisnap.plugins.tuning`).
"""
from __future__ import annotations

__all__ = ["tune", "TuneResult", "CVErrors", "Trial"]


def tune(source, **kwargs):
    """See :func:`mpisnap.tuning.driver.tune` (imported on first use: the CLI imports this
    package to build its parser)."""
    from .driver import tune as _tune

    return _tune(source, **kwargs)


def __getattr__(name):
    if name == "TuneResult":
        from .driver import TuneResult

        return TuneResult
    if name in ("CVErrors", "Trial"):
        from . import crossval

        return getattr(crossval, name)
    raise AttributeError(f"module 'mpisnap.tuning' has no attribute {name!r}")
