#!/usr/bin/env python
"""Benchmarks of the ``nn`` model form (neural-network SNAP). Each measurement runs in its own
process (one thread per process, ``OMP_NUM_THREADS=1``); the baseline of every ratio runs in the
same invocation, alternating with the candidate, and medians are reported.

    python scripts/bench_nn.py epoch  [--fitsnap DIR] [--epochs 3] [--repeats 3]
        time per epoch against FitSNAP's PyTorch solver on the same data and architecture
        (FitSNAP's Ta_PyTorch_NN settings: twojmax 6, layers 64-64, batch 4; FitSNAP's float32
        and mpisnap's float64 and float32). ``DIR``: FitSNAP installed with ``pip install
        --target DIR --no-deps fitsnap3 pandas psutil tabulate scikit-learn pyyaml joblib
        python-dateutil pytz tzdata six`` (run through four API shims for today's torch and
        LAMMPS, see ``_FITSNAP_SHIMS``)
    python scripts/bench_nn.py ranks  [--batch 32 64] [--epochs 30] [--repeats 9]
        1 against 2 MPI ranks at batches of >= 32 configurations, back to back in one 2-rank MPI
        job (rank 0 alone, then both; alternating); run it when ``uptime`` shows a load below
        ~1 on a 2-core machine
    python scripts/bench_nn.py memory
        stored training data per configuration, atom and neighbour; projection to 330,000
        configurations
    python scripts/bench_nn.py accuracy [--epochs 600] [--fweight 100] [--seeds 0]
                                        [--ensemble 1] [--threads 1]
                                        [--set SECTION.key=value ...]
                                        [--inp-configs 300] [--inp-epochs 100]
        test RMSE of NN against linear SNAP (same descriptors and split) on the bundled example
        and a subset of the InP data (``--inp-configs 0``: the example only); ``--ensemble K``:
        K networks per seed (``[PYTORCH] ensemble``), their mean the prediction
    python scripts/bench_nn.py lammps [--atoms 2048] [--steps 50]
        LAMMPS time per atom-step of the exported network (pair_style mliap model nn) against
        linear SNAP (pair_style snap) with the same descriptors

Data: the bundled Cu EMT example (124 configurations, 20-107 atoms; all used for training in the
``epoch``/``ranks`` runs so that FitSNAP has no validation pass) and, for accuracy, the InP data.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT" / "Cu_EMT.in"
NN_EXAMPLE = ROOT / "examples" / "nn_Cu_EMT" / "Cu_EMT_nn.in"
INP = ROOT.parent / "shared" / "data" / "InP_JPCA2020" / "InP-example.in"
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
GROUPS = ("Strain", "Shear", "Displaced", "Vacancy", "Surface", "MD")

# FitSNAP 3.1.0.4 (2023) with torch >= 2.2 and LAMMPS 2025: API shims, nothing else changed.
_FITSNAP_SHIMS = textwrap.dedent('''
    import runpy, sys
    import numpy as np, torch, lammps, lammps.numpy_wrapper as nw
    _R = torch.optim.lr_scheduler.ReduceLROnPlateau
    class _Plateau(_R):                      # torch removed the `verbose` argument
        def __init__(self, *a, verbose=None, **k):
            super().__init__(*a, **k)
    torch.optim.lr_scheduler.ReduceLROnPlateau = _Plateau
    _create = lammps.lammps.create_atoms
    def _create_atoms(self, n, id=None, type=None, x=None, **kw):   # renamed arguments
        return _create(self, n, id, type, x, **kw)
    lammps.lammps.create_atoms = _create_atoms
    _command = lammps.lammps.command
    def _flags(self, cmd):                   # LAMMPS wants 0/1 where FitSNAP writes True/False
        return _command(self, " ".join({"True": "1", "False": "0"}.get(w, w) for w in cmd.split()))
    lammps.lammps.command = _flags
    def _iarray(self, name, nelem, dim=1):   # removed numpy helpers
        return np.asarray(self.extract_atom(name))[:nelem].reshape(nelem, dim)
    def _darray(self, name, nelem, dim=1):
        a = np.asarray(self.extract_atom(name))[:nelem]
        return a.reshape(nelem, dim) if dim > 1 else a.reshape(nelem)
    nw.numpy_wrapper.extract_atom_iarray = _iarray
    nw.numpy_wrapper.extract_atom_darray = _darray
    sys.argv = ["fitsnap3", sys.argv[1]]
    try:
        runpy.run_module("fitsnap3", run_name="__main__")
    except RuntimeError as exc:              # its evaluation after training fails on torch 2.x
        print("FitSNAP after training:", exc)
''')


def _cu_input(folder: Path, *, epochs: int, batch: int, layers: str = "64 64",
              lr: float = 1.5e-4, dtype: int | None = None, extra: dict | None = None,
              fitsnap: bool = False) -> Path:
    """The Cu example as a FitSNAP neural-network input (every configuration trains); FitSNAP
    needs a ``[REFERENCE]`` section (``zero``, no energy), mpisnap none."""
    py = {"layer_sizes": f"num_desc {layers} 1", "learning_rate": lr, "num_epochs": epochs,
          "batch_size": batch, "save_state_output": "state.pt", "energy_weight": 1e-2,
          "force_weight": 1.0, "save_freq": 100000}
    if dtype:
        py["dtype_setting"] = dtype
    py.update(extra or {})
    text = textwrap.dedent(f"""\
        [BISPECTRUM]
        numTypes = 1
        type = Cu
        twojmax = 6
        rcutfac = 4.8
        rfac0 = 0.99363
        rmin0 = 0.0
        wj = 1.0
        radelem = 0.5
        wselfallflag = 0
        chemflag = 0
        bzeroflag = 0
        quadraticflag = 0
        bikflag = 1
        dgradflag = 1

        [CALCULATOR]
        calculator = LAMMPSSNAP
        energy = 1
        per_atom_energy = 1
        force = 1
        stress = 0
        nonlinear = 1

        [ESHIFT]
        Cu = 0.0

        [SOLVER]
        solver = PYTORCH

        [SCRAPER]
        scraper = JSON

        [PATH]
        dataPath = {EXAMPLE.parent / "JSON"}

        [OUTFILE]
        metrics = bench_metrics.md
        potential = bench_pot

        {"[REFERENCE]" if fitsnap else ""}
        {"units = metal" if fitsnap else ""}
        {"atom_style = atomic" if fitsnap else ""}
        {"pair_style = zero 10.0" if fitsnap else ""}
        {"pair_coeff = * *" if fitsnap else ""}

        [MEMORY]
        override = 0

        [GROUPS]
        group_sections = name training_size testing_size eweight fweight vweight
        group_types = str float float float float float
        smartweights = 0
        random_sampling = 0
        """) + "".join(f"{g} = 1.0 0.0 1.0 1.0 1.0e-8\n" for g in GROUPS)
    text += "\n[PYTORCH]\n" + "".join(f"{k} = {v}\n" for k, v in py.items())
    path = folder / "bench.in"
    path.write_text(text)
    return path


def _mpisnap_run(inp: Path, nranks: int = 1, overrides=()) -> dict:
    """One fit in fresh processes: per-epoch seconds (rank 0), stored bytes, peak RSS (MiB)."""
    code = textwrap.dedent(f"""
        import json, sys, time
        import mpisnap
        from mpisnap.comm import world
        comm = world()
        t0 = time.perf_counter()
        r = mpisnap.fit({str(inp)!r}, overrides={list(overrides)!r}, write=False, threads=1,
                        comm=comm)
        if comm.rank == 0:
            print("RESULT", json.dumps({{"seconds": [h["seconds"] for h in r.model.history],
                  "loss": [h["train_loss"] for h in r.model.history],
                  "bytes": r.solve_info["data_bytes_per_rank"],
                  "wait": r.solve_info.get("gradient_sum_seconds", 0.0),
                  "timings": r.timings, "wall": time.perf_counter() - t0}}))
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-c", code]
    if nranks > 1:
        cmd = [MPIEXEC, "-n", str(nranks)] + cmd
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=7200,
                       cwd=inp.parent)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    rss = [int(x) for x in re.findall(r"MAXRSS (\d+)", p.stderr)]
    out["rss"] = max(rss) / 1024 if rss else float("nan")
    if not rss:
        print("no peak RSS reported; stderr ends:", p.stderr[-500:], file=sys.stderr)
    return out


def _fitsnap_run(inp: Path, fitsnap: str) -> dict:
    """FitSNAP's per-epoch seconds (its own 'Time (s)' column) and peak RSS (MiB)."""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=fitsnap + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-c",
                        _FITSNAP_SHIMS, inp.name], env=env, capture_output=True, text=True,
                       timeout=7200, cwd=inp.parent)
    wall = time.perf_counter() - t0
    rss = max(int(x) for x in re.findall(r"MAXRSS (\d+)", p.stderr)) / 1024
    seconds, loss, descriptors = [], [], None
    for ln in p.stdout.splitlines():
        w = ln.split()
        if len(w) == 4 and w[0].isdigit():
            seconds.append(float(w[3]))
            loss.append(float(w[1]))
        if "'process_configs' took" in ln:
            descriptors = float(w[w.index("took") + 1]) / 1000
    if not seconds:
        raise SystemExit("FitSNAP did not train:\n" + p.stdout[-2000:] + p.stderr[-2000:])
    return {"seconds": seconds, "loss": loss, "wall": wall, "descriptors": descriptors,
            "rss": rss}


def _median_epoch(run: dict) -> float:
    s = run["seconds"][1:] or run["seconds"]  # the first epoch warms up
    return statistics.median(s)


def bench_epoch(args) -> None:
    rows = {"FitSNAP (float32)": [], "mpisnap float64": [], "mpisnap float32": []}
    extra = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in range(args.repeats):
            for name, dtype in (("mpisnap float64", 2), ("mpisnap float32", 1)):
                d = tmp / f"{k}{dtype}"
                d.mkdir()
                r = _mpisnap_run(_cu_input(d, epochs=args.epochs, batch=4, dtype=dtype))
                rows[name].append(_median_epoch(r))
                extra.setdefault(name, r)
            if args.fitsnap:
                d = tmp / f"{k}fs"
                d.mkdir()
                r = _fitsnap_run(_cu_input(d, epochs=args.epochs, batch=4, fitsnap=True),
                                 args.fitsnap)
                rows["FitSNAP (float32)"].append(_median_epoch(r))
                extra.setdefault("FitSNAP (float32)", r)
    base = statistics.median(rows["FitSNAP (float32)"]) if rows["FitSNAP (float32)"] else None
    print(f"Cu example, 124 configurations, twojmax 6, 64-64 tanh, batch 4, 1 thread; medians "
          f"of {args.repeats} runs of {args.epochs} epochs (load {os.getloadavg()[0]:.1f})")
    print("| code | s/epoch | vs FitSNAP | descriptors (s) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, vals in rows.items():
        if not vals:
            continue
        t = statistics.median(vals)
        r = extra[name]
        desc = r.get("descriptors") or r.get("timings", {}).get("descriptors", float("nan"))
        ratio = f"{base / t:.1f}x" if base else "-"
        print(f"| {name} | {t:.3f} | {ratio} | {desc:.1f} | {r['rss']:.0f} |")


_RANKS_CODE = textwrap.dedent("""
    import json, statistics, sys, time
    from mpi4py import MPI
    import mpisnap
    comm = MPI.COMM_WORLD
    inputs, repeats = json.loads(sys.argv[1]), int(sys.argv[2])

    def median_epoch(r):
        s = [h["seconds"] for h in r.model.history][1:]
        return statistics.median(s)

    def one_rank(inp):
        # rank 0 alone; the other rank sleeps (it does not spin in MPI) until rank 0 is done
        if comm.rank == 0:
            t = median_epoch(mpisnap.fit(inp, write=False, threads=1, comm=MPI.COMM_SELF))
            for r in range(1, comm.size):
                comm.send(None, dest=r)
            return t
        req = comm.irecv(source=0)
        while not req.Test():
            time.sleep(0.005)

    def two_ranks(inp):
        r = mpisnap.fit(inp, write=False, threads=1, comm=comm)
        wait = comm.gather(r.solve_info["gradient_sum_seconds"]
                           / sum(h["seconds"] for h in r.model.history))
        return median_epoch(r), wait, r.model.history[-1]["train_loss"]

    out = {}
    for inp in inputs:
        rows = []
        for k in range(repeats):
            if k % 2 == 0:
                t1 = one_rank(inp)
                t2, wait, loss2 = two_ranks(inp)
            else:
                t2, wait, loss2 = two_ranks(inp)
                t1 = one_rank(inp)
            rows.append((t1, t2, wait))
        out[inp] = rows
    if comm.rank == 0:
        print("RESULT", json.dumps(out))
""")


def _ceilings(inputs, epochs: int = 30) -> list[float]:
    """Per input: the ideal 2-rank speed-up of an epoch, from the actual neighbour-image counts
    of the configurations (the work of a configuration), the partition and the seeded batches:
    the epoch's total over the sum of each batch's larger share (the ranks meet at every step)."""
    import numpy as np

    from mpisnap.comm import SerialComm
    from mpisnap.pipeline import Timer, plan, prepare
    from mpisnap.plugins.nn.batches import epoch_order, make_units, owners
    from mpisnap.plugins.nn.training import load_items

    out = []
    for inp in inputs:
        setup = prepare(inp, [])
        pl = plan(SerialComm(), setup, setup.model.owners)
        items = load_items(setup.model, setup, pl, Timer())
        work = np.array([len(it.pj) for it in items], float)
        own = owners(setup.settings, pl.costs, pl.entries, 2)
        units = make_units(setup.settings, np.arange(len(items)), pl.costs)
        batch = setup.settings.pytorch.batch_size
        ratios = []
        for epoch in range(epochs):
            order = epoch_order(units, setup.settings.pytorch.seed, epoch, True)
            busiest = sum(np.bincount(own[order[b:b + batch]], weights=work[order[b:b + batch]],
                                      minlength=2).max() for b in range(0, len(order), batch))
            ratios.append(work.sum() / busiest)
        out.append(float(np.median(ratios)))
    return out


def bench_ranks(args) -> None:
    """1 against 2 MPI ranks in one 2-rank MPI job: each repeat trains once on rank 0 alone
    (``COMM_SELF``; the other rank sleeps) and once on both ranks, back to back (alternating
    which goes first), so that the machine's speed, which drifts by tens of per cent between
    processes here, is the same for both; the speed-up is the median of the per-repeat ratios
    of the median epoch times."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = []
        for batch in args.batch:
            d = tmp / f"b{batch}"
            d.mkdir()
            inputs.append(str(_cu_input(d, epochs=args.epochs, batch=batch, lr=1e-3)))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        load0 = os.getloadavg()[0]
        p = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", _RANKS_CODE,
                            json.dumps(inputs), str(args.repeats)], env=env,
                           capture_output=True, text=True, timeout=7200, cwd=tmp)
        if p.returncode:
            raise SystemExit(p.stderr[-3000:])
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
        got = json.loads(line[len("RESULT "):])
        load1 = os.getloadavg()[0]
        ceilings = _ceilings(inputs)
    print(f"Cu example (124 configurations), 64-64 tanh, float64, 1 thread per rank; "
          f"{args.epochs} epochs per training, median epoch after the first; {args.repeats} "
          f"repeats of (1 rank, 2 ranks) back to back in one MPI job (load {load0:.1f} before, "
          f"{load1:.1f} after)")
    print("| batch | 1 rank s/epoch | 2 ranks s/epoch | speed-up: median of the repeats "
          "(range) | ratio of the medians | ideal (balance) | wait in the gradient sum "
          "(rank 0, 1) |\n|---:|---:|---:|---:|---:|---:|---:|")
    for batch, inp, ideal in zip(args.batch, inputs, ceilings):
        rows = got[inp]
        t1 = statistics.median(r[0] for r in rows)
        t2 = statistics.median(r[1] for r in rows)
        ratios = [r[0] / r[1] for r in rows]
        waits = [statistics.median(r[2][k] for r in rows) for k in range(2)]
        print(f"| {batch} | {t1:.4f} | {t2:.4f} | {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f}) | {t1 / t2:.2f}x | {ideal:.2f}x | "
              f"{100 * waits[0]:.0f}%, {100 * waits[1]:.0f}% |")


def bench_memory(args) -> None:
    from mpisnap import Descriptor
    from mpisnap.settings import load_settings
    from mpisnap.plugin_manager import build_registry, get_plugin_manager

    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (2, 1):
            inp = _cu_input(Path(tmp), epochs=1, batch=4, dtype=dtype)
            r = _mpisnap_run(inp)
            s = load_settings(inp)
            reader = build_registry(get_plugin_manager(False)).get("readers", "JSON")
            d = Descriptor(type=["Cu"], twojmax=6, rcutfac=4.8, radelem=0.5)
            natoms = npairs = nconf = 0
            for g in s.groups:
                for ref in reader.list_configs(s.data_path, g.name):
                    c = reader.load(ref)
                    res = d.compute(positions=c.positions, cell=c.cell, pbc=c.pbc,
                                    symbols=c.symbols, forces=False, virial=False, pairs=True)
                    natoms += c.natoms
                    npairs += len(res.pairs.i)
                    nconf += 1
            b = r["bytes"]
            print(f"{'float64' if dtype == 2 else 'float32'}: {b / 2**20:.1f} MiB for {nconf} "
                  f"configurations ({natoms} atoms, {npairs} neighbour images, K = 30): "
                  f"{b / nconf / 1024:.0f} KiB per configuration, {b / natoms / 1024:.1f} KiB "
                  f"per atom, {b / npairs:.0f} B per neighbour image; peak RSS {r['rss']:.0f} MiB")
            per_atom = b / natoms
            for atoms, ranks in ((50, 64), (50, 256), (50, 1024)):
                total = 330_000 * atoms * per_atom
                print(f"  330,000 configurations of {atoms} atoms: {total / 2**30:.0f} GiB in all, "
                      f"{total / ranks / 2**30:.2f} GiB per rank on {ranks} ranks")


def _test_rmse(r) -> dict:
    return {k: r.metric("*ALL", "Unweighted", "Testing", k).rmse
            for k in ("Energy", "Force", "Stress")}


def bench_accuracy(args) -> None:
    """Test RMSE of NN against linear SNAP on the same descriptors and split: the example (the
    linear fit with its own weights, and with forces weighted 5x, its best test force RMSE
    without worse energies; the network with ``fweight`` for every group) and a subset of the
    InP data (the linear fit with the input's weights; the network with global weights)."""
    import mpisnap

    rows = []
    w = "0.8 0.2 100.0 {} {}"
    with tempfile.TemporaryDirectory() as tmp:
        lin = mpisnap.fit(EXAMPLE, write=False, threads=args.threads)
        rows.append(("example", "linear SNAP, the example's weights (fweight 1)", _test_rmse(lin)))
        lin5 = mpisnap.fit(EXAMPLE, write=False, threads=args.threads,
                           overrides=[f"GROUPS.{g}={w.format(5.0, 1e-4)}" for g in GROUPS])
        rows.append(("example", "linear SNAP, fweight 5", _test_rmse(lin5)))
        ens = f", mean of {args.ensemble}" if args.ensemble > 1 else ""
        for seed in args.seeds:
            t0 = time.perf_counter()
            nn = mpisnap.fit(NN_EXAMPLE, write=False, threads=args.threads, overrides=[
                f"PYTORCH.num_epochs={args.epochs}", f"PYTORCH.seed={seed}",
                f"PYTORCH.ensemble={args.ensemble}",
                f"PYTORCH.save_state_output={tmp}/s.pt", "PYTORCH.save_freq=1000000",
                *[f"GROUPS.{g}={w.format(args.fweight, 1e-5)}" for g in GROUPS], *args.set])
            extra = "".join(f", {o.split('.', 1)[-1]}" for o in args.set)
            rows.append(("example", f"NN 64-64 tanh{ens}, fweight {args.fweight:g}{extra}, "
                         f"{nn.solve_info['epochs']} epochs, seed {seed} "
                         f"({time.perf_counter() - t0:.0f} s)", _test_rmse(nn)))
        if INP.exists() and args.inp_configs:
            from mpisnap.settings import load_settings

            s = load_settings(INP)
            frac = min(1.0, args.inp_configs / 1894)
            groups = [f"GROUPS.{g.name}={frac * 0.8:.4f} {frac * 0.2:.4f} {g.eweight} "
                      f"{g.fweight} {g.vweight}" for g in s.groups]
            common = ["BISPECTRUM.chemflag=0", "BISPECTRUM.bnormflag=0", *groups]
            lin = mpisnap.fit(INP, write=False, threads=args.threads, overrides=common)
            rows.append(("InP", "linear SNAP, the input's weights", _test_rmse(lin)))
            nn = mpisnap.fit(INP, write=False, threads=args.threads, overrides=common + [
                "CALCULATOR.nonlinear=1", "SOLVER.solver=PYTORCH",
                "PYTORCH.layer_sizes=num_desc 64 64 1", f"PYTORCH.num_epochs={args.inp_epochs}",
                "PYTORCH.learning_rate=5e-3", "PYTORCH.batch_size=8",
                "PYTORCH.energy_weight=100", "PYTORCH.force_weight=1",
                "PYTORCH.scheduler_patience=10", f"PYTORCH.save_state_output={tmp}/s.pt"])
            rows.append(("InP", f"NN 64-64 tanh, global weights (energy 100, force 1), "
                         f"{nn.solve_info['epochs']} epochs", _test_rmse(nn)))
    inp = (f"InP: {args.inp_configs} configurations, chemflag and bnormflag off for both"
           if INP.exists() and args.inp_configs else "the example only")
    print(f"test RMSE; {inp}; {args.threads} thread(s) per fit (load {os.getloadavg()[0]:.1f})")
    print("| data | model | energy (meV/atom) | force (eV/Å) | stress (bar) | force: linear / "
          "this |\n|---|---|---:|---:|---:|---:|")
    base = {}
    for data, name, m in rows:
        base.setdefault(data, m["Force"])
        print(f"| {data} | {name} | {1000 * m['Energy']:.2f} | {m['Force']:.4f} | "
              f"{m['Stress']:.0f} | {base[data] / m['Force']:.2f}x |")


def bench_lammps(args) -> None:
    import numpy as np
    from ase.build import bulk

    import mpisnap
    from mpisnap.lammps_bridge import commands, new_instance

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mpisnap.fit(NN_EXAMPLE, output_dir=tmp / "nn", threads=1,
                    overrides=["PYTORCH.num_epochs=2"])
        mpisnap.fit(EXAMPLE, output_dir=tmp / "lin")
        n = round((args.atoms / 4) ** (1 / 3))
        at = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(n)
        at.rattle(0.05, seed=1)
        data = tmp / "cu.data"
        from ase.io import write

        write(data, at, format="lammps-data")
        times = {}
        for name, folder, mod in (("linear SNAP (pair_style snap)", tmp / "lin",
                                   "Cu_EMT_pot.mod"),
                                  ("NN (pair_style mliap model nn)", tmp / "nn",
                                   "Cu_EMT_nn_pot.mod")):
            vals = []
            for _ in range(args.repeats):
                lmp = new_instance()
                cwd = os.getcwd()
                try:
                    os.chdir(folder)
                    commands(lmp, ["units metal", "atom_style atomic", f"read_data {data}",
                                   "mass 1 63.546", f"include {mod}",
                                   "velocity all create 300 1", "fix 1 all nve",
                                   "thermo 1000", "run 5"])
                    t0 = time.perf_counter()
                    commands(lmp, [f"run {args.steps}"])
                    vals.append((time.perf_counter() - t0) / args.steps / len(at))
                finally:
                    os.chdir(cwd)
                    lmp.close()
            times[name] = statistics.median(vals)
        print(f"LAMMPS {len(at)} atoms fcc Cu, {args.steps} NVE steps, 1 process, medians of "
              f"{args.repeats} (load {os.getloadavg()[0]:.1f})")
        print("| pair style | µs per atom-step | vs linear |\n|---|---:|---:|")
        base = times["linear SNAP (pair_style snap)"]
        for name, t in times.items():
            print(f"| {name} | {t * 1e6:.1f} | {t / base:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("epoch")
    e.add_argument("--fitsnap", default=None)
    e.add_argument("--epochs", type=int, default=3)
    e.add_argument("--repeats", type=int, default=3)
    r = sub.add_parser("ranks")
    r.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    r.add_argument("--epochs", type=int, default=30)
    r.add_argument("--repeats", type=int, default=9)
    sub.add_parser("memory")
    a = sub.add_parser("accuracy")
    a.add_argument("--epochs", type=int, default=600)
    a.add_argument("--fweight", type=float, default=100.0)
    a.add_argument("--seeds", type=int, nargs="+", default=[0])
    a.add_argument("--ensemble", type=int, default=1, help="networks per seed (their mean)")
    a.add_argument("--threads", type=int, default=1, help="threads of every fit")
    a.add_argument("--set", action="append", default=[], metavar="SECTION.key=value",
                   help="more settings of the example's network (repeatable)")
    a.add_argument("--inp-epochs", type=int, default=100)
    a.add_argument("--inp-configs", type=int, default=300)
    lm = sub.add_parser("lammps")
    lm.add_argument("--atoms", type=int, default=2048)
    lm.add_argument("--steps", type=int, default=50)
    lm.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    {"epoch": bench_epoch, "ranks": bench_ranks, "memory": bench_memory,
     "accuracy": bench_accuracy, "lammps": bench_lammps}[args.what](args)


if __name__ == "__main__":
    main()
