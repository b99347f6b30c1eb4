"""mpisnap: fit SNAP interatomic potentials, FitSNAP-compatible, from a laptop to a supercomputer.

``import mpisnap`` is light: it loads numpy and the compiled core only; MPI, LAMMPS, torch and
matplotlib are imported where they are used.
"""
from .descriptors import Descriptor, DescriptorResult, PairDerivatives
from .hookspecs import hookimpl


def __getattr__(name):  # lazy exports: ``import mpisnap`` does not import ase
    if name == "__version__":  # read from the installed metadata on first use (mpisnap._metadata)
        from ._metadata import version

        value = globals()["__version__"] = version("mpisnap") or "0+unknown"
        return value
    if name == "Calculator":
        from .calculator import Calculator

        return Calculator
    if name == "generate":
        from .generation import generate

        return generate
    if name == "tune":
        from .tuning import tune

        return tune
    if name == "learn":
        from .learning import learn

        return learn
    raise AttributeError(f"module 'mpisnap' has no attribute {name!r}")


def fit(source, **kwargs):
    """Fit a potential; see :func:`mpisnap.pipeline.fit` (imported on first use)."""
    from .pipeline import fit as _fit

    return _fit(source, **kwargs)


__all__ = ["Calculator", "Descriptor", "DescriptorResult", "PairDerivatives", "fit", "generate",
           "hookimpl", "learn", "tune", "__version__"]
