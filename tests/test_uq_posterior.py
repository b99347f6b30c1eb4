"""Bayesian regression on compressed rows (mpisnap.uq.posterior) against dense oracles: the evidence
equals the Gaussian marginal likelihood of the weighted labels computed from the full rows, its
gradient equals finite differences, the posterior equals the dense normal-equation formula, the
optimum satisfies MacKay's fixed points; stacked triangles equal a dense QR; leave-one-fold-out
factors equal refits; order statistics and conformal quantiles equal sorting; the BAYES solver
leaves zero columns at 0 and does not shrink constant columns."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mpisnap.comm import SerialComm
from mpisnap.tsqr import StreamingR
from mpisnap.uq.calibration import conformal_quantile, order_statistic, z_of
from mpisnap.uq.linalg import row_variances, stack_triangles
from mpisnap.uq.posterior import (FLAT_PRECISION, Hyper, Problem, augmented, evidence,
                                  leave_one_out, optimise, posterior)


def _system(seed=1, m=90, n=6, kinds=2, flat=None):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n)) * rng.uniform(0.1, 10, size=n)
    if flat is not None:
        A[:, flat] = 1.0
    kind = rng.integers(0, kinds, size=m)
    w = rng.uniform(0.5, 2, size=m)
    beta = rng.normal(size=n)
    b = A @ beta + rng.normal(size=m) * np.array([0.1, 0.5, 2.0])[kind] / w
    return A, b, w, kind, beta


def _problem(A, b, w, kind, flat_cols=()):
    aug, nrows, w2 = {}, {}, {}
    for k in np.unique(kind):
        s = kind == k
        acc = StreamingR(A.shape[1])
        acc.add(A[s], b[s], w[s])
        R, qb, r2 = acc.finalize(SerialComm())
        aug[int(k)], nrows[int(k)], w2[int(k)] = augmented(R, qb, r2), int(s.sum()), float(
            np.exp(np.mean(np.log(w[s] ** 2))))
    flat = np.zeros(A.shape[1], bool)
    flat[list(flat_cols)] = True
    return Problem.build(aug, nrows, w2, flat)


def _dense_log_evidence(A, b, w, kind, alpha, prec):
    wA, y = A * w[:, None], w * b
    C = np.diag(1.0 / alpha[kind]) + wA @ np.diag(1.0 / prec) @ wA.T
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * logdet - 0.5 * y @ np.linalg.solve(C, y) - 0.5 * len(y) * math.log(2 * math.pi)


def test_evidence_gradient_and_posterior_equal_dense_oracles():
    A, b, w, kind, _ = _system()
    pb = _problem(A, b, w, kind)
    theta = np.array([1.3, -0.7, 0.4])
    logE, grad, post, _ = evidence(pb, theta)
    alpha, lam = np.exp(theta[:2]), math.exp(theta[2])
    prec = lam * pb.s2
    assert logE == pytest.approx(_dense_log_evidence(A, b, w, kind, alpha, prec), rel=1e-11)
    h = 1e-5
    fd = [(evidence(pb, theta + h * e)[0] - evidence(pb, theta - h * e)[0]) / (2 * h)
          for e in np.eye(3)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    wA = A * w[:, None]
    H = wA.T @ (alpha[kind][:, None] * wA) + np.diag(prec)
    mu = np.linalg.solve(H, wA.T @ (alpha[kind] * w * b))
    np.testing.assert_allclose(post.mean, mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post.covariance(), np.linalg.inv(H), rtol=1e-9, atol=1e-14)
    rows = A[:7]
    np.testing.assert_allclose(post.variance(rows),
                               np.einsum("ij,jk,ik->i", rows, np.linalg.inv(H), rows), rtol=1e-9)


def test_optimum_is_a_mackay_fixed_point_with_zero_gradient():
    A, b, w, kind, _ = _system(seed=3, m=400, n=8, kinds=3)
    pb = _problem(A, b, w, kind)
    hyper, post, d = optimise(pb)
    assert d["converged"] and not d["at_bound"]
    logE, grad, _, det = evidence(pb, hyper.theta(pb.kinds))
    assert np.abs(grad).max() < 1e-7 * abs(logE)
    for k in pb.kinds:  # α_k = (n_k − γ_k) / E_k
        assert hyper.alpha[k] == pytest.approx((pb.nrows[k] - det["gamma"][k])
                                               / det["residual"][k], rel=1e-6)
    # the optimum of the evidence, also against the dense oracle: every neighbour is lower
    best = _dense_log_evidence(A, b, w, kind, np.array([hyper.alpha[k] for k in pb.kinds]),
                               hyper.lam * pb.s2)
    for e in np.eye(len(pb.kinds) + 1):
        for s in (-0.05, 0.05):
            th = hyper.theta(pb.kinds) + s * e
            other = _dense_log_evidence(A, b, w, kind, np.exp(th[:-1]), math.exp(th[-1]) * pb.s2)
            assert other < best


def test_constant_columns_are_not_shrunk_and_zero_columns_stay_zero():
    A, b, w, kind, beta = _system(seed=5, m=300, n=6, flat=[0])
    A[:, 4] = 0.0  # a column without data
    pb = _problem(A, b, w, kind, flat_cols=[0])
    assert pb.active.tolist() == [True, True, True, True, False, True]
    hyper, post, _ = optimise(pb)
    assert post.mean[4] == 0.0 and post.covariance()[4].tolist() == [0.0] * 6
    assert post.variance(np.eye(6)[[4]])[0] == 0.0
    wA, y = A * w[:, None], w * b
    alpha = np.array([hyper.alpha[k] for k in pb.kinds])[kind]
    prec = np.where(pb.flat, FLAT_PRECISION, hyper.lam) * pb.s2
    keep = pb.active
    H = wA[:, keep].T @ (alpha[:, None] * wA[:, keep]) + np.diag(prec)
    mu = np.linalg.solve(H, wA[:, keep].T @ (alpha * y))
    np.testing.assert_allclose(post.mean[keep], mu, rtol=1e-9)
    # β0 of 50 eV more: only the constant coefficient moves, by 50 (a flat prior), and the
    # evidence-optimal hyper-parameters stay
    shifted = _problem(A, b + 50.0, w, kind, flat_cols=[0])
    hyper2, post2, _ = optimise(shifted)
    assert post2.mean[0] - post.mean[0] == pytest.approx(50.0, abs=1e-6)
    np.testing.assert_allclose(post2.mean[1:], post.mean[1:], rtol=1e-6, atol=1e-9)
    assert hyper2.lam == pytest.approx(hyper.lam, rel=1e-6)
    assert hyper2.alpha == pytest.approx(hyper.alpha, rel=1e-6)


def test_stacked_triangles_and_leave_one_out_equal_dense_qr():
    rng = np.random.default_rng(2)
    tris = [np.triu(rng.normal(size=(5, 5))) for _ in range(4)]
    R = stack_triangles([(s, T) for s, T in zip((1.0, 2.0, 0.0, 0.5), tris)])
    M = np.vstack([tris[0], 2.0 * tris[1], 0.5 * tris[3]])
    np.testing.assert_allclose(R.T @ R, M.T @ M, rtol=1e-12, atol=1e-12)
    assert np.all(np.diagonal(R) >= 0) and np.allclose(R, np.triu(R))
    loo = leave_one_out([tris[0], None, tris[2], tris[3]])
    for f, keep in enumerate(([2, 3], [0, 2, 3], [0, 3], [0, 2])):
        M = np.vstack([tris[i] for i in keep])
        np.testing.assert_allclose(loo[f].T @ loo[f], M.T @ M, rtol=1e-12, atol=1e-12)
    S = rng.normal(size=(7, 5))
    np.testing.assert_allclose(row_variances(S, R, triangular=True),
                               np.sum((S @ R) ** 2, axis=1), rtol=1e-13)


def test_fold_posterior_equals_a_refit_without_the_fold():
    A, b, w, kind, _ = _system(seed=4, m=120, n=5)
    fold = np.arange(len(b)) % 3
    pb = _problem(A, b, w, kind)
    hyper, _, _ = optimise(pb)
    tris = []
    for f in range(3):
        parts = []
        for k in pb.kinds:
            s = (fold == f) & (kind == k)
            acc = StreamingR(A.shape[1])
            acc.add(A[s], b[s], w[s])
            R, qb, r2 = acc.finalize(SerialComm())
            parts.append((math.sqrt(hyper.alpha[k]), augmented(R, qb, r2)))
        tris.append(stack_triangles(parts))
    loo = leave_one_out(tris)
    for f in range(3):
        post = posterior(pb, hyper, [(1.0, loo[f])])
        keep = fold != f
        sub = _problem(A[keep], b[keep], w[keep], kind[keep])
        ref = posterior(Problem(sub.aug, sub.nrows, sub.typical_w2, pb.active, pb.flat, pb.s2),
                        hyper)
        np.testing.assert_allclose(post.mean, ref.mean, rtol=1e-10)
        np.testing.assert_allclose(post.covariance(), ref.covariance(), rtol=1e-9, atol=1e-15)


def test_order_statistic_and_conformal_quantile_equal_sorting():
    comm = SerialComm()
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_cauchy(1001))
    x[5] = 0.0
    s = np.sort(x)
    for k in (1, 2, 500, 1000, 1001):
        assert order_statistic(comm, x, k) == s[k - 1]
    q, n = conformal_quantile(comm, x, 0.9)
    assert n == 1001 and q == s[math.ceil(1002 * 0.9) - 1]
    assert conformal_quantile(comm, x[:3], 0.9) == (np.sort(x[:3])[2], 3)  # too few: the largest
    assert math.isnan(conformal_quantile(comm, np.zeros(0), 0.9)[0])
    with pytest.raises(ValueError):
        order_statistic(comm, np.array([1.0, -1.0]), 1)
    assert z_of(0.9) == pytest.approx(1.6448536269514722)


def test_bayes_as_a_plain_solver_on_one_kind():
    from mpisnap.uq.solver import solve_bayes

    A, b, w, _, _ = _system(seed=6, m=200, n=5, kinds=1)
    acc = StreamingR(5)
    acc.add(A, b, w)
    R, qb, r2 = acc.finalize(SerialComm())
    sol = solve_bayes(R, qb, None, nrows=200, rnorm2=r2)
    alpha, lam = sol.info["alpha"][-1], sol.info["prior_precision"]
    s2 = (A * w[:, None]) ** 2
    prec = lam * s2.mean(axis=0)
    wA = A * w[:, None]
    H = alpha * wA.T @ wA + np.diag(prec)
    np.testing.assert_allclose(sol.coefficients, np.linalg.solve(H, alpha * wA.T @ (w * b)),
                               rtol=1e-9)
    np.testing.assert_allclose(sol.covariance, np.linalg.inv(H), rtol=1e-8)
    assert sol.info["noise_std"]["all"] == pytest.approx(1 / math.sqrt(alpha))
    with pytest.raises(ValueError, match="BAYES solver: needs R and qb"):
        solve_bayes(None, None, None)


def test_hyper_round_trip():
    h = Hyper({0: 2.0, 1: 3.0}, 0.5)
    back = Hyper.of((0, 1), h.theta((0, 1)))
    assert back.alpha == pytest.approx(h.alpha) and back.lam == pytest.approx(h.lam)


def test_row_noise_follows_the_row_weights():
    """A row of weight w > 0 has the model's noise 1/(α_k w²); a row of weight 0 (and a new
    configuration) that of a typical row, 1/(α_k w̄²), w̄ the geometric mean of the weights."""
    from mpisnap.results import LABEL_DTYPE
    from mpisnap.uq.analysis import RowAnalysis
    from mpisnap.uq.settings import Options

    A, b, w, kind, _ = _system(seed=8, m=150, n=5)
    w[:10] = 0.0
    keep = w > 0
    pb = _problem(A[keep], b[keep], w[keep], kind[keep])
    hyper, post, _ = optimise(pb)
    alpha = np.array([hyper.alpha[0], hyper.alpha[1], np.nan])
    typical = np.array([1 / (hyper.alpha[k] * pb.typical_w2[k]) for k in (0, 1)] + [np.nan])
    for k in (0, 1):
        wk = w[keep & (kind == k)]
        assert pb.typical_w2[k] == pytest.approx(np.exp(np.mean(np.log(wk ** 2))))
    stage = RowAnalysis(post, post.mean, [], np.zeros(len(b), int), typical, alpha)
    lab = np.zeros(len(b), LABEL_DTYPE)
    lab["kind"], lab["config"], lab["test"] = kind, np.arange(len(b)), True
    stage.add(A, b, w, lab)
    uq = stage.finish(SerialComm(), Options(0, 5, "none", 0.9, 0, 0.0), "BAYES", {},
                      [f"c{i}" for i in range(len(b))], ["g"])
    noise = np.where(keep, 1.0 / (alpha[kind] * np.where(keep, w, 1.0) ** 2), typical[kind])
    np.testing.assert_allclose(uq.rows["std_raw"] ** 2, post.variance(A) + noise, rtol=1e-12)
    np.testing.assert_allclose(uq.rows["std_model"] ** 2, post.variance(A), rtol=1e-12)
    assert uq.split == "test" and np.all(uq.rows["std"] == uq.rows["std_raw"])  # no calibration
