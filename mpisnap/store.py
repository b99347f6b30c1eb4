"""The descriptor store: the sharded design matrix on disk, for refits without descriptors.

Layout (works with the plain h5py wheel, no parallel HDF5): ``PATH`` is a small HDF5 file whose
datasets ``A``, ``b`` and ``labels`` are *virtual datasets* concatenating, in rank order, the
per-rank files ``PATH.parts/rank<r>.h5`` that every rank writes on its own. ``PATH`` also holds the
global configuration and group names, each configuration's atom count and the settings that
determine the columns and the truth (``[BISPECTRUM]``, ``[REFERENCE]``, ``[ESHIFT]``, energy /
force / stress switches), checked on refit. Stored are the unweighted rows and the truth minus
reference and shifts; weights and the train/test split are recomputed from the refit's settings,
so a refit may change weights, groups' sizes, the split seed or the solver, on any number of ranks.

Writing never overwrites anything that is not an mpisnap store (the master file's ``format``
attribute is the marker; :func:`check_store_target` runs before any work), and is all or nothing:
the parts and the master are written into a staging folder beside ``PATH`` and swapped into place
together (:func:`mpisnap.io.publish`); a failure leaves the previous store, or nothing, and no
debris.
"""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

from .records import ConfigRef, Reader
from .results import LABEL_DTYPE, DesignShard

__all__ = ["write_store", "read_store", "check_store_target", "StoreError"]

FORMAT = "mpisnap-design-store-1"


class StoreError(ValueError):
    pass


def _fingerprint(settings) -> str:
    d = settings.to_dict()
    keep = {k: d.get(k) for k in ("BISPECTRUM", "REFERENCE", "ESHIFT")}
    calc = d.get("CALCULATOR", {})
    keep["CALCULATOR"] = {k: calc.get(k) for k in ("energy", "force", "stress", "model")}
    return json.dumps(keep, sort_keys=True, default=str)


_PART_RE = re.compile(r"rank\d{5}\.h5")


def _is_store(path: str) -> bool:
    """Whether ``path`` is the master file of an mpisnap descriptor store."""
    import h5py

    if not os.path.isfile(path):
        return False
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as h:
            return h.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


def check_store_target(path) -> str:
    """Before any work: the absolute ``path`` when a descriptor store may be written there (its
    folder exists or can be created; ``path`` is new or an mpisnap store, ``path.parts`` new or a
    folder of store parts), else :class:`StoreError`. Never overwrites anything else."""
    from .io import OutputError, check_output_dir

    given = os.fspath(path)
    full = os.path.abspath(given)
    try:
        check_output_dir(os.path.dirname(full), what="folder of the descriptor store")
    except OutputError as exc:
        raise StoreError(f"descriptor store {given}: {exc}") from None
    if os.path.lexists(full):
        if os.path.isdir(full):
            raise StoreError(f"descriptor store {given}: is a directory; give a file name")
        if not _is_store(full):
            raise StoreError(f"descriptor store {given}: exists and is not an mpisnap "
                             f"descriptor store; refusing to overwrite it")
    parts = full + ".parts"
    if os.path.lexists(parts):
        if os.path.islink(parts) or not os.path.isdir(parts):
            raise StoreError(f"descriptor store {given}: {parts} exists and is not a folder of "
                             f"store parts; refusing to overwrite it")
        other = sorted(n for n in os.listdir(parts) if not _PART_RE.fullmatch(n))
        if other:
            raise StoreError(f"descriptor store {given}: {parts} holds {other[0]!r}, not a "
                             f"store part; refusing to overwrite it")
    return full


def write_store(comm, path, shard: DesignShard, settings) -> str:
    """Every rank writes its rows; rank 0 writes the master file with the virtual datasets.
    Collective; an error on any rank raises on every rank. Everything is written into a
    staging folder beside ``path`` and swapped into place at the end, master and parts
    together (:func:`mpisnap.io.publish`); on failure the staging folder is removed and the
    previous store, if any, is left as it was."""
    from .io import make_stage, publish, recover_outputs
    from .comm import agree

    full = os.path.abspath(os.fspath(path))
    root, name = os.path.dirname(full), os.path.basename(full)

    def begin():
        if comm.rank != 0:
            return None
        check_store_target(full)
        os.makedirs(root, exist_ok=True)
        recover_outputs(root)
        stage = make_stage(root)
        os.mkdir(os.path.join(stage, name + ".parts"))
        return stage

    stage = comm.bcast(agree(comm, begin), root=0)
    try:
        parts = os.path.join(stage, name + ".parts")
        agree(comm, _write_part, os.path.join(parts, f"rank{comm.rank:05d}.h5"), shard)
        counts = comm.allgather(len(shard.b))
        force = shard.labels["kind"] == 1  # atoms per configuration, for smartweights on refit
        cfg, nf = np.unique(shard.labels["config"][force], return_counts=True)
        atoms = comm.gather(dict(zip(cfg.tolist(), (nf // 3).tolist())), root=0)

        def finish():
            if comm.rank != 0:
                return None
            _write_master(os.path.join(stage, name), parts, shard, settings, counts, atoms)
            publish(stage, root, [name + ".parts", name])
            return None

        agree(comm, finish)
    finally:
        if comm.rank == 0:  # every rank is past its writes (agree) or the run is ending
            shutil.rmtree(stage, ignore_errors=True)
    return os.fspath(path)


def _write_part(path: str, shard: DesignShard) -> None:
    import h5py

    with h5py.File(path, "w") as h:
        h.create_dataset("A", data=shard.A)
        h.create_dataset("b", data=shard.b)
        h.create_dataset("labels", data=shard.labels)


def _write_master(path, parts, shard, settings, counts, atoms) -> None:
    """The master file at ``path``, its virtual datasets pointing at ``<parts name>/rank*.h5``
    relative to its own folder (so the pair can be moved together)."""
    import h5py

    ncols = shard.A.shape[1]
    total = sum(counts)
    all_atoms = {}
    for d in atoms:
        all_atoms.update(d)
    with h5py.File(path, "w") as h:
        for name, shape, dtype in (("A", (total, ncols), "f8"), ("b", (total,), "f8"),
                                   ("labels", (total,), LABEL_DTYPE)):
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            r0 = 0
            for r, n in enumerate(counts):
                if n:
                    src = h5py.VirtualSource(os.path.join(os.path.basename(parts),
                                                          f"rank{r:05d}.h5"), name,
                                             shape=(n, ncols) if name == "A" else (n,))
                    layout[r0:r0 + n] = src
                r0 += n
            h.create_virtual_dataset(name, layout, fillvalue=None if name == "labels" else 0)
        str_dt = h5py.string_dtype("utf-8")
        h.create_dataset("config_names", data=list(shard.config_names), dtype=str_dt)
        h.create_dataset("config_natoms", data=np.array(
            [all_atoms.get(i, 0) for i in range(len(shard.config_names))], dtype=np.int64))
        h.attrs["format"] = FORMAT
        h.attrs["fingerprint"] = _fingerprint(settings)
        h.attrs["group_names"] = json.dumps(list(shard.group_names))


def _stored_reader(names: list[str], groups: list[str]) -> Reader:
    by_group: dict[str, list[ConfigRef]] = {}
    for n in names:
        g = n.split("/", 1)[0]
        by_group.setdefault(g, []).append(ConfigRef(n, g, ""))

    def list_configs(data_path, group):
        return sorted(by_group.get(group, []), key=lambda r: r.name)

    def load(ref):  # pragma: no cover - refits never read configurations
        raise StoreError("the descriptor store holds rows, not configurations")

    return Reader("STORE", list_configs, load, "rows from a descriptor store")


def read_store(comm, path, settings) -> tuple[DesignShard, dict]:
    """This rank's share of the stored rows (whole configurations, balanced by row count), with
    weights and train/test flags from ``settings``. Collective only in that every rank reads."""
    import h5py

    from .training_set import training_set

    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreError(f"{path}: no such descriptor store")
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a descriptor store")
    if not _is_store(path):
        raise StoreError(f"{path}: not an mpisnap descriptor store")
    try:
        with h5py.File(path, "r") as h:
            if h.attrs["fingerprint"] != _fingerprint(settings):
                raise StoreError(f"{path}: stored with different [BISPECTRUM], [REFERENCE], "
                                 f"[ESHIFT] or [CALCULATOR] settings than this input; recompute "
                                 f"descriptors")
            folder = os.path.dirname(os.path.abspath(path))
            for vs in h["A"].virtual_sources():  # a missing part would read as zeros
                part = os.path.join(folder, vs.file_name)
                if not os.path.isfile(part):
                    raise StoreError(f"{path}: damaged descriptor store: part {part} is missing")
            names = [x.decode() if isinstance(x, bytes) else x for x in h["config_names"][()]]
            natoms = h["config_natoms"][()]
            labels = h["labels"][()]
            # whole configurations per rank, contiguous in the stored order, balanced by rows
            cfg = labels["config"]
            starts = np.flatnonzero(np.r_[True, cfg[1:] != cfg[:-1]])
            bounds = np.r_[starts, len(cfg)]
            target = np.linspace(0, len(cfg), comm.size + 1)
            cut = [0] + [int(np.searchsorted(bounds, t)) for t in target[1:-1]] + [len(bounds) - 1]
            r0, r1 = int(bounds[cut[comm.rank]]), int(bounds[cut[comm.rank + 1]])
            A = h["A"][r0:r1]
            b = h["b"][r0:r1]
            lab = labels[r0:r1].copy()
    except (KeyError, OSError) as exc:  # a store written by a broken or foreign program
        detail = " ".join(str(exc).split())
        raise StoreError(f"{path}: damaged descriptor store ({detail})") from exc
    groups = [g.name for g in settings.groups]
    entries = training_set(settings, _stored_reader(names, groups))
    by_name = {e.ref.name: e for e in entries}
    keep = np.zeros(len(b), bool)
    w = np.zeros(len(b))
    gindex = {g: k for k, g in enumerate(groups)}
    for s, e in zip(starts[(starts >= r0) & (starts < r1)] - r0,
                    list(bounds[1:][(starts >= r0) & (starts < r1)] - r0)):
        c = int(lab["config"][s])
        entry = by_name.get(names[c])
        if entry is None:  # not in this refit's groups or beyond its sizes
            continue
        we, wf, wv = entry.row_weights(int(natoms[c]))
        kinds = lab["kind"][s:e]
        w[s:e] = np.choose(kinds, [we, wf, wv])
        lab["test"][s:e] = entry.test
        lab["group"][s:e] = gindex[entry.ref.group]
        keep[s:e] = True
    shard = DesignShard(A[keep], b[keep], w[keep], lab[keep], names, groups)
    return shard, {"rows": int(keep.sum())}
