"""Bayesian linear regression on the compressed system, with one noise precision per row kind and
a Gaussian prior, both chosen by maximising the evidence (type-II maximum likelihood).

Model. For the weighted training rows of kind k (0 energy, 1 force, 2 stress; only rows of
weight w > 0 take part)::

    w_i (b_i − a_i β) ~ N(0, 1/α_k)       (row i of kind k)
    β_j ~ N(0, 1/(λ s_j²))                (every other column j)
    β_j ~ N(0, 1/(ε s_j²)), ε = 1e-10     (the per-element constant columns, named ``El:B0``:
                                           practically flat, so β0 of several eV is not shrunk)

so the row weights are relative precisions within a kind, and each kind has its own noise
level. The prior is on *standardised* columns: ``s_j² = Σ_k ‖R_k e_j‖² / Σ_k n_k`` is the mean
square of column j over the weighted training rows, so the prior, and therefore the fit, does not
depend on the units or scale of a descriptor column. Columns that are zero in every training row
are left out (coefficient 0, no variance).

Compressed form. With the per-kind compressed rows ``[R_k | qb_k]`` and ``ρ_k`` (the part of the
residual outside the range of R_k; :mod:`mpisnap.pipeline.compression`), the posterior precision
is ``H = Σ_k α_k R_kᵀR_k + Λ``. It is never formed: its triangular factor T (``H = TᵀT``) is the
R factor of the stacked, scaled triangles ``[√α_k [R_k | qb_k]; Λ^½ | 0]`` (LAPACK ``tpqrt``,
:mod:`mpisnap.uq.linalg`), which also gives ``z = Tμ`` and the minimum ``ρ²`` of
``Σ_k α_k ‖w_k(b_k − A_kβ)‖² + βᵀΛβ``. Then ``μ = T⁻¹z``, ``Σ = T⁻¹T⁻ᵀ``, and (N = Σ n_k)::

    log E = ½ Σ_k n_k log α_k + ½ Σ_j log Λ_jj − Σ_j log T_jj − ½ ρ² − ½ N log 2π

(up to the constant Σ log w_i). Its gradient in ``θ = (log α_k, log λ)`` is
``½ (n_k − γ_k − α_k E_k)`` with ``γ_k = α_k ‖R_k T⁻¹‖_F²`` (the parameters kind k determines)
and ``E_k = ‖R_kμ − qb_k‖² + ρ_k²``, and ``½ (p − γ_λ − λ μᵀDμ)`` over the p prior columns
(``D = diag(s_j²)``, ``γ_λ = λ tr(ΣD)``). At the optimum these are MacKay's fixed points
``α_k = (n_k − γ_k)/E_k``, ``λ = (p − γ_λ)/μᵀDμ``.

Optimisation (:func:`optimise`): three MacKay updates from ``α_k = n_k/‖w_k b_k‖²`` and a weak
prior (``λ s_j²`` 1e-6 of the data precision ``Σ_k α_k ‖R_k e_j‖²`` of the median column), then
L-BFGS-B on −log E in θ, then Newton steps with a finite-difference Hessian of the exact
gradient (taken once) until the step is below 1e-10, so the optimum does not depend on the path
taken (the same hyper-parameters, to round-off, for any number of ranks). Every evaluation costs
O(K n³) for n columns and K kinds, whatever the number of rows (seconds each at 1,600 columns,
so the whole optimisation can take minutes: with ``progress`` a tqdm display on stderr counts
the L-BFGS iterations and Newton steps and shows the current log-evidence). The Hessian also
gives Laplace standard errors of the noise levels.

Label noise. The predictive noise of a row of kind k with weight w is the model's own
``1/(α_k w²)`` (the weights are relative precisions). A new configuration has no weight: its
labels get the noise of a typical training row of their kind, ``v_k = 1/(α_k w̄_k²)`` with
``w̄_k`` the geometric mean of the kind's weights (``1/(α_k w²)`` when a kind has one weight).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .linalg import inverse_triangle, row_variances, small_blas, stack_triangles, triangle_of

__all__ = ["KIND_NAMES", "FLAT_PRECISION", "Problem", "Hyper", "Posterior", "evidence",
           "optimise", "posterior", "leave_one_out"]

KIND_NAMES = ("energy", "force", "stress")
#: Prior precision (standardised units) of the constant columns: practically flat.
FLAT_PRECISION = 1e-10
#: Finite-difference step (in log α, log λ) of the Newton polish.
_FD_STEP = 1e-5
#: Search box around the starting point, in log α and log λ.
_BOX = 40.0


def augmented(R: np.ndarray, qb: np.ndarray, rnorm2: float) -> np.ndarray:
    """The (n+1) × (n+1) triangle ``[[R, qb], [0, ρ]]`` of a compressed system."""
    n = R.shape[0]
    aug = np.zeros((n + 1, n + 1))
    aug[:n, :n] = R
    aug[:n, n] = qb
    aug[n, n] = math.sqrt(max(float(rnorm2), 0.0))
    return aug


def typical_weight2(log_weight2: float, nrows: int) -> float:
    """The typical squared weight of ``nrows`` rows from their Σ log w²: the geometric mean."""
    return math.exp(log_weight2 / nrows)


@dataclass(frozen=True)
class Problem:
    """The regression restricted to its active columns (``active``, of n): per kind the
    augmented triangle over the active columns (``aug[k]``, (p+1)²), the number of rows with
    weight > 0 (``nrows[k]``) and their typical squared weight (``typical_w2[k]``, the geometric
    mean of w²: the label noise of a typical row is ``1/(α_k typical_w2[k])``); ``flat`` (p,)
    marks the constant columns; ``s2`` (p,) the prior column scales."""

    aug: Mapping[int, np.ndarray]
    nrows: Mapping[int, int]
    typical_w2: Mapping[int, float]
    active: np.ndarray
    flat: np.ndarray
    s2: np.ndarray

    @property
    def kinds(self) -> tuple[int, ...]:
        return tuple(sorted(self.aug))

    @property
    def p(self) -> int:
        return int(self.flat.size)

    @property
    def n(self) -> int:
        return int(self.active.size)

    def restrict(self, aug: np.ndarray) -> np.ndarray:
        """An (n+1)² augmented triangle over all columns → over the active ones."""
        if self.active.all():
            return np.asarray(aug, dtype=float)
        cols = np.r_[np.flatnonzero(self.active), self.n]
        return triangle_of(np.asarray(aug, dtype=float)[:, cols])

    def prior(self, lam: float) -> np.ndarray:
        """Prior precision of each active column: ``λ s_j²``, ``ε s_j²`` for constant columns."""
        return np.where(self.flat, FLAT_PRECISION, lam) * self.s2

    @classmethod
    def build(cls, aug: Mapping[int, np.ndarray], nrows: Mapping[int, int],
              typical_w2: Mapping[int, float], flat_columns: np.ndarray) -> "Problem":
        """From per-kind augmented triangles over all n columns (kinds without rows left out)."""
        kinds = sorted(k for k in aug if nrows.get(k, 0) > 0)
        if not kinds:
            raise ValueError("no training rows with weight > 0")
        n = aug[kinds[0]].shape[0] - 1
        colsq = np.zeros(n)
        for k in kinds:
            colsq += np.einsum("ij,ij->j", aug[k][:n, :n], aug[k][:n, :n])
        ntot = sum(int(nrows[k]) for k in kinds)
        scale = colsq.max() if colsq.size else 0.0
        active = colsq > 1e-28 * max(scale, 1e-300)
        s2 = colsq[active] / ntot
        flat = np.asarray(flat_columns, dtype=bool)[active]
        probe = cls({}, {}, {}, active, flat, s2)
        return cls({k: probe.restrict(aug[k]) for k in kinds},
                   {k: int(nrows[k]) for k in kinds}, {k: float(typical_w2[k]) for k in kinds},
                   active, flat, s2)


@dataclass(frozen=True)
class Hyper:
    """Evidence-optimised hyper-parameters: ``alpha`` noise precision per kind (of the weighted
    rows), ``lam`` the prior precision of the standardised columns."""

    alpha: Mapping[int, float]
    lam: float

    def theta(self, kinds: Sequence[int]) -> np.ndarray:
        return np.log(np.r_[[self.alpha[k] for k in kinds], self.lam])

    @classmethod
    def of(cls, kinds: Sequence[int], theta: np.ndarray) -> "Hyper":
        e = np.exp(np.asarray(theta, dtype=float))
        return cls({k: float(e[i]) for i, k in enumerate(kinds)}, float(e[-1]))


@dataclass(frozen=True)
class Posterior:
    """A Gaussian posterior over the n coefficients: ``mean`` (n,), and over the active columns
    the upper-triangular factor ``factor`` (p × p) with ``Σ = F Fᵀ``; ``nugget`` is added to the
    variance of every coefficient (FitSNAP's ``cov_nugget``)."""

    mean: np.ndarray
    factor: np.ndarray
    active: np.ndarray
    nugget: float = 0.0
    log_evidence: float = float("nan")
    extras: dict = field(default_factory=dict, compare=False)

    def variance(self, A: np.ndarray) -> np.ndarray:
        """``aᵀΣa`` (+ nugget ``|a|²``) of each row ``a`` of ``A`` (m × n): the model variance of
        the prediction ``a·β``. Costs m p² flops (one triangular product)."""
        A = np.asarray(A, dtype=float)
        v = row_variances(A[:, self.active] if not self.active.all() else A, self.factor,
                          triangular=True)
        if self.nugget:
            v = v + self.nugget * np.einsum("ij,ij->i", A, A)
        return v

    def covariance(self) -> np.ndarray:
        """Σ (n × n; zero rows and columns for inactive columns), nugget included."""
        n = self.mean.size
        cov = np.zeros((n, n))
        idx = np.flatnonzero(self.active)
        cov[np.ix_(idx, idx)] = self.factor @ self.factor.T
        cov[np.diag_indices(n)] += self.nugget
        return cov

    def full_factor(self) -> np.ndarray:
        """F (n × p) with ``Σ = F Fᵀ`` (+ nugget I): the factor padded with zero rows."""
        F = np.zeros((self.mean.size, self.factor.shape[1]))
        F[self.active] = self.factor
        return F

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` coefficient vectors drawn from N(mean, Σ) (count × n)."""
        F = self.full_factor()
        out = self.mean + rng.standard_normal((count, F.shape[1])) @ F.T
        if self.nugget:
            out = out + math.sqrt(self.nugget) * rng.standard_normal((count, self.mean.size))
        return out


def _prior_triangle(problem: Problem, lam: float) -> np.ndarray:
    p = problem.p
    P = np.zeros((p + 1, p + 1))
    P[np.arange(p), np.arange(p)] = np.sqrt(problem.prior(lam))
    return P


def _solve(T_full: np.ndarray, problem: Problem, nugget: float = 0.0,
           log_evidence: float = float("nan")) -> Posterior:
    p = problem.p
    Tinv = inverse_triangle(T_full[:p, :p])
    mu = np.zeros(problem.n)
    mu[problem.active] = Tinv @ T_full[:p, p]
    return Posterior(mu, Tinv, problem.active, nugget, log_evidence)


def posterior(problem: Problem, hyper: Hyper, triangles: Sequence[tuple[float, np.ndarray]]
              | None = None, *, nugget: float = 0.0) -> Posterior:
    """The posterior for ``hyper``: of every kind's rows, or of the given (scale, augmented
    triangle over the active columns) pairs (e.g. all folds but one), with the prior."""
    if triangles is None:
        triangles = [(math.sqrt(hyper.alpha[k]), problem.aug[k]) for k in problem.kinds]
    T_full = stack_triangles(list(triangles) + [(1.0, _prior_triangle(problem, hyper.lam))])
    return _solve(T_full, problem, nugget)


def evidence(problem: Problem, theta: np.ndarray):
    """``(log E, gradient in θ, posterior, details)`` at ``θ = (log α_k …, log λ)`` (kinds in
    ``problem.kinds`` order); see the module docstring."""
    kinds = problem.kinds
    hyper = Hyper.of(kinds, theta)
    p = problem.p
    prec = problem.prior(hyper.lam)
    T_full = stack_triangles([(math.sqrt(hyper.alpha[k]), problem.aug[k]) for k in kinds]
                             + [(1.0, _prior_triangle(problem, hyper.lam))])
    diag = np.abs(np.diagonal(T_full)[:p])
    if p and not np.all(diag > 0):
        raise np.linalg.LinAlgError("singular posterior precision")
    post = _solve(T_full, problem)
    Tinv = post.factor
    mu = post.mean[problem.active]
    x = np.r_[mu, -1.0]
    ntot = sum(problem.nrows[k] for k in kinds)
    rho2 = float(T_full[p, p]) ** 2
    logE = (0.5 * sum(problem.nrows[k] * math.log(hyper.alpha[k]) for k in kinds)
            + 0.5 * float(np.sum(np.log(prec))) - float(np.sum(np.log(diag))) - 0.5 * rho2
            - 0.5 * ntot * math.log(2.0 * math.pi))
    grad = np.zeros(len(kinds) + 1)
    gammas, resid = {}, {}
    for i, k in enumerate(kinds):
        a = hyper.alpha[k]
        G = row_variances(problem.aug[k][:p, :p], Tinv, triangular=True) if p else np.zeros(0)
        gammas[k] = a * float(np.sum(G))  # α_k ‖R_k T⁻¹‖_F²
        r = problem.aug[k] @ x
        resid[k] = float(r @ r)
        grad[i] = 0.5 * (problem.nrows[k] - gammas[k] - a * resid[k])
    prior_cols = ~problem.flat
    dsig = np.einsum("ij,ij->i", Tinv, Tinv)
    gam_l = hyper.lam * float(np.sum(problem.s2[prior_cols] * dsig[prior_cols]))
    quad = float(np.sum(problem.s2[prior_cols] * mu[prior_cols] ** 2))
    grad[-1] = 0.5 * (int(prior_cols.sum()) - gam_l - hyper.lam * quad)
    details = {"gamma": gammas, "residual": resid, "gamma_prior": gam_l, "prior_quad": quad}
    post = Posterior(post.mean, post.factor, post.active, 0.0, logE)
    return logE, grad, post, details


def _mackay(problem: Problem, theta: np.ndarray, details: dict) -> np.ndarray:
    kinds = problem.kinds
    new = theta.copy()
    for i, k in enumerate(kinds):
        num = max(problem.nrows[k] - details["gamma"][k], 1e-3 * problem.nrows[k])
        new[i] = math.log(num / max(details["residual"][k], 1e-300))
    npri = int((~problem.flat).sum())
    if npri:
        num = max(npri - details["gamma_prior"], 1e-3 * npri)
        new[-1] = math.log(num / max(details["prior_quad"], 1e-300))
    return new


def optimise(problem: Problem, *, tol: float = 1e-10, max_newton: int = 12,
             progress: bool = False):
    """``(hyper, posterior, details)``: the evidence-optimal :class:`Hyper`, its posterior and a
    dict (``log_evidence``, ``theta``, ``gradient``, ``gamma`` per kind,
    ``effective_parameters``, ``theta_std`` Laplace standard errors of θ (NaN where unknown),
    ``evaluations``, ``converged``, ``at_bound``). ``progress``: a tqdm display on stderr, one
    step per L-BFGS iteration or Newton step, with the current log-evidence (the caller decides:
    rank 0 of a fit that shows progress). See the module docstring."""
    bar = _EvidenceBar() if progress else None
    try:
        with small_blas(problem.p):
            return _optimise(problem, tol, max_newton, bar)
    finally:
        if bar is not None:
            bar.close()


class _EvidenceBar:
    """tqdm counter of the optimiser's iterations, the current log-evidence beside it."""

    def __init__(self) -> None:
        import sys

        from tqdm import tqdm

        self.bar = tqdm(desc="evidence", unit="it", file=sys.stderr, leave=False)

    def step(self, log_evidence: float) -> None:
        self.bar.set_postfix_str(f"log E = {log_evidence:.10g}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _optimise(problem: Problem, tol: float, max_newton: int, bar: _EvidenceBar | None = None):
    from scipy.optimize import minimize

    kinds = problem.kinds
    nk = len(kinds)
    theta = np.zeros(nk + 1)
    for i, k in enumerate(kinds):
        scale2 = float(problem.aug[k][:, -1] @ problem.aug[k][:, -1])
        theta[i] = math.log(problem.nrows[k] / max(scale2, 1e-300))
    # a weak prior to start from: 1e-6 of the data's precision of a typical column (starting
    # from a strong one can end in the "everything is noise" fixed point β = 0, λ → ∞)
    p = problem.p
    data = np.zeros(p)
    for i, k in enumerate(kinds):
        R = problem.aug[k][:p, :p]
        data += math.exp(theta[i]) * np.einsum("ij,ij->j", R, R)
    prior_cols = ~problem.flat
    ratio = data[prior_cols] / problem.s2[prior_cols] if prior_cols.any() else np.ones(1)
    theta[-1] = math.log(1e-6 * max(float(np.median(ratio)), 1e-300))
    count = [0]
    cache: dict[bytes, tuple] = {}

    def ev(th):
        key = np.asarray(th, dtype=float).tobytes()
        if key not in cache:
            count[0] += 1
            cache[key] = evidence(problem, np.asarray(th, dtype=float))
        return cache[key]

    for _ in range(3):
        theta = _mackay(problem, theta, ev(theta)[3])
    lo, hi = theta - _BOX, theta + _BOX

    scale = max(abs(ev(theta)[0]), 1.0)

    def f(th):
        logE, g, _, _ = ev(th)
        return -logE / scale, -g / scale

    def iteration(intermediate_result):  # scipy passes the iterate and its f = −log E / scale
        bar.step(-float(intermediate_result.fun) * scale)

    res = minimize(f, theta, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                   options={"maxiter": 200, "ftol": 1e-12, "gtol": 1e-8},
                   callback=iteration if bar is not None else None)
    theta = np.clip(res.x, lo, hi)
    # Newton polish: a finite-difference Hessian of the exact gradient at the L-BFGS point, then
    # Newton steps with it until a step is below tol (each costs one evaluation; a Hessian
    # error of ~1e-5 only slows the convergence, it does not move the fixed point g = 0)
    logE, g, _, _ = ev(theta)
    free = (theta > lo + 1e-8) & (theta < hi - 1e-8)
    hess = np.zeros((nk + 1, nk + 1))
    for j in range(nk + 1):
        e = np.zeros(nk + 1)
        e[j] = _FD_STEP
        hess[:, j] = (ev(theta + e)[1] - g) / _FD_STEP
    hess = 0.5 * (hess + hess.T)
    Hf = hess[np.ix_(free, free)]
    converged = not free.any()
    if free.any() and np.all(np.linalg.eigvalsh(Hf) < 0):
        for _ in range(max_newton):
            step = np.zeros(nk + 1)
            step[free] = -np.linalg.solve(Hf, g[free])
            big = np.abs(step).max()
            if big > 1.0:
                step *= 1.0 / big
            cand = np.clip(theta + step, lo, hi)
            new_logE, new_g, _, _ = ev(cand)
            if new_logE < logE - 1e-12 * max(abs(logE), 1.0):
                break
            theta, logE, g = cand, new_logE, new_g
            if bar is not None:
                bar.step(logE)
            if big < tol:
                converged = True
                break
    logE, g, post, details = ev(theta)
    theta_std = np.full(nk + 1, np.nan)
    try:
        d = np.diagonal(np.linalg.inv(-hess))
        theta_std = np.where(d > 0, np.sqrt(np.abs(d)), np.nan)
    except np.linalg.LinAlgError:
        pass
    hyper = Hyper.of(kinds, theta)
    info = {"log_evidence": logE, "theta": theta, "gradient": g, "gamma": details["gamma"],
            "gamma_prior": details["gamma_prior"],
            "effective_parameters": float(sum(details["gamma"].values())),
            "theta_std": theta_std, "evaluations": count[0], "converged": converged,
            "at_bound": bool(np.any((theta <= lo + 1e-8) | (theta >= hi - 1e-8)))}
    return hyper, post, info


def leave_one_out(triangles: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    """For triangles F_0 … F_{K−1} (None: empty), the R factor of all but F_f, for each f
    (None when nothing is left), from prefix and suffix stacks (2K stackings instead of K²)."""
    K = len(triangles)
    prefix: list = [None] * (K + 1)
    suffix: list = [None] * (K + 1)
    for f in range(K):
        prefix[f + 1] = _join(prefix[f], triangles[f])
    for f in range(K - 1, -1, -1):
        suffix[f] = _join(triangles[f], suffix[f + 1])
    return [_join(prefix[f], suffix[f + 1]) for f in range(K)]


def _join(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return stack_triangles([(1.0, a), (1.0, b)])
