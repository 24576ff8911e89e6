"""jaxlqo's benchmark suites (`python -m benchmarks`).

Every suite runs with NumPy's and SciPy's BLAS limited to one thread (so SciPy baselines and
jaxlib's LAPACK calls alike), unless `JAXLQO_BLAS_THREADS` says otherwise (0: the libraries'
default). On a busy 2-core machine the default OpenBLAS threads made LAPACK calls up to 70×
slower (see jaxlqo/_blas.py).
"""

import os

from jaxlqo._blas import limit_blas_threads

BLAS_THREADS = int(os.environ.get("JAXLQO_BLAS_THREADS", "1"))
limit_blas_threads(BLAS_THREADS)
