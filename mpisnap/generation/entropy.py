"""Entropy of a cloud of per-atom descriptor vectors: whitening, the Kozachenko–Leonenko
estimator (reporting) and two smooth estimators with analytic gradients (optimising).

Per centre element ``e`` the descriptors ``B`` (one row per atom) are whitened by a fixed affine
map ``x = (B - μ) W`` (:class:`Whitening`: the mean and the regularised inverse square root of
the covariance of a *fixed* set — the initial structures, or the reference set). The entropy of
the whole set is the sum over elements of the entropy of each element's whitened cloud.

Estimators, for a cloud of M points in D dimensions (distances ``d_ij`` between points):

* **Kozachenko–Leonenko** (k = 1; Kozachenko & Leonenko, Probl. Inf. Transm. 23, 95 (1987);
  Kraskov, Stögbauer & Grassberger, Phys. Rev. E 69, 066138 (2004), eq. 20)::

      H_KL = ψ(M) − ψ(1) + log V_D + (D/M) Σ_i log ε_i,     V_D = π^{D/2} / Γ(D/2 + 1)

  with ``ε_i`` the distance from point i to its nearest neighbour (:func:`kl_entropy`, using
  :class:`scipy.spatial.cKDTree`). Not differentiable where the nearest neighbour changes; used
  for reporting.
* **gaussian** — the leave-one-out Gaussian kernel density (resubstitution) estimator (Ahmad &
  Lin, IEEE Trans. Inf. Theory 22, 372 (1976); Beirlant et al., Int. J. Math. Stat. Sci. 6, 17
  (1997))::

      H_G = −(1/M) Σ_i log[(φ_i + φ_0) / ((M − 1)(2π h²)^{D/2})],   φ_i = Σ_{j≠i} exp(−d_ij²/2h²)

  with the bandwidth ``h`` half the median nearest-neighbour distance of the cloud (held fixed
  while optimising; a wider kernel would let the distant bulk of the cloud, not the neighbours,
  decide each point's density) and a floor ``φ_0 = exp(−CUT²/2)``: a point farther than
  ``CUT·h`` from every other gains nothing more. At so small a bandwidth its value is biased high
  (only its changes matter to the optimiser; Kozachenko–Leonenko is the reported number).
* **softmin** — the Kozachenko–Leonenko estimator with each nearest-neighbour distance replaced by
  a smooth minimum, the power mean ``m_i = (Σ_{j≠i} d_ij^{−p})^{−1/p} ≤ min_j d_ij`` (p = 2D,
  held fixed); it tends to ``H_KL`` as p grows.

The optimiser moves the points of one configuration at a time with every other point held at its
value at the start of the outer iteration (:class:`Snapshot`, :meth:`Snapshot.config_terms`):
only the terms that configuration changes are evaluated, with their gradient with respect to its
points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Whitening", "kl_entropy", "smooth_entropy", "Snapshot", "ConfigTerms", "CUT",
           "WHITEN_FLOOR"]

#: Saturation of the gaussian estimator: farther than CUT bandwidths from all others gains nothing.
CUT = 5.0
#: Eigenvalues of the whitening covariance are floored at this fraction of the largest one.
WHITEN_FLOOR = 1e-3
#: Nearest-neighbour distances below this (whitened units) count as this (duplicate points).
EPS_FLOOR = 1e-8
#: softmin: power p per dimension.
SOFTMIN_POWER_PER_DIM = 2.0
#: gaussian: the bandwidth as a fraction of the median nearest-neighbour distance.
BANDWIDTH_FACTOR = 0.5
#: Rows of the distance blocks (bounds memory to BLOCK × M doubles).
BLOCK = 512


@dataclass(frozen=True)
class Whitening:
    """``x = (B - mean) @ matrix``: the mean and ``U Λ^{-1/2}`` of the covariance ``U Λ Uᵀ`` of a
    fixed set, eigenvalues floored at :data:`WHITEN_FLOOR` of the largest (so that nearly
    constant directions are not amplified into noise)."""

    mean: np.ndarray
    matrix: np.ndarray

    @classmethod
    def fit(cls, B: np.ndarray, floor: float = WHITEN_FLOOR) -> "Whitening":
        B = np.asarray(B, dtype=float)
        mean = B.mean(axis=0)
        if len(B) < 2:
            return cls(mean, np.eye(B.shape[1]))
        C = np.cov(B, rowvar=False).reshape(B.shape[1], B.shape[1])
        lam, U = np.linalg.eigh(C)
        top = float(lam.max())
        if not top > 0:
            return cls(mean, np.eye(B.shape[1]))
        lam = np.maximum(lam, floor * top)
        return cls(mean, U / np.sqrt(lam))

    def __call__(self, B: np.ndarray) -> np.ndarray:
        return (np.asarray(B, dtype=float) - self.mean) @ self.matrix

    def pullback(self, G: np.ndarray) -> np.ndarray:
        """Gradient with respect to the whitened points -> with respect to B."""
        return G @ self.matrix.T


def _log_unit_ball(D: int) -> float:
    return 0.5 * D * math.log(math.pi) - math.lgamma(0.5 * D + 1.0)


def _kl_constant(M: int, D: int) -> float:
    from scipy.special import digamma

    return float(digamma(M) - digamma(1)) + _log_unit_ball(D)


def nn_distances(X: np.ndarray) -> np.ndarray:
    """Distance from each point to its nearest other point (:class:`scipy.spatial.cKDTree`)."""
    from scipy.spatial import cKDTree

    X = np.asarray(X, dtype=float)
    if len(X) < 2:
        return np.full(len(X), np.inf)
    d, _ = cKDTree(X).query(X, k=2)
    return d[:, 1]


def kl_entropy(X: np.ndarray) -> float:
    """The Kozachenko–Leonenko (k = 1) entropy estimate of the points ``X`` (M, D), in nats
    (module docstring); nan for fewer than 2 points."""
    X = np.asarray(X, dtype=float)
    M, D = X.shape
    if M < 2:
        return float("nan")
    eps = np.maximum(nn_distances(X), EPS_FLOOR)
    return _kl_constant(M, D) + D * float(np.mean(np.log(eps)))


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of A and B (exact for identical rows: clipped at 0)."""
    u = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(u, 0.0)


class _Kernel:
    """The pair term of a smooth estimator: ``g(u)`` of the squared distance u for a point whose
    per-point constant is ``c`` (rows), its derivative ``dg/du``, and ``F(φ)``, ``F'(φ)`` of the
    per-point sum ``φ``. The entropy (up to constants) is ``Σ_i F(φ_i)``."""

    def g(self, u, c):  # pragma: no cover - interface
        raise NotImplementedError

    def F(self, phi, c):  # pragma: no cover - interface
        raise NotImplementedError


class _Gaussian(_Kernel):
    def __init__(self, h: float) -> None:
        self.h = h
        self.a = 1.0 / (2.0 * h * h)
        self.phi0 = math.exp(-0.5 * CUT * CUT)

    def g(self, u, c):
        g = np.exp(-self.a * u)
        return g, -self.a * g

    def F(self, phi, c):
        x = np.maximum(phi, 0.0) + self.phi0
        return -np.log(x), -1.0 / x

    def constant(self, M: int, D: int) -> float:  # H = mean F + constant
        return math.log(max(M - 1, 1)) + 0.5 * D * math.log(2 * math.pi * self.h * self.h)


class _Softmin(_Kernel):
    """Power mean ``m = (Σ d^-p)^(-1/p)``, stabilised per point by its snapshot nearest-neighbour
    distance c: ``φ_i = Σ_j (c_i/d_ij)^p``, ``log m_i = log c_i − (1/p) log φ_i``."""

    def __init__(self, p: float, D: int, eta: float = 1e-9) -> None:
        self.p, self.D, self.eta2 = p, D, eta * eta

    def g(self, u, c):
        u = u + self.eta2
        logr = np.minimum(0.5 * self.p * (2.0 * np.log(c) - np.log(u)), 300.0)
        g = np.exp(logr)
        return g, -0.5 * self.p * g / u

    def F(self, phi, c):
        x = np.maximum(phi, 0.0) + 1e-300
        return self.D * (np.log(c) - np.log(x) / self.p), -self.D / (self.p * x)

    def constant(self, M: int, D: int) -> float:
        return _kl_constant(M, D)


@dataclass
class ConfigTerms:
    """The part of the objective one configuration changes (see :meth:`Snapshot.config_terms`):
    the other points ``O``, their sums without this configuration ``phi_O``, their constants
    ``c_O`` and the constants ``c_P`` of the configuration's own points."""

    kernel: _Kernel
    O: np.ndarray
    phi_O: np.ndarray
    c_O: np.ndarray
    c_P: np.ndarray
    base: float = 0.0  # Σ_o F(phi_O): subtracted so the value is the change this config makes

    def value_and_grad(self, Y: np.ndarray) -> tuple[float, np.ndarray]:
        """``S_c(Y) = Σ_{i∈P} F(φ_i) + Σ_{o∈O} [F(φ_o) − F(φ_o without P)]`` for the points ``Y``
        (n, D) of the configuration, and ``∂S_c/∂Y``."""
        k = self.kernel
        n = len(Y)
        if n == 0:
            return 0.0, np.zeros_like(Y)
        U_PO = _sqdist(Y, self.O)
        Gr, Gur = k.g(U_PO, self.c_P[:, None])          # received by P
        Gc, Guc = k.g(U_PO, self.c_O[None, :])          # received by O
        U_PP = _sqdist(Y, Y)
        Gp, Gup = k.g(U_PP, self.c_P[:, None])
        np.fill_diagonal(Gp, 0.0)
        np.fill_diagonal(Gup, 0.0)
        phi_P = Gr.sum(1) + Gp.sum(1)
        phi_O = self.phi_O + Gc.sum(0)
        FP, dFP = k.F(phi_P, self.c_P)
        FO, dFO = k.F(phi_O, self.c_O)
        value = float(FP.sum() + FO.sum() - self.base)
        B = dFP[:, None] * Gur + dFO[None, :] * Guc
        A = dFP[:, None] * Gup
        A = A + A.T
        grad = 2.0 * ((B.sum(1) + A.sum(1))[:, None] * Y - B @ self.O - A @ Y)
        return value, grad


@dataclass
class Snapshot:
    """One element's cloud at the start of an outer iteration: the whitened points ``X`` (M, D),
    the configuration each belongs to (``owner``; -1 for reference points) and, for the smooth
    ``estimator``, its fixed scale and the per-point sums ``phi``."""

    X: np.ndarray
    owner: np.ndarray
    estimator: str
    nn: np.ndarray = field(init=False)
    kernel: _Kernel = field(init=False)
    c: np.ndarray = field(init=False)
    phi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=float)
        self.owner = np.asarray(self.owner)
        M, D = self.X.shape
        self.nn = np.maximum(nn_distances(self.X), EPS_FLOOR) if M >= 2 else np.ones(M)
        finite = self.nn[np.isfinite(self.nn)]
        scale = float(np.median(finite)) if len(finite) else 1.0
        if self.estimator == "gaussian":
            self.kernel = _Gaussian(max(BANDWIDTH_FACTOR * scale, EPS_FLOOR))
            self.c = np.ones(M)
        elif self.estimator == "softmin":
            self.kernel = _Softmin(SOFTMIN_POWER_PER_DIM * D, D)
            self.c = np.where(np.isfinite(self.nn), self.nn, scale)
        else:
            raise ValueError(f"unknown estimator {self.estimator!r} (gaussian or softmin)")
        self.phi = np.zeros(M)
        for s in range(0, M, BLOCK):
            Xs = self.X[s:s + BLOCK]
            G, _ = self.kernel.g(_sqdist(Xs, self.X), self.c[s:s + BLOCK, None])
            idx = np.arange(s, s + len(Xs))
            G[idx - s, idx] = 0.0
            self.phi[s:s + BLOCK] = G.sum(1)

    @property
    def M(self) -> int:
        return len(self.X)

    def smooth_entropy(self) -> float:
        """The smooth estimate of this snapshot's entropy (nats)."""
        M, D = self.X.shape
        if M < 2:
            return float("nan")
        F, _ = self.kernel.F(self.phi, self.c)
        return float(np.mean(F)) + self.kernel.constant(M, D)

    def config_terms(self, config: int) -> ConfigTerms:
        """The terms configuration ``config`` changes, with its own points taken out of the sums
        of the others."""
        mine = self.owner == config
        P = self.X[mine]
        O = self.X[~mine]
        c_O = self.c[~mine]
        phi_O = self.phi[~mine].copy()
        if len(P) and len(O):
            G, _ = self.kernel.g(_sqdist(P, O), c_O[None, :])
            phi_O -= G.sum(0)
            phi_O = np.maximum(phi_O, 0.0)
        base = float(self.kernel.F(phi_O, c_O)[0].sum()) if len(O) else 0.0
        return ConfigTerms(self.kernel, O, phi_O, c_O, self.c[mine], base)


def smooth_entropy(X: np.ndarray, estimator: str = "gaussian") -> float:
    """The smooth estimate (``gaussian`` or ``softmin``, module docstring) of the entropy of the
    points ``X`` (M, D), in nats, with the scale taken from ``X`` itself."""
    return Snapshot(np.asarray(X, dtype=float), np.zeros(len(X), int), estimator).smooth_entropy()
