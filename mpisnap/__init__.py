"""mpisnap."""
