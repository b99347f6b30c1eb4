"""Installed-package metadata without importing :mod:`importlib.metadata` when it is not needed.

``importlib.metadata`` costs a small fit about a tenth of its start-up (it imports the ``email``
package to parse metadata). Two questions are asked at every start: mpisnap's version (for the
run log and the potential files) and whether any installed distribution declares entry points in
the ``mpisnap`` group (third-party plugins). Both are answered here by looking at the
``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` directly, in ``sys.path`` order as
``importlib.metadata`` does; whenever something is not plainly such a folder (a zip archive on
the path, a custom distribution finder, an unreadable entry) the answer comes from
``importlib.metadata`` itself.
"""
from __future__ import annotations

import os
import sys

__all__ = ["version", "may_have_entry_points"]


def _plain_path() -> bool:
    """Whether ``importlib.metadata`` would only look at folders of ``sys.path`` (no zip
    archives on the path, no custom finder of distributions)."""
    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder.__module__ != "_frozen_importlib_external":
            return False
    for entry in sys.path:
        if os.path.isfile(entry or "."):
            return False
    return True


def _metadata_dirs():
    """``(folder, name)`` of every ``*.dist-info`` / ``*.egg-info`` folder on ``sys.path``."""
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except OSError:  # missing or not a folder: importlib.metadata finds nothing there either
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                yield folder, name


def _normal(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def version(package: str = "mpisnap") -> str | None:
    """The version of the installed distribution ``package`` (None when it is not installed)."""
    if _plain_path():
        want = _normal(package)
        for folder, name in _metadata_dirs():
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
    if not _plain_path():
        return True
    header = f"[{group}]"
    for folder, name in _metadata_dirs():
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
