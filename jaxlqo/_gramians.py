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

from typing import Literal, overload

import jax.numpy as jnp
from jaxtyping import Array, Bool

from ._checks import check_horizon
from ._compiled import compiled
from ._linalg import adjoint, is_stable_matrix, propagator, psd_sqrt_factor, sandwich
from ._matrix_equations._solve import (
    Factorisation,
    factorise,
    solve_continuous_lyapunov,
    solve_discrete_lyapunov,
    solve_discrete_sylvester,
    solve_sylvester,
)
from ._matrix_equations._solvers import (
    AbstractSylvesterSolver,
    AutoSolver,
)
from ._realisation import Realisation
from ._results import finish, first_failure
from ._solution import RESULTS
from ._systems import AbstractSystem, check_system


def solve_gramian_equation(
    a1: Array,
    a2: Array,
    rhs: Array,
    discrete: bool,
    horizon,
    *,
    same: bool,
    solver: AbstractSylvesterSolver = AutoSolver(),
    state: Factorisation | None = None,
) -> tuple[Array, RESULTS]:
    """`X = A₁ X A₂ᴴ + R` (discrete) or `A₁ X + X A₂ᴴ + R = 0` (continuous), time-limited if asked.

    `same=True` promises `A₁ = A₂` and uses the Lyapunov/Stein solver (one factorisation, or
    the given `state` of that Lyapunov/Stein equation).
    """
    if same:
        solve = solve_discrete_lyapunov if discrete else solve_continuous_lyapunov
        sol = solve(a1, rhs if discrete else -rhs, solver=solver, state=state, throw=False)
    else:
        solve = solve_discrete_sylvester if discrete else solve_sylvester
        sol = solve(a1, adjoint(a2), rhs if discrete else -rhs, solver=solver, throw=False)
    x = sol.value
    if horizon is not None:
        x = x - sandwich(propagator(a1, discrete, horizon), x, propagator(a2, discrete, horizon))
    return x, sol.result


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
    """Controllability and (LQO) observability Gramians of a realisation, with a result code.

    For a real dense `A` one Schur form serves both: the observability equation (in `Aᵀ`) is
    the transpose of the controllability one, so it takes `factorise(A).transpose()`.
    """
    real_dense = r.a.ndim == 2 and not jnp.iscomplexobj(r.a) and r.a.shape[0] > 0
    state = factorise(r.a, discrete=r.discrete) if real_dense and observability else None
    rhs = r.b @ r.b.conj().T
    p, res_p = solve_gramian_equation(r.a, r.a, rhs, r.discrete, horizon, same=True, state=state)
    if not observability:
        return p, None, res_p
    a_h = adjoint(r.a)
    source = r.c.conj().T @ r.c + quadratic_source(r, p)
    transposed = None if state is None else state.transpose()
    q, res_q = solve_gramian_equation(
        a_h, a_h, source, r.discrete, horizon, same=True, state=transposed
    )
    return p, q, first_failure(res_p, res_q)


@compiled
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
    p = sys.controllability_gramian_in_dense_coordinates(p)
    return finish(p, result, is_stable_matrix(r.a, r.discrete), horizon, throw, (sys,))


@compiled
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
    q = sys.observability_gramian_in_dense_coordinates(q)
    return finish(q, result, is_stable_matrix(r.a, r.discrete), horizon, throw, (sys,))


@compiled
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
