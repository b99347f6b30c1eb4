"""The ASE calculator over any mpisnap predictor (a SNAP potential file, today).

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

from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import all_changes

from .potential import read_potential

__all__ = ["Calculator"]


class Calculator(_ASECalculator):
    """ASE calculator for a SNAP potential (linear, quadratic, ChemSNAP; with ZBL overlays).

    Parameters
    ----------
    path : a LAMMPS include file with ``pair_style``/``pair_coeff`` lines (the ``.mod`` written
        by ``mpisnap fit``, or a published ``.snap`` file), a ``.snapcoeff`` file with its
        ``.snapparam`` beside it, or a predictor object (anything with
        ``predict(atoms, uncertainty=False, threads=None)`` returning a
        :class:`mpisnap.potential.Prediction`). See :mod:`mpisnap.potential` for the LAMMPS
        subset that is read.
    threads : OpenMP threads of the SNAP kernel (default: ``OMP_NUM_THREADS`` or all cores).
        Results are identical for any thread count.

    Atoms are matched to the potential by their chemical symbols. Errors in the file are one-line
    :class:`ValueError` messages naming the file.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, path, threads: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if hasattr(path, "predict"):
            self.potential = path
        else:
            self.potential = read_potential(os.fspath(path))
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.threads = None if threads is None else int(threads)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        p = self.potential.predict(self.atoms, threads=self.threads)
        self.results = {"energy": p.energy, "free_energy": p.energy,
                        "energies": p.energies, "forces": p.forces}
        if p.stress is not None and self.atoms.cell.rank == 3:
            self.results["stress"] = p.stress

    def __repr__(self) -> str:
        return f"mpisnap.Calculator({getattr(self.potential, 'source', self.potential)!s})"
