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

from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Inexact, PyTree

from .._compiled import compiled
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


class Factorisation(eqx.Module):
    r"""One matrix equation's factorisation, made once by [`jaxlqo.factorise`][] and reused.

    Pass it as `state=` to [`jaxlqo.solve_sylvester`][] (and the other three solves) to solve
    the same equation for several right-hand sides without factorising again, as lineax's
    `linear_solve(..., state=solver.init(...))` does: for Bartels–Stewart the Schur forms
    ($O(n^3 + m^3)$) are computed once and each further solve costs $O(nm(n + m))$.

    A pytree (its arrays are leaves), so it can be passed through `jit`, `vmap` and `grad`.
    It is treated as a constant for differentiation: derivatives with respect to `A` and `B`
    come from the coefficients passed to the solve, as without `state=`.

    **Fields:**

    - `solver`: the solver Module that made it (and that the solves then use).
    - `discrete`: `True` for a Stein equation (`A X B − X + C = 0`), `False` for `A X + X B = C`.
    - `adjoint_pair`: `True` when it was made for a Lyapunov / Stein equation (`B = Aᴴ`).
    - `transposed`: `True` for the factorisation of `Lᵀ` that
        [`transpose`][jaxlqo.Factorisation.transpose] gives.
    - `arrays`, `structure`: the solver's state, split into its arrays and the rest.
    """

    arrays: PyTree[Array]
    structure: Any = eqx.field(static=True)
    solver: AbstractSylvesterSolver = eqx.field(static=True)
    discrete: bool = eqx.field(static=True)
    adjoint_pair: bool = eqx.field(static=True)
    transposed: bool = eqx.field(static=True, default=False)

    @property
    def state(self) -> Any:
        """The solver's own state (`solver.init(operator, adjoint_pair)`, or its transpose)."""
        return eqx.combine(self.arrays, self.structure)

    def transpose(self) -> "Factorisation":
        r"""The factorisation of the transposed equation (`Aᵀ`, `Bᵀ`), from the same factors.

        For a Lyapunov factorisation of `A` (`B = Aᴴ`) it is the Lyapunov factorisation of
        `Aᵀ`; for a real `A`, the observability equation $A^\top Q + Q A = S$ is then solved
        with the Schur form of `A` (`lqo.solve_continuous_lyapunov(A.T, S,
        state=lqo.factorise(A).transpose())`), as SciPy's `trsyl` does with `trana`.
        """
        arrays, structure = eqx.partition(self.solver.transpose(self.state), eqx.is_array)
        return Factorisation(
            arrays, structure, self.solver, self.discrete, self.adjoint_pair, not self.transposed
        )


def factorise(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    B: Inexact[ArrayLike, "m m"] | Inexact[ArrayLike, " m"] | None = None,
    *,
    discrete: bool = False,
    solver: AbstractSylvesterSolver = AutoSolver(),
) -> Factorisation:
    r"""Factorise a matrix equation once, to solve it for many right-hand sides.

    `B = None` means a Lyapunov / Stein equation, `B = Aᴴ` (one factorisation serves both
    sides):

    - continuous (`discrete=False`): $A X + X B = C$, or $A X + X A^H = Q$;
    - discrete (`discrete=True`): $A X B - X + C = 0$, or $A X A^H - X + Q = 0$.

    **Arguments:** `A` `(n, n)` or `(n,)` (diagonal), `B` `(m, m)`, `(m,)` or `None`, with the
    dtype rules of [`jaxlqo.solve_sylvester`][]; `solver` as there.

    **Returns:** a [`jaxlqo.Factorisation`][], for `state=` of the solve of the same equation
    with the same `A` (and `B`), e.g.

    ```python
    state = lqo.factorise(A)  # one Schur form of A
    P = lqo.solve_continuous_lyapunov(A, -B @ B.T, state=state)
    Q = lqo.solve_continuous_lyapunov(A, -B2 @ B2.T, state=state)  # no second Schur form
    ```

    A solve checks that the factorisation is of the same kind (equation, solver, shapes,
    dtype; a mismatch is a `TypeError` or `ValueError`), and its residual check catches a
    factorisation of other coefficients of the same shapes
    (`RESULTS.factorisation_mismatch`): never a silent wrong answer.
    """
    caller = "factorise"
    _check_solver(solver, caller)
    adjoint_pair = B is None
    if B is None:
        (A,) = _inputs(caller, A=A)
        _square_or_diagonal(A, "A", caller)
        B = _adjoint(A)
    else:
        A, B = _inputs(caller, A=A, B=B)
        _square_or_diagonal(A, "A", caller)
        _square_or_diagonal(B, "B", caller)
        dtype = common_inexact_dtype(A, B)
        A, B = A.astype(dtype), B.astype(dtype)
    operator = SylvesterOperator(A, B, bool(discrete))
    # An empty side has nothing to factorise: the solve returns the empty solution.
    empty = A.shape[0] == 0 or B.shape[0] == 0
    state = None if empty else _compiled_init(solver, operator, adjoint_pair)
    arrays, structure = eqx.partition(state, eqx.is_array)
    return Factorisation(arrays, structure, solver, bool(discrete), adjoint_pair)


@compiled
def _compiled_init(solver: AbstractSylvesterSolver, operator: SylvesterOperator, adjoint_pair):
    """`solver.init` as one compiled program (see `_compiled_solve`)."""
    return solver.init(lax.stop_gradient(operator), adjoint_pair)


def _check_solver(solver, caller: str) -> None:
    if not isinstance(solver, AbstractSylvesterSolver):
        raise TypeError(
            f"{caller}: `solver` must be a solver Module such as lqo.AutoSolver(), "
            f"lqo.BartelsStewart() or lqo.Doubling(); got {solver!r}."
        )


def _state_solver(
    caller: str, factorisation, discrete: bool, solver: AbstractSylvesterSolver
) -> AbstractSylvesterSolver:
    """The solver of a `state=` argument, after checking it is a factorisation of this kind."""
    if not isinstance(factorisation, Factorisation):
        raise TypeError(
            f"{caller}: `state` must be a lqo.Factorisation made by lqo.factorise(...); "
            f"got {type(factorisation).__name__}."
        )
    if factorisation.discrete != discrete:
        kind = "discrete" if factorisation.discrete else "continuous"
        raise ValueError(
            f"{caller}: `state` factorises a {kind}-time equation; pass "
            f"lqo.factorise(..., discrete={discrete})."
        )
    if solver != AutoSolver() and solver != factorisation.solver:
        raise ValueError(
            f"{caller}: `state` was made by {factorisation.solver!r}, but `solver` is "
            f"{solver!r}; leave `solver` out (the state's solver is used)."
        )
    return factorisation.solver


def _given_state(caller: str, factorisation: Factorisation, operator: SylvesterOperator) -> Any:
    """The solver state inside `factorisation`, checked against the shapes and dtype of `operator`.

    The expected state is traced (`filter_eval_shape`), not computed; whether it factorises
    these very coefficients is left to the residual check, which needs no extra work.
    """
    solver = factorisation.solver

    def init(operator):
        # A transposed factorisation is that of `Lᵀ`: the transposed state of Lᵀ's own `init`
        # is the state of L, so transposing it back has the structure of L's `init`.
        state = solver.init(
            operator.transpose() if factorisation.transposed else operator,
            factorisation.adjoint_pair,
        )
        return solver.transpose(state) if factorisation.transposed else state

    expected = eqx.filter_eval_shape(init, operator)
    arrays, structure = eqx.partition(expected, lambda x: isinstance(x, jax.ShapeDtypeStruct))

    def signature(tree):
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return treedef, [(x.shape, jnp.dtype(x.dtype)) for x in leaves]

    # A Lyapunov factorisation (of A alone) also serves `A X + X Aᴴ`, so `B` must be `n × n`.
    square = operator.b.shape == operator.a.shape or not factorisation.adjoint_pair
    if (
        not square
        or structure != factorisation.structure
        or signature(arrays) != signature(factorisation.arrays)
    ):
        raise ValueError(
            f"{caller}: `state` was factorised from coefficients of other shapes or dtype than "
            f"these (A {operator.a.shape}, B {operator.b.shape}, {operator.a.dtype}, the "
            "common dtype of the equation, its right-hand side included); factorise these."
        )
    return eqx.combine(lax.stop_gradient(factorisation.arrays), factorisation.structure)


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
    factorisation=None,
):
    _check_solver(solver, caller)
    if factorisation is not None:
        solver = _state_solver(caller, factorisation, discrete, solver)
    dtype = common_inexact_dtype(a, b, c)
    a, b, c = a.astype(dtype), b.astype(dtype), c.astype(dtype)
    if c.size == 0:
        return _empty_solution(SylvesterOperator(a, b, discrete), c, throw)
    return _compiled_solve(caller, a, b, c, discrete, adjoint_pair, solver, throw, factorisation)


# Compiled as one program (`jaxlqo/_compiled.py`): outside `jit` a solve would run op by op,
# and `custom_linear_solve` would trace its solves again on every call (n = 48: about
# 100-170 ms a call, against under 1 ms compiled). Inside a user's `jit` it is inlined.
@compiled
def _compiled_solve(caller, a, b, c, discrete, adjoint_pair, solver, throw, factorisation):
    operator = SylvesterOperator(a, b, discrete)
    if factorisation is None:
        # The factorisation is a constant for differentiation: derivatives come from `operator`.
        state = solver.init(lax.stop_gradient(operator), adjoint_pair)
        failure = solver.failure(state)
    else:
        state = _given_state(caller, factorisation, operator)
        failure = RESULTS.factorisation_mismatch
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

    result = _result(operator, c, x, failure, verdict)
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
    state: Factorisation | None = None,
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
    - `state`: keyword-only [`jaxlqo.Factorisation`][] of this equation
        (`lqo.factorise(A, B, solver=...)`), to reuse one factorisation across right-hand
        sides; its solver is used. Default `None`: factorise here.
    - `throw`: keyword-only. `True` (default) raises on non-finite input, a singular equation
        or a failed solve; `False` returns a [`jaxlqo.Solution`][] with a result code.

    **Returns:** `X` of shape `(n, m)`, or a `Solution` when `throw=False`.

    Differentiable in `A`, `B` and `C` (implicitly, to any order, forward and reverse mode),
    and compatible with `jit` and `vmap`.
    """
    return _sylvester(
        "solve_sylvester", A, B, C, discrete=False, solver=solver, state=state, throw=throw
    )


def solve_discrete_sylvester(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    B: Inexact[ArrayLike, "m m"] | Inexact[ArrayLike, " m"],
    C: Inexact[ArrayLike, "n m"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    state: Factorisation | None = None,
    throw: bool = True,
):
    r"""Solve the discrete Sylvester (Stein) equation $A X B - X + C = 0$.

    Uniquely solvable iff $\lambda_i(A)\,\mu_j(B) \neq 1$ for all eigenvalue pairs.
    Arguments and returns as for [`jaxlqo.solve_sylvester`][].
    """
    return _sylvester(
        "solve_discrete_sylvester", A, B, C, discrete=True, solver=solver, state=state, throw=throw
    )


def solve_continuous_lyapunov(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    Q: Inexact[ArrayLike, "n n"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    state: Factorisation | None = None,
    throw: bool = True,
):
    r"""Solve the continuous Lyapunov equation $A X + X A^H = Q$ (SciPy's convention).

    For a stable `A` and `Q = −B Bᴴ` the solution is the controllability Gramian.
    `A` may be 1-D (diagonal). Keywords and returns as for [`jaxlqo.solve_sylvester`][];
    one Schur form serves both sides.
    """
    return _lyapunov(
        "solve_continuous_lyapunov", A, Q, discrete=False, solver=solver, state=state, throw=throw
    )


def solve_discrete_lyapunov(
    A: Inexact[ArrayLike, "n n"] | Inexact[ArrayLike, " n"],
    Q: Inexact[ArrayLike, "n n"],
    *,
    solver: AbstractSylvesterSolver = AutoSolver(),
    state: Factorisation | None = None,
    throw: bool = True,
):
    r"""Solve the discrete Lyapunov (Stein) equation $A X A^H - X + Q = 0$ (SciPy's convention).

    For `|λ(A)| < 1` and `Q = B Bᴴ` the solution is the reachability Gramian
    $\sum_k A^k B B^H (A^H)^k$. `A` may be 1-D (diagonal). Keywords and returns as for
    [`jaxlqo.solve_sylvester`][].
    """
    return _lyapunov(
        "solve_discrete_lyapunov", A, Q, discrete=True, solver=solver, state=state, throw=throw
    )


def _sylvester(caller: str, A, B, C, *, discrete: bool, solver, state, throw: bool):
    """The checked front end of both Sylvester equations: shapes, dtypes, then `_solve`."""
    A, B, C = _inputs(caller, A=A, B=B, C=C)
    n = _square_or_diagonal(A, "A", caller)
    m = _square_or_diagonal(B, "B", caller)
    _check_rhs(C, (n, m), "C", caller)
    return _solve(
        caller,
        A,
        B,
        C,
        discrete=discrete,
        adjoint_pair=False,
        solver=solver,
        throw=throw,
        factorisation=state,
    )


def _lyapunov(caller: str, A, Q, *, discrete: bool, solver, state, throw: bool):
    """The checked front end of both Lyapunov equations: `B = Aᴴ`, one factorisation."""
    A, Q = _inputs(caller, A=A, Q=Q)
    n = _square_or_diagonal(A, "A", caller)
    _check_rhs(Q, (n, n), "Q", caller)
    A = A.astype(common_inexact_dtype(A, Q))
    return _solve(
        caller,
        A,
        _adjoint(A),
        Q,
        discrete=discrete,
        adjoint_pair=True,
        solver=solver,
        throw=throw,
        factorisation=state,
    )


def _adjoint(a: Array) -> Array:
    return jnp.conj(a) if a.ndim == 1 else a.conj().T


def _check_rhs(x: Array, expected: tuple, name: str, caller: str) -> None:
    if x.shape != expected:
        raise ValueError(
            f"{caller}: argument `{name}` must have shape {expected} to match the coefficient "
            f"matrices; got shape {x.shape}."
        )
