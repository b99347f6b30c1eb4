"""The Bayesian solvers and the ``[UQ]`` section, a built-in plugin like any other.

* ``BAYES`` — Bayesian linear regression on the compressed rows: one noise precision per row
  kind (energy, force, stress) and a Gaussian prior on the standardised columns (flat on the
  per-element constant columns), both chosen by maximising the evidence; the posterior mean is
  the coefficients written. The fit then calibrates the predictive uncertainty by
  cross-validation and writes it beside the potential (:mod:`mpisnap.uq`).
* ``ANL`` — FitSNAP's name: accepted and mapped onto ``BAYES``; ``[SOLVER] nsam`` is the number
  of posterior samples written (``[UQ] nsamples`` when given wins) and ``[SOLVER] cov_nugget``
  is added to the variance of every coefficient. Unlike FitSNAP's ANL (a pseudo-inverse with
  one noise level and a flat prior) the noise is per kind and the prior is chosen by the evidence.
* ``[UQ]`` — the options of the uncertainty stage (:mod:`mpisnap.uq.settings`).
"""
from __future__ import annotations

from mpisnap.hookspecs import hookimpl
from mpisnap.records import SettingsSection, Solver
from mpisnap.uq.settings import KEYS, parse_uq

__all__ = ["mpisnap_solvers", "mpisnap_settings_sections"]


def solve_bayes(*args, **kwargs):
    """:func:`mpisnap.uq.solver.solve_bayes`, imported on first use (it loads SciPy)."""
    from mpisnap.uq.solver import solve_bayes as solve

    return solve(*args, **kwargs)


@hookimpl
def mpisnap_solvers():
    linear = frozenset({"linear"})
    return [
        Solver("BAYES", solve_bayes, linear, "Bayesian regression, evidence-optimised noise per "
               "row kind and prior; calibrated uncertainty, [UQ]", posterior=True),
        Solver("ANL", solve_bayes, linear, "FitSNAP's ANL, mapped onto BAYES (nsam, cov_nugget)",
               posterior=True),
    ]


@hookimpl
def mpisnap_settings_sections():
    return [SettingsSection("UQ", parse_uq, KEYS,
                            description="uncertainty of BAYES/ANL fits: samples, folds, "
                                        "calibration")]
