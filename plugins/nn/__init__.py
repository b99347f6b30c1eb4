"""The neural-network model form ``nn`` (NN-SNAP): per-atom energies E_i = network(B_i) of the
standardised SNAP descriptors, trained with PyTorch data-parallel over MPI and exported as LAMMPS
``pair_style mliap model nn … descriptor sna …`` files that LAMMPS runs without Python.

It is an ordinary built-in plugin: a model form (``nn``, kind ``nonlinear``; chosen
automatically for FitSNAP neural-network inputs, ``[CALCULATOR] nonlinear = 1`` or ``[SOLVER]
solver = PYTORCH``), the ``PYTORCH`` solver (the form trains itself; the record says which model
kind it serves) and its writers (``<potential>.mliap.model``/``.mliap.descriptor``/``.mod``, the
PyTorch state, the loss curve as CSV and PNG). Settings: ``[PYTORCH]``
(:class:`mpisnap.settings.PytorchSettings`).

PyTorch is the optional extra ``mpisnap[nn]`` and is imported only when a network is built
(:mod:`.model`, :mod:`.training`): importing this package, or ``mpisnap``, does not import it.
"""
from __future__ import annotations

from mpisnap.hookspecs import hookimpl
from mpisnap.records import ModelForm, Solver, Writer

__all__ = ["mpisnap_model_forms", "mpisnap_solvers", "mpisnap_writers", "wants_network"]


def wants_network(settings) -> bool:
    """A FitSNAP neural-network input: ``[CALCULATOR] nonlinear = 1`` or ``[SOLVER] solver =
    PYTORCH``."""
    return bool(settings.calculator.nonlinear) or settings.solver.solver == "PYTORCH"


def _factory(settings, threads: int | None = None):
    from .model import NNModel

    return NNModel(settings, threads=threads)


def _never(R, qb, settings, *, nrows=None, rnorm2=0.0):
    raise ValueError("[SOLVER] solver: PYTORCH trains a neural network (model form 'nn'); it "
                     "does not solve linear systems")


def _write_potential(result, output_dir):
    from .writers import write_potential

    return write_potential(result, output_dir)


def _write_state(result, output_dir):
    from .writers import write_state

    return write_state(result, output_dir)


def _write_loss(result, output_dir):
    from .writers import write_loss

    return write_loss(result, output_dir)


@hookimpl
def mpisnap_model_forms():
    return [ModelForm("nn", "nonlinear", _factory,
                      "neural-network SNAP (PyTorch, data-parallel over MPI; exported to LAMMPS "
                      "pair_style mliap model nn)", accepts=wants_network, priority=50)]


@hookimpl
def mpisnap_solvers():
    return [Solver("PYTORCH", _never, frozenset({"nonlinear"}),
                   "trains the 'nn' model form ([PYTORCH] section)")]


def _enabled(settings) -> bool:
    return wants_network(settings) or settings.calculator.model == "nn"


@hookimpl
def mpisnap_writers():
    return [
        Writer("mliap", _write_potential, _enabled,
               "neural networks: LAMMPS pair_style mliap files <potential>.mliap.model, "
               ".mliap.descriptor, .mod"),
        Writer("nn-state", _write_state, _enabled,
               "neural networks: the PyTorch training state ([PYTORCH] save_state_output)"),
        Writer("loss", _write_loss, _enabled,
               "neural networks: <potential>_loss.csv and _loss.png (loss per epoch)"),
    ]
