"""Small dense / diagonal linear-algebra helpers shared by the Gramians, norms and reducers.

`adjoint`, `propagator`, `sandwich` and `is_stable_matrix` take a dense `(n, n)` matrix or
a 1-D diagonal (the state matrix of a complex-diagonal system); `psd_sqrt_factor` takes a
dense Hermitian one. None needs `schur` (`eigh`, `eigvals`, `expm`), so all run on GPU.
"""

import jax.lax as lax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Bool


def adjoint(a: Array) -> Array:
    """`Aᴴ` for a dense matrix or a 1-D diagonal."""
    return jnp.conj(a) if a.ndim == 1 else a.conj().T


def propagator(a: Array, discrete: bool, horizon) -> Array:
    """`Φ = A^L` (discrete) or `e^{AT}` (continuous); elementwise for a 1-D diagonal."""
    if a.ndim == 1:
        return a**horizon if discrete else jnp.exp(a * horizon)
    if discrete:
        return jnp.linalg.matrix_power(a, horizon)
    # Long horizons (‖A‖ T up to ~1e19) need more than expm's default 16 squarings.
    return jsl.expm(a * jnp.asarray(horizon, dtype=a.dtype), max_squarings=64)


def sandwich(phi1: Array, x: Array, phi2: Array) -> Array:
    """`Φ₁ X Φ₂ᴴ` for dense or 1-D `Φ`."""
    phi1, phi2 = phi1.astype(x.dtype), phi2.astype(x.dtype)  # a real Φ meets a complex X
    left = phi1[:, None] * x if phi1.ndim == 1 else phi1 @ x
    return left * jnp.conj(phi2)[None, :] if phi2.ndim == 1 else left @ phi2.conj().T


def is_stable_matrix(a: Array, discrete: bool) -> Bool[Array, ""]:
    """Spectral radius < 1 (discrete) or spectral abscissa < 0 (continuous)."""
    a = lax.stop_gradient(a)
    if a.ndim == 1:
        lam = a
    else:
        # eigvals of a non-finite matrix is undefined; such input is reported elsewhere.
        finite = jnp.isfinite(a).all()
        lam = jnp.linalg.eigvals(jnp.where(finite, a, jnp.zeros_like(a)))
    return jnp.all(jnp.abs(lam) < 1) if discrete else jnp.all(jnp.real(lam) < 0)


def psd_sqrt_factor(g: Array) -> Array:
    """`Z` with `G = Z Zᴴ` for a Hermitian positive semidefinite `G` (via `eigh`, GPU-safe).

    Rounding can leave tiny negative eigenvalues on a semidefinite Gramian, where Cholesky
    would fail; they are clipped to zero.
    """
    g = 0.5 * (g + g.conj().T)
    w, v = jnp.linalg.eigh(g)
    return v * jnp.sqrt(jnp.clip(w, 0.0)).astype(v.dtype)[None, :]  # complex v: explicit cast
