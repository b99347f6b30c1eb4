"""An example out-of-tree mpisnap plugin (used by ``tests/test_plugins.py``).

* model form ``linear-noconst`` — linear SNAP without the per-element constant column: the fitted
  β0 of every element is exactly 0 (``E_i = β·B_i``);
* solver ``TIKHONOV`` — ``min |Rx - qb|^2 + λ |x|^2`` for linear models;
* its own input section, ``[EXAMPLE]``: ``tikhonov_lambda`` (λ, default 1e-10, >= 0), which the
  solver reads as ``settings.section("EXAMPLE").tikhonov_lambda``; ``--set EXAMPLE.key=value``
  works as for any section, and without this plugin ``[EXAMPLE]`` is an unknown section.

Installed packages announce it through the ``mpisnap`` entry-point group (see ``pyproject.toml``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpisnap import hookimpl
from mpisnap.plugins.models import LinearSNAP
from mpisnap.records import ModelForm, SettingsSection, SolveResult, Solver
from mpisnap.settings import p_float

#: The default Tikhonov penalty strength.
TIKHONOV_LAMBDA = 1e-10


@dataclass(frozen=True)
class ExampleSettings:
    """``[EXAMPLE]``: the options of this plugin."""

    tikhonov_lambda: float = TIKHONOV_LAMBDA


def parse_example(raw, ctx):
    lam = ctx.get("tikhonov_lambda", p_float, TIKHONOV_LAMBDA)
    ctx.require("tikhonov_lambda", lam >= 0, f"must be >= 0, got {lam}")
    return ExampleSettings(lam)


class NoConstSNAP(LinearSNAP):
    """Linear SNAP without the constant column: one column per descriptor value per element;
    ``coefficient_blocks`` writes β0 = 0."""

    name = "linear-noconst"

    def __init__(self, settings, threads=None):
        super().__init__(settings, threads)
        self.const = False
        self.block = self.nvalues
        self.ncols = self.block * len(self.elements)


def _noconst(settings, **kw):
    b = settings.bispectrum
    if b.chemflag or b.quadraticflag:
        raise ValueError("[CALCULATOR] model: model form 'linear-noconst' needs [BISPECTRUM] "
                         "chemflag = 0 and quadraticflag = 0")
    if b.bzeroflag:
        raise ValueError("[CALCULATOR] model: model form 'linear-noconst' needs [BISPECTRUM] "
                         "bzeroflag = 0")
    return NoConstSNAP(settings, **kw)


def solve_tikhonov(R, qb, settings=None, *, nrows=None, rnorm2=0.0):
    """``x = argmin |Rx - qb|^2 + λ|x|^2`` (λ: ``[EXAMPLE] tikhonov_lambda``; 1e-10 without
    settings) from the SVD of R: ``x = V diag(s / (s^2 + λ)) Uᵀ qb``."""
    lam = TIKHONOV_LAMBDA if settings is None else settings.section("EXAMPLE").tikhonov_lambda
    R = np.asarray(R, dtype=float)
    qb = np.asarray(qb, dtype=float)
    if R.shape[0] == 0:
        return SolveResult(np.zeros(0), None, {"lambda": lam})
    U, s, Vt = np.linalg.svd(R)
    x = Vt.T @ (s / (s * s + lam) * (U.T @ qb))
    r = R @ x - qb
    return SolveResult(x, None, {"lambda": lam, "residual": float(r @ r + rnorm2)})


@hookimpl
def mpisnap_model_forms():
    return [ModelForm("linear-noconst", "linear", _noconst,
                      "linear SNAP without the constant column (beta0 = 0)")]


@hookimpl
def mpisnap_solvers():
    return [Solver("TIKHONOV", solve_tikhonov, frozenset({"linear"}),
                   "least squares + [EXAMPLE] tikhonov_lambda |x|^2")]


@hookimpl
def mpisnap_settings_sections():
    return [SettingsSection("EXAMPLE", parse_example, ("tikhonov_lambda",),
                            description="options of the example plugin (the TIKHONOV penalty)")]
