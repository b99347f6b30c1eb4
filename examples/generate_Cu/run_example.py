#!/usr/bin/env python
"""Generate a copper training set by descriptor-entropy maximisation (EMT labels), fit a linear
SNAP to it, and test the potential on the bundled example data (examples/Cu_EMT:
sheared and displaced bulk, a vacancy, a surface), which it never saw — next to a fit to the
same number of MD snapshots (the example's MD group).

    python examples/generate_Cu/run_example.py [OUTPUT_DIR]     # about a minute
"""
import shutil
import sys
from pathlib import Path

import mpisnap

HERE = Path(__file__).resolve().parent
CU_EMT = HERE.parent / "Cu_EMT" / "JSON"
TEST = ("Shear", "Displaced", "Vacancy", "Surface")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "generate_Cu_out").resolve()
    result = mpisnap.generate(HERE / "generate_Cu.in", output_dir=out)
    h0, h1 = result.history[0], result.history[-1]
    print(f"generated {len(result.structures)} structures: entropy (Kozachenko-Leonenko) "
          f"{h0['kl']:.1f} -> {h1['kl']:.1f} nats, shortest distance {h1['min_distance']:.2f} Å")

    data = out / "JSON"  # the generated group beside copies of the example's groups
    for g in (*TEST, "MD"):
        shutil.rmtree(data / g, ignore_errors=True)
        shutil.copytree(CU_EMT / g, data / g)

    train, test = "1.0 0.0 10.0 1.0 0.0", "0.0 1.0 10.0 1.0 0.0"
    print(f"\nforce RMSE (eV/Å) of a linear SNAP (twojmax 8) on groups it was not trained on:")
    print(f"{'trained on':<16}" + "".join(f"{g:>10}" for g in TEST) + f"{'worst':>10}")
    for name, other in (("Generated", "MD"), ("MD", "Generated")):
        overrides = [f"PATH.dataPath={data}", f"GROUPS.{name}={train}", f"GROUPS.{other}={test}"]
        overrides += [f"GROUPS.{g}={test}" for g in TEST]
        fit = mpisnap.fit(HERE / "generate_Cu.in", overrides=overrides, write=False)
        rmse = [fit.metric(g, "Unweighted", "Testing", "Force").rmse for g in TEST]
        label = f"{name} ({len(list((data / name).glob('*.json')))})"
        print(f"{label:<16}" + "".join(f"{r:>10.3f}" for r in rmse) + f"{max(rmse):>10.3f}")


if __name__ == "__main__":
    main()
