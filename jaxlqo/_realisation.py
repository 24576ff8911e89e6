"""One internal form for every real-output system: complex state, Hermitian quadratic forms.

Every norm and Gramian in jaxlqo is computed on a *realisation*

    x_{k+1} = A x_k + B u_k,   y_j = (C x)_j + (D u)_j + x_kᴴ M_j x_k,   M_j = W_jᴴ S_j W_j,

in which the output is real by construction. A real dense `LQOSystem` is its own realisation
(`W_j = I`, `S_j = M_j`). A complex-diagonal system `y = Re(C x) + …` with poles `λ` becomes
the diagonal system with poles `[λ; λ̄]` and state `x_c = [x; x̄] = T [Re x; Im x]`,
`T = [[I, iI], [I, −iI]]`: then `Re(C x) = ½[C, C̄] x_c` and `Re(f x) Re(g x) = x_cᴴ ½(f_cᴴ g_c
+ g_cᴴ f_c) x_c` with `f_c = ½[f, f̄]`. This is an exact similarity transform of the realified
system `[Re x; Im x]`, so every norm, Gramian eigenvalue and Hankel singular value agrees with
`sys.to_dense()`, while the state matrix stays diagonal (closed-form solves). Each system
class builds its own (`AbstractSystem.realisation`).

With this form, the h2 inner product of two systems is (docs/h2.md)

    ⟨Σ₁, Σ₂⟩ = Re tr(C₁ X C₂ᴴ) + Σ_j Re tr(S₁ⱼ Πⱼ S₂ⱼ Πⱼᴴ) (+ tr(D₁ D₂ᵀ) in discrete time),
    X = Σ_k x₁ₖ x₂ₖᴴ (a Stein/Sylvester equation),  Πⱼ = W₁ⱼ X W₂ⱼᴴ.
"""

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array


class Realisation(NamedTuple):
    a: Array  # (n, n) dense, or (n,) diagonal
    b: Array  # (n, m)
    c: Array  # (p, n); C x is real for every reachable state
    quad_rows: Array | None  # (p, q, n) rows W_j, or None for W_j = I
    quad_core: Array | None  # (p, q, q) Hermitian S_j (dense: M); None for an LTI system
    d: Array  # (p, m), real
    discrete: bool
    dt: float | None

    @property
    def n(self) -> int:
        return self.a.shape[0]


def doubled_rows(rows: Array) -> Array:
    """Rows `r` acting as `Re(r x)` become `½[r, r̄]` acting on `[x; x̄]`."""
    return 0.5 * jnp.concatenate([rows, jnp.conj(rows)], axis=-1)


def product_core(k: int, p: int, dtype) -> Array:
    """`S = ½[[0, I], [I, 0]]` (`2k × 2k`) for each of `p` outputs: with rows `W = [F; G]`,
    `xᴴ Wᴴ S W x = Σ_l Re(conj(F_l x) G_l x)` (a sum of products as a Hermitian form)."""
    eye = jnp.eye(k, dtype=dtype)
    zero = jnp.zeros_like(eye)
    return jnp.broadcast_to(0.5 * jnp.block([[zero, eye], [eye, zero]]), (p, 2 * k, 2 * k))


def doubling_transform(n: int, dtype) -> Array:
    """`T` with `[x; x̄] = T [Re x; Im x]` for `n` complex states."""
    eye = jnp.eye(n, dtype=dtype)
    return jnp.block([[eye, 1j * eye], [eye, -1j * eye]]).astype(dtype)
