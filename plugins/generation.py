"""The ``[GENERATE]`` section of ``mpisnap generate`` (training-set generation by descriptor-entropy
maximisation, :mod:`mpisnap.generation`), brought by this built-in plugin through the
``mpisnap_settings_sections`` hook like any plugin's section. Its verb is ``generate``: the other
commands (``fit`` …) accept the section and ignore it, so one input file serves both.

Keys (names fixed; defaults in parentheses)::

    [GENERATE]
    elements = Ni Al            # ([BISPECTRUM] type) the elements of the generated structures
    composition = 0.75 0.25     # (equal) fractions per element; each atom's element is drawn
    natoms = 8 16               # (8 16) atoms per structure, min max, drawn uniformly
    volume_per_atom = 9 16      # required: Å³ per atom, min max (the density range)
    max_strain = 0.1            # (0.1) bound on each component of the cell distortion
    nconfigs = 100              # (50) structures to generate
    min_distance = 1.8          # required: Å, no two atoms closer in any output structure
    iterations = 20             # (20) outer iterations of the entropy optimisation
    estimator = gaussian        # (gaussian) smooth estimator optimised: gaussian or softmin
    seed = 0                    # (0) random seed
    reference = JSON            # (none) existing training set: fill the gaps in its cloud
    oracle = ase.calculators.emt:EMT    # (none) module:Class of an ASE calculator, or lammps
    oracle_args = {}            # ({}) one-line JSON: the calculator's keyword arguments, or
                                #   for lammps {"pair_style": ..., "pair_coeff": [...]}

``reference`` is a folder of FitSNAP JSON files (searched recursively) or any file ``ase.io``
reads (all frames); relative paths are resolved against the input file's folder.
"""
from __future__ import annotations

from dataclasses import dataclass

from mpisnap.hookspecs import hookimpl
from mpisnap.oracle_settings import read_oracle_keys
from mpisnap.records import SettingsSection
from mpisnap.settings import p_float, p_floats, p_int, p_ints, p_str, p_word, p_words

#: The smooth estimators ``estimator`` may name (:mod:`mpisnap.generation.entropy`).
ESTIMATORS = ("gaussian", "softmin")

KEYS = ("elements", "composition", "natoms", "volume_per_atom", "max_strain", "nconfigs",
        "min_distance", "iterations", "estimator", "seed", "reference", "oracle", "oracle_args")


@dataclass(frozen=True)
class GenerateSettings:
    """``[GENERATE]`` typed (see the module docstring). ``elements`` None: those of
    ``[BISPECTRUM] type``; ``composition`` None: equal fractions; ``oracle_args`` the JSON
    text (a dict once parsed by the oracle loader)."""

    volume_per_atom: tuple[float, float]
    min_distance: float
    elements: tuple[str, ...] | None = None
    composition: tuple[float, ...] | None = None
    natoms: tuple[int, int] = (8, 16)
    max_strain: float = 0.1
    nconfigs: int = 50
    iterations: int = 20
    estimator: str = "gaussian"
    seed: int = 0
    reference: str | None = None
    oracle: str | None = None
    oracle_args: str = "{}"


def _pair(r, key, parse, default, what):
    v = r.get(key, parse, default)
    if v is None:
        return None
    if len(v) == 1:
        v = (v[0], v[0])
    r.require(key, len(v) == 2, f"expected {what}: min max, got {r.raw[key].strip()!r}")
    r.require(key, v[0] <= v[1], f"min {v[0]} > max {v[1]}")
    return tuple(v)


def parse_generate(raw, r) -> GenerateSettings:
    elements = r.get("elements", p_words, None)
    if elements is not None:
        dup = sorted({e for e in elements if elements.count(e) > 1})
        r.require("elements", not dup, f"element listed twice: {' '.join(dup)}")
    composition = r.get("composition", p_floats, None)
    if composition is not None:
        r.require("composition", min(composition) >= 0 and sum(composition) > 0,
                  "fractions must be >= 0 and not all 0")
        if elements is not None:
            r.require("composition", len(composition) == len(elements),
                      f"{len(composition)} fractions for {len(elements)} elements")
    natoms = _pair(r, "natoms", p_ints, (8, 16), "two atom counts")
    r.require("natoms", natoms[0] >= 1, f"must be >= 1, got {natoms[0]}")
    vol = _pair(r, "volume_per_atom", p_floats, None, "two volumes in Å³")
    r.require("volume_per_atom", vol is not None,
              "required: the range of volume per atom in Å³, e.g. 'volume_per_atom = 9 16'")
    r.require("volume_per_atom", vol[0] > 0, f"must be > 0, got {vol[0]}")
    dmin = r.get("min_distance", p_float, None)
    r.require("min_distance", dmin is not None,
              "required: the smallest allowed interatomic distance in Å, e.g. 'min_distance = 1.8'")
    r.require("min_distance", dmin > 0, f"must be > 0, got {dmin}")
    max_strain = r.get("max_strain", p_float, 0.1)
    r.require("max_strain", 0 <= max_strain < 0.5, f"must lie in [0, 0.5), got {max_strain}")
    nconfigs = r.get("nconfigs", p_int, 50)
    r.require("nconfigs", nconfigs >= 1, f"must be >= 1, got {nconfigs}")
    iterations = r.get("iterations", p_int, 20)
    r.require("iterations", iterations >= 0, f"must be >= 0, got {iterations}")
    estimator = r.get("estimator", p_word, "gaussian").lower()
    r.require("estimator", estimator in ESTIMATORS,
              f"expected one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    seed = r.get("seed", p_int, 0)
    r.require("seed", seed >= 0, f"must be >= 0, got {seed}")
    oracle, args, _ = read_oracle_keys(raw, r, required=False)
    return GenerateSettings(
        volume_per_atom=vol, min_distance=dmin, elements=elements, composition=composition,
        natoms=natoms, max_strain=max_strain, nconfigs=nconfigs, iterations=iterations,
        estimator=estimator, seed=seed, reference=r.get("reference", p_str, None),
        oracle=oracle, oracle_args=args)


SECTION = SettingsSection(
    "GENERATE", parse_generate, KEYS, verb="generate",
    description="training-set generation by descriptor-entropy maximisation (mpisnap generate)")


@hookimpl
def mpisnap_settings_sections():
    return [SECTION]
