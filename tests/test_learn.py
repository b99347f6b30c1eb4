"""``mpisnap learn``: the [LEARN] section, a campaign's outputs, the incremental refit against a
fit from scratch, resume (in process and after SIGKILL), oracle failures, the CLI. EMT copper
with tiny descriptors; the oracle is ASE's EMT (or a wrapper of it that counts, fails or
kills)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap.learning.campaign import LearnError
from mpisnap.settings import SettingsError, load_settings
from mpisnap.testing.learn_pools import bulk_seeds, copper_pool, label, write_seed_json

INPUT = """[BISPECTRUM]
numTypes = 1
type = Cu
twojmax = {twojmax}
rcutfac = 4.8
rfac0 = 0.99363
rmin0 = 0.0
wj = 1.0
radelem = 0.5

[CALCULATOR]
energy = 1
force = 1
stress = {stress}

[SOLVER]
solver = SVD

[PATH]
dataPath = JSON

[OUTFILE]
potential = Cu_pot
metrics = Cu_metrics.md

[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
Seed = 1.0 0.0 10.0 1.0 1.0e-4

[LEARN]
{learn}
"""

#: A Python file the tests name as the oracle: EMT that logs every call, fails on structures
#: with a given number of atoms, and SIGKILLs its own process at a given call.
ORACLE = '''
import os, signal
from ase.calculators.emt import EMT

class Logged(EMT):
    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if system_changes is None:
            from ase.calculators.calculator import all_changes
            system_changes = all_changes
        log = os.environ.get("LEARN_ORACLE_LOG")
        n = 0
        if log:
            with open(log, "a") as fh:
                fh.write("%d %.10f\\n" % (len(atoms), atoms.positions.sum()))
            with open(log) as fh:
                n = len(fh.readlines())
        if len(atoms) == int(os.environ.get("LEARN_ORACLE_FAIL_NATOMS", -1)):
            raise RuntimeError("SCF did not converge")
        if n and n == int(os.environ.get("LEARN_ORACLE_KILL_AT", -1)):
            os.kill(os.getpid(), signal.SIGKILL)
        super().calculate(atoms, properties, system_changes)
'''


def make_campaign(root: Path, learn: str, *, npool: int = 24, nseeds: int = 4, twojmax: int = 2,
                  stress: int = 1, validation: int = 0, seed: int = 0) -> Path:
    """An input folder: JSON/Seed (EMT-labelled bulk), pool.extxyz, optional val.extxyz, the
    oracle file and learn.in; returns the input path."""
    from ase.io import write

    root.mkdir(parents=True, exist_ok=True)
    write_seed_json(str(root / "JSON" / "Seed"), bulk_seeds(nseeds, seed))
    write(root / "pool.extxyz", copper_pool(npool, seed))
    if validation:
        write(root / "val.extxyz", label(copper_pool(validation, seed + 100)))
    (root / "oracle_emt.py").write_text(ORACLE)
    inp = root / "learn.in"
    inp.write_text(INPUT.format(twojmax=twojmax, stress=stress, learn=learn))
    return inp


BASIC = """pool = pool.extxyz
oracle = oracle_emt.py:Logged
budget = 6
batch_size = 3"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished campaign (6 labels, 3 per round, validation set) and its result."""
    root = tmp_path_factory.mktemp("learn")
    inp = make_campaign(root, BASIC + "\nvalidation = val.extxyz", validation=6)
    out = root / "out"
    result = mpisnap.learn(str(inp), output_dir=str(out), autoload=False)
    return inp, out, result


def test_campaign_outputs(finished):
    inp, out, result = finished
    assert result.stop == "budget" and len(result.labelled) == 6 == result.oracle_calls
    assert [h["labels"] for h in result.rounds] == [0, 3, 6]
    assert all(h["max_std"] >= h["mean_std"] > 0 for h in result.rounds)
    assert all(np.isfinite(h["val_force_rmse"]) for h in result.rounds)
    # one label file per chosen structure, the oracle's only, readable by the JSON reader
    files = sorted(p.stem for p in (out / "labelled" / "Learned").glob("*.json"))
    assert files == sorted(result.labelled)
    assert all(name.startswith("pool_") for name in files)
    # per-round potentials; the learning curve; the learned input
    for r in range(3):
        assert (out / "rounds" / f"round_{r:03d}" / "Cu_pot.snapcoeff").is_file()
    csv = (out / "learn_curve.csv").read_text().splitlines()
    assert csv[0].startswith("selection,round,labels") and len(csv) == 4
    assert (out / "learn_curve.png").stat().st_size > 1000
    s = load_settings(str(out / "learn_learned.in"))
    assert [g.name for g in s.groups] == ["Seed", "Learned"]
    assert os.path.isabs(s.path.dataPath) and s.group("Learned").eweight == 10.0
    assert (out / "Cu_pot.snapcoeff").is_file() and (out / "Cu_metrics.md").is_file()
    ref = mpisnap.fit(str(out / "learn_learned.in"), write=False, autoload=False)
    np.testing.assert_array_equal(ref.coefficients, result.fit.coefficients)


def test_incremental_refit_equals_a_fit_from_scratch(finished):
    """The last round's coefficients (triangles folded round by round) predict what the final
    fit from scratch on the same data predicts, to 1e-8 relative."""
    inp, out, result = finished
    scratch = result.fit.coefficients
    from mpisnap.models import LinearPredictor

    model = result.fit.model
    a, b = (LinearPredictor(model, c) for c in (result.coefficients, scratch))
    for at in copper_pool(5, 7):
        pa, pb = a.predict(at), b.predict(at)
        assert abs(pa.energy - pb.energy) <= 1e-8 * abs(pb.energy)
        assert np.abs(pa.forces - pb.forces).max() <= 1e-8 * np.abs(pb.forces).max()


def test_fold_counts_every_new_row_and_tallies_those_of_weight_above_zero(tmp_path):
    """A round's fold: each kind's folded system counts all its rows (a kind of weight 0 too,
    as a fit's compressed system does); the posterior's tally only the rows of weight > 0."""
    from mpisnap.comm import SerialComm
    from mpisnap.learning.campaign import _fold, _start_systems
    from mpisnap.oracle import Labels
    from mpisnap.pipeline import Timer, prepare
    from mpisnap.testing.learn_pools import label
    from mpisnap.units import ase_stress_to_bar

    setup = prepare(str(make_campaign(tmp_path, BASIC, npool=2)), autoload=False)
    comm = SerialComm()
    systems, nrows, log_w2 = _start_systems(comm, setup, Timer(), False)
    new = [(f"new{i}", at, Labels(at.get_potential_energy(), at.get_forces(),
                                  ase_stress_to_bar(at.get_stress())))
           for i, at in enumerate(label(copper_pool(2, 5)))]
    natoms = sum(len(at) for _, at, _ in new)

    class Post:  # what _fold asks of the posterior (for the held-out scores only)
        def model_std(self, A):
            return np.ones(len(A))

        def label_variance(self, kind, weight):
            return 1.0

    (out, nrows2, log_w2b), scores = _fold(
        comm, setup, (systems, nrows, log_w2), new, ["Seed", "Learned"], "Learned",
        (10.0, 1.0, 0.0), np.zeros(setup.model.ncols), Post())
    added = {0: 2, 1: 3 * natoms, 2: 12}
    assert {k: out[k].nrows - systems[k].nrows for k in range(3)} == added
    assert {k: nrows2[k] - nrows[k] for k in range(3)} == {0: 2, 1: 3 * natoms, 2: 0}
    assert log_w2b[0] - log_w2[0] == pytest.approx(2 * math.log(100.0))
    assert log_w2b[2] == log_w2[2] and {k: len(v) for k, v in scores.items()} == added


def test_labels_are_the_oracles(finished):
    from ase.calculators.emt import EMT
    from mpisnap.oracle import read_labelled_json

    inp, out, result = finished
    atoms, labels = read_labelled_json(out / "labelled" / "Learned" / f"{result.labelled[0]}.json")
    atoms.calc = EMT()
    assert labels.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(labels.forces, atoms.get_forces(), atol=1e-10)


def test_resume_asks_the_oracle_for_nothing_written(finished, tmp_path):
    inp, out, result = finished
    with pytest.raises(LearnError, match="add --resume"):
        mpisnap.learn(str(inp), output_dir=str(out), autoload=False, refit=False)
    again = mpisnap.learn(str(inp), output_dir=str(out), autoload=False, resume=True,
                          refit=False)
    assert again.oracle_calls == 0 and again.labelled == result.labelled
    np.testing.assert_array_equal(again.coefficients, result.coefficients)
    with pytest.raises(LearnError, match=r"other settings \(\[LEARN\] selection"):
        mpisnap.learn(str(inp), output_dir=str(out), autoload=False, resume=True,
                      overrides=["LEARN.selection=dopt"])


def test_oracle_failure_is_logged_and_skipped(tmp_path, monkeypatch, caplog):
    inp = make_campaign(tmp_path, BASIC.replace("budget = 6", "budget = 4")
                        + "\nselection = random")
    monkeypatch.setenv("LEARN_ORACLE_FAIL_NATOMS", "8")  # the (1, 1, 2) bulk cells
    out = tmp_path / "out"
    result = mpisnap.learn(str(inp), output_dir=str(out), autoload=False, refit=False)
    assert result.failed and len(result.labelled) == 4
    assert "the oracle failed on" in caplog.text
    assert {p.stem for p in (out / "learn_state" / "failed").glob("*.txt")} == set(result.failed)
    again = mpisnap.learn(str(inp), output_dir=str(out), autoload=False, resume=True,
                          refit=False)
    assert again.oracle_calls == 0 and again.failed == result.failed


def test_random_baseline_runs_beside_the_campaign(tmp_path):
    inp = make_campaign(tmp_path, BASIC.replace("budget = 6", "budget = 3")
                        + "\nrandom_baseline = 1", npool=10, nseeds=3)
    out = tmp_path / "out"
    r = mpisnap.learn(str(inp), output_dir=str(out), autoload=False, refit=False, threads=1)
    assert [h["selection"] for h in r.baseline] == ["random", "random"]
    assert r.oracle_calls == 6 and len(list((out / "baseline" / "labelled" / "Learned")
                                            .glob("*.json"))) == 3
    csv = (out / "learn_curve.csv").read_text()
    assert csv.count("\nivar,") == 2 and csv.count("\nrandom,") == 2


def test_sigkill_mid_round_then_resume_equals_an_uninterrupted_run(tmp_path):
    """The oracle kills the process at its 5th call (second round, batch of 3); ``--resume``
    relabels nothing and ends with the potential of an uninterrupted campaign, bit for bit."""
    learn = BASIC.replace("budget = 6", "budget = 7")
    inp = make_campaign(tmp_path / "a", learn)
    log = tmp_path / "calls.txt"
    env = dict(os.environ, LEARN_ORACLE_LOG=str(log), LEARN_ORACLE_KILL_AT="5",
               OMP_NUM_THREADS="1", MPISNAP_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [sys.executable, "-m", "mpisnap", "learn", str(inp), "--output-dir",
           str(tmp_path / "a" / "out"), "-q"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    written = sorted((tmp_path / "a" / "out" / "labelled" / "Learned").glob("*.json"))
    assert len(written) == 4  # 3 of round 0, 1 of round 1; the 5th was being computed
    env.pop("LEARN_ORACLE_KILL_AT")
    p = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 5 + 3 and len(set(calls)) == 7  # the killed call is made again
    ref = make_campaign(tmp_path / "b", learn)
    mpisnap.learn(str(ref), output_dir=str(tmp_path / "b" / "out"), autoload=False)
    for name in ("Cu_pot.snapcoeff", "learn_curve.csv"):
        a = (tmp_path / "a" / "out" / name).read_text()
        b = (tmp_path / "b" / "out" / name).read_text()
        if name.endswith(".csv"):  # the last column is the round's run time
            a, b = ([line.rsplit(",", 1)[0] for line in x.splitlines()] for x in (a, b))
        assert a == b


# -- the [LEARN] section ----------------------------------------------------------------------

@pytest.mark.parametrize("learn, groups, message", [
    ("pool = p\nbudget = 5", "", r"\[LEARN\] oracle: required"),
    ("pool = p\noracle = ase.calculators.emt:EMT", "", r"\[LEARN\] budget: required"),
    ("oracle = ase.calculators.emt:EMT\nbudget = 5", "", r"\[LEARN\]: give pool"),
    ("pool = p\noracle = emt\nbudget = 5", "", r"\[LEARN\] oracle: expected module:Class"),
    ("pool = p\noracle = ase.calculators.emt:EMT\nbudget = 5\nselection = best", "",
     r"\[LEARN\] selection: expected one of ivar, dopt, maxstd, random"),
    ("pool = p\noracle = ase.calculators.emt:EMT\nbudget = 5\npatience = 2", "",
     r"\[LEARN\] patience: given without validation"),
    ("pool = p\noracle = ase.calculators.emt:EMT\nbudget = 5\nmd_steps = 9", "",
     r"\[LEARN\] md_steps: given without md_start"),
    ("pool = p\noracle = ase.calculators.emt:EMT\nbudget = 5\noracle_pair_style = eam", "",
     r"\[LEARN\] oracle_pair_style: only with oracle = lammps"),
    ("pool = p\noracle = ase.calculators.emt:EMT\nbudget = 5\noracle_args = [1]", "",
     r"\[LEARN\] oracle_args: expected a JSON object"),
])
def test_section_errors(tmp_path, learn, groups, message):
    inp = tmp_path / "x.in"
    inp.write_text(INPUT.format(twojmax=2, stress=0, learn=learn))
    with pytest.raises(SettingsError, match="x.in: " + message):
        load_settings(str(inp), verb="learn")


def test_section_parsed_for_learn_and_ignored_by_fit(tmp_path):
    inp = tmp_path / "x.in"
    learn = ("pool = p\noracle = lammps\noracle_pair_style = eam/alloy\n"
             "oracle_pair_coeff = * * Cu.eam Cu\nbudget = 5\nselection = DOPT")
    inp.write_text(INPUT.format(twojmax=2, stress=0, learn=learn))
    ls = load_settings(str(inp), verb="learn").section("LEARN")
    assert ls.selection == "dopt" and ls.budget == 5 and ls.group == "Learned"
    assert json.loads(ls.oracle_args) == {"pair_style": "eam/alloy",
                                          "pair_coeff": ["* * Cu.eam Cu"]}
    s = load_settings(str(inp))  # fit: accepted, not parsed
    assert "LEARN" in s.unparsed_sections


@pytest.mark.parametrize("change, message", [
    ("smartweights = 1\n", r"smartweights = 1 is refused"),
    ("Learned = 1.0 0.0 1.0 1.0 1.0\n", r"\[LEARN\] group: 'Learned' is a \[GROUPS\] group"),
])
def test_campaign_errors(tmp_path, change, message):
    inp = make_campaign(tmp_path, BASIC, npool=4, nseeds=2)
    inp.write_text(inp.read_text().replace("Seed = ", change + "Seed = "))
    with pytest.raises(LearnError, match=message):
        mpisnap.learn(str(inp), output_dir=str(tmp_path / "out"), autoload=False)
    assert not (tmp_path / "out" / "learn_state").exists()


def test_cli_help_and_one_line_error(tmp_path, capsys):
    from mpisnap.cli import main

    with pytest.raises(SystemExit):
        main(["learn", "--help"])
    text = capsys.readouterr().out
    assert "--resume" in text and "--output-dir" in text and "--set" in text
    inp = make_campaign(tmp_path, BASIC.replace("pool.extxyz", "missing.extxyz"), npool=2,
                        nseeds=2)
    assert main(["learn", str(inp), "--output-dir", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[LEARN] pool: no such file or folder" in err[0]


# -- MD exploration, ranks --------------------------------------------------------------------

def _md_inputs(root: Path, learn: str, **kw) -> Path:
    """A campaign with MD from one 8-atom fcc cell, and a validation set of hot EMT MD frames."""
    from ase.build import bulk
    from ase.io import write
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta
    from ase import units
    from ase.calculators.emt import EMT

    inp = make_campaign(root, learn, **kw)
    write(root / "start.extxyz", bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1)))
    at = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    at.calc = EMT()
    rng = np.random.default_rng(0)
    thermalize_momenta(at, temperature_K=1500, rng=rng)
    dyn = Langevin(at, 2 * units.fs, temperature_K=1500, friction=0.02 / units.fs, rng=rng,
                   fixcm=False)
    frames = []
    for _ in range(6):
        dyn.run(25)
        frames.append(at.copy())
    write(root / "hot.extxyz", label(frames))
    return inp


def test_md_exploration_from_bulk_until_the_stop_rule(tmp_path):
    """A potential fitted to four bulk structures explores at 1500 K: MD frames are labelled
    until the largest calibrated force σ over the round's frames is below stop_std, and the
    errors on independent hot EMT frames fall."""
    learn = ("md_start = start.extxyz\nmd_temperatures = 1500\nmd_steps = 60\nmd_interval = 10\n"
             "md_max_std = 1.0\noracle = ase.calculators.emt:EMT\nbudget = 40\nbatch_size = 4\n"
             "stop_std = 0.3\nvalidation = hot.extxyz\npatience = 10")
    inp = _md_inputs(tmp_path, learn, npool=2, nseeds=4)
    r = mpisnap.learn(str(inp), output_dir=str(tmp_path / "out"), autoload=False, refit=False,
                      threads=1)
    assert r.stop == "stop_std" and 8 <= len(r.labelled) < 40
    assert all(n.startswith("md_r") for n in r.labelled)
    first, last = r.rounds[0], r.rounds[-1]
    assert first["max_std"] > 1.0 and last["max_std"] <= 0.3
    assert last["val_force_rmse"] < 0.6 * first["val_force_rmse"]
    assert last["scale"] > 1.0  # the held-out labels calibrate σ up (SNAP 2J=2 misfits EMT)


def learn_on_two_ranks(inp, out, timeout=300) -> subprocess.CompletedProcess:
    """``mpiexec -n 2 python -m mpisnap learn inp --output-dir out -q`` (one thread a rank, no
    plugin autoload)."""
    from test_mpi import mpiexec

    env = dict(os.environ, OMP_NUM_THREADS="1", MPISNAP_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "mpisnap", "learn",
                           str(inp), "--output-dir", str(out), "-q"], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_selection_identical_on_one_and_two_ranks(tmp_path):
    """Pool and MD candidates, every rank labelling: ``mpiexec -n 2`` chooses the same
    structures as one process, round by round, and ends with the same potential."""
    learn = ("pool = pool.extxyz\nmd_start = start.extxyz\nmd_temperatures = 800 1500\n"
             "md_steps = 30\nmd_interval = 10\nmd_max_std = 2.0\noracle = oracle_emt.py:Logged\n"
             "budget = 8\nbatch_size = 3\noracle_ranks = all")
    inp = _md_inputs(tmp_path, learn, npool=20, nseeds=4)
    one = mpisnap.learn(str(inp), output_dir=str(tmp_path / "one"), autoload=False, threads=1)
    p = learn_on_two_ranks(inp, tmp_path / "two")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "two" / "learn_labels.csv").read_text() == \
        (tmp_path / "one" / "learn_labels.csv").read_text()
    assert any(n.startswith("md_") for n in one.labelled)
    assert any(n.startswith("pool_") for n in one.labelled)
    from mpisnap.testing import teachers as Tch

    _, _, a = Tch.read_snapcoeff(tmp_path / "one" / "Cu_pot.snapcoeff")
    _, _, b = Tch.read_snapcoeff(tmp_path / "two" / "Cu_pot.snapcoeff")
    a, b = np.concatenate(list(a.values())), np.concatenate(list(b.values()))
    assert np.abs(a - b).max() <= 1e-10 * np.abs(a).max()
