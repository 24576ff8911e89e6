"""Keep the BLAS/LAPACK thread pools of NumPy and SciPy to one thread (used by jaxlqo's CLI,
benchmarks and tests).

On CPU, jaxlib runs LAPACK (`eigh`, `svd`, `eig`, `schur`, LU, …) through SciPy's OpenBLAS,
which by default starts one thread per core — while XLA's own thread pool already uses
every core. The two pools then compete, and OpenBLAS threads that wait for a descheduled
partner make each call dozens of times slower: measured on 2 cores with another process
busy, `jnp.linalg.svd` of a 384 × 384 matrix took 2.0 s instead of 0.03 s, and balanced
truncation of six S5-sized layers 96 s instead of 1.3 s. The matrices jaxlqo factorises are
small enough (n ≤ a few hundred) that one thread per call loses little when the machine is
quiet. Library functions never change this setting; call `limit_blas_threads` (or set
`OPENBLAS_NUM_THREADS=1` before Python starts) in your own scripts if you see the same.
"""

import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one jaxlib's LAPACK calls use)
from threadpoolctl import threadpool_limits


def limit_blas_threads(threads: int = 1):
    """Limit every loaded BLAS library (NumPy's and SciPy's OpenBLAS, MKL, …) to `threads`.

    Returns the `threadpoolctl` limiter (call `.restore_original_limits()` to undo), or
    `None` when `threads` is 0 (leave the libraries as they are).
    """
    if threads == 0:
        return None
    return threadpool_limits(limits=threads, user_api="blas")
