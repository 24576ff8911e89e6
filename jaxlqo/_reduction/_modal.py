"""Modal (eigen-) forms: a real dense system as a complex-diagonal one, and modal truncation.

A real system `x̂_{k+1} = Â x̂_k + B̂ u_k, y = Ĉ x̂ + …` with `Â = V diag(μ) V⁻¹` decomposes into
modes `w_i = u_i x̂` (`u_i` the rows of `V⁻¹`). A conjugate pair `(μ, μ̄)` contributes
`v w + v̄ w̄ = 2 Re(v w)` to `x̂`, so it is *one* complex state of a
[`jaxlqo.DiagonalLQOSystem`][] (output `Re(c w)` with `c = 2 Ĉ v`); a real eigenvalue gives a
complex state with a real pole whose output `Re(c w) = c w` (`v u` is a real projector).
"""

import numbers

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import systems_are_finite
from .._compiled import compiled
from .._solution import RESULTS, Solution
from .._systems import DiagonalLQOSystem, LQOSystem, check_system


def mode_dominance(poles: Array, b: Array, c: Array, discrete: bool, quad_cols=None) -> Array:
    """A mode's h2 contribution estimate `(‖c_i‖ + ‖quad_i‖) ‖b_i‖ / √(1 − |λ_i|²)`.

    (Continuous time: divided by `√(2|Re λ_i|)`.)

    It is the h2 norm of the single mode `c_i b_i / (z − λ_i)`; modes of high dominance are kept.
    """
    out = jnp.linalg.norm(c, axis=0)
    if quad_cols is not None:
        out = out + quad_cols
    if discrete:
        decay = jnp.sqrt(jnp.clip(1 - jnp.abs(poles) ** 2, jnp.finfo(out.dtype).tiny))
    else:
        decay = jnp.sqrt(jnp.clip(-2 * jnp.real(poles), jnp.finfo(out.dtype).tiny))
    return out * jnp.linalg.norm(b, axis=1) / decay


def real_rows_to_complex(rows: Array, r: int) -> Array:
    """A real row `q` on `[Re w; Im w]` as the complex row `f` with `Re(f w) = q [Re w; Im w]`."""
    return lax.complex(rows[..., :r], -rows[..., r:])


def quadratic_factors(m_real: Array, r: int):
    """`F`, `G` (p, 2r, r) with `Σ_l Re(F_l w) Re(G_l w) = [Re w; Im w]ᵀ M [Re w; Im w]`.

    From the eigendecomposition `M_j = Σ_l s_l q_l q_lᵀ` (exact, `k = 2r` terms per output).
    """
    s, q = jnp.linalg.eigh(m_real)  # (p, 2r), (p, 2r, 2r) with columns q_l
    rows = jnp.swapaxes(q, -1, -2)  # (p, 2r, 2r): row l is q_l
    f = real_rows_to_complex(rows, r)
    return f, s[..., None].astype(f.dtype) * f


def eigenbasis_is_ill_conditioned(v: Array, v_inv: Array) -> Array:
    """Whether `κ(V) ≈ ‖V‖_F ‖V⁻¹‖_F / n` exceeds `1/√ε` (or `V⁻¹` is not finite).

    The modal form then represents `A + E` with `‖E‖ ≈ ε κ(V) ‖A‖` instead of `A`: beyond
    `1/√ε`, half the digits (for a Jordan block, all of them) are lost.
    """
    n = v.shape[0]
    cond = jnp.linalg.norm(v) * jnp.linalg.norm(v_inv) / n
    limit = 1 / jnp.sqrt(jnp.finfo(v.dtype).eps)
    return ~jnp.isfinite(cond) | (cond > limit)


def modal_form(sys: LQOSystem, r: int, *, check: bool = False):
    """The complex-diagonal form of a real dense system on `r` slots, with its structure.

    Returns `(diag, is_pair, alive, realified)`: `diag` keeps the `r` most dominant modes (a
    conjugate pair is one slot); `is_pair[i]` says slot `i` holds a conjugate pair (else a real
    mode, whose `b` is made real by a phase change so that `Im w ≡ 0`); `alive[i]` is false for
    slots left over when the system has fewer than `r` modes (their `b`, `c` are zero);
    `realified` (n, 2r) maps the modal state to the original one, `x̂ = S [Re w; Im w]`, so a
    real readout row `q` of `x̂` becomes the complex row `real_rows_to_complex(q S, r)`.
    Exact (same transfer function up to rounding) when all modes fit in `r` slots.
    Uses `jnp.linalg.eig` (CPU; GPU where jaxlib provides `eig`). With `check`, an
    ill-conditioned eigenvector basis (`eigenbasis_is_ill_conditioned`: a defective or nearly
    defective `A`) raises instead of returning a meaningless modal form.
    """
    a = sys.A
    mu, v = jnp.linalg.eig(a)
    u: Array = jnp.linalg.inv(v)  # (jax's jit-wrapped `inv` is untyped)
    if check:
        u = eqx.error_if(
            u,
            eigenbasis_is_ill_conditioned(v, u),
            "modal_truncation: the eigenvector basis of `sys.A` is ill-conditioned (κ(V) > 1/√ε: "
            "`A` is defective or nearly so, e.g. a Jordan block), so no accurate modal form "
            "exists. Use `lqo.balanced_truncation(sys, r)` instead (it needs no "
            "eigenvectors of `A`).",
        )
    # Exactly real, as LAPACK returns them: a (nearly) repeated real eigenvalue may come as a
    # conjugate pair with tiny imaginary parts, whose eigenvectors are not real up to a phase.
    is_real = jnp.imag(mu) == 0
    representative = is_real | (jnp.imag(mu) > 0)
    factor = jnp.where(is_real, 1.0, 2.0)
    cdtype = mu.dtype
    b_modes = u @ sys.B.astype(cdtype)  # (n, m)
    # A real mode's eigenvector is real up to a phase e^{iφ} (and its u-row up to e^{-iφ}):
    # undo it, so that b is real and the mode never excites Im w.
    lead = jnp.take_along_axis(b_modes, jnp.argmax(jnp.abs(b_modes), axis=1)[:, None], axis=1)[:, 0]
    phase = jnp.where(
        is_real & (lead != 0),
        jnp.conj(lead) / jnp.where(lead != 0, jnp.abs(lead), 1).astype(cdtype),
        1,
    )
    b_modes = jnp.where(
        is_real[:, None],
        jnp.real(b_modes * phase[:, None]).astype(cdtype),
        b_modes * phase[:, None],
    )
    v = v / phase[None, :]
    mu = jnp.where(is_real, jnp.real(mu).astype(cdtype), mu)
    c_modes = (sys.C.astype(cdtype) @ v) * factor  # (p, n)
    quad_cols = None
    if sys.M is not None:
        mv = jnp.einsum("jab,bc->jac", sys.M.astype(cdtype), v)
        quad_cols = jnp.sqrt(jnp.sum(jnp.abs(mv) ** 2, axis=(0, 1)))
    score = mode_dominance(mu, b_modes, c_modes, sys.is_discrete, quad_cols)
    score = jnp.where(representative, score, -jnp.inf)
    k = min(r, a.shape[0])
    _, idx = lax.top_k(score, k)
    alive = representative[idx]
    poles = mu[idx]
    b = jnp.where(alive[:, None], b_modes[idx], 0)
    c = jnp.where(alive[None, :], c_modes[:, idx], 0)
    # x̂ = Σ_i f_i Re(v_i w_i) = S [Re w; Im w] with S = [f Re V, −f Im V].
    vs = jnp.where(alive[None, :], v[:, idx] * factor[idx][None, :], 0)
    realified = jnp.concatenate([jnp.real(vs), -jnp.imag(vs)], axis=1)  # (n, 2k)
    f = g = None
    if sys.M is not None:
        m_w = jnp.einsum("ab,jac,cd->jbd", realified, sys.M, realified)
        f, g = quadratic_factors(0.5 * (m_w + jnp.swapaxes(m_w, -1, -2)), k)
    diag = DiagonalLQOSystem(poles, b, c, sys.D, F=f, G=g, dt=sys.dt)
    return diag, ~is_real[idx] & alive, alive, realified


def diagonalise(sys: LQOSystem, r: int) -> DiagonalLQOSystem:
    """The complex-diagonal form of a real dense system on `r` slots (see `modal_form`)."""
    return modal_form(sys, r)[0]


def diagonal_mode_dominance(sys: DiagonalLQOSystem) -> Array:
    """`mode_dominance` of each state of a diagonal system, its readout `(F, G)` included."""
    quad_cols = None
    if (fg := sys.quadratic_readout) is not None:
        f, g = fg
        quad_cols = jnp.sqrt(jnp.sum(jnp.abs(f) ** 2 + jnp.abs(g) ** 2, axis=(0, 1)))
    return mode_dominance(sys.poles, sys.B, sys.C, sys.is_discrete, quad_cols)


@compiled
def modal_truncation(sys, r: int, *, throw: bool = True) -> Solution:
    r"""Keep the `r` most dominant modes (poles) of a system.

    Dominance of mode `i` is the h2 norm of its first-order term,
    $(\|c_i\| + \|\text{quadratic readout}_i\|)\,\|b_i\| / \sqrt{1-|\lambda_i|^2}$
    (continuous: $\sqrt{2|\mathrm{Re}\,\lambda_i|}$). A [`jaxlqo.DiagonalLQOSystem`][] keeps
    `r` of its complex states. A real dense system is first brought to modal form
    (`jnp.linalg.eig`); a conjugate pair is one complex state, so the result is a
    `DiagonalLQOSystem` with `r` complex states (real McMillan degree ≤ 2r). A defective or
    nearly defective `A` (eigenvector basis with `κ(V) > 1/√ε`, e.g. a Jordan block) has no
    accurate modal form: it raises, suggesting [`jaxlqo.balanced_truncation`][].

    **Arguments:**

    - `sys`: a [`jaxlqo.DiagonalLQOSystem`][] or a real [`jaxlqo.LQOSystem`][].
    - `r`: the number of (complex) states to keep.
    - `throw`: keyword-only; raise when `sys` holds NaN or inf (else report it in `result`).

    **Returns:** a [`jaxlqo.Solution`][]: `value` is the reduced `DiagonalLQOSystem`,
    `result` is `RESULTS.successful` or `RESULTS.nonfinite_input`, and `stats["dominance"]`
    the dominance of each state of `value` (computed on `value` itself).
    """
    caller = "modal_truncation"
    check_system(sys, caller)
    if isinstance(r, numbers.Integral) and not isinstance(r, bool):
        r = int(r)
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ValueError(f"{caller}: `r` must be a positive int; got {r!r}.")
    if isinstance(sys, LQOSystem):
        rom = modal_form(sys, r, check=True)[0]
    else:
        if r > sys.n:
            raise ValueError(f"{caller}: `r` = {r} exceeds the order n = {sys.n}.")
        _, idx = lax.top_k(diagonal_mode_dominance(sys), r)
        f = None if sys.F is None else sys.F[..., idx]
        g = None if sys.G is None else sys.G[..., idx]
        rom = DiagonalLQOSystem(
            sys.poles[idx], sys.B[idx], sys.C[:, idx], sys.D, F=f, G=g, dt=sys.dt
        )
    result = RESULTS.where(systems_are_finite(sys), RESULTS.successful, RESULTS.nonfinite_input)
    if throw:
        rom = result.error_if(rom, result != RESULTS.successful)
    return Solution(rom, result, {"dominance": diagonal_mode_dominance(rom)})
