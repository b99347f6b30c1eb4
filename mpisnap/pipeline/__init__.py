"""The fit pipeline, one module per stage; every distributed stage takes the communicator
first (a :class:`~mpisnap.comm.SerialComm` for one process) and has plain inputs and outputs.

=================  ==========================================================================
stage              module and functions
=================  ==========================================================================
1 setup            :mod:`.setup`: :func:`prepare` → :class:`Setup` (settings, plugins, model)
2 plan             :mod:`.partitioning`: :func:`plan` → :class:`Partition` (this rank's configs)
3 rows             :mod:`.rows`: :func:`iter_blocks` (bounded memory), :func:`build_shard`
4 compress         :mod:`.compression`: :func:`compress` (rows → R, per key if asked),
                   :func:`finalize` (every rank's R combined)
5 solve            :mod:`.solving`: :func:`solve_compressed`, :func:`solve_shard`
6 evaluate         :mod:`.evaluation`: :func:`evaluate` (predictions, metrics, per-row table)
7 outputs          :mod:`.outputs`: :func:`finish` (writer plugins, all files or none)
=================  ==========================================================================

:mod:`.modes` composes them: :func:`fit` picks in-memory, streaming, refit-from-store or a
nonlinear (self-training) model form. Reading configurations (:mod:`.reading`) and stage timing
(:mod:`.timing`) are shared helpers. ``Pieces`` and ``Plan`` are the former names of
:class:`Setup` and :class:`Partition`.
"""
from ..comm import agree
from ..errors import CollectiveError, FitError
from .compression import Compressed, compress, compress_shard, finalize, shard_blocks
from .evaluation import evaluate, evaluate_blocks, gather_rows, local_sums
from .modes import fit, fit_in_memory, fit_streaming, refit_from_store, train_nonlinear
from .outputs import finish, write_outputs, write_run_log
from .partitioning import Partition, estimate_costs, own_all, plan
from .reading import load, naming
from .rows import build_shard, iter_blocks
from .setup import Setup, _choose_model_form, _choose_reference, check_targets, prepare
from .solving import solve, solve_compressed, solve_shard
from .timing import Timer

Pieces = Setup  # former name
Plan = Partition  # former name

__all__ = ["fit", "prepare", "plan", "iter_blocks", "build_shard", "compress", "compress_shard",
           "finalize", "solve", "solve_compressed", "solve_shard", "evaluate", "finish",
           "fit_in_memory", "fit_streaming", "refit_from_store", "train_nonlinear", "Setup",
           "Partition", "Compressed", "Timer", "agree", "FitError", "CollectiveError"]
