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

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._model import DeepSSM, SSMLayer, gelu


def _sequential_states(lam_re, lam_im, drive_re, drive_im):
    """`x_k` by `lax.scan` over time in real arithmetic, time-major `(L, N, n)`."""

    def step(state, drive):
        x_re, x_im = state
        b_re, b_im = drive
        after = (lam_re * x_re - lam_im * x_im + b_re, lam_re * x_im + lam_im * x_re + b_im)
        return after, state

    zero = jnp.zeros(drive_re.shape[1:], drive_re.dtype)
    _, (x_re, x_im) = lax.scan(step, (zero, zero), (drive_re, drive_im))
    return x_re, x_im


def _associative_states(lam_re, lam_im, drive_re, drive_im):
    """`x_k` by `lax.associative_scan` (parallel in time), time-major `(L, N, n)`."""
    drive = lax.complex(drive_re, drive_im)
    decay = jnp.broadcast_to(lax.complex(lam_re, lam_im), drive.shape)

    def combine(first, second):  # (a₁, b₁) then (a₂, b₂) = (a₂a₁, a₂b₁ + b₂)
        return second[0] * first[0], second[0] * first[1] + second[1]

    _, after = lax.associative_scan(combine, (decay, drive))  # x_1, …, x_L
    states = jnp.concatenate([jnp.zeros_like(after[:1]), after[:-1]], axis=0)
    return jnp.real(states), jnp.imag(states)


def diagonal_states(
    poles: Array, drive_re: Array, drive_im: Array, *, parallel: bool | None = None
) -> tuple[Array, Array]:
    r"""The states `x_0, …, x_{L-1}` of `x_{k+1} = λ ⊙ x_k + b_k`, `x_0 = 0`, for a batch.

    **Arguments:**

    - `poles`: `λ`, shape `(n,)`, complex.
    - `drive_re`, `drive_im`: `Re b_k`, `Im b_k`, time-major, shape `(L, N, n)`.
    - `parallel`: keyword-only; `False`: a sequential `lax.scan` in real arithmetic (fastest
        on CPU, where XLA's complex arithmetic and the associative scan's strided slices are
        slow: measured 11 ms vs 145 ms for value and gradient at `L = 1024, N = 16,
        n = 64`); `True`: `lax.associative_scan` (parallel in time, for GPUs); `None`
        (default): sequential on CPU, parallel elsewhere (decided at trace time from the
        default backend).

    **Returns:** `(Re x, Im x)`, each `(L, N, n)` (strictly causal: `x_k` depends on `b_j`,
    `j < k`).
    """
    if parallel is None:
        parallel = jax.default_backend() != "cpu"
    lam_re, lam_im = jnp.real(poles), jnp.imag(poles)
    states = _associative_states if parallel else _sequential_states
    return states(lam_re, lam_im, drive_re, drive_im)


def layer_forward(
    layer: SSMLayer, s: Float[Array, "L N H"], *, parallel: bool | None = None
) -> Float[Array, "L N H"]:
    r"""`LayerNorm(s + σ(y))` of one [`SSMLayer`][jaxlqo.ssm.SSMLayer] for a batch.

    The same map as `jax.vmap(layer, in_axes=1, out_axes=1)(s)`, on a time-major batch `s`
    `(L, N, H)`, with `B s`, `C x`, `D s` and the quadratic readout as real GEMMs over every
    step of every sequence and the scan of [`diagonal_states`][jaxlqo.ssm.diagonal_states].
    """
    L, N, H = s.shape
    n = layer.n
    # Two-dimensional (L·N, ·) operands throughout: XLA's CPU backend runs plain GEMMs far
    # faster than dots with several contracting or free dimensions (measured 2× on the
    # gradients of the readout).
    s = s.astype(layer.dtype).reshape(L * N, H)
    drive_re = (s @ layer.B_re.T).reshape(L, N, n)
    drive_im = (s @ layer.B_im.T).reshape(L, N, n)
    x_re, x_im = diagonal_states(layer.poles, drive_re, drive_im, parallel=parallel)
    x_re, x_im = x_re.reshape(L * N, n), x_im.reshape(L * N, n)
    y = x_re @ layer.C_re.T - x_im @ layer.C_im.T + s @ layer.D.T
    if layer.F_re is not None:
        q = layer.quad_rank

        def readout(re, im):  # Re(F x) for every (channel, product): (L·N, H·q)
            return x_re @ re.reshape(H * q, n).T - x_im @ im.reshape(H * q, n).T

        products = readout(layer.F_re, layer.F_im) * readout(layer.G_re, layer.G_im)
        y = y + (products if q == 1 else jnp.sum(products.reshape(L * N, H, q), axis=-1))
    v = s + gelu(y)
    # The LayerNorm over the last axis, as eqx.nn.LayerNorm computes it per step.
    norm = layer.norm
    mean = jnp.mean(v, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True)
    out = (v - mean) * lax.rsqrt(variance + norm.eps)
    if norm.use_weight:
        out = out * norm.weight
    if norm.use_bias:
        out = out + norm.bias
    return out.reshape(L, N, H)


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
        s = layer_forward(layer, s, parallel=parallel)
    return jnp.mean(s, axis=0) @ model.head.weight.T + model.head.bias
