"""Bispectrum descriptors and design-matrix rows of a rattled bcc Ta supercell (the README example)."""
import numpy as np
from ase.build import bulk

from mpisnap import Descriptor

atoms = bulk("Ta", "bcc", a=3.316, cubic=True).repeat(3)          # 54 atoms
atoms.rattle(stdev=0.05, seed=1)

d = Descriptor(type=["Ta"], twojmax=8, rcutfac=4.67637, rfac0=0.99363,
               radelem=0.5, wj=1.0, bzeroflag=1, quadraticflag=0)
res = d.compute(atoms, pairs=True)

print(d)
print("B           ", res.B.shape, "       per-atom descriptors")
print("energy_row  ", res.energy_row.shape, "        sum of B over atoms of each type")
print("force_rows  ", res.force_rows.shape, "     -sum_i dB_i/dr_m, row 3m+a")
print("virial_rows ", res.virial_rows.shape, "        xx yy zz yz xz xy")
print("pairs.dBdr  ", res.pairs.dBdr.shape, "  dB_i/dr_in per neighbour image")
print("neighbours per atom:", res.nneigh.min(), "to", res.nneigh.max())
# Linear SNAP: energy, forces and virial are these rows times the coefficients.
beta = np.random.default_rng(0).normal(size=d.nvalues)
print("E = %.6f, |F|max = %.6f" % (res.energy_row[0] @ beta, np.abs(res.force_rows[:, 0] @ beta).max()))
