"""The linear operators behind the four matrix equations.

Every equation is written as `L(X) = C` with one of two operators:

    continuous (Sylvester):        L(X) = A X + X B
    discrete (Stein-Sylvester):    L(X) = X − A X B        (i.e.  A X B − X + C = 0)

A 1-D `A` or `B` stands for a diagonal matrix. The (non-conjugating) transpose that JAX's
reverse mode needs is the same operator with `Aᵀ` and `Bᵀ`:

    ⟨L(X), Y⟩ = tr((AX + XB)ᵀ Y) = tr(Xᵀ (Aᵀ Y + Y Bᵀ))   (and likewise for X − A X B).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array


def left_multiply(a: Array, x: Array) -> Array:
    """`A X` for dense `A` (n, n) or diagonal `A` given as (n,)."""
    return a[:, None] * x if a.ndim == 1 else a @ x


def right_multiply(x: Array, b: Array) -> Array:
    """`X B` for dense `B` (m, m) or diagonal `B` given as (m,)."""
    return x * b[None, :] if b.ndim == 1 else x @ b


def as_dense(a: Array) -> Array:
    return jnp.diag(a) if a.ndim == 1 else a


def transpose(a: Array) -> Array:
    return a if a.ndim == 1 else a.T


class SylvesterOperator(eqx.Module):
    """`X ↦ A X + X B` (continuous) or `X ↦ X − A X B` (discrete)."""

    a: Array
    b: Array
    discrete: bool = eqx.field(static=True)

    def __call__(self, x: Array) -> Array:
        if self.discrete:
            return x - right_multiply(left_multiply(self.a, x), self.b)
        return left_multiply(self.a, x) + right_multiply(x, self.b)

    def transpose(self) -> "SylvesterOperator":
        return SylvesterOperator(transpose(self.a), transpose(self.b), self.discrete)
