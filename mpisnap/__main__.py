"""``python -m mpisnap`` = the ``mpisnap`` command."""
import sys

from .cli import main

sys.exit(main())
