"""A nonlinear model form declares itself (kind "nonlinear") and gets its own training path: the
pipeline hands it the settings, reader and this rank's configurations, it trains (data-parallel
over the communicator) and returns the FitResult the writers receive."""
import types
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap import hookimpl
from mpisnap.plugin_manager import PluginError
from mpisnap.records import ModelForm
from mpisnap.records import Solver
from mpisnap.results import FitResult, MetricRow

INPUT = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT" / "Cu_EMT.in"


class SquareEnergy:
    """E = c · Σ_i (B_i,0)² — nonlinear in the descriptors; c by least squares (a toy)."""

    kind = "nonlinear"
    name = "square-energy"

    def __init__(self, settings):
        self.settings = settings
        self.descriptor = mpisnap.Descriptor(**settings.bispectrum.descriptor_kwargs())

    def train(self, comm, pieces, plan, timer):
        xs, ys = [], []
        with timer("descriptors"):
            for i in plan.mine:
                entry = plan.entries[i]
                if entry.test:
                    continue
                c = pieces.reader.load(entry.ref)
                d = self.descriptor.compute(positions=c.positions, cell=c.cell, pbc=c.pbc,
                                            symbols=c.symbols, forces=False, virial=False)
                xs.append(float(np.sum(d.B[:, 0] ** 2)) / c.natoms)
                ys.append(c.energy / c.natoms)
        x, y = np.array(xs), np.array(ys)
        with timer("solve"):
            sxx, sxy = comm.allreduce(float(x @ x)), comm.allreduce(float(x @ y))
            n = comm.allreduce(len(x))
            coef = np.array([sxy / sxx])
        r = coef[0] * x - y
        rmse = float(np.sqrt(comm.allreduce(float(r @ r)) / n))
        mae = comm.allreduce(float(np.abs(r).sum())) / n
        rows = [MetricRow("*ALL", "Unweighted", "Training", "Energy", n, mae, rmse, float("nan"))]
        return FitResult(self.settings, self, coef, {"kind": "toy"}, rows, None, timer.times)


def _solve_never(R, qb, settings, *, nrows=None, rnorm2=0.0):  # the nonlinear path never calls it
    raise AssertionError("linear solve called for a nonlinear model")


plugin = types.ModuleType("toy_nonlinear")
plugin.mpisnap_model_forms = hookimpl(lambda: [ModelForm("square-energy", "nonlinear", SquareEnergy)])
plugin.mpisnap_solvers = hookimpl(lambda: [Solver("TOYTRAIN", _solve_never, frozenset({"nonlinear"}))])


def test_nonlinear_form_trains_through_its_own_path(tmp_path):
    res = mpisnap.fit(INPUT, output_dir=tmp_path, plugins=[plugin], autoload=False,
                      overrides=["CALCULATOR.model=square-energy", "SOLVER.solver=TOYTRAIN"])
    assert res.model.kind == "nonlinear" and res.coefficients.shape == (1,)
    m = res.metric("*ALL", "Unweighted", "Training", "Energy")
    assert m.ncount == 100 and np.isfinite(m.rmse)

    names = {p.name for p in tmp_path.iterdir()}
    assert "Cu_EMT_metrics.md" in names and "Cu_EMT_pot.log" in names
    assert "Cu_EMT_pot.snapcoeff" not in names  # not a SNAP-coefficient model


def test_linear_solver_refuses_a_nonlinear_form(tmp_path):
    with pytest.raises(PluginError, match="does not fit nonlinear models"):
        mpisnap.fit(INPUT, output_dir=tmp_path, plugins=[plugin], autoload=False,
                    overrides=["CALCULATOR.model=square-energy"])


def test_nonlinear_solver_refuses_a_linear_form(tmp_path):
    with pytest.raises(PluginError, match="does not fit linear models"):
        mpisnap.fit(INPUT, output_dir=tmp_path, plugins=[plugin], autoload=False,
                    overrides=["SOLVER.solver=TOYTRAIN"])
