"""Active learning's linear algebra against brute force: the posterior of the compressed system,
the batched D- and I-optimal gains and the greedy low-rank update (explicit covariance matrices,
no triangles), the candidates' force σ."""
from __future__ import annotations

import numpy as np
import pytest

from mpisnap.comm import SerialComm
from mpisnap.learning.posterior import provisional_posterior
from mpisnap.learning.selection import (Candidates, dopt_gain, force_std, ivar_gain, select)
from mpisnap.pipeline.compression import Compressed
from mpisnap.tsqr import tsqr

N = 6


def _system(rng, nrows, kind_rows):
    out = {}
    beta = rng.normal(size=N)
    for k, m in kind_rows.items():
        A = rng.normal(size=(m, N)) * (1 + k)
        A[:, 0] = 1.0 if k == 0 else 0.0  # a constant column (energy rows only)
        b = A @ beta + 0.05 * rng.normal(size=m)
        R, qb, rn = tsqr(SerialComm(), A, b)
        out[k] = (A, b, Compressed(R, qb, rn, m))
    return out


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    sysd = _system(rng, 0, {0: 15, 1: 60})
    const = np.zeros(N, bool)
    const[0] = True
    post = provisional_posterior({k: v[2] for k, v in sysd.items()}, const)
    return rng, sysd, const, post


def test_posterior_equals_the_normal_equations_of_its_hyperparameters(data):
    """Mean and covariance from the triangles equal the textbook formulas on the raw rows, and
    the evidence fixed point holds (α = (N − γ)/RSS, λ = (p − λ tr DΣ)/mᵀDm)."""
    rng, sysd, const, post = data
    A = np.vstack([v[0] for v in sysd.values()])
    b = np.concatenate([v[1] for v in sysd.values()])
    alpha = 1.0 / post.noise[0]
    assert post.noise[0] == post.noise[1]
    lam = post.info["prior"]
    d = np.where(const, 0.0, np.mean(A * A, axis=0))
    P = alpha * A.T @ A + lam * np.diag(d)
    Sigma = np.linalg.inv(P)
    m = Sigma @ (alpha * A.T @ b)
    np.testing.assert_allclose(post.mean, m, rtol=1e-9, atol=1e-12)
    R = post.precision_r
    np.testing.assert_allclose(R.T @ R, P, rtol=1e-9, atol=1e-9 * np.abs(P).max())
    gamma = N - lam * np.trace(np.diag(d) @ Sigma)
    rss = np.sum((A @ m - b) ** 2)
    assert alpha == pytest.approx((len(b) - gamma) / rss, rel=1e-6)
    assert lam == pytest.approx((N - 1 - lam * np.trace(np.diag(d) @ Sigma)) / (m @ (d * m)),
                                rel=1e-6)
    rows = rng.normal(size=(5, N))
    np.testing.assert_allclose(post.model_std(rows), np.sqrt(np.einsum("ij,jk,ik->i", rows,
                                                                       Sigma, rows)), rtol=1e-10)


def _candidates(rng, sizes):
    c = Candidates()
    for i, m in enumerate(sizes):
        A = rng.normal(size=(m, N))
        kinds = np.ones(m, np.int8)
        kinds[0] = 0
        A[0, 0], A[1:, 0] = 1.0, 0.0
        c.add(10 + i, A, kinds, (m - 1) // 3)
    return c


def test_gains_equal_brute_force(data):
    """log det(P + ZᵀZ) − log det P and tr(MΣ) − tr(MΣ') from explicit inverses, for
    candidates with fewer and with more rows than columns."""
    rng, sysd, const, post = data
    P = post.precision_r.T @ post.precision_r
    Sigma = np.linalg.inv(P)
    Rinv = np.linalg.inv(post.precision_r)
    M = rng.normal(size=(N, N))
    M = M @ M.T
    H = Rinv.T @ M @ Rinv
    for m in (4, 13):
        Z = rng.normal(size=(m, N))
        G = Z @ Rinv
        P2 = P + Z.T @ Z
        assert dopt_gain(G) == pytest.approx(np.linalg.slogdet(P2)[1] - np.linalg.slogdet(P)[1],
                                             rel=1e-9)
        assert ivar_gain(G, H) == pytest.approx(
            np.trace(M @ Sigma) - np.trace(M @ np.linalg.inv(P2)), rel=1e-8)


@pytest.mark.parametrize("criterion", ["dopt", "ivar"])
def test_greedy_batch_equals_brute_force(data, criterion):
    """Each pick maximises the brute-force gain given the picks before it (posterior updated
    with their rows); the batched evaluation groups candidates of equal size."""
    rng, sysd, const, post = data
    cands = _candidates(rng, [4, 7, 4, 13, 7, 4, 10, 13])
    factors = np.array([2.0, 0.7, 1.0])
    picked = select(SerialComm(), cands, post, factors, criterion, 4)
    assert len(set(picked)) == 4
    P = post.precision_r.T @ post.precision_r
    Z = {i: A * factors[k][:, None] for i, A, k in zip(cands.index, cands.rows, cands.kinds)}
    ef = np.vstack(list(Z.values()))
    M = ef.T @ ef / len(ef)
    for i in picked:
        Sigma = np.linalg.inv(P)

        def gain(j):
            P2 = P + Z[j].T @ Z[j]
            if criterion == "dopt":
                return np.linalg.slogdet(P2)[1] - np.linalg.slogdet(P)[1]
            return np.trace(M @ Sigma) - np.trace(M @ np.linalg.inv(P2))

        left = [j for j in cands.index if j not in picked[:picked.index(i)]]
        best = max(left, key=gain)
        assert i == best
        P = P + Z[i].T @ Z[i]


def test_maxstd_and_force_std_are_model_sigma(data):
    rng, sysd, const, post = data
    cands = _candidates(rng, [4, 7, 10])
    Sigma = np.linalg.inv(post.precision_r.T @ post.precision_r)
    expect = [np.sqrt(max(a @ Sigma @ a for a, k in zip(A, kinds) if k == 1))
              for A, kinds in zip(cands.rows, cands.kinds)]
    np.testing.assert_allclose(force_std(cands, post), expect, rtol=1e-10)
    first = select(SerialComm(), cands, post, np.array([1.0, 3.0, 1.0]), "maxstd", 1)
    assert first == [cands.index[int(np.argmax(expect))]]


def test_ties_break_by_index_and_random_is_seeded(data):
    rng, sysd, const, post = data
    c = Candidates()
    A = rng.normal(size=(4, N))
    for i in (7, 3, 5):  # identical candidates: the lowest index wins
        c.add(i, A, np.array([0, 1, 1, 1], np.int8), 1)
    assert select(SerialComm(), c, post, np.ones(3), "ivar", 1) == [3]
    a = select(SerialComm(), c, post, np.ones(3), "random", 2, rng=np.random.default_rng(1))
    b = select(SerialComm(), c, post, np.ones(3), "random", 2, rng=np.random.default_rng(1))
    assert a == b and len(set(a)) == 2
