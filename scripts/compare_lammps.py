#!/usr/bin/env python
"""Print the largest relative difference between mpisnap and LAMMPS `compute snap` for every flag
set and structure the tests check (B, energy row, force rows, virial rows, per-pair dB/dr).

    python scripts/compare_lammps.py
"""
from mpisnap.testing.compare import FLAG_SETS, STRUCTURES, compare, flag_set_structure
from mpisnap.testing.lammps import lammps_version


def main() -> None:
    print(f"# LAMMPS {lammps_version()}; max |ours - lammps| / max |lammps| per array")
    print("| case | B | energy row | force rows | virial rows | dB_i/dr_j |")
    print("|---|---:|---:|---:|---:|---:|")

    def row(name, err):
        cells = [f"{err[k]:.1e}" if k in err else "—"
                 for k in ("B", "energy_row", "force_rows", "virial_rows", "dBdr")]
        print(f"| {name} | " + " | ".join(cells) + " |")

    for name, (params, ntypes) in FLAG_SETS.items():
        row(name, compare(params, flag_set_structure(name), ntypes,
                          dgrad=not params.get("quadraticflag")))
    for name, make in STRUCTURES.items():
        for chem in (0, 1):
            params = dict(twojmax=4, chemflag=chem, bnormflag=chem, wselfallflag=chem)
            row(f"{name}, 2 types{', chem' if chem else ''}", compare(params, make(ntypes=2), 2))


if __name__ == "__main__":
    main()
