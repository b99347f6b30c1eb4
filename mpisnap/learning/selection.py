"""Choosing the next structures to label: greedy optimal-design batches from the posterior every
rank holds, with low-rank updates of its triangular factor.

Notation: a candidate c has unweighted design rows ``A_c`` (its energy row, 3N force rows and,
for periodic cells, 6 stress rows, as the learned group would fit them); its *information rows*
are ``Z_c = f_k A_c`` with ``f_k = w_k √α_k`` per row kind k (the group's weight times the square
root of the noise precision), so labelling c turns the posterior precision ``P = RᵀR`` into
``P + Z_cᵀZ_c``. With ``G_c = Z_c R⁻¹`` (a triangular solve):

``dopt`` (D-optimal)
    gain ``log det(I + G_c G_cᵀ)``: the growth of log det P, i.e. the shrinkage of the volume of
    the coefficients' credible region.
``ivar`` (I-optimal, the default)
    gain ``tr((I + G_cG_cᵀ)⁻¹ G_c H G_cᵀ)`` with ``H = R⁻ᵀ M R⁻¹`` and ``M`` the mean of
    ``Z_jᵀZ_j`` over the energy and force rows of every candidate of the round: the reduction of
    the predictive variance of those rows (in units of their noise), averaged over the pool.
    Where D-optimality chases extreme structures that stretch the parameter space, I-optimality
    asks what helps predict the structures one will meet: on EMT pools it is the better rule
    (README, BENCHMARKS.md).
``maxstd``
    the candidate's largest calibrated model standard deviation of a force component (eV/Å;
    energy rows when forces are not fitted).
``random``
    a uniform draw (the baseline).

Each rule picks one candidate at a time (greedy); after each pick ``R`` is updated by the QR of
``[R; Z_c]`` (:func:`mpisnap.tsqr.combine`: a low-rank update, O(m n²)), so the next pick knows
about the previous ones. Both gains are evaluated in the smaller of the candidate's row space
(m × m) and the coefficient space (n × n), by Cholesky factors. ``cost_weighting`` divides the
ivar/dopt gains by the candidate's number of atoms.

In parallel every rank scores its own candidates against the same R; the best of each rank
are exchanged (allgather of a few numbers) and the winner's ``Z_c`` is broadcast by its owner.
Gains within :data:`TIE` (relative) of the best are ties, broken by the lower candidate index,
so the choice does not depend on the rank count (R itself differs between rank counts by
round-off only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from ..tsqr import combine

__all__ = ["CRITERIA", "TIE", "Candidates", "select", "force_std", "dopt_gain", "ivar_gain"]

CRITERIA = ("ivar", "dopt", "maxstd", "random")
#: Relative tolerance under which two gains are a tie (broken by the lower candidate index).
TIE = 1e-9


@dataclass
class Candidates:
    """This rank's candidates: ``index`` their global indices (every rank's together are the
    candidates of the round, each index on exactly one rank), per candidate its unweighted rows
    ``rows`` (m, n) and their ``kinds`` (m,) (0 energy, 1 force, 2 stress), and ``natoms``."""

    index: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    natoms: list = field(default_factory=list)

    def add(self, index: int, rows: np.ndarray, kinds: np.ndarray, natoms: int) -> None:
        self.index.append(int(index))
        self.rows.append(np.asarray(rows, float))
        self.kinds.append(np.asarray(kinds, np.int8))
        self.natoms.append(int(natoms))

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, keep) -> "Candidates":
        """The candidates whose global index is in ``keep`` (a set)."""
        out = Candidates()
        for i, A, k, n in zip(self.index, self.rows, self.kinds, self.natoms):
            if i in keep:
                out.add(i, A, k, n)
        return out


def _whiten(R: np.ndarray, Z: np.ndarray) -> np.ndarray:
    if Z.shape[0] == 0:
        return np.zeros_like(Z)
    return solve_triangular(R, Z.T, trans="T", lower=False, check_finite=False).T


def _logdet_chol(S: np.ndarray) -> float:
    c, _ = cho_factor(S, lower=False, check_finite=False)
    return 2.0 * float(np.sum(np.log(np.diagonal(c))))


def dopt_gain(G: np.ndarray) -> float:
    """``log det(I + G Gᵀ)`` (= ``log det(I + GᵀG)``) of one candidate (reference version of
    the batched evaluation)."""
    m, n = G.shape
    if m == 0:
        return 0.0
    S = G @ G.T if m <= n else G.T @ G
    S[np.diag_indices_from(S)] += 1.0
    return _logdet_chol(S)


def ivar_gain(G: np.ndarray, H: np.ndarray) -> float:
    """``tr((I + G Gᵀ)⁻¹ G H Gᵀ)`` (= ``tr((I + K)⁻¹ K H)`` with ``K = GᵀG``) of one candidate
    (reference version of the batched evaluation)."""
    m, n = G.shape
    if m == 0:
        return 0.0
    if m <= n:
        S = G @ G.T
        S[np.diag_indices_from(S)] += 1.0
        T = G @ H @ G.T
        return float(np.trace(cho_solve(cho_factor(S, check_finite=False), T,
                                        check_finite=False)))
    K = G.T @ G
    S = K.copy()
    S[np.diag_indices_from(S)] += 1.0
    X = cho_solve(cho_factor(S, check_finite=False), K, check_finite=False)
    return float(np.einsum("ij,ji->", X, H))


#: Bytes of the stacked small matrices of one batch of candidates.
BATCH_BYTES = 32 << 20


class _Stacked:
    """The information rows of this rank's candidates, concatenated, and the candidates grouped
    by row count, so that gains are evaluated a batch of equal-shape matrices at a time (numpy's
    stacked linear algebra: the same arithmetic per candidate whatever the batch)."""

    def __init__(self, cands: Candidates, factors: np.ndarray) -> None:
        self.n = cands.rows[0].shape[1] if len(cands) else 0
        sizes = np.array([len(k) for k in cands.kinds], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.kind = (np.concatenate(cands.kinds) if len(cands) else np.zeros(0, np.int8))
        self.Z = (np.concatenate(cands.rows) * factors[self.kind][:, None] if len(cands)
                  else np.zeros((0, 0)))
        self.groups: dict[int, np.ndarray] = {}
        for m in sorted(set(sizes.tolist())):
            self.groups[m] = np.flatnonzero(sizes == m)

    def batches(self):
        """``(positions, rows)``: candidates of one row count, at most :data:`BATCH_BYTES` of
        stacked matrices; ``rows`` (C, m) the row indices into Z."""
        for m, cs in self.groups.items():
            k = max(m, self.n) if m <= self.n else self.n
            per = max(1, BATCH_BYTES // (8 * max(k * k, m * self.n) * 3))
            for s in range(0, len(cs), per):
                pos = cs[s:s + per]
                yield pos, self.offsets[pos][:, None] + np.arange(m)[None, :]


def _stacked_gains(st: _Stacked, G: np.ndarray, criterion: str, H) -> np.ndarray:
    out = np.zeros(len(st.offsets) - 1)
    n = st.n
    for pos, rows in st.batches():
        Gs = G[rows]                       # (C, m, n)
        m = Gs.shape[1]
        if m <= n:
            S = Gs @ Gs.transpose(0, 2, 1)  # (C, m, m)
        else:
            S = Gs.transpose(0, 2, 1) @ Gs  # K = GᵀG, (C, n, n)
        eye = np.eye(S.shape[1])
        if criterion == "dopt":
            L = np.linalg.cholesky(S + eye)
            out[pos] = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        elif m <= n:
            T = Gs @ H @ Gs.transpose(0, 2, 1)
            out[pos] = np.trace(np.linalg.solve(S + eye, T), axis1=1, axis2=2)
        else:
            X = np.linalg.solve(S + eye, S)
            out[pos] = np.einsum("cij,ji->c", X, H)
    return out


def _info_rows(A, kinds, factors) -> np.ndarray:
    return A * factors[kinds][:, None]


def force_std(cands: Candidates, posterior, kinds_fitted=(True, True, True)) -> np.ndarray:
    """Per local candidate, its largest calibrated model standard deviation of a force component
    (eV/Å), or of the energy (eV/atom) when forces are not fitted."""
    k = 1 if kinds_fitted[1] else 0
    out = np.zeros(len(cands))
    if not len(cands):
        return out
    A = np.concatenate(cands.rows)
    kind = np.concatenate(cands.kinds)
    G = posterior.whiten(A)
    var = np.where(kind == k, np.einsum("ij,ij->i", G, G), -1.0)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in cands.kinds])[:-1]])
    best = np.maximum.reduceat(var, offsets)
    return posterior.scale.get(k, 1.0) * np.sqrt(np.maximum(best, 0.0))


def _pick(comm, gains: np.ndarray, index: list) -> int:
    """The global index of the best gain over every rank (ties within :data:`TIE`: the lowest
    index); -1 when no rank has a candidate left."""
    if len(gains):
        best = float(np.max(gains))
        near = best - TIE * abs(best)
        mine = [(float(g), int(i)) for g, i in zip(gains, index) if g >= near]
    else:
        best, mine = -np.inf, []
    parts = comm.allgather((best, mine))
    top = max(p[0] for p in parts)
    if top == -np.inf:
        return -1
    near = top - TIE * abs(top)
    return min(i for p in parts for g, i in p[1] if g >= near)


def select(comm, cands: Candidates, posterior, factors, criterion: str, batch: int, *,
           rng: np.random.Generator | None = None, cost_weighting: bool = False,
           kinds_fitted=(True, True, True)) -> list[int]:
    """Choose ``batch`` candidates (global indices, in the order picked) by ``criterion``
    (module docstring). Collective: every rank passes its own candidates; all get the same
    answer. ``factors`` (3,): ``w_k √α_k`` per row kind; ``rng``: the generator of ``random``
    (identical on every rank)."""
    if criterion not in CRITERIA:
        raise ValueError(f"selection: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
    factors = np.asarray(factors, float)
    if criterion == "random":
        allidx = sorted(i for part in comm.allgather(list(cands.index)) for i in part)
        if rng is None:
            raise ValueError("random selection needs a random generator")
        order = rng.permutation(len(allidx))[:batch]
        return [allidx[j] for j in order]
    owner = {}
    for r, part in enumerate(comm.allgather(list(cands.index))):
        for i in part:
            owner[i] = r
    R = np.array(posterior.precision_r, float)
    st = _Stacked(cands, factors)
    M = None
    if criterion == "ivar":
        n = R.shape[0]
        ef = st.Z[st.kind != 2]
        M, count = comm.allreduce((ef.T @ ef, len(ef)),
                                  op=lambda a, b: (a[0] + b[0], a[1] + b[1]))
        M = M / max(count, 1)
    kf = 1 if kinds_fitted[1] else 0
    scale = posterior.scale.get(kf, 1.0)
    natoms = np.asarray(cands.natoms, float)
    index = np.asarray(cands.index, dtype=np.int64)
    picked: list[int] = []
    taken = np.zeros(len(cands), bool)
    H = None
    for _ in range(batch):
        G = _whiten(R, st.Z) if len(cands) else st.Z
        if criterion == "maxstd":
            var = np.where(st.kind == kf, np.einsum("ij,ij->i", G, G), -1.0)
            gains = (np.sqrt(np.maximum(np.maximum.reduceat(var, st.offsets[:-1]), 0.0))
                     * scale / max(factors[kf], 1e-300)) if len(cands) else np.zeros(0)
        else:
            if criterion == "ivar":
                Rinv = solve_triangular(R, np.eye(R.shape[0]), check_finite=False)
                H = Rinv.T @ M @ Rinv
                H = 0.5 * (H + H.T)
            gains = _stacked_gains(st, G, criterion, H)
            if cost_weighting:
                gains = gains / natoms
        live = ~taken
        choice = _pick(comm, gains[live], index[live].tolist())
        if choice < 0:
            break
        picked.append(choice)
        src = owner[choice]
        z = None
        if src == comm.rank:
            c = cands.index.index(choice)
            taken[c] = True
            z = st.Z[st.offsets[c]:st.offsets[c + 1]]
        z = comm.bcast(z, root=src) if comm.size > 1 else z
        R = combine(R, z)
    return picked
