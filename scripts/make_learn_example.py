#!/usr/bin/env python
"""Make the data of the active-learning example (examples/Cu_EMT_learn) with ASE's EMT copper.

* ``JSON/Seed/``: 10 bulk structures (strained, sheared, displaced), EMT-labelled, FitSNAP JSON:
  the starting training set;
* ``pool.extxyz.gz``: 2,000 unlabelled candidates — bulk under strain, shear and random
  displacements, vacancies, (111) and (100) slabs and hot displacements
  (:func:`mpisnap.testing.learn_pools.copper_pool`);
* ``validation.extxyz.gz``: 100 more of the same kinds, EMT-labelled (energies eV, forces eV/Å,
  stress in ASE's eV/Å³), scored every round.

    python scripts/make_learn_example.py [--out examples/Cu_EMT_learn]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ase.io import write

from mpisnap.testing.learn_pools import bulk_seeds, copper_pool, label, write_seed_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "examples" / "Cu_EMT_learn"))
    ap.add_argument("--pool", type=int, default=2000)
    args = ap.parse_args()
    out = Path(args.out)
    if (out / "JSON").exists():
        shutil.rmtree(out / "JSON")
    write_seed_json(str(out / "JSON" / "Seed"), bulk_seeds(10, seed=2026))
    write(out / "pool.extxyz.gz", copper_pool(args.pool, seed=2026), format="extxyz")
    write(out / "validation.extxyz.gz", label(copper_pool(100, seed=3026)), format="extxyz")


if __name__ == "__main__":
    main()
