"""Posterior samples as LAMMPS potentials, so that uncertainty can be carried into molecular
dynamics (run the same simulation with each sample and look at the spread of an observable).

``[UQ] nsamples = K`` writes ``<potential>_sample<k>.snapcoeff`` and ``<potential>_sample<k>.mod``
for k = 0 … K−1; each ``.mod`` uses the fit's ``<potential>.snapparam`` and the same reference
potential overlay as ``<potential>.mod``. The coefficients are drawn from N(μ, Σ) (nugget
included) with ``numpy.random.default_rng([seed, 1])`` (``[UQ] seed``), and symmetrised like the
mean (ChemSNAP samples are orbit-averaged, so LAMMPS forces stay −∇E; the energies and forces of
the design rows do not change). The spread of a sample set's energies estimates the model part
of the energy uncertainty (``energy_std_model``).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["samples", "write_samples"]


def samples(result, count: int, seed: int = 0) -> np.ndarray:
    """``count`` coefficient vectors (count × n) drawn from the posterior of ``result`` (a fit
    with a Bayesian solver) and symmetrised as the written mean is."""
    rng = np.random.default_rng([int(seed), 1])
    raw = result.uq.posterior.sample(rng, int(count))
    return np.array([result.model.symmetrize(c) for c in raw]).reshape(int(count), -1)


def _reference(settings) -> dict:
    ref = settings.reference
    if not ref.active:
        return {"reference_style": None, "reference_coeffs": ()}
    return {"reference_style": ref.pair_style, "reference_coeffs": tuple(ref.pair_coeffs)}


def write_samples(result, output_dir: str, count: int, seed: int = 0) -> list[str]:
    """Write ``count`` sample potentials of ``result`` into ``output_dir`` (names in the module
    docstring); returns the paths."""
    from .. import potential as P

    if count <= 0:
        return []
    settings = result.settings
    model = result.model
    d = model.descriptor
    name = settings.outfile.potential
    base = os.path.join(output_dir, name)
    names = os.path.abspath(base) if os.path.isabs(name) else os.path.normpath(name)
    labels = P.coefficient_labels(d)
    els: Sequence[str] = [str(e) for e in d.elements]
    out = []
    for k, coef in enumerate(samples(result, count, seed)):
        blocks = model.coefficient_blocks(coef)
        comment = (f"mpisnap posterior sample {k} of {count} ({result.uq.solver}), elements "
                   f"{' '.join(els)}")
        out.append(P.write_snapcoeff(f"{base}_sample{k}.snapcoeff", els, d.radelem, d.wj,
                                     blocks, labels=labels, comment=comment))
        out.append(P.write_mod(f"{base}_sample{k}.mod", f"{names}_sample{k}.snapcoeff",
                               f"{names}.snapparam", els, comment=comment,
                               **_reference(settings)))
    return out
