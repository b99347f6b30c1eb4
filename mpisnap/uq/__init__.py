"""Uncertainty quantification of linear SNAP fits: a Bayesian posterior on the compressed system,
calibrated predictive intervals, ensembles written as potentials, and the uncertainty of any
prediction (``mpisnap.Calculator`` reads ``<potential>_uq.h5``).

=====================  ========================================================================
module                 what
=====================  ========================================================================
:mod:`.posterior`      evidence-optimised Bayesian regression on per-kind compressed rows
:mod:`.solver`         the ``BAYES`` solver (FitSNAP's ``ANL`` maps onto it)
:mod:`.calibration`    split-conformal scales from cross-validation; distributed order statistics
:mod:`.analysis`       the fit's uncertainty stage: σ of every row where the rows are, coverage
:mod:`.fitting`        the fit with a Bayesian solver, composed of the pipeline's stages
:mod:`.ensembles`      posterior samples as LAMMPS potentials
:mod:`.store`          ``<potential>_uq.h5`` (written and read) and :class:`Uncertainty`
:mod:`.report`         ``<metrics>_uq.md`` / ``.json`` and the reliability plot
:mod:`.settings`       the ``[UQ]`` section (registered by :mod:`mpisnap.plugins.bayes`)
=====================  ========================================================================

Usage: ``[SOLVER] solver = BAYES`` (or ``ANL``) in a FitSNAP input; ``mpisnap.fit`` returns a
:class:`~mpisnap.results.FitResult` whose ``uq`` is a :class:`UQResult`; :func:`predictor` turns
a fit into a :class:`~mpisnap.models.Predictor` with uncertainty.
"""
from __future__ import annotations

__all__ = ["UQResult", "Uncertainty", "predictor", "load_uncertainty"]


def __getattr__(name):  # light: the heavy parts load on first use
    if name == "UQResult":
        from .analysis import UQResult

        return UQResult
    if name in ("Uncertainty", "predictor", "load_uncertainty"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'mpisnap.uq' has no attribute {name!r}")
