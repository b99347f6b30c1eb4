"""User errors of ``mpisnap fit``: exit status 2, exactly one line ``mpisnap: error...`` on stderr
naming the file, configuration, section or key, no traceback, and no output files (not even a
partial set, nor a leftover staging folder)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mpisnap

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT"


@pytest.fixture
def example(tmp_path):
    dst = tmp_path / "Cu_EMT"
    shutil.copytree(EXAMPLE, dst)
    return dst


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mpisnap", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def edit(example: Path, old: str, new: str, count: int = 1) -> Path:
    """Replace ``old`` by ``new`` in the example's input file (``count`` times, exactly)."""
    inp = example / "Cu_EMT.in"
    text = inp.read_text()
    assert text.count(old) == count, old
    inp.write_text(text.replace(old, new))
    return inp


def first_json(example: Path, group: str = "Strain") -> Path:
    return sorted((example / "JSON" / group).glob("*.json"))[0]


def edit_json(path: Path, change) -> None:
    comment, _, body = path.read_text().partition("\n")  # FitSNAP's comment first line
    assert comment.startswith("#")
    doc = json.loads(body)
    change(doc["Dataset"]["Data"][0])
    # NaN is written as the (accepted) JSON extension NaN
    path.write_text(comment + "\n" + json.dumps(doc))


def no_outputs(tmp_path: Path, out: Path) -> None:
    assert not out.exists() or list(out.iterdir()) == []
    assert not list(tmp_path.rglob(".mpisnap-staging-*"))
    assert not list(tmp_path.rglob("*.part"))
    assert list((tmp_path / "cwd").iterdir()) == []  # the default output folder neither


def fail(tmp_path: Path, inp, *args, needles=()) -> str:
    """Run ``mpisnap fit inp args`` and check it is a clean user error; returns the line."""
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    proc = run("fit", inp, *args, "--output-dir", out, cwd=cwd)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("mpisnap: error: "), line
    for n in needles:
        assert n in line, (n, line)
    assert proc.stdout == ""
    no_outputs(tmp_path, out)
    return line


# -- the input file and its settings -------------------------------------------------------------

def test_missing_input_file(tmp_path):
    fail(tmp_path, tmp_path / "nowhere.in", needles=("nowhere.in", "not found"))


def test_input_file_is_a_directory(tmp_path, example):
    fail(tmp_path, example, needles=("Cu_EMT", "directory"))


def test_unknown_section(tmp_path, example):
    inp = example / "Cu_EMT.in"
    inp.write_text(inp.read_text() + "\n[BOGUS]\nx = 1\n")
    fail(tmp_path, inp, needles=("Cu_EMT.in: [BOGUS]", "unknown section"))


def test_lower_case_section(tmp_path, example):
    inp = edit(example, "[SOLVER]", "[solver]")
    fail(tmp_path, inp, needles=("Cu_EMT.in: [solver]", "unknown section", "SOLVER"))


def test_unknown_key(tmp_path, example):
    inp = edit(example, "rfac0 = 0.99363", "rfac0 = 0.99363\nrcutoff = 5.0")
    fail(tmp_path, inp, needles=("Cu_EMT.in: [BISPECTRUM] rcutoff", "unknown key"))


def test_unknown_key_from_override(tmp_path, example):
    fail(tmp_path, example / "Cu_EMT.in", "--set", "SOLVER.bogus=1",
         needles=("Cu_EMT.in: [SOLVER] bogus", "unknown key", "SOLVER.bogus=1"))


@pytest.mark.parametrize("old, new, needles", [
    ("twojmax = 6", "twojmax = six", ("[BISPECTRUM] twojmax", "expected an integer", "'six'")),
    ("rcutfac = 4.8", "rcutfac = 4.8.1", ("[BISPECTRUM] rcutfac", "expected a number")),
    ("energy = 1", "energy = maybe", ("[CALCULATOR] energy", "expected 0 or 1")),
    ("random_seed = 42", "random_seed = 4.2", ("[GROUPS] random_seed", "expected an integer")),
    ("Strain    = 0.8 0.2 100.0", "Strain    = 0.8 lots 100.0",
     ("[GROUPS] Strain", "testing_size", "'lots'")),
])
def test_wrong_type(tmp_path, example, old, new, needles):
    fail(tmp_path, edit(example, old, new), needles=("Cu_EMT.in: ",) + needles)


def test_unknown_solver(tmp_path, example):
    line = fail(tmp_path, edit(example, "solver = SVD", "solver = SVDD"),
                needles=("[SOLVER] solver", "'SVDD'", "choose one of", "SVD", "RIDGE"))
    assert "Cu_EMT.in" in line


def test_unknown_solver_from_override(tmp_path, example):
    fail(tmp_path, example / "Cu_EMT.in", "--set", "SOLVER.solver=NOPE",
         needles=("Cu_EMT.in", "[SOLVER] solver", "'NOPE'", "choose one of"))


def test_unknown_model_form(tmp_path, example):
    inp = edit(example, "stress = 1", "stress = 1\nmodel = cubic")
    fail(tmp_path, inp, needles=("Cu_EMT.in", "[CALCULATOR] model", "'cubic'", "choose one of",
                                 "linear"))


def test_model_form_that_does_not_match_the_flags(tmp_path, example):
    inp = edit(example, "stress = 1", "stress = 1\nmodel = quadratic")
    fail(tmp_path, inp, needles=("[CALCULATOR] model", "quadraticflag"))


def test_unknown_scraper(tmp_path, example):
    fail(tmp_path, edit(example, "scraper = JSON", "scraper = CSV"),
         needles=("Cu_EMT.in", "[SCRAPER] scraper", "'CSV'", "choose one of", "JSON"))


def test_negative_rcutfac(tmp_path, example):
    fail(tmp_path, edit(example, "rcutfac = 4.8", "rcutfac = -4.8"),
         needles=("Cu_EMT.in: [BISPECTRUM] rcutfac", "must be > 0", "-4.8"))


def test_negative_twojmax(tmp_path, example):
    fail(tmp_path, edit(example, "twojmax = 6", "twojmax = -2"),
         needles=("Cu_EMT.in: [BISPECTRUM] twojmax", "must be >= 0", "-2"))


def test_negative_twojmax_from_override(tmp_path, example):
    fail(tmp_path, example / "Cu_EMT.in", "--set", "BISPECTRUM.twojmax=-1",
         needles=("[BISPECTRUM] twojmax", "must be >= 0", "BISPECTRUM.twojmax=-1"))


@pytest.mark.parametrize("threads", ["0", "-3"])
def test_bad_threads(tmp_path, example, threads):
    fail(tmp_path, example / "Cu_EMT.in", "--threads", threads, needles=("--threads", threads))


# -- the training data ---------------------------------------------------------------------------

def test_missing_group_folder(tmp_path, example):
    shutil.rmtree(example / "JSON" / "Vacancy")
    fail(tmp_path, example / "Cu_EMT.in", needles=("'Vacancy'", "no folder",
                                                   str(example / "JSON" / "Vacancy")))


def test_missing_data_path(tmp_path, example):
    fail(tmp_path, example / "Cu_EMT.in", "--set", "PATH.dataPath=nowhere",
         needles=("'Strain'", "no folder", "nowhere"))


def test_empty_group_folder(tmp_path, example):
    for f in (example / "JSON" / "Surface").glob("*.json"):
        f.unlink()
    fail(tmp_path, example / "Cu_EMT.in", needles=("'Surface'", "no *.json files"))


def test_malformed_json(tmp_path, example):
    bad = first_json(example, "Displaced")
    bad.write_text(bad.read_text()[:-20])  # truncated
    fail(tmp_path, example / "Cu_EMT.in", needles=(bad.name, "invalid JSON"))


def test_json_without_positions(tmp_path, example):
    bad = first_json(example, "Shear")
    edit_json(bad, lambda c: c.pop("Positions"))
    fail(tmp_path, example / "Cu_EMT.in", needles=(bad.name, "Positions", "missing"))


def test_nan_position(tmp_path, example):
    bad = first_json(example, "MD")
    edit_json(bad, lambda c: c["Positions"][1].__setitem__(2, float("nan")))
    assert "NaN" in bad.read_text()
    fail(tmp_path, example / "Cu_EMT.in", needles=(bad.name, "Positions", "non-finite"))


def test_nan_energy(tmp_path, example):
    bad = first_json(example, "MD")
    edit_json(bad, lambda c: c.__setitem__("Energy", float("nan")))
    fail(tmp_path, example / "Cu_EMT.in", needles=(bad.name, "Energy", "not finite"))


def test_unknown_element(tmp_path, example):
    bad = first_json(example, "Vacancy")
    edit_json(bad, lambda c: c["AtomTypes"].__setitem__(0, "Ag"))
    line = fail(tmp_path, example / "Cu_EMT.in",
                needles=("Vacancy/" + bad.name, "'Ag'", "[BISPECTRUM] type", "Cu"))
    assert line.count(bad.name) == 1


def test_zero_volume_cell(tmp_path, example):
    bad = first_json(example, "Strain")
    edit_json(bad, lambda c: c.__setitem__("Lattice", [c["Lattice"][0], c["Lattice"][1],
                                                       [a + b for a, b in zip(*c["Lattice"][:2])]]))
    fail(tmp_path, example / "Cu_EMT.in", needles=(bad.name, "Lattice", "zero volume"))


def test_descriptor_error_names_the_configuration(tmp_path, example):
    """An error of the descriptor core (here: a cell far too thin for the cutoff) names the
    configuration, not its index within a batch."""
    bad = sorted((example / "JSON" / "Shear").glob("*.json"))[3]
    edit_json(bad, lambda c: c["Lattice"].__setitem__(2, [0.0, 0.0, 1e-4]))
    line = fail(tmp_path, example / "Cu_EMT.in", needles=("Shear/" + bad.name, "cell"))
    assert "configuration 0" not in line


def test_no_training_configurations(tmp_path, example):
    inp = edit(example, "= 0.8 0.2 ", "= 0.0 0.2 ", count=6)
    fail(tmp_path, inp, needles=("no training",))


def test_no_configurations_at_all(tmp_path, example):
    inp = edit(example, "= 0.8 0.2 ", "= 0.0 0.0 ", count=6)
    fail(tmp_path, inp, needles=("no training configurations",))


def test_group_asks_for_too_many(tmp_path, example):
    inp = edit(example, "Strain    = 0.8 0.2", "Strain    = 1000 0")
    fail(tmp_path, inp, needles=("'Strain'", "1000"))


# -- the solve -----------------------------------------------------------------------------------

def _rank_deficient(example: Path) -> Path:
    """Energy rows of 5 configurations for 31 columns: the QR solver cannot solve it."""
    inp = example / "Cu_EMT.in"
    text = re.sub(r"^(Shear|Displaced|Vacancy|Surface|MD)\s*=.*$", r"\1 = 0.0 0.0 1 1 1",
                  inp.read_text(), flags=re.M)
    text = text.replace("Strain    = 0.8 0.2", "Strain    = 5 0")
    inp.write_text(text)
    return inp


RANK_DEFICIENT = ("--set", "SOLVER.solver=QR", "--set", "CALCULATOR.force=0", "--set",
                  "CALCULATOR.stress=0")


def test_qr_solver_on_a_rank_deficient_system(tmp_path, example):
    fail(tmp_path, _rank_deficient(example), *RANK_DEFICIENT,
         needles=("QR solver", "rank deficient", "SVD"))


def test_svd_solves_the_same_system(tmp_path, example):
    out = tmp_path / "out"
    proc = run("fit", _rank_deficient(example), *RANK_DEFICIENT[2:], "-q", "--output-dir", out,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_linalg_error_is_a_user_error(tmp_path, example, monkeypatch, capsys):
    """A solver plugin's LinAlgError ends the command with status 2 and one line."""
    from mpisnap import cli
    from mpisnap.plugin_manager import Registry
    from mpisnap.records import Solver

    def broken(R, qb, settings, **kw):
        raise np.linalg.LinAlgError("SVD did not converge")

    real_get = Registry.get

    def get(self, family, name, *, what=None):
        rec = real_get(self, family, name, what=what)
        return Solver("SVD", broken) if family == "solvers" else rec

    monkeypatch.setattr(Registry, "get", get)
    out = tmp_path / "out"
    assert cli.main(["fit", str(example / "Cu_EMT.in"), "-q", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["mpisnap: error: SVD did not converge"]
    assert not out.exists()


# -- the Python API raises, names the configuration and writes nothing ---------------------------

def test_api_error_names_the_configuration(tmp_path, example):
    bad = first_json(example, "Surface")
    edit_json(bad, lambda c: c["AtomTypes"].__setitem__(2, "Zr"))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(f"Surface/{bad.name}") + ".*'Zr'"):
        mpisnap.fit(example / "Cu_EMT.in", output_dir=out)
    assert not out.exists()


def test_api_settings_error(tmp_path, example):
    from mpisnap.settings import SettingsError

    out = tmp_path / "out"
    with pytest.raises(SettingsError, match=r"Cu_EMT\.in: \[BISPECTRUM\] rcutfac: must be > 0"):
        mpisnap.fit(example / "Cu_EMT.in", output_dir=out, overrides=["BISPECTRUM.rcutfac=0"])
    assert not out.exists()


def test_failed_writer_leaves_no_partial_outputs(tmp_path, example):
    """A writer that fails after others wrote: no output file appears, nothing is left over."""
    from mpisnap.hookspecs import hookimpl
    from mpisnap.records import Writer

    def boom(result, output_dir):
        raise ValueError("disk full")

    class Plugin:
        @hookimpl
        def mpisnap_writers(self):
            return [Writer("zz-boom", boom)]

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="disk full"):
        mpisnap.fit(example / "Cu_EMT.in", output_dir=out, plugins=[Plugin()])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# -- output paths, disk errors and internal errors: one line, no partial outputs ---------------------

PREVIOUS = {"Cu_EMT_pot.snapcoeff": "previous coefficients", "Cu_EMT_pot.log": "previous log",
            "Cu_EMT_pot.mod": "previous mod"}


def cli(capsys, *argv) -> tuple[int, list[str]]:
    """``mpisnap ARGV`` in this process: the exit status and the lines on stderr."""
    from mpisnap import cli as mpisnap_cli

    status = mpisnap_cli.main([str(a) for a in argv])
    return status, capsys.readouterr().err.splitlines()


@pytest.fixture
def no_work(monkeypatch):
    """Computing descriptors is an internal error: proves a check happened before the fit."""
    from mpisnap.pipeline import rows

    def build_shard(*a, **k):
        raise AssertionError("descriptors computed")

    monkeypatch.setattr(rows, "build_shard", build_shard)


def previous_outputs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in PREVIOUS.items():
        (out / name).write_text(text)


def previous_outputs_intact(out: Path, extra=()) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted([*PREVIOUS, *extra])
    for name, text in PREVIOUS.items():
        assert (out / name).read_text() == text


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_output_dir_that_is_a_file_is_refused_before_the_fit(tmp_path, example, capsys, no_work,
                                                               where):
    (tmp_path / "f").write_text("mine")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "sub" / "out"
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out)
    assert status == 2
    assert err == [f"mpisnap: error: output directory {out}: "
                   + ("exists and is not a directory" if where == "file"
                      else f"{tmp_path / 'f'} is not a directory")]
    assert (tmp_path / "f").read_text() == "mine"


def test_output_dir_name_too_long(tmp_path, example, capsys, no_work):
    out = tmp_path / ("a" * 300)
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out)
    assert status == 2
    assert len(err) == 1 and err[0].endswith(": File name too long"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cu_EMT"]


@pytest.mark.parametrize("key, value", [("potential", "../escaped"), ("potential", "/tmp/abs_pot"),
                                        ("metrics", "../escaped_metrics"),
                                        ("metrics", "sub/../../escaped_metrics")])
def test_outfile_names_must_stay_inside_the_output_dir(tmp_path, example, capsys, no_work, key,
                                                       value):
    out = tmp_path / "out"
    previous_outputs(out)
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out,
                      "--set", f"OUTFILE.{key}={value}")
    assert status == 2
    assert len(err) == 1 and f"Cu_EMT.in: [OUTFILE] {key}: " in err[0], err
    assert repr(value) in err[0]
    previous_outputs_intact(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cu_EMT", "out"]
    assert not list(Path("/tmp").glob("abs_pot*"))


def test_disk_full_keeps_the_previous_outputs(tmp_path, example, capsys, monkeypatch):
    """ENOSPC while writing the potential (a real one: the file goes to /dev/full): one line with
    the path and the reason, status 2, the previous outputs untouched."""
    from mpisnap import io

    real = open

    def open_full(path, mode="r", **kw):
        full = ".snapcoeff." in os.path.basename(str(path))
        return real("/dev/full" if full else path, mode, **kw)

    monkeypatch.setattr(io, "open", open_full, raising=False)
    out = tmp_path / "out"
    previous_outputs(out)
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out, "-q")
    assert status == 2
    assert err == [f"mpisnap: error: {out / 'Cu_EMT_pot.snapcoeff'}: No space left on device"]
    previous_outputs_intact(out)


def test_a_directory_in_the_way_keeps_the_previous_outputs(tmp_path, example, capsys):
    """The metrics file cannot replace a directory: nothing is replaced (before, the new
    potential sat beside the previous log)."""
    out = tmp_path / "out"
    previous_outputs(out)
    (out / "Cu_EMT_metrics.md").mkdir()
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out, "-q")
    assert status == 2
    assert err == [f"mpisnap: error: {out / 'Cu_EMT_metrics.md'}: is a directory; cannot "
                   f"replace it with a file"]
    previous_outputs_intact(out, extra=["Cu_EMT_metrics.md"])
    assert list((out / "Cu_EMT_metrics.md").iterdir()) == []


def test_store_refuses_to_overwrite_the_input_file(tmp_path, example, capsys, no_work):
    victim = example / "Cu_EMT.in"
    before = victim.read_bytes()
    listing = sorted(p.name for p in example.iterdir())
    assert "Cu_EMT.in" in listing and "JSON" in listing
    status, err = cli(capsys, "fit", victim, "--output-dir", tmp_path / "out", "--store", victim)
    assert status == 2
    assert err == [f"mpisnap: error: descriptor store {victim}: exists and is not an mpisnap "
                   f"descriptor store; refusing to overwrite it"]
    assert victim.read_bytes() == before
    assert sorted(p.name for p in example.iterdir()) == listing  # nothing written beside it


def test_store_into_a_directory_is_refused_without_debris(tmp_path, example, capsys, no_work):
    folder = tmp_path / "stores"
    folder.mkdir()
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", tmp_path / "out",
                      "--store", folder)
    assert status == 2
    assert len(err) == 1 and "is a directory" in err[0], err
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cu_EMT", "stores"]


def test_garbage_from_store(tmp_path, example, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", tmp_path / "out",
                      "--from-store", junk)
    assert status == 2
    assert err == [f"mpisnap: error: {junk}: not an mpisnap descriptor store"]
    assert not (tmp_path / "out").exists()


def test_internal_error_is_one_line_and_debug_shows_the_traceback(tmp_path, example, capsys,
                                                                  monkeypatch):
    from mpisnap.pipeline import rows

    def broken(*a, **k):
        return 1 / 0

    monkeypatch.setattr(rows, "build_shard", broken)
    out = tmp_path / "out"
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out)
    assert status == 1
    assert err == ["mpisnap: internal error: ZeroDivisionError: division by zero (run with "
                   "--debug for the traceback)"]
    status, err = cli(capsys, "fit", example / "Cu_EMT.in", "--output-dir", out, "--debug")
    assert status == 1
    assert err[0] == "Traceback (most recent call last):" and "in broken" in "\n".join(err)
    assert err[-1].startswith("mpisnap: internal error: ZeroDivisionError")
    assert not out.exists()


def test_plugins_verb_follows_the_same_contract(capsys, monkeypatch):
    from mpisnap import plugin_manager

    status, err = cli(capsys, "plugins", "--debug")
    assert status == 0 and err == []

    def broken(*a, **k):
        raise KeyError("solvers")

    monkeypatch.setattr(plugin_manager, "build_registry", broken)
    status, err = cli(capsys, "plugins")
    assert status == 1
    assert err == ["mpisnap: internal error: KeyError: 'solvers' (run with --debug for the "
                   "traceback)"]
    monkeypatch.setattr(plugin_manager, "build_registry",
                        lambda *a: (_ for _ in ()).throw(PermissionError(13, "Permission denied",
                                                                         "/site/plugins.toml")))
    status, err = cli(capsys, "plugins")
    assert status == 2
    assert err == ["mpisnap: error: /site/plugins.toml: Permission denied"]
