"""The ASE calculator over any mpisnap predictor (a LAMMPS SNAP or ML-IAP potential file, or a
fitted model).

Example::

    from ase.build import bulk
    from mpisnap import Calculator
    atoms = bulk("Ta", "bcc", a=3.316, cubic=True).repeat(3)
    atoms.calc = Calculator(".../potentials/Ta06A.snap")   # LAMMPS include file, used unchanged
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Units are ASE's, which for these quantities are LAMMPS ``metal``: eV, eV/Å, and the stress in
eV/Å³ (Voigt xx yy zz yz xz xy, ASE's sign: positive = tensile, i.e. ``-virial / volume``). The
stress is available when the cell is 3-dimensional; ``energies`` are per atom, pair terms split
half and half as LAMMPS ``compute pe/atom`` does.
"""
from __future__ import annotations

import os

import numpy as np

from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import all_changes

from .models import Predictor
from .potential import Potential, read_potential

__all__ = ["Calculator", "UNCERTAINTY_PROPERTIES"]

#: Filled when the potential has an uncertainty model (``<potential>_uq.h5``, :mod:`mpisnap.uq`).
UNCERTAINTY_PROPERTIES = ("energy_std", "forces_std", "stress_std", "energy_std_model",
                          "forces_std_model", "stress_std_model")


class Calculator(_ASECalculator):
    """ASE calculator for a SNAP potential (``pair_style snap``: linear, quadratic, ChemSNAP;
    ``pair_style mliap``: ``model linear``, ``quadratic`` and neural networks ``model nn``, with
    ``descriptor sna``; with ZBL overlays).

    Parameters
    ----------
    path : a LAMMPS include file with ``pair_style``/``pair_coeff`` lines (the ``.mod`` written
        by ``mpisnap fit``, or a published ``.snap`` or ``.mliap`` file such as
        ``Ta06A.nn.mliap``), a ``.snapcoeff`` file with its
        ``.snapparam`` beside it, or any :class:`mpisnap.models.Predictor` (e.g. a fit's
        ``FitResult.predictor()``). See :mod:`mpisnap.potential` for the LAMMPS subset that is
        read.
    threads : OpenMP threads of the SNAP kernel of a potential file (default:
        ``OMP_NUM_THREADS`` or all cores). Results are identical for any thread count.

    Atoms are matched to the potential by their chemical symbols. Errors in the file are one-line
    :class:`ValueError` messages naming the file.

    Uncertainty: when ``<potential>_uq.h5`` lies beside the file (a fit with ``[SOLVER] solver =
    BAYES`` writes it), or the predictor has an uncertainty estimate, every calculation also
    gives ``energy_std`` (eV), ``forces_std`` (N, 3), ``stress_std`` (6,) — the calibrated
    standard deviation of a new label — and ``energy_std_model``, ``forces_std_model``,
    ``stress_std_model``, the model part alone (``calc.results`` or ``calc.get_property``).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress",
                              *UNCERTAINTY_PROPERTIES]

    def __init__(self, path, threads: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.uncertainty = None  # mpisnap.uq.Uncertainty of a potential file
        self._ask_std = isinstance(path, Predictor)  # a predictor may have an estimate
        if isinstance(path, Predictor):
            self.potential = path
        else:
            self.potential = read_potential(os.fspath(path))
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        if not self._ask_std:
            uq = os.path.splitext(os.fspath(path))[0] + "_uq.h5"
            if os.path.exists(uq):
                from .uq.store import load_uncertainty

                self.uncertainty = load_uncertainty(uq, self.threads)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if isinstance(self.potential, Potential):
            p = self.potential.predict(self.atoms, threads=self.threads)
            if self.uncertainty is not None:
                p = self.uncertainty.add_to(p, self.atoms, threads=self.threads)
        else:
            from .records import Configuration

            a = self.atoms
            cfg = Configuration("atoms", "", a.get_positions(), np.array(a.get_cell()),
                                tuple(bool(x) for x in a.get_pbc()),
                                tuple(a.get_chemical_symbols()))
            try:
                p = self.potential.predict(cfg, uncertainty=self._ask_std)
            except NotImplementedError:  # no estimate: ask no more
                if not self._ask_std:
                    raise
                self._ask_std = False
                p = self.potential.predict(cfg)
        self.results = {"energy": p.energy, "free_energy": p.energy, "forces": p.forces}
        for name in UNCERTAINTY_PROPERTIES:
            value = getattr(p, name, None)
            if value is not None:
                self.results[name] = value
        if p.energies is not None:
            self.results["energies"] = p.energies
        if p.stress is not None and self.atoms.cell.rank == 3:
            self.results["stress"] = p.stress

    def __repr__(self) -> str:
        return f"mpisnap.Calculator({getattr(self.potential, 'source', self.potential)!s})"
