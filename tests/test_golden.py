"""mpisnap against LAMMPS numbers recorded with provenance by scripts/make_golden.py."""
import json
from pathlib import Path

import numpy as np
import pytest

from mpisnap import Descriptor

GOLDEN = Path(__file__).parent / "data" / "golden_snap.npz"


def load():
    data = np.load(GOLDEN)
    return data, json.loads(str(data["meta"]))


def test_golden_file_records_its_provenance():
    _, meta = load()
    assert meta["generator"] == "scripts/make_golden.py"
    assert meta["lammps_version"] >= 20250722
    assert meta["cases"]


@pytest.mark.parametrize("name", sorted(load()[1]["cases"]))
def test_matches_golden_lammps_data(name):
    data, meta = load()
    case = meta["cases"][name]
    params = dict(case["params"])
    ntypes = len(params["radelem"])
    d = Descriptor(type=["A", "B"][:ntypes], **meta["common"], **params, threads=2)
    r = d.compute(positions=data[f"{name}/positions"], cell=data[f"{name}/cell"], pbc=case["pbc"],
                  types=data[f"{name}/types"])
    for key in ("B", "energy_row", "force_rows", "virial_rows"):
        ref = data[f"{name}/{key}"]
        err = np.abs(getattr(r, key) - ref).max() / np.abs(ref).max()
        assert err < 1e-10, (key, err)
