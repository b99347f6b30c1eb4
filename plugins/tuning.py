"""The ``[TUNE]`` section of ``mpisnap tune`` (group weights and regularisation chosen by
cross-validation, :mod:`mpisnap.tuning`), brought by this built-in plugin through the
``mpisnap_settings_sections`` hook like any plugin's section. Its verb is ``tune``: the other
commands (``fit`` …) accept the section and ignore it, so one input file serves both. Every key is
optional (our extension of FitSNAP's format; defaults in parentheses)::

    [TUNE]
    folds = 5                  # (5) K of K-fold cross-validation, by configuration
    trials = 200               # (200) objective evaluations, the input's weights included
    seed = 0                   # (0) seeds the folds and the optimiser
    weights = groups           # (groups) groups: an energy/force/stress weight per group;
                               #   kinds: one factor per row kind for all groups; none
    regularisation = auto      # (auto) 1: tune the solver's alpha ([RIDGE]/[LASSO] alpha, or
                               #   any solver whose own section has 'alpha'); 0: keep it;
                               #   auto: 1 when the solver has one
    objective = energy force   # (the fitted kinds with a weight > 0) the row kinds whose
                               #   CV-RMSE ratios are summed; only their weights are tuned
    balance = pooled           # (pooled) a kind's ratio: of its CV RMSE over all its rows;
                               #   groups: the geometric mean of its groups' ratios
    max_energy_rmse = 5        # (none) meV/atom: a CV energy RMSE above it is penalised
    optimizer = differential_evolution   # (differential_evolution) or random (search)
    range = 3                  # (3) decades either side of each input weight
    alpha_range = 1e-14 1e-2   # (1e-14 1e-2) alpha bounds, relative to the largest squared
                               #   singular value of the input-weighted training system
    population = 0             # (0: 15 x the number of tuned values, at least 10, at most
                               #   trials / 2) differential-evolution population
    memory = 2048              # (2048) MiB of compressed blocks per rank; above it, blocks
                               #   per (fold, kind) instead of (fold, group, kind) (weights = kinds)
    best = 10                  # (10) rows of the best-trials table

The objective is ``Σ_kind CV-RMSE_kind(w) / CV-RMSE_kind(input weights)`` over the ``objective``
kinds (unweighted RMSE in the metrics' units: eV/atom, eV/Å, bar), plus a penalty
``100 · (E/max_energy_rmse − 1)`` when the CV energy RMSE E exceeds ``max_energy_rmse``. A pooled
RMSE is dominated by the groups with the largest errors; ``balance = groups`` replaces each
kind's ratio by the geometric mean over its groups of ``CV-RMSE_g(w) / CV-RMSE_g(input)``, so
that a few outlying configurations cannot buy their improvement with every other group's error.
"""
from __future__ import annotations

from dataclasses import dataclass

from mpisnap.hookspecs import hookimpl
from mpisnap.records import SettingsSection
from mpisnap.settings import p_float, p_floats, p_int, p_word, p_words

KEYS = ("folds", "trials", "seed", "weights", "regularisation", "objective", "balance",
        "max_energy_rmse", "optimizer", "range", "alpha_range", "population", "memory", "best")
#: ``balance`` values.
BALANCES = ("pooled", "groups")
#: ``weights`` values.
WEIGHTS = ("groups", "kinds", "none")
#: ``optimizer`` values.
OPTIMIZERS = ("differential_evolution", "random")
#: Row kinds ``objective`` may list.
KINDS = ("energy", "force", "stress")


@dataclass(frozen=True)
class TuneSettings:
    """``[TUNE]`` typed (see the module docstring). ``regularisation``: None for auto;
    ``objective``: None for the default kinds; ``max_energy_rmse`` None: no constraint
    (meV/atom); ``population`` 0: automatic."""

    folds: int = 5
    trials: int = 200
    seed: int = 0
    weights: str = "groups"
    regularisation: bool | None = None
    objective: tuple[str, ...] | None = None
    max_energy_rmse: float | None = None
    optimizer: str = "differential_evolution"
    range: float = 3.0
    alpha_range: tuple[float, float] = (1e-14, 1e-2)
    population: int = 0
    memory: float = 2048.0
    best: int = 10
    balance: str = "pooled"


def _choice(r, key, choices, default):
    v = r.get(key, p_word, default).lower()
    r.require(key, v in choices, f"expected one of {', '.join(choices)}, got {v!r}")
    return v


def parse_tune(raw, r) -> TuneSettings:
    folds = r.get("folds", p_int, 5)
    r.require("folds", folds >= 2, f"must be >= 2, got {folds}")
    trials = r.get("trials", p_int, 200)
    r.require("trials", trials >= 1, f"must be >= 1, got {trials}")
    seed = r.get("seed", p_int, 0)
    r.require("seed", seed >= 0, f"must be >= 0, got {seed}")
    weights = _choice(r, "weights", WEIGHTS, "groups")
    reg = r.get("regularisation", p_word, "auto").lower()
    r.require("regularisation", reg in ("auto", "0", "1", "yes", "no", "true", "false", "on",
                                        "off"), f"expected auto, 0 or 1, got {reg!r}")
    regularisation = None if reg == "auto" else reg in ("1", "yes", "true", "on")
    objective = r.get("objective", p_words, None)
    if objective is not None:
        objective = tuple(k.lower() for k in objective)
        for k in objective:
            r.require("objective", k in KINDS,
                      f"expected row kinds ({', '.join(KINDS)}), got {k!r}")
        r.require("objective", len(set(objective)) == len(objective), "a kind is listed twice")
        objective = tuple(k for k in KINDS if k in objective)
    emax = r.get("max_energy_rmse", p_float, None)
    r.require("max_energy_rmse", emax is None or emax > 0, f"must be > 0 (meV/atom), got {emax}")
    optimizer = _choice(r, "optimizer", OPTIMIZERS, "differential_evolution")
    decades = r.get("range", p_float, 3.0)
    r.require("range", 0 < decades <= 12, f"must be in (0, 12] decades, got {decades}")
    ar = r.get("alpha_range", p_floats, (1e-14, 1e-2))
    r.require("alpha_range", len(ar) == 2, f"expected two numbers: min max, got {len(ar)}")
    r.require("alpha_range", 0 < ar[0] < ar[1], f"expected 0 < min < max, got {ar[0]} {ar[1]}")
    population = r.get("population", p_int, 0)
    r.require("population", population == 0 or population >= 4,
              f"must be 0 (automatic) or >= 4, got {population}")
    memory = r.get("memory", p_float, 2048.0)
    r.require("memory", memory > 0, f"must be > 0 (MiB), got {memory}")
    best = r.get("best", p_int, 10)
    r.require("best", best >= 1, f"must be >= 1, got {best}")
    balance = _choice(r, "balance", BALANCES, "pooled")
    return TuneSettings(folds, trials, seed, weights, regularisation, objective, emax, optimizer,
                        decades, (float(ar[0]), float(ar[1])), population, memory, best, balance)


SECTION = SettingsSection(
    "TUNE", parse_tune, KEYS, verb="tune",
    description="group weights and regularisation by cross-validation (mpisnap tune)")


@hookimpl
def mpisnap_settings_sections():
    return [SECTION]
