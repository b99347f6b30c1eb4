"""Training-set generation by descriptor-entropy maximisation (``mpisnap generate``).

The idea (Karabin & Perez, J. Chem. Phys. 153, 094110 (2020); Montes de Oca Zapiain et al.,
npj Comput. Mater. 8, 189 (2022), arXiv:2201.09829): a training set whose per-atom descriptors
spread as evenly as possible over descriptor space — maximal information entropy of their
distribution — makes potentials that transfer, with no expert choosing structures.

The algorithm (:func:`generate`):

1. **Initial structures.** ``nconfigs`` random periodic cells: N atoms uniform in ``natoms``,
   elements drawn with the ``composition`` fractions, the volume per atom uniform in
   ``volume_per_atom``, a random volume-preserving distortion within ``max_strain``, atoms placed
   by random sequential addition at least ``min_distance`` apart
   (:mod:`~mpisnap.generation.structures`). Configuration k draws from its own random stream
   ``(seed, k)``.
2. **Whitening.** Per centre element, the per-atom descriptors (linear bispectrum components of
   ``[BISPECTRUM]``) are whitened by the mean and regularised covariance of a fixed set — the
   reference set in fill-the-gaps mode (``reference``), else the initial structures — held fixed
   for the whole run: whitening by the evolving set's own covariance would make spreading the
   cloud worth nothing (:class:`~mpisnap.generation.entropy.Whitening`).
3. **Outer iterations** (``iterations``). The objective is the entropy of the whole set's cloud
   (generated structures plus the reference set), per element and summed. At the start of each
   outer iteration every rank holds every configuration's descriptors (exchanged at this fixed
   point, never on a timer) and the smooth estimator's scale is fixed (the median
   nearest-neighbour distance). Then each configuration, with all others held where they were,
   takes a few L-BFGS-B steps (:data:`~mpisnap.generation.optimise.INNER_STEPS`) on its atomic
   coordinates, its cell distortion (bounded by ``max_strain``) and its volume (bounded by
   ``volume_per_atom``), maximising the smooth estimate (``estimator``: ``gaussian`` or
   ``softmin``, :mod:`~mpisnap.generation.entropy`) minus a repulsive wall near
   ``min_distance``. The gradient is analytic: ∂S/∂B per atom, through the core's per-neighbour
   derivatives ∂B_i/∂r_in to the positions, and through their virial form to the cell
   (:mod:`~mpisnap.generation.optimise`). A step that ends with two atoms closer than
   ``min_distance`` is relaxed by the wall alone, else undone, so every structure always
   satisfies it. The Kozachenko–Leonenko entropy (reporting) and the smooth one are logged per
   iteration.
4. **Labels** (with ``oracle``). Each rank labels its own structures (:mod:`mpisnap.oracle`) and
   writes each label at once into the checkpoint; a structure the oracle fails on is logged and
   replaced by a new random structure, optimised against the final cloud.
5. **Outputs** (rank 0, all or nothing): ``generated.extxyz``, ``JSON/Generated/*.json``
   (FitSNAP JSON, exactly ``nconfigs``; with an oracle), ``generate_entropy.csv`` and
   ``generate_summary.png``. ``generate_checkpoint/`` keeps the state after every outer
   iteration and every label, for ``--resume``.

Parallel runs: the configurations are spread over the ranks balanced by their atom counts
(:func:`mpisnap.partition.assign`; each size comes from its own stream ``(seed, k, 0)``, so every
rank knows them all before any structure is made). Because each configuration moves
against the cloud as it was at the start of the outer iteration, the structures do not depend on
which rank moves them; the guarantee is the same result for the same seed *and rank count* (the
exception to mpisnap's any-rank-count rule: thread pools differ between rank counts, and
round-off differences grow through the optimisation). With ``--threads 1`` the tests find 1 and 2
ranks identical.
"""
from __future__ import annotations

__all__ = ["generate"]


def generate(source, **kwargs):
    """See :func:`mpisnap.generation.driver.generate` (imported on first use)."""
    from .driver import generate as _generate

    return _generate(source, **kwargs)
