"""Square-root balanced truncation for LTI and LQO systems, infinite and time-limited."""

import numbers

import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import check_horizon, raise_if_time_domain_mixup, systems_are_finite
from .._compiled import compiled
from .._gramians import realisation_gramians
from .._linalg import is_stable_matrix, psd_sqrt_factor
from .._norms import h2_error_squared, infinite_horizon_as_none
from .._realisation import Realisation, product_core
from .._solution import RESULTS, Solution
from .._systems import AbstractSystem, DiagonalLQOSystem, LQOSystem, check_system
from ._modal import modal_form, real_rows_to_complex


def _balancing_projection(p: Array, q: Array, r: int):
    """`(T, W, σ)`: the square-root balancing bases of Gramians `P`, `Q` (real or complex).

    With `P = Z_P Z_Pᴴ`, `Q = Z_Q Z_Qᴴ` and `Z_Qᴴ Z_P = U Σ Vᴴ`:
    `T = Z_P V_r Σ_r^{-1/2}`, `W = Z_Q U_r Σ_r^{-1/2}`, so `Wᴴ T = I`.
    """
    zp, zq = psd_sqrt_factor(p), psd_sqrt_factor(q)
    u, sigma, vh = jnp.linalg.svd(zq.conj().T @ zp)
    # Truncated directions with σ = 0 would divide by zero; they carry nothing, so a
    # floor keeps the projection finite (such a rom is exact anyway).
    floor = jnp.finfo(sigma.dtype).tiny ** 0.5
    inv_sqrt = (1 / jnp.sqrt(jnp.maximum(sigma[:r], floor))).astype(zp.dtype)
    t = zp @ vh[:r].conj().T * inv_sqrt[None, :]
    w = zq @ u[:, :r] * inv_sqrt[None, :]
    return t, w, sigma


def _project(sys: LQOSystem, p: Array, q: Array, r: int):
    """Square-root balancing projection of a real dense system onto its `r` dominant states.

    With the bases of `_balancing_projection`: `Â = Wᵀ A T`, `B̂ = Wᵀ B`, `Ĉ = C T`,
    `M̂_j = Tᵀ M_j T`.
    """
    t, w, sigma = _balancing_projection(p, q, r)
    m = None if sys.M is None else jnp.einsum("ab,jac,cd->jbd", t, sys.M, t)
    rom = LQOSystem(w.T @ sys.A @ t, w.T @ sys.B, sys.C @ t, m, sys.D, dt=sys.dt)
    return (rom, t), sigma


def _complex_balanced_truncation(sys: DiagonalLQOSystem, r: int, horizon) -> DiagonalLQOSystem:
    """Balanced truncation of the complex-output system `x ↦ C x` (ignoring the `Re`), then eig.

    The complex state space is balanced with the Hermitian Gramians of `(diag λ, B, C/√2)`
    (the `1/√2` is the average share of `|Cx|²` that `Re(Cx)²` carries), the quadratic readout
    weighted by its Hermitian part. The readout rows are projected as rows, so the quadratic
    readout keeps its low-rank form: `F̂ = F T`, `Ĝ = G T`. Every eigenvalue of the complex
    `r × r` reduced matrix is one complex state: no pairing, so exactly `r` states.
    """
    rows = core = None
    if (fg := sys.quadratic_readout) is not None:
        rows = jnp.concatenate(fg, axis=-2)
        # xᴴ Wᴴ S W x = Re(conj(Fx) Gx): half of it is the Hermitian part of Re(Fx) Re(Gx).
        core = 0.5 * product_core(fg[0].shape[-2], sys.p, sys.poles.dtype)
    realisation = Realisation(
        sys.poles, sys.B, sys.C / jnp.sqrt(2.0), rows, core, sys.D, sys.is_discrete, sys.dt
    )
    p, q, _ = realisation_gramians(realisation, horizon)
    with jax.numpy_dtype_promotion("standard"):  # psd_sqrt_factor: complex eigvecs × real sqrt
        t, w, _ = _balancing_projection(p, q, r)
    a_hat = w.conj().T @ (sys.poles[:, None] * t)
    mu, v = jnp.linalg.eig(a_hat)
    tv = t @ v
    b = jnp.linalg.solve(v, w.conj().T @ sys.B)
    f = None if sys.F is None else sys.F @ tv
    g = None if sys.G is None else sys.G @ tv
    return DiagonalLQOSystem(mu, b, sys.C @ tv, sys.D, F=f, G=g, dt=sys.dt)


def _realified_to_diagonal(sys: DiagonalLQOSystem, rom: LQOSystem, t: Array, r: int):
    """The realified balanced rom (order 2r) in modal form with `r` slots.

    The quadratic readout keeps its rank: a row `f` acts on the full state as the real row
    `f̃ = [Re f, −Im f]` on `[Re x; Im x] ≈ T x̂`, and `x̂ = S [Re w; Im w]` in modal form, so
    the reduced row is `f̃ T S`, read back as a complex row on `w`.
    """
    linear = LQOSystem(rom.A, rom.B, rom.C, None, rom.D, dt=rom.dt)
    diag, _, _, realified = modal_form(linear, r)
    if sys.F is None:
        return diag

    def reduce_rows(rows):
        real_rows = jnp.concatenate([jnp.real(rows), -jnp.imag(rows)], axis=-1)
        return real_rows_to_complex(real_rows @ t @ realified, diag.n)

    return DiagonalLQOSystem(
        diag.poles, diag.B, diag.C, diag.D, F=reduce_rows(sys.F), G=reduce_rows(sys.G), dt=diag.dt
    )


def _better_of(fom, first: DiagonalLQOSystem, second: DiagonalLQOSystem, horizon):
    """The candidate with the smaller h2 error (both have the same structure after padding)."""
    err_first, _, _ = h2_error_squared(fom, first, horizon=horizon)
    err_second, _, _ = h2_error_squared(fom, second, horizon=horizon)
    keep_first = ~(err_second < err_first)  # a NaN error never wins
    return jax.tree_util.tree_map(lambda a, b: jnp.where(keep_first, a, b), first, second)


@compiled
def balanced_truncation(sys: AbstractSystem, r: int, *, horizon=None, throw: bool = True):
    r"""Square-root balanced truncation, for LTI and LQO systems, infinite or time-limited.

    Balances the controllability Gramian `P` against the (LQO) observability Gramian `Q`
    (docs/h2.md; time-limited Gramians `P_L`, `Q_L` when `horizon` is set) and keeps the `r`
    states of largest Hankel singular values $\sigma_i = \sqrt{\lambda_i(PQ)}$. For stable LTI
    systems and infinite horizon, $\|G - G_r\|_{H_\infty} \le 2\sum_{i>r}\sigma_i$ and the
    reduced system is stable.

    **Arguments:**

    - `sys`: a real [`jaxlqo.LQOSystem`][] (the result is an `LQOSystem` of order `r`) or a
        [`jaxlqo.DiagonalLQOSystem`][] (the result is a `DiagonalLQOSystem` with `r` complex
        states). For a diagonal system two candidates are built and the one with the smaller
        h2 error (in the same horizon) is returned: (a) the realified form `[Re x; Im x]`
        truncated to order `2r` and brought back to modal form (should it have real
        eigenvalues, its modes need more than `r` complex states and the least dominant are
        dropped); (b) balanced truncation of the complex state space, which always gives
        exactly `r` complex states.
    - `r`: reduced order (number of complex states for a diagonal system).
    - `horizon`: keyword-only; `None` or the time limit (see [`jaxlqo.h2_norm`][]).
    - `throw`: keyword-only; raise on an unstable system (infinite horizon) or a failed solve.

    **Returns:** a [`jaxlqo.Solution`][]: `value` is the reduced system, `result` a
    [`jaxlqo.RESULTS`][] item (`unstable` for an unstable `sys` at infinite horizon,
    `nonfinite_input`, or the solver's failure; with `throw=True` these raise instead), and
    `stats["hankel_singular_values"]` holds all Hankel singular values of `sys`.

    References: B. C. Moore (1981); A. J. Laub et al. (1987) for the square-root method;
    Benner, Goyal, Pontes Duff (2022) for LQO Gramians; Gawronski, Juang (1990) time-limited.
    """
    caller = "balanced_truncation"
    check_system(sys, caller)
    horizon = check_horizon(infinite_horizon_as_none(horizon), sys.is_discrete, caller)
    if isinstance(r, numbers.Integral) and not isinstance(r, bool):
        r = int(r)  # a NumPy integer is fine; it must be static
    if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= sys.n:
        raise ValueError(
            f"{caller}: `r` must be an int with 1 ≤ r ≤ n = {sys.n} (the order of `sys`); got "
            f"{r!r}. A reduced model has at most as many states as `sys`."
        )
    order = 2 * r if isinstance(sys, DiagonalLQOSystem) else r
    realisation = sys.realisation(caller)
    p, q, result = realisation_gramians(realisation, horizon)
    p = sys.controllability_gramian_in_dense_coordinates(p)
    q = sys.observability_gramian_in_dense_coordinates(q)
    dense = sys.to_dense()
    (rom, t), hsv = _project(dense, p, q, order)
    if isinstance(sys, DiagonalLQOSystem):
        realified = _realified_to_diagonal(sys, rom, t, r)
        rom = _better_of(sys, realified, _complex_balanced_truncation(sys, r, horizon), horizon)
    stable = is_stable_matrix(realisation.a, realisation.discrete)
    if horizon is None:
        result = RESULTS.where(stable, result, RESULTS.unstable)
    result = RESULTS.where(systems_are_finite(sys), result, RESULTS.nonfinite_input)
    if throw:
        if horizon is None:
            hsv = raise_if_time_domain_mixup(hsv, (sys,), stable)
        rom, hsv = result.error_if((rom, hsv), result != RESULTS.successful)
    return Solution(rom, result, {"hankel_singular_values": hsv})
