"""The labels of a campaign on disk: one FitSNAP JSON file per configuration, written atomically
the moment the oracle returns (:func:`mpisnap.oracle.write_labelled_json`), and one small text
file per structure the oracle failed on. ``--resume`` reads them back instead of asking the
oracle again, so no written label is ever requested twice."""
from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import FitError
from ..oracle import LabelError, Labels, label, read_labelled_json, write_labelled_json

__all__ = ["LabelStore", "FAILED"]

log = logging.getLogger("mpisnap")

#: What :meth:`LabelStore.get` returns for a structure the oracle failed on.
FAILED = "failed"


class LabelStore:
    """Labels of group ``group`` in ``<root>/labelled/<group>/<name>.json``; failures in
    ``<root>/learn_state/failed/<name>.txt``. ``oracle_calls`` counts the oracle's calls made
    by this process."""

    def __init__(self, root: str, group: str) -> None:
        self.root = root
        self.folder = os.path.join(root, "labelled", group)
        self.failed = os.path.join(root, "learn_state", "failed")
        self.oracle_calls = 0

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name + ".json")

    def existing(self) -> list[str]:
        """Names of the labels on disk (sorted)."""
        if not os.path.isdir(self.folder):
            return []
        return sorted(f[:-5] for f in os.listdir(self.folder) if f.endswith(".json"))

    def _cached(self, name: str, atoms):
        path = self.path(name)
        if os.path.isfile(path):
            try:
                stored, labels = read_labelled_json(path)
            except (OSError, ValueError, KeyError, IndexError) as exc:
                raise FitError(f"{path}: cannot read this label ({type(exc).__name__}: {exc}); "
                               "remove it to have it made again") from None
            same = (stored.get_chemical_symbols() == atoms.get_chemical_symbols()
                    and np.allclose(stored.get_positions(), atoms.get_positions(), rtol=0,
                                    atol=1e-8)
                    and np.allclose(np.asarray(stored.get_cell()), np.asarray(atoms.get_cell()),
                                    rtol=0, atol=1e-8))
            if not same or labels is None:
                raise FitError(f"{path}: this label is of another structure than the campaign's "
                               f"{name} (an earlier campaign with other settings?): use another "
                               "--output-dir")
            return labels
        if os.path.isfile(os.path.join(self.failed, name + ".txt")):
            return FAILED
        return None

    def get(self, name: str, atoms, oracle, comment: str = "") -> Labels | str:
        """The labels of structure ``name``: read back when written before, :data:`FAILED` when
        the oracle failed on it before, else made by ``oracle`` and written at once (a
        failure is logged, recorded and returned as :data:`FAILED`)."""
        cached = self._cached(name, atoms)
        if cached is not None:
            return cached
        self.oracle_calls += 1
        try:
            labels = label(oracle, atoms, where=name)
        except LabelError as exc:
            from ..io import atomic_write

            log.warning("learn: the oracle failed on %s (skipped): %s", name, exc)
            os.makedirs(self.failed, exist_ok=True)
            with atomic_write(os.path.join(self.failed, name + ".txt")) as fh:
                fh.write(str(exc) + "\n")
            return FAILED
        os.makedirs(self.folder, exist_ok=True)
        write_labelled_json(self.path(name), atoms, *labels,
                            comment=f"{name}: {comment} labelled by mpisnap learn")
        return labels
