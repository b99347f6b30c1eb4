"""Training of the ``nn`` model form with PyTorch, data-parallel over MPI.

Data. Each rank reads only its own configurations (the pipeline's partition) and keeps, per
configuration, the standardised descriptors x_i = (B_i − scale0) / scale1 (N × K) and the
per-neighbour derivatives ∂x_i/∂r_in (P × 3 × K, one entry per neighbour image: the sparse form,
no dense 3N × 3N array), with the targets: energy per atom (eV/atom; minus the reference
potential, plus ESHIFT), forces (eV/Å) and stress (bar, pressure convention), as the linear
forms' rows. Memory per configuration ≈ 8·(24·K + 5)·P bytes in float64 (half in float32).

Loss (per batch of configurations, FitSNAP's form): Σ_c (w_E,c r_E,c)² / n_E + Σ (w_F r_F)² /
n_F + Σ (w_S r_S)² / n_S, the n the batch's row counts of each kind; the weights w are the
rows' weights of the linear fit ([GROUPS], smartweights) or, with ``[PYTORCH] energy_weight``
and ``force_weight`` (and ``stress_weight``), the square roots of those (FitSNAP's global
weights multiply each mean squared error). Forces: F_m = Σ_p [i_p = m] c_p − Σ_p [j_p = m] c_p,
c_p = ∂x_i/∂r_in · ∂E_i/∂x_i, by automatic differentiation (double backward for the loss).

Parallelism. The batches are the same for any number of ranks: every epoch the training
configurations (in pairs of similar cost, :mod:`.batches`) are shuffled by a generator seeded
from ``[PYTORCH] seed`` and the epoch, and cut into batches of ``batch_size`` configurations; the
partition gives each of two ranks one configuration of every pair. Each rank computes its own
configurations' share of the batch loss and its gradient, the gradients of all ranks are
gathered and summed in rank order (every rank gets the same bits), and every rank takes the same
optimiser step. Results agree between rank counts to round-off (the sum over a batch is grouped
by rank); PyTorch's thread pool is set to the per-rank thread count for the run.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from mpisnap import units
from mpisnap.comm import agree, gather_dict
from mpisnap.errors import FitError
from mpisnap.metrics import compute_metrics
from mpisnap.pipeline.partitioning import config_cost, gather_costs
from mpisnap.models import VOIGT
from mpisnap.results import LABEL_DTYPE, DesignShard, FitResult

from .batches import epoch_order, make_units, split
from .network import Network, ensemble_mean

log = logging.getLogger("mpisnap")

STATE_FORMAT = "mpisnap-nn-state"
STATE_VERSION = 1
_VOIGT_FLAT = torch.tensor([3 * a + b for a, b in VOIGT], dtype=torch.int64)


# -- data -----------------------------------------------------------------------------------------

@dataclass
class Item:
    """One configuration of this rank (see the module docstring for units)."""

    index: int                  # into the global training-set listing
    group: int
    test: bool
    natoms: int
    el: torch.Tensor            # (N,) element index
    B: np.ndarray | None        # (N, K) raw descriptors until standardised, then None
    x: torch.Tensor | None      # (N, K) standardised
    pi: np.ndarray | None       # (P,) centre atom of each neighbour image (until standardised)
    pj: torch.Tensor            # (N·M,) atom of each neighbour slot (padding: the centre atom)
    dBdr: np.ndarray | None     # (P, 3, K) raw, until standardised
    dxdr: torch.Tensor | None   # (N, K, 3·M) standardised, M neighbour slots per atom
    rij: torch.Tensor | None    # (N·M, 3) Å, when the stress is fitted (padding: 0)
    e: float | None             # eV/atom
    f: torch.Tensor | None      # (N, 3) eV/Å
    s: torch.Tensor | None      # (6,) bar
    vol: float
    we: float
    wf: float
    ws: float
    val: bool = False           # held out for early stopping

    @property
    def counts(self) -> tuple[int, int, int]:
        return (int(self.e is not None), 3 * self.natoms if self.f is not None else 0,
                6 if self.s is not None else 0)


def _naming(name):
    from contextlib import contextmanager

    @contextmanager
    def ctx():
        try:
            yield
        except (ValueError, OSError) as exc:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise FitError(msg if name in msg else f"{name}: {msg}") from exc
    return ctx()


def load_items(model, setup, pl, timer, chunk: int = 16) -> list[Item]:
    """This rank's configurations with their descriptors, derivatives, targets and weights."""
    settings = setup.settings
    pt = settings.pytorch
    calc = settings.calculator
    gindex = {g: k for k, g in enumerate(pl.group_names)}
    glob_w = pt.energy_weight is not None
    sw = math.sqrt(pt.stress_weight or 0.0) if glob_w else None
    d = model.descriptor
    items: list[Item] = []
    mine = list(pl.mine)
    for k0 in range(0, len(mine), chunk):
        idx = mine[k0:k0 + chunk]
        configs, refs = [], []
        for i in idx:
            entry = pl.entries[i]
            with timer("read"), _naming(entry.ref.name):
                c = setup.reader.load(entry.ref)
                d.type_indices(c.symbols)  # an element outside [BISPECTRUM] type: one line
            with timer("reference"), _naming(c.name):
                refs.append(setup.reference.compute(c) if setup.reference is not None else None)
            configs.append(c)
        with timer("descriptors"):
            kw = [dict(positions=c.positions, cell=c.cell, pbc=c.pbc, symbols=c.symbols)
                  for c in configs]
            try:
                descs = d.compute_batch(kw, forces=False, virial=False, pairs=True)
            except ValueError:
                for c, k in zip(configs, kw):
                    with _naming(c.name):
                        d.compute(**k, forces=False, virial=False)
                raise
        for i, c, r, ds in zip(idx, configs, refs, descs):
            entry = pl.entries[i]
            n = c.natoms
            el = d.type_indices(c.symbols).astype(np.int64)
            vol = c.volume if all(c.pbc) else 0.0
            use_e = bool(calc.energy) and c.energy is not None
            use_f = bool(calc.force) and c.forces is not None
            use_s = bool(calc.stress) and c.stress is not None and vol > 0
            with _naming(c.name):
                we, wf, ws = entry.row_weights(n)
            if glob_w:
                we, wf, ws = math.sqrt(pt.energy_weight), math.sqrt(pt.force_weight), sw
            e = f = s = None
            if use_e:
                es = float(sum(settings.eshift[x] for x in c.symbols))
                e = (c.energy + es - (r.energy if r is not None else 0.0)) / n
            if use_f:
                f = np.asarray(c.forces, float) - (np.asarray(r.forces) if r is not None else 0.0)
                f = torch.from_numpy(np.ascontiguousarray(f))
            if use_s:
                st = np.asarray(c.stress, float)
                s = np.array([st[a, b] for a, b in VOIGT])
                if r is not None:
                    s = s - np.asarray(r.virial, float) * (units.NKTV2P / vol)
                s = torch.from_numpy(s)
            p = ds.pairs
            items.append(Item(
                index=int(i), group=gindex[entry.ref.group], test=bool(entry.test), natoms=n,
                el=torch.from_numpy(el), B=ds.B, x=None, pi=p.i.astype(np.int64),
                pj=torch.from_numpy(p.j.astype(np.int64)), dBdr=p.dBdr, dxdr=None,
                rij=torch.from_numpy(np.ascontiguousarray(p.rij)) if use_s else None,
                e=e, f=f, s=s, vol=vol, we=float(we), wf=float(wf), ws=float(ws)))
    return items


def _rank_sum(comm, arr: np.ndarray) -> np.ndarray:
    """Σ over ranks, added in rank order (the same bits on every rank)."""
    if comm.size == 1:
        return np.array(arr, copy=True)
    parts = comm.allgather(np.ascontiguousarray(arr))
    total = np.array(parts[0], dtype=float, copy=True)
    for p in parts[1:]:
        total += p
    return total


class _GradientSum:
    """Σ over ranks of the parameters' gradients and the loss, in rank order (every rank gets
    the same bits): one buffer-based ``Allgather`` of a flat float64 vector per step (no
    pickling), the parts then added in rank order."""

    def __init__(self, comm, params) -> None:
        self.comm, self.params = comm, params
        self.seconds = 0.0  # in the exchange, waiting included
        n = sum(p.numel() for p in params) + 1
        self.send = np.zeros(n)
        self.recv = np.zeros((comm.size, n)) if comm.size > 1 else None
        self.total = np.zeros(n)
        off = np.cumsum([0] + [p.numel() for p in params])
        self.views = [(torch.from_numpy(self.send[a:b]), torch.from_numpy(self.total[a:b]))
                      for a, b in zip(off[:-1], off[1:])]

    def __call__(self, loss: float) -> float:
        if self.comm.size == 1:
            return loss
        for p, (send, _) in zip(self.params, self.views):
            send.copy_(p.grad.reshape(-1))
        self.send[-1] = loss
        t0 = time.perf_counter()
        self.comm.Allgather(self.send, self.recv)  # (mostly waiting for the slowest rank)
        self.seconds += time.perf_counter() - t0
        np.copyto(self.total, self.recv[0])
        for part in self.recv[1:]:
            self.total += part
        for p, (_, total) in zip(self.params, self.views):
            p.grad.copy_(total.view_as(p))
        return float(self.total[-1])


def standardisation(comm, model, items: list[Item]) -> np.ndarray:
    """(nelements, 2, K): mean and standard deviation of the fitted configurations'
    descriptors, per element (one network per element) or over all atoms (shared network),
    two passes (no cancellation); a standard deviation of 0 (a constant descriptor) becomes 1."""
    nel, K = len(model.elements), model.ndescriptors
    groups = nel if not model.shared else 1
    fit = [it for it in items if not it.test and not it.val]

    def key(it):
        return it.el.numpy() if groups > 1 else np.zeros(it.natoms, np.int64)

    acc = np.zeros((groups, K + 1))
    for it in fit:
        Bm = it.B * model.mask[it.el.numpy()]
        g = key(it)
        for t in range(groups):
            sel = g == t
            acc[t, :K] += Bm[sel].sum(axis=0)
            acc[t, K] += sel.sum()
    acc = _rank_sum(comm, acc)
    count = np.maximum(acc[:, K:], 1.0)
    mean = acc[:, :K] / count
    sq = np.zeros((groups, K))
    for it in fit:
        Bm = it.B * model.mask[it.el.numpy()]
        g = key(it)
        for t in range(groups):
            sq[t] += ((Bm[g == t] - mean[t]) ** 2).sum(axis=0)
    sq = _rank_sum(comm, sq)
    std = np.sqrt(sq / count)
    small = ~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))
    std[small] = 1.0
    scale = np.stack([mean, std], axis=1)
    return np.repeat(scale, nel, axis=0) if groups == 1 else scale


def standardise(model, items: list[Item], scale: np.ndarray, dtype) -> None:
    """x and ∂x/∂r of every item, the derivatives laid out per centre atom in M neighbour slots
    (M: the most neighbour images of an atom of that configuration; unused slots are zero), so
    that the force contraction is one batched matrix product per configuration. The raw arrays
    are dropped."""
    mask = model.mask
    for it in items:
        el = it.el.numpy()
        s0, s1 = scale[el, 0], scale[el, 1]
        it.x = torch.from_numpy((it.B * mask[el] - s0) / s1).to(dtype)
        pi = it.pi
        n, K = it.natoms, it.B.shape[1]
        order = np.argsort(pi, kind="stable")
        pi = pi[order]
        count = np.bincount(pi, minlength=n)
        m = max(int(count.max()) if len(pi) else 0, 1)
        slot = np.arange(len(pi)) - np.repeat(np.cumsum(count) - count, count)
        pos = pi * m + slot
        dx = np.zeros((n * m, 3, K))
        dx[pos] = it.dBdr[order] * (mask[el[pi]] / scale[el[pi], 1])[:, None, :]
        it.dxdr = torch.from_numpy(np.ascontiguousarray(
            dx.reshape(n, m * 3, K).transpose(0, 2, 1))).to(dtype)
        pj = np.repeat(np.arange(n), m)
        pj[pos] = it.pj.numpy()[order]
        it.pj = torch.from_numpy(pj)
        if it.rij is not None:
            rij = np.zeros((n * m, 3))
            rij[pos] = it.rij.numpy()[order]
            it.rij = torch.from_numpy(rij).to(dtype)
        it.B = it.dBdr = it.pi = None
        if it.f is not None:
            it.f = it.f.to(dtype)
        if it.s is not None:
            it.s = it.s.to(dtype)


# -- the networks -------------------------------------------------------------------------------

_TORCH_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
              "linear": lambda x: x, "softplus": torch.nn.functional.softplus,
              "silu": torch.nn.functional.silu, "elu": torch.nn.functional.elu}


class Member(torch.nn.Module):
    """One ensemble member: one network (shared) or one per element; Linear layers whose last
    gives E_i. Initialised from a seeded generator: U(±1/√fan_in), PyTorch's Linear default."""

    def __init__(self, nd: int, hidden, activation: str, nnets: int, dtype, seed: int,
                 e0: float) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        sizes = [nd] + list(hidden) + [1]
        self.nets = torch.nn.ModuleList()
        for _ in range(nnets):
            layers = torch.nn.ModuleList()
            for a, b in zip(sizes[:-1], sizes[1:]):
                lin = torch.nn.Linear(a, b, dtype=dtype)
                bound = 1.0 / math.sqrt(a)
                with torch.no_grad():
                    lin.weight.copy_((torch.rand(b, a, generator=g, dtype=torch.float64) * 2 - 1)
                                     * bound)
                    lin.bias.copy_((torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1)
                                   * bound)
                layers.append(lin)
            with torch.no_grad():
                layers[-1].bias += e0  # start at the mean energy per atom
            self.nets.append(layers)
        self.act = _TORCH_ACT[activation]

    def _one(self, layers, x):
        for lin in layers[:-1]:
            x = self.act(lin(x))
        return layers[-1](x).squeeze(-1)

    def forward(self, x, groups):
        """E_i of standardised descriptors ``x``; ``groups``: (element, atom indices) pairs
        when there is one network per element."""
        if len(self.nets) == 1:
            return self._one(self.nets[0], x)
        out = x.new_zeros(len(x))
        for t, idx in groups:
            out = out.index_add(0, idx, self._one(self.nets[t], x[idx]))
        return out

    def to_numpy(self, shared: bool, nel: int, layers, scale) -> Network:
        per = []
        for t in range(nel):
            net = self.nets[0 if shared else t]
            per.append(tuple((lin.weight.detach().double().numpy().copy(),
                              lin.bias.detach().double().numpy().copy()) for lin in net))
        return Network(tuple(layers), tuple(per), np.asarray(scale, float))


def _groups(el: torch.Tensor, nnets: int):
    if nnets == 1:
        return None
    return [(t, torch.nonzero(el == t).squeeze(1)) for t in range(nnets)
            if bool((el == t).any())]


def predictions(members, items: list[Item], nnets: int, *, create_graph: bool):
    """Per member ``(e, forces, stress)``: the energy per atom of each item (n_items,), and per
    item its forces (N, 3) and stress (6,) in bar where it has force or stress targets (else
    None); ``create_graph`` keeps the graph for the loss's parameter gradients."""
    x0 = torch.cat([it.x for it in items])
    el = torch.cat([it.el for it in items])
    cfg = torch.cat([torch.full((it.natoms,), k, dtype=torch.int64)
                     for k, it in enumerate(items)])
    groups = _groups(el, nnets)
    need = [it.f is not None or it.s is not None for it in items]
    xs = [x0.detach().clone().requires_grad_(True) for _ in members]
    with torch.enable_grad():
        E = [m(x, groups) for m, x in zip(members, xs)]
        grads = (torch.autograd.grad([e.sum() for e in E], xs, create_graph=create_graph)
                 if any(need) else [None] * len(members))
    natoms = torch.tensor([it.natoms for it in items], dtype=x0.dtype)
    out = []
    offs = np.cumsum([0] + [it.natoms for it in items])
    for e_atoms, g in zip(E, grads):
        e_cfg = x0.new_zeros(len(items)).index_add(0, cfg, e_atoms) / natoms
        forces, stress = [], []
        for k, it in enumerate(items):
            if not need[k]:
                forces.append(None)
                stress.append(None)
                continue
            gk = g[offs[k]:offs[k + 1]]
            c = torch.bmm(gk.unsqueeze(1), it.dxdr).view(it.natoms, -1, 3)  # (N, M, 3)
            f = c.sum(1).index_add(0, it.pj, c.reshape(-1, 3), alpha=-1.0)
            forces.append(f)
            if it.s is not None:
                w = -(it.rij.T @ c.reshape(-1, 3)).reshape(9)[_VOIGT_FLAT]  # −Σ r ⊗ c
                stress.append(w * (units.NKTV2P / it.vol))
            else:
                stress.append(None)
        out.append((e_cfg, forces, stress))
    return out


def batch_loss(members, items: list[Item], nnets: int, counts) -> torch.Tensor:
    """This rank's share of the batch loss (module docstring), summed over members."""
    ne, nf, ns = (max(c, 1) for c in counts)
    loss = torch.zeros((), dtype=items[0].x.dtype)
    ie = [k for k, it in enumerate(items) if it.e is not None]
    te = torch.tensor([items[k].e for k in ie], dtype=loss.dtype)
    we2 = torch.tensor([items[k].we ** 2 for k in ie], dtype=loss.dtype)
    for e_cfg, forces, stress in predictions(members, items, nnets, create_graph=True):
        if ie:
            loss = loss + (we2 * (e_cfg[ie] - te) ** 2).sum() / ne
        for it, f, s in zip(items, forces, stress):
            if f is not None and it.f is not None and it.wf > 0:
                loss = loss + it.wf ** 2 * ((f - it.f) ** 2).sum() / nf
            if s is not None and it.ws > 0:
                loss = loss + it.ws ** 2 * ((s - it.s) ** 2).sum() / ns
    return loss


# -- the loop -----------------------------------------------------------------------------------

def _counts(comm, items: list[Item]) -> dict[int, tuple[int, int, int]]:
    return gather_dict(comm, {it.index: it.counts for it in items})


def _costs(comm, setup, pl, items: list[Item]) -> np.ndarray:
    """Every entry's estimated cost: the plan's, or (one rank; a partition made without costs)
    the same estimate (:func:`~mpisnap.pipeline.partitioning.config_cost`) from the loaded
    configurations, exchanged."""
    if pl.costs is not None:
        return np.asarray(pl.costs, float)
    return gather_costs(comm, len(pl.entries),
                        {it.index: config_cost(setup, it.natoms, it.vol) for it in items})


def _state_path(name: str, settings, output_dir: str | None = None) -> str:
    """A state file to read: as given if absolute, else the first that exists of: in the fit's
    output folder (where states are written), in the current folder, else from the input
    file's folder."""
    if os.path.isabs(name):
        return name
    if output_dir and os.path.exists(os.path.join(output_dir, name)):
        return os.path.join(output_dir, name)
    if os.path.exists(name):
        return os.path.abspath(name)
    return settings.resolve(name)


def _architecture(model) -> dict:
    return {"elements": list(model.elements), "ndescriptors": model.ndescriptors,
            "hidden": list(model.hidden), "activation": model.activation,
            "shared": bool(model.shared), "ensemble": model.ensemble, "dtype": model.dtype}


def _load_state(model, path: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FitError(f"[PYTORCH] save_state_input: {path} not found") from None
    except Exception as exc:  # torch raises many kinds for a file that is no state
        raise FitError(f"[PYTORCH] save_state_input: {path} is not an mpisnap nn state "
                       f"({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise FitError(f"[PYTORCH] save_state_input: {path} is not an mpisnap nn state (a "
                       "FitSNAP .pt file cannot be resumed)")
    want, have = _architecture(model), state.get("architecture")
    if have != want:
        diff = [k for k in want if have is None or have.get(k) != want[k]]
        raise FitError(f"[PYTORCH] save_state_input: {path} was trained with a different "
                       f"{', '.join(diff)} ({', '.join(f'{k}={have.get(k)!r}' for k in diff)})")
    kind = state.get("scheduler_kind", model.settings.pytorch.scheduler)
    if kind != model.settings.pytorch.scheduler:  # its saved state belongs to that scheduler
        raise FitError(f"[PYTORCH] scheduler: {path} was trained with scheduler = {kind}; "
                       f"resume it with the same scheduler")
    return state


def _save_state(path: str, state: dict) -> None:
    from mpisnap.io import atomic_write

    with atomic_write(path, "wb") as fh:
        torch.save(state, fh)


def _checkpoint(output_dir: str, name: str, state: dict) -> str:
    """A periodic checkpoint: the state file ``name`` (``[PYTORCH] save_state_output``) in the
    fit's output folder, swapped in whole (:func:`mpisnap.io.output_transaction`); the final
    state replaces it with the fit's other outputs. Returns its path."""
    from mpisnap.io import output_transaction

    from .writers import output_path

    with output_transaction(output_dir) as tx:
        _save_state(output_path(tx.path, name), state)
    return output_path(output_dir, name)


def _bar(total: int, initial: int, show: bool):
    """The per-epoch progress bar (rank 0 when the fit shows progress), or None."""
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="nn training", unit="epoch", file=sys.stderr,
                leave=False)


def train(model, comm, setup, pl, timer) -> FitResult:
    """Train ``model`` (an :class:`~.model.NNModel`) on this rank's configurations of the
    partition ``pl``, data-parallel over ``comm``; returns the fit's
    :class:`~mpisnap.results.FitResult` (metrics reduced over ranks, rank 0 holding the per-row
    table). PyTorch's thread pool is the model's thread count for the run."""
    threads = model.threads or 1
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _train(model, comm, setup, pl, timer)
    finally:
        torch.set_num_threads(before)


def _train(model, comm, setup, pl, timer) -> FitResult:
    settings = setup.settings
    pt = settings.pytorch
    dtype = torch.float32 if model.dtype == "float32" else torch.float64
    nel = len(model.elements)
    nnets = 1 if model.shared else nel
    problem = model.export_problem()
    if problem:
        log.warning("nn: the network trains, but will not be exported to LAMMPS: %s", problem)

    test, val = split(settings, pl.entries)
    resume = None
    if pt.save_state_input:
        resume = agree(comm, _load_state, model, _state_path(pt.save_state_input, settings,
                                                            setup.output_dir))
    items = agree(comm, load_items, model, setup, pl, timer)
    for it in items:
        it.test = bool(test[it.index])
        it.val = it.index in val
    counts = _counts(comm, items)
    fit_idx = np.array(sorted(i for i in counts if not test[i] and i not in val), dtype=np.int64)
    if len(fit_idx) == 0:
        raise FitError("no training configurations for the network (all are test or "
                       "validation configurations)")
    batch_units = make_units(settings, fit_idx, _costs(comm, setup, pl, items))
    with timer("standardise"):
        scale = (resume["scale"].numpy() if resume is not None
                 else standardisation(comm, model, items))
        standardise(model, items, scale, dtype)
    mine = {it.index: it for it in items}
    data_bytes = sum(t.numel() * t.element_size() for it in items
                     for t in (it.x, it.el, it.pj, it.dxdr, it.rij, it.f, it.s) if t is not None)

    # the mean target energy per atom starts the output biases
    fit_e = [it.e for it in items if not it.test and not it.val and it.e is not None]
    esum = _rank_sum(comm, np.array([sum(fit_e), len(fit_e)], float))
    e0 = float(esum[0] / esum[1]) if esum[1] > 0 else 0.0
    members = [Member(model.ndescriptors, model.hidden, model.activation, nnets, dtype,
                      seed=int(pt.seed) * 1000 + k, e0=e0) for k in range(model.ensemble)]
    params = [p for m in members for p in m.parameters()]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    optimizer = opt_cls[pt.optimizer](params, lr=pt.learning_rate, weight_decay=pt.weight_decay)

    exchange = _GradientSum(comm, params)

    def gradient(batch) -> float:
        """The batch's loss (sum over ranks) with its gradient in the parameters' ``grad``:
        each rank its own configurations, 16 at a time, then summed over ranks in rank order."""
        bc = tuple(sum(counts[int(i)][k] for i in batch) for k in range(3))
        local = [mine[int(i)] for i in batch if int(i) in mine]
        for p in params:
            p.grad.zero_()
        lval = 0.0
        for k in range(0, len(local), 16):
            loss = batch_loss(members, local[k:k + 16], nnets, bc)
            if loss.requires_grad:
                loss.backward()
            lval += float(loss.detach())
        return exchange(lval)
    scheduler = None
    if pt.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=pt.scheduler_factor, patience=pt.scheduler_patience)
    elif pt.scheduler == "cosine":  # to 0 at num_epochs (stepped once per epoch)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=pt.num_epochs)
    history: list[dict] = []
    start, best, best_state, bad = 0, math.inf, None, 0
    if resume is not None:
        for m, sd in zip(members, resume["members"]):
            m.load_state_dict(sd)
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None and resume.get("scheduler") is not None:
            scheduler.load_state_dict(resume["scheduler"])
            if pt.scheduler == "cosine" and scheduler.T_max != pt.num_epochs:
                # a longer (shorter) run: anneal to 0 at this run's num_epochs from here on
                scheduler.T_max = pt.num_epochs
                # (set by hand: the scheduler's own record of the last rate goes stale until
                # its next step; nothing here reads it)
                for g, base in zip(optimizer.param_groups, scheduler.base_lrs):
                    g["lr"] = base * (1 + math.cos(math.pi * scheduler.last_epoch
                                                   / pt.num_epochs)) / 2
        start = int(resume["epoch"])
        history = [dict(h) for h in resume["history"]]
        best, bad = float(resume["best"]), int(resume["bad"])
        best_state = resume.get("best_members")

    def state(epoch: int) -> dict:
        return {"format": STATE_FORMAT, "version": STATE_VERSION,
                "architecture": _architecture(model), "epoch": epoch,
                "members": [m.state_dict() for m in members],
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scheduler_kind": pt.scheduler,
                "scale": torch.from_numpy(np.asarray(scale, float)), "history": history,
                "best": best, "bad": bad, "best_members": best_state}

    val_items = [it for it in items if it.val]
    val_counts = tuple(int(x) for x in _rank_sum(comm, np.array(
        [sum(c) for c in zip(*[it.counts for it in val_items])] if val_items else [0, 0, 0],
        float)))
    # periodic checkpoints go to the fit's output folder (none when it writes nothing)
    out_dir = setup.output_dir if pt.save_freq < pt.num_epochs else None
    bar = _bar(pt.num_epochs, min(start, pt.num_epochs), setup.progress and comm.rank == 0)
    nbatch = math.ceil(len(fit_idx) / pt.batch_size)
    epoch = start
    stopped = False
    with timer("train"):
        for epoch in range(start, pt.num_epochs):
            t0 = time.perf_counter()
            order = epoch_order(batch_units, pt.seed, epoch, bool(pt.shuffle_flag))
            total = 0.0
            for b in range(nbatch):
                total += gradient(order[b * pt.batch_size:(b + 1) * pt.batch_size])
                optimizer.step()
            train_loss = total / nbatch
            if not math.isfinite(train_loss):  # the same global number on every rank
                raise FitError(f"[PYTORCH] learning_rate: the training diverged (loss "
                               f"{train_loss} in epoch {epoch + 1}); lower learning_rate "
                               f"({pt.learning_rate:g}) or check the weights")
            val_loss = math.nan
            if val:  # (a global set: every rank takes part in the sum)
                part = 0.0
                if val_items:
                    part = _eval_loss(members, val_items, nnets, val_counts)
                val_loss = float(_rank_sum(comm, np.array([part]))[0])
            lr = optimizer.param_groups[0]["lr"]
            if pt.scheduler == "plateau":
                scheduler.step(val_loss if not math.isnan(val_loss) else train_loss)
            elif scheduler is not None:
                scheduler.step()
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                            "lr": lr, "seconds": time.perf_counter() - t0})
            if not math.isnan(val_loss):
                if val_loss < best:
                    best, bad = val_loss, 0
                    best_state = [{k: v.clone() for k, v in m.state_dict().items()}
                                  for m in members]
                else:
                    bad += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.4g}", refresh=False)
            if epoch == start or (epoch + 1) % max(1, pt.num_epochs // 10) == 0:
                log.info("nn: epoch %d/%d loss %.6g%s", epoch + 1, pt.num_epochs, train_loss,
                         "" if math.isnan(val_loss) else f" validation {val_loss:.6g}")
            if out_dir and (epoch + 1) % pt.save_freq == 0 and epoch + 1 < pt.num_epochs:
                # rank 0 writes; an error there (disk full) ends every rank
                agree(comm, lambda: _checkpoint(out_dir, pt.save_state_output, state(epoch + 1))
                      if comm.rank == 0 else None)
            if pt.early_stopping and bad >= pt.early_stopping:
                stopped = True
                log.info("nn: early stop after epoch %d (validation loss %.6g at best)",
                         epoch + 1, best)
                break
    if bar is not None:
        bar.close()
    done = (epoch + 1) if pt.num_epochs > start else start
    if stopped and best_state is not None:
        for m, sd in zip(members, best_state):
            m.load_state_dict(sd)
    model.state = state(done)
    model.history = history
    model.members = [m.to_numpy(model.shared, nel, model.layers, scale) for m in members]
    model.network = ensemble_mean(model.members)
    model.reference = setup.reference
    model.eshift = dict(settings.eshift)

    with timer("evaluate"):
        shard = _rows(members, items, nnets, pl)
        metrics = compute_metrics(comm, shard)
        table = _gather(comm, shard)
    info = {"epochs": int(done), "loss": history[-1]["train_loss"] if history else math.nan,
            "dtype": model.dtype, "ensemble": model.ensemble,
            "parameters": int(sum(p.numel() for p in members[0].parameters())),
            "early_stop": bool(stopped),
            "gradient_sum_seconds": exchange.seconds,
            "data_bytes_per_rank": int(max(comm.allgather(data_bytes)) if comm.size > 1
                                       else data_bytes)}
    if val:
        info["best_validation_loss"] = best
    problem = model.export_problem()
    if problem:
        info["export"] = "refused: " + problem
    model.info = info
    return FitResult(settings, model, model.coefficients, info, metrics, table, timer.times,
                     reference=setup.reference)


def _eval_loss(members, items, nnets, counts) -> float:
    """The loss of ``items`` (no parameter gradients; chunks of configurations)."""
    total = 0.0
    for k in range(0, len(items), 16):
        total += float(batch_loss(members, items[k:k + 16], nnets, counts).detach())
    return total


def _rows(members, items: list[Item], nnets: int, pl) -> DesignShard:
    """This rank's per-row table (truth, weight, labels, prediction: the ensemble's mean) in
    the linear forms' row layout (energy per atom, 3N forces atom-major, 6 stress)."""
    parts = []
    for k in range(0, len(items), 16):
        chunk = items[k:k + 16]
        runs = predictions(members, chunk, nnets, create_graph=False)
        for j, it in enumerate(chunk):
            kind, atom, comp, b, w, p = [], [], [], [], [], []
            if it.e is not None:
                kind.append([0]), atom.append([-1]), comp.append([0]), b.append([it.e])
                w.append([it.we]), p.append([np.mean([float(r[0][j].detach()) for r in runs])])
            if it.f is not None:
                n3 = 3 * it.natoms
                kind.append(np.ones(n3)), atom.append(np.repeat(np.arange(it.natoms), 3))
                comp.append(np.tile(np.arange(3), it.natoms))
                b.append(it.f.double().numpy().ravel()), w.append(np.full(n3, it.wf))
                p.append(np.mean([r[1][j].detach().double().numpy() for r in runs],
                                 axis=0).ravel())
            if it.s is not None:
                kind.append(np.full(6, 2)), atom.append(np.full(6, -1)), comp.append(np.arange(6))
                b.append(it.s.double().numpy()), w.append(np.full(6, it.ws))
                p.append(np.mean([r[2][j].detach().double().numpy() for r in runs], axis=0))
            if not kind:
                continue
            lab = np.empty(sum(len(x) for x in kind), LABEL_DTYPE)
            lab["config"], lab["group"], lab["test"] = it.index, it.group, it.test
            lab["kind"] = np.concatenate(kind)
            lab["atom"] = np.concatenate(atom)
            lab["component"] = np.concatenate(comp)
            parts.append((np.concatenate(b).astype(float), np.concatenate(w).astype(float), lab,
                          np.concatenate(p).astype(float)))
    if not parts:
        z = np.zeros(0)
        return DesignShard(None, z, z, np.zeros(0, LABEL_DTYPE), pl.config_names,
                           pl.group_names, z)
    b, w, lab, pred = (np.concatenate([x[k] for x in parts]) for k in range(4))
    return DesignShard(None, b, w, lab, pl.config_names, pl.group_names, pred)


def _gather(comm, shard: DesignShard) -> DesignShard | None:
    """Rank 0 gets every rank's per-row table (a few numbers per row), for plots and dumps."""
    if comm.size == 1:
        return shard
    parts = comm.gather((shard.b, shard.w, shard.labels, shard.predictions), root=0)
    if comm.rank != 0:
        return None
    b, w, lab, pred = (np.concatenate([p[k] for p in parts]) for k in range(4))
    return DesignShard(None, b, w, lab, shard.config_names, shard.group_names, pred)
