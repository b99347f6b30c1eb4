"""Active learning's linear algebra against brute force: the posterior of the compressed system,
the batched D- and I-optimal gains and the greedy low-rank update (explicit covariance matrices,
no triangles), the candidates' force σ."""
from __future__ import annotations

import numpy as np
import pytest

from mpisnap.comm import SerialComm
from mpisnap.learning.posterior import calibration_scales, posterior_of
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
    post = posterior_of({k: v[2] for k, v in sysd.items()}, {k: len(v[1]) for k, v in sysd.items()},
                        {k: float(len(v[1])) for k, v in sysd.items()}, const)
    return rng, sysd, const, post


def test_posterior_is_the_uq_posterior_in_triangle_form(data):
    """The precision factor R is the uq posterior's (Σ = R⁻¹R⁻ᵀ), the mean and σ are its; the
    mean solves the normal equations of its hyperparameters on the raw rows."""
    from mpisnap.uq.posterior import Problem, augmented, optimise

    rng, sysd, const, post = data
    problem = Problem.build({k: augmented(v[2].R, v[2].qb, v[2].rnorm2) for k, v in sysd.items()},
                            {k: len(v[1]) for k, v in sysd.items()},
                            {k: float(len(v[1])) for k, v in sysd.items()}, const)
    hyper, ref, _ = optimise(problem)
    assert post.alpha == hyper.alpha and post.info["prior"] == hyper.lam
    np.testing.assert_allclose(post.mean, ref.mean, rtol=1e-12, atol=1e-14)
    rows = rng.normal(size=(5, N))
    np.testing.assert_allclose(post.model_std(rows) ** 2, ref.variance(rows), rtol=1e-9)
    P = sum(hyper.alpha[k] * v[0].T @ v[0] for k, v in sysd.items())
    P += np.diag(np.where(const, 1e-10, hyper.lam) * problem.s2)
    R = post.precision_r
    np.testing.assert_allclose(R.T @ R, P, rtol=1e-8, atol=1e-9 * np.abs(P).max())
    b = sum(hyper.alpha[k] * v[0].T @ v[1] for k, v in sysd.items())
    np.testing.assert_allclose(np.linalg.solve(P, b), post.mean, rtol=1e-8)


def test_columns_without_training_rows_are_uncertain(data):
    """A column no training row touches (an element the starting set lacks) gets a prior, not
    zero variance: a structure reaching it is the most uncertain candidate."""
    rng, sysd, const, post = data
    sys2 = {}
    for k, (A, b, c) in sysd.items():
        A2 = np.hstack([A, np.zeros((len(b), 1))])
        R, qb, rn = tsqr(SerialComm(), A2, b)
        sys2[k] = Compressed(R, qb, rn, len(b))
    p2 = posterior_of(sys2, {k: len(v[1]) for k, v in sysd.items()},
                      {k: float(len(v[1])) for k, v in sysd.items()}, np.r_[const, False])
    np.testing.assert_allclose(p2.mean[:N], post.mean, rtol=1e-9, atol=1e-12)
    assert p2.mean[N] == 0.0
    a = np.r_[rng.normal(size=N), 0.0]
    np.testing.assert_allclose(p2.model_std(a[None]), post.model_std(a[None, :N]), rtol=1e-9)
    from mpisnap.uq.posterior import Problem, augmented

    s2 = Problem.build({k: augmented(v.R, v.qb, v.rnorm2) for k, v in sys2.items()},
                       {k: v.nrows for k, v in sys2.items()},
                       {k: float(v.nrows) for k, v in sys2.items()}, np.r_[const, False]).s2
    e = np.zeros(N + 1)
    e[N] = 1.0  # the prior of an average (non-constant) column
    assert p2.model_std(e[None])[0] ** 2 == pytest.approx(1 / (p2.info["prior"] * s2[1:].mean()))


def test_calibration_scale_is_the_conformal_quantile():
    z = np.abs(np.random.default_rng(0).normal(scale=2.0, size=199))
    s = calibration_scales(SerialComm(), {1: list(z), 0: [1.0] * 5})
    assert s[0] == 1.0 and s[2] == 1.0  # too few scores: uncalibrated
    assert s[1] == pytest.approx(np.sort(z)[int(np.ceil(200 * 0.9)) - 1] / 1.6448536269514722)
    assert 1.6 < s[1] < 2.4  # scores of a σ = 2 normal


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


def test_cost_weighting_divides_the_gain_by_the_atoms(data):
    rng, sysd, const, post = data
    cands = _candidates(rng, [13, 4, 10, 7])
    cands.natoms = [40, 1, 30, 2]
    factors = np.ones(3)
    P = post.precision_r.T @ post.precision_r
    gains = [np.linalg.slogdet(P + A.T @ A)[1] - np.linalg.slogdet(P)[1] for A in cands.rows]
    plain = select(SerialComm(), cands, post, factors, "dopt", 1)
    per_atom = select(SerialComm(), cands, post, factors, "dopt", 1, cost_weighting=True)
    assert plain == [cands.index[int(np.argmax(gains))]]
    assert per_atom == [cands.index[int(np.argmax(np.array(gains) / cands.natoms))]]
    assert plain != per_atom
