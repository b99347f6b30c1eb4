"""The ``[UQ]`` section of the input (registered by the built-in plugin
:mod:`mpisnap.plugins.bayes` through ``mpisnap_settings_sections``, like any plugin's section).

Keys (defaults in parentheses)::

    [UQ]
    nsamples = 8          # (FitSNAP's [SOLVER] nsam, else 0) posterior samples written as
                          #   <potential>_sample<k>.snapcoeff / .mod, k = 0 … nsamples−1
    folds = 5             # (5) cross-validation folds by configuration, inside the training split
    calibration = conformal   # (conformal) or none: report the raw Bayesian σ
    level = 0.9           # (0.9) the conformal level: ±z σ is this interval, z = Φ⁻¹((1+level)/2)
    seed = 0              # (0) seed of the folds and of the samples

FitSNAP's ``[SOLVER] nsam`` and ``cov_nugget`` are read from ``[SOLVER]`` (``nsam`` is the
default of ``nsamples``; ``cov_nugget`` is added to the variance of every coefficient).

Every key is about the posterior, so ``[UQ]`` with a solver that has none (``posterior=False``,
e.g. ``SVD``) is an error (:func:`check_solver`), not silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UQSettings", "KEYS", "check_solver", "parse_uq", "uq_options"]

KEYS = ("nsamples", "folds", "calibration", "level", "seed")
CALIBRATIONS = ("conformal", "none")


@dataclass(frozen=True)
class UQSettings:
    """``[UQ]`` typed. ``nsamples`` None: not given (``[SOLVER] nsam`` applies)."""

    nsamples: int | None = None
    folds: int = 5
    calibration: str = "conformal"
    level: float = 0.9
    seed: int = 0


def parse_uq(raw, r) -> UQSettings:
    from ..settings import p_choice, p_float, p_int

    nsamples = r.get("nsamples", p_int, None)
    r.require("nsamples", nsamples is None or nsamples >= 0, f"must be >= 0, got {nsamples}")
    folds = r.get("folds", p_int, 5)
    r.require("folds", folds >= 2, f"must be >= 2 (cross-validation folds), got {folds}")
    level = r.get("level", p_float, 0.9)
    r.require("level", 0.0 < level < 1.0, f"must lie in (0, 1), got {level}")
    seed = r.get("seed", p_int, 0)
    r.require("seed", seed >= 0, f"must be >= 0, got {seed}")
    cal = r.get("calibration", p_choice(*CALIBRATIONS, upper=False), "conformal")
    return UQSettings(nsamples=nsamples, folds=folds, calibration=cal, level=level, seed=seed)


@dataclass(frozen=True)
class Options:
    """What the uncertainty stage uses: ``[UQ]`` with FitSNAP's ``[SOLVER]`` keys folded in."""

    nsamples: int
    folds: int
    calibration: str
    level: float
    seed: int
    cov_nugget: float


def uq_options(settings) -> Options:
    """``[UQ]`` (defaults when the section is absent or not installed) with ``[SOLVER] nsam``
    as the default of ``nsamples`` and ``[SOLVER] cov_nugget``."""
    try:
        sec = settings.section("UQ")
    except KeyError:
        sec = UQSettings()
    solver = settings.solver
    nsamples = sec.nsamples if sec.nsamples is not None else int(solver.nsam)
    return Options(nsamples=int(nsamples), folds=int(sec.folds), calibration=sec.calibration,
                   level=float(sec.level), seed=int(sec.seed),
                   cov_nugget=float(solver.cov_nugget))


def check_solver(settings, solver, registry) -> None:
    """``[UQ]`` in the input with a solver that has no posterior: one-line
    :class:`~mpisnap.errors.FitError` naming the section and the solver (every ``[UQ]`` key is
    about the posterior, none applies to such a solver)."""
    if "UQ" not in settings.sections or getattr(solver, "posterior", False):
        return
    from ..errors import FitError

    bayesian = [s.name for s in registry.all("solvers") if getattr(s, "posterior", False)]
    raise FitError(f"[UQ]: the uncertainty options apply only to Bayesian solvers "
                   f"({', '.join(bayesian) or 'none installed'}); [SOLVER] solver = "
                   f"{solver.name} has no posterior (remove [UQ] or choose a Bayesian solver)")
