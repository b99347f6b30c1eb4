"""Built-in linear solvers of the compressed least-squares system (``[SOLVER] solver``).

Every solver works on the upper-triangular ``R`` (n x n) and ``qb = Qᵀ wb`` (n,) of the weighted
training rows from :mod:`mpisnap.tsqr`, using ``|W(Ax - b)|^2 = |Rx - qb|^2 + rnorm2``: the whole
design matrix is never needed. The signature is::

    solve(R, qb, settings, *, nrows=None, rnorm2=0.0) -> SolveResult

``settings`` is the :class:`mpisnap.settings.Settings` (only its ``ridge``, ``lasso`` and ``ard``
sections are read, by the solvers that use them). The keyword extras, passed by the pipeline, carry
what the compression loses:

* ``nrows`` — the number of weighted training rows over all ranks (the ``n_samples`` of the full
  system). LASSO uses it to match scikit-learn's ``1/(2 nrows)`` scaling (FitSNAP's objective);
  ARD needs it (noise-precision update) and raises ValueError without it.
* ``rnorm2`` — the part of the squared residual that no coefficient vector can change (see
  :func:`mpisnap.tsqr.split_r`). It never changes a minimiser; ARD needs it for the residual and the
  solvers report the full residual ``info["residual"] = |Rx - qb|^2 + rnorm2``.

Solvers called with ``(R, qb, settings)`` only use ``nrows=None, rnorm2=0.0``.

Solvers (FitSNAP names):

* ``SVD`` (default) — minimum-norm least squares; identical to FitSNAP's
  ``numpy.linalg.lstsq(aw, bw, rcond=1e-13)`` on the full weighted matrix.
* ``QR`` — back substitution with R; an error for a rank-deficient R.
* ``RIDGE`` — ``min |Rx - qb|^2 + alpha |x|^2`` (scikit-learn ``Ridge(alpha, fit_intercept=False)``
  on the weighted rows, as FitSNAP calls it).
* ``LASSO`` — ``min 1/(2 nrows) |Rx - qb|^2 + alpha |x|_1`` (scikit-learn ``Lasso`` without
  intercept, as FitSNAP calls it; ``nrows = 1`` when not given), cyclic coordinate descent.
* ``ARD`` — automatic relevance determination (sparse Bayesian regression) with the posterior
  covariance.

A non-finite or wrongly shaped R or qb is a ValueError naming the solver, and so is an all-zero R
(n > 0): every training row had weight 0 or was zero, so there is nothing to fit and any solver
would silently return zero coefficients.
"""
from __future__ import annotations

import numpy as np

from mpisnap.hookspecs import hookimpl
from mpisnap.records import SolveResult, Solver

__all__ = ["mpisnap_solvers", "solve_svd", "solve_qr", "solve_ridge", "solve_lasso", "solve_ard",
           "SVD_RCOND"]

def solve_triangular(*args, **kwargs):
    """:func:`scipy.linalg.solve_triangular`, imported on first use (SVD fits never load SciPy)."""
    from scipy.linalg import solve_triangular as solve

    return solve(*args, **kwargs)


#: FitSNAP's cut-off: singular values below ``SVD_RCOND * s_max`` count as zero.
SVD_RCOND = 1e-13
#: scikit-learn's defaults, used by FitSNAP: Lasso ``tol``; ARD iterations and ``tol``.
LASSO_TOL = 1e-4
ARD_MAX_ITER = 300
ARD_TOL = 1e-3


def _check(name: str, R, qb):
    R = np.asarray(R, dtype=float)
    qb = np.asarray(qb, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"{name} solver: R must be square (n x n), got shape {R.shape}")
    if qb.shape != (R.shape[0],):
        raise ValueError(f"{name} solver: qb must have shape ({R.shape[0]},), got {qb.shape}")
    if not np.isfinite(R).all():
        raise ValueError(f"{name} solver: R contains NaN or infinite values "
                         "(non-finite values in the design matrix, truth or weights)")
    if not np.isfinite(qb).all():
        raise ValueError(f"{name} solver: Qᵀb contains NaN or infinite values "
                         "(non-finite values in the truth or weights)")
    if R.size and not R.any():
        raise ValueError(f"{name} solver: the weighted training system is all zero (every "
                         "training row has weight 0, or every weighted design-matrix row is "
                         "zero): any coefficients fit it equally well; set a non-zero "
                         "eweight/fweight/vweight in [GROUPS] for groups with training rows")
    return R, qb


def _section(settings, name: str):
    sec = getattr(settings, name, None)
    if sec is None:
        raise ValueError(f"{name.upper()} solver: settings have no [{name.upper()}] section")
    return sec


def _residual(R, qb, x, rnorm2) -> float:
    r = R @ x - qb
    return float(r @ r + rnorm2)


# --------------------------------------------------------------------------------------- SVD


def solve_svd(R, qb, settings=None, *, nrows=None, rnorm2=0.0) -> SolveResult:
    """Minimum-norm least squares through the SVD of R.

    ``R = U S Vᵀ`` has the singular values and right singular vectors of the full weighted matrix
    ``wA = Q R`` and ``Uᵀ qb = (QU)ᵀ wb``, so ``x = V S⁺ Uᵀ qb`` with singular values at or below
    ``SVD_RCOND * s_max`` treated as zero equals ``numpy.linalg.lstsq(wA, wb, rcond=1e-13)``.
    Computed as that very call on the small system, ``numpy.linalg.lstsq(R, qb, rcond=1e-13)``
    (LAPACK ``dgelsd``: divide-and-conquer SVD that applies the singular vectors to ``qb`` without
    forming them, about 1.6 times faster than ``numpy.linalg.svd`` of R with its vectors).
    ``info``: ``singular_values``, ``rank``, ``rcond``, ``residual``."""
    R, qb = _check("SVD", R, qb)
    n = R.shape[0]
    if n == 0:
        return SolveResult(np.zeros(0), None, {"singular_values": np.zeros(0), "rank": 0,
                                                "rcond": SVD_RCOND, "residual": float(rnorm2)})
    x, _, rank, s = np.linalg.lstsq(R, qb, rcond=SVD_RCOND)
    info = {"singular_values": s, "rank": int(rank), "rcond": SVD_RCOND,
            "residual": _residual(R, qb, x, rnorm2)}
    return SolveResult(x, None, info)


# ---------------------------------------------------------------------------------------- QR


def solve_qr(R, qb, settings=None, *, nrows=None, rnorm2=0.0) -> SolveResult:
    """Back substitution ``R x = qb``. A diagonal entry of R at or below
    ``n * eps * max|diag R|`` means R is (numerically) singular: LinAlgError (a ValueError) naming
    the solver and the number of such entries; use SVD (minimum norm) or RIDGE instead."""
    R, qb = _check("QR", R, qb)
    n = R.shape[0]
    if n == 0:
        return SolveResult(np.zeros(0), None, {"residual": float(rnorm2)})
    d = np.abs(np.diagonal(R))
    tol = n * np.finfo(float).eps * (d.max() if d.size else 0.0)
    small = np.flatnonzero(d <= tol)
    if small.size:
        cols = ", ".join(str(int(i)) for i in small[:10]) + (", ..." if small.size > 10 else "")
        raise np.linalg.LinAlgError(
            f"QR solver: R is rank deficient ({small.size} of {n} diagonal entries are zero or "
            f"below {tol:.3g}; columns {cols}): the columns of the weighted design matrix are "
            "linearly dependent; use solver = SVD (minimum norm) or RIDGE")
    x = solve_triangular(R, qb, lower=False, check_finite=False)
    return SolveResult(x, None, {"residual": _residual(R, qb, x, rnorm2),
                                 "min_abs_diagonal": float(d.min()),
                                 "max_abs_diagonal": float(d.max())})


# ------------------------------------------------------------------------------------- RIDGE


def solve_ridge(R, qb, settings, *, nrows=None, rnorm2=0.0) -> SolveResult:
    """``min |Rx - qb|^2 + alpha |x|^2`` with ``alpha = settings.ridge.alpha``.

    This is exactly the objective of scikit-learn's ``Ridge(alpha, fit_intercept=False)`` on the
    weighted rows, which FitSNAP's RIDGE calls (no ``1/nrows`` factor), so
    ``x = (wAᵀwA + alpha I)⁻¹ wAᵀ wb``. Computed stably from the SVD of R:
    ``x = V diag(s / (s^2 + alpha)) Uᵀ qb``. ``info``: ``alpha``, ``singular_values``,
    ``effective_dof`` (``sum s^2/(s^2+alpha)``), ``residual``."""
    R, qb = _check("RIDGE", R, qb)
    alpha = float(_section(settings, "ridge").alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"RIDGE solver: [RIDGE] alpha must be finite and >= 0, got {alpha}")
    n = R.shape[0]
    if n == 0:
        return SolveResult(np.zeros(0), None, {"alpha": alpha, "residual": float(rnorm2)})
    U, s, Vt = np.linalg.svd(R)
    den = s * s + alpha
    f = np.divide(s, den, out=np.zeros_like(s), where=den > 0)
    x = Vt.T @ (f * (U.T @ qb))
    dof = float(np.sum(np.divide(s * s, den, out=np.zeros_like(s), where=den > 0)))
    return SolveResult(x, None, {"alpha": alpha, "singular_values": s, "effective_dof": dof,
                                 "residual": _residual(R, qb, x, rnorm2)})


# ------------------------------------------------------------------------------------- LASSO


def _soft(z: float, t: float) -> float:
    if z > t:
        return z - t
    if z < -t:
        return z + t
    return 0.0


def solve_lasso(R, qb, settings, *, nrows=None, rnorm2=0.0) -> SolveResult:
    """``min 1/(2 m) |Rx - qb|^2 + alpha |x|_1`` with ``alpha = settings.lasso.alpha``,
    ``m = nrows`` (1 when not given).

    With ``m = nrows`` this is scikit-learn's ``Lasso(alpha, fit_intercept=False)`` objective on
    the weighted rows, which FitSNAP's LASSO calls; equivalently ``½|Rx - qb|^2 + m alpha |x|_1``,
    which is what is minimised here: cyclic coordinate descent (coordinates in index order, from
    x = 0, so deterministic) on ``G = RᵀR``, ``c = Rᵀqb``, at most ``settings.lasso.max_iter``
    sweeps. It stops when the largest coordinate change of a sweep is below ``tol * max|x|`` and the
    duality gap is below ``tol * (|qb|^2 + rnorm2)`` (scikit-learn's criterion; ``tol`` is
    ``settings.lasso.tol`` if the settings carry one, else 1e-4). ``info``: ``alpha``,
    ``penalty`` (``m alpha``), ``n_iter``, ``converged``, ``duality_gap``, ``residual``.
    The optimality (KKT) conditions at the solution: ``g = Rᵀ(qb - Rx)`` has ``g_j = penalty
    sign(x_j)`` where ``x_j != 0`` and ``|g_j| <= penalty`` where ``x_j = 0``."""
    R, qb = _check("LASSO", R, qb)
    sec = _section(settings, "lasso")
    alpha = float(sec.alpha)
    max_iter = int(sec.max_iter)
    tol = float(getattr(sec, "tol", LASSO_TOL))
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"LASSO solver: [LASSO] alpha must be finite and >= 0, got {alpha}")
    if max_iter < 1:
        raise ValueError(f"LASSO solver: [LASSO] max_iter must be >= 1, got {max_iter}")
    m = 1 if nrows is None else int(nrows)
    if m < 1:
        raise ValueError(f"LASSO solver: nrows must be >= 1, got {nrows}")
    pen = alpha * m
    n = R.shape[0]
    G = R.T @ R
    c = R.T @ qb
    diag = np.diagonal(G).copy()
    x = np.zeros(n)
    g = c.copy()                 # g = c - G x (the negative gradient of ½|Rx - qb|^2)
    ynorm2 = float(qb @ qb + rnorm2)
    gap = np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        dmax = 0.0
        xmax = 0.0
        for j in range(n):
            gjj = diag[j]
            if gjj <= 0.0:
                continue
            old = x[j]
            new = _soft(g[j] + gjj * old, pen) / gjj
            if new != old:
                g -= G[j] * (new - old)  # G symmetric: row j = column j
                x[j] = new
                dmax = max(dmax, abs(new - old))
            xmax = max(xmax, abs(new))
        if xmax == 0.0 or dmax <= tol * xmax:
            gap = _lasso_gap(R, qb, x, c, G, pen)
            if gap <= tol * ynorm2:
                converged = True
                break
    if not converged:
        gap = _lasso_gap(R, qb, x, c, G, pen)
    info = {"alpha": alpha, "penalty": pen, "nrows": nrows, "n_iter": it, "converged": converged,
            "duality_gap": gap, "tol": tol, "residual": _residual(R, qb, x, rnorm2)}
    return SolveResult(x, None, info)


def _lasso_gap(R, qb, x, c, G, pen) -> float:
    """Duality gap of ``½|Rx - qb|^2 + pen |x|_1`` at x, with the dual point ``s (qb - Rx)``
    scaled into the dual feasible set ``|Rᵀθ|_inf <= pen``."""
    rho = qb - R @ x
    grad = c - G @ x              # Rᵀ rho
    dual_norm = float(np.max(np.abs(grad))) if grad.size else 0.0
    s = 1.0 if dual_norm <= pen else pen / dual_norm
    rr = float(rho @ rho)
    gap = 0.5 * rr * (1.0 + s * s) + pen * float(np.abs(x).sum()) - s * float(qb @ rho)
    return max(gap, 0.0)


# --------------------------------------------------------------------------------------- ARD


def _ard_posterior(R, qb, keep, lam, alpha):
    """Posterior of the kept coefficients: ``Σ = (diag(lam) + alpha R_kᵀR_k)⁻¹`` and
    ``mu = alpha Σ R_kᵀ qb``, from the QR of ``[sqrt(alpha) R_k; diag(sqrt(lam))]`` (no normal
    equations: ``mu`` minimises ``alpha|R_k x - qb|^2 + sum lam x^2``)."""
    Rk = R[:, keep]
    k = Rk.shape[1]
    M = np.empty((R.shape[0] + k, k + 1), order="F")
    sa = np.sqrt(alpha)
    M[:R.shape[0], :k] = sa * Rk
    M[:R.shape[0], k] = sa * qb
    M[R.shape[0]:, :k] = np.diag(np.sqrt(lam[keep]))
    M[R.shape[0]:, k] = 0.0
    T = np.linalg.qr(M, mode="r")
    Rt, z = T[:k, :k], T[:k, k]
    mu = solve_triangular(Rt, z, lower=False, check_finite=False)
    Rinv = solve_triangular(Rt, np.eye(k), lower=False, check_finite=False)
    sigma = Rinv @ Rinv.T
    return mu, 0.5 * (sigma + sigma.T)


def solve_ard(R, qb, settings, *, nrows=None, rnorm2=0.0) -> SolveResult:
    """Automatic relevance determination (Tipping 2001, "Sparse Bayesian learning and the
    relevance vector machine", JMLR 1:211; MacKay 1992 evidence updates), on the compressed system.

    Model: ``wb = wA x + noise`` with noise precision ``alpha`` and prior ``x_j ~ N(0, 1/lam_j)``;
    gamma hyper-priors ``alpha ~ Gamma(alpha_1, alpha_2)``, ``lam_j ~ Gamma(lambda_1, lambda_2)``.
    Each iteration computes the posterior ``Σ = (diag(lam) + alpha RᵀR)⁻¹`` and
    ``mu = alpha Σ Rᵀ qb`` over the kept coefficients, then updates
    ``gamma_j = 1 - lam_j Σ_jj``, ``lam_j = (gamma_j + 2 lambda_1) / (mu_j^2 + 2 lambda_2)``,
    ``alpha = (nrows - sum gamma + 2 alpha_1) / (|R mu - qb|^2 + rnorm2 + 2 alpha_2)``, and prunes
    (fixes at 0) coefficients whose precision ``lam_j`` exceeds ``threshold_lambda``; it stops when
    ``sum |mu - mu_old| < 1e-3`` or after 300 iterations (scikit-learn ``ARDRegression`` defaults,
    as FitSNAP uses it), then recomputes the posterior with the final hyper-parameters.

    Hyper-priors, as FitSNAP passes them to ``ARDRegression``: ``alpha_1 = alpha_2 = alphabig``,
    ``lambda_1 = lambda_2 = lambdasmall`` (FitSNAP reads ``alphasmall`` and ``lambdabig`` but does
    not use them; neither is used here), ``threshold_lambda`` from ``[ARD]``.

    Needs ``nrows`` (ValueError otherwise) and uses ``rnorm2``. Initial noise precision
    ``alpha = nrows / (|qb|^2 + rnorm2)`` — the inverse mean square of wb (scikit-learn starts from
    the inverse variance, which needs the mean of wb, lost by the compression); initial
    ``lam = 1``. ``covariance``: n x n, the posterior covariance Σ on the kept coefficients and
    ``1/lam_j`` (their prior variance, below ``1/threshold_lambda``) on the diagonal for pruned
    ones: symmetric positive definite. ``info``: ``alpha`` (noise precision), ``lambda``,
    ``kept`` (bool mask), ``n_iter``, ``converged``, ``hyperpriors``, ``residual``.
    """
    R, qb = _check("ARD", R, qb)
    if nrows is None:
        raise ValueError("ARD solver: needs nrows (the number of weighted training rows) for the "
                         "noise-precision update; call solve(R, qb, settings, nrows=..., "
                         "rnorm2=...)")
    nrows = int(nrows)
    if nrows < 1:
        raise ValueError(f"ARD solver: nrows must be >= 1, got {nrows}")
    rnorm2 = float(rnorm2)
    if not np.isfinite(rnorm2) or rnorm2 < 0:
        raise ValueError(f"ARD solver: rnorm2 must be finite and >= 0, got {rnorm2}")
    sec = _section(settings, "ard")
    a1 = a2 = float(sec.alphabig)
    l1 = l2 = float(sec.lambdasmall)
    thresh = float(sec.threshold_lambda)
    n = R.shape[0]

    eps = np.finfo(float).eps
    alpha = nrows / (float(qb @ qb) + rnorm2 + eps)
    lam = np.ones(n)
    keep = np.ones(n, bool)
    mu = np.zeros(n)
    converged = False
    it = 0
    with np.errstate(divide="ignore", over="ignore"):
        for it in range(1, ARD_MAX_ITER + 1):
            if not keep.any():
                break
            old = mu.copy()
            mu_k, sigma = _ard_posterior(R, qb, keep, lam, alpha)
            mu = np.zeros(n)
            mu[keep] = mu_k
            rss = _residual(R, qb, mu, rnorm2)
            gamma = 1.0 - lam[keep] * np.diagonal(sigma)
            lam[keep] = (gamma + 2.0 * l1) / (mu_k * mu_k + 2.0 * l2)
            alpha = (nrows - gamma.sum() + 2.0 * a1) / (rss + 2.0 * a2)
            if not alpha > 0:  # more effective parameters than rows: keep alpha positive
                alpha = eps
            keep = keep & (lam < thresh)
            mu[~keep] = 0.0
            if it > 1 and np.abs(old - mu).sum() < ARD_TOL:
                converged = True
                break
    cov = np.zeros((n, n))
    if keep.any():
        mu_k, sigma = _ard_posterior(R, qb, keep, lam, alpha)
        mu = np.zeros(n)
        mu[keep] = mu_k
        cov[np.ix_(keep, keep)] = sigma
    else:
        mu = np.zeros(n)
    pruned = np.flatnonzero(~keep)
    cov[pruned, pruned] = 1.0 / lam[pruned]
    info = {"alpha": float(alpha), "lambda": lam.copy(), "kept": keep.copy(), "n_iter": it,
            "converged": converged, "nrows": nrows,
            "hyperpriors": {"alpha_1": a1, "alpha_2": a2, "lambda_1": l1, "lambda_2": l2,
                            "threshold_lambda": thresh},
            "residual": _residual(R, qb, mu, rnorm2)}
    return SolveResult(mu, cov, info)


# ----------------------------------------------------------------------------------- plugin


@hookimpl
def mpisnap_solvers():
    linear = frozenset({"linear"})
    return [
        Solver("SVD", solve_svd, linear,
               "minimum-norm least squares (SVD of R, rcond 1e-13, as numpy lstsq)"),
        Solver("QR", solve_qr, linear, "back substitution with R (full column rank only)"),
        Solver("RIDGE", solve_ridge, linear, "L2-penalised least squares, [RIDGE] alpha"),
        Solver("LASSO", solve_lasso, linear,
               "L1-penalised least squares (coordinate descent), [LASSO] alpha, max_iter"),
        Solver("ARD", solve_ard, linear,
               "automatic relevance determination with posterior covariance, [ARD]"),
    ]
