"""The posterior that selection and the stop rules read, from the uncertainty package
(:mod:`mpisnap.uq`): the evidence-optimised Bayesian regression of the per-kind compressed
systems every rank holds (one noise precision per row kind, a Gaussian prior on standardised
columns, flat on the per-element constants; :mod:`mpisnap.uq.posterior`), whatever solver writes
the campaign's coefficients. The prior keeps a tiny starting set well posed; the
hyperparameters are optimised again every round.

Selection needs only a small interface, :class:`Posterior`: the mean, the upper-triangular factor
``R`` of the precision over all n columns (``Σ = R⁻¹R⁻ᵀ``), the noise precision per kind and a
calibration scale per kind. Columns that no training row touches (say, the columns of an element
the starting set lacks) are outside the uq posterior (zero coefficient, no variance); here they
get the prior of an average column (the flat prior for a constant column), so structures that
reach them are the most uncertain ones, as they are.

Calibration (:func:`calibration_scales`): every label the campaign gets is a held-out test of the
model that chose it. Before its rows are folded in, each row of kind k gives the score
``z = |b − a·β| / σ`` (β the round's coefficients, σ² = the calibrated-free model variance
``aΣaᵀ`` plus the label noise ``1/(α_k w_k²)``); the scale of kind k is the split-conformal 90 %
quantile of its scores over the campaign so far divided by 1.645 (as :mod:`mpisnap.uq.calibration`
scales a fit's σ), so that ±1.645 σ covers 90 % of new labels. Until a kind has 10 scores its
scale is 1 (uncalibrated).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy.linalg import solve_triangular

__all__ = ["Posterior", "posterior_of", "calibration_scales", "MIN_SCORES", "LEVEL"]

#: Scores a kind needs before its calibration scale departs from 1.
MIN_SCORES = 10
#: Coverage level of the calibration.
LEVEL = 0.9


@dataclass(frozen=True)
class Posterior:
    """Gaussian posterior of the coefficients: ``mean`` (n,), ``precision_r`` (n, n) upper
    triangular with precision ``Rᵀ R`` (the covariance is ``Σ = R⁻¹ R⁻ᵀ``), ``alpha`` per row
    kind (0 energy, 1 force, 2 stress) the noise precision of a row of weight 1, ``scale`` per
    kind the calibration factor of predicted standard deviations (1: uncalibrated), ``info``
    what made it (``prior``, evidence, …)."""

    mean: np.ndarray
    precision_r: np.ndarray
    alpha: Mapping[int, float]
    scale: Mapping[int, float]
    info: dict = field(default_factory=dict)

    def whiten(self, A: np.ndarray) -> np.ndarray:
        """``A R⁻¹`` for rows ``A`` (m, n): the squared row norms are ``a Σ aᵀ``."""
        A = np.asarray(A, float)
        if A.shape[0] == 0:
            return np.zeros((0, A.shape[1]))
        return solve_triangular(self.precision_r, A.T, trans="T", lower=False,
                                check_finite=False).T

    def model_std(self, A: np.ndarray, kind: np.ndarray | None = None) -> np.ndarray:
        """The model (epistemic) standard deviation ``sqrt(a Σ aᵀ)`` of each row ``a`` of ``A``
        (unweighted rows: the rows' units), times the calibration scale of its ``kind`` when
        given."""
        G = self.whiten(A)
        std = np.sqrt(np.einsum("ij,ij->i", G, G))
        if kind is not None:
            std = std * np.array([self.scale.get(k, 1.0) for k in range(3)])[kind]
        return std

    def label_variance(self, kind: int, weight: float) -> float:
        """The noise variance of a new label of ``kind`` with row weight ``weight``."""
        a = self.alpha.get(kind)
        if not a or not weight:
            return 0.0
        return 1.0 / (a * weight * weight)


def posterior_of(systems: Mapping[int, object], nrows: Mapping[int, int],
                 log_weight2: Mapping[int, float], flat: np.ndarray,
                 scale: Mapping[int, float] | None = None, *, progress: bool = False
                 ) -> Posterior:
    """The evidence-optimal posterior (:func:`mpisnap.uq.posterior.optimise`) of the per-kind
    compressed systems ``systems`` (kind → :class:`~mpisnap.pipeline.compression.Compressed`
    of the weighted training rows, identical on every rank, so is the result); ``nrows``,
    ``log_weight2``: per kind the number of rows of weight > 0 and their Σ log w² (the typical
    row's squared weight is their geometric mean, as in the fit's posterior); ``flat`` (n,) the
    constant columns; ``scale``: calibration scales (default 1); ``progress``: show the
    evidence optimisation (tqdm on stderr)."""
    from ..uq.linalg import inverse_triangle, small_blas
    from ..uq.posterior import FLAT_PRECISION, Problem, augmented, optimise, typical_weight2

    flat = np.asarray(flat, bool)
    n = flat.size
    kinds = [k for k in sorted(systems) if nrows.get(k, 0) > 0]
    with small_blas(n):
        problem = Problem.build({k: augmented(systems[k].R, systems[k].qb, systems[k].rnorm2)
                                 for k in kinds}, {k: nrows[k] for k in kinds},
                                {k: typical_weight2(log_weight2[k], nrows[k]) for k in kinds},
                                flat)
        hyper, post, info = optimise(problem, progress=progress)
        T = inverse_triangle(post.factor)
    R = np.zeros((n, n))
    idx = np.flatnonzero(problem.active)
    R[np.ix_(idx, idx)] = T
    reg = ~problem.flat
    s2 = float(np.mean(problem.s2[reg])) if reg.any() else 1.0
    for j in np.flatnonzero(~problem.active):
        R[j, j] = math.sqrt((FLAT_PRECISION if flat[j] else hyper.lam) * s2)
    return Posterior(np.asarray(post.mean, float), R, dict(hyper.alpha),
                     dict(scale or {}), {"prior": float(hyper.lam),
                                         "log_evidence": float(info["log_evidence"]),
                                         "effective_parameters": info["effective_parameters"]})


def calibration_scales(comm, scores: Mapping[int, list]) -> dict[int, float]:
    """Per kind, the split-conformal :data:`LEVEL` quantile of the held-out scores of every
    rank divided by its normal half-width (1.645), or 1 with fewer than :data:`MIN_SCORES`
    scores (collective; the same on any number of ranks)."""
    from ..uq.calibration import conformal_quantile, z_of

    out = {}
    for k in range(3):
        s = np.asarray(scores.get(k, []), float)
        n = comm.allreduce(int(s.size))
        if n < MIN_SCORES:
            out[k] = 1.0
            continue
        q, _ = conformal_quantile(comm, s, LEVEL)
        out[k] = float(q / z_of(LEVEL)) if q > 0 else 1.0
    return out
