import os

# Tests compare thread counts explicitly; keep BLAS single-threaded for stable timings.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
