"""Tests for `lqo.factorise` and the `state=` argument of the four matrix-equation solves.

Oracles: the NumPy Kronecker solve of `reference.py` (values), `jax.test_util.check_grads`
(derivatives, with the factorisation made inside the differentiated function), the solve
without `state=` (same values, same derivatives), and the compiled program's LAPACK calls
(no Schur form left when the state is given).
"""

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import jaxlqo as lqo

RESULTS = lqo.RESULTS

SOLVERS = {
    "auto": lqo.AutoSolver(),
    "bartels_stewart": lqo.BartelsStewart(),
    "kronecker": lqo.Kronecker(),
    "eigendecomposition": lqo.Eigendecomposition(),
    "iterative": None,  # Doubling or MatrixSign, whichever applies to the equation
}


def solver_for(name: str, equation: str) -> lqo.AbstractSylvesterSolver:
    if name == "iterative":
        return lqo.Doubling() if ref.is_discrete(equation) else lqo.MatrixSign()
    solver = SOLVERS[name]
    assert solver is not None
    return solver


def factorise(equation, a, b, solver):
    """The factorisation that the solve of `equation` with these coefficients accepts."""
    b = None if ref.is_lyapunov(equation) else b
    return lqo.factorise(a, b, discrete=ref.is_discrete(equation), solver=solver)


def solve(equation, a, b, c, **kwargs):
    if equation == "sylvester":
        return lqo.solve_sylvester(a, b, c, **kwargs)
    if equation == "discrete_sylvester":
        return lqo.solve_discrete_sylvester(a, b, c, **kwargs)
    if equation == "continuous_lyapunov":
        return lqo.solve_continuous_lyapunov(a, c, **kwargs)
    return lqo.solve_discrete_lyapunov(a, c, **kwargs)


def relative_error(x, expected) -> float:
    return ref.relative_error(np.asarray(x), expected)


@pytest.mark.parametrize("equation", ref.EQUATIONS)
@pytest.mark.parametrize("solver_name", list(SOLVERS))
@pytest.mark.parametrize("n", [12])
def test_one_factorisation_solves_several_right_hand_sides(rng, equation, solver_name, n):
    solver = solver_for(solver_name, equation)
    a, b, c1 = ref.problem(rng, equation, n, n + 1)
    c2 = ref.normal(rng, c1.shape)
    state = factorise(equation, a, b, solver)
    assert state.solver == solver
    for c in (c1, c2):
        x = solve(equation, a, b, c, state=state)
        assert relative_error(x, ref.solve(equation, a, b, c)) <= 1e-11
        # The same numbers as a solve that factorises by itself.
        direct = solve(equation, a, b, c, solver=solver)
        assert relative_error(x, np.asarray(direct)) <= 1e-13


@pytest.mark.parametrize("equation", ref.EQUATIONS)
def test_diagonal_coefficients_and_complex_data_take_a_state(rng, equation):
    n, m = 5, 4
    a, b = -rng.uniform(0.5, 2.0, n) + 0j, -rng.uniform(0.5, 2.0, m) + 1j
    if ref.is_discrete(equation):
        a, b = a / 3, b / 3
    if ref.is_lyapunov(equation):
        b, m = np.conj(a), n
    c = ref.normal(rng, (n, m), complex_=True)
    state = factorise(equation, a, b, lqo.AutoSolver())
    x = solve(equation, a, b, c, state=state)
    assert relative_error(x, ref.solve(equation, np.diag(a), np.diag(b), c)) <= 1e-13


@pytest.mark.parametrize("equation", ref.EQUATIONS)
def test_derivatives_with_a_state_match_finite_differences_to_second_order(rng, equation):
    a, b, c = ref.problem(rng, equation, 4, 3)
    discrete, lyapunov = ref.is_discrete(equation), ref.is_lyapunov(equation)

    def f(a, b, c):
        # The factorisation inside the function, so every perturbed point has its own.
        state = lqo.factorise(a, None if lyapunov else b, discrete=discrete)
        return solve(equation, a, b, c, state=state)

    args = (a, b, c) if not lyapunov else (a, a.conj().T, c)
    if lyapunov:
        check_grads(lambda a, c: f(a, None, c), (a, c), order=2, modes=("fwd", "rev"))
    else:
        check_grads(f, args, order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("equation", ref.EQUATIONS)
def test_a_fixed_state_gives_the_same_derivatives_as_no_state(rng, equation):
    # Derivatives come from the coefficients passed to the solve, never from the state.
    a, b, c = ref.problem(rng, equation, 9, 7)
    state = factorise(equation, a, b, lqo.AutoSolver())
    weights = ref.normal(rng, c.shape)

    def loss(a, c, **kwargs):
        return jnp.sum(weights * solve(equation, a, b, c, **kwargs))

    with_state = jax.grad(loss, argnums=(0, 1))(a, c, state=state)
    without = jax.grad(loss, argnums=(0, 1))(a, c)
    for g, h in zip(with_state, without, strict=True):
        assert relative_error(g, np.asarray(h)) <= 1e-12


def test_a_state_passes_through_jit_without_recompiling_and_keeps_no_schur_form(rng):
    n = 40  # above the Kronecker cutoff: Bartels–Stewart
    traces = []

    @jax.jit
    def solve_with(state, a, q):
        traces.append(None)
        return lqo.solve_continuous_lyapunov(a, q, state=state)

    for _ in range(3):
        a = ref.hurwitz(rng, n)
        q = ref.normal(rng, (n, n))
        state = lqo.factorise(a)
        x = solve_with(state, a, q)
        assert relative_error(x, ref.solve("continuous_lyapunov", a, None, q)) <= 1e-11
    assert len(traces) == 1
    # The compiled solve holds the triangular stage only: no Schur factorisation (gees).
    text = solve_with.lower(state, a, q).compile().as_text()
    assert text.count("lapack_dgees") == 0
    assert lqo.solve_continuous_lyapunov(a, q) is not None  # the plain solve still factorises
    plain = jax.jit(lambda a, q: lqo.solve_continuous_lyapunov(a, q)).lower(a, q).compile()
    assert plain.as_text().count("lapack_dgees") >= 1


def test_states_batch_under_vmap(rng):
    a = np.stack([ref.schur_stable(rng, 10) for _ in range(3)])
    q = ref.normal(rng, (3, 10, 10))
    states = jax.vmap(lambda a: lqo.factorise(a, discrete=True))(a)
    x = jax.vmap(lambda s, a, q: lqo.solve_discrete_lyapunov(a, q, state=s))(states, a, q)
    for k in range(3):
        expected = ref.solve("discrete_lyapunov", a[k], None, q[k])
        assert relative_error(x[k], expected) <= 1e-11


def test_a_state_of_other_coefficients_is_caught_by_the_residual_check(rng):
    a, b, c = ref.problem(rng, "sylvester", 10, 6)
    state = lqo.factorise(a, b)
    other = a - 0.5 * np.eye(10)
    solution = lqo.solve_sylvester(other, b, c, state=state, throw=False)
    assert solution.result == RESULTS.factorisation_mismatch
    with pytest.raises(eqx.EquinoxRuntimeError, match="state="):
        lqo.solve_sylvester(other, b, c, state=state)
    # The right factorisation of the same shapes succeeds.
    good = lqo.solve_sylvester(other, b, c, state=lqo.factorise(other, b), throw=False)
    assert good.result == RESULTS.successful


def test_a_state_of_another_kind_is_a_clear_error(rng):
    a, b, c = ref.problem(rng, "sylvester", 10, 6)
    lyapunov_state = lqo.factorise(a)
    with pytest.raises(TypeError, match="lqo.Factorisation"):
        lqo.solve_sylvester(a, b, c, state=(a, b))  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="continuous-time"):
        lqo.solve_discrete_lyapunov(a / 10, a, state=lyapunov_state)
    with pytest.raises(ValueError, match="other shapes or dtype"):
        lqo.solve_sylvester(a, b, c, state=lyapunov_state)  # B is 6 × 6, not 10 × 10
    with pytest.raises(ValueError, match="other shapes or dtype"):
        lqo.solve_continuous_lyapunov(a[:9, :9], c[:9, :6] @ c[:9, :6].T, state=lyapunov_state)
    float32_state = lqo.factorise(a.astype(np.float32))
    with pytest.raises(ValueError, match="other shapes or dtype"):
        lqo.solve_continuous_lyapunov(a, c @ c.T, state=float32_state)
    with pytest.raises(ValueError, match="leave `solver` out"):
        lqo.solve_sylvester(a, b, c, state=lqo.factorise(a, b), solver=lqo.Kronecker())
    with pytest.raises(TypeError, match="solver Module"):
        lqo.factorise(a, solver="bartels_stewart")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="square"):
        lqo.factorise(a[:, :3])
    # A Lyapunov state serves the Sylvester form of the same equation, B = Aᴴ.
    x = lqo.solve_sylvester(a, a.T, c @ c.T, state=lyapunov_state)
    assert relative_error(x, ref.solve("continuous_lyapunov", a, None, c @ c.T)) <= 1e-12


def test_empty_equations_take_a_state(rng):
    a = ref.hurwitz(rng, 3)
    empty = np.zeros((0, 0))
    x = lqo.solve_sylvester(a, empty, np.zeros((3, 0)), state=lqo.factorise(a, empty))
    assert x.shape == (3, 0)
    y = lqo.solve_continuous_lyapunov(empty, empty, state=lqo.factorise(empty))
    assert y.shape == (0, 0)


@hypothesis.given(data=st.data(), discrete=st.booleans(), seed=st.integers(0, 2**31 - 1))
@hypothesis.settings(max_examples=12)
def test_property_a_state_solves_like_a_fresh_factorisation(data, discrete, seed):
    n = data.draw(st.sampled_from([3, 8]))
    a = np.asarray(data.draw(lqo.testing.stable_matrices(n, discrete=discrete)))
    equation = "discrete_lyapunov" if discrete else "continuous_lyapunov"
    q = ref.normal(np.random.default_rng(seed), (n, n))
    state = lqo.factorise(a, discrete=discrete, solver=lqo.BartelsStewart())
    x = solve(equation, a, None, q, state=state)
    assert relative_error(x, ref.solve(equation, a, None, q)) <= 1e-9


@pytest.mark.parametrize("equation", ref.EQUATIONS)
@pytest.mark.parametrize("solver_name", ["bartels_stewart", "kronecker", "iterative"])
@pytest.mark.parametrize("complex_", [False, True])
def test_a_transposed_factorisation_solves_the_transposed_equation(
    rng, equation, solver_name, complex_
):
    solver = solver_for(solver_name, equation)
    a, b, c = ref.problem(rng, equation, 9, 7, complex_=complex_)
    state = factorise(equation, a, b, solver).transpose()
    # Lᵀ has Aᵀ and Bᵀ; for a Lyapunov equation (B = Aᴴ) that is the Lyapunov equation of Aᵀ.
    x = solve(equation, a.T, b.T, c, state=state)
    assert relative_error(x, ref.solve(equation, a.T, b.T, c)) <= 1e-11
    # Twice transposed is the original factorisation.
    back = solve(equation, a, b, c, state=state.transpose())
    assert relative_error(back, ref.solve(equation, a, b, c)) <= 1e-11
    if not ref.is_lyapunov(equation):  # checked against the shapes of the transposed equation
        with pytest.raises(ValueError, match="other shapes or dtype"):
            solve(equation, a.T, b[:6, :6].T, c[:, :6], state=state)


def test_a_dense_balanced_truncation_needs_one_schur_form(rng):
    # The observability equation (in Aᵀ) reuses the controllability one's Schur form of A.
    a = ref.hurwitz(rng, 20)
    sys = lqo.LQOSystem(a, ref.normal(rng, (20, 2)), ref.normal(rng, (3, 20)))
    program = jax.jit(lambda s: lqo.balanced_truncation(s, 4).value.A).lower(sys).compile()
    assert program.as_text().count("lapack_dgees") == 1
    q = lqo.observability_gramian(sys)
    c = np.asarray(sys.C)
    assert relative_error(q, ref.solve("continuous_lyapunov", a.T, None, -c.T @ c)) <= 1e-12


def test_an_eager_solve_is_one_compiled_program(rng):
    # Outside `jit` the solves (and `factorise`) run as compiled programs, as lineax's
    # `linear_solve` does: a second call of the same shapes traces nothing (op by op, every
    # call traced `custom_linear_solve`'s solves again: ~130 ms at n = 48 instead of ~1 ms).
    traces, listening = [], [True]

    def count(name, _duration, **_):
        # JAX has no public way to unregister a listener: this one stops counting instead.
        if listening[0] and name == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(name)

    a, q = ref.hurwitz(rng, 9), ref.normal(rng, (9, 9))
    calls = (
        lambda a, q: lqo.solve_continuous_lyapunov(a, q),
        lambda a, q: lqo.solve_sylvester(a, a, q, throw=False).value,
        lambda a, q: lqo.solve_continuous_lyapunov(a, q, state=lqo.factorise(a)),
    )
    for call in calls:
        call(a, q)  # compiles
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for call in calls:
            x = call(a - 0.1 * np.eye(9), 2 * q)  # new values, same shapes
            assert np.all(np.isfinite(np.asarray(x)))
    finally:
        listening[0] = False
    assert traces == []


def test_eager_gramians_norms_and_truncations_are_compiled_programs(rng):
    # `jaxlqo/_compiled.py`: a repeated eager call of the same shapes traces nothing, and a
    # NumPy integer rank is a static Python int there as everywhere.
    traces, listening = [], [True]

    def count(name, _duration, **_):
        if listening[0] and name == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(name)

    def system(scale):
        return lqo.LQOSystem(
            scale * ref.hurwitz(rng, 8), ref.normal(rng, (8, 2)), ref.normal(rng, (1, 8))
        )

    calls = (
        lambda s: lqo.observability_gramian(s),
        lambda s: lqo.hankel_singular_values(s),
        lambda s: lqo.h2_norm(s),
        lambda s: lqo.h2_error(s, s),
        lambda s: lqo.balanced_truncation(s, np.int64(3)).value.A,
        lambda s: lqo.modal_truncation(s, 3).value.poles,
    )
    for call in calls:
        call(system(1.0))  # compiles
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for call in calls:
            assert np.all(np.isfinite(np.asarray(call(system(2.0)))))
    finally:
        listening[0] = False
    assert traces == []
