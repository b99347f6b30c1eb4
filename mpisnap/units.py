"""Unit constants, each with one home.

Two eV/Å³ → bar factors exist and differ by 8.4e-8 (relative), more than mpisnap's 1e-9
tolerances, so each is used for one purpose only:

* :data:`NKTV2P` — LAMMPS ``metal`` units' ``nktv2p`` (1.6021765e6 bar per eV/Å³). Everything that
  must agree with LAMMPS uses it: the design-matrix stress rows (FitSNAP's rows are LAMMPS
  ``compute snap`` output), stresses handed to or compared with LAMMPS, the conversion back to
  eV/Å³ of a fitted model's stress.
* :data:`EV_PER_A3_IN_BAR` — the exact value from the SI definition of the electronvolt
  (1.602176634e-19 J / 1e-30 m³ = 1.602176634e11 Pa = 1.602176634e6 bar). Readers use it to
  convert the stresses of data files (e.g. ASE's eV/Å³) to bar.
"""
#: bar per eV/Å³ as LAMMPS metal units define it (``force->nktv2p``).
NKTV2P = 1.6021765e6
#: bar per eV/Å³, exact (SI).
EV_PER_A3_IN_BAR = 1.602176634e6

__all__ = ["NKTV2P", "EV_PER_A3_IN_BAR", "ase_stress_to_bar"]


def ase_stress_to_bar(stress):
    """ASE stress (Voigt 6 ``xx yy zz yz xz xy`` or 3×3; eV/Å³, tensile positive) as a 3×3 tensor
    in bar, pressure convention (compressive positive): ``−1.602176634e6 · σ_ASE``."""
    import numpy as np

    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    elif s.shape != (3, 3):
        raise ValueError(f"ASE stress must have shape (6,) or (3, 3), got {s.shape}")
    return -EV_PER_A3_IN_BAR * s
