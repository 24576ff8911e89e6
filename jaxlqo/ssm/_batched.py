r"""The batched forward pass of a [`DeepSSM`][jaxlqo.ssm.DeepSSM]: the training fast path.

`jax.vmap(model)` runs one sequence's program per example: matrix–vector products `B s_k`
per step and a parallel (associative) scan over time, whose `O(L log L)` strided slices are
memory-bound on a CPU. Here the same map is written for a whole batch at once:

- `B s`, `C x`, `D s` and the quadratic readout are single GEMMs over all `N · L` steps;
- the diagonal recurrence `x_{k+1} = λ ⊙ x_k + B s_k` runs, on a CPU, as a sequential
  `lax.scan` over time in real arithmetic on the whole batch's state `(N, n)` (XLA's complex
  arithmetic and the associative scan's `log L` strided passes are slow there), and as
  `lax.associative_scan` on other backends (parallel in time);
- the activations are time-major `(L, N, H)`, so each step reads one contiguous block.

The result equals `jax.vmap(model)(inputs)` up to rounding (tested to 1e-12 in float64);
it is what [`train`][jaxlqo.ssm.train] differentiates.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._model import DeepSSM


def batched_logits(
    model: DeepSSM, inputs: Float[Array, "N L d_in"], *, parallel: bool | None = None
) -> Float[Array, "N n_classes"]:
    r"""The logits `(N, n_classes)` of a batch of sequences: `jax.vmap(model)(inputs)`, fast.

    **Arguments:**

    - `model`: a [`DeepSSM`][jaxlqo.ssm.DeepSSM].
    - `inputs`: shape `(N, L, d_in)`, cast to the model's dtype (token models take the
        token ids in `inputs[..., 0]`).
    - `parallel`: keyword-only; the scan over time (see
        [`diagonal_states`][jaxlqo.ssm.diagonal_states]; default: by backend).

    **Returns:** the logits, equal to `jax.vmap(model)(inputs)` up to rounding.
    """
    # Time-major inside: every per-step GEMM reads contiguous rows and the scan slices the
    # leading axis.
    s = jnp.moveaxis(model.encode_batch(inputs), 1, 0)
    for layer in model.layers:
        s = layer.forward_batch(s, parallel=parallel)
    bias = model.head.bias
    assert bias is not None  # DeepSSM's head is an `eqx.nn.Linear` with a bias
    return jnp.mean(s, axis=0) @ model.head.weight.T + bias
