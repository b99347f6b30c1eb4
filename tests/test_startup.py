"""What a small fit loads and when (issue 14 item 4): a serial SVD fit never imports SciPy (its QR
is NumPy's LAPACK), thread limits still reach a BLAS loaded later, a small QR runs on one BLAS
thread whatever the pools' size, the version and the entry-point check read the installed
metadata without importing importlib.metadata, and ``mpisnap fit`` starts the parity plot's
helper before anything else."""
import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from mpisnap import _metadata, cli, threads, tsqr

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"


def _python(code: str, tmp_path) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_serial_svd_fit_imports_no_scipy(tmp_path):
    code = ("import json, sys, mpisnap\n"
            f"r = mpisnap.fit({str(EXAMPLE)!r}, output_dir={str(tmp_path / 'out')!r}, threads=1)\n"
            "print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'), "
            "'importlib.metadata' in sys.modules, r.thread_pools['blas']]))")
    scipy_modules, metadata, blas = json.loads(_python(code, tmp_path))
    assert scipy_modules == [] and blas == 1
    assert (tmp_path / "out" / "Cu_EMT_pot.snapcoeff").is_file()


def test_fit_starts_its_plot_helper_before_numpy(tmp_path):
    """``mpisnap fit`` starts the helper before importing numpy (``import mpisnap`` and the CLI
    module import no package), and the fit uses that helper rather than starting another."""
    code = f"""
import json, subprocess, sys
seen = []
popen = subprocess.Popen.__init__
def spy(self, *a, **k):
    seen.append("numpy" in sys.modules)
    popen(self, *a, **k)
subprocess.Popen.__init__ = spy
from mpisnap.cli import main
rc = main(["fit", {str(EXAMPLE)!r}, "--output-dir", {str(tmp_path / "out")!r}, "-q",
           "--no-progress"])
from mpisnap import plot_process
print(json.dumps([rc, seen, plot_process.current() is not None]))
"""
    env = {k: v for k, v in os.environ.items() if k != "MPISNAP_PLOT_PROCESS"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rc, seen, running = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 0 and seen == [False]  # one helper, started before numpy's import
    assert running
    assert (tmp_path / "out" / "Cu_EMT_pot_parity.png").is_file()


def test_import_mpisnap_reads_no_metadata_until_the_version_is_asked(tmp_path):
    code = ("import json, sys, mpisnap; before = 'importlib.metadata' in sys.modules; "
            "v = mpisnap.__version__; "
            "print(json.dumps([before, 'importlib.metadata' in sys.modules, v]))")
    before, after, version = json.loads(_python(code, tmp_path))
    assert (before, after) == (False, False)
    assert version == importlib.metadata.version("mpisnap")


def test_limited_reaches_a_blas_loaded_inside_and_restores_it(tmp_path):
    """The block no longer imports SciPy; a BLAS that loads inside it starts at the limit, and
    afterwards has the size its kind of pool had before."""
    code = """
import json, sys
import numpy
from threadpoolctl import threadpool_info
from mpisnap.threads import limited
def blas():
    return sorted((p["filepath"], p["num_threads"]) for p in threadpool_info()
                  if p["user_api"] == "blas")
before = {n for _, n in blas()}
with limited(1):
    loaded = "scipy" in sys.modules
    import scipy.linalg  # its own OpenBLAS
    inside = {n for _, n in blas()}
    count = len(blas())
after = {n for _, n in blas()}
print(json.dumps([loaded, sorted(before), sorted(inside), count, sorted(after)]))
"""
    loaded, before, inside, count, after = json.loads(_python(code, tmp_path))
    assert loaded is False
    assert count >= 2  # NumPy's and SciPy's wheels each bring an OpenBLAS
    assert inside == [1]
    assert after == before


def _blas_sizes():
    return {lib.get_num_threads() for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas"}


def test_small_qr_runs_on_one_blas_thread(monkeypatch):
    seen = []
    real = tsqr._dgeqrf

    def spy(m, n, *args):
        if args[4] != -1:  # not the workspace query
            seen.append((m * n * n, threads._numpy_blas[0].get_num_threads()
                         if threads._numpy_blas else None))
        return real(m, n, *args)

    monkeypatch.setattr(tsqr, "_dgeqrf", spy)
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(600, 20)), rng.normal(size=600)
    with threads.limited(2):
        R = tsqr.local_r(A, b)
        assert _blas_sizes() == {2}  # back to the pool's size
    assert seen and seen[0][0] <= threads.SMALL_QR and seen[0][1] == 1
    # the same R as LAPACK's through numpy.linalg.qr (up to row signs)
    ref = np.linalg.qr(np.column_stack([A, b]), mode="r")
    assert np.allclose(np.abs(R), np.abs(ref), rtol=1e-12, atol=1e-12)
    seen.clear()
    big = threads.SMALL_QR // (256 * 256) + 1  # rows: just above the threshold, 255 + 1 columns
    with threads.limited(2):
        tsqr.local_r(rng.normal(size=(big, 255)), np.ones(big))
    assert seen[0][0] > threads.SMALL_QR and seen[0][1] == 2


def _dist(site: Path, name: str, entry_points: str | None) -> None:
    d = site / f"{name}-1.2.3.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n\nbody\n")
    if entry_points is not None:
        (d / "entry_points.txt").write_text(entry_points)


def test_metadata_answers_as_importlib_metadata(tmp_path, monkeypatch):
    assert _metadata.version("mpisnap") == importlib.metadata.version("mpisnap")
    assert _metadata.version("numpy") == importlib.metadata.version("numpy")
    assert _metadata.version("no-such-distribution-here") is None
    group = "mpisnap_test_group_x"
    assert not _metadata.may_have_entry_points(group)
    assert _metadata.may_have_entry_points("console_scripts")  # pip's, pytest's, ...
    site = tmp_path / "site"
    _dist(site, "other_pkg", "[console_scripts]\nx = y:z\n")
    _dist(site, "plug_pkg", f"[{group}]\nplug = plug_pkg\n")
    monkeypatch.syspath_prepend(str(site))
    assert _metadata.may_have_entry_points(group)
    assert _metadata.version("plug-pkg") == "1.2.3" == importlib.metadata.version("plug-pkg")
    found = [ep.name for ep in importlib.metadata.entry_points(group=group)]
    assert found == ["plug"]


def test_metadata_lists_the_path_once_for_version_and_entry_points(tmp_path, monkeypatch):
    """The version and the entry-point check (both asked at every start) share one listing of
    the sys.path folders; a distribution installed afterwards is still seen."""
    from collections import Counter

    site = tmp_path / "site"
    _dist(site, "plug_pkg", "[console_scripts]\nx = y:z\n")
    expected = importlib.metadata.version("mpisnap")
    installed = str(importlib.metadata.distribution("mpisnap")._path.parent)
    # the path and finders as at a start-up (other tests may have left theirs in this process)
    monkeypatch.setattr(sys, "path", [str(site), installed])
    monkeypatch.setattr(sys, "meta_path", [
        f for f in sys.meta_path if not hasattr(f, "find_distributions")
        or f.__module__ == "_frozen_importlib_external"])
    listed = Counter()
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p=".": listed.update([str(p)]) or real(p))
    group = "mpisnap_test_group_y"
    assert _metadata.version("plug-pkg") == "1.2.3"
    assert not _metadata.may_have_entry_points(group)
    assert _metadata.version("mpisnap") == expected
    assert listed[str(site)] == 1 and set(listed.values()) == {1}
    _dist(site, "late_pkg", f"[{group}]\nplug = late_pkg\n")
    os.utime(site, ns=(1, 1))  # a new modification time even on coarse clocks
    assert _metadata.may_have_entry_points(group)
    assert listed[str(site)] == 2


def test_metadata_defers_to_importlib_for_a_zip_on_the_path(tmp_path, monkeypatch):
    archive = tmp_path / "dists.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_pkg-1.0.dist-info/METADATA", "Name: zipped_pkg\nVersion: 1.0\n\n")
        z.writestr("zipped_pkg-1.0.dist-info/entry_points.txt", "[zipped_group]\na = b\n")
    monkeypatch.syspath_prepend(str(archive))
    assert _metadata.may_have_entry_points("zipped_group")
    assert _metadata.version("zipped_pkg") == "1.0"


def test_fit_starts_the_plot_helper_before_building_the_parser(monkeypatch):
    from mpisnap import plot_process

    order = []
    monkeypatch.setattr(plot_process, "start_early", lambda: order.append("helper"))

    def parser():
        order.append("parser")
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_parser", parser)
    for argv, expected in ((["fit", "x.in", "-q"], ["helper", "parser"]),
                           (["--debug", "fit", "x.in"], ["helper", "parser"]),
                           (["fit", "--help"], ["parser"]), (["plugins"], ["parser"]),
                           (["--version"], ["parser"]), ([], ["parser"])):
        order.clear()
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert order == expected, argv
