#!/usr/bin/env python
"""Generate the bundled example's training data (examples/Cu_EMT) with ASE's EMT calculator.

Copper, labelled by the effective-medium potential in ASE (cheap, deterministic): bulk fcc at
several volumetric and shear strains, displaced supercells, a vacancy, a (111) surface slab and
hot MD snapshots. Written in FitSNAP JSON (one configuration per file, one folder per group,
energies eV, forces eV/Å, stress in bar with the pressure sign convention).

    python scripts/make_example_data.py [--out examples/Cu_EMT]
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

A0 = 3.61
EV_A3_TO_BAR = 1.602176634e6  # 1 eV/Å^3 in bar


def write(folder: Path, name: str, atoms) -> None:
    atoms = atoms.copy()
    atoms.calc = EMT()
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    # ASE stress: eV/Å^3, tensile positive. FitSNAP JSON: bar, compressive positive.
    s = -atoms.get_stress(voigt=False) * EV_A3_TO_BAR
    data = {"Dataset": {
        "Label": name, "PositionsStyle": "angstrom", "LatticeStyle": "angstrom",
        "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
        "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol",
        "Data": [{"Positions": atoms.get_positions().round(10).tolist(),
                  "Lattice": np.array(atoms.get_cell()).round(10).tolist(),
                  "AtomTypes": atoms.get_chemical_symbols(), "NumAtoms": len(atoms),
                  "Energy": float(e), "Forces": f.tolist(), "Stress": s.tolist()}]}}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.json", "w") as fh:
        fh.write(f"# {name}: Cu, ASE EMT labels, made by scripts/make_example_data.py\n")
        json.dump(data, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "examples" / "Cu_EMT"))
    args = ap.parse_args()
    out = Path(args.out) / "JSON"
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(7)

    for k, eps in enumerate(np.linspace(-0.04, 0.04, 12)):  # volumetric strain
        at = bulk("Cu", "fcc", a=A0, cubic=True).repeat(2)
        at.set_cell(at.cell * (1 + eps), scale_atoms=True)
        write(out / "Strain", f"strain_{k:02d}", at)
    for k in range(12):  # random small shear/normal strains with rattling
        at = bulk("Cu", "fcc", a=A0, cubic=True).repeat(2)
        F = np.eye(3) + rng.normal(scale=0.02, size=(3, 3))
        at.set_cell(at.cell @ F.T, scale_atoms=True)
        at.rattle(0.02, seed=100 + k)
        write(out / "Shear", f"shear_{k:02d}", at)
    for k in range(40):  # displaced supercells
        at = bulk("Cu", "fcc", a=A0 * (1 + rng.uniform(-0.01, 0.01)), cubic=True).repeat(2)
        at.rattle(0.05 + 0.1 * k / 40, seed=200 + k)
        write(out / "Displaced", f"displaced_{k:02d}", at)
    for k in range(15):  # vacancy
        at = bulk("Cu", "fcc", a=A0, cubic=True).repeat(3)
        del at[13]
        at.rattle(0.04, seed=300 + k)
        write(out / "Vacancy", f"vacancy_{k:02d}", at)
    for k in range(15):  # (111) surface slab with vacuum, periodic cell
        at = fcc111("Cu", size=(2, 2, 5), a=A0, vacuum=6.0, periodic=True)
        at.rattle(0.04, seed=400 + k)
        write(out / "Surface", f"surface_{k:02d}", at)
    md = bulk("Cu", "fcc", a=A0, cubic=True).repeat(2)  # hot MD snapshots (1200 K)
    md.calc = EMT()
    MaxwellBoltzmannDistribution(md, temperature_K=1200, rng=rng, force_temp=True)
    dyn = Langevin(md, 2 * units.fs, temperature_K=1200, friction=0.02, rng=rng, fixcm=False)
    for k in range(30):
        dyn.run(20)
        write(out / "MD", f"md_{k:02d}", md)
    n = sum(1 for _ in out.rglob("*.json"))
    print(f"wrote {n} configurations under {out}")


if __name__ == "__main__":
    main()
