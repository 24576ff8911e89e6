"""Time-domain simulation of discrete-time systems: the oracle for norms and error bounds."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact

from ._misc import as_inexact_array, check_shape
from ._systems import AbstractSystem, check_system


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
    check_system(sys, "simulate")
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
    states = sys.states(u)
    return jax.vmap(sys.output)(states, u)
