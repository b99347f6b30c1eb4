"""Input settings: the FitSNAP ``.in`` file (and the equivalent dict) read into typed, validated Settings."""
import json
import os
import pickle
import subprocess
import sys
import types
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest

from mpisnap import hookimpl, plugin_manager
from mpisnap.plugin_manager import PluginError, build_registry, get_plugin_manager
from mpisnap.records import SettingsSection
from mpisnap.testing.shared import shared_data
from mpisnap.settings import (SECTION_ORDER, GroupSpec, GroupsSettings, Settings, SettingsError,
                              default_sections, load_settings, p_choice, p_float, p_int, p_ints)

INP_FILE = shared_data("InP_JPCA2020", "InP-example.in")

# name: (eweight, fweight), all with training 1.0, testing 0.0, vweight 1e-12, in file order
INP_GROUPS = {
    "aa": (5319411.52359161, 12160.2964901219),
    "aIn": (592960.979019644, 410.375340021632),
    "aP": (280933.371566026, 3618.73557864646),
    "Bulk": (747239.126417448, 1609572.6749909),
    "EOS": (100000.0, 11164.9854012147),
    "iIn": (2103779.971446, 6796.55772361871),
    "iP": (669131.752996794, 5805.68960393981),
    "s_aa": (5319411.52359161, 12160.2964901219),
    "s_aIn": (592960.979019644, 410.375340021632),
    "s_aP": (280933.371566026, 3618.73557864646),
    "Shear": (100000.0, 205.973221998272),
    "s_iIn": (2103779.971446, 6796.55772361871),
    "s_iP": (669131.752996794, 5805.68960393981),
    "Strain": (4564655.81612184, 1525.7275564439),
    "s_vIn": (6314405.9173199, 712362.940478615),
    "s_vP": (3891634.88035388, 64705.3594884766),
    "s_vv": (5622278.70967226, 24308.6192988325),
    "vP": (3891634.88035388, 64705.3594884766),
    "vv": (5622278.70967226, 24308.6192988325),
}

# The InP input written as a dict of already-typed Python values.
INP_DICT = {
    "BISPECTRUM": {"numTypes": 2, "twojmax": [6, 6], "rcutfac": 1.0, "rfac0": 0.99363, "rmin0": 0.0,
                   "wj": [1.0, 0.9293160905266721], "radelem": [3.812045629514403, 3.829453817954964],
                   "type": ["In", "P"], "wselfallflag": 1, "chemflag": True, "bnormflag": 1,
                   "quadraticflag": 0, "bzeroflag": 1},
    "CALCULATOR": {"calculator": "LAMMPSSNAP", "energy": 1, "force": 1, "stress": 1},
    "ESHIFT": {"In": -1.65967588701534, "P": 4.38159549501534},
    "SOLVER": {"solver": "SVD", "compute_testerrs": 1, "detailed_errors": 1},
    "SCRAPER": {"scraper": "JSON"},
    "PATH": {"dataPath": "JSON"},
    "OUTFILE": {"metrics": "InP_metrics.md", "potential": "InP_pot"},
    "REFERENCE": {"units": "metal", "atom_style": "atomic",
                  "pair_style": "hybrid/overlay zero 10.0 zbl 4.0 4.2",
                  "pair_coeff1": "* * zero", "pair_coeff2": "1 1 zbl 49 49",
                  "pair_coeff3": "1 2 zbl 49 15", "pair_coeff4": "2 2 zbl 15 15"},
    "GROUPS": {"group_sections": "name training_size testing_size eweight fweight vweight",
               "group_types": ["str", "float", "float", "float", "float", "float"],
               "smartweights": 0, "random_sampling": 0,
               **{name: [1.0, 0.0, e, f, 1.0e-12] for name, (e, f) in INP_GROUPS.items()}},
    "EXTRAS": {"dump_descriptors": 0, "dump_truth": 0, "dump_weights": 0},
    "MEMORY": {"override": 0},
}

MINIMAL = "[BISPECTRUM]\nnumTypes = 1\ntype = Ta\n"


def write(tmp_path: Path, text: str, name: str = "fit.in") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def base(**sections):
    """A valid dict input: Ta, plus the given sections."""
    d = {"BISPECTRUM": {"numTypes": 1, "type": "Ta"}}
    for k, v in sections.items():
        d.setdefault(k, {}).update(v)
    return d


def error(source, overrides=(), **kw) -> str:
    with pytest.raises(SettingsError) as exc:
        load_settings(source, overrides, **kw)
    msg = str(exc.value)
    assert "\n" not in msg
    assert isinstance(exc.value, ValueError)
    return msg


# -- the real InP input ---------------------------------------------------------------------------

def test_inp_example_typed_values():
    s = load_settings(INP_FILE)
    b = s.bispectrum
    assert b.numTypes == 2
    assert b.type == ("In", "P")
    assert b.twojmax == (6, 6)
    assert b.rcutfac == 1.0 and b.rfac0 == 0.99363 and b.rmin0 == 0.0
    assert b.wj == (1.0, 0.9293160905266721)
    assert b.radelem == (3.812045629514403, 3.829453817954964)
    assert (b.wselfallflag, b.chemflag, b.bnormflag, b.bzeroflag, b.quadraticflag) == (1, 1, 1, 1, 0)
    assert (b.switchflag, b.switchinnerflag, b.bikflag, b.dgradflag) == (1, 0, 0, 0)
    assert b.sinner == (0.9, 0.9) and b.dinner == (0.1, 0.1)
    assert all(type(v) is int for v in b.twojmax)
    assert type(b.chemflag) is int

    assert s.calculator.calculator == "LAMMPSSNAP"
    assert (s.calculator.energy, s.calculator.force, s.calculator.stress) == (1, 1, 1)
    assert (s.calculator.per_atom_energy, s.calculator.nonlinear) == (0, 0)

    assert dict(s.eshift) == {"In": -1.65967588701534, "P": 4.38159549501534}
    assert s.solver.solver == "SVD"
    assert s.scraper.scraper == "JSON"
    assert s.path.dataPath == "JSON" and s.path.groupFile is None
    assert s.outfile.metrics == "InP_metrics.md" and s.outfile.potential == "InP_pot"
    assert s.outfile.metrics_style == "MD" and s.outfile.output_style == "SNAP"

    ref = s.reference
    assert ref.units == "metal" and ref.atom_style == "atomic"
    assert ref.pair_style == "hybrid/overlay zero 10.0 zbl 4.0 4.2"
    assert ref.pair_coeffs == ("* * zero", "1 1 zbl 49 49", "1 2 zbl 49 15", "2 2 zbl 15 15")
    assert ref.active

    o = s.group_options
    assert o.group_sections == ("name", "training_size", "testing_size", "eweight", "fweight", "vweight")
    assert o.group_types == ("str", "float", "float", "float", "float", "float")
    assert (o.smartweights, o.random_sampling, o.random_seed) == (0, 0, 0)
    assert [g.name for g in s.groups] == list(INP_GROUPS)
    for g in s.groups:
        e, f = INP_GROUPS[g.name]
        assert g == GroupSpec(g.name, 1.0, 0.0, e, f, 1e-12)
    assert s.group("Bulk").eweight == 747239.126417448
    assert s.group("Bulk").fweight == 1609572.6749909
    assert s.group("iP") == GroupSpec("iP", 1.0, 0.0, 669131.752996794, 5805.68960393981, 1.0e-12)

    assert (s.extras.dump_descriptors, s.extras.dump_truth, s.extras.dump_weights) == (0, 0, 0)
    assert s.memory.override == 0 and s.memory.memory is None

    assert s.source == str(INP_FILE)
    assert s.base_dir == str(INP_FILE.parent)
    assert s.data_path == str(INP_FILE.parent / "JSON")
    assert s.sections[0] == "BISPECTRUM" and "GROUPS" in s.sections


def test_inp_legacy_keys_give_notices():
    s = load_settings(INP_FILE)
    assert len(s.notices) == 2
    assert s.notices[0].startswith("InP-example.in: [SOLVER] compute_testerrs:")
    assert s.notices[1].startswith("InP-example.in: [SOLVER] detailed_errors:")
    assert all("ignored" in n for n in s.notices)


def test_dict_form_gives_same_settings():
    from_file = load_settings(INP_FILE)
    from_dict = load_settings(INP_DICT)
    assert from_dict == from_file
    assert from_dict.source == "<dict>"
    assert from_dict.base_dir == os.getcwd()
    assert [n.split(": ", 1)[1] for n in from_dict.notices] == [n.split(": ", 1)[1] for n in from_file.notices]
    assert from_dict.notices[0].startswith("<dict>: ")


def test_to_dict_is_plain_and_round_trips():
    s = load_settings(INP_FILE)
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["BISPECTRUM"]["twojmax"] == [6, 6]
    assert d["GROUPS"]["Bulk"] == [1.0, 0.0, 747239.126417448, 1609572.6749909, 1e-12]
    assert d["REFERENCE"]["pair_coeff2"] == "1 1 zbl 49 49"
    again = load_settings(d)
    assert again == s
    assert again.notices == ()  # legacy keys are not written back
    assert again.to_dict() == d


def test_settings_frozen_and_picklable():
    s = load_settings(INP_FILE)
    with pytest.raises(FrozenInstanceError):
        s.bispectrum.twojmax = (8, 8)  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.eshift["In"] = 0.0  # type: ignore[index]
    clone = pickle.loads(pickle.dumps(s))
    assert clone == s and clone.notices == s.notices and clone.base_dir == s.base_dir
    hash(s)


def test_descriptor_kwargs_build_a_descriptor():
    from mpisnap import Descriptor
    s = load_settings(INP_FILE)
    d = Descriptor(**s.bispectrum.descriptor_kwargs(), threads=1)
    assert d.elements == ["In", "P"]


# -- defaults -------------------------------------------------------------------------------------

def test_defaults_when_sections_missing():
    s = load_settings({"BISPECTRUM": {"type": "Ta"}})
    b = s.bispectrum
    assert b.numTypes == 1 and b.type == ("Ta",)
    assert b.twojmax == (6,) and b.rcutfac == 4.67637 and b.rfac0 == 0.99363 and b.rmin0 == 0.0
    assert b.wj == (1.0,) and b.radelem == (0.5,)
    assert b.bzeroflag == 0  # FitSNAP's default, not LAMMPS's
    assert (b.wselfallflag, b.chemflag, b.bnormflag, b.quadraticflag) == (0, 0, 0, 0)
    assert (b.switchflag, b.switchinnerflag, b.sinner, b.dinner) == (1, 0, (0.9,), (0.1,))
    assert (b.bikflag, b.dgradflag) == (0, 0)
    c = s.calculator
    assert (c.calculator, c.energy, c.force, c.stress, c.per_atom_energy, c.nonlinear) == \
        ("LAMMPSSNAP", 1, 1, 1, 0, 0)
    assert dict(s.eshift) == {"Ta": 0.0}
    assert s.solver.solver == "SVD" and s.solver.nsam == 0 and s.solver.merr_cfs == "all"
    assert s.ridge.alpha == 1e-8 and s.lasso.alpha == 1e-8 and s.lasso.max_iter == 2000
    p = s.pytorch
    assert p.layer_sizes == ("num_desc", 512, 512, 1) and p.learning_rate == 1e-2
    assert (p.num_epochs, p.batch_size, p.multi_element_option) == (10, 4, 1)
    assert p.energy_weight is None and p.training_fraction is None
    assert s.scraper.scraper == "JSON"
    assert s.path.dataPath == "JSON" and s.path.groupFile is None
    o = s.outfile
    assert (o.output_style, o.metrics, o.metrics_style, o.potential) == \
        ("SNAP", "fitsnap_metrics", "MD", "fitsnap_potential")
    r = s.reference
    assert (r.units, r.atom_style, r.pair_style, r.pair_coeffs, r.active) == ("metal", "atomic", None, (), False)
    g = s.group_options
    assert g.group_sections == ("name", "training_size", "testing_size", "eweight", "fweight", "vweight")
    assert (g.smartweights, g.random_sampling, g.random_seed) == (0, 0, 0)
    assert s.groups == ()
    assert all(getattr(s.extras, f) == 0 for f in s.extras.__dataclass_fields__)
    assert (s.memory.memory, s.memory.override) == (None, 0)
    assert s.notices == ()
    assert s.sections == ("BISPECTRUM",)


def test_minimal_file_and_inline_comments(tmp_path):
    p = write(tmp_path, "# a comment\n[BISPECTRUM]\nnumTypes = 2   # two elements\ntype = Ta W\n"
                        "twojmax = 8 # per type allowed\nradelem = 0.5 0.45\n"
                        "[GROUPS]\ngroup_sections = name eweight fweight\nBCC = 100 1  # comment\n")
    s = load_settings(p)
    assert s.bispectrum.twojmax == (8, 8)
    assert s.bispectrum.radelem == (0.5, 0.45)
    assert s.bispectrum.wj == (1.0, 1.0)
    assert s.group_options.group_types == ("str", "float", "float")
    assert s.groups == (GroupSpec("BCC", 1.0, 0.0, 100.0, 1.0, 1.0),)
    assert s.base_dir == str(tmp_path)


def test_numtypes_inferred_from_type():
    assert load_settings({"BISPECTRUM": {"type": "In P"}}).bispectrum.numTypes == 2


def test_flags_accept_boolean_words():
    s = load_settings(base(BISPECTRUM={"chemflag": "true", "bzeroflag": "off"}))
    assert (s.bispectrum.chemflag, s.bispectrum.bzeroflag) == (1, 0)


def test_case_insensitive_choices_stored_upper():
    s = load_settings(base(SOLVER={"solver": "ridge"}, SCRAPER={"scraper": "xyz"},
                           CALCULATOR={"calculator": "snap"}, OUTFILE={"metrics_style": "csv"}))
    assert (s.solver.solver, s.scraper.scraper, s.calculator.calculator, s.outfile.metrics_style) == \
        ("RIDGE", "XYZ", "LAMMPSSNAP", "CSV")


def test_group_sizes_counts_and_int_columns():
    s = load_settings(base(GROUPS={"group_sections": "name training_size testing_size eweight",
                                   "group_types": "str int int float",
                                   "A": "10 5 2.5", "B": "1 0 3"}))
    a, b = s.groups
    assert a.training_size == 10 and type(a.training_size) is int
    assert a.testing_size == 5 and a.eweight == 2.5
    assert b.training_size == 1.0 and type(b.training_size) is float and b.testing_size == 0.0
    assert load_settings(s.to_dict()) == s


def test_unused_solver_section_gives_notice():
    s = load_settings(base(RIDGE={"alpha": 1e-3}))
    assert s.ridge.alpha == 1e-3
    assert any("[RIDGE]" in n and "SVD" in n for n in s.notices)
    assert load_settings(base(RIDGE={"alpha": 1e-3}, SOLVER={"solver": "RIDGE"})).notices == ()


def test_group_file(tmp_path):
    (tmp_path / "grouplist.in").write_text("# name training testing e f v\nBulk 0.8 0.2 10 1 0\n\nEOS 5 0 1 1 1\n")
    p = write(tmp_path, MINIMAL + "[PATH]\ndataPath = ../data\ngroupFile = grouplist.in\n")
    s = load_settings(p)
    assert s.groups == (GroupSpec("Bulk", 0.8, 0.2, 10.0, 1.0, 0.0), GroupSpec("EOS", 5, 0.0, 1.0, 1.0, 1.0))
    assert s.group_file == str(tmp_path / "grouplist.in")
    assert s.data_path == str(tmp_path.parent / "data")


def test_base_dir_and_resolve(tmp_path):
    s = load_settings(base(), base_dir=tmp_path)
    assert s.base_dir == str(tmp_path)
    assert s.resolve("JSON") == str(tmp_path / "JSON")
    assert s.resolve("/abs/x") == "/abs/x"
    other = tmp_path / "elsewhere"
    assert load_settings(write(tmp_path, MINIMAL), base_dir=other).base_dir == str(other)


# -- overrides ------------------------------------------------------------------------------------

def test_overrides_replace_add_and_validate():
    s = load_settings(INP_FILE, ["BISPECTRUM.twojmax=8", "SOLVER.solver = ridge", "RIDGE.alpha=1e-6",
                                 "GROUPS.New=0.5 0.5 1 2 3", "GROUPS.iP=1.0 0.0 7 8 9",
                                 "REFERENCE.pair_coeff5=* * zbl 1 1"])
    assert s.bispectrum.twojmax == (8, 8)
    assert s.solver.solver == "RIDGE" and s.ridge.alpha == 1e-6
    assert s.group("New") == GroupSpec("New", 0.5, 0.5, 1.0, 2.0, 3.0)
    assert s.group("iP") == GroupSpec("iP", 1.0, 0.0, 7.0, 8.0, 9.0)
    assert [g.name for g in s.groups].index("iP") == 6  # replaced in place
    assert s.reference.pair_coeffs[-1] == "* * zbl 1 1"
    assert "RIDGE" in s.sections


def test_override_single_string_and_dict_source():
    s = load_settings(base(), "BISPECTRUM.twojmax=4")
    assert s.bispectrum.twojmax == (4,)


def test_override_value_is_validated():
    msg = error(base(), ["BISPECTRUM.twojmax=eight"])
    assert msg.startswith("<dict>: [BISPECTRUM] twojmax: expected an integer, got 'eight'")
    assert "override" in msg


@pytest.mark.parametrize("bad", ["BISPECTRUM.twojmax", "twojmax=8", ".twojmax=8", "BISPECTRUM.=8",
                                 "=8", "BIS PECTRUM.twojmax=8"])
def test_malformed_override(bad):
    msg = error(base(), [bad])
    assert msg.startswith("<dict>: override ")
    assert repr(bad) in msg and "SECTION.key=value" in msg


def test_override_unknown_section_and_key():
    assert error(base(), ["BISPECTUM.twojmax=8"]).startswith("<dict>: [BISPECTUM]: unknown section")
    msg = error(base(), ["BISPECTRUM.twojmx=8"])
    assert msg.startswith("<dict>: [BISPECTRUM] twojmx: unknown key") and "'twojmax'" in msg


# -- errors ---------------------------------------------------------------------------------------

def test_error_unknown_section(tmp_path):
    msg = error(write(tmp_path, MINIMAL + "[SOLVERS]\nsolver = SVD\n"))
    assert msg.startswith("fit.in: [SOLVERS]: unknown section")
    assert "'SOLVER'" in msg


def test_error_lowercase_section_hint():
    msg = error({"bispectrum": {"type": "Ta"}})
    assert msg.startswith("<dict>: [bispectrum]: unknown section") and "'BISPECTRUM'" in msg


def test_error_unknown_key(tmp_path):
    msg = error(write(tmp_path, MINIMAL + "rcutfak = 4.6\n"))
    assert msg.startswith("fit.in: [BISPECTRUM] rcutfak: unknown key")
    assert "'rcutfac'" in msg


def test_error_keys_are_case_sensitive():
    msg = error(base(BISPECTRUM={"TwoJmax": 6}))
    assert msg.startswith("<dict>: [BISPECTRUM] TwoJmax: unknown key") and "case-sensitive" in msg


def test_error_wrong_type_matches_spec_example(tmp_path):
    p = write(tmp_path, "[BISPECTRUM]\nnumTypes = 2\ntype = In P\ntwojmax = six\n", "InP-example.in")
    assert error(p) == "InP-example.in: [BISPECTRUM] twojmax: expected an integer, got 'six'"


@pytest.mark.parametrize("section, key, value, expect", [
    ("BISPECTRUM", "rcutfac", "abc", "expected a number, got 'abc'"),
    ("BISPECTRUM", "rcutfac", "nan", "expected a number, got 'nan'"),
    ("BISPECTRUM", "numTypes", "1.0", "expected an integer, got '1.0'"),
    ("BISPECTRUM", "chemflag", "2", "expected 0 or 1, got '2'"),
    ("BISPECTRUM", "wj", "1.0 x", "expected a number, got 'x'"),
    ("CALCULATOR", "energy", "yes please", "expected 0 or 1, got 'yes please'"),
    ("SOLVER", "nsam", "many", "expected an integer, got 'many'"),
    ("ESHIFT", "Ta", "-1.0eV", "expected a number, got '-1.0eV'"),
    ("GROUPS", "random_seed", "x", "expected an integer, got 'x'"),
    ("MEMORY", "memory", "lots", "expected an integer, got 'lots'"),
    ("PYTORCH", "layer_sizes", "num_desc 0 1", "expected positive integers or 'num_desc', got '0'"),
])
def test_error_wrong_type(section, key, value, expect):
    msg = error(base(**{section: {key: value}}))
    assert msg.startswith(f"<dict>: [{section}] {key}: ")
    assert expect in msg


@pytest.mark.parametrize("bisp, key, expect", [
    ({"numTypes": 2, "type": "Ta"}, "type", "numTypes = 2"),
    ({"numTypes": 1, "type": "In P"}, "type", "numTypes = 1"),
    ({"numTypes": 0, "type": "Ta"}, "numTypes", ">= 1"),
    ({"type": "Ta Ta"}, "type", "twice"),
    ({"type": "In P", "wj": "1 1 1"}, "wj", "expected 1 or 2 values"),
    ({"type": "In P", "twojmax": "6 6 6"}, "twojmax", "expected 1 or 2 values"),
    ({"type": "Ta", "rfac0": 1.0}, "rfac0", "(0, 1)"),
    ({"type": "Ta", "rfac0": 0.0}, "rfac0", "(0, 1)"),
    ({"type": "Ta", "rcutfac": -4.0}, "rcutfac", "> 0"),
    ({"type": "Ta", "twojmax": -2}, "twojmax", ">= 0"),
    ({"type": "Ta", "radelem": 0.0}, "radelem", "> 0"),
    ({"type": "Ta", "rmin0": -0.1}, "rmin0", ">= 0"),
    ({"type": "Ta", "switchinnerflag": 1, "dinner": 0.0}, "dinner", "> 0"),
    ({"type": "Ta", "switchinnerflag": 1, "sinner": -1.0}, "sinner", "> 0"),
    ({"type": "Ta", "dgradflag": 1}, "dgradflag", "bikflag"),
    ({"numTypes": 1}, "type", "required"),
])
def test_error_inconsistent_bispectrum(bisp, key, expect):
    msg = error({"BISPECTRUM": bisp})
    assert msg.startswith(f"<dict>: [BISPECTRUM] {key}: ")
    assert expect in msg


def test_switchinnerflag_values_kept():
    s = load_settings({"BISPECTRUM": {"type": "In P", "switchinnerflag": 1, "sinner": "1.2 1.3", "dinner": 0.2}})
    assert s.bispectrum.switchinnerflag == 1
    assert s.bispectrum.sinner == (1.2, 1.3) and s.bispectrum.dinner == (0.2, 0.2)


def test_error_inconsistent_numtypes_in_file(tmp_path):
    msg = error(write(tmp_path, "[BISPECTRUM]\nnumTypes = 2\ntype = Ta\n"))
    assert msg.startswith("fit.in: [BISPECTRUM] type: ") and "numTypes" in msg


@pytest.mark.parametrize("groups, key, expect", [
    ({"Bulk": "1.0 0.0 1 1"}, "Bulk", "expected 5 values"),
    ({"Bulk": "1.0 0.0 1 1 1 1"}, "Bulk", "expected 5 values"),
    ({"Bulk": "1.0 0.0 x 1 1"}, "Bulk", "eweight: expected a finite number, got 'x'"),
    ({"Bulk": "1.0 0.0 -1 1 1"}, "Bulk", "eweight: must be >= 0"),
    ({"Bulk": "1.0 0.0 inf 1 1"}, "Bulk", "eweight: expected a finite number"),
    ({"Bulk": "0.8 0.3 1 1 1"}, "Bulk", "training_size + testing_size"),
    ({"Bulk": "-0.5 0.3 1 1 1"}, "Bulk", "training_size: must be >= 0"),
    ({"Bulk": "2.5 0 1 1 1"}, "Bulk", "must be whole"),
    ({"group_sections": "training_size name"}, "group_sections", "must start with 'name'"),
    ({"group_sections": "name size eweight"}, "group_sections", "unknown column 'size'"),
    ({"group_sections": "name eweight eweight"}, "group_sections", "listed twice"),
    ({"group_types": "str float"}, "group_types", "has 2 entries"),
    ({"group_types": "str float float float float double"}, "group_types", "unknown type 'double'"),
    ({"group_types": "str float float str float float"}, "group_types", "cannot have type 'str'"),
    ({"group_sections": "name eweight", "group_types": "str int", "A": "1.5"}, "A",
     "eweight: expected an integer, got '1.5'"),
    ({"smartweights": "2"}, "smartweights", "expected 0 or 1"),
])
def test_error_bad_group_line(groups, key, expect):
    msg = error(base(GROUPS=groups))
    assert msg.startswith(f"<dict>: [GROUPS] {key}: ")
    assert expect in msg


def test_error_bad_group_line_in_file(tmp_path):
    p = write(tmp_path, MINIMAL + "[GROUPS]\nBulk = 1.0 0.0 1.0 1.0\n")
    msg = error(p)
    assert msg.startswith("fit.in: [GROUPS] Bulk: expected 5 values (training_size testing_size eweight")


def test_error_group_file_problems(tmp_path):
    (tmp_path / "g.in").write_text("Bulk 1.0 0.0 1 1\n")
    msg = error(write(tmp_path, MINIMAL + "[PATH]\ngroupFile = g.in\n"))
    assert msg.startswith("fit.in: [PATH] groupFile: g.in line 1: expected 5 values")
    msg = error(write(tmp_path, MINIMAL + "[PATH]\ngroupFile = missing.in\n"))
    assert msg.startswith("fit.in: [PATH] groupFile: cannot read")
    msg = error(write(tmp_path, MINIMAL + "[PATH]\ngroupFile = g.in\n[GROUPS]\nA = 1 0 1 1 1\n"))
    assert msg.startswith("fit.in: [GROUPS] A: ") and "groupFile" in msg


@pytest.mark.parametrize("bad", ["BISPECTRUM.twojmax 8", "nodot=1"])
def test_error_bad_override_on_file(tmp_path, bad):
    assert error(write(tmp_path, MINIMAL), [bad]).startswith(f"fit.in: override {bad!r}")


def test_error_missing_file(tmp_path):
    missing = tmp_path / "nope.in"
    msg = error(missing)
    assert msg.startswith("nope.in: ") and str(missing) in msg and "not found" in msg


def test_error_unknown_element_in_eshift(tmp_path):
    msg = error(write(tmp_path, MINIMAL + "[ESHIFT]\nTa = 0.0\nW = -1.0\n"))
    assert msg.startswith("fit.in: [ESHIFT] W: not an element of [BISPECTRUM] type (Ta)")


def test_eshift_missing_elements_are_zero():
    s = load_settings({"BISPECTRUM": {"type": "In P"}, "ESHIFT": {"P": 2.5}})
    assert dict(s.eshift) == {"In": 0.0, "P": 2.5}


@pytest.mark.parametrize("units", ["real", "si", "Metal"])
def test_error_units_other_than_metal(tmp_path, units):
    msg = error(write(tmp_path, MINIMAL + f"[REFERENCE]\nunits = {units}\n"))
    assert msg == f"fit.in: [REFERENCE] units: only 'metal' units are supported, got {units!r}"


@pytest.mark.parametrize("sections, where, expect", [
    ({"CALCULATOR": {"calculator": "LAMMPSPACE"}}, "[CALCULATOR] calculator", "LAMMPSPACE"),
    ({"CALCULATOR": {"energy": 0, "force": 0, "stress": 0}}, "[CALCULATOR] energy", "nothing to fit"),
    ({"SOLVER": {"solver": "two words"}}, "[SOLVER] solver", "two words"),
    ({"SOLVER": {"merr_method": "xyz"}}, "[SOLVER] merr_method", "abc, iid, full"),
    ({"SOLVER": {"mcmc_gamma": 0}}, "[SOLVER] mcmc_gamma", "> 0"),
    ({"SOLVER": {"frobnicate": 1}}, "[SOLVER] frobnicate", "unknown key"),
    ({"SCRAPER": {"scraper": "two words"}}, "[SCRAPER] scraper", "two words"),
    ({"OUTFILE": {"metrics_style": "XLS"}}, "[OUTFILE] metrics_style", "MD, CSV, SSV, JSON"),
    ({"OUTFILE": {"metrics": ""}}, "[OUTFILE] metrics", "expected a value"),
    ({"PATH": {"datapath": "JSON"}}, "[PATH] datapath", "'dataPath'"),
    ({"REFERENCE": {"pair_coeff1": "* * zero"}}, "[REFERENCE] pair_style", "without a pair_style"),
    ({"REFERENCE": {"pair_coef": "* * zero"}}, "[REFERENCE] pair_coef", "unknown key"),
    ({"RIDGE": {"alpha": -1}}, "[RIDGE] alpha", ">= 0"),
    ({"LASSO": {"max_iter": 0}}, "[LASSO] max_iter", ">= 1"),
    ({"ARD": {"lambda": 1}}, "[ARD] lambda", "unknown key"),
    ({"PYTORCH": {"energy_weight": 1.0}}, "[PYTORCH] energy_weight", "together"),
    ({"PYTORCH": {"multi_element_option": 3}}, "[PYTORCH] multi_element_option", "got 3"),
    ({"PYTORCH": {"training_fraction": 1.5}}, "[PYTORCH] training_fraction", "(0, 1]"),
    ({"EXTRAS": {"dump_everything": 1}}, "[EXTRAS] dump_everything", "unknown key"),
    ({"MEMORY": {"memory": -5}}, "[MEMORY] memory", "> 0"),
])
def test_error_other_sections(sections, where, expect):
    msg = error(base(**sections))
    assert msg.startswith(f"<dict>: {where}: ")
    assert expect in msg


def test_legacy_keys_all_accepted():
    s = load_settings(base(SOLVER={"compute_testerrs": 1, "detailed_errors": 0, "normalweight": -12,
                                   "normweight": -12, "normratio": 0.5}, OUTFILE={"detailed_errors": 1}))
    assert len(s.notices) == 6
    assert all(n.startswith("<dict>: [SOLVER] ") or n.startswith("<dict>: [OUTFILE] ") for n in s.notices)


@pytest.mark.parametrize("text, expect", [
    ("twojmax = 6\n[BISPECTRUM]\ntype = Ta\n", "line 1: a key before any [SECTION] header"),
    (MINIMAL + "[BISPECTRUM]\ntwojmax = 4\n", "[BISPECTRUM]: section given twice"),
    (MINIMAL + "type = W\n", "[BISPECTRUM] type: key given twice"),
    (MINIMAL + "just some words\n", "line 4: cannot parse 'just some words'"),
    ("[DEFAULT]\ntwojmax = 4\n" + MINIMAL, "[DEFAULT]: unknown section"),
])
def test_error_ini_syntax(tmp_path, text, expect):
    msg = error(write(tmp_path, text))
    assert msg.startswith("fit.in: ") and expect in msg


@pytest.mark.parametrize("source, expect", [
    ({"BISPECTRUM": "type = Ta"}, "<dict>: [BISPECTRUM]: expected a mapping"),
    ({"BISPECTRUM": {"type": "Ta", "wj": [[1.0]]}}, "<dict>: [BISPECTRUM] wj: expected a flat list"),
    ({"BISPECTRUM": {"type": "Ta", "wj": {1: 2}}}, "<dict>: [BISPECTRUM] wj: unsupported value"),
])
def test_error_bad_dict(source, expect):
    assert error(source).startswith(expect)


def test_dict_none_means_default():
    s = load_settings(base(PATH={"groupFile": None}, MEMORY={"memory": None}))
    assert s.path.groupFile is None and s.memory.memory is None


def test_import_is_light():
    """Importing the settings loads no heavy package and does not build the plugin manager."""
    code = ("import sys, mpisnap.settings; "
            "heavy = {'scipy', 'lammps', 'mpi4py', 'torch', 'matplotlib', 'ase', 'h5py', 'pandas', "
            "'mpisnap.plugin_manager', 'mpisnap.plugins.models', 'mpisnap.settings.sections'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_type_exported():
    assert isinstance(load_settings(base()), Settings)


# -- sections owned by plugins ---------------------------------------------------------------------

@dataclass(frozen=True)
class Smoothing:
    """The record of a plugin's ``[SMOOTHING]`` section (test fixture)."""

    width: float = 0.5
    kernel: str = "gauss"
    steps: tuple = (1,)


def _parse_smoothing(raw, ctx):
    width = ctx.get("width", p_float, 0.5)
    ctx.require("width", width > 0, f"must be > 0, got {width}")
    return Smoothing(width, ctx.get("kernel", p_choice("gauss", "box", upper=False), "gauss"),
                     ctx.get("steps", p_ints, (1,)))


@dataclass(frozen=True)
class Learn:
    """The record of a ``survey`` verb's ``[SURVEY]`` section (test fixture)."""

    rounds: int = 1


def _parse_learn(raw, ctx):
    rounds = ctx.get("rounds", p_int, 1)
    ctx.require("rounds", rounds >= 1, f"must be >= 1, got {rounds}")
    return Learn(rounds)


def _sections_plugin():
    """A plugin module bringing [SMOOTHING] (every verb) and [SURVEY] (the survey verb only)."""
    mod = types.ModuleType("smoothing_plugin")
    mod.mpisnap_settings_sections = hookimpl(lambda: [
        SettingsSection("SMOOTHING", _parse_smoothing, ("width", "kernel", "steps"),
                        legacy=("old_width",), description="smoothing of the fit"),
        SettingsSection("SURVEY", _parse_learn, ("rounds",), verb="survey",
                        description="survey rounds"),
    ])
    return mod


@pytest.fixture
def plugin_sections():
    """The built-in sections plus [SMOOTHING] and [SURVEY], as a registry gives them."""
    pm = get_plugin_manager(autoload=False, plugins=[_sections_plugin()])
    return build_registry(pm).all("settings_sections")


def test_builtin_sections_come_through_the_hook():
    registry = build_registry(get_plugin_manager(autoload=False))
    # then the sections of one command that built-in plugins bring ([GENERATE] ...)
    assert registry.names("settings_sections")[:len(SECTION_ORDER)] == list(SECTION_ORDER)
    for name in SECTION_ORDER:
        rec = registry.get("settings_sections", name)
        assert isinstance(rec, SettingsSection) and rec.verb is None and rec.description
        provider = registry.providers[("settings_sections", name.lower())]
        assert provider == "mpisnap.settings.sections"
    assert default_sections(autoload=False) == tuple(registry.all("settings_sections"))


def test_section_reads_every_builtin_as_its_record():
    s = load_settings(INP_FILE)
    assert s.section("BISPECTRUM") is s.bispectrum and s.section("PATH") is s.path
    assert s.section("ESHIFT") is s.eshift and s.section("MEMORY") is s.memory
    for name, attr in (("CALCULATOR", "calculator"), ("SOLVER", "solver"), ("RIDGE", "ridge"),
                       ("LASSO", "lasso"), ("ARD", "ard"), ("PYTORCH", "pytorch"),
                       ("SCRAPER", "scraper"), ("OUTFILE", "outfile"), ("REFERENCE", "reference"),
                       ("EXTRAS", "extras")):
        assert s.section(name) is getattr(s, attr), name
    groups = s.section("GROUPS")
    assert isinstance(groups, GroupsSettings)
    assert groups.options == s.group_options and groups.groups == s.groups
    with pytest.raises(FrozenInstanceError):
        groups.groups = ()  # type: ignore[misc]
    with pytest.raises(KeyError, match="unknown section"):
        s.section("SMOOTHING")


def test_plugin_section_typed_with_defaults(tmp_path, plugin_sections):
    assert load_settings(base(), sections=plugin_sections).section("SMOOTHING") == Smoothing()
    p = write(tmp_path, MINIMAL + "[SMOOTHING]\nwidth = 0.25\nkernel = BOX\nsteps = 3 4\n")
    s = load_settings(p, sections=plugin_sections)
    assert s.section("SMOOTHING") == Smoothing(0.25, "box", (3, 4))
    assert s.extra_sections["SMOOTHING"] == Smoothing(0.25, "box", (3, 4))
    # the other plugin sections (built-in ones of every verb, e.g. [UQ]) keep their defaults
    plain = load_settings(base(), sections=plugin_sections).extra_sections
    assert {k: v for k, v in s.extra_sections.items() if k != "SMOOTHING"} == \
        {k: v for k, v in plain.items() if k != "SMOOTHING"}
    assert s.sections == ("BISPECTRUM", "SMOOTHING")
    # the same input as a dict; equality, hash and round trip through to_dict
    d = s.to_dict()
    assert d["SMOOTHING"] == {"width": 0.25, "kernel": "box", "steps": [3, 4]}
    again = load_settings(d, sections=plugin_sections)
    assert again == s and hash(again) == hash(s)
    assert again != load_settings(base(SMOOTHING={"width": 0.3}), sections=plugin_sections)


def test_plugin_section_overrides(tmp_path, plugin_sections):
    p = write(tmp_path, MINIMAL + "[SMOOTHING]\nwidth = 0.25\n")
    s = load_settings(p, ["SMOOTHING.width=2", "SMOOTHING.kernel = box"], sections=plugin_sections)
    assert s.section("SMOOTHING") == Smoothing(2.0, "box")
    s = load_settings(base(), ["SMOOTHING.steps=7"], sections=plugin_sections)  # adds the section
    assert s.section("SMOOTHING").steps == (7,) and "SMOOTHING" in s.sections
    msg = error(p, ["SMOOTHING.width=-1"], sections=plugin_sections)
    assert msg == ("fit.in: [SMOOTHING] width: must be > 0, got -1.0 "
                   "(from override 'SMOOTHING.width=-1')")


@pytest.mark.parametrize("body, expect", [
    ("width = wide\n", "fit.in: [SMOOTHING] width: expected a number, got 'wide'"),
    ("width = 0\n", "fit.in: [SMOOTHING] width: must be > 0, got 0.0"),
    ("kernel = tent\n", "fit.in: [SMOOTHING] kernel: expected one of gauss, box, got 'tent'"),
    ("widht = 1\n", "fit.in: [SMOOTHING] widht: unknown key (did you mean 'width'?)"),
    ("Width = 1\n", "fit.in: [SMOOTHING] Width: unknown key (did you mean 'width'? keys are "
                    "case-sensitive)"),
])
def test_plugin_section_errors(tmp_path, plugin_sections, body, expect):
    p = write(tmp_path, MINIMAL + "[SMOOTHING]\n" + body)
    assert error(p, sections=plugin_sections) == expect


def test_plugin_section_legacy_key_gives_notice(plugin_sections):
    s = load_settings(base(SMOOTHING={"old_width": 3}), sections=plugin_sections)
    assert s.section("SMOOTHING") == Smoothing()
    assert s.notices == ("<dict>: [SMOOTHING] old_width: legacy FitSNAP key, accepted and ignored",)


def test_unknown_section_names_the_known_sections(tmp_path, plugin_sections):
    p = write(tmp_path, MINIMAL + "[SMOOTHNIG]\nwidth = 1\n")
    msg = error(p, sections=plugin_sections)
    assert msg.startswith("fit.in: [SMOOTHNIG]: unknown section (did you mean 'SMOOTHING'?)")
    known = msg.split("known sections (from the installed plugins): ", 1)[1].split(", ")
    builtin = [rec.name for rec in default_sections(False)]  # FitSNAP's, then verb sections
    assert builtin[:len(SECTION_ORDER)] == list(SECTION_ORDER)
    assert known == builtin + ["SMOOTHING", "SURVEY"]
    # without the plugin, its section is unknown, and the list says what is installed
    p = write(tmp_path, MINIMAL + "[SMOOTHING]\nwidth = 1\n")
    msg = error(p, sections=default_sections(False))
    assert msg.startswith("fit.in: [SMOOTHING]: unknown section; known sections")
    assert msg.endswith(": " + ", ".join(builtin))


def test_verb_section_is_kept_unparsed_by_other_verbs(tmp_path, plugin_sections):
    p = write(tmp_path, MINIMAL + "[SURVEY]\nrounds = zero\n")  # invalid for survey
    s = load_settings(p, sections=plugin_sections)  # verb="fit": accepted, not parsed
    assert s.unparsed_sections == {"SURVEY": {"rounds": "zero"}}
    assert "SURVEY" not in s.extra_sections and s.notices == ()
    with pytest.raises(KeyError, match="another verb"):
        s.section("SURVEY")
    assert s.to_dict()["SURVEY"] == {"rounds": "zero"}
    msg = error(p, sections=plugin_sections, verb="survey")
    assert msg == "fit.in: [SURVEY] rounds: expected an integer, got 'zero'"
    s = load_settings(p, ["SURVEY.rounds=3"], sections=plugin_sections, verb="survey")
    assert s.section("SURVEY") == Learn(3) and s.verb == "survey" and s.unparsed_sections == {}
    # absent: the survey verb gets the defaults; fit knows nothing of it
    assert load_settings(base(), sections=plugin_sections, verb="survey").section("SURVEY") == Learn()
    assert load_settings(base(), sections=plugin_sections).unparsed_sections == {}
    # and its keys are not checked by the other verbs either
    assert load_settings(base(SURVEY={"anything": 1}), sections=plugin_sections).notices == ()


def test_bad_section_lists_are_plugin_errors(plugin_sections):
    with pytest.raises(PluginError, match=r"built-in section\(s\) BISPECTRUM.*missing"):
        load_settings(base(), sections=[s for s in plugin_sections if s.name != "BISPECTRUM"])
    with pytest.raises(PluginError, match=r"\[SMOOTHING\] is given twice"):
        load_settings(base(), sections=list(plugin_sections) + [plugin_sections[-2]])
    mutable = SettingsSection("MUTABLE", lambda raw, ctx: dict(raw), None)
    with pytest.raises(PluginError, match=r"\[MUTABLE\]: parse must return a frozen record.*dict"):
        load_settings(base(), sections=list(plugin_sections) + [mutable])
    dup = types.ModuleType("second_smoothing")
    dup.mpisnap_settings_sections = hookimpl(
        lambda: [SettingsSection("SMOOTHING", _parse_smoothing, ("width",))])
    with pytest.raises(PluginError, match="'SMOOTHING' is provided twice: by 'smoothing_plugin' "
                                          "and by 'second_smoothing'"):
        build_registry(get_plugin_manager(autoload=False, plugins=[_sections_plugin(), dup]))


@pytest.mark.parametrize("kwargs, expect", [
    (dict(name="smoothing"), "capitals"),
    (dict(name="SMOOTH ING"), "capitals"),
    (dict(verb="Learn"), "verb"),
    (dict(keys="width"), "keys must be a sequence"),
])
def test_settings_section_record_checks_itself(kwargs, expect):
    args = dict(name="SMOOTHING", parse=_parse_smoothing, keys=("width",)) | kwargs
    with pytest.raises(ValueError, match=expect):
        SettingsSection(**args)


def test_default_sections_built_once_per_autoload_setting(monkeypatch):
    """The default sections come from a plugin manager built on first use, once per process and
    autoload setting (the environment variable is read on every call)."""
    from mpisnap.settings import loader

    calls = []
    real = plugin_manager.get_plugin_manager
    monkeypatch.setattr(plugin_manager, "get_plugin_manager",
                        lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    monkeypatch.delenv(plugin_manager.DISABLE_AUTOLOAD, raising=False)
    loader._sections.cache_clear()
    try:
        first = default_sections(False)
        for _ in range(3):
            assert load_settings(base()).bispectrum.type == ("Ta",)
        monkeypatch.setenv(plugin_manager.DISABLE_AUTOLOAD, "1")
        assert default_sections() is first is default_sections(False)
        assert load_settings(base()).bispectrum.type == ("Ta",)
    finally:
        loader._sections.cache_clear()
    assert [n.name for n in first][:len(SECTION_ORDER)] == list(SECTION_ORDER)
    assert calls == [((False,), {}), ((True,), {})]
