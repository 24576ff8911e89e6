r"""Input weights from a second moment: `W^{1/2}` and its regularised inverse.

A block driven by inputs with second moment `W = E[s sᵀ]` is reduced accurately for those
inputs by weighting its input matrix, `B → B W^{1/2}` (input-weighted balanced truncation, the
input-aware h2 objectives, the state budgets).
"""

import jax.numpy as jnp
from jaxtyping import Array


def input_weight_roots(second_moment: Array) -> tuple[Array, Array]:
    """`W^{1/2}` and a regularised inverse `W^{-1/2}` of a symmetric second moment `W`.

    Eigenvalues are clipped (not shifted) at `1e-6` times their mean: a PSD moment computed in
    float32 can have slightly negative eigenvalues, which a fixed shift need not cover, and
    any positive floor gives a valid root.
    """
    h = second_moment.shape[0]
    w, v = jnp.linalg.eigh((second_moment + second_moment.T) / 2)
    floor = 1e-6 * jnp.maximum(jnp.sum(jnp.abs(w)) / h, jnp.finfo(w.dtype).tiny ** 0.5)
    w = jnp.maximum(w, floor)
    root = (v * jnp.sqrt(w)) @ v.T
    inverse_root = (v / jnp.sqrt(w)) @ v.T
    return root, inverse_root
