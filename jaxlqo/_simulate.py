"""Time-domain simulation of discrete-time systems: the oracle for norms and error bounds."""

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Inexact

from ._misc import as_inexact_array, check_shape
from ._systems import AbstractSystem, DiagonalLQOSystem, LQOSystem


def simulate(sys: AbstractSystem, u: Inexact[Array, "L m"]) -> Array:
    r"""The output sequence of a discrete-time system driven by `u`, from `x_0 = 0`.

    $$x_{k+1} = A x_k + B u_k,\quad y_k = C x_k + D u_k + [x_k^\top M_j x_k]_j,
      \quad k = 0, \dots, L-1.$$

    Complex-diagonal systems use `lax.associative_scan` (parallel in time, `O(L n)` work);
    dense systems use `lax.scan`. Differentiable and `vmap`-able (batch sequences with
    `jax.vmap(lambda u: lqo.simulate(sys, u))`).

    **Arguments:**

    - `sys`: a discrete-time [`jaxlqo.LQOSystem`][] or [`jaxlqo.DiagonalLQOSystem`][].
    - `u`: inputs, shape `(L, m)`.

    **Returns:** the outputs, shape `(L, p)`.
    """
    if not sys.is_discrete:
        raise ValueError(
            "simulate: `sys` is continuous time (dt=None); simulate a discretised system "
            "instead (it only steps discrete-time recurrences)."
        )
    u = as_inexact_array(u, "u", "simulate")
    check_shape(u, (None, sys.m), "u", "simulate", f"(L, m) with m = {sys.m} inputs")
    if jnp.iscomplexobj(u) and not jnp.iscomplexobj(sys.D):
        # Casting would silently drop the imaginary part (the input of a real system is real).
        raise TypeError(
            f"simulate: `u` has complex dtype {u.dtype} but the system's input is real "
            f"({sys.D.dtype}); pass `jnp.real(u)` if the imaginary part is meant to be dropped."
        )
    # Everything is computed in the system's dtype (explicit casts: strict promotion safe).
    u = u.astype(sys.D.dtype)
    states = simulate_states(sys, u)
    return jax.vmap(sys.output)(states, u)


def simulate_states(sys: AbstractSystem, u: Array) -> Array:
    """The states `x_0, …, x_{L-1}` (x_0 = 0)."""
    if isinstance(sys, DiagonalLQOSystem):
        drive = u.astype(sys.B.dtype) @ sys.B.T  # (L, n): B u_k
        decay = jnp.broadcast_to(sys.poles, drive.shape)

        # x_{k+1} = λ ⊙ x_k + b_k composes associatively:
        # (a₁, b₁) then (a₂, b₂) = (a₂a₁, a₂b₁ + b₂).
        def combine(first, second):
            a1, b1 = first
            a2, b2 = second
            return a2 * a1, a2 * b1 + b2

        _, after = lax.associative_scan(combine, (decay, drive))  # x_1, …, x_L
        return jnp.concatenate([jnp.zeros_like(after[:1]), after[:-1]], axis=0)
    if isinstance(sys, LQOSystem):
        A, B = sys.A, sys.B

        def step(x, u_k):
            return A @ x + B @ u_k, x

        _, states = lax.scan(step, jnp.zeros(sys.n, A.dtype), u)
        return states
    raise TypeError(f"simulate: unsupported system type {type(sys).__name__}.")
