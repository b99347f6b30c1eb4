"""The built-in solvers of the compressed system (R, Qᵀb)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mpisnap.testing.linalg import random_system
from mpisnap.comm import SerialComm
from mpisnap.plugins import solvers as S
from mpisnap.records import SolveResult, Solver
from mpisnap.settings import ArdSettings, LassoSettings, RidgeSettings
from mpisnap.tsqr import tsqr


def _settings(ridge=1e-8, lasso=1e-8, max_iter=2000, tol=None, ard=None):
    lasso_sec = LassoSettings(alpha=lasso, max_iter=max_iter)
    if tol is not None:
        lasso_sec = SimpleNamespace(alpha=lasso, max_iter=max_iter, tol=tol)
    return SimpleNamespace(ridge=RidgeSettings(alpha=ridge), lasso=lasso_sec,
                           ard=ard or ArdSettings())


def _system(m, n, seed=0, cond=None):
    return random_system(m, n, seed, cond, weights=(0.5, 2.0))


def _compress(A, b, w):
    return tsqr(SerialComm(), A, b, w)


def _relerr(x, y):
    return np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300)


def test_plugin_records():
    recs = S.mpisnap_solvers()
    assert [r.name for r in recs] == ["SVD", "QR", "RIDGE", "LASSO", "ARD"]
    for r in recs:
        assert isinstance(r, Solver) and r.kinds == frozenset({"linear"}) and r.description


@pytest.mark.parametrize("shape,cond,dup", [((300, 15), None, False), ((300, 12), 1e8, False),
                                            ((200, 10), None, True), ((6, 10), None, False)])
def test_svd_equals_lstsq_rcond_1e13_on_the_full_system(shape, cond, dup):
    A, b, w = _system(*shape, cond=cond)
    if dup:
        A = np.column_stack([A, A[:, 0], A[:, 3] - A[:, 4]])
    R, qb, rnorm2 = _compress(A, b, w)
    res = S.solve_svd(R, qb, _settings(), nrows=len(b), rnorm2=rnorm2)
    assert isinstance(res, SolveResult) and res.covariance is None
    Aw, bw = A * w[:, None], b * w
    x0, _, rank0, s0 = np.linalg.lstsq(Aw, bw, rcond=1e-13)
    # two backward-stable algorithms: forward differences up to ~cond * eps (1e-10 when
    # well conditioned or exactly rank deficient, where the min-norm solution is well posed)
    tol = 1e-10 if cond is None else 10 * cond * np.finfo(float).eps
    assert _relerr(res.coefficients, x0) <= tol
    assert res.info["rank"] == rank0
    assert res.info["rcond"] == 1e-13
    k = min(len(s0), len(res.info["singular_values"]))
    assert np.allclose(res.info["singular_values"][:k], s0[:k], rtol=1e-10, atol=1e-12 * s0[0])
    assert res.info["residual"] == pytest.approx(np.sum((Aw @ x0 - bw) ** 2), rel=1e-9, abs=1e-12)


def test_svd_without_extras_and_empty():
    A, b, w = _system(40, 3)
    R, qb, _ = _compress(A, b, w)
    assert S.solve_svd(R, qb, None).coefficients.shape == (3,)
    assert S.solve_svd(np.zeros((0, 0)), np.zeros(0)).coefficients.shape == (0,)


def test_qr_full_rank_and_singular():
    A, b, w = _system(100, 8)
    R, qb, _ = _compress(A, b, w)
    x = S.solve_qr(R, qb, _settings()).coefficients
    assert _relerr(x, np.linalg.lstsq(A * w[:, None], b * w, rcond=None)[0]) < 1e-12
    A2 = np.column_stack([A, 2.0 * A[:, 1]])
    R2, qb2, _ = _compress(A2, b, w)
    with pytest.raises(np.linalg.LinAlgError, match=r"QR solver: R is rank deficient \(1 of 9"):
        S.solve_qr(R2, qb2, _settings())
    assert issubclass(np.linalg.LinAlgError, ValueError)


@pytest.mark.parametrize("alpha", [0.0, 1e-3, 1.0, 50.0])
def test_ridge_closed_form(alpha):
    A, b, w = _system(120, 9, seed=2)
    R, qb, rnorm2 = _compress(A, b, w)
    res = S.solve_ridge(R, qb, _settings(ridge=alpha), nrows=120, rnorm2=rnorm2)
    Aw, bw = A * w[:, None], b * w
    x0 = np.linalg.solve(Aw.T @ Aw + alpha * np.eye(9), Aw.T @ bw)
    assert _relerr(res.coefficients, x0) <= 1e-10
    assert res.info["alpha"] == alpha
    with pytest.raises(ValueError, match="RIDGE solver: .*alpha"):
        S.solve_ridge(R, qb, _settings(ridge=-1.0))


def _lasso_kkt(R, qb, x, pen, atol):
    g = R.T @ (qb - R @ x)
    nz = x != 0
    assert np.allclose(g[nz], pen * np.sign(x[nz]), rtol=0, atol=atol)
    assert np.all(np.abs(g[~nz]) <= pen + atol)


@pytest.mark.parametrize("alpha", [1e-4, 1e-3, 1e-2])
def test_lasso_kkt_of_documented_objective(alpha):
    rng = np.random.default_rng(5)
    m, n = 300, 20
    A = rng.normal(size=(m, n))
    xt = np.zeros(n)
    xt[[1, 4, 11]] = [2.0, -1.5, 0.7]
    b = A @ xt + 0.05 * rng.normal(size=m)
    w = rng.uniform(0.5, 2.0, size=m)
    R, qb, rnorm2 = _compress(A, b, w)
    res = S.solve_lasso(R, qb, _settings(lasso=alpha, tol=1e-14, max_iter=100000),
                        nrows=m, rnorm2=rnorm2)
    x = res.coefficients
    pen = alpha * m                                  # ½|Rx-qb|^2 + nrows alpha |x|_1
    assert res.info["penalty"] == pen and res.info["converged"]
    _lasso_kkt(R, qb, x, pen, atol=1e-8 * np.linalg.norm(R.T @ qb))
    # without nrows the objective is ½|Rx-qb|^2 + alpha |x|_1
    res1 = S.solve_lasso(R, qb, _settings(lasso=alpha * m, tol=1e-14, max_iter=100000))
    assert np.allclose(res1.coefficients, x, atol=1e-9)
    # sparse: many exact zeros for the largest penalty
    if alpha == 1e-2:
        assert (x == 0).sum() >= 10


def test_lasso_defaults_converge_and_huge_alpha_gives_zero():
    A, b, w = _system(100, 6)
    R, qb, rnorm2 = _compress(A, b, w)
    res = S.solve_lasso(R, qb, _settings(lasso=1e-3), nrows=100, rnorm2=rnorm2)
    assert res.info["converged"] and res.info["duality_gap"] <= 1e-4 * (qb @ qb + rnorm2)
    big = S.solve_lasso(R, qb, _settings(lasso=1e6), nrows=100)
    assert not big.coefficients.any()
    with pytest.raises(ValueError, match="LASSO solver: .*max_iter"):
        S.solve_lasso(R, qb, _settings(max_iter=0))


def test_ard_recovers_sparse_coefficients_with_spd_covariance():
    rng = np.random.default_rng(11)
    m, n = 500, 25
    A = rng.normal(size=(m, n))
    xt = np.zeros(n)
    xt[[0, 3, 7, 18]] = [1.5, -2.0, 0.8, 3.0]
    b = A @ xt + 0.01 * rng.normal(size=m)
    w = np.ones(m)
    R, qb, rnorm2 = _compress(A, b, w)
    res = S.solve_ard(R, qb, _settings(), nrows=m, rnorm2=rnorm2)
    x = res.coefficients
    assert np.allclose(x, xt, atol=5e-3)
    kept = res.info["kept"]
    assert kept[[0, 3, 7, 18]].all() and kept.sum() <= 8
    assert np.all(x[~kept] == 0)
    # noise precision ~ 1 / 0.01^2
    assert 0.5e4 < res.info["alpha"] < 2e4
    C = res.covariance
    assert C.shape == (n, n)
    assert np.array_equal(C, C.T)
    assert np.linalg.eigvalsh(C).min() > 0
    # posterior standard deviations of kept coefficients ~ noise / sqrt(m)
    sd = np.sqrt(np.diagonal(C)[[0, 3, 7, 18]])
    assert np.all((sd > 1e-4) & (sd < 2e-3))


def test_ard_needs_nrows():
    A, b, w = _system(50, 4)
    R, qb, _ = _compress(A, b, w)
    with pytest.raises(ValueError, match="ARD solver: needs nrows"):
        S.solve_ard(R, qb, _settings())


@pytest.mark.parametrize("name", ["SVD", "QR", "RIDGE", "LASSO", "ARD"])
@pytest.mark.parametrize("where", ["R", "qb"])
def test_non_finite_input_is_a_clear_error(name, where):
    solve = {r.name: r.solve for r in S.mpisnap_solvers()}[name]
    A, b, w = _system(30, 4)
    R, qb, _ = _compress(A, b, w)
    if where == "R":
        R = R.copy()
        R[1, 2] = np.nan
    else:
        qb = qb.copy()
        qb[0] = np.inf
    with pytest.raises(ValueError, match=f"{name} solver: .*(NaN|infinite)"):
        solve(R, qb, _settings(), nrows=30, rnorm2=0.0)


@pytest.mark.parametrize("name", ["SVD", "QR", "RIDGE", "LASSO", "ARD"])
def test_bad_shapes(name):
    solve = {r.name: r.solve for r in S.mpisnap_solvers()}[name]
    with pytest.raises(ValueError, match=f"{name} solver: R must be square"):
        solve(np.zeros((3, 2)), np.zeros(3), _settings(), nrows=3)
    with pytest.raises(ValueError, match=f"{name} solver: qb must have shape"):
        solve(np.eye(3), np.zeros(2), _settings(), nrows=3)


@pytest.mark.parametrize("name", ["SVD", "QR", "RIDGE", "LASSO", "ARD"])
def test_all_zero_weights_are_an_error_not_a_zero_potential(name):
    """Weights all 0: TSQR gives R = 0 and Qᵀb = 0. Every solver used to return x = 0 (QR: "rank
    deficient"); now each says there is nothing to fit."""
    solve = {r.name: r.solve for r in S.mpisnap_solvers()}[name]
    A, b, w = _system(40, 5)
    R, qb, rnorm2 = _compress(A, b, np.zeros_like(w))
    assert not R.any() and not qb.any()
    with pytest.raises(ValueError, match=f"^{name} solver: the weighted training system is all "
                                         "zero .*weight 0.*set a non-zero eweight/fweight/vweight"):
        solve(R, qb, _settings(), nrows=40, rnorm2=rnorm2)
