"""The ``BAYES`` solver (and FitSNAP's ``ANL``, mapped onto it): evidence-optimised Bayesian
linear regression on the compressed rows, one noise precision per row kind
(:mod:`mpisnap.uq.posterior`). Registered by the built-in plugin :mod:`mpisnap.plugins.bayes`.

Called by the fit with ``blocks`` (:class:`mpisnap.pipeline.solving.Blocks`, one R per fold and
kind): the per-kind systems are the folds' triangles stacked. Called as a plain solver
``solve(R, qb, settings, nrows=..., rnorm2=...)`` (no blocks) it treats every row as one kind
with one noise level and no free constant columns.
"""
from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager

import numpy as np

from ..records import SolveResult
from .linalg import small_blas, stack_triangles
from .posterior import KIND_NAMES, Hyper, Problem, augmented, optimise, typical_weight2
from .settings import uq_options

__all__ = ["solve_bayes", "problem_of", "fold_triangles", "hyper_of", "kind_name",
           "showing_progress"]

#: whether :func:`solve_bayes` shows the evidence optimisation (the solver hook's signature has
#: no room for it; the fit sets it around the solve on the rank that shows progress)
_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("mpisnap_uq_progress",
                                                                   default=False)


@contextmanager
def showing_progress(enabled: bool):
    """Within the block, :func:`solve_bayes` shows a tqdm display of the evidence optimisation
    (iterations, current log-evidence) when ``enabled``."""
    token = _PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def kind_name(kind: int) -> str:
    return KIND_NAMES[kind] if 0 <= kind < len(KIND_NAMES) else "all"


def problem_of(blocks) -> Problem:
    """The regression of every block: per kind, the folds' augmented triangles stacked."""
    per_kind, nrows = {}, {}
    for kind in blocks.kinds:
        codes = sorted(c for c in blocks.systems if blocks.decode(c)[1] == kind)
        tris = [(1.0, augmented(blocks.systems[c].R, blocks.systems[c].qb,
                                blocks.systems[c].rnorm2)) for c in codes]
        per_kind[kind] = stack_triangles(tris)
        nrows[kind] = blocks.kind_rows(kind)
    typical = {k: typical_weight2(blocks.log_weight2[k], nrows[k]) for k in per_kind}
    return Problem.build(per_kind, nrows, typical, blocks.flat)


def fold_triangles(problem: Problem, blocks, hyper: Hyper) -> list:
    """Per fold f (0 … nfolds−1): the triangle of its rows over the active columns, each kind
    scaled by √α_k (None for a fold without rows)."""
    out = []
    for f in range(blocks.nfolds):
        tris = []
        for kind in problem.kinds:
            c = blocks.systems.get(f * 3 + kind)
            if c is not None:
                tris.append((math.sqrt(hyper.alpha[kind]),
                             problem.restrict(augmented(c.R, c.qb, c.rnorm2))))
        out.append(stack_triangles(tris) if tris else None)
    return out


def hyper_of(info: dict) -> Hyper:
    """The :class:`Hyper` a BAYES ``SolveResult.info`` holds."""
    return Hyper({int(k): float(v) for k, v in info["alpha"].items()},
                 float(info["prior_precision"]))


def solve_bayes(R, qb, settings, *, nrows=None, rnorm2=0.0, blocks=None) -> SolveResult:
    """Posterior mean and covariance with evidence-optimised noise per kind and prior
    (:func:`mpisnap.uq.posterior.optimise`). ``info``: ``alpha`` (kind → noise precision of the
    weighted rows), ``noise_std`` and ``noise_std_error`` (kind name → σ of a new label in its
    units: eV/atom, eV/Å, bar, that of a typical training row; Laplace standard error),
    ``rows``, ``gamma`` (effective
    parameters per kind), ``prior_precision`` (λ), ``log_evidence``, ``effective_parameters``,
    ``evaluations``, ``converged``, ``at_bound``, ``cov_nugget``, ``residual`` (weighted) and the
    arrays ``active``, ``flat``, ``prior_scale``."""
    opts = uq_options(settings) if settings is not None else None
    nugget = opts.cov_nugget if opts is not None else 0.0
    if blocks is None:
        if R is None or qb is None:
            raise ValueError("BAYES solver: needs R and qb (or the fit's blocks)")
        R = np.asarray(R, dtype=float)
        qb = np.asarray(qb, dtype=float)
        if R.ndim != 2 or R.shape[0] != R.shape[1] or qb.shape != (R.shape[0],):
            raise ValueError(f"BAYES solver: R must be n x n and qb (n,), got {R.shape} and "
                             f"{qb.shape}")
        if not (np.isfinite(R).all() and np.isfinite(qb).all()):
            raise ValueError("BAYES solver: R or Qᵀb contains NaN or infinite values")
        m = int(nrows) if nrows else R.shape[0]
        problem = Problem.build({-1: augmented(R, qb, rnorm2)}, {-1: m}, {-1: 1.0},
                                np.zeros(R.shape[0], bool))
    else:
        with small_blas(blocks.ncols):
            problem = problem_of(blocks)
    hyper, post, d = optimise(problem, progress=_PROGRESS.get())
    x = np.r_[post.mean[problem.active], -1.0]
    resid = {k: float(np.sum((problem.aug[k] @ x) ** 2)) for k in problem.kinds}
    noise, noise_se = {}, {}
    for i, k in enumerate(problem.kinds):
        sigma = 1.0 / math.sqrt(hyper.alpha[k] * problem.typical_w2[k])
        noise[kind_name(k)] = sigma
        noise_se[kind_name(k)] = 0.5 * sigma * float(d["theta_std"][i])
    cov = post.covariance()
    if nugget:
        cov[np.diag_indices_from(cov)] += nugget
    info = {"alpha": dict(hyper.alpha), "noise_std": noise, "noise_std_error": noise_se,
            "rows": {kind_name(k): problem.nrows[k] for k in problem.kinds},
            "gamma": {kind_name(k): float(v) for k, v in d["gamma"].items()},
            "prior_precision": hyper.lam, "log_evidence": float(d["log_evidence"]),
            "effective_parameters": d["effective_parameters"], "evaluations": d["evaluations"],
            "converged": bool(d["converged"]), "at_bound": bool(d["at_bound"]),
            "cov_nugget": nugget, "residual": float(sum(resid.values())),
            "active": problem.active.copy(), "flat": np.asarray(blocks.flat if blocks is not None
                                                                 else np.zeros(problem.n, bool)),
            "prior_scale": problem.s2.copy()}
    return SolveResult(post.mean, cov, info)
