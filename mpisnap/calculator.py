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

__all__ = ["Calculator"]


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
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, path, threads: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(path, Predictor):
            self.potential = path
        else:
            self.potential = read_potential(os.fspath(path))
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.threads = None if threads is None else int(threads)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if isinstance(self.potential, Potential):
            p = self.potential.predict(self.atoms, threads=self.threads)
        else:
            from .records import Configuration

            a = self.atoms
            p = self.potential.predict(Configuration(
                "atoms", "", a.get_positions(), np.array(a.get_cell()),
                tuple(bool(x) for x in a.get_pbc()), tuple(a.get_chemical_symbols())))
        self.results = {"energy": p.energy, "free_energy": p.energy, "forces": p.forces}
        if p.energies is not None:
            self.results["energies"] = p.energies
        if p.stress is not None and self.atoms.cell.rank == 3:
            self.results["stress"] = p.stress

    def __repr__(self) -> str:
        return f"mpisnap.Calculator({getattr(self.potential, 'source', self.potential)!s})"
