"""mpisnap generate: the entropy estimators, the analytic gradient of the objective (against
finite differences), the constraints of every generated structure, the [GENERATE] section, the
outputs, --resume, replaced labels and the errors. EMT copper/nickel are the oracles."""
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read
from ase.neighborlist import neighbor_list

import mpisnap
from mpisnap import Descriptor
from mpisnap.generation import driver
from mpisnap.generation.entropy import Snapshot, Whitening, kl_entropy, smooth_entropy
from mpisnap.generation.inputs import read_generate_input
from mpisnap.generation.optimise import Objective, descriptors_of
from mpisnap.generation.structures import WALL_MARGIN, Param, random_structure
from mpisnap.plugin_manager import build_registry, get_plugin_manager
from mpisnap.records import ConfigRef
from mpisnap.settings import SettingsError, load_settings
from mpisnap.testing import emt_suite

TESTS = Path(__file__).resolve().parent

BISPECTRUM = {"type": "Cu Ni", "twojmax": 4, "rcutfac": 4.2, "radelem": 0.5}


def small(**generate):
    """A tiny two-element input (a few seconds)."""
    g = {"natoms": "2 6", "volume_per_atom": "10 14", "max_strain": 0.1, "nconfigs": 6,
         "min_distance": 2.0, "iterations": 2, "seed": 3}
    g.update(generate)
    return {"BISPECTRUM": dict(BISPECTRUM), "GENERATE": g}


def write_input(folder: Path, sections: dict, name="gen.in", extra="") -> Path:
    lines = []
    for sec, body in sections.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {v}" for k, v in body.items()]
        lines.append("")
    path = folder / name
    path.write_text("\n".join(lines) + extra)
    return path


# -- estimators -----------------------------------------------------------------------------------

def test_kozachenko_leonenko_matches_the_entropy_of_a_gaussian():
    rng = np.random.default_rng(0)
    D = 3
    X = rng.normal(size=(2000, D))
    exact = 0.5 * D * math.log(2 * math.pi * math.e)
    assert kl_entropy(X) == pytest.approx(exact, abs=0.1)
    # entropy is translation invariant and shifts by D log s under scaling
    assert kl_entropy(2.0 * X + 5.0) == pytest.approx(kl_entropy(X) + D * math.log(2), abs=1e-9)
    # the soft minimum is below the minimum: a lower bound, close to it
    assert kl_entropy(X) - 0.5 < smooth_entropy(X, "softmin") < kl_entropy(X)
    # the smooth estimators (scale from the cloud itself) shift by D log s under scaling too
    for est in ("gaussian", "softmin"):
        assert smooth_entropy(3.0 * X - 1.0, est) == pytest.approx(
            smooth_entropy(X, est) + D * math.log(3), abs=1e-9)


def test_whitening_makes_unit_covariance():
    rng = np.random.default_rng(1)
    B = rng.normal(size=(500, 4)) @ np.array([[3, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, 0.2],
                                                [0, 0, 0, 2]]) + 7.0
    W = Whitening.fit(B)
    X = W(B)
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(np.cov(X, rowvar=False), np.eye(4), atol=1e-9)


@pytest.mark.parametrize("estimator", ["gaussian", "softmin"])
def test_config_terms_are_the_change_of_the_whole_set(estimator):
    """The incremental terms of one configuration equal the smooth entropy of the whole cloud
    computed from scratch (same fixed scale), before and after moving its points."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 5))
    owner = np.repeat(np.arange(8), 5)
    snap = Snapshot(X, owner, estimator)
    terms = snap.config_terms(3)
    mine = owner == 3

    def total(Xn):
        F, _ = snap.kernel.F(*_phi(snap, Xn), snap.c)
        return F.sum()

    Y = X[mine] + rng.normal(scale=0.3, size=(5, 5))
    X2 = X.copy()
    X2[mine] = Y
    v0, _ = terms.value_and_grad(X[mine])
    v1, _ = terms.value_and_grad(Y)
    assert v1 - v0 == pytest.approx(total(X2) - total(X), rel=1e-9, abs=1e-9)


def _phi(snap, X):
    from mpisnap.generation.entropy import _sqdist

    G, _ = snap.kernel.g(_sqdist(X, X), snap.c[:, None])
    np.fill_diagonal(G, 0.0)
    return (G.sum(1),)


# -- the gradient of the objective ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cloud():
    d = Descriptor(type=["Cu", "Ni"], twojmax=4, rcutfac=4.2, radelem=0.5, threads=1)
    rng = np.random.default_rng(4)
    cfgs = [random_structure(rng, ["Cu", "Ni"], [0.5, 0.5], (3, 6), (10, 14), 0.1, 2.0)
            for _ in range(6)]
    Bs = [descriptors_of(d, p, x).B for p, x in cfgs]
    return d, cfgs, Bs


def _objective(cloud, estimator, k, d_wall):
    d, cfgs, Bs = cloud
    W, snaps = {}, {}
    for e in ("Cu", "Ni"):
        rows, own = [], []
        for j, ((p, _), B) in enumerate(zip(cfgs, Bs)):
            m = np.array(p.symbols) == e
            rows.append(B[m])
            own += [j] * int(m.sum())
        W[e] = Whitening.fit(np.vstack(rows))
        snaps[e] = Snapshot(W[e](np.vstack(rows)), np.array(own), estimator)
    p, x = cfgs[k]
    return Objective(d, p, {e: snaps[e].config_terms(k) for e in W}, W, d_wall), x


@pytest.mark.parametrize("estimator", ["gaussian", "softmin"])
@pytest.mark.parametrize("wall", [False, True])
def test_objective_gradient_equals_finite_differences(cloud, estimator, wall):
    """Positions, the six distortion components and the volume, through the core's
    per-neighbour derivatives (entropy) and the wall."""
    obj, x = _objective(cloud, estimator, 2, 2.4 if wall else 0.5)
    x = x + np.random.default_rng(5).normal(scale=0.03, size=x.shape)
    f, g = obj(x)
    if wall:
        assert f > -obj.entropy(x, grad=False)  # the wall is active here
    h = 1e-5
    fd = np.array([(obj(x + h * e)[0] - obj(x - h * e)[0]) / (2 * h) for e in np.eye(len(x))])
    n = obj.param.natoms
    scale = np.abs(fd).max()
    np.testing.assert_allclose(g[:3 * n], fd[:3 * n], atol=2e-6 * scale)   # positions
    np.testing.assert_allclose(g[3 * n:], fd[3 * n:], atol=2e-6 * scale)   # strain, volume
    assert np.abs(g[3 * n:]).max() > 1e-3 * scale  # the cell terms are not trivially zero


# -- settings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("volume_per_atom", None, "[GENERATE] volume_per_atom: required"),
    ("min_distance", None, "[GENERATE] min_distance: required"),
    ("natoms", "8 4", "[GENERATE] natoms: min 8 > max 4"),
    ("natoms", "0 4", "[GENERATE] natoms: must be >= 1"),
    ("estimator", "knn", "[GENERATE] estimator: expected one of gaussian, softmin"),
    ("composition", "1 1 1", "[GENERATE] composition: 3 fractions for the 2 elements"),
    ("elements", "Cu Fe", "[GENERATE] elements: 'Fe' is not an element of [BISPECTRUM] type"),
    ("oracle", "EMT", "[GENERATE] oracle: expected module:Class"),
    ("oracle_args", "{nope", "[GENERATE] oracle_args: not valid one-line JSON"),
    ("max_strain", "0.7", "[GENERATE] max_strain: must lie in [0, 0.5)"),
    ("nconfig", "3", "[GENERATE] nconfig: unknown key (did you mean 'nconfigs'?)"),
])
def test_generate_section_errors_name_file_section_and_key(tmp_path, key, value, message):
    sections = small()
    if value is None:
        del sections["GENERATE"][key]
    else:
        sections["GENERATE"][key] = value
    if key == "oracle_args":
        sections["GENERATE"]["oracle"] = "ase.calculators.emt:EMT"
    path = write_input(tmp_path, sections)
    with pytest.raises(SettingsError) as info:
        read_generate_input(path)
    assert str(info.value) == f"gen.in: {message}" or str(info.value).startswith(
        f"gen.in: {message}"), str(info.value)


def test_generate_reads_only_its_sections_and_fit_ignores_generate(tmp_path):
    sections = small(composition="3 1")
    sections["PATH"] = {"dataPath": "not/there/yet", "groupFile": "missing_groups.txt"}
    path = write_input(tmp_path, sections)
    inp = read_generate_input(path, ["GENERATE.seed=9"])
    assert inp.elements == ("Cu", "Ni") and inp.composition == (0.75, 0.25)
    assert inp.generate.seed == 9 and inp.generate.volume_per_atom == (10.0, 14.0)
    assert inp.base_dir == str(tmp_path)
    # fit: [GENERATE] is accepted and kept unparsed, even when invalid for generate
    fit_in = write_input(tmp_path, {"BISPECTRUM": {"type": "Cu"}, "GENERATE": {"natoms": "x"}},
                         "fit.in")
    s = load_settings(fit_in)
    assert "GENERATE" in s.unparsed_sections
    with pytest.raises(SettingsError, match=r"gen\.in: \[GENERATE\]: missing"):
        read_generate_input(write_input(tmp_path, {"BISPECTRUM": {"type": "Cu"}}))
    with pytest.raises(SettingsError, match=r"\[GENRATE\]: unknown section \(did you mean "
                                            r"'GENERATE'"):
        read_generate_input(write_input(tmp_path, {"BISPECTRUM": {"type": "Cu"},
                                                   "GENRATE": {}}))


# -- generating -----------------------------------------------------------------------------------

def _check_structures(result, g, elements):
    for at in result.structures:
        assert g["natoms"][0] <= len(at) <= g["natoms"][1]
        assert set(at.get_chemical_symbols()) <= set(elements)
        v = at.get_volume() / len(at)
        assert g["volume_per_atom"][0] - 1e-9 <= v <= g["volume_per_atom"][1] + 1e-9
        cell = np.asarray(at.cell)
        np.testing.assert_allclose(cell, cell.T, atol=1e-12)  # no rotation
        F = cell / at.get_volume() ** (1 / 3)                   # (I+E)/det(I+E)^(1/3)
        assert np.abs(F - np.eye(3) * np.trace(F) / 3).max() < 2.5 * g["max_strain"]
        _, d = neighbor_list("id", at, g["min_distance"])   # brute check, images included
        assert len(d) == 0, d.min()


def test_generated_structures_obey_every_constraint_and_entropy_grows(caplog):
    sections = small(iterations=3)
    with caplog.at_level(logging.INFO, logger="mpisnap"):
        result = mpisnap.generate(sections, threads=1)
    g = {"natoms": (2, 6), "volume_per_atom": (10, 14), "max_strain": 0.1, "min_distance": 2.0}
    assert len(result.structures) == 6 and result.labels == [None] * 6
    _check_structures(result, g, ("Cu", "Ni"))
    kl = [h["kl"] for h in result.history]
    assert [h["iteration"] for h in result.history] == [0, 1, 2, 3]
    assert kl[-1] > kl[0] + 1.0
    assert result.history[-1]["smooth"] > result.history[0]["smooth"]
    assert sum("generate: iteration" in r.getMessage() for r in caplog.records) == 4
    # same seed, same structures
    again = mpisnap.generate(sections, threads=1)
    for a, b in zip(result.structures, again.structures):
        np.testing.assert_array_equal(a.positions, b.positions)


def test_generated_set_has_more_entropy_than_md_and_displacements():
    """N generated configurations against N MD snapshots and N randomly displaced crystals of
    the same element and sizes: higher by the optimised (gaussian) estimator and by
    Kozachenko-Leonenko, in one whitening shared by the three sets."""
    n = 12
    sections = {"BISPECTRUM": {"type": "Cu", "twojmax": 4, "rcutfac": 4.2, "radelem": 0.5},
                "GENERATE": {"natoms": "4 8", "volume_per_atom": "10 14", "nconfigs": n,
                             "min_distance": 2.1, "iterations": 3, "seed": 1}}
    gen = mpisnap.generate(sections, threads=1).structures
    md = emt_suite.md_snapshots(n, (4, 8), steps=60)
    disp = emt_suite.displaced(n, (4, 8))
    d = Descriptor(type=["Cu"], twojmax=4, rcutfac=4.2, radelem=0.5, threads=1)
    B = {name: np.vstack([d.compute(a, forces=False, virial=False).B for a in s])
         for name, s in (("gen", gen), ("md", md), ("disp", disp))}
    W = Whitening.fit(np.vstack(list(B.values())))
    kl = {k: kl_entropy(W(v)) for k, v in B.items()}
    smooth = {k: smooth_entropy(W(v), "gaussian") for k, v in B.items()}
    assert kl["gen"] > kl["md"] and kl["gen"] > kl["disp"], kl
    assert smooth["gen"] > smooth["md"] and smooth["gen"] > smooth["disp"], smooth


def _counting_oracle(folder: Path, fail_calls=()) -> str:
    """A module file with an EMT oracle that counts its calls in ``calls.txt`` and raises on the
    given call numbers (1-based)."""
    (folder / "counting.py").write_text(
        "import os\n"
        "from ase.calculators.emt import EMT\n"
        f"FAIL = {tuple(fail_calls)!r}\n"
        "class Counting(EMT):\n"
        "    def __init__(self, log):\n"
        "        super().__init__()\n"
        "        self.log = log\n"
        "    def calculate(self, atoms=None, *a, **k):\n"
        "        with open(self.log, 'a') as fh:\n"
        "            fh.write('x')\n"
        "        with open(self.log) as fh:\n"
        "            n = len(fh.read())\n"
        "        if n in FAIL:\n"
        "            raise RuntimeError(f'no convergence (call {n})')\n"
        "        super().calculate(atoms, *a, **k)\n")
    return "counting.py:Counting"


def _calls(folder: Path) -> int:
    p = folder / "calls.txt"
    return len(p.read_text()) if p.exists() else 0


def _run_cli(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "mpisnap", "generate", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_outputs_labels_and_resume_without_relabelling(tmp_path):
    spec = _counting_oracle(tmp_path)
    sections = small(nconfigs=5, oracle=spec,
                     oracle_args='{"log": "%s"}' % (tmp_path / "calls.txt"))
    inp = write_input(tmp_path, sections)
    out = tmp_path / "out"
    p = _run_cli([inp, "--output-dir", out, "--threads", "1"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "mpisnap generate done: 5 structures" in p.stdout
    assert "generate: iteration 2/2" in p.stderr
    frames = read(out / "generated.extxyz", ":")
    assert len(frames) == 5
    files = sorted(os.listdir(out / "JSON" / "Generated"))
    assert files == [f"generated_{k:05d}.json" for k in range(5)]
    assert (out / "generate_summary.png").stat().st_size > 10000
    assert len((out / "generate_entropy.csv").read_text().splitlines()) == 1 + 3
    # the JSON reader reads them, with the oracle's labels; the extxyz frames match
    reader = build_registry(get_plugin_manager(), ("readers",)).get("readers", "JSON")
    from ase.calculators.emt import EMT

    for k, f in enumerate(files):
        c = reader.load(ConfigRef(f"Generated/{f}", "Generated", str(out / "JSON/Generated" / f)))
        np.testing.assert_allclose(c.positions, frames[k].positions, atol=1e-6)
        at = Atoms(c.symbols, positions=c.positions, cell=c.cell, pbc=True, calculator=EMT())
        assert c.energy == pytest.approx(at.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(c.forces, at.get_forces(), atol=1e-10)
        assert frames[k].get_potential_energy() == pytest.approx(c.energy, abs=1e-10)
    assert _calls(tmp_path) == 5
    before = {f: (out / "JSON/Generated" / f).read_bytes() for f in files}
    # --resume after a completed run: nothing relabelled, the same outputs
    mpisnap.generate(inp, output_dir=out, threads=1, resume=True)
    assert _calls(tmp_path) == 5
    # two labels lost (interrupted labelling): only those are made again
    for f in files[1:3]:
        os.remove(out / driver.CHECKPOINT / "labels" / f)
    mpisnap.generate(inp, output_dir=out, threads=1, resume=True)
    assert _calls(tmp_path) == 7
    assert {f: (out / "JSON/Generated" / f).read_bytes() for f in files} == before
    # --resume with other settings is refused (one line, exit status 2)
    p = _run_cli([inp, "--output-dir", out, "--resume", "--set", "GENERATE.seed=4"], tmp_path)
    assert p.returncode == 2
    assert "made with other [BISPECTRUM]/[GENERATE] settings" in p.stderr
    assert p.stderr.count("\n") == 1


def test_resume_after_an_interrupted_optimisation_gives_the_same_set(tmp_path, monkeypatch):
    sections = small(iterations=3)
    ref = mpisnap.generate(sections, threads=1, output_dir=tmp_path / "ref")
    real = driver.optimise
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 6 * 2 + 1:  # during the third outer iteration
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(driver, "optimise", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mpisnap.generate(sections, threads=1, output_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "generated.extxyz").exists()
    monkeypatch.setattr(driver, "optimise", real)
    res = mpisnap.generate(sections, threads=1, output_dir=tmp_path / "run", resume=True)
    for a, b in zip(ref.structures, res.structures):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell, b.cell)
    assert [h["kl"] for h in res.history] == [h["kl"] for h in ref.history]


def test_a_failed_label_is_logged_and_replaced(tmp_path, caplog):
    spec = _counting_oracle(tmp_path, fail_calls=(2, 3))
    sections = small(nconfigs=4, iterations=1, oracle=spec,
                     oracle_args='{"log": "%s"}' % (tmp_path / "calls.txt"))
    inp = write_input(tmp_path, sections)
    with caplog.at_level(logging.INFO, logger="mpisnap"):
        result = mpisnap.generate(inp, threads=1, output_dir=tmp_path / "out")
    assert result.replaced == [1]
    assert all(lab is not None for lab in result.labels)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "configuration 1: the oracle failed: RuntimeError: no " \
                                   "convergence (call 2)" in warnings[0]
    assert len(os.listdir(tmp_path / "out" / "JSON" / "Generated")) == 4
    g = {"natoms": (2, 6), "volume_per_atom": (10, 14), "max_strain": 0.1, "min_distance": 2.0}
    _check_structures(result, g, ("Cu", "Ni"))


def test_fill_the_gaps_uses_the_reference_set(tmp_path):
    ref = emt_suite.displaced(4, (4, 8), amplitude=0.05)
    emt_suite.write_group(tmp_path / "ref" / "Bulk", ref)
    sections = {"BISPECTRUM": {"type": "Cu", "twojmax": 4, "rcutfac": 4.2, "radelem": 0.5},
                "GENERATE": {"natoms": "3 6", "volume_per_atom": "10 14", "nconfigs": 4,
                             "min_distance": 2.1, "iterations": 2, "seed": 2,
                             "reference": "ref"}}
    result = mpisnap.generate(sections, threads=1, base_dir=tmp_path)
    d = Descriptor(type=["Cu"], twojmax=4, rcutfac=4.2, radelem=0.5, threads=1)
    Bref = np.vstack([d.compute(a, forces=False, virial=False).B for a in ref])
    Bgen = np.vstack([d.compute(a, forces=False, virial=False).B for a in result.structures])
    W = Whitening.fit(Bref)  # the reference set's whitening, and its points in the cloud
    assert result.history[-1]["kl"] == pytest.approx(kl_entropy(W(np.vstack([Bref, Bgen]))),
                                                     rel=1e-9)
    assert result.history[-1]["kl"] > result.history[0]["kl"]
    with pytest.raises(ValueError, match=r"\[GENERATE\] reference: no such file or folder"):
        mpisnap.generate(sections, threads=1, base_dir=tmp_path / "ref")


@pytest.mark.parametrize("override, message", [
    ("GENERATE.oracle=no_module_q:Calc", "[GENERATE] oracle: no_module_q:Calc: cannot import"),
    ("GENERATE.volume_per_atom=1 5.5", "[GENERATE] min_distance: atoms 2.0 Å apart need at "
                                       "least 5.657 Å³ per atom"),
    ("GENERATE.min_distance=4.5,GENERATE.volume_per_atom=70 80",
     "[GENERATE] min_distance: 4.5 Å is not below the shortest descriptor cutoff"),
])
def test_cli_errors_are_one_line(tmp_path, override, message):
    inp = write_input(tmp_path, small())
    sets = [a for o in override.split(",") for a in ("--set", o)]
    p = _run_cli([inp, "--output-dir", tmp_path / "out", *sets], tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("mpisnap: error: gen.in: " + message), p.stderr
    assert p.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_stale_generated_files_are_refused(tmp_path):
    (tmp_path / "out" / "JSON" / "Generated").mkdir(parents=True)
    (tmp_path / "out" / "JSON" / "Generated" / "generated_00009.json").write_text("{}")
    with pytest.raises(ValueError, match="holds files this run would not replace"):
        mpisnap.generate(small(), output_dir=tmp_path / "out")


def test_generate_help_lists_the_job_options():
    p = subprocess.run([sys.executable, "-m", "mpisnap", "generate", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for opt in ("--set", "--output-dir", "--threads", "--quiet", "--debug", "--resume"):
        assert opt in p.stdout


def test_random_structures_respect_min_distance_in_skewed_small_cells():
    rng = np.random.default_rng(11)
    made = 0
    for _ in range(30):
        out = random_structure(rng, ["Cu"], [1.0], (1, 5), (9, 12), 0.3, 2.0)
        if out is None:  # e.g. one atom in a cell with a lattice vector below 2 Å: refused
            continue
        made += 1
        p, x = out
        at = p.atoms(x)
        _, d = neighbor_list("id", at, 2.0)
        assert len(d) == 0
        assert isinstance(p, Param) and WALL_MARGIN > 1
    assert made >= 20


def test_lazy_export_and_light_import():
    code = ("import sys, mpisnap; assert 'mpisnap.generation' not in sys.modules; "
            "f = mpisnap.generate; assert callable(f); import mpisnap.generation.driver")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    assert "generate" in mpisnap.__all__
    assert bulk  # used by other tests of the module


def test_the_example_input_serves_generate_and_fit():
    example = TESTS.parent / "examples" / "generate_Cu" / "generate_Cu.in"
    inp = read_generate_input(example)
    assert inp.generate.oracle == "ase.calculators.emt:EMT" and inp.generate.nconfigs == 30
    s = load_settings(example)
    assert "GENERATE" in s.unparsed_sections and s.groups[0].name == "Generated"
