"""mpisnap: fit SNAP interatomic potentials, FitSNAP-compatible, from a laptop to a supercomputer.

``import mpisnap`` is light: it loads numpy and the compiled core only; MPI, LAMMPS, torch and
matplotlib are imported where they are used.
"""
from importlib.metadata import PackageNotFoundError, version

from .descriptors import Descriptor, DescriptorResult, PairDerivatives

try:
    __version__ = version("mpisnap")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0+unknown"

__all__ = ["Descriptor", "DescriptorResult", "PairDerivatives", "__version__"]
