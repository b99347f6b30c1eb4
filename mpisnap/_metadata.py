"""Installed-package metadata without importing :mod:`importlib.metadata` when it is not needed.

``importlib.metadata`` costs a small fit about a tenth of its start-up (it imports the ``email``
package to parse metadata). Two questions are asked at every start: mpisnap's version (for the
run log and the potential files) and whether any installed distribution declares entry points in
the ``mpisnap`` group (third-party plugins). Both are answered here by looking at the
``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` directly, in ``sys.path`` order as
``importlib.metadata`` does (one listing of the path serves both); whenever something is not
plainly such a folder (a zip archive on the path, a custom distribution finder, an unreadable
entry) the answer comes from ``importlib.metadata`` itself.
"""
from __future__ import annotations

import os
import sys
from stat import S_ISDIR, S_ISREG

__all__ = ["version", "may_have_entry_points"]


def _metadata_dirs() -> tuple | None:
    """``(folder, name)`` of every ``*.dist-info`` / ``*.egg-info`` folder on ``sys.path``, in
    ``sys.path`` order; None when ``importlib.metadata`` would look elsewhere too (a zip archive
    on the path, a custom finder of distributions).

    The folders are listed once per state of the path (its entries and their modification
    times, which change when a distribution is installed or removed there): the version and the
    entry-point check at start-up share one listing. (On a file system whose modification
    times have a resolution of seconds, a distribution installed within the same second as the
    last listing is seen only after the next change of the path.)"""
    global _last
    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder.__module__ != "_frozen_importlib_external":
            return None
    key = []
    for entry in sys.path:
        folder = entry or "."
        try:
            st = os.stat(folder)
        except OSError:  # missing: importlib.metadata finds nothing there either
            continue
        if S_ISREG(st.st_mode):  # a zip archive
            return None
        if S_ISDIR(st.st_mode):
            key.append((folder, st.st_mtime_ns))
    key = tuple(key)
    if _last is None or _last[0] != key:
        found = []
        for folder, _ in key:
            try:
                names = os.listdir(folder)
            except OSError:  # unreadable: importlib.metadata finds nothing there either
                continue
            found += [(folder, name) for name in names
                      if name.endswith((".dist-info", ".egg-info"))]
        _last = (key, tuple(found))
    return _last[1]


#: (the path's state, its metadata folders) of the last listing
_last: tuple | None = None


def _normal(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def version(package: str = "mpisnap") -> str | None:
    """The version of the installed distribution ``package`` (None when it is not installed)."""
    dirs = _metadata_dirs()
    if dirs is not None:
        want = _normal(package)
        for folder, name in dirs:
            stem = name.rsplit(".", 1)[0]
            if _normal(stem.split("-", 1)[0]) != want:
                continue
            meta = os.path.join(folder, name,
                                "METADATA" if name.endswith(".dist-info") else "PKG-INFO")
            try:
                with open(meta, encoding="utf-8") as fh:
                    for line in fh:
                        if not line.strip():
                            break
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
            except OSError:
                pass
            break  # the first distribution of that name is the one importlib.metadata reads
    from importlib.metadata import PackageNotFoundError, version as _version

    try:
        return _version(package)
    except PackageNotFoundError:
        return None


def may_have_entry_points(group: str) -> bool:
    """False only when no installed distribution can declare entry points in ``group`` (no
    ``entry_points.txt`` on ``sys.path`` has a ``[group]`` section); True otherwise, including
    whenever the path holds something this check does not read."""
    dirs = _metadata_dirs()
    if dirs is None:
        return True
    header = f"[{group}]"
    for folder, name in dirs:
        path = os.path.join(folder, name, "entry_points.txt")
        try:
            with open(path, encoding="utf-8") as fh:
                if any(line.strip() == header for line in fh):
                    return True
        except FileNotFoundError:
            continue
        except OSError:
            return True
    return False
