"""The output transaction (:mod:`mpisnap.io`): a set of files is swapped into place all or
nothing — against a bad destination, an error midway, SIGINT/SIGTERM during the swap and SIGKILL
(repaired by the next run) — and output paths are checked before any work."""
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mpisnap import io
from mpisnap.io import (MANIFEST, OutputError, check_output_dir, output_name_problem,
                        output_transaction, publish, recover_outputs)

OLD = {"pot.snapcoeff": "old coeff", "pot.log": "old log", "metrics.md": "old metrics"}
NEW = {"pot.snapcoeff": "new coeff", "pot.log": "new log", "metrics.md": "new metrics",
       "sub/pot_design.h5": "new h5"}


def write_tree(root: Path, files: dict) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def tree(root: Path) -> dict:
    """Every file under root (hidden ones too) but those in staging folders, by relative name."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and not str(p.relative_to(root)).startswith(io.STAGE_PREFIX)}


@pytest.fixture
def swap(tmp_path):
    """An output directory holding the previous run's files and a staging folder with the new."""
    root = tmp_path / "out"
    root.mkdir()
    write_tree(root, OLD)
    stage = Path(io.make_stage(root))
    write_tree(stage, NEW)
    return root, stage, sorted(NEW)


def previous_set_intact(root: Path) -> None:
    assert tree(root) == OLD, tree(root)
    names = [p.name for p in root.iterdir() if not p.name.startswith(io.STAGE_PREFIX)]
    assert sorted(names) == sorted(OLD)  # no sub/, no manifest


def test_publish_replaces_the_previous_set(swap):
    root, stage, names = swap
    files = publish(stage, root, names)
    assert files == [str(root / n) for n in names]
    assert tree(root) == NEW
    assert not (root / MANIFEST).exists()
    assert tree(stage) == {}  # the new files moved out, the previous ones (backups) deleted


def test_a_bad_destination_is_found_before_anything_moves(swap):
    root, stage, names = swap
    (root / "metrics.md").unlink()
    (root / "metrics.md").mkdir()  # a directory where a file goes
    (root / "metrics.md" / "keep").write_text("mine")
    with pytest.raises(OutputError, match=r"metrics\.md: is a directory"):
        publish(stage, root, names)
    assert (root / "pot.snapcoeff").read_text() == "old coeff"
    assert (root / "pot.log").read_text() == "old log"
    assert (root / "metrics.md" / "keep").read_text() == "mine"
    assert not (root / "sub").exists() and not (root / MANIFEST).exists()
    assert tree(stage) == NEW


def test_a_parent_that_is_a_file_is_found_before_anything_moves(swap):
    root, stage, names = swap
    (root / "sub").write_text("a file")
    with pytest.raises(OutputError, match="sub: not a directory"):
        publish(stage, root, names)
    assert (root / "pot.snapcoeff").read_text() == "old coeff"
    assert (root / "sub").read_text() == "a file"


def test_a_symbolic_link_out_of_the_output_directory_is_refused(swap, tmp_path):
    root, stage, names = swap
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "sub").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="outside the output directory"):
        publish(stage, root, names)
    assert list(elsewhere.iterdir()) == []
    assert (root / "pot.snapcoeff").read_text() == "old coeff"


@pytest.mark.parametrize("fail_at", [1, 2, 4, 7])
def test_an_error_midway_puts_the_previous_files_back(swap, monkeypatch, fail_at):
    root, stage, names = swap
    calls = []
    real = io._move

    def move(a, b):
        calls.append(a)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", b)
        real(a, b)

    monkeypatch.setattr(io, "_move", move)
    with pytest.raises(OSError, match="No space left"):
        publish(stage, root, names)
    previous_set_intact(root)
    assert tree(stage) == NEW  # the new files are back in the staging folder


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signals_wait_until_the_swap_is_done(swap, monkeypatch, signame):
    """A signal during the swap runs its handler (here: KeyboardInterrupt, as the CLI's) only
    once every file is in place."""
    root, stage, names = swap
    sig = getattr(signal, signame)
    real = io._move
    seen = []

    def move(a, b):
        if not seen:
            os.kill(os.getpid(), sig)
        seen.append(b)
        real(a, b)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "_move", move)
    previous = signal.signal(sig, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            publish(stage, root, names)
    finally:
        signal.signal(sig, previous)
    assert len(seen) == 7  # 3 previous files moved aside, 4 new files moved in
    assert tree(root) == NEW
    assert not (root / MANIFEST).exists()
    assert signal.getsignal(sig) is previous


KILLER = """
import os, signal, sys
from mpisnap import io
root, stage, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = []
real = io._move
def move(a, b):
    calls.append(a)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real(a, b)
io._move = move
io.publish(stage, root, sys.argv[4:])
"""


def kill_mid_swap(root: Path, stage: Path, names, kill_at: int) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLER, str(root), str(stage), str(kill_at),
                           *names], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (root / MANIFEST).exists()


@pytest.mark.parametrize("kill_at", [1, 2, 3, 5, 7])
def test_sigkill_mid_swap_is_repaired_by_the_next_run(swap, kill_at):
    root, stage, names = swap
    kill_mid_swap(root, stage, names, kill_at)
    assert tree(root) != OLD or kill_at == 1  # half done
    restored = recover_outputs(root)
    assert restored or kill_at == 1
    previous_set_intact(root)
    assert not stage.exists()
    assert recover_outputs(root) == []  # nothing left to do


def test_mpisnap_fit_repairs_a_half_done_swap_before_anything_else(swap, tmp_path):
    """Even a run that then fails on its input file first restores the previous outputs."""
    root, stage, names = swap
    kill_mid_swap(root, stage, names, 4)
    proc = subprocess.run([sys.executable, "-m", "mpisnap", "fit", str(tmp_path / "nowhere.in"),
                           "--output-dir", str(root)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("mpisnap: error: ")
    assert "nowhere.in" in proc.stderr
    previous_set_intact(root)


def test_a_damaged_manifest_is_a_clear_error(tmp_path):
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(OutputError, match="interrupted output swap"):
        recover_outputs(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps(
        {"format": "mpisnap-transaction-1", "stage": "../../etc", "entries": []}))
    with pytest.raises(OutputError, match="unexpected staging folder"):
        recover_outputs(tmp_path)


# -- the transaction as later verbs use it ----------------------------------------------------------

def test_output_transaction_moves_everything_staged(tmp_path):
    out = tmp_path / "a" / "b"
    with output_transaction(out) as tx:
        (Path(tx.path) / "x.txt").write_text("x")
        (Path(tx.path) / "d").mkdir()
        (Path(tx.path) / "d" / "y.txt").write_text("y")
        assert tx.final(os.path.join(tx.path, "d", "y.txt")) == str(out / "d" / "y.txt")
    assert tx.files == [str(out / "d" / "y.txt"), str(out / "x.txt")]
    assert tree(out) == {"x.txt": "x", "d/y.txt": "y"}
    assert sorted(p.name for p in out.iterdir()) == ["d", "x.txt"]


def test_output_transaction_failure_leaves_nothing(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(OSError) as info:
        with output_transaction(out) as tx:
            (Path(tx.path) / "x.txt").write_text("x")
            raise OSError(errno.ENAMETOOLONG, "File name too long", os.path.join(tx.path, "y"))
    assert info.value.filename == str(out / "y")  # named as the output it was meant to become
    assert info.value.errno == errno.ENAMETOOLONG
    assert list(tmp_path.iterdir()) == []  # the folders it created are gone again


def full_disk(monkeypatch, suffix=""):
    """Files that :func:`mpisnap.io.atomic_write` opens (those ending in ``suffix``) are written
    to ``/dev/full``: a real ENOSPC when they are flushed."""
    real = open

    def open_full(path, mode="r", **kw):
        return real("/dev/full" if str(path).endswith(suffix + ".part") else path, mode, **kw)

    monkeypatch.setattr(io, "open", open_full, raising=False)


def test_atomic_write_names_the_file_on_errors(tmp_path, monkeypatch):
    long = tmp_path / ("p" * 300)
    with pytest.raises(OSError) as info:
        with io.atomic_write(long) as fh:
            fh.write("x")
    assert info.value.errno == errno.ENAMETOOLONG and info.value.filename == str(long)
    full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        with io.atomic_write(tmp_path / "f.txt") as fh:
            fh.write("x" * 100)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "f.txt")
    assert list(tmp_path.iterdir()) == []


# -- checks before any work ---------------------------------------------------------------------------

def test_check_output_dir(tmp_path, monkeypatch):
    assert check_output_dir(tmp_path) == str(tmp_path)
    assert check_output_dir(tmp_path / "new" / "deeper") == str(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []  # nothing created
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(OutputError, match=f"{tmp_path / 'f'} is not a directory"):
        check_output_dir(tmp_path / "f" / "sub" / "out")
    with pytest.raises(OutputError, match="File name too long"):
        check_output_dir(tmp_path / ("a" * 300) / "out")
    monkeypatch.setattr(io.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_output_dir(tmp_path / "new")


@pytest.mark.parametrize("name, ok", [
    ("pot", True), ("sub/pot", True), ("a/../b", True), ("../x", False), ("a/../../x", False),
    ("/tmp/x", False), ("", False), (".", False), ("x/", False), (".mpisnap-transaction.json", False),
])
def test_output_names(name, ok):
    assert (output_name_problem(name) is None) == ok
