"""Active learning (``mpisnap learn``): label the structures the potential is least sure of,
refit incrementally, repeat until a stop rule holds.

The campaign (:func:`~mpisnap.learning.campaign.learn`):

1. **Starting fit.** The input's usual sections give the starting fit; its ``[PATH]``/``[GROUPS]``
   data (it may be a handful of structures) is compressed per row kind (energy, force, stress)
   into triangles every rank holds (:mod:`mpisnap.pipeline.compression`).
2. **Candidates.** The ``pool`` (unlabelled structures; each rank computes the design rows of
   its share) and/or, each round, the frames of MD with the current potential
   (:mod:`~mpisnap.learning.explore`).
3. **Each round:** the fit (the ``[SOLVER]`` plugin on the combined triangles), the posterior
   (:mod:`~mpisnap.learning.posterior`: whatever solver writes the coefficients, uncertainty
   comes from a Bayesian posterior on the same triangles, its prior keeping a tiny starting
   set well posed, its hyperparameters re-estimated every round), the candidates' calibrated
   force σ, the validation errors and the round's potential (``rounds/round_NNN/``); then the
   stop rules (``budget``, ``stop_std``, ``validation`` with ``patience``, an exhausted pool);
   else a batch is chosen (:mod:`~mpisnap.learning.selection`: ``ivar`` by default, ``dopt``,
   ``maxstd``, ``random``), labelled by the oracle (:mod:`mpisnap.oracle`; each label written
   at once, :mod:`~mpisnap.learning.labels`) and its rows folded into the triangles: a round
   costs the new rows and O(n³), not the training set already fitted.
4. **Outputs.** ``<stem>_learned.in`` (absolute paths: the starting set and the labels, for
   ``mpisnap fit``), the final potential fitted from scratch exactly as ``mpisnap fit`` writes it
   (equal to the last round's incremental fit to round-off), ``learn_curve.csv``/``.png``.

Resume: every choice is a function of the settings, the seed, the round and the labelled set,
so ``--resume`` replays the campaign, reading every label already written instead of asking the
oracle (:class:`~mpisnap.learning.labels.LabelStore`): no written label is requested again and
the result equals an uninterrupted run's. Rank counts: the pool's selection is the same on any
number of ranks (ties within 1e-9 broken by pool index); MD trajectories are chaotic, so their
frames are the same on different rank counts only as long as round-off does not reach them (the
coefficients driving MD are rounded to 12 digits to that end).
"""
from __future__ import annotations

__all__ = ["learn"]


def learn(source, **kwargs):
    """See :func:`mpisnap.learning.campaign.learn` (imported on first use)."""
    from .campaign import learn as _learn

    return _learn(source, **kwargs)
