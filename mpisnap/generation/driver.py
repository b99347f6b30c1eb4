""":func:`generate`: random structures -> entropy optimisation (outer iterations) -> labels ->
outputs. The algorithm is described in :mod:`mpisnap.generation`."""
from __future__ import annotations

import glob
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..comm import SerialComm, agree
from .entropy import Snapshot, Whitening, kl_entropy
from .inputs import GenerateInput, read_generate_input
from .optimise import INNER_STEPS, Objective, descriptors_of, optimise
from .structures import WALL_MARGIN, Param, min_pair_distance, random_structure

__all__ = ["generate", "GenerateResult", "GenerateError", "CHECKPOINT", "OUTPUT_GROUP"]

log = logging.getLogger("mpisnap")

#: The checkpoint folder inside the output directory (``--resume`` reads it).
CHECKPOINT = "generate_checkpoint"
#: The FitSNAP group folder of the labelled structures: ``DIR/JSON/Generated``.
OUTPUT_GROUP = os.path.join("JSON", "Generated")
_FORMAT = "mpisnap-generate-1"
#: Random structures drawn per configuration before giving up (min_distance cannot be met).
DRAWS = 20
#: Replacements tried for a configuration whose label failed.
REPLACEMENTS = 5


class GenerateError(ValueError):
    """A user-facing problem of ``generate`` (one line)."""


@dataclass
class GenerateResult:
    """What :func:`generate` produced (every rank gets the same).

    ``structures``: the ``nconfigs`` final structures (``ase.Atoms``; with an oracle each carries
    its labels as a ``SinglePointCalculator``: energy eV, forces eV/Å, stress in ASE's eV/Å³);
    ``labels``: per structure a :class:`mpisnap.oracle.Labels` (stress in bar, pressure
    convention) or None; ``history``: one dict per outer iteration (``iteration``, ``kl`` and
    ``smooth`` entropy of the whole set in nats, per element in ``kl_by_element``,
    ``min_distance`` Å, ``seconds``), the last after the final iteration; ``replaced``: indices of
    structures replaced after their label failed; ``files``: what was written."""

    structures: list
    labels: list
    history: list[dict]
    replaced: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def _names(n: int) -> list[str]:
    width = max(5, len(str(n - 1)))
    return [f"generated_{k:0{width}d}.json" for k in range(n)]


# -- reference set ------------------------------------------------------------------------------

def _reference_structures(inp: GenerateInput) -> list:
    """The reference set as ``ase.Atoms`` (symbols, positions, cell, pbc), in a fixed order."""
    from ase import Atoms

    where = f"{inp.source}: [GENERATE] reference"
    path = inp.resolve(inp.generate.reference)
    if os.path.isdir(path):
        from ..plugin_manager import build_registry, get_plugin_manager
        from ..records import ConfigRef

        files = sorted(glob.glob(os.path.join(path, "**", "*.json"), recursive=True))
        if not files:
            raise GenerateError(f"{where}: no *.json files in {path}")
        reader = build_registry(get_plugin_manager(), ("readers",)).get("readers", "JSON")
        out = []
        for f in files:
            c = reader.load(ConfigRef(os.path.relpath(f, path), "reference", f, 0))
            out.append(Atoms(symbols=list(c.symbols), positions=c.positions, cell=c.cell,
                             pbc=c.pbc))
        return out
    if os.path.isfile(path):
        from ase.io import read

        try:
            frames = read(path, ":")
        except Exception as exc:  # any ASE failure means the file is not readable as given
            raise GenerateError(f"{where}: ASE cannot read {path}: {type(exc).__name__}: "
                                f"{exc}".replace("\n", " ")) from None
        if not frames:
            raise GenerateError(f"{where}: no structures in {path}")
        return list(frames)
    raise GenerateError(f"{where}: no such file or folder: {path}")


# -- the cloud ----------------------------------------------------------------------------------

def _gather_B(comm, own: dict[int, np.ndarray], n: int) -> list[np.ndarray]:
    """Every rank's per-configuration descriptors, in configuration order."""
    parts = comm.allgather(own)
    out: list = [None] * n
    for p in parts:
        for k, B in p.items():
            out[k] = B
    return out


def _clouds(elements: Sequence[str], symbols: list[tuple], Bs: list[np.ndarray],
            ref_symbols: list[tuple], ref_Bs: list[np.ndarray]) -> dict[str, tuple]:
    """Per element: (descriptors (M, K), owner (M,)): reference points first (owner -1), then the
    generated ones in configuration and atom order."""
    out = {}
    for e in elements:
        rows, owner = [], []
        for s, B in zip(ref_symbols, ref_Bs):
            m = np.array(s) == e
            rows.append(B[m])
            owner += [-1] * int(m.sum())
        for k, (s, B) in enumerate(zip(symbols, Bs)):
            m = np.array(s) == e
            rows.append(B[m])
            owner += [k] * int(m.sum())
        K = Bs[0].shape[1] if Bs else ref_Bs[0].shape[1]
        out[e] = (np.vstack(rows) if rows else np.zeros((0, K)), np.array(owner, dtype=int))
    return out


def _snapshots(clouds, whitening, estimator) -> dict[str, Snapshot]:
    return {e: Snapshot(whitening[e](B), owner, estimator)
            for e, (B, owner) in clouds.items() if len(B)}


def _report(it: int, snaps: dict[str, Snapshot], min_dist: float, seconds: float) -> dict:
    kl = {e: kl_entropy(s.X) for e, s in snaps.items()}
    smooth = {e: s.smooth_entropy() for e, s in snaps.items()}
    return {"iteration": it, "kl": float(sum(kl.values())), "smooth": float(sum(smooth.values())),
            "kl_by_element": kl, "smooth_by_element": smooth, "min_distance": min_dist,
            "seconds": seconds}


def _log_entry(h: dict, iterations: int) -> None:
    per = ", ".join(f"{e} {v:.4g}" for e, v in h["kl_by_element"].items())
    log.info(f"generate: iteration {h['iteration']}/{iterations}: entropy (KL) {h['kl']:.6g} "
             f"nats ({per}), smooth {h['smooth']:.6g}; shortest distance "
             f"{h['min_distance']:.4g} Å; {h['seconds']:.2f} s")


# -- checkpoint ---------------------------------------------------------------------------------

def _save_state(path: str, fingerprint: dict, done: int, params: list[Param], xs: list,
                whitening: dict[str, Whitening], history: list[dict]) -> None:
    from ..io import atomic_path

    arrays = {
        "format": np.array(_FORMAT), "fingerprint": np.array(json.dumps(fingerprint)),
        "done": np.array(done), "history": np.array(json.dumps(history)),
        "x": np.concatenate(xs), "sizes": np.array([len(p.symbols) for p in params]),
        "symbols": np.array([s for p in params for s in p.symbols]),
        "L0": np.array([p.L0 for p in params]),
        "elements": np.array(list(whitening)),
    }
    for k, (e, w) in enumerate(whitening.items()):
        arrays[f"mean{k}"], arrays[f"matrix{k}"] = w.mean, w.matrix
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load_state(path: str, fingerprint: dict, where: str):
    """(done, params, xs, whitening, history) of a checkpoint made with the same settings."""
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as exc:
        raise GenerateError(f"{where}: cannot read the checkpoint {path} ({exc}); remove it or "
                            "run without --resume") from None
    if str(d.get("format")) != _FORMAT:
        raise GenerateError(f"{where}: {path} is not a generate checkpoint")
    if json.loads(str(d["fingerprint"])) != json.loads(json.dumps(fingerprint)):
        raise GenerateError(f"{where}: the checkpoint in {os.path.dirname(path)} was made with "
                            "other [BISPECTRUM]/[GENERATE] settings; run without --resume to "
                            "start afresh")
    params, xs, i, j = [], [], 0, 0
    for n, L0 in zip(d["sizes"], d["L0"]):
        syms = tuple(str(s) for s in d["symbols"][j:j + n])
        params.append(Param(syms, float(L0)))
        xs.append(d["x"][i:i + 3 * n + 7].copy())
        i, j = i + 3 * n + 7, j + n
    whitening = {str(e): Whitening(d[f"mean{k}"], d[f"matrix{k}"])
                 for k, e in enumerate(d["elements"])}
    return int(d["done"]), params, xs, whitening, json.loads(str(d["history"]))


# -- the run ------------------------------------------------------------------------------------

def _owners(costs: Sequence[float], comm) -> np.ndarray:
    """The rank of each item: balanced by cost, deterministic (:func:`mpisnap.partition.assign`)."""
    from ..partition import assign

    return assign(costs, comm.size)


def _size(inp: GenerateInput, k: int) -> int:
    """The atom count of configuration k, from its own stream ``(seed, k, 0)``: every rank knows
    every configuration's size (its cost) before any is made."""
    lo, hi = inp.generate.natoms
    return int(np.random.default_rng(np.random.SeedSequence([inp.generate.seed, k, 0]))
               .integers(lo, hi + 1))


def _initial(inp: GenerateInput, k: int, attempt: int = 0) -> tuple[Param, np.ndarray]:
    """Configuration k's random structure (stream ``(seed, k, 1)``), or for ``attempt`` > 0 a
    replacement of any size (stream ``(seed, k, 1 + attempt)``)."""
    g = inp.generate
    rng = np.random.default_rng(np.random.SeedSequence([g.seed, k, 1 + attempt]))
    natoms = _size(inp, k) if attempt == 0 else g.natoms
    for _ in range(DRAWS):
        out = random_structure(rng, inp.elements, inp.composition, natoms, g.volume_per_atom,
                               g.max_strain, g.min_distance)
        if out is not None:
            return out
    raise GenerateError(
        f"{inp.source}: [GENERATE] min_distance: cannot place atoms {g.min_distance} Å apart at "
        f"{g.volume_per_atom[0]}-{g.volume_per_atom[1]} Å³ per atom in {DRAWS} random tries; "
        "lower min_distance or raise volume_per_atom")


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def generate(source, *, overrides: Sequence[str] = (), output_dir: str | os.PathLike | None = None,
             comm=None, threads: int | None = None, resume: bool = False,
             progress: bool = False, base_dir: str | os.PathLike | None = None) -> GenerateResult:
    """Generate a training set by descriptor-entropy maximisation (:mod:`mpisnap.generation`).

    ``source``: an input file (only ``[BISPECTRUM]`` and ``[GENERATE]`` are read) or a dict of
    sections; ``overrides``: ``"SECTION.key=value"`` strings; ``output_dir``: where the outputs
    (``generated.extxyz``, with an oracle ``JSON/Generated/*.json``, ``generate_entropy.csv``,
    ``generate_summary.png``) and the checkpoint go (None: nothing is written); ``comm``: an
    mpi4py communicator (every rank calls ``generate`` with the same arguments) or None;
    ``threads``: each rank's thread pools; ``resume``: continue from the checkpoint in
    ``output_dir`` (labels already made are not made again). Same seed and rank count, same
    result. Errors are one line (ValueError subclasses) raised on every rank.
    """
    from ..threads import limited, threads_per_rank

    comm = comm if comm is not None else SerialComm()
    nthreads = threads_per_rank(comm, threads)
    with limited(nthreads):
        return _generate(comm, source, overrides, output_dir, nthreads, resume,
                         progress and comm.rank == 0, base_dir)


def _setup(comm, source, overrides, output_dir, base_dir):
    from ..io import check_output_dir, recover_outputs

    inp = read_generate_input(source, overrides, base_dir)
    out = None
    if output_dir is not None:
        out = check_output_dir(output_dir)
        if comm.rank == 0 and os.path.isdir(out):
            recover_outputs(out)
            folder = os.path.join(out, OUTPUT_GROUP)
            names = set(_names(inp.generate.nconfigs))
            stale = sorted(f for f in (os.listdir(folder) if os.path.isdir(folder) else [])
                           if f not in names)
            if stale:
                raise GenerateError(
                    f"{folder} holds files this run would not replace ({stale[0]}"
                    f"{' …' if len(stale) > 1 else ''}), which a fit would read with the new "
                    "ones; remove them or choose another --output-dir")
    g = inp.generate
    densest = g.min_distance ** 3 / math.sqrt(2.0)  # spheres of diameter min_distance, close packed
    if g.volume_per_atom[1] < densest:
        raise GenerateError(
            f"{inp.source}: [GENERATE] min_distance: atoms {g.min_distance} Å apart need at least "
            f"{densest:.4g} Å³ per atom (close packing), but volume_per_atom is at most "
            f"{g.volume_per_atom[1]:g}")
    b = inp.bispectrum
    radius = {e: b.radelem[b.type.index(e)] for e in inp.elements}
    shortest_cut = b.rcutfac * 2.0 * min(radius.values())
    if WALL_MARGIN * inp.generate.min_distance >= shortest_cut:
        raise GenerateError(
            f"{inp.source}: [GENERATE] min_distance: {inp.generate.min_distance} Å is not below "
            f"the shortest descriptor cutoff {shortest_cut:.4g} Å / {WALL_MARGIN} ([BISPECTRUM] "
            "rcutfac × 2 radelem)")
    oracle = None
    if inp.generate.oracle is not None:
        from ..oracle import OracleError, load_oracle

        try:
            oracle = load_oracle(inp.generate.oracle, inp.generate.oracle_args, inp.base_dir,
                                 elements=inp.bispectrum.type)
        except OracleError as exc:
            raise OracleError(f"{inp.source}: [GENERATE] oracle: {exc}") from None
    return inp, out, oracle


def _generate(comm, source, overrides, output_dir, nthreads, resume, show, base_dir):
    from .. import Descriptor

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    inp, out, oracle = agree(comm, _setup, comm, source, overrides, output_dir, base_dir)
    g = inp.generate
    n = g.nconfigs
    kw = inp.descriptor_kwargs()
    kw["quadraticflag"] = 0  # the entropy of the linear bispectrum components
    descriptor = agree(comm, lambda: Descriptor(**kw, threads=nthreads))
    fingerprint = inp.fingerprint()
    ckpt = os.path.join(out, CHECKPOINT) if out is not None else None
    state_path = os.path.join(ckpt, "state.npz") if ckpt else None
    where = f"{inp.source}"

    # reference set (fill-the-gaps mode): spread over ranks, descriptors gathered
    ref_symbols: list[tuple] = []
    ref_Bs: list[np.ndarray] = []
    if g.reference is not None:
        refs = agree(comm, _reference_structures, inp)
        known = set(descriptor.elements)
        ref_owner = _owners([len(a) for a in refs], comm)

        def ref_descriptors():
            own = {}
            for k, at in enumerate(refs):
                bad = sorted(set(at.get_chemical_symbols()) - known)
                if bad:
                    raise GenerateError(f"{inp.source}: [GENERATE] reference: structure {k} has "
                                        f"element {bad[0]!r}, not in [BISPECTRUM] type")
                if ref_owner[k] == comm.rank:
                    own[k] = descriptor.compute(at, forces=False, virial=False).B[
                        :, :descriptor.ncoeff]
            return own
        ref_Bs = _gather_B(comm, agree(comm, ref_descriptors), len(refs))
        ref_symbols = [tuple(a.get_chemical_symbols()) for a in refs]
    timings["setup"] = time.perf_counter() - t0

    # the initial structures (always: the whitening and the plot use them), or the checkpoint
    t1 = time.perf_counter()

    owner = _owners([_size(inp, k) for k in range(n)], comm)  # balanced by atoms

    def mine(k: int) -> bool:
        return owner[k] == comm.rank

    def init():
        return {k: _initial(inp, k) for k in range(n) if mine(k)}

    params, xs = [None] * n, [None] * n
    for p in comm.allgather(agree(comm, init)):
        for k, (param, x) in p.items():
            params[k], xs[k] = param, x

    def measure(ks):
        """{k: (B, shortest distance)} of this rank's configurations among ``ks``."""
        return {k: (descriptors_of(descriptor, params[k], xs[k]).B[:, :descriptor.ncoeff],
                    min_pair_distance(*params[k].structure(xs[k]), 2 * g.min_distance))
                for k in ks if mine(k)}

    Bs, dmin = [None] * n, [math.inf] * n

    def collect(parts):
        for p in parts:
            for k, (B, d) in p.items():
                Bs[k], dmin[k] = B, d

    collect(comm.allgather(agree(comm, measure, range(n))))
    symbols = [p.symbols for p in params]
    elements = list(dict.fromkeys(inp.elements))
    init_clouds = _clouds(elements, symbols, Bs, [], [])
    whitening = {}  # fixed for the whole run: the reference set's, else the initial set's
    ref_clouds = _clouds(elements, [], [], ref_symbols, ref_Bs) if ref_Bs else {}
    for e in elements:
        Bref = ref_clouds[e][0] if e in ref_clouds else np.zeros((0, 0))
        whitening[e] = Whitening.fit(Bref if len(Bref) >= 2 else init_clouds[e][0])
    done, history = 0, []
    state = None
    if resume and state_path and os.path.isfile(state_path):
        state = agree(comm, _load_state, state_path, fingerprint, where)
        done, params, xs, whitening, history = state
        symbols = [p.symbols for p in params]
        collect(comm.allgather(agree(comm, measure, range(n))))
        log.info(f"generate: resuming from {state_path} (after iteration {done})")
    elif resume:
        log.info("generate: --resume: no checkpoint in the output directory; starting afresh")
    if comm.rank == 0 and ckpt is not None and state is None:
        for f in glob.glob(os.path.join(ckpt, "labels", "*.json")):  # an older run's labels
            os.remove(f)
    comm.Barrier()
    timings["initial"] = time.perf_counter() - t1

    d_wall = WALL_MARGIN * g.min_distance
    t2 = time.perf_counter()
    clouds = _clouds(elements, symbols, Bs, ref_symbols, ref_Bs)
    snaps = _snapshots(clouds, whitening, g.estimator)
    if not history:
        history.append(_report(0, snaps, min(dmin), 0.0))
        _log_entry(history[-1], g.iterations)
    bar = _progress(g.iterations - done, show, "generate")
    for it in range(done, g.iterations):
        t_it = time.perf_counter()

        def step():
            for k in range(n):
                if mine(k):
                    terms = {e: snaps[e].config_terms(k) for e in set(params[k].symbols)}
                    obj = Objective(descriptor, params[k], terms, whitening, d_wall)
                    xs[k] = optimise(obj, xs[k], g.volume_per_atom, g.max_strain,
                                     g.min_distance)
            return {k: xs[k] for k in range(n) if mine(k)}, measure(range(n))

        for new_x, measured in comm.allgather(agree(comm, step)):
            for k, x in new_x.items():
                xs[k] = x
            collect([measured])
        clouds = _clouds(elements, symbols, Bs, ref_symbols, ref_Bs)
        snaps = _snapshots(clouds, whitening, g.estimator)
        history.append(_report(it + 1, snaps, min(dmin), time.perf_counter() - t_it))
        _log_entry(history[-1], g.iterations)
        if ckpt is not None and comm.rank == 0:
            os.makedirs(ckpt, exist_ok=True)
            _save_state(state_path, fingerprint, it + 1, params, xs, whitening, history)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if ckpt is not None and comm.rank == 0 and state is None and g.iterations == 0:
        os.makedirs(ckpt, exist_ok=True)
        _save_state(state_path, fingerprint, 0, params, xs, whitening, history)
    timings["optimise"] = time.perf_counter() - t2

    # labels
    t3 = time.perf_counter()
    structures = [params[k].atoms(xs[k]) for k in range(n)]
    labels: list = [None] * n
    replaced: list[int] = []
    names = _names(n)
    if oracle is not None:
        def label_own():
            from ..oracle import LabelError, label, read_labelled_json, write_labelled_json

            done_labels = {}
            own_ks = [k for k in range(n) if mine(k)]
            lbar = _progress(len(own_ks), show, "labels")
            for k in own_ks:
                path = os.path.join(ckpt, "labels", names[k]) if ckpt else None
                if resume and path and os.path.isfile(path):
                    at, lab = read_labelled_json(path)
                    if lab is not None:
                        with open(path, encoding="utf-8") as fh:
                            was = "replacement" in fh.readline()
                        done_labels[k] = (at, lab, was)
                        if lbar is not None:
                            lbar.update(1)
                        continue
                at, attempt, was_replaced = structures[k], 0, False
                while True:
                    try:
                        lab = label(oracle, at, where=f"configuration {k}")
                        break
                    except LabelError as exc:
                        attempt += 1
                        if attempt > REPLACEMENTS:
                            raise GenerateError(f"{exc}; {REPLACEMENTS} replacement structures "
                                                "failed too; is the oracle set up right?") from None
                        log.warning(f"generate: {exc}; replacing it ({attempt}/{REPLACEMENTS})")
                        param, x = _initial(inp, k, attempt)
                        terms = {e: snaps[e].config_terms(k) for e in set(param.symbols)}
                        obj = Objective(descriptor, param, terms, whitening, d_wall)
                        x = optimise(obj, x, g.volume_per_atom, g.max_strain, g.min_distance,
                                     steps=INNER_STEPS * 4)
                        at, was_replaced = param.atoms(x), True
                if path:
                    note = f"mpisnap generate: configuration {k}" + (
                        f" (replacement {attempt})" if was_replaced else "")
                    write_labelled_json(path, at, *lab, comment=note)
                done_labels[k] = (at, lab, was_replaced)
                if lbar is not None:
                    lbar.update(1)
            if lbar is not None:
                lbar.close()
            return done_labels
        for p in comm.allgather(agree(comm, label_own)):
            for k, (at, lab, was) in p.items():
                structures[k], labels[k] = at, lab
                if was:
                    replaced.append(k)
        replaced.sort()
        for at, lab in zip(structures, labels):
            _attach(at, lab)
    timings["labels"] = time.perf_counter() - t3

    # outputs (rank 0), all or nothing
    t4 = time.perf_counter()
    files: list[str] = []
    if out is not None:
        def write():
            if comm.rank != 0:
                return []
            return _write_outputs(out, inp, structures, labels, names, history,
                                  clouds, init_clouds, whitening, replaced)
        files = agree(comm, write)
        files = comm.bcast(files, root=0)
    timings["outputs"] = time.perf_counter() - t4
    timings["total"] = time.perf_counter() - t0
    return GenerateResult(structures, labels, history, replaced, files, timings)


def _attach(atoms, lab) -> None:
    if lab is None:
        return
    from ase.calculators.singlepoint import SinglePointCalculator

    from ..units import EV_PER_A3_IN_BAR

    kw = {"energy": lab.energy, "forces": lab.forces}
    if lab.stress is not None:
        s = -np.asarray(lab.stress) / EV_PER_A3_IN_BAR
        kw["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    atoms.calc = SinglePointCalculator(atoms, **kw)


def _write_outputs(out, inp, structures, labels, names, history, clouds, init_clouds, whitening,
                   replaced) -> list[str]:
    from ase.io import write as ase_write

    from ..io import output_transaction
    from ..oracle import write_labelled_json
    from .plots import summary_plot

    with output_transaction(out) as tx:
        for k, at in enumerate(structures):
            at.info["config"] = k
        ase_write(os.path.join(tx.path, "generated.extxyz"), structures, format="extxyz")
        if any(lab is not None for lab in labels):
            folder = os.path.join(tx.path, OUTPUT_GROUP)
            os.makedirs(folder, exist_ok=True)
            for k, (at, lab) in enumerate(zip(structures, labels)):
                note = f"mpisnap generate: configuration {k}" + (
                    " (replacement)" if k in replaced else "")
                write_labelled_json(os.path.join(folder, names[k]), at, *lab, comment=note)
        elements = list(history[-1]["kl_by_element"])
        with open(os.path.join(tx.path, "generate_entropy.csv"), "w", encoding="utf-8") as fh:
            fh.write("iteration,kl,smooth," + ",".join(f"kl_{e}" for e in elements)
                     + ",min_distance,seconds\n")
            for h in history:
                fh.write(f"{h['iteration']},{h['kl']!r},{h['smooth']!r},"
                         + ",".join(repr(h["kl_by_element"][e]) for e in elements)
                         + f",{h['min_distance']!r},{h['seconds']!r}\n")
        summary_plot(os.path.join(tx.path, "generate_summary.png"), inp, structures, history,
                     clouds, init_clouds, whitening)
    return tx.files
