"""A third-party Bayesian solver written to the ``posterior=True`` contract of the
``mpisnap_solvers`` hookspec: called with ``blocks`` (R and qb None), returning the posterior mean,
its covariance and ``info["alpha"]`` / ``info["prior_precision"]``, from which the uncertainty stage
rebuilds the posteriors. Halving every precision (noise and prior) keeps the posterior mean and
doubles the covariance: the stage reports twice the noise variance, and the conformal calibration
(invariant to one common scale of all variances) gives BAYES's calibrated σ again."""
from pathlib import Path

import numpy as np

import mpisnap
from mpisnap import hookspecs
from mpisnap.records import SolveResult, Solver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT" / "Cu_EMT_bayes.in"
SETS = ["UQ.nsamples=0"]


class HalfPrecision:
    """BAYES, then every precision halved (the contract's required info keys)."""

    calls = []

    @staticmethod
    def solve(R, qb, settings, *, nrows=None, rnorm2=0.0, blocks=None):
        from mpisnap.uq.solver import solve_bayes

        HalfPrecision.calls.append((R, qb, type(blocks).__name__))
        sol = solve_bayes(None, None, settings, nrows=nrows, rnorm2=rnorm2, blocks=blocks)
        info = {"alpha": {k: 0.5 * a for k, a in sol.info["alpha"].items()},
                "prior_precision": 0.5 * sol.info["prior_precision"]}
        return SolveResult(sol.coefficients, 2.0 * sol.covariance, info)

    @mpisnap.hookimpl
    def mpisnap_solvers(self):
        return [Solver("HALF", self.solve, frozenset({"linear"}), "BAYES at half precision",
                       posterior=True)]


def test_the_hookspec_documents_the_posterior_contract():
    doc = hookspecs.mpisnap_solvers.__doc__
    for word in ("posterior=True", "blocks=blocks", 'info["alpha"]', 'info["prior_precision"]',
                 "[UQ]"):
        assert word in doc, word


def test_a_posterior_solver_written_to_the_contract():
    bayes = mpisnap.fit(EXAMPLE, overrides=SETS, autoload=False, write=False)
    half = mpisnap.fit(EXAMPLE, overrides=SETS + ["SOLVER.solver=HALF"],
                       plugins=[HalfPrecision()], autoload=False, write=False)
    assert HalfPrecision.calls == [(None, None, "Blocks")]
    np.testing.assert_array_equal(half.coefficients, bayes.coefficients)
    a, b = half.uq, bayes.uq
    kinds = np.isfinite(b.noise_var)
    np.testing.assert_allclose(a.noise_var[kinds], 2.0 * b.noise_var[kinds], rtol=1e-10)
    np.testing.assert_allclose(a.scale, b.scale / np.sqrt(2.0), rtol=1e-8)
    np.testing.assert_allclose(a.rows["std_raw"], np.sqrt(2.0) * b.rows["std_raw"], rtol=1e-8)
    np.testing.assert_allclose(a.rows["std"], b.rows["std"], rtol=1e-8)
