r"""Layerwise h2 quantities of a compressed deep SSM (the first, h2-only form of the bound).

The bound that [`jaxlqo.ssm.output_error_bound`][] reports now lives in
`jaxlqo/ssm/_certify.py` (theorem and proof there and in the docs); what follows is the
earlier, looser theorem, kept with `layer_quantities` for reference.

**Theorem.** Let a deep SSM map the encoded sequence `s⁰` through layers
`sⁱ_k = LN_i(sⁱ⁻¹_k + σ(yⁱ_k))`, `yⁱ = S_i(sⁱ⁻¹)`, where `S_i` is a discrete LQO block with
linear part `Σ_{i,1}` (kernel `h_i`, feedthrough `D_i`) and quadratic part `Σ_{i,2}` (symmetric
kernel `K_i`), σ is `ℓ_σ`-Lipschitz and `LN_i(v) = γ_i ⊙ P v / √(‖P v‖²/H + ε) + β_i` with the
centring projector `P`. Replace each `S_i` by `Ŝ_i` (same `D_i`) and let `ŝ` be the resulting
trajectory from the same `s⁰`. For one input sequence of length `L` define, with
`‖v‖_{[0,k)} = (Σ_{j<k} ‖v_j‖²)^{1/2}` and every h2 norm over lags `< L`:

    δ_{i,1} = ‖Σ_{i,1} − Σ̂_{i,1}‖_h2,  δ_{i,2} = ‖Σ_{i,2} − Σ̂_{i,2}‖_h2,
    ε⁰_k = 0,   E_k = ‖εⁱ⁻¹‖_{[0,k)},   W_k = ‖sⁱ⁻¹‖_{[0,k)},
    ηⁱ_k = δ_{i,1} W_k + δ_{i,2} W_k² + ‖Σ̂_{i,1}‖ E_k + ‖Σ̂_{i,2}‖ E_k (2 W_k + E_k)
           + ‖D_i‖₂ εⁱ⁻¹_k,
    Δⁱ_k = εⁱ⁻¹_k + ℓ_σ ηⁱ_k,
    εⁱ_k = ‖γ_i‖_∞ min( Δⁱ_k / √( max(‖P aⁱ_k‖ − Δⁱ_k, 0)²/H + ε ),  ‖g(P aⁱ_k)‖ + √H ),
    aⁱ_k = sⁱ⁻¹_k + σ(yⁱ_k),   g(w) = w / √(‖w‖²/H + ε).

Then `‖sⁱ_k − ŝⁱ_k‖₂ ≤ εⁱ_k` for every layer `i` and step `k`; in particular
`max_k ‖s_out,k − ŝ_out,k‖₂ ≤ max_k ε^ξ_k`.

**Input-whitened refinement.** For any invertible `R_i` (H×H), the reduction term
`δ_{i,1} W_k + δ_{i,2} W_k²` of `ηⁱ_k` may be replaced by its minimum with
`δ^R_{i,1} Z_k + δ^R_{i,2} Z_k²`, where `δ^R` are the h2 errors of the blocks with input
matrix `B R_i` and `Z_k = ‖R_i⁻¹ sⁱ⁻¹‖_{[0,k)}`. We take `R_i = (E[s sᵀ] + τ I)^{1/2}` over the
given inputs' full trajectory: the reduction is then charged only for the input directions the
layer actually sees (the first layer's input is an affine image of a scalar signal), which is
what the input-aware methods minimise.

**Proof.** By induction on `i`; `ε⁰ = 0` as the encoder is shared. Write
`yⁱ − ŷⁱ = (S_i − Ŝ_i)(sⁱ⁻¹) + (Ŝ_i(sⁱ⁻¹) − Ŝ_i(ŝⁱ⁻¹))`.
(1) *Reduction error.* The linear part of `(S_i − Ŝ_i)(v)_k` is `Σ_{j<k} (h − ĥ)(k−1−j) v_j`
(equal feedthroughs cancel); by the triangle and Cauchy–Schwarz inequalities and
`‖·‖₂ ≤ ‖·‖_F`, its norm is at most `(Σ_lag ‖h − ĥ‖_F²)^{1/2} ‖v‖_{[0,k)} ≤ δ_{i,1} W_k`. Each
output of the quadratic part is the Frobenius inner product of the kernel difference with
`v vᵀ` (over the window), so by Cauchy–Schwarz the output vector's norm is at most
`δ_{i,2} ‖v‖²_{[0,k)}`. (Refinement: write `v_j = R z_j`; the kernels of the blocks with input
matrix `B R` are `h R` and `K (R ⊗ R)`, so the same steps give `δ^R_{i,1} Z_k + δ^R_{i,2} Z_k²`;
both estimates hold, hence their minimum.)
(2) *Propagated error.* With `d = sⁱ⁻¹ − ŝⁱ⁻¹`, the linear part of `Ŝ_i(sⁱ⁻¹) − Ŝ_i(ŝⁱ⁻¹)` is
bounded as in (1) by `‖Σ̂_{i,1}‖ ‖d‖_{[0,k)} + ‖D_i‖₂ ‖d_k‖`; for the quadratic part, symmetry
of the kernel gives `B(s, s) − B(ŝ, ŝ) = B(d, s + ŝ)`, bounded by
`‖Σ̂_{i,2}‖ ‖d‖_{[0,k)} (2‖s‖_{[0,k)} + ‖d‖_{[0,k)})`. The induction hypothesis bounds
`‖d_j‖ ≤ εⁱ⁻¹_j`, so `‖yⁱ_k − ŷⁱ_k‖ ≤ ηⁱ_k` and `‖aⁱ_k − âⁱ_k‖ ≤ Δⁱ_k` (σ is
`ℓ_σ`-Lipschitz).
(3) *LayerNorm.* `g(w) = w / √(‖w‖²/H + ε)` has Jacobian `(I − w wᵀ/(Hρ²))/ρ`,
`ρ = √(‖w‖²/H + ε)`, of operator norm `≤ 1/ρ`. On the segment from `P aⁱ_k` to `P âⁱ_k`,
which lies in the ball of radius `Δⁱ_k` (`‖P‖ = 1`), `‖w‖ ≥ ‖P aⁱ_k‖ − Δⁱ_k`; the mean value
inequality and `‖γ ⊙ z‖ ≤ ‖γ‖_∞ ‖z‖` give the first term of the minimum. For the second,
`‖g(w)‖ = ‖w‖ / √(‖w‖²/H + ε) < √H` for every `w`, so
`‖g(P aⁱ_k) − g(P âⁱ_k)‖ ≤ ‖g(P aⁱ_k)‖ + √H` whatever the perturbation (β cancels). ∎

The bound is computed from the *full* model's trajectory and the layerwise h2 quantities only
(never from the compressed trajectory). To first order in the layer errors it is a weighted sum
`Σ_i (α_i δ_{i,1} + β_i δ_{i,2})`; the weights (shallow layers weigh more, as their errors are
amplified by every later layer) are [`jaxlqo.ssm.bound_weights`][].
"""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .._norms import h2_error, h2_norm
from .._systems import DiagonalLQOSystem, with_input_factor as with_input_factor
from ._model import GELU_LIPSCHITZ


def linear_part(sys: DiagonalLQOSystem) -> DiagonalLQOSystem:
    """The linear part `Re(C x)` only (no feedthrough, no quadratic readout)."""
    return DiagonalLQOSystem(sys.poles, sys.B, sys.C, dt=sys.dt)


def quadratic_part(sys: DiagonalLQOSystem) -> DiagonalLQOSystem | None:
    """The quadratic readout only (`C = 0`, `D = 0`); `None` if the system has none."""
    if sys.F is None:
        return None
    return DiagonalLQOSystem(sys.poles, sys.B, jnp.zeros_like(sys.C), F=sys.F, G=sys.G, dt=sys.dt)


class LayerQuantities(eqx.Module):
    """The h2 quantities of one layer that the bound needs (all over lags `< horizon`)."""

    linear_error: Array  # δ_{i,1}
    quadratic_error: Array  # δ_{i,2}
    reduced_linear_norm: Array  # ‖Σ̂_{i,1}‖
    reduced_quadratic_norm: Array  # ‖Σ̂_{i,2}‖
    feedthrough_norm: Array  # ‖D_i‖₂


def layer_quantities(full: DiagonalLQOSystem, reduced: DiagonalLQOSystem, horizon: int):
    """δ₁, δ₂, ‖Σ̂₁‖, ‖Σ̂₂‖ and ‖D‖₂ of one layer (time-limited h2 over `horizon` lags).

    For the input-whitened refinement pass the blocks through
    `with_input_factor(·, R)` first (only the errors
    `δ` of those quantities are used).
    """
    lin_full, lin_red = linear_part(full), linear_part(reduced)
    quad_full, quad_red = quadratic_part(full), quadratic_part(reduced)
    dtype = jnp.real(full.B).dtype
    if quad_full is not None and quad_red is not None:
        quad_err = h2_error(quad_full, quad_red, horizon=horizon)
        quad_norm = h2_norm(quad_red, horizon=horizon)
    elif quad_full is not None:
        quad_err, quad_norm = h2_norm(quad_full, horizon=horizon), jnp.zeros((), dtype)
    elif quad_red is not None:
        quad_err = quad_norm = h2_norm(quad_red, horizon=horizon)
    else:
        quad_err = quad_norm = jnp.zeros((), dtype)
    return LayerQuantities(
        h2_error(lin_full, lin_red, horizon=horizon),
        quad_err,
        h2_norm(lin_red, horizon=horizon),
        quad_norm,
        jnp.linalg.norm(full.D, ord=2),
    )


def _window_norm(x: Array) -> Array:
    """`‖x‖_{[0,k)} = (Σ_{j<k} x_j²)^{1/2}` for each k, from per-step norms `x` (L,)."""
    squared = jnp.cumsum(x**2)
    squared = jnp.concatenate([jnp.zeros((1,), x.dtype), squared[:-1]])
    # Double-where: the bound is differentiated at zero error (bound_weights), where a plain
    # sqrt has an infinite derivative.
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def bound_from_quantities(
    trajectory,
    quantities,
    norms,
    whitened: Sequence[tuple[LayerQuantities, Array] | None] | None = None,
) -> Array | None:
    """The theorem's recursion for one input sequence.

    **Arguments:**

    - `trajectory`: list over layers of `(s_in (L, H), a (L, H))`: each layer's input and
        pre-LayerNorm vector `s_in + σ(y)` along the *full* model's trajectory.
    - `quantities`: list of [`LayerQuantities`][] (any of its entries may be traced, so the
        bound can be differentiated with respect to the layer errors).
    - `norms`: list of `(‖γ_i‖_∞, ε_i)` of each layer's LayerNorm.
    - `whitened`: optional list of `(quantities with input factor R_i, R_i⁻¹)` per layer,
        for the input-whitened refinement of the reduction term.

    **Returns:** `(L,)` the bound `ε^ξ_k` on `‖s_out,k − ŝ_out,k‖` for every step (`None`
    for no layers).
    """
    eps_prev = None
    whitened = [None] * len(quantities) if whitened is None else whitened
    for (s_in, a), q, (gamma_max, ln_eps), white in zip(
        trajectory, quantities, norms, whitened, strict=True
    ):
        length, width = s_in.shape
        if eps_prev is None:
            eps_prev = jnp.zeros(length, s_in.dtype)
        w = _window_norm(jnp.linalg.norm(s_in, axis=-1))
        e = _window_norm(eps_prev)
        reduction = q.linear_error * w + q.quadratic_error * w**2
        if white is not None:
            q_white, inverse_factor = white
            z = _window_norm(jnp.linalg.norm(s_in @ inverse_factor.T, axis=-1))
            reduction = jnp.minimum(
                reduction, q_white.linear_error * z + q_white.quadratic_error * z**2
            )
        eta = (
            reduction
            + q.reduced_linear_norm * e
            + q.reduced_quadratic_norm * e * (2 * w + e)
            + q.feedthrough_norm * eps_prev
        )
        delta = eps_prev + GELU_LIPSCHITZ * eta
        centred = jnp.linalg.norm(a - jnp.mean(a, axis=-1, keepdims=True), axis=-1)
        rho = jnp.sqrt(jnp.maximum(centred - delta, 0.0) ** 2 / width + ln_eps)
        # LayerNorm's normalised output has norm < √H, so the error never exceeds the sum.
        normalised = centred / jnp.sqrt(centred**2 / width + ln_eps)
        eps_prev = gamma_max * jnp.minimum(delta / rho, normalised + jnp.sqrt(width))
    return eps_prev
