"""Gramians and Hankel singular values of LQO systems, infinite and time-limited.

Discrete time (continuous time replaces each Stein equation by the Lyapunov equation with the
same right-hand side, e.g. `A P + P Aᵀ + B Bᵀ = 0`):

    P = A P Aᵀ + B Bᵀ                                 (controllability / reachability)
    Q = Aᵀ Q A + Cᵀ C + Σ_j M_j P M_j                 (LQO observability)

Time-limited (horizon `L` steps, or time `T`): with `Φ = A^L` (or `e^{AT}`),

    P_L = P − Φ P Φᵀ = Σ_{k<L} A^k B Bᵀ (Aᵀ)^k,       Q_L = Q' − Φᵀ Q' Φ,

where `Q'` solves the observability equation with `P_L` in its right-hand side. The
difference form telescopes for *any* solution of the Stein equation, so it also holds for
unstable `A` (as long as λ_i λ_j ≠ 1, resp. λ_i + λ_j ≠ 0). It never forms the Van Loan block
exponential, which over- or underflows on stiff systems and long horizons.

A system with no states (`n = 0`, a static gain `y = D u`) has empty `0 × 0` Gramians and
no Hankel singular values, as SciPy's solvers return empty arrays for empty matrices; its h2
norm is that of the feedthrough alone (`‖D‖_F` in discrete time; in continuous time 0 for
`D = 0`, else `inf`).

References: P. Benner, P. Goyal, I. Pontes Duff, "Gramians, energy functionals and balanced
truncation for linear dynamical systems with quadratic outputs", IEEE TAC 67 (2022);
W. Gawronski, J.-N. Juang, "Model reduction in limited time and frequency intervals" (1990).
"""

import numbers
from typing import Literal, overload

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Bool

from ._matrix_equations import (
    AbstractSylvesterSolver,
    AutoSolver,
    solve_continuous_lyapunov,
    solve_discrete_lyapunov,
    solve_discrete_sylvester,
    solve_sylvester,
)
from ._realisation import Realisation
from ._solution import RESULTS, Solution
from ._systems import AbstractSystem, check_system


def adjoint(a: Array) -> Array:
    """`Aᴴ` for a dense matrix or a 1-D diagonal."""
    return jnp.conj(a) if a.ndim == 1 else a.conj().T


def first_failure(*results: RESULTS) -> RESULTS:
    """The first unsuccessful result code, or `successful`."""
    out = RESULTS.successful
    for r in reversed(results):
        out = RESULTS.where(r == RESULTS.successful, out, r)
    return out


def check_horizon(horizon, discrete: bool, caller: str):
    """`None`, a positive Python int `L` (discrete time) or a positive time `T` (continuous)."""
    if horizon is None:
        return None
    if discrete:
        if isinstance(horizon, numbers.Integral) and not isinstance(horizon, bool):
            horizon = int(horizon)  # a NumPy integer is fine; it must be static
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(
                f"{caller}: a discrete-time `horizon` is a number of steps, a Python int ≥ 1 "
                f"(e.g. horizon=64); got {horizon!r}. Pass `horizon=None` for the infinite "
                "horizon."
            )
        return horizon
    if isinstance(horizon, (int, float)) and not horizon > 0:
        raise ValueError(
            f"{caller}: a continuous-time `horizon` is a time T > 0 (e.g. horizon=10.0); got "
            f"{horizon!r}. Pass `horizon=None` for the infinite horizon."
        )
    return horizon


def systems_are_finite(*systems: AbstractSystem):
    """Whether every array of every system is finite.

    Checked explicitly: an `inf` in `C`, `M` or `D` need not turn the result into NaN (it can
    give `inf`, which would otherwise read as a legitimate infinite norm).
    """
    finite = jnp.array(True)
    for leaf in jax.tree_util.tree_leaves(eqx.filter(systems, eqx.is_inexact_array)):
        finite = finite & jnp.isfinite(lax.stop_gradient(leaf)).all()
    return finite


def raise_if_time_domain_mixup(value, systems, stable):
    """Raise a specific message when unstable systems would be stable in the other time domain.

    A discrete-time `A` passed with `dt=None` (the default of `LQOSystem`) reads as an unstable
    continuous-time system, and vice versa; the generic "unstable" error would not say why.
    """
    discrete = systems[0].is_discrete

    def stable_in_other_domain():
        other = systems_are_finite(*systems)
        for sys in systems:
            other = other & is_stable_matrix(sys.state_matrix, not discrete)
        return other

    # `cond`: the extra eigenvalue computation only runs for an unstable system (outside vmap).
    other = lax.cond(stable, lambda: jnp.array(False), stable_in_other_domain)
    if discrete:
        message = (
            f"The system is unstable in discrete time (dt={systems[0].dt}: some |λ| ≥ 1), but "
            "every eigenvalue has Re λ < 0, as for a stable continuous-time system: did you "
            "mean `dt=None` (continuous time)?"
        )
    else:
        message = (
            "The system is unstable in continuous time (dt=None: some Re λ ≥ 0), but every "
            "|λ| < 1, as for a stable discrete-time system: did you mean `dt=1.0` (or your "
            "sampling step)? `dt=None`, the default of `LQOSystem`, means continuous time."
        )
    return eqx.error_if(value, other, message)


def propagator(a: Array, discrete: bool, horizon) -> Array:
    """`Φ = A^L` (discrete) or `e^{AT}` (continuous); elementwise for a 1-D diagonal."""
    if a.ndim == 1:
        return a**horizon if discrete else jnp.exp(a * horizon)
    if discrete:
        return jnp.linalg.matrix_power(a, horizon)
    # Long horizons (‖A‖ T up to ~1e19) need more than expm's default 16 squarings.
    return jsl.expm(a * jnp.asarray(horizon, dtype=a.dtype), max_squarings=64)


def _sandwich(phi1: Array, x: Array, phi2: Array) -> Array:
    """`Φ₁ X Φ₂ᴴ` for dense or 1-D `Φ`."""
    phi1, phi2 = phi1.astype(x.dtype), phi2.astype(x.dtype)  # a real Φ meets a complex X
    left = phi1[:, None] * x if phi1.ndim == 1 else phi1 @ x
    return left * jnp.conj(phi2)[None, :] if phi2.ndim == 1 else left @ phi2.conj().T


def solve_gramian_equation(
    a1: Array,
    a2: Array,
    rhs: Array,
    discrete: bool,
    horizon,
    *,
    same: bool,
    solver: AbstractSylvesterSolver = AutoSolver(),
) -> tuple[Array, RESULTS]:
    """`X = A₁ X A₂ᴴ + R` (discrete) or `A₁ X + X A₂ᴴ + R = 0` (continuous), time-limited if asked.

    `same=True` promises `A₁ = A₂` and uses the Lyapunov/Stein solver (one factorisation).
    """
    if same:
        solve = solve_discrete_lyapunov if discrete else solve_continuous_lyapunov
        sol = solve(a1, rhs if discrete else -rhs, solver=solver, throw=False)
    else:
        solve = solve_discrete_sylvester if discrete else solve_sylvester
        sol = solve(a1, adjoint(a2), rhs if discrete else -rhs, solver=solver, throw=False)
    x = sol.value
    if horizon is not None:
        x = x - _sandwich(propagator(a1, discrete, horizon), x, propagator(a2, discrete, horizon))
    return x, sol.result


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


def is_stable(sys: AbstractSystem) -> Bool[Array, ""]:
    """Whether `sys` is asymptotically stable: all `|λ| < 1` (discrete) or `Re λ < 0` (continuous).

    Uses the poles directly for a diagonal system and `jnp.linalg.eigvals` for a dense one.
    """
    return is_stable_matrix(sys.state_matrix, sys.is_discrete)


def quadratic_source(r: Realisation, p: Array) -> Array:
    """`Σ_j M_j P M_j` with `M_j = W_jᴴ S_j W_j` (dense: `W_j = I`)."""
    if r.quad_core is None:
        return jnp.zeros_like(p)
    if r.quad_rows is None:
        m = r.quad_core.astype(p.dtype)
        return jnp.einsum("jab,bc,jcd->ad", m, p, m)
    w, s = r.quad_rows, r.quad_core
    inner = jnp.einsum("jqa,ab,jrb->jqr", w, p, jnp.conj(w))  # W_j P W_jᴴ
    middle = jnp.einsum("jqs,jst,jtr->jqr", s, inner, s)
    return jnp.einsum("jqa,jqr,jrb->ab", jnp.conj(w), middle, w)


@overload
def realisation_gramians(
    r: Realisation, horizon, *, observability: Literal[True] = True
) -> tuple[Array, Array, RESULTS]: ...


@overload
def realisation_gramians(
    r: Realisation, horizon, *, observability: Literal[False]
) -> tuple[Array, None, RESULTS]: ...


def realisation_gramians(
    r: Realisation, horizon, *, observability: bool = True
) -> tuple[Array, Array | None, RESULTS]:
    """Controllability and (LQO) observability Gramians of a realisation, with a result code."""
    p, res_p = solve_gramian_equation(r.a, r.a, r.b @ r.b.conj().T, r.discrete, horizon, same=True)
    if not observability:
        return p, None, res_p
    a_h = adjoint(r.a)
    source = r.c.conj().T @ r.c + quadratic_source(r, p)
    q, res_q = solve_gramian_equation(a_h, a_h, source, r.discrete, horizon, same=True)
    return p, q, first_failure(res_p, res_q)


def finish(value, result, stable, horizon, throw, systems=()):
    """The common end of a Gramian or norm computation: result code, then throw or `Solution`.

    An infinite horizon needs a stable system (`RESULTS.unstable`); a non-finite array in
    `systems` is `RESULTS.nonfinite_input`. With `throw` the value is returned behind
    `eqx.error_if` (first the specific message for a `dt` that mixes up the time domains),
    else a [`jaxlqo.Solution`][] with the result code.
    """
    if horizon is None:
        result = RESULTS.where(stable, result, RESULTS.unstable)
    if systems:
        result = RESULTS.where(systems_are_finite(*systems), result, RESULTS.nonfinite_input)
    if throw:
        if systems and horizon is None:
            value = raise_if_time_domain_mixup(value, systems, stable)
        return result.error_if(value, result != RESULTS.successful)
    return Solution(value=value, result=result, stats={})


def controllability_gramian(sys: AbstractSystem, *, horizon=None, throw: bool = True):
    r"""The controllability (reachability) Gramian `P`.

    $$P = A P A^\top + B B^\top \;\;\text{(discrete)},\qquad A P + P A^\top + B B^\top = 0
      \;\;\text{(continuous)},$$

    or, with `horizon`, $P_L = \sum_{k<L} A^k B B^\top (A^\top)^k = P - A^L P (A^L)^\top$
    (continuous: $\int_0^T e^{At} B B^\top e^{A^\top t} dt = P - e^{AT} P e^{A^\top T}$).

    **Arguments:**

    - `sys`: a real [`jaxlqo.LQOSystem`][] or a [`jaxlqo.DiagonalLQOSystem`][] (whose Gramian is
        returned in the coordinates `[Re x; Im x]` of `sys.to_dense()`).
    - `horizon`: keyword-only; `None` (infinite), steps `L` (a Python int, discrete time) or a
        time `T > 0` (continuous time).
    - `throw`: keyword-only; `False` returns a [`jaxlqo.Solution`][] instead of raising on an
        unstable system (infinite horizon), non-finite input or a singular equation.
    """
    caller = "controllability_gramian"
    check_system(sys, caller)
    horizon = check_horizon(horizon, sys.is_discrete, caller)
    r = sys.realisation(caller)
    p, _, result = realisation_gramians(r, horizon, observability=False)
    p = sys.gramian_in_dense_coordinates(p, "controllability")
    return finish(p, result, is_stable_matrix(r.a, r.discrete), horizon, throw, (sys,))


def observability_gramian(sys: AbstractSystem, *, horizon=None, throw: bool = True):
    r"""The (LQO) observability Gramian `Q`.

    $$Q = A^\top Q A + C^\top C + \sum_j M_j P M_j \;\;\text{(discrete)},\qquad
      A^\top Q + Q A + C^\top C + \sum_j M_j P M_j = 0 \;\;\text{(continuous)},$$

    with `P` the controllability Gramian; `tr(Bᵀ Q B)` is the squared h2 norm. With `horizon`,
    `P` becomes `P_L` and `Q_L = Q' − (A^L)ᵀ Q' A^L`. Arguments as for
    [`jaxlqo.controllability_gramian`][].
    """
    caller = "observability_gramian"
    check_system(sys, caller)
    horizon = check_horizon(horizon, sys.is_discrete, caller)
    r = sys.realisation(caller)
    _, q, result = realisation_gramians(r, horizon)
    q = sys.gramian_in_dense_coordinates(q, "observability")
    return finish(q, result, is_stable_matrix(r.a, r.discrete), horizon, throw, (sys,))


def psd_sqrt_factor(g: Array) -> Array:
    """`Z` with `G = Z Zᴴ` for a Hermitian positive semidefinite `G` (via `eigh`, GPU-safe).

    Rounding can leave tiny negative eigenvalues on a semidefinite Gramian, where Cholesky
    would fail; they are clipped to zero.
    """
    g = 0.5 * (g + g.conj().T)
    w, v = jnp.linalg.eigh(g)
    return v * jnp.sqrt(jnp.clip(w, 0.0)).astype(v.dtype)[None, :]  # complex v: explicit cast


def hankel_singular_values(sys: AbstractSystem, *, horizon=None, throw: bool = True):
    r"""Hankel singular values $\sigma_i = \sqrt{\lambda_i(P Q)}$, in decreasing order.

    Uses the LQO observability Gramian for systems with a quadratic output, and the
    time-limited Gramians when `horizon` is given. Computed as the singular values of
    $Z_Q^H Z_P$ with $P = Z_P Z_P^H$, $Q = Z_Q Z_Q^H$, never from the product $PQ$.
    A diagonal system with `n` complex states has `2n` values (those of `sys.to_dense()`).
    Arguments as for [`jaxlqo.controllability_gramian`][].
    """
    caller = "hankel_singular_values"
    check_system(sys, caller)
    horizon = check_horizon(horizon, sys.is_discrete, caller)
    r = sys.realisation(caller)
    p, q, result = realisation_gramians(r, horizon)
    sigma = jnp.linalg.svd(psd_sqrt_factor(q).conj().T @ psd_sqrt_factor(p), compute_uv=False)
    return finish(sigma, result, is_stable_matrix(r.a, r.discrete), horizon, throw, (sys,))
