"""Tests for the Sylvester / Lyapunov / Stein solvers (`jaxlqo._matrix_equations`).

Oracles: SciPy (`scipy.linalg.solve_sylvester`, `solve_continuous_lyapunov`,
`solve_discrete_lyapunov`), a NumPy Kronecker-product solve (`reference.py`), closed forms
for diagonal and scalar equations, and, for derivatives, `jax.test_util.check_grads` plus
autodiff through a plain `jnp.kron` / `jnp.linalg.solve` reference written here.
"""

import re

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import jaxlqo as lqo

EQUATIONS = ref.EQUATIONS
RESULTS = lqo.RESULTS
EPS = float(np.finfo(np.float64).eps)

SOLVERS = {
    "auto": lqo.AutoSolver(),
    "bartels_stewart": lqo.BartelsStewart(),
    "kronecker": lqo.Kronecker(),
    "diagonal": lqo.Diagonal(),
    "doubling": lqo.Doubling(),
    "matrix_sign": lqo.MatrixSign(),
}


def iterative(equation: str) -> str:
    """The GPU-friendly solver that applies to `equation`."""
    return "doubling" if ref.is_discrete(equation) else "matrix_sign"


def solve(equation, a, b, c, solver="auto", **kwargs):
    """Call the public solver for `equation` (`b` is ignored for a Lyapunov equation)."""
    solver = SOLVERS[solver] if isinstance(solver, str) else solver
    if equation == "sylvester":
        return lqo.solve_sylvester(a, b, c, solver=solver, **kwargs)
    if equation == "discrete_sylvester":
        return lqo.solve_discrete_sylvester(a, b, c, solver=solver, **kwargs)
    if equation == "continuous_lyapunov":
        return lqo.solve_continuous_lyapunov(a, c, solver=solver, **kwargs)
    assert equation == "discrete_lyapunov"
    return lqo.solve_discrete_lyapunov(a, c, solver=solver, **kwargs)


def is_result(solution, code) -> bool:
    return bool(solution.result == code)


def assert_close(x, expected, rtol):
    error = ref.relative_error(x, expected)
    assert error <= rtol, f"relative error {error:.3e} > {rtol:.1e}"


def assert_small_residual(equation, a, b, c, x, factor=100):
    """Backward stability: ‖L(X) − C‖ ≤ factor · n · ε · scale (see `_result` in `_solve.py`)."""
    c = np.asarray(c)
    residual = np.linalg.norm(ref.residual(equation, a, b, c, x))
    bound = factor * max(c.shape) * EPS * ref.residual_scale(equation, a, b, c, x)
    assert residual <= bound, f"residual {residual:.3e} > {bound:.3e}"


def diagonal_poles(rng, equation, k, complex_, *, radius=0.8, abscissa=-0.5):
    """`k` stable eigenvalues as a 1-D array: `|λ| ≤ radius` or `Re λ ≤ abscissa`."""
    if ref.is_discrete(equation):
        r = rng.uniform(0.1, radius, k)
        if complex_:
            return r * np.exp(1j * rng.uniform(-np.pi, np.pi, k))
        return r * rng.choice([-1.0, 1.0], k)
    decay = rng.uniform(-abscissa, -abscissa + 2.0, k)
    if complex_:
        return -decay + 1j * rng.uniform(-3.0, 3.0, k)
    return -decay


# ---------------------------------------------------------------------------------------------
# 1. Agreement with SciPy, all equations, all applicable solvers, real and complex
# ---------------------------------------------------------------------------------------------


def scipy_solve(equation, a, b, c):
    sla = pytest.importorskip("scipy.linalg")
    if equation == "sylvester":
        return sla.solve_sylvester(a, b, c)
    if equation == "continuous_lyapunov":
        return sla.solve_continuous_lyapunov(a, c)
    if equation == "discrete_lyapunov":
        return sla.solve_discrete_lyapunov(a, c)
    # SciPy has no discrete Sylvester (Stein) solver: the NumPy Kronecker oracle.
    return ref.solve(equation, a, b, c)


# (solver, size, dtype) per equation. Sizes: small 3, medium 17, large 64; Sylvester n ≠ m.
# The default solver is tested at 64 (its Bartels-Stewart branch on CPU); at n m ≤ 64 (n² ≤ 36
# for Lyapunov) it is Kronecker, which has its own cases (not at 64: an (nm)² LU is too slow to
# be worth it).
SCIPY_GRID = [
    ("auto", "large", False),
    ("auto", "large", True),
    ("bartels_stewart", "small", False),
    ("bartels_stewart", "medium", True),
    ("iterative", "medium", False),
    ("iterative", "large", True),
    ("kronecker", "small", False),
    ("kronecker", "medium", True),
]


def _scipy_cases():
    for equation in EQUATIONS:
        if ref.is_lyapunov(equation):
            sizes = {"small": (3, 3), "medium": (17, 17), "large": (64, 64)}
        else:
            sizes = {"small": (3, 2), "medium": (17, 5), "large": (64, 40)}
        for solver, size, complex_ in SCIPY_GRID:
            solver = iterative(equation) if solver == "iterative" else solver
            n, m = sizes[size]
            kind = "complex" if complex_ else "real"
            yield pytest.param(
                equation, solver, n, m, complex_, id=f"{equation}-{solver}-{n}x{m}-{kind}"
            )


@pytest.mark.parametrize("equation, solver, n, m, complex_", list(_scipy_cases()))
def test_agrees_with_scipy(equation, solver, n, m, complex_):
    rng = np.random.default_rng(1000 * n + m)
    a, b, c = ref.problem(rng, equation, n, m, complex_)
    x = solve(equation, a, b, c, solver)
    assert x.shape == (n, m)
    assert x.dtype == (np.complex128 if complex_ else np.float64)
    assert_close(x, scipy_solve(equation, a, b, c), rtol=1e-10)
    assert_small_residual(equation, a, b, c, x)


@pytest.mark.slow
def test_large_default_solver():
    rng = np.random.default_rng(7)
    a, b, c = ref.problem(rng, "continuous_lyapunov", 200)
    x = solve("continuous_lyapunov", a, b, c)
    assert_close(x, scipy_solve("continuous_lyapunov", a, b, c), rtol=1e-10)
    assert_small_residual("continuous_lyapunov", a, b, c, x)


# ---------------------------------------------------------------------------------------------
# 2. Diagonal (1-D) coefficients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "solver, complex_",
    [("auto", False), ("auto", True), ("diagonal", True), ("bartels_stewart", True)],
)
@pytest.mark.parametrize("equation", EQUATIONS)
def test_both_diagonal_closed_form(equation, solver, complex_):
    rng = np.random.default_rng(11)
    n, m = 5, 4
    a = diagonal_poles(rng, equation, n, complex_)
    b = np.conj(a) if ref.is_lyapunov(equation) else diagonal_poles(rng, equation, m, complex_)
    c = ref.normal(rng, (n, b.shape[0]), complex_)
    x = solve(equation, a, b, c, solver)
    if ref.is_discrete(equation):
        expected = c / (1 - a[:, None] * b[None, :])
    else:
        expected = c / (a[:, None] + b[None, :])
    assert x.dtype == c.dtype
    assert_close(x, expected, rtol=1e-13)


@pytest.mark.parametrize("diagonal_side", ["A", "B"])
@pytest.mark.parametrize(
    "solver, complex_",
    [("auto", False), ("kronecker", True), ("iterative", True)],
)
@pytest.mark.parametrize("equation", ["sylvester", "discrete_sylvester"])
def test_one_diagonal_side_matches_dense(equation, solver, diagonal_side, complex_):
    rng = np.random.default_rng(12)
    n, m = 9, 8  # n m > 64: the default solver is Bartels-Stewart on CPU
    _, b_dense, c = ref.problem(rng, equation, n, m, complex_)
    a_dense, _, _ = ref.problem(rng, equation, n, m, complex_)
    if diagonal_side == "A":
        a, b = diagonal_poles(rng, equation, n, complex_), b_dense
    else:
        a, b = a_dense, diagonal_poles(rng, equation, m, complex_)
    solver = iterative(equation) if solver == "iterative" else solver
    x = solve(equation, a, b, c, solver)
    assert_close(x, ref.solve(equation, ref.dense(a), ref.dense(b), c), rtol=1e-11)


# ---------------------------------------------------------------------------------------------
# 3. Derivatives
# ---------------------------------------------------------------------------------------------


def grad_problem(rng, equation, complex_, structure):
    """A small problem whose derivatives finite differences resolve well.

    Discrete: spectral radii ≤ 0.5; continuous: all eigenvalues with Re λ ≤ −1.
    `structure`: "dense", "diagonal" (1-D `A` and `B`) or "mixed" (1-D `A`, dense `B`).
    Returns the argument tuple `(A, B, C)`, or `(A, Q)` for a Lyapunov equation.
    """
    n, m = 3, 4
    kwargs = dict(radius=0.5, abscissa=-1.0)
    a, b, c = ref.problem(rng, equation, n, m, complex_, **kwargs)
    if structure in ("diagonal", "mixed"):
        a = diagonal_poles(rng, equation, n, complex_, radius=0.5, abscissa=-1.0)
    if structure == "diagonal" and not ref.is_lyapunov(equation):
        b = diagonal_poles(rng, equation, m, complex_, radius=0.5, abscissa=-1.0)
    if ref.is_lyapunov(equation):
        return jnp.asarray(a), jnp.asarray(c[:, :n])
    return jnp.asarray(a), jnp.asarray(b), jnp.asarray(c)


def as_function(equation, solver, throw=True):
    """`f(A, B, C)` or `f(A, Q)` returning `X`."""
    if ref.is_lyapunov(equation):
        if throw:
            return lambda a, q: solve(equation, a, None, q, solver)
        return lambda a, q: solve(equation, a, None, q, solver, throw=False).value
    if throw:
        return lambda a, b, c: solve(equation, a, b, c, solver)
    return lambda a, b, c: solve(equation, a, b, c, solver, throw=False).value


def _grad_case(equation, solver, structure, complex_):
    solver = iterative(equation) if solver == "iterative" else solver
    kind = "complex" if complex_ else "real"
    return pytest.param(
        equation, solver, structure, complex_, id=f"{equation}-{solver}-{structure}-{kind}"
    )


# Every solver once, on continuous and discrete, Sylvester and Lyapunov, dense and 1-D input,
# but not every combination: check_grads at order 2 costs seconds of compilation per case.
# Every solver on every equation (real, complex, one 1-D side) is checked against the
# Kronecker reference below, and second derivatives against closed forms after that.
CHECK_GRADS_CASES = [
    _grad_case("sylvester", "kronecker", "dense", True),
    _grad_case("discrete_sylvester", "bartels_stewart", "dense", True),
    _grad_case("discrete_lyapunov", "doubling", "dense", True),
    _grad_case("continuous_lyapunov", "matrix_sign", "dense", True),
    _grad_case("sylvester", "diagonal", "diagonal", False),
]

REFERENCE_GRAD_CASES = [
    _grad_case(equation, solver, structure, complex_)
    for equation in EQUATIONS
    for solver, structure, complex_ in [
        ("auto", "dense", False),  # Kronecker at this size
        ("auto", "dense", True),
        ("bartels_stewart", "dense", True),
        ("bartels_stewart", "diagonal" if ref.is_lyapunov(equation) else "mixed", False),
        ("iterative", "dense", True),
        ("diagonal", "diagonal", True),
    ]
]


@pytest.mark.parametrize("equation, solver, structure, complex_", CHECK_GRADS_CASES)
def test_check_grads(equation, solver, structure, complex_):
    rng = np.random.default_rng(21)
    args = grad_problem(rng, equation, complex_, structure)
    # throw=False and jit keep this affordable; the throw=True path is differentiated below.
    f = jax.jit(as_function(equation, solver, throw=False))
    check_grads(f, args, order=2, modes=["fwd", "rev"])


def kronecker_reference(equation):
    """Autodiff through a plain Kronecker-product solve: independent of the library's rules."""

    def solve_ref(a, b, c):
        a = jnp.diag(a) if a.ndim == 1 else a
        if ref.is_lyapunov(equation):
            b = a.conj().T
        elif b.ndim == 1:
            b = jnp.diag(b)
        n, m = c.shape
        eye_n, eye_m = jnp.eye(n, dtype=c.dtype), jnp.eye(m, dtype=c.dtype)
        if ref.is_discrete(equation):  # X − A X B = C
            matrix = jnp.eye(n * m, dtype=c.dtype) - jnp.kron(a, b.T)
        else:  # A X + X B = C
            matrix = jnp.kron(a, eye_m) + jnp.kron(eye_n, b.T)
        return jnp.linalg.solve(matrix, c.reshape(-1)).reshape(n, m)

    if ref.is_lyapunov(equation):
        return lambda a, q: solve_ref(a, None, q)
    return solve_ref


@pytest.mark.parametrize("equation, solver, structure, complex_", REFERENCE_GRAD_CASES)
def test_derivatives_match_kronecker_reference(equation, solver, structure, complex_):
    rng = np.random.default_rng(22)
    args = grad_problem(rng, equation, complex_, structure)
    # throw=True (with its error check) is differentiated for the default solver on complex
    # input; the other cases use throw=False, which compiles several times faster.
    f = as_function(equation, solver, throw=solver == "auto" and complex_)
    f_ref = kronecker_reference(equation)
    weights = jnp.asarray(rng.uniform(0.5, 2.0, args[-1].shape))

    def loss(function):
        return lambda *xs: jnp.sum(weights * jnp.abs(function(*xs)) ** 2)

    argnums = tuple(range(len(args)))
    grads = jax.grad(loss(f), argnums=argnums)(*args)
    grads_ref = jax.grad(loss(f_ref), argnums=argnums)(*args)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert g.dtype == g_ref.dtype
        assert_close(g, g_ref, rtol=1e-8)

    tangents = tuple(jnp.asarray(ref.normal(rng, x.shape, complex_)) for x in args)
    x, dx = jax.jvp(f, args, tangents)
    x_ref, dx_ref = jax.jvp(f_ref, args, tangents)
    assert_close(x, x_ref, rtol=1e-10)
    assert_close(dx, dx_ref, rtol=1e-8)


@pytest.mark.parametrize(
    "equation, solver, diagonal",
    [
        ("continuous_lyapunov", "auto", False),  # Kronecker
        ("continuous_lyapunov", "auto", True),  # Diagonal
        ("continuous_lyapunov", "matrix_sign", False),
        ("discrete_lyapunov", "auto", False),
        ("discrete_lyapunov", "auto", True),
        ("discrete_lyapunov", "bartels_stewart", False),
    ],
)
def test_scalar_lyapunov_closed_form_derivatives(equation, solver, diagonal):
    # Continuous: 2 a x = q, x = q / (2a), ∂x/∂a = −q / (2a²), ∂²x/∂a² = q / a³.
    # Discrete: a² x − x + q = 0, x = q / (1 − a²), ∂x/∂a = 2aq / (1 − a²)²,
    #   ∂²x/∂a² = 2q / (1 − a²)² + 8a²q / (1 − a²)³.
    q = 0.7
    if ref.is_discrete(equation):
        a = 0.6
        x, dx, dq = q / (1 - a**2), 2 * a * q / (1 - a**2) ** 2, 1 / (1 - a**2)
        d2x = 2 * q / (1 - a**2) ** 2 + 8 * a**2 * q / (1 - a**2) ** 3
    else:
        a = -1.5
        x, dx, d2x, dq = q / (2 * a), -q / (2 * a**2), q / a**3, 1 / (2 * a)
    shape = (1,) if diagonal else (1, 1)

    def f(a_, q_):
        a_, q_ = jnp.full(shape, a_), jnp.full((1, 1), q_)
        return solve(equation, a_, None, q_, solver, throw=False).value[0, 0]

    a, q = jnp.asarray(a), jnp.asarray(q)
    value, (grad_a, grad_q) = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(a, q)
    np.testing.assert_allclose(value, x, rtol=1e-13)
    np.testing.assert_allclose(grad_a, dx, rtol=1e-12)
    np.testing.assert_allclose(grad_q, dq, rtol=1e-12)
    # Second order, forward-over-reverse.
    np.testing.assert_allclose(jax.jit(jax.jacfwd(jax.grad(f)))(a, q), d2x, rtol=1e-11)


def test_vjp_in_c_is_the_transposed_solve():
    # The solution is linear in C: the derivative w.r.t. C is the solve itself (transposed for
    # reverse mode), for a non-normal complex A where a naive transpose would go wrong.
    rng = np.random.default_rng(23)
    a, b, c = ref.problem(rng, "sylvester", 10, 8, complex_=True)
    f = lambda c_: lqo.solve_sylvester(a, b, c_, solver=lqo.BartelsStewart())  # noqa: E731
    y = jnp.asarray(ref.normal(rng, (10, 8), complex_=True))
    (vjp,) = jax.vjp(f, jnp.asarray(c))[1](y)
    # ⟨L⁻¹ c, y⟩ = ⟨c, L⁻ᵀ y⟩ with the bilinear (non-conjugating) pairing.
    expected = ref.solve("sylvester", a.T, b.T, np.asarray(y))
    assert_close(vjp, expected, rtol=1e-11)


# ---------------------------------------------------------------------------------------------
# 4. jit and vmap agree with eager
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "equation, solver",
    [(equation, "auto") for equation in EQUATIONS]
    + [
        ("sylvester", "bartels_stewart"),
        ("discrete_sylvester", "iterative"),
        ("continuous_lyapunov", "iterative"),
        ("discrete_lyapunov", "diagonal"),
    ],
)
def test_jit_and_vmap_match_eager(equation, solver):
    rng = np.random.default_rng(31)
    solver = iterative(equation) if solver == "iterative" else solver
    structure = "diagonal" if solver == "diagonal" else "dense"
    batch = [grad_problem(rng, equation, True, structure) for _ in range(2)]
    stacked = tuple(jnp.stack(xs) for xs in zip(*batch, strict=True))
    f = as_function(equation, solver)
    eager = np.stack([f(*args) for args in batch])
    jitted = jax.jit(f)
    assert_close(np.stack([jitted(*args) for args in batch]), eager, rtol=1e-13)
    assert_close(jax.vmap(f)(*stacked), eager, rtol=1e-13)


def test_vmap_reports_a_result_per_batch_element():
    # Element 0 is fine, element 1 has a NaN, element 2 is singular (eigenvalue 1 of A: λ λ̄ = 1).
    a = jnp.stack([0.5 * jnp.eye(2), 0.5 * jnp.eye(2), jnp.diag(jnp.array([1.0, 0.3]))])
    q = jnp.stack([jnp.eye(2), jnp.eye(2).at[0, 1].set(jnp.nan), jnp.eye(2)])
    sol = jax.vmap(lambda a_, q_: lqo.solve_discrete_lyapunov(a_, q_, throw=False))(a, q)
    np.testing.assert_array_equal(sol.result == RESULTS.successful, [True, False, False])
    np.testing.assert_array_equal(sol.result == RESULTS.nonfinite_input, [False, True, False])
    np.testing.assert_array_equal(sol.result == RESULTS.singular_equation, [False, False, True])
    np.testing.assert_allclose(sol.value[0], jnp.eye(2) / 0.75, rtol=1e-14)
    with pytest.raises(Exception, match=re.escape("The input contains NaN or inf")):
        jax.vmap(lqo.solve_discrete_lyapunov)(a[:2], q[:2])
    with pytest.raises(Exception, match=re.escape("The input contains NaN or inf")):
        jax.jit(lqo.solve_discrete_lyapunov)(a[1], q[1])


# ---------------------------------------------------------------------------------------------
# 5. Errors, result codes, dtypes, no mutation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, args, name, got",
    [
        (lqo.solve_continuous_lyapunov, (np.eye(3), np.eye(2)), "Q", (2, 2)),
        (lqo.solve_discrete_lyapunov, (np.ones((2, 3)), np.eye(2)), "A", (2, 3)),
        (lqo.solve_discrete_lyapunov, (np.ones((2, 2, 2)), np.eye(2)), "A", (2, 2, 2)),
        (lqo.solve_continuous_lyapunov, (np.array(2.0), np.eye(1)), "A", ()),
        (lqo.solve_continuous_lyapunov, (np.ones(3), np.eye(2)), "Q", (2, 2)),
        (lqo.solve_sylvester, (np.eye(3), np.eye(2), np.ones((2, 3))), "C", (2, 3)),
        (lqo.solve_sylvester, (np.eye(3), np.ones((2, 3)), np.ones((3, 2))), "B", (2, 3)),
        (lqo.solve_discrete_sylvester, (np.ones(3), np.eye(2), np.ones((2, 2))), "C", (2, 2)),
        (lqo.solve_discrete_sylvester, (np.ones((3, 2)), np.eye(2), np.ones((3, 2))), "A", (3, 2)),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(call, args, name, got):
    pattern = (
        re.escape(f"{call.__name__}: argument `{name}`") + ".*" + re.escape(f"got shape {got}")
    )
    with pytest.raises(ValueError, match=pattern):
        call(*args)


def test_bad_solver_and_dtype_raise_type_error():
    eye = np.eye(2)
    with pytest.raises(TypeError, match="`solver` must be a solver Module"):
        lqo.solve_sylvester(-eye, -eye, eye, solver="bartels_stewart")
    with pytest.raises(TypeError, match="discrete-time equations only"):
        lqo.solve_continuous_lyapunov(-eye, eye, solver=lqo.Doubling())
    with pytest.raises(TypeError, match="continuous-time equations only"):
        lqo.solve_discrete_lyapunov(0.5 * eye, eye, solver=lqo.MatrixSign())
    with pytest.raises(TypeError, match="needs 1-D"):
        lqo.solve_sylvester(-np.ones(2), -eye, eye, solver=lqo.Diagonal())
    with pytest.raises(TypeError, match="argument `Q`"):
        lqo.solve_discrete_lyapunov(0.5 * eye, np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize("where", ["A", "C"])
@pytest.mark.parametrize("equation", EQUATIONS)
def test_nonfinite_input(equation, where):
    rng = np.random.default_rng(41)
    a, b, c = ref.problem(rng, equation, 4, 3)
    if where == "A":
        a[1, 2] = np.nan
    else:
        c[0, 0] = np.inf
    with pytest.raises(Exception, match=re.escape("The input contains NaN or inf")):
        solve(equation, a, b, c)
    sol = solve(equation, a, b, c, throw=False)
    assert isinstance(sol, lqo.Solution)
    assert is_result(sol, RESULTS.nonfinite_input)


@pytest.mark.parametrize("solver", ["bartels_stewart", "kronecker", "iterative"])
def test_nonfinite_input_every_solver(solver):
    for equation in ("sylvester", "discrete_lyapunov"):
        a, b, c = ref.problem(np.random.default_rng(42), equation, 3, 3)
        b = b.copy()
        b[0, 0] = -np.inf
        a[0, 0] = np.nan
        s = iterative(equation) if solver == "iterative" else solver
        assert is_result(solve(equation, a, b, c, s, throw=False), RESULTS.nonfinite_input)


def test_successful_solution_object():
    sol = lqo.solve_discrete_lyapunov(np.diag([0.5, 0.2]), np.eye(2), throw=False)
    assert isinstance(sol, lqo.Solution)
    assert is_result(sol, RESULTS.successful)
    assert not is_result(sol, RESULTS.singular_equation)
    np.testing.assert_allclose(sol.value, np.diag([1 / 0.75, 1 / 0.96]), rtol=1e-14)


def _rotated(rng, eigenvalues):
    """A dense non-normal matrix with the given (real) eigenvalues."""
    v = np.eye(len(eigenvalues)) + 0.3 * rng.standard_normal((len(eigenvalues),) * 2)
    return v @ np.diag(eigenvalues) @ np.linalg.inv(v)


# Stein: λ μ = 2 · 0.5 = 1. Continuous Sylvester: λ + μ = 1 + (−1) = 0.
SINGULAR = {
    "discrete_sylvester": (np.array([2.0, 0.5]), np.array([0.5, 3.0])),
    "sylvester": (np.array([1.0, -2.0]), np.array([-1.0, -3.0])),
}


@pytest.mark.parametrize(
    "solver, structure",
    [
        ("auto", "1-D"),
        ("diagonal", "1-D"),
        ("bartels_stewart", "1-D"),
        ("kronecker", "1-D"),
        ("auto", "dense diagonal"),
        ("bartels_stewart", "dense diagonal"),
        ("kronecker", "dense diagonal"),
        ("bartels_stewart", "dense non-normal"),
        ("kronecker", "dense non-normal"),
    ],
)
@pytest.mark.parametrize("equation", ["discrete_sylvester", "sylvester"])
def test_singular_equation(equation, solver, structure):
    rng = np.random.default_rng(51)
    a, b = SINGULAR[equation]
    if structure == "dense diagonal":
        a, b = np.diag(a), np.diag(b)
    elif structure == "dense non-normal":
        a, b = _rotated(rng, a), _rotated(rng, b)
    c = np.ones((2, 2))
    with pytest.raises(Exception, match="singular"):
        solve(equation, a, b, c, solver)
    assert is_result(solve(equation, a, b, c, solver, throw=False), RESULTS.singular_equation)


@pytest.mark.parametrize("equation", ["discrete_sylvester", "sylvester"])
def test_singular_equation_iterative_solver_does_not_succeed(equation):
    a, b = (np.diag(x) for x in SINGULAR[equation])
    sol = solve(equation, a, b, np.ones((2, 2)), iterative(equation), throw=False)
    assert not is_result(sol, RESULTS.successful)


@pytest.mark.parametrize(
    "equation, a",
    [
        ("continuous_lyapunov", np.array([[0.0, 1.0], [-1.0, 0.0]])),  # λ = ±i: λ + λ̄ = 0
        ("discrete_lyapunov", np.array([[0.6, -0.8], [0.8, 0.6]])),  # |λ| = 1: λ λ̄ = 1
    ],
)
def test_singular_lyapunov_bartels_stewart(equation, a):
    sol = solve(equation, a, None, np.eye(2), "bartels_stewart", throw=False)
    assert is_result(sol, RESULTS.singular_equation)


def test_doubling_singular_unit_circle():
    one = np.ones((1, 1))  # X − X = 1: no solution; Doubling returns X = 2⁶⁴
    sol = lqo.solve_discrete_sylvester(one, one, one, solver=lqo.Doubling(), throw=False)
    assert not is_result(sol, RESULTS.successful)


@pytest.mark.parametrize(
    "a, b",
    [
        (np.diag([1.5, 0.2]), np.diag([1.2, 0.1])),  # ρρ = 1.8, no λ μ = 1: solvable
        (np.array([[1.05, 0.3], [0.0, 0.2]]), np.array([[1.05, 0.0], [0.3, 0.2]])),  # ρρ ≈ 1.1
    ],
)
def test_doubling_not_converged_outside_unit_disk(a, b):
    c = np.ones((2, 2))
    sol = lqo.solve_discrete_sylvester(a, b, c, solver=lqo.Doubling(), throw=False)
    assert is_result(sol, RESULTS.not_converged)
    with pytest.raises(Exception, match="did not converge"):
        lqo.solve_discrete_sylvester(a, b, c, solver=lqo.Doubling())
    # The equation itself is fine: Bartels-Stewart solves it.
    x = lqo.solve_discrete_sylvester(a, b, c, solver=lqo.BartelsStewart())
    assert_close(x, ref.solve("discrete_sylvester", a, b, c), rtol=1e-12)


def test_matrix_sign_not_converged_for_unstable_coefficients():
    a, b, c = np.diag([1.0, -2.0]), np.diag([-3.0, -2.0]), np.ones((2, 2))  # solvable
    sol = lqo.solve_sylvester(a, b, c, solver=lqo.MatrixSign(), throw=False)
    assert is_result(sol, RESULTS.not_converged)
    x = lqo.solve_sylvester(a, b, c, solver=lqo.BartelsStewart())
    assert_close(x, ref.solve("sylvester", a, b, c), rtol=1e-12)


@pytest.mark.parametrize("equation", EQUATIONS)
def test_integer_input_is_promoted_to_float(equation):
    # Products of these uint16 entries overflow uint16: promotion must come first.
    a = np.array([[300, 7], [0, 200]], dtype=np.uint16)
    b = np.array([[250, 0], [3, 400]], dtype=np.uint16)
    c = np.array([[60000, 1], [2, 65535]], dtype=np.uint16)
    x = solve(equation, a, b, c)
    assert x.dtype == np.float64
    as_float = [x_.astype(np.float64) for x_ in (a, b, c)]
    np.testing.assert_array_equal(x, solve(equation, *as_float))
    assert_close(x, ref.solve(equation, *as_float), rtol=1e-13)
    x_diag = solve(equation, np.array([3, 5], np.int32), np.array([7, 11], np.int64), c)
    assert x_diag.dtype == np.float64
    assert_close(x_diag, ref.solve(equation, np.diag([3.0, 5.0]), np.diag([7.0, 11.0]), c), 1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.complex128])
def test_dtype_is_preserved(dtype):
    rng = np.random.default_rng(61)
    complex_ = np.iscomplexobj(dtype(0))
    for equation in EQUATIONS:
        a, b, c = (x.astype(dtype) for x in ref.problem(rng, equation, 3, 2, complex_))
        x = solve(equation, a, b, c)
        assert x.dtype == dtype
        assert_close(x, ref.solve(equation, a, b, c), rtol=1e-4)
    if dtype == np.float32:  # Bartels-Stewart: complex64 Schur forms, real float32 result
        a, b, c = (x.astype(dtype) for x in ref.problem(rng, "sylvester", 9, 8))
        x = solve("sylvester", a, b, c, "bartels_stewart")
        assert x.dtype == dtype
        assert_close(x, ref.solve("sylvester", a, b, c), rtol=1e-4)


@pytest.mark.parametrize(
    "equation, solver",
    [("sylvester", "bartels_stewart"), ("discrete_lyapunov", "doubling"), ("sylvester", "auto")],
)
def test_inputs_are_not_mutated(equation, solver):
    rng = np.random.default_rng(71)
    a, b, c = ref.problem(rng, equation, 4, 3, complex_=True)
    copies = [x.copy() for x in (a, b, c)]
    solve(equation, a, b, c, solver, throw=False)
    for x, x_copy in zip((a, b, c), copies, strict=True):
        np.testing.assert_array_equal(x, x_copy)


# ---------------------------------------------------------------------------------------------
# 6. Property test: small backward error for drawn well-posed problems (default solver)
# ---------------------------------------------------------------------------------------------


@hypothesis.given(
    equation=st.sampled_from(EQUATIONS),
    n=st.integers(1, 9),
    m=st.integers(1, 9),
    complex_=st.booleans(),
    radius=st.floats(0.0, 0.95),
    abscissa=st.floats(-3.0, -0.05),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_small_residual(equation, n, m, complex_, radius, abscissa, seed):
    rng = np.random.default_rng(seed)
    a, b, c = ref.problem(rng, equation, n, m, complex_, radius=radius, abscissa=abscissa)
    x = np.asarray(solve(equation, a, b, c))
    assert x.shape == c.shape and np.isfinite(x).all()
    assert_small_residual(equation, a, b, c, x)


# ---------------------------------------------------------------------------------------------
# 7. Bartels–Stewart internals: real Schur forms with 2 × 2 blocks, eigenvalue clusters, and
#    the blocked triangular solve (sizes around and across its 32-wide blocks, with padding)
# ---------------------------------------------------------------------------------------------


def structured(rng, equation, n, kind, complex_=False):
    """A dense stable `n × n` matrix with a chosen eigenstructure, in a random orthogonal basis.

    `pairs`: complex-conjugate pairs only (one real eigenvalue if `n` is odd), i.e. a real Schur
    form with ⌊n/2⌋ 2 × 2 blocks; `cluster`: one repeated real eigenvalue with a non-normal
    (Jordan-like) coupling; `mixed`: pairs and real eigenvalues alternating at random.
    """
    discrete = ref.is_discrete(equation)
    blocks, k = [], 0
    while k < n:
        pair = k + 1 < n and (kind == "pairs" or (kind == "mixed" and rng.random() < 0.5))
        if kind == "cluster":
            blocks.append(np.array([[0.5 if discrete else -1.0]]))
        elif pair:
            if discrete:
                radius, angle = rng.uniform(0.2, 0.8), rng.uniform(0.2, 3.0)
                alpha, beta = radius * np.cos(angle), radius * np.sin(angle)
            else:
                alpha, beta = rng.uniform(-2.0, -0.5), rng.uniform(0.5, 3.0)
            # A non-normal block (|b| ≠ |c|), as LAPACK's are for non-normal matrices: with
            # |b| = |c| a wrong rotation can still happen to triangularise it.
            skew = rng.uniform(0.3, 3.0)
            blocks.append(np.array([[alpha, beta * skew], [-beta / skew, alpha]]))
        else:
            real = rng.uniform(-0.8, 0.8) if discrete else -rng.uniform(0.5, 2.0)
            blocks.append(np.array([[real]]))
        k += blocks[-1].shape[0]
    t = np.zeros((n, n))
    k = 0
    for block in blocks:
        t[k : k + len(block), k : k + len(block)] = block
        k += len(block)
    coupling = 0.3 if kind == "cluster" else 0.5
    t += np.triu(rng.standard_normal((n, n)), 1) * coupling / np.sqrt(n)
    if kind == "cluster":
        t += np.diag(np.full(n - 1, 0.3), 1)  # a chain of couplings: a defective eigenvalue
    q, _ = np.linalg.qr(ref.normal(rng, (n, n), complex_))
    return q @ t @ q.conj().T


STRUCTURED_CASES = [
    pytest.param(equation, kind, complex_, id=f"{equation}-{kind}-{'complex' * complex_ or 'real'}")
    for equation in EQUATIONS
    for kind, complex_ in (("pairs", False), ("mixed", False), ("cluster", False), ("mixed", True))
]


@pytest.mark.parametrize("equation, kind, complex_", STRUCTURED_CASES)
def test_bartels_stewart_structured_spectra(equation, kind, complex_):
    # n = 67, m = 73 (above `_ONE_BLOCK_MAX`, so blocked): three row blocks of 23 (two padded
    # rows), three column blocks of 25 (two padded columns; 23 for the Lyapunov equations,
    # where m = n); odd n leaves a real eigenvalue after the 2 × 2 blocks.
    rng = np.random.default_rng(37)
    n, m = 67, 73
    a = structured(rng, equation, n, kind, complex_)
    b = a.conj().T if ref.is_lyapunov(equation) else structured(rng, equation, m, kind, complex_)
    c = ref.normal(rng, (n, n if ref.is_lyapunov(equation) else m), complex_)
    x = solve(equation, a, b, c, "bartels_stewart")
    assert_close(x, ref.solve(equation, a, b, c), rtol=1e-10)
    assert_small_residual(equation, a, b, c, x)


@pytest.mark.parametrize("n", [2, 5, 40, 77])
@pytest.mark.parametrize("kind", ["orthogonal", "pairs", "mixed"])
def test_real_schur_made_complex_is_a_triangular_schur_form(n, kind):
    from jaxlqo._matrix_equations._solvers import _triangularise

    rng = np.random.default_rng(n)
    if kind == "orthogonal":  # eigenvalues on the unit circle, in conjugate pairs
        a, _ = np.linalg.qr(rng.standard_normal((n, n)))
    else:
        a = structured(rng, "discrete_lyapunov", n, kind)
    tri = _triangularise(jnp.asarray(a))
    assert not jnp.iscomplexobj(tri.unitary)  # the dense factor stays real
    u = tri.rotations.right(jnp.asarray(tri.unitary, complex))
    t = np.asarray(tri.triangular)
    np.testing.assert_array_equal(np.tril(t, -1), 0)
    np.testing.assert_allclose(u @ t @ u.conj().T, a, atol=1e-13 * n)
    np.testing.assert_allclose(u.conj().T @ u, np.eye(n), atol=1e-14 * n)
    expected = np.linalg.eigvals(a)
    got = np.diagonal(t)
    assert np.abs(got[:, None] - expected[None, :]).min(axis=1).max() < 1e-10


@pytest.mark.parametrize("discrete", [False, True])
# Blocked above `_ONE_BLOCK_MAX` = 64 on either side: (67, 31) pads two rows, (64, 65) one
# column; (1, 1) is the sweep itself.
@pytest.mark.parametrize("n, m", [(1, 1), (5, 70), (67, 31), (64, 65), (65, 100)])
def test_blocked_triangular_solve_matches_column_sweep(n, m, discrete):
    from jaxlqo._matrix_equations._solvers import (
        _solve_triangular_sylvester,
        _solve_triangular_sylvester_columns,
    )

    rng = np.random.default_rng(n * m)

    def triangular(k):
        t = np.triu(ref.normal(rng, (k, k), True)) / np.sqrt(k)
        diagonal = 0.3 * rng.uniform(0.2, 1, k) if discrete else -rng.uniform(1, 2, k)
        return t - np.diag(np.diagonal(t)) + np.diag(diagonal + 0.5j * rng.standard_normal(k))

    r, s = jnp.asarray(triangular(n)), jnp.asarray(triangular(m))
    f = jnp.asarray(ref.normal(rng, (n, m), True))
    y = _solve_triangular_sylvester(r, s, f, discrete)
    expected = _solve_triangular_sylvester_columns(r, s, f, discrete)
    assert_close(y, expected, rtol=1e-12)
    residual = y - r @ y @ s - f if discrete else r @ y + y @ s - f
    # Componentwise, as a backward-stable solve leaves it: each residual entry is within a
    # small multiple of eps (n + m) of the magnitudes that were summed into it.
    r_, y_, s_, f_ = (np.abs(np.asarray(x)) for x in (r, y, s, f))
    terms = y_ + r_ @ y_ @ s_ + f_ if discrete else r_ @ y_ + y_ @ s_ + f_
    assert np.max(np.abs(residual) / terms) < 4 * np.finfo(np.float64).eps * (n + m)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("equation", ["sylvester", "discrete_lyapunov"])
def test_bartels_stewart_transposed_solve_and_vmap_with_2x2_blocks(equation, complex_):
    # Reverse mode solves the transposed equation with the same (real-made-complex) Schur form.
    rng = np.random.default_rng(41)
    n, m = 37, 33
    batch = []
    for _ in range(2):
        a = structured(rng, equation, n, "mixed", complex_)
        b = a.conj().T if ref.is_lyapunov(equation) else structured(rng, equation, m, "mixed")
        batch.append((a, b, ref.normal(rng, (n, b.shape[0]), complex_)))
    a, b, c = batch[0]
    f = lambda c_: solve(equation, a, b, c_, "bartels_stewart")  # noqa: E731
    y = ref.normal(rng, c.shape, complex_)
    (vjp,) = jax.vjp(f, jnp.asarray(c))[1](jnp.asarray(y))
    transposed = "discrete_sylvester" if ref.is_discrete(equation) else equation
    expected = ref.solve(transposed, a.T, np.asarray(b).T, y)
    assert_close(vjp, expected, rtol=1e-10)
    g = lambda a_, b_, c_: solve(equation, a_, b_, c_, "bartels_stewart")  # noqa: E731
    stacked = tuple(jnp.stack(xs) for xs in zip(*batch, strict=True))
    eager = np.stack([g(*args) for args in batch])
    assert_close(jax.vmap(g)(*stacked), eager, rtol=1e-12)


@pytest.mark.parametrize("discrete", [False, True])
def test_bartels_stewart_left_upper_triangular_complex(discrete):
    # The reduction's Schur coordinates pass a complex triangular A and skip its Schur form.
    rng = np.random.default_rng(43)
    n, m = 40, 35
    equation = "discrete_sylvester" if discrete else "sylvester"
    a = np.triu(ref.normal(rng, (n, n), True)) / np.sqrt(n)
    a = a - np.diag(np.diagonal(a)) + np.diag(diagonal_poles(rng, equation, n, True))
    _, b, c = ref.problem(rng, equation, n, m, complex_=True)
    x = solve(equation, a, b, c, lqo.BartelsStewart(left_upper_triangular=True))
    assert_close(x, ref.solve(equation, a, b, c), rtol=1e-10)


@hypothesis.settings(max_examples=12)
@hypothesis.given(
    equation=st.sampled_from(EQUATIONS),
    n=st.sampled_from([1, 2, 3, 31, 32, 33, 47, 65]),
    m=st.sampled_from([1, 2, 32, 33, 40]),
    kind=st.sampled_from(["pairs", "mixed", "cluster"]),
    complex_=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_bartels_stewart_small_residual(equation, n, m, kind, complex_, seed):
    rng = np.random.default_rng(seed)
    a = structured(rng, equation, n, kind, complex_)
    b = a.conj().T if ref.is_lyapunov(equation) else structured(rng, equation, m, kind, complex_)
    c = ref.normal(rng, (n, b.shape[0]), complex_)
    x = np.asarray(solve(equation, a, b, c, "bartels_stewart"))
    assert x.shape == c.shape and np.isfinite(x).all()
    assert_small_residual(equation, a, b, c, x)


# ---------------------------------------------------------------------------------------------
# 6. Conformance with SciPy: ill-conditioned but well-posed equations, half precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["auto", "kronecker"])
@pytest.mark.parametrize(
    "a",
    [np.array([[-1.0, 1e5], [0.0, -1.0]]), np.diag([-1e-14, -1.0])],
    ids=["non-normal", "near-zero-eigenvalue"],
)
def test_well_posed_ill_conditioned_lyapunov_is_solved(a, solver):
    # λ_i + λ̄_j ≠ 0 (the eigenvalue condition) but the Kronecker matrix has condition ~1e14
    # to ~1e20: these were reported "singular" by the condition-number test.
    sla = pytest.importorskip("scipy.linalg")
    q = -np.eye(2)
    x = solve("continuous_lyapunov", a, None, q, solver)
    assert_close(x, sla.solve_continuous_lyapunov(a, q), rtol=1e-12)
    assert_small_residual("continuous_lyapunov", a, a.conj().T, q, x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_a_type_error_naming_the_argument(dtype):
    eye = jnp.eye(2)
    with pytest.raises(TypeError, match=f"solve_sylvester: argument `B` has dtype {dtype}"):
        lqo.solve_sylvester(-eye, -eye.astype(dtype), eye)
    with pytest.raises(TypeError, match=f"argument `Q` has dtype {dtype}"):
        lqo.solve_discrete_lyapunov(0.5 * eye, eye.astype(dtype))
    with pytest.raises(TypeError, match=f"argument `A` has dtype {dtype}"):
        lqo.solve_continuous_lyapunov(-jnp.ones(2, dtype), eye)


# ---------------------------------------------------------------------------------------------
# 9. The GPU default: iterations for stable coefficients, an eigendecomposition otherwise.
#    Tested on CPU by making the dispatch see a GPU backend (as tests/test_gpu_lowering.py).
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def gpu_dispatch(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    jax.clear_caches()  # no trace made under the CPU dispatch may be reused, nor leak out
    yield
    jax.clear_caches()


def _mixed_spectrum(rng, n, discrete):
    """A dense real matrix with eigenvalues on both sides of the imaginary axis / unit circle."""
    a = rng.standard_normal((n, n)) / np.sqrt(n) + 0.3 * np.eye(n)
    if discrete:
        a = 1.3 * a / np.max(np.abs(np.linalg.eigvals(a)))
    lam = np.linalg.eigvals(a)
    side = np.abs(lam) < 1 if discrete else lam.real < 0
    assert side.any() and not side.all()
    return a


def test_gpu_default_continuous_lyapunov(gpu_dispatch):
    # SciPy solves A X + X Aᴴ = Q for any A with λ_i + λ̄_j ≠ 0; off CPU the default used to
    # stop at "did not converge" (matrix sign needs a stable A). n = 9: n² > 64, not Kronecker.
    rng = np.random.default_rng(71)
    f = jax.jit(lambda a, q: lqo.solve_continuous_lyapunov(a, q, throw=False))
    a_mixed, q = _mixed_spectrum(rng, 9, False), rng.standard_normal((9, 9))
    sol = f(a_mixed, q)
    assert is_result(sol, RESULTS.successful)
    assert_close(sol.value, scipy_solve("continuous_lyapunov", a_mixed, None, q), rtol=1e-11)
    assert_small_residual("continuous_lyapunov", a_mixed, a_mixed.T, q, sol.value)
    # A stable A stays on the iteration: bit for bit its answer (eig would round differently).
    a_stable, _, _ = ref.problem(rng, "continuous_lyapunov", 9)
    iteration = jax.jit(lambda a, q: lqo.solve_continuous_lyapunov(a, q, solver=lqo.MatrixSign()))
    np.testing.assert_array_equal(f(a_stable, q).value, iteration(a_stable, q))
    # What neither path can solve is reported, not returned as a wrong answer.
    jordan = 0.5 * np.eye(9) + np.diag(np.ones(8), 1)  # defective: no eigenvector basis
    assert is_result(f(jordan, q), RESULTS.eigendecomposition_failed)
    singular = np.diag(np.r_[1.0, -1.0, -2.0 * np.ones(7)])  # λ_1 + λ̄_2 = 0
    assert not is_result(f(singular, q), RESULTS.successful)
    # A batch with a stable and an unstable element: each gets its own answer.
    xs = jax.vmap(f)(jnp.stack([a_stable, a_mixed]), jnp.stack([q, q])).value
    np.testing.assert_array_equal(xs[0], iteration(a_stable, q))
    assert_close(xs[1], sol.value, rtol=1e-13)
    # Reverse mode runs the transposed solve through the same fallback. Reference: the adjoint
    # equation Aᵀ C̄ + C̄ A = X̄ = 2X and Ā = −(C̄ Xᵀ + C̄ᵀ X) (A appears on both sides), by SciPy.
    sla = pytest.importorskip("scipy.linalg")
    grad = jax.jit(jax.grad(lambda a: jnp.sum(lqo.solve_continuous_lyapunov(a, q) ** 2)))(a_mixed)
    x = sla.solve_continuous_lyapunov(a_mixed, q)
    c_bar = sla.solve_continuous_lyapunov(a_mixed.T, 2 * x)
    assert_close(grad, -(c_bar @ x.T + c_bar.T @ x), rtol=1e-11)


def test_gpu_default_discrete_sylvester(gpu_dispatch):
    rng = np.random.default_rng(72)
    f = jax.jit(lambda a, b, c: lqo.solve_discrete_sylvester(a, b, c))
    a, b = _mixed_spectrum(rng, 9, True), _mixed_spectrum(rng, 8, True)
    c = rng.standard_normal((9, 8))
    x = f(a, b, c)
    assert_close(x, ref.solve("discrete_sylvester", a, b, c), rtol=1e-11)
    assert_small_residual("discrete_sylvester", a, b, c, x)
    a, b, c = ref.problem(rng, "discrete_sylvester", 9, 8)  # stable: doubling, bit for bit
    np.testing.assert_array_equal(f(a, b, c), solve("discrete_sylvester", a, b, c, "doubling"))


def test_tpu_default_has_no_eigendecomposition_fallback(monkeypatch):
    from jaxlqo._matrix_equations._operator import SylvesterOperator

    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    op = SylvesterOperator(jnp.eye(12), jnp.eye(12), False)
    assert isinstance(lqo.AutoSolver().select(op, False), lqo.MatrixSign)


def test_auto_solver_takes_bartels_stewart_earlier_for_lyapunov_equations():
    # One Schur form serves a Lyapunov equation: Kronecker only up to n² = 36 there, n m = 64
    # for a Sylvester equation (measured crossovers, see AutoSolver.select).
    from jaxlqo._matrix_equations._operator import SylvesterOperator

    for n, lyapunov_solver in [(6, lqo.Kronecker), (7, lqo.BartelsStewart)]:
        op = SylvesterOperator(jnp.eye(n), jnp.eye(n), False)
        assert isinstance(lqo.AutoSolver().select(op, True), lyapunov_solver)
    op = SylvesterOperator(jnp.eye(8), jnp.eye(8), False)
    assert isinstance(lqo.AutoSolver().select(op, False), lqo.Kronecker)


def test_fallback_runs_under_vmap_only_when_some_element_needs_it():
    from jaxlqo._matrix_equations._solvers import _cond_any

    calls = []

    def fallback(x):
        jax.debug.callback(lambda: calls.append(1))
        return 2 * x

    f = jax.vmap(lambda p, x: _cond_any(p, fallback, x, (x,)))
    x = jnp.arange(3.0)
    np.testing.assert_array_equal(f(jnp.array([False, False, False]), x), x)
    assert not calls  # a batched lax.cond would have run the fallback for every element
    np.testing.assert_array_equal(f(jnp.array([False, True, False]), x), [0.0, 2.0, 2.0])
    assert calls
    nested = jax.vmap(f)(jnp.array([[False, True, False]] * 2), jnp.stack([x, x]))
    np.testing.assert_array_equal(nested, [[0.0, 2.0, 2.0]] * 2)


def test_eigendecomposition_solver_agrees_with_scipy():
    rng = np.random.default_rng(73)
    a, b, c = ref.problem(rng, "sylvester", 6, 4, True)
    x = solve("sylvester", a, b, c, lqo.Eigendecomposition())
    assert x.dtype == np.complex128
    assert_close(x, scipy_solve("sylvester", a, b, c), rtol=1e-11)
    # Real coefficients with a diagonal side: a real solution.
    a, b = a.real, np.diag(b).real.copy()
    x = solve("discrete_sylvester", a, b, c.real, lqo.Eigendecomposition())
    assert x.dtype == np.float64
    assert_close(x, ref.solve("discrete_sylvester", a, np.diag(b), c.real), rtol=1e-11)


# The solver protocol (lineax's shape): a solver written outside the package.


class _KroneckerLU(lqo.AbstractSylvesterSolver):
    """A user's solver: LU of the Kronecker matrix, its own transpose, no eigenvalue check."""

    def init(self, operator, adjoint_pair):
        a, b = operator.a, operator.b
        n, m = a.shape[0], b.shape[0]
        if operator.discrete:
            matrix = jnp.eye(n * m) - jnp.kron(a, b.T)
        else:
            matrix = jnp.kron(a, jnp.eye(m)) + jnp.kron(jnp.eye(n), b.T)
        return matrix

    def compute(self, state, c):
        x = jnp.linalg.solve(state, c.reshape(-1)).reshape(c.shape)
        return x, RESULTS.successful, {"size": jnp.asarray(state.shape[0])}

    def transpose(self, state):
        return state.T


@pytest.mark.parametrize("discrete", [False, True])
def test_a_solver_written_outside_the_package_is_solved_and_differentiated(discrete, rng):
    kind = "discrete_sylvester" if discrete else "sylvester"
    a, b, c = ref.problem(rng, kind, 4, 3)
    solve_ = lqo.solve_discrete_sylvester if discrete else lqo.solve_sylvester
    sol = solve_(a, b, c, solver=_KroneckerLU(), throw=False)
    assert is_result(sol, RESULTS.successful) and int(sol.stats["size"]) == 12
    assert_close(sol.value, ref.solve(kind, a, b, c), rtol=1e-12)
    # Reverse mode goes through `transpose(state)`; checked against finite differences.
    check_grads(lambda a, b, c: solve_(a, b, c, solver=_KroneckerLU()), (a, b, c), 1, ("rev",))


def test_a_solver_without_transpose_cannot_be_built():
    class NoTranspose(lqo.AbstractSylvesterSolver):
        def init(self, operator, adjoint_pair):
            return operator

        def compute(self, state, c):
            return c, RESULTS.successful, {}

    with pytest.raises(TypeError, match="abstract"):
        NoTranspose()


@pytest.mark.parametrize("discrete", [False, True])
def test_iterations_report_their_steps_and_non_convergence(discrete, rng):
    kind = "discrete_lyapunov" if discrete else "continuous_lyapunov"
    solver = lqo.Doubling() if discrete else lqo.MatrixSign()
    solve_ = lqo.solve_discrete_lyapunov if discrete else lqo.solve_continuous_lyapunov
    a, _, q = ref.problem(rng, kind, 9)
    sol = solve_(a, q, solver=solver, throw=False)
    assert is_result(sol, RESULTS.successful)
    assert 1 <= int(sol.stats["num_steps"]) < solver.max_steps
    unstable = 1.5 * np.eye(9) if discrete else np.eye(9)  # no convergent iteration
    sol = solve_(unstable, q, solver=solver, throw=False)
    assert is_result(sol, RESULTS.not_converged)
