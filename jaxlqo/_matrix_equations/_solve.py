"""The four public matrix-equation solvers, with implicit derivatives.

Differentiation (all four equations, real and complex, any order, forward and reverse).
Write the equation as `L(X; A, B) = C` with `L` linear in `X` (see `_operator.py`):

    continuous:  L(X) = A X + X B            discrete:  L(X) = X − A X B

Tangent equation (differentiate the identity L(X; A, B) = C):

    L(Ẋ) = Ċ − L_Ȧ,Ḃ(X),   where  L_Ȧ,Ḃ(X) = Ȧ X + X Ḃ   or   −(Ȧ X B + A X Ḃ),

i.e. the tangent is another solve with the *same* operator and factorisation.
Adjoint (reverse mode): for a cotangent X̄, solve the transposed equation Lᵀ(C̄) = X̄
(Lᵀ(Y) = Aᵀ Y + Y Bᵀ or Y − Aᵀ Y Bᵀ; JAX's transposes are linear, not conjugate-linear,
so no conjugation appears), then Ā = −C̄ Xᵀ and B̄ = −Xᵀ C̄ (continuous) or
Ā = C̄ Bᵀ Xᵀ, B̄ = Xᵀ Aᵀ C̄ (discrete).

`lax.custom_linear_solve` implements exactly this: the solve and transposed solve are opaque
(the factorisation is computed from `lax.stop_gradient` inputs and never differentiated), the
derivatives with respect to `A` and `B` come from differentiating the operator `L`, and the
tangent and adjoint solves are again `custom_linear_solve`s, so every order works.
"""

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Inexact

from .._misc import as_inexact_array, common_inexact_dtype
from .._solution import RESULTS, Solution
from ._operator import SylvesterOperator
from ._solvers import AbstractSylvesterSolver, AutoSolver


def _square_or_diagonal(x: Array, name: str, caller: str) -> int:
    if x.ndim == 1 or (x.ndim == 2 and x.shape[0] == x.shape[1]):
        return x.shape[0]
    raise ValueError(
        f"{caller}: argument `{name}` must be a square matrix (k, k) or a 1-D diagonal (k,); "
        f"got shape {x.shape}."
    )


def _check_precision(x: Array, name: str, caller: str) -> None:
    # LAPACK, and so every factorisation here, has no routines narrower than float32.
    if jnp.finfo(x.dtype).bits < 32:
        raise TypeError(
            f"{caller}: argument `{name}` has dtype {x.dtype}, which the matrix-equation "
            "solvers do not support (no half-precision factorisations exist); use float32, "
            f"float64, complex64 or complex128, e.g. `{name}.astype(jnp.float32)`."
        )


def _inputs(caller: str, **named) -> list[Array]:
    """The arguments as inexact JAX arrays, half precision rejected."""
    out = []
    for name, x in named.items():
        x = as_inexact_array(x, name, caller)
        _check_precision(x, name, caller)
        out.append(x)
    return out


def _empty_solution(operator: SylvesterOperator, c: Array, throw: bool):
    """`n = 0` or `m = 0`: the solution is the empty `(n, m)` array, as in SciPy.

    Only non-finite entries of a non-empty coefficient can fail; the equation itself is
    trivially (and uniquely) solvable. `X` is a constant: every derivative is zero (or empty).
    """
    x = jnp.zeros(c.shape, c.dtype)
    finite = jnp.isfinite(lax.stop_gradient(operator.a)).all()
    finite = finite & jnp.isfinite(lax.stop_gradient(operator.b)).all()
    result = RESULTS.where(finite, RESULTS.successful, RESULTS.nonfinite_input)
    if throw:
        return result.error_if(x, result != RESULTS.successful)
    return Solution(value=x, result=result, stats={})


def _solve(
    caller: str,
    a: Array,
    b: Array,
    c: Array,
    *,
    discrete: bool,
    adjoint_pair: bool,
    solver: AbstractSylvesterSolver,
    throw: bool,
):
    if not isinstance(solver, AbstractSylvesterSolver):
        raise TypeError(
            f"{caller}: `solver` must be a solver Module such as lqo.AutoSolver(), "
            f"lqo.BartelsStewart() or lqo.Doubling(); got {solver!r}."
        )
    dtype = common_inexact_dtype(a, b, c)
    a, b, c = a.astype(dtype), b.astype(dtype), c.astype(dtype)
    operator = SylvesterOperator(a, b, discrete)
    if c.size == 0:
        return _empty_solution(operator, c, throw)
    # The factorisation is a constant for differentiation: derivatives come from `operator`.
    state = solver.init(lax.stop_gradient(operator), adjoint_pair)
    transposed = solver.transpose(state)

    def solve(_, rhs):
        x, result, stats = solver.compute(state, rhs)
        return x, (result, stats)

    def transpose_solve(_, rhs):
        x, result, stats = solver.compute(transposed, rhs)
        return x, (result, stats)

    x, (verdict, stats) = lax.custom_linear_solve(
        operator, c, solve=solve, transpose_solve=transpose_solve, has_aux=True
    )

    result = _result(operator, c, x, solver.failure(state), verdict)
    if throw:
        return result.error_if(x, result != RESULTS.successful)
    return Solution(value=x, result=result, stats=stats)


def _result(operator, c, x, failure: RESULTS, verdict: RESULTS) -> RESULTS:
    """Classify the outcome: non-finite input, the solver's verdict, or a failed residual check.

    `verdict` is what the solver itself found (e.g. eigenvalues that make the equation
    singular); `failure` is the code the solver gives a solve that fails the residual check.

    A solve is judged failed when its residual is far above what a backward-stable method
    leaves: ‖L(X) − C‖ > 1000 · n · ε · (‖A‖‖X‖(‖B‖) + ‖X‖‖B‖ + ‖C‖) (Frobenius norms).
    """
    operator, c, x = lax.stop_gradient((operator, c, x))
    finite_input = jnp.isfinite(operator.a).all() & jnp.isfinite(operator.b).all()
    finite_input = finite_input & jnp.isfinite(c).all()
    eps = jnp.finfo(c.dtype).eps
    size = max(c.shape)
    norm_a, norm_b = jnp.linalg.norm(operator.a), jnp.linalg.norm(operator.b)
    norm_x, norm_c = jnp.linalg.norm(x), jnp.linalg.norm(c)
    if operator.discrete:
        scale = norm_x + norm_a * norm_x * norm_b + norm_c
    else:
        scale = norm_a * norm_x + norm_x * norm_b + norm_c
    residual = jnp.linalg.norm(operator(x) - c)
    # A finite residual is required: once ‖X‖ ≳ 1e154 the norms overflow and `inf <= inf` holds.
    solved = jnp.isfinite(x).all() & jnp.isfinite(residual)
    solved = solved & (residual <= 1000 * size * eps * scale)
    result = RESULTS.where(solved, RESULTS.successful, failure)
    result = RESULTS.where(verdict == RESULTS.successful, result, verdict)
    return RESULTS.where(finite_input, result, RESULTS.nonfinite_input)


def solve_sylvester(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    B: Inexact[ArrayLike, "m m"] | Inexact[ArrayLike, " m"],
    C: Inexact[ArrayLike, "n m"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    throw: bool = True,
):
    r"""Solve the Sylvester equation $A X + X B = C$.

    Uniquely solvable iff $\lambda_i(A) + \mu_j(B) \neq 0$ for all eigenvalue pairs.

    **Arguments:**

    - `A`: `(n, n)`, or `(n,)` for a diagonal matrix.
    - `B`: `(m, m)`, or `(m,)` for a diagonal matrix.
    - `C`: `(n, m)`. Real or complex (float32/64, complex64/128; integers are promoted, half
        precision is a `TypeError`); all inputs are cast to their common dtype. `n = 0` or
        `m = 0` is allowed: the solution is then the empty `(n, m)` array, as in SciPy.
    - `solver`: keyword-only solver Module (default [`jaxlqo.AutoSolver`][]).
    - `throw`: keyword-only. `True` (default) raises on non-finite input, a singular equation
        or a failed solve; `False` returns a [`jaxlqo.Solution`][] with a result code.

    **Returns:** `X` of shape `(n, m)`, or a `Solution` when `throw=False`.

    Differentiable in `A`, `B` and `C` (implicitly, to any order, forward and reverse mode),
    and compatible with `jit` and `vmap`.
    """
    return _sylvester("solve_sylvester", A, B, C, discrete=False, solver=solver, throw=throw)


def solve_discrete_sylvester(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    B: Inexact[ArrayLike, "m m"] | Inexact[ArrayLike, " m"],
    C: Inexact[ArrayLike, "n m"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    throw: bool = True,
):
    r"""Solve the discrete Sylvester (Stein) equation $A X B - X + C = 0$.

    Uniquely solvable iff $\lambda_i(A)\,\mu_j(B) \neq 1$ for all eigenvalue pairs.
    Arguments and returns as for [`jaxlqo.solve_sylvester`][].
    """
    return _sylvester(
        "solve_discrete_sylvester", A, B, C, discrete=True, solver=solver, throw=throw
    )


def solve_continuous_lyapunov(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    Q: Inexact[ArrayLike, "n n"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    throw: bool = True,
):
    r"""Solve the continuous Lyapunov equation $A X + X A^H = Q$ (SciPy's convention).

    For a stable `A` and `Q = −B Bᴴ` the solution is the controllability Gramian.
    `A` may be 1-D (diagonal). Keywords and returns as for [`jaxlqo.solve_sylvester`][];
    one Schur form serves both sides.
    """
    return _lyapunov("solve_continuous_lyapunov", A, Q, discrete=False, solver=solver, throw=throw)


def solve_discrete_lyapunov(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    Q: Inexact[ArrayLike, "n n"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    throw: bool = True,
):
    r"""Solve the discrete Lyapunov (Stein) equation $A X A^H - X + Q = 0$ (SciPy's convention).

    For `|λ(A)| < 1` and `Q = B Bᴴ` the solution is the reachability Gramian
    $\sum_k A^k B B^H (A^H)^k$. `A` may be 1-D (diagonal). Keywords and returns as for
    [`jaxlqo.solve_sylvester`][].
    """
    return _lyapunov("solve_discrete_lyapunov", A, Q, discrete=True, solver=solver, throw=throw)


def _sylvester(caller: str, A, B, C, *, discrete: bool, solver, throw: bool):
    """The checked front end of both Sylvester equations: shapes, dtypes, then `_solve`."""
    A, B, C = _inputs(caller, A=A, B=B, C=C)
    n = _square_or_diagonal(A, "A", caller)
    m = _square_or_diagonal(B, "B", caller)
    _check_rhs(C, (n, m), "C", caller)
    return _solve(
        caller, A, B, C, discrete=discrete, adjoint_pair=False, solver=solver, throw=throw
    )


def _lyapunov(caller: str, A, Q, *, discrete: bool, solver, throw: bool):
    """The checked front end of both Lyapunov equations: `B = Aᴴ`, one factorisation."""
    A, Q = _inputs(caller, A=A, Q=Q)
    n = _square_or_diagonal(A, "A", caller)
    _check_rhs(Q, (n, n), "Q", caller)
    A = A.astype(common_inexact_dtype(A, Q))
    return _solve(
        caller, A, _adjoint(A), Q, discrete=discrete, adjoint_pair=True, solver=solver, throw=throw
    )


def _adjoint(a: Array) -> Array:
    return jnp.conj(a) if a.ndim == 1 else a.conj().T


def _check_rhs(x: Array, expected: tuple, name: str, caller: str) -> None:
    if x.shape != expected:
        raise ValueError(
            f"{caller}: argument `{name}` must have shape {expected} to match the coefficient "
            f"matrices; got shape {x.shape}."
        )
