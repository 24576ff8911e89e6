"""The stable pole map shared by the reducers' modal parameters and the deep-SSM layer.

Real, unconstrained parameters `ν` (`log_decay`) and `θ` (`angle`) give a stable pole for
every real value:

    discrete:    μ = exp(−exp(ν) + iθ)   so |μ| = exp(−exp(ν)) < 1
    continuous:  μ = −exp(ν) + iθ        so Re μ = −exp(ν) < 0

so an optimiser over `(ν, θ)` (L-BFGS in `jaxlqo.reduce`, AdamW in training) cannot leave the
stable set. The inverse is `ν = log(decay_rate(μ))`, `θ = arg μ` (discrete) or `Im μ`
(continuous), defined for every stable pole (`ν = −∞` only at `|μ| = 1` or `Re μ = 0`).
"""

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array


def stable_poles(log_decay: Array, angle: Array, discrete: bool) -> Array:
    """`μ = exp(−exp(ν) + iθ)` (discrete) or `μ = −exp(ν) + iθ` (continuous)."""
    exponent = lax.complex(-jnp.exp(log_decay), angle)
    return jnp.exp(exponent) if discrete else exponent


def decay_rate(poles: Array, discrete: bool) -> Array:
    """`exp(ν)` of a pole: `−log|μ|` (discrete) or `−Re μ` (continuous); positive iff stable."""
    return -jnp.log(jnp.abs(poles)) if discrete else -jnp.real(poles)


def pole_angle(poles: Array, discrete: bool) -> Array:
    """`θ` of a pole: `arg μ` (discrete) or `Im μ` (continuous)."""
    return jnp.angle(poles) if discrete else jnp.imag(poles)
