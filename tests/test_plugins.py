"""The plugin system: an out-of-tree plugin installed with pip, registry errors, the built-ins, and
meta-tests on the hook specifications (every hook documented with an example that runs, and
tested).

Runs against the installed ``mpisnap`` (CI: ``cd tests && python -m pytest`` on a wheel); the
repository is only read for the example input and the example plugin package
(``tests/plugin_pkg``). Subprocesses run in a temporary folder, so that the source tree on
``sys.path[0]`` cannot shadow the installed package.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap import hookimpl, hookspecs
from mpisnap.plugin_manager import DISABLE_AUTOLOAD, PluginError, build_registry, get_plugin_manager
from mpisnap.records import (Configuration, ModelForm, Reader, ReferencePotential, SettingsSection,
                             SolveResult, Solver, Writer)
from mpisnap.settings import SECTION_ORDER, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
EXAMPLE = REPO / "examples" / "Cu_EMT" / "Cu_EMT.in"
PLUGIN_PKG = TESTS / "plugin_pkg"
TIMEOUT = 120

#: The built-in records, by registry family, and the module that provides each family.
BUILTINS = {
    "model_forms": (["linear", "quadratic", "chemsnap"], "mpisnap.plugins.models"),
    "solvers": (["SVD", "RIDGE", "LASSO", "ARD", "QR"], "mpisnap.plugins.solvers"),
    "readers": (["JSON", "XYZ", "ASE"], "mpisnap.plugins.readers"),
    "writers": (["snap", "metrics", "dumps", "parity"], "mpisnap.plugins.writers"),
    "reference_potentials": (["zbl", "lammps"], "mpisnap.plugins.references"),
}
#: The built-in neural-network plugin: its records by family (one provider for several families).
BUILTIN_NN = ("mpisnap.plugins.nn", {"model_forms": ["nn"], "solvers": ["PYTORCH"],
                                     "writers": ["mliap", "nn-state", "loss"]})
#: The built-in settings sections (listed by ``mpisnap plugins`` too) and their provider.
BUILTIN_SECTIONS = (list(SECTION_ORDER), "mpisnap.settings.sections")
#: The sections of one verb that built-in plugins bring, by name: their provider.
BUILTIN_VERB_SECTIONS = {"GENERATE": "mpisnap.plugins.generation", "TUNE": "mpisnap.plugins.tuning",
                         "LEARN": "mpisnap.plugins.learning"}
#: The built-in uncertainty plugins (registered last): their records by family.
BUILTIN_UQ = {"mpisnap.plugins.bayes": {"solvers": ["BAYES", "ANL"], "settings_sections": ["UQ"]},
              "mpisnap.plugins.uq_writers": {"writers": ["uq"]}}


def _uq_records(family: str) -> dict:
    """name -> provider of the uncertainty plugins' records of ``family``."""
    return {n: p for p, fams in BUILTIN_UQ.items() for n in fams.get(family, [])}


def _hooks() -> dict[str, types.FunctionType]:
    """Every hook specification: the ``mpisnap_*`` functions of :mod:`mpisnap.hookspecs`."""
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("mpisnap_")}


def _family(hook: str) -> str:
    return hook[len("mpisnap_"):]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD}
    env.update(extra)
    return env


def _run(args, *, cwd, env, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, timeout=timeout,
                          capture_output=True, text=True)


def _module(name: str, code: str) -> types.ModuleType:
    """Execute plugin source in a fresh module (what importing a plugin file would give)."""
    mod = types.ModuleType(name)
    # dont_inherit: the plugin's own ``from __future__`` lines only, not this file's
    exec(compile(code, f"<{name}>", "exec", dont_inherit=True), mod.__dict__)
    return mod


def _plugin(name: str, **hooks) -> types.ModuleType:
    """A plugin module ``name`` whose hook implementations are ``hooks`` (name -> callable)."""
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        mod.__dict__[hook] = hookimpl(fn)
    return mod


def _read_snapcoeff(path: Path) -> dict[str, np.ndarray]:
    """Per element, the coefficient column of a ``.snapcoeff`` file (β0 first)."""
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    nel, ncoeff = map(int, lines[0].split())
    out, i = {}, 1
    for _ in range(nel):
        el = lines[i].split()[0]
        out[el] = np.array([float(x) for x in lines[i + 1:i + 1 + ncoeff]])
        i += 1 + ncoeff
    return out


def _plugins_listing(text: str) -> dict[str, dict[str, str]]:
    """Parse ``mpisnap plugins`` output into {family: {name: provider}}."""
    out: dict[str, dict[str, str]] = {}
    family = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            family = line[:-1].replace(" ", "_")
            out[family] = {}
        elif line.strip() and family is not None:
            m = re.match(r"\s+(\S+).*<([^<>]+)>\s*$", line)
            assert m, f"unexpected `mpisnap plugins` line: {line!r}"
            out[family][m.group(1)] = m.group(2)
    return out


# ----------------------------------------------------------------- the out-of-tree example plugin


def _can_build_without_isolation() -> bool:
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    from importlib.metadata import version  # setuptools >= 70.1 ships bdist_wheel itself

    major, minor = (int(x) for x in re.findall(r"\d+", version("setuptools"))[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """``tests/plugin_pkg`` installed the way a user would (pip), into a temporary folder: put
    it on PYTHONPATH to enable it. The package is copied first so that building it leaves nothing
    in the source tree."""
    root = tmp_path_factory.mktemp("example_plugin")
    src, site = root / "src", root / "site"
    shutil.copytree(PLUGIN_PKG, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    env = _env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    base = ["-m", "pip", "install", "--no-deps", "--target", site, src]
    attempts = ([base[:4] + ["--no-build-isolation"] + base[4:]]
                if _can_build_without_isolation() else []) + [base]  # isolation: downloads
    logs = []
    for args in attempts:
        shutil.rmtree(site, ignore_errors=True)
        proc = _run(args, cwd=root, env=env, timeout=300)
        if proc.returncode == 0:
            break
        logs.append(f"$ python {' '.join(map(str, args))}\n{proc.stdout}\n{proc.stderr}")
    else:
        pytest.fail("could not pip-install tests/plugin_pkg:\n" + "\n".join(logs))
    assert (site / "mpisnap_example_plugin" / "__init__.py").is_file()
    assert list(site.glob("mpisnap_example_plugin-*.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def example_plugin(plugin_site, monkeypatch) -> types.ModuleType:
    """The installed example plugin module, loaded from its file (for in-process fits with
    ``plugins=[...]`` and no autoload); in ``sys.modules`` while the test runs, as an imported
    module would be."""
    spec = importlib.util.spec_from_file_location(
        "_installed_example_plugin", plugin_site / "mpisnap_example_plugin" / "__init__.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


def _plugin_env(site: Path, **extra: str) -> dict[str, str]:
    env = _env(**extra)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def test_installed_plugin_is_listed(plugin_site, tmp_path):
    proc = _run(["-m", "mpisnap", "plugins"], cwd=tmp_path, env=_plugin_env(plugin_site))
    assert proc.returncode == 0, proc.stderr
    listing = _plugins_listing(proc.stdout)
    # the provider of an entry-point plugin is its entry-point name
    assert listing["model_forms"].get("linear-noconst") == "example", proc.stdout
    assert listing["solvers"].get("TIKHONOV") == "example", proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "linear-noconst" in ln)
    assert "(linear)" in line
    line = next(ln for ln in proc.stdout.splitlines() if "TIKHONOV" in ln)
    assert "[linear]" in line
    for family, (names, provider) in BUILTINS.items():  # the built-ins are still there
        assert {n: listing[family].get(n) for n in names} == dict.fromkeys(names, provider)


def test_fit_with_installed_plugin(plugin_site, example_plugin, tmp_path):
    """The CLI finds the entry-point plugin's model form and solver; what they promise holds:
    β0 = 0 exactly, the other coefficients are the least-squares solution of the model without a
    constant column (1e-10 Tikhonov agrees with SVD on this well-conditioned system), which
    differs from the linear SNAP fit and has a larger residual (fewer columns)."""
    out = tmp_path / "out"
    proc = _run(["-m", "mpisnap", "fit", EXAMPLE, "--set", "CALCULATOR.model=linear-noconst",
                 "--set", "SOLVER.solver=TIKHONOV", "--output-dir", out, "--no-progress"],
                cwd=tmp_path, env=_plugin_env(plugin_site))
    assert proc.returncode == 0, proc.stderr
    coeff_files = list(out.glob("*.snapcoeff"))
    assert len(coeff_files) == 1, sorted(p.name for p in out.iterdir())
    assert f"wrote {coeff_files[0]}" in proc.stdout
    log = coeff_files[0].with_suffix(".log").read_text()
    assert "model form: linear-noconst" in log and "solver: TIKHONOV" in log

    coeff = _read_snapcoeff(coeff_files[0])
    assert list(coeff) == ["Cu"]
    tik = coeff["Cu"]
    assert tik[0] == 0.0  # the promise of linear-noconst: no constant term, exactly

    # references, in-process, with the same plugin module registered by hand (no autoload)
    svd = mpisnap.fit(EXAMPLE, overrides=["CALCULATOR.model=linear-noconst"],
                      plugins=[example_plugin], autoload=False, write=False)
    lin = mpisnap.fit(EXAMPLE, autoload=False, write=False)
    assert svd.model.ncols == lin.model.ncols - 1 == len(tik) - 1
    svd_blocks = svd.model.coefficient_blocks(svd.coefficients)["Cu"]
    assert svd_blocks[0] == 0.0
    np.testing.assert_allclose(tik, svd_blocks, rtol=0, atol=1e-8 * np.abs(svd_blocks).max())
    lin_blocks = lin.model.coefficient_blocks(lin.coefficients)["Cu"]
    assert abs(lin_blocks[0]) > 1e-3
    assert np.abs(lin_blocks[1:] - tik[1:]).max() > 1e-3 * np.abs(tik).max()
    assert lin.solve_info["residual"] < svd.solve_info["residual"]


def _with_example_section(tmp_path: Path, text: str) -> Path:
    """The example input plus an ``[EXAMPLE]`` section, in ``tmp_path`` (data: ``--set`` the
    absolute ``PATH.dataPath``, :data:`EXAMPLE_DATA`)."""
    inp = tmp_path / "with_section.in"
    inp.write_text(EXAMPLE.read_text() + "\n[EXAMPLE]\n" + text)
    return inp


EXAMPLE_DATA = f"PATH.dataPath={EXAMPLE.parent / 'JSON'}"


def test_plugin_brings_its_own_section(plugin_site, example_plugin, tmp_path):
    """The installed plugin's ``[EXAMPLE]`` section: the CLI reads it from the input file,
    ``--set EXAMPLE.tikhonov_lambda`` overrides it, and the plugin's solver gets it as
    ``settings.section("EXAMPLE")``: TIKHONOV with λ = 1 gives the built-in RIDGE solution
    with alpha = 1 (the same minimiser, another implementation), far from the SVD fit."""
    inp = _with_example_section(tmp_path, "tikhonov_lambda = 1e-3\n")
    out = tmp_path / "out"
    overrides = ["SOLVER.solver=TIKHONOV", EXAMPLE_DATA, "EXAMPLE.tikhonov_lambda=1.0"]
    proc = _run(["-m", "mpisnap", "fit", inp, *(a for o in overrides for a in ("--set", o)),
                 "--output-dir", out, "--no-progress"], cwd=tmp_path, env=_plugin_env(plugin_site))
    assert proc.returncode == 0, proc.stderr
    cli = _read_snapcoeff(next(out.glob("*.snapcoeff")))["Cu"]

    # in-process, with the plugin's sections given to the loader
    sections = build_registry(get_plugin_manager(autoload=False, plugins=[example_plugin]),
                              families=("settings_sections",)).all("settings_sections")
    assert load_settings(inp, overrides[:2], sections=sections).section("EXAMPLE") == \
        example_plugin.ExampleSettings(1e-3)  # from the file
    assert load_settings(EXAMPLE, sections=sections).section("EXAMPLE").tikhonov_lambda == 1e-10
    settings = load_settings(inp, overrides, sections=sections)
    assert settings.section("EXAMPLE") == example_plugin.ExampleSettings(1.0)
    tik = mpisnap.fit(settings, plugins=[example_plugin], autoload=False, write=False)
    assert tik.solve_info["lambda"] == 1.0
    np.testing.assert_allclose(cli, tik.model.coefficient_blocks(tik.coefficients)["Cu"],
                               rtol=1e-9, atol=1e-12)
    ridge = mpisnap.fit(EXAMPLE, overrides=["SOLVER.solver=RIDGE", "RIDGE.alpha=1.0"],
                        autoload=False, write=False)
    svd = mpisnap.fit(EXAMPLE, autoload=False, write=False)
    scale = np.abs(svd.coefficients).max()
    np.testing.assert_allclose(tik.coefficients, ridge.coefficients, rtol=0, atol=1e-9 * scale)
    assert np.abs(tik.coefficients - svd.coefficients).max() > 0.05 * scale
    assert np.linalg.norm(tik.coefficients) < np.linalg.norm(svd.coefficients)

    # its errors read like any section's, on one line
    proc = _run(["-m", "mpisnap", "fit", inp, "--set", EXAMPLE_DATA, "--set",
                 "EXAMPLE.tikhonov_lambda=-2", "--output-dir", out], cwd=tmp_path,
                env=_plugin_env(plugin_site))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip() == ("mpisnap: error: with_section.in: [EXAMPLE] tikhonov_lambda: "
                                   "must be >= 0, got -2.0 (from override "
                                   "'EXAMPLE.tikhonov_lambda=-2')")


def test_plugin_section_unknown_without_the_plugin(plugin_site, tmp_path):
    """Without the plugin (autoload off), ``[EXAMPLE]`` is an unknown section, and the error
    names the sections that are known."""
    inp = _with_example_section(tmp_path, "tikhonov_lambda = 1e-3\n")
    out = tmp_path / "out"
    proc = _run(["-m", "mpisnap", "fit", inp, "--set", EXAMPLE_DATA, "--output-dir", out],
                cwd=tmp_path, env=_plugin_env(plugin_site, **{DISABLE_AUTOLOAD: "1"}))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip() == (
        "mpisnap: error: with_section.in: [EXAMPLE]: unknown section; known sections (from the "
        "installed plugins): " + ", ".join([*SECTION_ORDER, *BUILTIN_VERB_SECTIONS,
                                            *_uq_records("settings_sections")]))
    assert not out.exists() or not list(out.iterdir())


def test_fit_without_autoload_rejects_plugin_names(plugin_site, tmp_path):
    out = tmp_path / "out"
    proc = _run(["-m", "mpisnap", "fit", EXAMPLE, "--set", "CALCULATOR.model=linear-noconst",
                 "--set", "SOLVER.solver=TIKHONOV", "--output-dir", out, "--no-progress"],
                cwd=tmp_path, env=_plugin_env(plugin_site, **{DISABLE_AUTOLOAD: "1"}))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert lines[0].startswith("mpisnap: error:")
    assert "linear-noconst" in lines[0] and "choose one of:" in lines[0]
    assert not out.exists() or not list(out.glob("*.snapcoeff"))


# ------------------------------------------------------------------------- registry errors


def _dummy_solve(R, qb, settings=None, *, nrows=None, rnorm2=0.0):
    return SolveResult(np.zeros(np.shape(R)[1]))


def test_duplicate_name_names_both_providers():
    dup = _plugin("duplicate_svd_plugin",
                  mpisnap_solvers=lambda: [Solver("svd", _dummy_solve)])
    pm = get_plugin_manager(autoload=False, plugins=[dup])
    with pytest.raises(PluginError) as exc:
        build_registry(pm)
    msg = str(exc.value)
    assert "'svd'" in msg and "provided twice" in msg
    assert "mpisnap.plugins.solvers" in msg and "duplicate_svd_plugin" in msg


def test_unknown_solver_lists_the_choices():
    with pytest.raises(PluginError) as exc:
        mpisnap.fit(EXAMPLE, overrides=["SOLVER.solver=NO_SUCH_SOLVER"], autoload=False,
                    write=False)
    msg = str(exc.value)
    assert "[SOLVER] solver: unknown solver 'NO_SUCH_SOLVER'; choose one of: " in msg
    choices = msg.split("choose one of: ", 1)[1].split(", ")
    assert set(BUILTINS["solvers"][0]) <= set(choices)


def test_unknown_name_lists_plugin_names_too():
    extra = _plugin("extra_solver_plugin",
                    mpisnap_solvers=lambda: [Solver("ZERO", _dummy_solve)])
    registry = build_registry(get_plugin_manager(autoload=False, plugins=[extra]))
    assert registry.get("solvers", "zero").name == "ZERO"  # case-insensitive
    assert registry.providers[("solvers", "zero")] == "extra_solver_plugin"
    with pytest.raises(PluginError, match=r"choose one of: SVD, .*\bZERO\b"):
        registry.get("solvers", "nope")


def test_wrong_record_type_is_a_plugin_error():
    bad = _plugin("bad_record_plugin",
                  mpisnap_writers=lambda: [Solver("oops", _dummy_solve)])
    pm = get_plugin_manager(autoload=False, plugins=[bad])
    with pytest.raises(PluginError) as exc:
        build_registry(pm)
    msg = str(exc.value)
    assert "bad_record_plugin" in msg and "mpisnap_writers" in msg
    assert "returned Solver" in msg and "expected Writer" in msg


def test_non_record_is_a_plugin_error():
    bad = _plugin("dict_plugin", mpisnap_model_forms=lambda: [{"name": "x"}])
    with pytest.raises(PluginError, match=r"'dict_plugin': mpisnap_model_forms returned dict, "
                                          r"expected ModelForm"):
        build_registry(get_plugin_manager(autoload=False, plugins=[bad]))


def test_bare_record_instead_of_a_list_is_a_plugin_error():
    """A common slip: ``return Solver(...)`` instead of ``return [Solver(...)]``."""
    bad = _plugin("bare_record_plugin", mpisnap_solvers=lambda: Solver("ZERO", _dummy_solve))
    with pytest.raises(PluginError, match="bare_record_plugin"):
        build_registry(get_plugin_manager(autoload=False, plugins=[bad]))


def test_misspelt_hook_fails_loudly():
    typo = types.ModuleType("typo_plugin")
    typo.mpisnap_solver = hookimpl(lambda: [])
    with pytest.raises(PluginError, match="mpisnap_solver"):
        get_plugin_manager(autoload=False, plugins=[typo])


def test_hook_returning_none_provides_nothing():
    empty = _plugin("empty_plugin", mpisnap_readers=lambda: None)
    registry = build_registry(get_plugin_manager(autoload=False, plugins=[empty]))
    assert registry.names("readers") == BUILTINS["readers"][0]


def test_autoload_switch(monkeypatch):
    """``MPISNAP_DISABLE_PLUGIN_AUTOLOAD`` and ``autoload=False`` register the built-ins only."""
    monkeypatch.setenv(DISABLE_AUTOLOAD, "1")
    pm = get_plugin_manager()
    names = {pm.get_name(p) for p in pm.get_plugins()}
    assert names == ({provider for _, provider in BUILTINS.values()} | {BUILTIN_SECTIONS[1]}
                     | set(BUILTIN_VERB_SECTIONS.values()) | {BUILTIN_NN[0]} | set(BUILTIN_UQ))
    monkeypatch.delenv(DISABLE_AUTOLOAD)
    pm = get_plugin_manager(autoload=False)
    assert {pm.get_name(p) for p in pm.get_plugins()} == names


# ------------------------------------------------------------------------------- built-ins


def test_plugins_command_lists_the_builtins(monkeypatch, capsys):
    from mpisnap.cli import main

    monkeypatch.setenv(DISABLE_AUTOLOAD, "1")
    assert main(["plugins"]) == 0
    listing = _plugins_listing(capsys.readouterr().out)
    assert set(listing) == set(BUILTINS) | {"settings_sections"}
    for family, (names, provider) in BUILTINS.items():
        nn = dict.fromkeys(BUILTIN_NN[1].get(family, []), BUILTIN_NN[0])
        assert listing[family] == dict.fromkeys(names, provider) | nn | _uq_records(family), family
    names, provider = BUILTIN_SECTIONS
    assert listing["settings_sections"] == (dict.fromkeys(names, provider) | BUILTIN_VERB_SECTIONS
                                            | _uq_records("settings_sections"))


def test_builtin_records_are_typed():
    registry = build_registry(get_plugin_manager(autoload=False))
    types_ = {"model_forms": ModelForm, "solvers": Solver, "readers": Reader, "writers": Writer,
              "reference_potentials": ReferencePotential, "settings_sections": SettingsSection}
    for family, cls in types_.items():
        for rec in registry.all(family):
            assert isinstance(rec, cls) and rec.name and rec.description, rec
    assert {r.kind for r in registry.all("model_forms")} <= {"linear", "nonlinear"}
    names, provider = BUILTIN_SECTIONS
    assert registry.names("settings_sections") == (names + list(BUILTIN_VERB_SECTIONS)
                                                   + list(_uq_records("settings_sections")))
    assert {registry.providers[("settings_sections", n.lower())] for n in names} == {provider}
    for name, verb_provider in BUILTIN_VERB_SECTIONS.items():
        assert registry.providers[("settings_sections", name.lower())] == verb_provider
        assert registry.get("settings_sections", name).verb is not None


# ------------------------------------------------------------------------------ meta-tests


def _example_code(fn) -> str:
    """The example plugin of a hook's docstring: the indented block after the ``::`` that
    follows the word "Example"."""
    lines = inspect.getdoc(fn).splitlines()
    start = next(i for i, ln in enumerate(lines) if re.search(r"\bExample\b", ln))
    colon = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith("::"))
    block = []
    for ln in lines[colon + 1:]:
        if ln.strip() and not ln.startswith((" ", "\t")):
            break
        block.append(ln)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_hooks_are_the_registry_families():
    """Every hook specification is a registry family (and the other way round)."""
    registry = build_registry(get_plugin_manager(autoload=False))
    assert {_family(h) for h in _hooks()} == set(registry.items)
    pm = get_plugin_manager(autoload=False)
    for hook in _hooks():
        assert pm.hook.__dict__.get(hook) is not None and pm.hook.__dict__[hook].spec is not None


@pytest.mark.parametrize("hook", sorted(_hooks()))
def test_hook_is_documented(hook):
    fn = _hooks()[hook]
    doc = inspect.getdoc(fn)
    assert doc and re.search(r"\bExample\b", doc), f"{hook}: no 'Example' in the docstring"
    code = _example_code(fn)
    assert "@hookimpl" in code, f"{hook}: the docstring example has no @hookimpl"
    assert f"def {hook}(" in code, f"{hook}: the docstring example does not implement {hook}"
    assert "from mpisnap import hookimpl" in code, f"{hook}: the example should show the import"
    assert inspect.signature(fn).return_annotation is not inspect.Signature.empty, \
        f"{hook}: no return annotation"


def _test_sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py")
            if PLUGIN_PKG not in p.parents}


@pytest.mark.parametrize("hook", sorted(_hooks()))
def test_hook_has_tests(hook):
    """A new hook needs a test: its name (or its registry family, quoted as the registry takes
    it) must occur in a test module under tests/."""
    family = _family(hook)
    pattern = re.compile(rf"\b{hook}\b|[\"']{family}[\"']")
    users = [p.name for p, text in _test_sources().items() if pattern.search(text)]
    assert users, f"no test under tests/ mentions {hook} or its family {family!r}"


# --------------------------------------------------- every docstring example runs as a plugin


def _check_readers(mod, registry, tmp_path):
    """Convert the example training set to one .npz per configuration with the built-in JSON
    reader; the example NPZ reader loads them back, and a fit (no stress rows: the example has
    no stress) gives the coefficients of the JSON fit."""
    npz, js = registry.get("readers", "NPZ"), registry.get("readers", "JSON")
    assert registry.providers[("readers", "npz")] == mod.__name__
    json_root = EXAMPLE.parent / "JSON"
    data = tmp_path / "npz"
    for group in sorted(p.name for p in json_root.iterdir() if p.is_dir()):
        (data / group).mkdir(parents=True)
        for ref in js.list_configs(str(json_root), group):
            c = js.load(ref)
            np.savez(data / group / (Path(ref.source).stem + ".npz"), positions=c.positions,
                     cell=c.cell, symbols=np.array(c.symbols), energy=c.energy, forces=c.forces)
    ref = npz.list_configs(str(data), "Strain")[0]
    c = npz.load(ref)
    original = js.load(next(r for r in js.list_configs(str(json_root), "Strain")
                            if Path(r.source).stem == Path(ref.source).stem))
    np.testing.assert_array_equal(c.positions, original.positions)
    np.testing.assert_array_equal(c.forces, original.forces)
    assert c.symbols == original.symbols and c.energy == original.energy

    fit_json = mpisnap.fit(EXAMPLE, overrides=["CALCULATOR.stress=0"], autoload=False, write=False)
    fit_npz = mpisnap.fit(EXAMPLE, overrides=["CALCULATOR.stress=0", "SCRAPER.scraper=NPZ",
                                              f"PATH.dataPath={data}"],
                          plugins=[mod], autoload=False, write=False)
    assert fit_npz.shard.nrows == fit_json.shard.nrows
    np.testing.assert_allclose(fit_npz.coefficients, fit_json.coefficients, rtol=1e-12, atol=0)


def _check_model_forms(mod, registry, tmp_path):
    """The example masks the quadratic diagonal: its design columns are zero and a fit gives
    them (numerically) zero coefficients."""
    rec = registry.get("model_forms", "quadratic-nodiag")
    assert rec.kind == "linear"
    overrides = ["BISPECTRUM.quadraticflag=1", "BISPECTRUM.twojmax=2",
                 "CALCULATOR.model=quadratic-nodiag"]
    result = mpisnap.fit(EXAMPLE, overrides=overrides, plugins=[mod], autoload=False, write=False)
    model = result.model
    assert isinstance(model, mod.NoDiagonal)
    diag = model.diagonal_columns()
    assert diag.size == model.descriptor.ncoeff > 0
    cols = int(model.const) + diag  # one element: one block
    assert not result.shard.A[:, cols].any()
    coef = result.coefficients
    assert np.abs(coef[cols]).max() <= 1e-10 * np.abs(coef).max()


def _check_solvers(mod, registry, tmp_path):
    """The example solver runs in a fit (called as the pipeline calls solvers) and, with its tiny
    penalty, agrees with SVD on this well-conditioned system."""
    rec = registry.get("solvers", "TIKHONOV")
    assert rec.kinds == frozenset({"linear"})
    tik = mpisnap.fit(EXAMPLE, overrides=["SOLVER.solver=TIKHONOV"], plugins=[mod],
                      autoload=False, write=False)
    svd = mpisnap.fit(EXAMPLE, autoload=False, write=False)
    np.testing.assert_allclose(tik.coefficients, svd.coefficients, rtol=0,
                               atol=1e-6 * np.abs(svd.coefficients).max())


def _check_writers(mod, registry, tmp_path):
    rec = registry.get("writers", "coefficients-txt")
    assert rec.enabled(None)
    fake = types.SimpleNamespace(coefficients=np.array([1.5, -2.25, 1e-300]))
    files = rec.write(fake, str(tmp_path))
    assert [Path(f) for f in files] == [tmp_path / "coefficients.txt"]
    np.testing.assert_array_equal(np.loadtxt(files[0]), fake.coefficients)


def _check_reference_potentials(mod, registry, tmp_path):
    """A constant per-atom reference energy e moves β0 by −e and nothing else."""
    rec = registry.get("reference_potentials", "constant")
    e = -0.5
    with_ref = mpisnap.fit(EXAMPLE, overrides=[f"REFERENCE.pair_style=constant {e}",
                                               "REFERENCE.engine=constant"],
                           plugins=[mod], autoload=False, write=False)
    assert isinstance(with_ref.reference, mod.Constant)
    plain = mpisnap.fit(EXAMPLE, autoload=False, write=False)
    d = with_ref.coefficients - plain.coefficients
    scale = np.abs(plain.coefficients).max()
    assert d[0] == pytest.approx(-e, abs=1e-9 * scale)
    np.testing.assert_allclose(d[1:], 0.0, atol=1e-9 * scale)
    tiny = Configuration("tiny", "g", np.array([[0.0, 0.0, 0.0], [1.8, 1.8, 0.0]]),
                         3.6 * np.eye(3), (True, True, True), ("Cu", "Cu"))
    out = with_ref.reference.compute(tiny)
    assert out.energy == pytest.approx(2 * e)
    np.testing.assert_array_equal(out.forces, np.zeros((2, 3)))
    np.testing.assert_array_equal(out.virial, np.zeros(6))
    assert rec.accepts(with_ref.settings.reference)
    assert not rec.accepts(plain.settings.reference.__class__(pair_style="zbl 1.0 2.0"))


def _check_settings_sections(mod, registry, tmp_path):
    """The example section: its defaults when the input has none, typed from the file and from
    overrides, one-line errors naming file, section and key, a round trip through ``to_dict``,
    and an unknown section without the plugin."""
    rec = registry.get("settings_sections", "PENALTY")
    assert rec.verb is None and rec.keys == ("strength", "norm")
    sections = registry.all("settings_sections")
    assert load_settings(EXAMPLE, sections=sections).section("PENALTY") == mod.Penalty()
    inp = tmp_path / "penalty.in"
    inp.write_text(EXAMPLE.read_text() + "\n[PENALTY]\nstrength = 0.5\nnorm = L1\n")
    s = load_settings(inp, sections=sections)
    assert s.section("PENALTY") == mod.Penalty(0.5, "l1")
    assert load_settings(inp, ["PENALTY.strength=2"], sections=sections).section("PENALTY") == \
        mod.Penalty(2.0, "l1")
    assert load_settings(s.to_dict(), sections=sections) == s
    for overrides, expect in [
            (["PENALTY.strength=-1"], "penalty.in: [PENALTY] strength: must be >= 0, got -1.0 "
                                      "(from override 'PENALTY.strength=-1')"),
            (["PENALTY.norm=l3"], "penalty.in: [PENALTY] norm: expected l1 or l2, got 'l3' "
                                  "(from override 'PENALTY.norm=l3')"),
            (["PENALTY.strenght=1"], "penalty.in: [PENALTY] strenght: unknown key (did you mean "
                                     "'strength'?) (from override 'PENALTY.strenght=1')")]:
        with pytest.raises(SettingsError) as exc:
            load_settings(inp, overrides, sections=sections)
        assert str(exc.value) == expect
    builtin_only = build_registry(get_plugin_manager(autoload=False)).all("settings_sections")
    with pytest.raises(SettingsError, match=r"^penalty\.in: \[PENALTY\]: unknown section"):
        load_settings(inp, sections=builtin_only)


_EXAMPLE_CHECKS = {
    "mpisnap_readers": _check_readers,
    "mpisnap_model_forms": _check_model_forms,
    "mpisnap_solvers": _check_solvers,
    "mpisnap_writers": _check_writers,
    "mpisnap_reference_potentials": _check_reference_potentials,
    "mpisnap_settings_sections": _check_settings_sections,
}


@pytest.mark.parametrize("hook", sorted(_hooks()))
def test_hook_docstring_example_runs(hook, tmp_path):
    """Each hook's docstring example, executed as a plugin module, registers and works."""
    code = _example_code(_hooks()[hook])
    mod = _module(f"example_{_family(hook)}", code)
    assert hasattr(mod, hook)
    registry = build_registry(get_plugin_manager(autoload=False, plugins=[mod]))
    provided = [name for name in registry.names(_family(hook))
                if registry.providers[(_family(hook), name.lower())] == mod.__name__]
    assert provided, f"the {hook} example provides no record"
    assert {f for (f, _), p in registry.providers.items() if p == mod.__name__} == {_family(hook)}
    check = _EXAMPLE_CHECKS.get(hook)
    assert check is not None, f"add a check of the {hook} docstring example to _EXAMPLE_CHECKS"
    check(mod, registry, tmp_path)


# ------------------------------------------------------------------ choosing the model form


def test_auto_model_form_is_the_accepting_form_of_lowest_priority(tmp_path):
    """``[CALCULATOR] model = auto`` asks each record (accepts, priority), as references are
    chosen: a plugin form that accepts the input with a lower priority wins; the built-in rule
    still picks ``linear`` for a linear input; the core imports no plugin to decide."""
    import mpisnap
    from mpisnap.plugins.models import LinearSNAP

    class Mine(LinearSNAP):
        name = "mine"

    class Plugin:
        @mpisnap.hookimpl
        def mpisnap_model_forms(self):
            return [ModelForm("mine", "linear", Mine, "test form",
                              accepts=lambda s: s.bispectrum.twojmax[0] == 2, priority=10)]

    example = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT" / "Cu_EMT.in"
    base = mpisnap.fit(example, write=False)
    assert base.model.name == "linear"
    got = mpisnap.fit(example, write=False, plugins=[Plugin()])
    assert got.model.name == "linear"  # does not accept twojmax 6 -> the built-in
    small = mpisnap.fit(example, write=False, plugins=[Plugin()],
                        overrides=["BISPECTRUM.twojmax=2"])
    assert small.model.name == "mine"


def test_auto_model_form_for_a_neural_network_input_says_what_is_missing(monkeypatch):
    import mpisnap
    from mpisnap import plugin_manager

    monkeypatch.setattr(plugin_manager, "BUILTINS", tuple(
        b for b in plugin_manager.BUILTINS if b != BUILTIN_NN[0]))  # no nn form installed
    example = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT" / "Cu_EMT.in"
    with pytest.raises(PluginError, match=r"no installed model form accepts.*'nn'"):
        mpisnap.fit(example, write=False, overrides=["SOLVER.solver=PYTORCH"])
