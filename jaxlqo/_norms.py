"""h2 norms and h2 errors of LQO systems, infinite and time-limited.

Feedthrough policy (`D`): a continuous-time system with `D ≠ 0` has an infinite h2 norm (its
impulse response contains `D δ(t)`); in discrete time `D` is the lag-0 Markov parameter and
counts `‖D‖²_F`. An h2 *error* sees `D − D̂`, so equal feedthroughs cancel exactly.
"""

from typing import Literal, NamedTuple, TypeGuard, overload

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Real

from ._checks import check_horizon
from ._compiled import compiled
from ._gramians import is_stable, realisation_gramians, solve_gramian_equation
from ._linalg import is_stable_matrix
from ._matrix_equations._solve import factorise
from ._matrix_equations._solvers import eigenvalues_separated
from ._misc import common_inexact_dtype, complex_dtype
from ._realisation import Realisation
from ._results import finish, first_failure
from ._solution import RESULTS, Solution
from ._systems import AbstractSystem, DiagonalLQOSystem, LQOSystem, check_system


def _quadratic_pairing(r1: Realisation, r2: Realisation, x: Array) -> Array:
    """`Σ_j Re tr(S₁ⱼ Πⱼ S₂ⱼ Πⱼᴴ)` with `Πⱼ = W₁ⱼ X W₂ⱼᴴ` (the quadratic-kernel inner product)."""
    if r1.quad_core is None or r2.quad_core is None:
        return jnp.zeros((), jnp.finfo(x.dtype).dtype)
    s1, s2 = r1.quad_core.astype(x.dtype), r2.quad_core.astype(x.dtype)
    if r1.quad_rows is None and r2.quad_rows is None:
        # Dense-dense: Π_j = X for every output, so tr(M₁ⱼ X M₂ⱼ Xᴴ).
        return jnp.real(jnp.einsum("jab,bc,jcd,ad->", s1, x, s2, jnp.conj(x)))
    pi = x[None]
    if r1.quad_rows is not None:
        pi = jnp.einsum(
            "jqa,jab->jqb",
            r1.quad_rows.astype(x.dtype),
            jnp.broadcast_to(pi, (r1.quad_rows.shape[0],) + x.shape),
        )
    if r2.quad_rows is not None:
        pi = jnp.einsum(
            "jqb,jrb->jqr",
            jnp.broadcast_to(pi, (r2.quad_rows.shape[0],) + pi.shape[1:]),
            jnp.conj(r2.quad_rows.astype(x.dtype)),
        )
    pi = jnp.broadcast_to(pi, (s1.shape[0],) + pi.shape[1:])
    return jnp.real(jnp.einsum("jab,jbc,jcd,jad->", s1, pi, s2, jnp.conj(pi)))


def h2_inner_product(r1: Realisation, r2: Realisation, x: Array) -> Array:
    """`⟨Σ₁, Σ₂⟩_h2` (without feedthrough) from the cross Gramian `X = Σ_k x₁ₖ x₂ₖᴴ`."""
    linear = jnp.real(
        jnp.einsum("ia,ab,ib->", r1.c.astype(x.dtype), x, jnp.conj(r2.c.astype(x.dtype)))
    )
    return linear + _quadratic_pairing(r1, r2, x)


def _conjugate_pair_products(u: Array, v: Array) -> tuple[Array, Array]:
    """`(u vᴴ, u vᵀ)` for complex `u` (n, k), `v` (r, k), from one real matrix product.

    With `u = U₁ + iU₂`, `v = V₁ + iV₂` the four real blocks `UₐVᵦᵀ` give both products:
    `u vᴴ = (U₁V₁ᵀ + U₂V₂ᵀ) + i(U₂V₁ᵀ − U₁V₂ᵀ)`, `u vᵀ = (U₁V₁ᵀ − U₂V₂ᵀ) + i(U₂V₁ᵀ + U₁V₂ᵀ)`:
    `4nkr` real multiply-adds for both, where two complex products would cost `8nkr`.
    """
    n, r = u.shape[0], v.shape[0]
    u2 = jnp.concatenate([jnp.real(u), jnp.imag(u)], axis=0)
    v2 = jnp.concatenate([jnp.real(v), jnp.imag(v)], axis=0)
    g = u2 @ v2.T
    rr, ri, ir, ii = g[:n, :r], g[:n, r:], g[n:, :r], g[n:, r:]
    return lax.complex(rr + ii, ir - ri), lax.complex(rr - ii, ir + ri)


def _diagonal_kernel(lam: Array, nu: Array, discrete: bool, horizon) -> Array:
    """`K_ij = Σ_k λ_iᵏ ν̄_jᵏ` (discrete) or `∫ e^{(λ_i + ν̄_j)t} dt` (continuous), time-limited.

    The closed-form solution of the diagonal Stein/Sylvester equation `X = ΛXN̄ + E` is
    `X = K ∘ E`; with a horizon, `K ∘ (1 − φ_i ψ̄_j)` with `φ = λ^L` (or `e^{λT}`).
    """
    lam, nu_bar = lam[:, None], jnp.conj(nu)[None, :]
    kernel = 1 / (1 - lam * nu_bar) if discrete else -1 / (lam + nu_bar)
    if horizon is not None:
        phi = lam**horizon if discrete else jnp.exp(lam * horizon)
        psi = nu_bar**horizon if discrete else jnp.exp(nu_bar * horizon)
        kernel = kernel * (1 - phi * psi)
    return kernel


def _is_lti_diagonal(sys: AbstractSystem) -> TypeGuard[DiagonalLQOSystem]:
    return isinstance(sys, DiagonalLQOSystem) and sys.F is None


def diagonal_inner_value(s1: DiagonalLQOSystem, s2: DiagonalLQOSystem, horizon) -> Array:
    """The value of `diagonal_inner_product` alone, without its checks (for inner loops)."""
    dtype = common_inexact_dtype(s1.B, s2.B)
    lam, mu = s1.poles.astype(dtype), s2.poles.astype(dtype)
    bb_h, bb_t = _conjugate_pair_products(s1.B.astype(dtype), s2.B.astype(dtype))
    cc_h, cc_t = _conjugate_pair_products(s1.C.T.astype(dtype), s2.C.T.astype(dtype))
    same = _diagonal_kernel(lam, mu, s1.is_discrete, horizon)
    flipped = _diagonal_kernel(lam, jnp.conj(mu), s1.is_discrete, horizon)
    return 0.5 * jnp.real(jnp.sum(bb_h * cc_h * same) + jnp.sum(bb_t * cc_t * flipped))


def diagonal_inner_product(s1: DiagonalLQOSystem, s2: DiagonalLQOSystem, horizon):
    """`⟨Σ₁, Σ₂⟩_h2` (without feedthrough) of two LTI complex-diagonal systems, and a result code.

    The fast path of [`jaxlqo.h2_error`][] and [`jaxlqo.h2_norm`][]. With the realisation of
    `_realisation.py` (state `[x; x̄]`, output `½[C, C̄]`) the cross Gramian has the blocks
    `X₁₁ = (B B̂ᴴ) ∘ K(λ, μ)`, `X₁₂ = (B B̂ᵀ) ∘ K(λ, μ̄)` (and their conjugates), so

        ⟨Σ₁, Σ₂⟩ = ½ Re Σ_ij [(B B̂ᴴ)_ij (Cᵀ Ĉ̄)_ij K(λ, μ)_ij + (B B̂ᵀ)_ij (Cᵀ Ĉ)_ij K(λ, μ̄)_ij],

    `O((m + p) n r)` with no `2n × 2r` Gramian, no `p × n × r` intermediate, and no solver. The
    closed form is differentiated directly (it is an explicit expression, not a factorisation).
    """
    value = diagonal_inner_value(s1, s2, horizon)
    dtype = common_inexact_dtype(s1.B, s2.B)
    lam, mu = s1.poles.astype(dtype), s2.poles.astype(dtype)
    # The same checks as the solver path: finite input, a solvable equation.
    lam_c, mu_c = lax.stop_gradient((lam, jnp.concatenate([jnp.conj(mu), mu])))
    solvable = eigenvalues_separated(lam_c, mu_c, s1.is_discrete)
    finite = jnp.array(True)
    for x in (s1.poles, s1.B, s1.C, s2.poles, s2.B, s2.C):
        finite = finite & jnp.isfinite(lax.stop_gradient(x)).all()
    result = RESULTS.where(solvable, RESULTS.successful, RESULTS.singular_equation)
    return value, RESULTS.where(finite, result, RESULTS.nonfinite_input)


# --- Accurate error evaluation: the error system's modal sum of squares -------------------
#
# The three-term form `‖Σ‖² + ‖Σ̂‖² − 2⟨Σ, Σ̂⟩` subtracts numbers of size ‖Σ‖², so its absolute
# error is ~ε κ ‖Σ‖² (κ ≈ 1/(1 − ρ²): the kernel `1/(1 − λμ̄)` itself is only known to
# `ε/|1 − λμ̄|`), and an error `e` is resolved only down to `√(ε κ) ‖Σ‖`. For LTI systems the
# error system `(diag ν, [b; b̂], [c, −ĉ])` with the modal realisations stacked (poles
# `ν = [λ; μ]`) is again diagonal, and
#
#     J = Σ_k ‖Σ_a c_a b_aᵀ ν_aᵏ‖²_F = Σ_ab ⟨x_a, x_b⟩ K_ab,   K_ab = 1/(1 − ν_a ν̄_b)
#
# with `x_a = c_a b_aᵀ` (continuous time: `K_ab = −1/(ν_a + ν̄_b)`). `K` is the Gram matrix of
# the kernels `1/(1 − ν̄_a z)`, whose Cholesky factor is known in closed form: orthonormalising
# them in the order `s_1, s_2, …` gives the Takenaka–Malmquist functions, so `K = G Gᴴ` with
#
#     G_al = √(1 − |s_l|²) / (1 − ν_a s̄_l) · Π_{i<l} (ν_a − s_i) / (1 − ν_a s̄_i)
#
# (continuous: `√(−2 Re s_l) / (−ν_a − s̄_l) · Π_{i<l} (ν_a − s_i) / (ν_a + s̄_i)`), for any
# order and repeated poles alike (a repeated pole's later factor is 0). Then
#
#     J = Σ_l ‖Y_l‖²_F,   Y_l = Σ_a G_al c_a b_aᵀ = C diag(G_:l) B − Ĉ diag(Ĝ_:l) B̂,
#
# a sum of squares of the *small* matrices `Y_l`: the rounding error of `√J` is
# `~ε Σ_a ‖c_a‖‖b_a‖ √K_aa` (ε times the sum of the modes' h2 norms) instead of `√(ε κ) ‖Σ‖`.
# Every factor of `G` has a relative error of a few ε: `ν_a − s_i` is one rounding of an
# exact difference, and `1 − ν_a s̄_i` (which cancels for poles near the unit circle) is
# computed from exact partial products and compensated sums (Dekker; Ogita, Rump, Oishi).
# Cost `O((n + r)² p m)`, against `O((n + r)² (p + m))` for the three-term form; it is used
# where `p m ≤ 2 (p + m)`.
#
# References: Takenaka (1925), Malmquist (1926); Ninness, Gustafsson, "A unifying construction
# of orthonormal bases for system identification", IEEE TAC 42 (1997); Dekker (1971); Ogita,
# Rump, Oishi, "Accurate sum and dot product", SIAM J. Sci. Comput. 26 (2005).


class _Modes(NamedTuple):
    """An LTI realisation in modal coordinates: `y = Σ_a c_a w_a`, `w_a' = ν_a w_a + b_a u`."""

    poles: Array  # (n,) complex
    b: Array  # (n, m)
    c: Array  # (p, n)
    ok: Array  # whether the modal basis is well conditioned (a dense `A`: `κ(V)`)


def _split(a: Array) -> tuple[Array, Array]:
    """`a = high + low`, `high` the leading half of the bits of `a` (a bit mask), `low` the rest.

    Products of halves are then exact (one bit short for `low · low` in float64, an error of
    `2⁻¹⁰⁶ |a b|`). The split uses integer masking, not Veltkamp's `(c − (c − a))`: XLA may
    contract a multiply and an add into an FMA, which breaks Veltkamp's split but not this
    one (every product formed here is exact anyway, so an FMA changes nothing).
    """
    finfo = jnp.finfo(a.dtype)
    uint = {64: jnp.uint64, 32: jnp.uint32}[finfo.bits]
    dropped = (finfo.nmant + 2) // 2
    mask = jnp.array(~((1 << dropped) - 1) & ((1 << finfo.bits) - 1), dtype=uint)
    high = lax.bitcast_convert_type(lax.bitcast_convert_type(a, uint) & mask, a.dtype)
    return high, a - high


def _two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """`a + b = s + e` exactly (Knuth), `s = fl(a + b)`."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def _compensated_sum(terms) -> Array:
    """`Σ terms` to about ε relative of the result plus `ε² Σ|terms|` (Ogita–Rump–Oishi Sum2)."""
    total, carry = terms[0], jnp.zeros_like(terms[0])
    for t in terms[1:]:
        total, error = _two_sum(total, t)
        carry = carry + error
    return total + carry


def _exact_products(a: Array, b: Array) -> list[Array]:
    """Four exactly representable numbers summing to `a b` (to `2⁻¹⁰⁶ |a b|`), largest first."""
    a1, a2 = _split(a)
    b1, b2 = _split(b)
    return [a1 * b1, a1 * b2, a2 * b1, a2 * b2]


def _one_minus_products(nu: Array, s: Array) -> Array:
    """`1 − ν_a s̄_l` for all pairs, to a few ε relative (no cancellation near the unit circle)."""
    u, v = jnp.real(nu)[:, None], jnp.imag(nu)[:, None]
    x, y = jnp.real(s)[None, :], jnp.imag(s)[None, :]
    u, v, x, y = jnp.broadcast_arrays(u, v, x, y)
    # ν s̄ = (ux + vy) + i(vx − uy): Re(1 − ν s̄) = 1 − ux − vy, Im = uy − vx.
    ux, vy, uy, vx = (_exact_products(p, q) for p, q in ((u, x), (v, y), (u, y), (v, x)))
    # The constant 1 behind an optimisation barrier: XLA's simplifier otherwise folds the
    # compensated sum's `(1 + t) − 1` patterns (seen under jit: 1e-12 relative instead of 0).
    one = lax.optimization_barrier(jnp.ones_like(u))
    re = [one] + [-t for pair in zip(ux, vy, strict=True) for t in pair]
    im = [t for pair in zip(uy, vx, strict=True) for t in (pair[0], -pair[1])]
    return lax.complex(_compensated_sum(re), _compensated_sum(im))


def _malmquist_factor(nu: Array, discrete: bool) -> Array:
    """`G` with `G Gᴴ = K`, `K_ab = 1/(1 − ν_a ν̄_b)` (continuous: `−1/(ν_a + ν̄_b)`); see above."""
    den = _one_minus_products(nu, nu) if discrete else -(nu[:, None] + jnp.conj(nu)[None, :])
    scale = jnp.sqrt(jnp.maximum(jnp.real(jnp.diagonal(den)), 0.0))
    ratio = (nu[:, None] - nu[None, :]) / den  # Blaschke factors φ_l(ν_a)
    if not discrete:
        ratio = -ratio
    ones = jnp.ones_like(ratio[:, :1])
    products = jnp.cumprod(jnp.concatenate([ones, ratio[:, :-1]], axis=1), axis=1)
    return scale.astype(den.dtype)[None, :] * products / den


def lti_modes(r: Realisation, *, max_condition=None) -> _Modes:
    """The modal form of an LTI realisation (a dense `A` by `eig`, which is not differentiated).

    `ok` is false where the eigenvector basis `V` has `κ_F(V)/n > max_condition`
    (default `ε^(-1/3)`): the modal form is then too inaccurate to improve on the three-term
    form, which is used instead.
    """
    a, b, c = lax.stop_gradient((r.a, r.b, r.c))
    cdtype = complex_dtype(jnp.result_type(a.dtype))
    if a.ndim == 1:
        return _Modes(a.astype(cdtype), b.astype(cdtype), c.astype(cdtype), jnp.array(True))
    finite = jnp.isfinite(a).all()
    mu, v = jnp.linalg.eig(jnp.where(finite, a, jnp.zeros_like(a)))
    v_inv = jnp.linalg.inv(v)
    cond = jnp.linalg.norm(v) * jnp.linalg.norm(v_inv) / a.shape[0]
    if max_condition is None:
        max_condition = jnp.finfo(a.dtype).eps ** (-1 / 3)
    ok = finite & jnp.isfinite(cond) & (cond <= max_condition)
    return _Modes(mu, v_inv @ b.astype(cdtype), c.astype(cdtype) @ v, ok)


def _mode_residues(modes: _Modes, g: Array, weights=None) -> Array:
    """`Y_l = Σ_a G_al c_a b_aᵀ` for the rows `g` (n, N) of `G` that belong to `modes`."""
    b = modes.b if weights is None else weights[:, None] * modes.b
    t = jnp.einsum("pa,al->pla", modes.c, g)
    return jnp.einsum("pla,aq->lpq", t, b)


def accurate_error_squared(f: _Modes, g: _Modes, discrete: bool, horizon) -> Array:
    """`‖Σ − Σ̂‖²` (no feedthrough) of two LTI systems in modal form, as a sum of squares.

    With a horizon, `J_L = J(E) − J(E_L)`, `E_L` the error system started at lag `L` (inputs
    `b_a → ν_aᴸ b_a`, continuous: `e^{ν_a T} b_a`): both terms are accurate sums of squares.
    Valid for stable systems only (the caller falls back otherwise).
    """
    dtype = common_inexact_dtype(f.poles, g.poles, f.b, g.b, f.c, g.c)
    f = _Modes(f.poles.astype(dtype), f.b.astype(dtype), f.c.astype(dtype), f.ok)
    g = _Modes(g.poles.astype(dtype), g.b.astype(dtype), g.c.astype(dtype), g.ok)
    nu = jnp.concatenate([f.poles, g.poles])
    factor = _malmquist_factor(nu, discrete)
    n = f.poles.shape[0]
    rows_f, rows_g = factor[:n], factor[n:]
    # Y = Y_fom − Y_rom from two separate sums, so that identical systems give exactly 0.
    y = _mode_residues(f, rows_f) - _mode_residues(g, rows_g)
    squared = jnp.sum(jnp.real(y) ** 2 + jnp.imag(y) ** 2)
    if horizon is not None:

        def shift(p):
            return p**horizon if discrete else jnp.exp(p * horizon)

        tail = _mode_residues(f, rows_f, shift(f.poles)) - _mode_residues(g, rows_g, shift(g.poles))
        squared = squared - jnp.sum(jnp.real(tail) ** 2 + jnp.imag(tail) ** 2)
    return squared


def use_accurate_form(fom: AbstractSystem, rom: AbstractSystem, accurate, caller: str) -> bool:
    """Static dispatch: the sum-of-squares form for LTI pairs where its cost is moderate.

    `accurate=None`: used when both are LTI, `p m ≤ 2 (p + m)` (at most twice the cost of the
    three-term form: any single-input or single-output pair, up to 4 × 4), and (for a dense
    system) on the CPU, where `eig` is available. `True` forces it for any LTI pair.
    """
    lti = fom.is_lti and rom.is_lti
    dense = fom.state_matrix.ndim == 2 or rom.state_matrix.ndim == 2  # `eig` on the CPU only
    if accurate is None:
        small = fom.p * fom.m <= 2 * (fom.p + fom.m)
        return lti and small and (not dense or jax.default_backend() == "cpu")
    if not isinstance(accurate, bool):
        raise TypeError(f"{caller}: `accurate` must be None, True or False; got {accurate!r}.")
    if accurate and not lti:
        raise ValueError(
            f"{caller}: `accurate=True` is implemented for LTI systems (no quadratic output); "
            "pass `accurate=None` or `False` for LQO systems."
        )
    return accurate


def with_accurate_value(three_term: Array, accurate_value: Array, ok: Array) -> Array:
    """The three-term value and gradient, its value replaced by `accurate_value` where `ok`.

    The gradient is that of the three-term form (an explicit, differentiable expression; its
    rounding error is relative to `‖Σ‖ e`, not to `e²`), the value the accurate one.
    """
    target = jnp.where(ok, lax.stop_gradient(accurate_value), lax.stop_gradient(three_term))
    return three_term + (target - lax.stop_gradient(three_term))


def feedthrough_term(d: Array, discrete: bool) -> Array:
    """`‖D‖²_F` in discrete time; in continuous time 0 if `D = 0` and `inf` otherwise."""
    squared = jnp.sum(d * d)
    if discrete:
        return squared
    return jnp.where(squared == 0, 0.0, jnp.inf).astype(squared.dtype)


def safe_sqrt(x: Array) -> Array:
    # Double-where: sqrt has an infinite derivative at 0, which would poison the gradient of a
    # zero error (or norm) with NaN. Its subgradient 0 is used there instead.
    positive = x > 0
    # NaN (from non-finite input) must propagate, not read as a zero norm.
    return jnp.where(
        positive, jnp.sqrt(jnp.where(positive, x, 1.0)), jnp.where(jnp.isnan(x), x, 0.0)
    )


def _finish(value, result, stable, horizon, throw, systems=(), spectra=None):
    """`finish` for a norm: NaN is `nonfinite_input`, and an unstable system's norm is `inf`."""
    result = RESULTS.where(
        (result == RESULTS.successful) & jnp.isnan(value), RESULTS.nonfinite_input, result
    )
    if horizon is None:
        value = jnp.where(stable, value, jnp.inf)
    # The result codes of `systems` (NaN / inf anywhere in them, even where it would only give
    # `inf`) and of instability are set by `finish`.
    return finish(value, result, stable, horizon, throw, systems, spectra)


@overload
def h2_norm(
    sys: AbstractSystem, *, horizon=None, throw: Literal[True] = True
) -> Real[Array, ""]: ...


@overload
def h2_norm(sys: AbstractSystem, *, horizon=None, throw: Literal[False]) -> Solution: ...


@overload
def h2_norm(
    sys: AbstractSystem, *, horizon=None, throw: bool = True
) -> Real[Array, ""] | Solution: ...


@compiled
def h2_norm(sys: AbstractSystem, *, horizon=None, throw: bool = True) -> Real[Array, ""] | Solution:
    r"""The h2 norm of an LTI or LQO system (derivation: docs/h2.md).

    $$\|\Sigma\|_{h_2}^2 = \sum_{i} \|C A^i B\|_F^2 + \sum_j \sum_{i_1, i_2}
      \|B^\top (A^\top)^{i_1} M_j A^{i_2} B\|_F^2 = \operatorname{tr}(C P C^\top)
      + \sum_j \operatorname{tr}(M_j P M_j P)\;(+\|D\|_F^2),$$

    with `P` the controllability Gramian (continuous time: integrals instead of sums). With
    `horizon` the sums run over lags `i < L` (integrals over `[0, T]`) and `P` becomes `P_L`.

    **Arguments:**

    - `sys`: a real [`jaxlqo.LQOSystem`][] or a [`jaxlqo.DiagonalLQOSystem`][].
    - `horizon`: keyword-only; `None` (infinite), a number of steps (Python int, discrete
        time) or a time `T > 0` (continuous time). Time-limited norms of unstable systems
        are finite and returned.
    - `throw`: keyword-only. With `True` (default) an unstable system (infinite horizon),
        non-finite input or a singular Gramian equation raises; with `False` a
        [`jaxlqo.Solution`][] is returned whose value is `inf` for an unstable system.

    See the module docstring for the feedthrough (`D`) policy.
    """
    caller = "h2_norm"
    check_system(sys, caller)
    horizon = check_horizon(infinite_horizon_as_none(horizon), sys.is_discrete, caller)
    if _is_lti_diagonal(sys):
        value, result = diagonal_inner_product(sys, sys, horizon)
        squared = value + feedthrough_term(sys.D, sys.is_discrete)
        stable = is_stable_matrix(sys.poles, sys.is_discrete)
        return _finish(safe_sqrt(squared), result, stable, horizon, throw, (sys,))
    r = sys.realisation(caller)
    p, _, result = realisation_gramians(r, horizon, observability=False)
    squared = h2_inner_product(r, r, p) + feedthrough_term(r.d, r.discrete)
    stable = is_stable_matrix(r.a, r.discrete)
    return _finish(safe_sqrt(squared), result, stable, horizon, throw, (sys,))


def check_system_pair(fom: AbstractSystem, rom: AbstractSystem, caller: str) -> None:
    check_system(fom, caller, "fom")
    check_system(rom, caller, "rom")
    if fom.is_discrete != rom.is_discrete:
        kinds = {True: "discrete", False: "continuous"}
        raise ValueError(
            f"{caller}: `fom` is {kinds[fom.is_discrete]}-time and `rom` is "
            f"{kinds[rom.is_discrete]}-time; compare systems of the same kind."
        )
    if fom.dt != rom.dt:
        raise ValueError(
            f"{caller}: `fom` has dt={fom.dt} but `rom` has dt={rom.dt}; both must have the "
            "same sampling step (build `rom` with `dt=fom.dt`, or resample one of them)."
        )
    if fom.m != rom.m:
        raise ValueError(f"{caller}: `fom` has {fom.m} inputs but `rom` has {rom.m}.")
    if fom.p != rom.p:
        raise ValueError(f"{caller}: `fom` has {fom.p} outputs but `rom` has {rom.p}.")


def _fom_self_term(fom: AbstractSystem, fom_norm_squared) -> Array:
    """`⟨Σ, Σ⟩` without feedthrough from a given `‖Σ‖²` (discrete time: minus `‖D‖²_F`)."""
    d = fom.D
    squared = jnp.asarray(fom_norm_squared)
    if jnp.iscomplexobj(squared) or squared.shape != ():
        raise ValueError(
            "h2_error: `fom_norm_squared` must be a real scalar, e.g. "
            f"`lqo.h2_norm(fom) ** 2`; got dtype {squared.dtype} and shape {squared.shape}."
        )
    squared = squared.astype(jnp.finfo(d.dtype).dtype)
    return squared - jnp.sum(d * d) if fom.is_discrete else squared


def infinite_horizon_as_none(horizon):
    """`horizon=inf` (a Python or NumPy float) means the infinite horizon, `None`."""
    if isinstance(horizon, (float, np.floating)) and horizon == np.inf:
        return None
    return horizon


def h2_error_squared(fom, rom, *, horizon=None, fom_norm_squared=None, accurate=None):
    """`(‖Σ − Σ̂‖²_h2, result, both stable)`: the building block of [`jaxlqo.h2_error`][]."""
    squared, result, stable, _ = _error_squared_and_spectra(
        fom, rom, horizon=horizon, fom_norm_squared=fom_norm_squared, accurate=accurate
    )
    return squared, result, stable


def _error_squared_and_spectra(fom, rom, *, horizon, fom_norm_squared, accurate):
    """`h2_error_squared` and the two systems' eigenvalues where it computed them (else `None`)."""
    caller = "h2_error"
    spectra = None
    check_system_pair(fom, rom, caller)
    horizon = check_horizon(infinite_horizon_as_none(horizon), fom.is_discrete, caller)
    squared, result = _three_term_error_squared(fom, rom, horizon, fom_norm_squared)
    if use_accurate_form(fom, rom, accurate, caller):
        f, g = lti_modes(fom.realisation(caller)), lti_modes(rom.realisation(caller))
        # The modal forms' eigenvalues decide stability too: one `eig` per dense system, not
        # an `eig` for the modes and an `eigvals` for the check (n = 48: one 48 × 48 `geev`).
        stable = is_stable_matrix(f.poles, fom.is_discrete)
        stable = stable & is_stable_matrix(g.poles, rom.is_discrete)
        spectra = (f.poles, g.poles)
        value = accurate_error_squared(f, g, fom.is_discrete, horizon)
        squared = with_accurate_value(squared, value, f.ok & g.ok & stable)
    else:
        stable = is_stable(fom) & is_stable(rom)
    d_err = fom.D - rom.D.astype(fom.D.dtype)
    squared = jnp.maximum(squared, 0.0) + feedthrough_term(d_err, fom.is_discrete)
    return squared, result, stable, spectra


def _three_term_error_squared(fom, rom, horizon, fom_norm_squared):
    """`(‖Σ‖² + ‖Σ̂‖² − 2⟨Σ, Σ̂⟩, result)`, without feedthrough (not clipped)."""
    caller = "h2_error"
    if _is_lti_diagonal(fom) and _is_lti_diagonal(rom):
        # Fast path: closed forms, `O((m + p) n r)`, never a Gramian (see diagonal_inner_product).
        pairs = ((fom, fom),) if fom_norm_squared is None else ()
        pairs = pairs + ((rom, rom), (fom, rom))
        outs = [diagonal_inner_product(s1, s2, horizon) for s1, s2 in pairs]
        terms, results = [o[0] for o in outs], [o[1] for o in outs]
        fom_term = terms[0] if fom_norm_squared is None else _fom_self_term(fom, fom_norm_squared)
        squared = fom_term + terms[-2] - 2 * terms[-1]
        return squared, first_failure(*results)
    r1, r2 = fom.realisation(caller), rom.realisation(caller)
    dtype = common_inexact_dtype(r1.b, r2.b)
    terms, results = [], []
    # All three terms go through the same (Sylvester) path, so that for identical systems they
    # are computed identically and cancel exactly: the error of a system to itself is 0.
    pairs = ((r1, r1), (r2, r2), (r1, r2)) if fom_norm_squared is None else ((r2, r2), (r1, r2))
    for s1, s2 in pairs:
        rhs = s1.b.astype(dtype) @ s2.b.astype(dtype).conj().T
        x, res = solve_gramian_equation(s1.a, s2.a, rhs, s1.discrete, horizon, same=False)
        terms.append(h2_inner_product(s1, s2, x))
        results.append(res)
    fom_term = terms[0] if fom_norm_squared is None else _fom_self_term(fom, fom_norm_squared)
    squared = fom_term + terms[-2] - 2 * terms[-1]
    return squared, first_failure(*results)


@overload
def h2_error(
    fom: AbstractSystem,
    rom: AbstractSystem,
    *,
    horizon=None,
    throw: Literal[True] = True,
    fom_norm_squared=None,
    accurate=None,
) -> Real[Array, ""]: ...


@overload
def h2_error(
    fom: AbstractSystem,
    rom: AbstractSystem,
    *,
    horizon=None,
    throw: Literal[False],
    fom_norm_squared=None,
    accurate=None,
) -> Solution: ...


@overload
def h2_error(
    fom: AbstractSystem,
    rom: AbstractSystem,
    *,
    horizon=None,
    throw: bool = True,
    fom_norm_squared=None,
    accurate=None,
) -> Real[Array, ""] | Solution: ...


@compiled
def h2_error(
    fom: AbstractSystem,
    rom: AbstractSystem,
    *,
    horizon=None,
    throw: bool = True,
    fom_norm_squared=None,
    accurate=None,
) -> Real[Array, ""] | Solution:
    r"""The h2 norm of the error system, $\|\Sigma - \hat\Sigma\|_{h_2}$ (docs/h2.md).

    $$J = \|\Sigma-\hat\Sigma\|^2 = \langle\Sigma,\Sigma\rangle
      + \langle\hat\Sigma,\hat\Sigma\rangle - 2\langle\Sigma,\hat\Sigma\rangle,\quad
      \langle\Sigma,\hat\Sigma\rangle = \operatorname{tr}(C X \hat C^\top)
      + \sum_j \operatorname{tr}(M_j X \hat M_j X^\top),\quad
      X = A X \hat A^\top + B \hat B^\top .$$

    **Method.** Only `n×n`, `n×r` and `r×r` equations are solved (never the `(n+r)` error
    system); for two diagonal systems every solve is a closed form, `O(n r)`. The three inner
    products are computed by one code path, so `h2_error(sys, sys)` is exactly 0, and `J` is
    clipped at 0 before the square root. Near `Σ̂ = Σ` the difference of inner products loses
    accuracy to cancellation: the error is resolved down to about `√(ε κ) ‖Σ‖` (`κ ≈
    1/(1 − ρ²)`; ≈1.5e-8 relative in float64 for well-damped systems), below which it reads as
    ~0. The square root uses the double-`where` trick, so the gradient is finite (0) at zero
    error.

    **Small errors.** For LTI pairs (see `accurate`) the *value* is instead the error system's
    modal sum of squares `Σ_l ‖Σ_a G_al c_a b_aᵀ‖²_F`, `G` the closed-form (Takenaka–Malmquist)
    Cholesky factor of the stacked poles' Cauchy kernel: accurate to about `ε` times the sum of
    the modes' h2 norms (diagonal systems: ~5e-17 ‖Σ‖; dense ones through `eig`: ~1e-16 to
    1e-13 ‖Σ‖ for poles near the unit circle; CDplayer after a ZOH, e = 2.8e-6 ‖Σ‖: 5e-11
    relative). The gradient stays that of the three-term form. See docs/h2.md.

    **Arguments:**

    - `fom`, `rom`: real dense or complex-diagonal systems of any orders (mixed is fine), with
        the same inputs, outputs and time domain (`dt`).
    - `horizon`, `throw`: as for [`jaxlqo.h2_norm`][]; an unstable `fom` or `rom` gives `inf`.
    - `fom_norm_squared`: keyword-only; `None` (default) or the precomputed constant
        `‖Σ‖²_h2 = lqo.h2_norm(fom, horizon=horizon) ** 2`, which then is not recomputed.
        In a training or reduction loop over the `rom` only, compute it once outside the
        loss: the value is the same and the gradient with respect to `rom` is unaffected.
        (A gradient with respect to `fom` then misses the `‖Σ‖²` term: pass `None` there.)
        In continuous time with `D ≠ 0`, where `h2_norm(fom)` is infinite, pass the squared
        norm of `fom` with `D = 0`. (The accurate value does not use it; the gradient does.)
    - `accurate`: keyword-only; `None` (default) takes the value from the error system's sum
        of squares (above) when both systems are LTI, `p m ≤ 2 (p + m)` (its cost is
        `O((n + r)² p m)` against `O((n + r)² (p + m))`) and, for a dense system, on the CPU
        (`eig`); it falls back to the three-term value where a system is unstable or a dense
        `A` has an ill-conditioned eigenvector basis. `True` forces it for any LTI pair,
        `False` keeps the three-term form.

    !!! tip "Fast path"

        For two LTI [`jaxlqo.DiagonalLQOSystem`][]s (S4D / S5 / LRU layers) every term is a
        closed form costing `O((m + p) n r)`: no Gramian is formed. With
        `fom_norm_squared` hoisted, value and gradient of the error of all six layers of an
        S5-IMDb-sized model (256 channels, 192 → 16 states) take a few milliseconds on a CPU
        (`python -m benchmarks`):

        ```python
        norms2 = jax.vmap(lqo.h2_norm)(foms) ** 2            # once
        loss = lambda roms: jnp.sum(jax.vmap(
            lambda f, r, n2: lqo.h2_error(f, r, fom_norm_squared=n2) ** 2)(foms, roms, norms2))
        ```
    """
    horizon = infinite_horizon_as_none(horizon)
    squared, result, stable, spectra = _error_squared_and_spectra(
        fom, rom, horizon=horizon, fom_norm_squared=fom_norm_squared, accurate=accurate
    )
    return _finish(safe_sqrt(squared), result, stable, horizon, throw, (fom, rom), spectra)


def h2_error_gradient(fom: AbstractSystem, rom: LQOSystem) -> LQOSystem:
    r"""The analytic gradient of $J = \|\Sigma - \hat\Sigma\|_{h_2}^2$ with respect to a dense rom.

    Discrete time (docs/gradient.md), with `X = A X Âᵀ + B B̂ᵀ`, `P̂ = Â P̂ Âᵀ + B̂ B̂ᵀ` and

    $$\tilde Q = \hat A^\top \tilde Q \hat A + \hat C^\top \hat C
      + 2\sum_j \hat M_j \hat P \hat M_j,
      \qquad \tilde Y = A^H \tilde Y \hat A + C^H \hat C + 2 \sum_j M_j X \hat M_j,$$

    $$\nabla_{\hat A} J = 2(\tilde Q \hat A \hat P - \operatorname{Re}\tilde Y^H A X),\;
      \nabla_{\hat B} J = 2(\tilde Q \hat B - \operatorname{Re}\tilde Y^H B),\;
      \nabla_{\hat C} J = 2(\hat C \hat P - \operatorname{Re} C X),\;
      \nabla_{\hat M_j} J = 2(\hat P \hat M_j \hat P - \operatorname{Re} X^H M_j X),$$

    and `∇_D̂ J = 2(D̂ − D)`. Continuous time uses the Lyapunov/Sylvester forms of the same
    equations and `∇_Â J = 2(Q̃ P̂ − Re Ỹᴴ X)`. The `fom` may be dense or complex-diagonal
    (through its realisation, `A`, `B`, `C`, `M` above are complex). Infinite horizon only; for
    time-limited objectives differentiate [`jaxlqo.h2_error`][] with `jax.grad`, which is exact.

    **Returns:** an [`jaxlqo.LQOSystem`][] whose fields hold the gradients.
    """

    caller = "h2_error_gradient"
    if not isinstance(rom, LQOSystem) or jnp.iscomplexobj(rom.A):
        raise TypeError(
            f"{caller}: `rom` must be a real dense LQOSystem; got {type(rom).__name__}."
        )
    check_system_pair(fom, rom, caller)
    r1, r2 = fom.realisation(caller), rom.realisation(caller)
    disc = r1.discrete
    dtype = common_inexact_dtype(r1.b, r2.b)
    a_hat, b_hat, c_hat, m_hat = rom.A, rom.B, rom.C, rom.M
    x, res_x = solve_gramian_equation(
        r1.a, a_hat, r1.b @ b_hat.T.astype(r1.b.dtype), disc, None, same=False
    )
    # One factorisation of Â serves P̂ and, transposed, Q̃ (the equation in Âᵀ).
    rom_state = factorise(a_hat, discrete=disc) if a_hat.shape[0] > 0 else None
    p_hat, res_p = solve_gramian_equation(
        a_hat, a_hat, b_hat @ b_hat.T, disc, None, same=True, state=rom_state
    )

    source_q = c_hat.T @ c_hat
    source_y = r1.c.conj().T @ c_hat.astype(dtype)
    grad_m = None
    if m_hat is not None:
        source_q = source_q + 2 * jnp.einsum("jab,bc,jcd->ad", m_hat, p_hat, m_hat)
        if r1.quad_core is not None:
            if r1.quad_rows is None:
                mx = jnp.einsum("jab,bc->jac", r1.quad_core.astype(dtype), x)  # M_j X
            else:
                w, s = r1.quad_rows.astype(dtype), r1.quad_core.astype(dtype)
                mx = jnp.einsum("jqa,jqr,jrb,bc->jac", jnp.conj(w), s, w, x)
            source_y = source_y + 2 * jnp.einsum("jac,jcd->ad", mx, m_hat.astype(dtype))
            x_m_x = jnp.real(jnp.einsum("ab,jac->jbc", jnp.conj(x), mx))  # Xᴴ M_j X
        else:
            x_m_x = jnp.zeros_like(m_hat)
        grad_m = 2 * (jnp.einsum("ab,jbc,cd->jad", p_hat, m_hat, p_hat) - x_m_x)

    # Q̃ solves the rom's observability-type equation; Ỹ the fom-rom one (transposed pair).
    q_t, res_q = solve_gramian_equation(
        a_hat.T,
        a_hat.T,
        source_q,
        disc,
        None,
        same=True,
        state=None if rom_state is None else rom_state.transpose(),
    )
    a1_h = r1.a.conj() if r1.a.ndim == 1 else r1.a.conj().T
    y_t, res_y = solve_gramian_equation(
        a1_h, a_hat.T.astype(dtype), source_y, disc, None, same=False
    )

    b1 = r1.b.astype(dtype)
    if disc:
        a1x = r1.a[:, None] * x if r1.a.ndim == 1 else r1.a @ x
        grad_a = 2 * (q_t @ a_hat @ p_hat - jnp.real(y_t.conj().T @ a1x))
    else:
        grad_a = 2 * (q_t @ p_hat - jnp.real(y_t.conj().T @ x))
    grad_b = 2 * (q_t @ b_hat - jnp.real(y_t.conj().T @ b1))
    grad_c = 2 * (c_hat @ p_hat - jnp.real(r1.c.astype(dtype) @ x))
    grad_d = 2 * (rom.D - r1.d.astype(rom.D.dtype)) if disc else jnp.zeros_like(rom.D)
    result = first_failure(res_x, res_p, res_q, res_y)
    stable = is_stable_matrix(r1.a, disc) & is_stable_matrix(a_hat, disc)
    result = RESULTS.where(stable, result, RESULTS.unstable)
    grads = LQOSystem(grad_a, grad_b, grad_c, grad_m, grad_d, dt=rom.dt)
    return result.error_if(grads, result != RESULTS.successful)
