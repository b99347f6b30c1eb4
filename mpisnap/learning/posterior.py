"""The Bayesian posterior of the linear coefficients that selection and the stop rules read:
mean, the precision's triangular factor, noise per row kind and calibration scales.

Selection needs only this small interface (:class:`Posterior`), so it does not care how the
posterior was made. :func:`provisional_posterior` makes one from the per-kind compressed systems
every rank holds; it stands in for the uncertainty package (:mod:`mpisnap.uq`, the ``BAYES``
solver) until that lands, and is then replaced by it.

The model (over the weighted rows ``w·a``, rows of kind k = energy, force, stress): label noise
of variance ``1/α`` per weighted row — one noise level, the group weights setting the kinds'
relative noise as they do in the fit (one α per kind proved unstable on the handful of energy
rows of a small starting set) — a Gaussian prior of precision ``λ d_j`` on coefficient j
(``d_j`` the mean square of column j over the weighted training rows, so the prior is a ridge
on standardised columns) and a flat prior on the per-element constant columns (β0 of several eV
is not shrunk). ``λ`` and the ``α_k`` maximise the evidence by MacKay's fixed-point updates
(MacKay, Neural Comput. 4, 415 (1992)): with Σ the posterior covariance and
``γ = n − λ tr(DΣ)`` the number of parameters the data determine, ``α ← (N − γ)/RSS`` and
``λ ← (p − λ tr(DΣ))/(mᵀDm)`` (p regularised columns). The precision
``P = α Σ_k R_kᵀR_k + λD`` is never formed: its factor comes from a QR of the stacked,
scaled triangles and the prior rows (no normal equations), O(n³) per update, whatever the
number of training rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy.linalg import solve_triangular

from ..tsqr import StreamingR, split_r

__all__ = ["Posterior", "provisional_posterior"]

#: Fixed-point iterations of the evidence maximisation, and their relative tolerance.
ITERATIONS = 100
TOLERANCE = 1e-8


@dataclass(frozen=True)
class Posterior:
    """Gaussian posterior of the coefficients: ``mean`` (n,), ``precision_r`` (n, n) upper
    triangular with precision ``Rᵀ R`` (the covariance is ``Σ = R⁻¹ R⁻ᵀ``), ``noise`` per row
    kind (0 energy, 1 force, 2 stress) the label-noise variance of a row of weight 1 (in the
    row's units squared), ``scale`` per kind the calibration factor of predicted standard
    deviations (1: uncalibrated), ``info`` what made it (e.g. ``prior``, iterations)."""

    mean: np.ndarray
    precision_r: np.ndarray
    noise: Mapping[int, float]
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
            std = std * np.array([self.scale.get(int(k), 1.0) for k in range(3)])[kind]
        return std


def _factor(systems, alpha, lam, d):
    """``(R_p, qb_p)`` of the stacked scaled per-kind triangles and the prior rows."""
    n = len(d)
    acc = StreamingR(n, defer_errors=False)
    for k in sorted(systems):
        s = systems[k]
        acc.add(s.R, s.qb, np.full(n, np.sqrt(alpha[k])))
    reg = d > 0
    acc.add(np.diag(np.sqrt(lam * d))[reg], np.zeros(int(reg.sum())))
    R, qb, _ = split_r(acc.R, n)
    return R, qb


def provisional_posterior(systems: Mapping[int, object], const_columns: np.ndarray, *,
                          iterations: int = ITERATIONS, tol: float = TOLERANCE) -> Posterior:
    """The evidence-maximising posterior (module docstring) of the per-kind compressed systems
    ``systems`` (kind → :class:`~mpisnap.pipeline.compression.Compressed` of the weighted
    training rows, identical on every rank, so is the result); ``const_columns`` (n,) bool
    marks the columns with a flat prior. Calibration scales are 1 (uncalibrated).

    Stands in for :mod:`mpisnap.uq` until that exists (see the module docstring)."""
    kinds = [k for k in sorted(systems) if systems[k].nrows > 0]
    if not kinds:
        raise ValueError("no training rows: the posterior needs data")
    systems = {k: systems[k] for k in kinds}
    n = systems[kinds[0]].R.shape[0]
    const = np.asarray(const_columns, bool)
    ntot = sum(systems[k].nrows for k in kinds)
    colsq = sum(np.einsum("ij,ij->j", systems[k].R, systems[k].R) for k in kinds) / ntot
    d = np.where(const, 0.0, np.where(colsq > 0, colsq, 1.0))
    p = int((~const).sum())

    def rss(k, m):
        r = systems[k].R @ m - systems[k].qb
        return float(r @ r + systems[k].rnorm2)

    # start: a weak prior, the noise of that fit's residuals; then MacKay's updates
    lam = 1e-6
    R, qb = _factor(systems, {k: 1.0 for k in kinds}, lam, d)
    m = solve_triangular(R, qb, check_finite=False)
    alpha = ntot / max(sum(rss(k, m) for k in kinds), 1e-300)
    it = 0
    for it in range(1, iterations + 1):
        R, qb = _factor(systems, {k: alpha for k in kinds}, lam, d)
        m = solve_triangular(R, qb, check_finite=False)
        Rinv = solve_triangular(R, np.eye(n), check_finite=False)  # Σ = Rinv Rinvᵀ
        tr_dsigma = float(np.einsum("ij,ij,i->", Rinv, Rinv, d))
        gamma_data = n - lam * tr_dsigma  # parameters the data determine (flat ones included)
        new_alpha = max(ntot - gamma_data, 1.0) / max(sum(rss(k, m) for k in kinds), 1e-300)
        mdm = float(m @ (d * m))
        new_lam = max(p - lam * tr_dsigma, 1e-3) / mdm if mdm > 0 else lam
        change = max(abs(new_alpha / alpha - 1), abs(new_lam / lam - 1))
        alpha, lam = new_alpha, new_lam
        if change < tol:
            break
    alpha = {k: alpha for k in kinds}
    R, qb = _factor(systems, alpha, lam, d)
    m = solve_triangular(R, qb, check_finite=False)
    return Posterior(m, R, {k: 1.0 / alpha[k] for k in kinds}, {k: 1.0 for k in range(3)},
                     {"prior": float(lam), "iterations": it, "made_by": "provisional_posterior"})
