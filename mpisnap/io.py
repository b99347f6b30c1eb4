"""Output files, safely.

* One file: :func:`atomic_write` / :func:`atomic_path` — it appears complete under its name or not
  at all.
* A set of files: :func:`output_transaction` — the outputs of a run are written into a staging
  folder inside the output directory, then swapped into place by :func:`publish` *all or nothing*:
  every destination is checked first; SIGINT, SIGTERM (and SIGHUP) are held during the swap
  (their handlers run right after it); any error during the swap puts the previous files back.
* A swap cut short by SIGKILL or a crash: before the swap, :func:`publish` writes a manifest
  (``.mpisnap-transaction.json``) in the output directory and removes it after.
  :func:`recover_outputs` (run by :func:`output_transaction`, and by ``mpisnap fit`` before
  anything else) finds it and **restores the previous complete set of files**: an interrupted run
  is a failed run, and a failed run leaves the outputs as they were.
* Checks before any work: :func:`check_output_dir` (an existing writable directory, or a path
  that can be created — checked without creating anything) and :func:`output_name_problem` (an
  output name must stay inside the output directory).

Every verb that writes outputs does::

    with output_transaction(output_dir) as tx:   # checks, repairs, makes the staging folder
        write_everything_into(tx.path)           # names relative to the output directory
    tx.files                                     # the final paths, once all are in place

Two runs writing into the same output directory at the same time are not supported.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Iterator, Sequence

__all__ = ["atomic_write", "atomic_path", "output_transaction", "Staging", "publish",
           "recover_outputs", "check_output_dir", "output_name_problem", "make_stage",
           "deferred_signals", "OutputError", "MANIFEST", "STAGE_PREFIX"]

MANIFEST = ".mpisnap-transaction.json"
STAGE_PREFIX = ".mpisnap-staging-"
_BACKUP = ".mpisnap-backup"
_FORMAT = "mpisnap-transaction-1"
_RESERVED = ".mpisnap-"

log = logging.getLogger("mpisnap")

_move = os.replace  # the one primitive of the swap (a seam for the tests)


class OutputError(ValueError):
    """An output path mpisnap cannot or will not write (a user error, one line)."""


# -- one file -------------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in the target's folder; on success it is renamed onto ``path``,
    on error removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part",
                                   dir=folder)
    except OSError as exc:  # e.g. a name too long: report the name asked for, not the temporary
        raise OSError(exc.errno, exc.strerror, path) from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that only replaces ``path`` once the block finished without error.
    An OSError of the file itself (e.g. disk full when it is flushed) names ``path``."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, mode, **kwargs) as f:
                yield f
        except OSError as exc:
            if exc.errno is not None and exc.filename in (None, tmp):
                raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
            raise


# -- checks before any work -----------------------------------------------------------------------

def output_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an output name (a path relative to the output directory that stays
    inside it), or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "an output name cannot be empty"
    if "\x00" in name:
        return "an output name cannot contain a NUL character"
    if os.path.isabs(name):
        return "must be relative to the output directory, not an absolute path"
    norm = os.path.normpath(name)
    if norm == os.curdir or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        return "must stay inside the output directory"
    if name.endswith(("/", os.sep)):
        return "names a folder, not a file"
    if norm.split(os.sep)[0].startswith(_RESERVED):
        return f"names starting with {_RESERVED!r} are reserved for mpisnap's own files"
    return None


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_output_dir(path: str | os.PathLike, what: str = "output directory") -> str:
    """The absolute path of ``path`` when it is a writable directory or can be created as one;
    else :class:`OutputError`. Creates nothing: walks up to the first existing ancestor, which
    must be a writable directory."""
    given = os.fspath(path)
    full = os.path.abspath(given)
    probe = full
    while True:
        try:
            st = os.stat(probe)
            break
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(probe)
            if parent == probe:
                raise OutputError(f"{what} {given}: no existing folder above it") from None
            probe = parent
        except OSError as exc:  # name too long, a symbolic-link loop, permission denied
            raise OutputError(f"{what} {given}: {_strerror(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        if probe == full:
            raise OutputError(f"{what} {given}: exists and is not a directory")
        raise OutputError(f"{what} {given}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        who = "" if probe == full else f"{probe} "
        raise OutputError(f"{what} {given}: {who}is not writable (permission denied)")
    return full


# -- signals --------------------------------------------------------------------------------------

_HELD = tuple(getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s))


@contextlib.contextmanager
def deferred_signals(signums: Sequence[int] = _HELD) -> Iterator[None]:
    """Hold ``signums`` for the block: a signal that arrives is recorded and re-raised (so its
    own handler runs) when the block ends. Only the main thread can change handlers; in another
    thread the block runs unprotected (Python delivers signals to the main thread anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame):
        pending.append(signum)

    previous = {s: signal.signal(s, hold) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)


# -- the swap -------------------------------------------------------------------------------------

@dataclass
class _Entry:
    name: str      # relative to the root
    src: str       # in the staging folder
    dest: str      # in the root
    old: bool      # a previous file (or folder) is there and will be replaced


def _kind(path: str) -> str:
    return "dir" if os.path.isdir(path) and not os.path.islink(path) else "file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _preflight(stage: str, root: str, names: Sequence[str]) -> tuple[list[_Entry], list[str]]:
    """Check every destination before anything moves; the entries and the folders to create."""
    entries: list[_Entry] = []
    made: list[str] = []
    seen: set[str] = set()
    real_root = os.path.realpath(root)
    for name in names:
        problem = output_name_problem(name)
        if problem:
            raise OutputError(f"output {name!r}: {problem}")
        name = os.path.normpath(name)
        if name in seen:
            raise OutputError(f"output {name!r}: written twice")
        seen.add(name)
        src, dest = os.path.join(stage, name), os.path.join(root, name)
        if not os.path.lexists(src):
            raise OutputError(f"{src}: staged output missing")
        parts = name.split(os.sep)
        folder = root
        for part in parts[:-1]:
            folder = os.path.join(folder, part)
            if os.path.lexists(folder):
                if not os.path.isdir(folder):
                    raise OutputError(f"{folder}: not a directory (needed for {dest})")
            elif folder not in made:
                made.append(folder)
        parent = os.path.dirname(dest)
        existing = parent
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        if not _inside(os.path.realpath(existing), real_root):
            raise OutputError(f"{dest}: resolves outside the output directory {root} "
                              f"(through a symbolic link)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"{existing}: permission denied (cannot write {dest})")
        old = os.path.lexists(dest)
        if old and _kind(dest) != _kind(src):
            what = "a directory" if _kind(dest) == "dir" else "a file"
            raise OutputError(f"{dest}: is {what}; cannot replace it with "
                              f"{'a directory' if _kind(src) == 'dir' else 'a file'}")
        entries.append(_Entry(name, src, dest, old))
    for a in seen:  # "x" and "x/y" cannot both be outputs
        for b in seen:
            if b.startswith(a + os.sep):
                raise OutputError(f"outputs {a!r} and {b!r}: one is inside the other")
    return entries, made


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_manifest(root: str, stage: str, entries: list[_Entry], made: list[str]) -> None:
    doc = {"format": _FORMAT, "stage": os.path.relpath(stage, root),
           "entries": [{"name": e.name, "old": e.old} for e in entries],
           "made_dirs": [os.path.relpath(d, root) for d in made]}
    path = os.path.join(root, MANIFEST)
    with atomic_write(path, encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(root)


def _remove(path: str) -> None:
    if _kind(path) == "dir":
        shutil.rmtree(path)
    else:
        os.unlink(path)


def publish(stage: str | os.PathLike, root: str | os.PathLike,
            names: Sequence[str]) -> list[str]:
    """Move ``stage/<name>`` onto ``root/<name>`` for every name (files or folders), all or
    nothing; returns the final paths. ``stage`` must be on the same file system as ``root``
    (:func:`make_stage` makes one inside it).

    Every destination is checked first (:class:`OutputError`: a folder where a file goes, a
    parent that is a file, a name outside ``root``, no permission). During the swap the
    previous files are moved into ``stage`` (as backups), the new ones moved in, and signals are
    held (:func:`deferred_signals`); on any error the new files go back to ``stage`` and the
    previous ones back into place, and the error is raised. A manifest in ``root`` records the
    swap while it runs, so that :func:`recover_outputs` can undo it after a crash."""
    stage, root = os.path.abspath(os.fspath(stage)), os.path.abspath(os.fspath(root))
    recover_outputs(root)
    entries, made = _preflight(stage, root, names)
    backups = os.path.join(stage, _BACKUP)
    with deferred_signals():
        _write_manifest(root, stage, entries, made)
        steps: list[tuple[str, str, str]] = []  # (kind, from, to) in the order done
        try:
            os.mkdir(backups)
            for d in made:
                os.mkdir(d)
                steps.append(("mkdir", d, ""))
            for i, e in enumerate(entries):
                if e.old:
                    _move(e.dest, os.path.join(backups, str(i)))
                    steps.append(("move", e.dest, os.path.join(backups, str(i))))
                _move(e.src, e.dest)
                steps.append(("move", e.src, e.dest))
        except BaseException:
            if _undo(steps):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(root, MANIFEST))
            raise
        os.unlink(os.path.join(root, MANIFEST))
        _fsync_dir(root)
    shutil.rmtree(backups, ignore_errors=True)
    return [e.dest for e in entries]


def _undo(steps: list[tuple[str, str, str]]) -> bool:
    """Undo the swap's steps in reverse order; True when all of them were undone."""
    ok = True
    for kind, a, b in reversed(steps):
        try:
            if kind == "mkdir":
                os.rmdir(a)
            else:
                os.replace(b, a)
        except OSError:
            ok = False
    return ok


def recover_outputs(root: str | os.PathLike) -> list[str]:
    """Repair a swap of :func:`publish` that was cut short (SIGKILL, power loss): put the
    previous files back where the manifest says a swap was running, delete the new ones and the
    staging folder. Returns the paths restored or removed (empty when there was nothing to do).
    Safe to run again if it is itself interrupted."""
    root = os.path.abspath(os.fspath(root))
    path = os.path.join(root, MANIFEST)
    if not os.path.lexists(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if doc.get("format") != _FORMAT:
            raise ValueError("unknown format")
        stage = os.path.normpath(os.path.join(root, doc["stage"]))
        entries = [(os.path.normpath(e["name"]), bool(e["old"])) for e in doc["entries"]]
        made = [os.path.join(root, d) for d in doc.get("made_dirs", [])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"{path}: unreadable record of an interrupted output swap ({exc}); "
                          f"check the files in {root} and remove it") from None
    for name, _ in entries:
        if output_name_problem(name):
            raise OutputError(f"{path}: names {name!r} outside {root}; check the files and "
                              f"remove it")
    if not os.path.basename(stage).startswith(STAGE_PREFIX):
        raise OutputError(f"{path}: names an unexpected staging folder {stage}; check the "
                          f"files in {root} and remove it")
    touched = []
    for i, (name, old) in reversed(list(enumerate(entries))):
        dest = os.path.join(root, name)
        backup = os.path.join(stage, _BACKUP, str(i))
        if os.path.lexists(backup):      # the previous file was moved aside: put it back
            if os.path.lexists(dest):
                _remove(dest)
            os.replace(backup, dest)
            touched.append(dest)
        elif not old and os.path.lexists(dest):  # there was nothing: the new file goes
            _remove(dest)
            touched.append(dest)
        # else: the previous file was never moved
    for d in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(d)
    os.unlink(path)
    _fsync_dir(root)
    shutil.rmtree(stage, ignore_errors=True)
    if touched:
        log.warning(
            "%s: an earlier run was interrupted while moving its outputs into place; "
            "the previous files are restored", root)
    return touched


# -- the transaction ------------------------------------------------------------------------------

def make_stage(root: str | os.PathLike) -> str:
    """A new, empty staging folder inside ``root`` (same file system, hidden name)."""
    return tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=os.fspath(root))


@dataclass
class Staging:
    """The staging folder of an :func:`output_transaction`: write the outputs under ``path``,
    with the names they get relative to the output directory ``root``."""

    path: str
    root: str
    files: list[str] = field(default_factory=list)  # the final paths, after the swap

    def final(self, staged: str | os.PathLike) -> str:
        """The path a file written at ``staged`` (inside :attr:`path`) will have."""
        return os.path.join(self.root, os.path.relpath(os.fspath(staged), self.path))


def _staged_names(stage: str) -> list[str]:
    names = []
    for folder, dirs, files in os.walk(stage):
        dirs.sort()
        for f in sorted(files):
            names.append(os.path.relpath(os.path.join(folder, f), stage))
        for d in list(dirs):  # a symbolic link to a folder is moved as it is
            if os.path.islink(os.path.join(folder, d)):
                names.append(os.path.relpath(os.path.join(folder, d), stage))
                dirs.remove(d)
    return sorted(names)


@contextlib.contextmanager
def output_transaction(output_dir: str | os.PathLike) -> Iterator[Staging]:
    """Write a set of outputs all or nothing: checks ``output_dir``
    (:func:`check_output_dir`), creates it, repairs an interrupted earlier swap
    (:func:`recover_outputs`) and yields a :class:`Staging` folder inside it. When the block
    ends without error, every file written under ``Staging.path`` is moved into ``output_dir``
    under the same relative name by :func:`publish` (``Staging.files`` lists the final paths);
    on any error nothing in ``output_dir`` changes. The staging folder is removed either way.
    An OSError about a staged file names the file it was meant to become."""
    root = check_output_dir(output_dir)
    created = []  # the folders this call creates, innermost first: removed again on failure
    folder = root
    while not os.path.lexists(folder):
        created.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(root, exist_ok=True)
    ok = False
    try:
        recover_outputs(root)
        tx = Staging(make_stage(root), root)
        try:
            yield tx
            tx.files = publish(tx.path, root, _staged_names(tx.path))
            ok = True
        except OSError as exc:
            names = [tx.final(f) if isinstance(f, str) and _inside(f, tx.path) else f
                     for f in (exc.filename, exc.filename2)]
            if names != [exc.filename, exc.filename2] and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror, names[0], None, names[1]) from exc
            raise
        finally:
            shutil.rmtree(tx.path, ignore_errors=True)
    finally:
        if not ok:
            for d in created:
                with contextlib.suppress(OSError):
                    os.rmdir(d)

