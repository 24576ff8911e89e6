"""A warning for jaxlib versions with a known CPU deadlock (jaxlqo's requirements exclude them)."""

import warnings

# jaxlib 0.10.0–0.10.2 split a batched LAPACK call (what `vmap` makes of eig/svd/LU/…) over
# XLA's CPU thread pool and block until the pieces finish: with as many such calls running at
# once as the pool has threads, every thread waits and the program hangs (docs/faq.md).
DEADLOCKING_JAXLIB = ("0.10.0", "0.10.1", "0.10.2")


def warn_if_deadlocking_jaxlib(version: str) -> bool:
    """Warn (and return True) if `version` is a jaxlib release with the batched-LAPACK deadlock."""
    if version not in DEADLOCKING_JAXLIB:
        return False
    warnings.warn(
        f"jaxlib {version} can deadlock on CPU when batched LAPACK calls run concurrently "
        "(e.g. `jax.vmap` of jaxlqo's reductions or dense h2 errors hangs with no CPU use). "
        "jaxlqo requires jaxlib != 0.10.0–0.10.2; install 0.9.2 or ≥ 0.11.1.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
