"""Built-in mpisnap plugins (installed as mpisnap.plugins)."""
