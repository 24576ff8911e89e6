"""Size 0 (no states, no inputs or no outputs) through the solver, Gramian and norm layers.

SciPy's solvers accept empty matrices and return an empty array of the input's dtype; jaxlqo's
do the same for every solver, eagerly, under `jit`, `vmap` and `grad`. A system with no states
is a static gain `y = D u`: empty Gramians and Hankel singular values, and the h2 norm of its
feedthrough, which is `‖D‖_F` in discrete time (the lag-0 Markov parameter) and, in continuous
time, 0 for `D = 0` and `inf` otherwise (`D δ(t)`), as `control.norm` gives for `D ≠ 0`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla

import jaxlqo as lqo

SOLVERS = [lqo.AutoSolver(), lqo.Kronecker(), lqo.BartelsStewart()]
E0 = np.zeros((0, 0))


def _solve(equation, a, b, c, solver, **kw):
    if equation == "sylvester":
        return lqo.solve_sylvester(a, b, c, solver=solver, **kw)
    if equation == "discrete_sylvester":
        return lqo.solve_discrete_sylvester(a, b, c, solver=solver, **kw)
    if equation == "continuous_lyapunov":
        return lqo.solve_continuous_lyapunov(a, c, solver=solver, **kw)
    return lqo.solve_discrete_lyapunov(a, c, solver=solver, **kw)


@pytest.mark.parametrize("solver", SOLVERS, ids=type)
@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_empty_lyapunov_matches_scipy(solver, dtype):
    e0 = E0.astype(dtype)
    for ours, theirs in (
        (lqo.solve_continuous_lyapunov, sla.solve_continuous_lyapunov),
        (lqo.solve_discrete_lyapunov, sla.solve_discrete_lyapunov),
    ):
        expected = theirs(e0, e0)
        x = ours(e0, e0, solver=solver)
        assert x.shape == expected.shape == (0, 0)
        assert x.dtype == dtype
    x = lqo.solve_continuous_lyapunov(np.zeros(0, dtype), e0, solver=solver)  # 1-D A
    assert x.shape == (0, 0) and x.dtype == dtype


@pytest.mark.parametrize("equation", ["sylvester", "discrete_sylvester"])
@pytest.mark.parametrize("n, m", [(0, 3), (3, 0), (0, 0)])
def test_empty_sylvester_matches_scipy(equation, n, m):
    a, b, c = -2 * np.eye(n), -np.eye(m), np.zeros((n, m))
    expected = sla.solve_sylvester(a, b, c)
    for solver in SOLVERS:
        x = _solve(equation, a, b, c, solver)
        assert x.shape == expected.shape == (n, m) and x.dtype == np.float64
    # One diagonal side of size 0; and both 1-D (the closed form).
    assert _solve(equation, np.zeros(n), b, c, lqo.AutoSolver()).shape == (n, m)
    assert _solve(equation, np.zeros(n), np.ones(m), c, lqo.Diagonal()).shape == (n, m)
    sol = _solve(equation, a, b, c, lqo.AutoSolver(), throw=False)
    assert bool(sol.result == lqo.RESULTS.successful)


def test_empty_solves_under_jit_vmap_grad():
    a3 = -np.eye(3) + np.triu(np.ones((3, 3)), 1)
    c = jnp.zeros((3, 0))
    x = jax.jit(lambda a, b, c: lqo.solve_sylvester(a, b, c))(a3, E0, c)
    assert x.shape == (3, 0)
    xs = jax.vmap(lambda a: lqo.solve_sylvester(a, E0, c))(jnp.stack([a3, 2 * a3]))
    assert xs.shape == (2, 3, 0)
    grad = jax.grad(lambda a: jnp.sum(lqo.solve_sylvester(a, E0, c)) + jnp.sum(a))(a3)
    np.testing.assert_array_equal(grad, np.ones((3, 3)))
    # A non-finite non-empty coefficient is still reported.
    sol = lqo.solve_sylvester(a3 * np.nan, E0, c, throw=False)
    assert bool(sol.result == lqo.RESULTS.nonfinite_input)


def _static_gain(dt, d):
    return lqo.LQOSystem(E0, np.zeros((0, 2)), np.zeros((1, 0)), D=d, dt=dt)


@pytest.mark.parametrize("dt", [None, 1.0])
def test_static_gain_gramians_and_norm(dt):
    d = np.array([[3.0, 4.0]])
    sys = _static_gain(dt, d)
    for gramian in (lqo.controllability_gramian, lqo.observability_gramian):
        assert gramian(sys).shape == (0, 0)
        assert gramian(sys, horizon=5 if dt else 2.0).shape == (0, 0)
    assert lqo.hankel_singular_values(sys).shape == (0,)
    assert bool(lqo.is_stable(sys))
    # Discrete: the lag-0 Markov parameter ‖D‖_F = 5; continuous: D δ(t), an infinite norm.
    expected = 5.0 if dt else np.inf
    assert float(lqo.h2_norm(sys, throw=False).value) == expected
    assert float(lqo.h2_norm(_static_gain(dt, 0 * d))) == 0.0
    assert float(jax.jit(lqo.h2_norm)(_static_gain(dt, 0 * d))) == 0.0


def test_static_gain_norm_agrees_with_control_where_it_answers():
    control = pytest.importorskip("control")
    d = np.array([[3.0, 4.0]])
    # control.norm answers inf for a continuous static gain with D ≠ 0 (and crashes on the
    # others: an IndexError on the empty Gramian).
    with pytest.warns(UserWarning):
        theirs = control.norm(control.ss(E0, np.zeros((0, 2)), np.zeros((1, 0)), d), 2)
    assert theirs == np.inf
    assert float(lqo.h2_norm(_static_gain(None, d), throw=False).value) == theirs


def test_h2_error_against_a_static_gain_is_the_norm():
    rng = np.random.default_rng(0)
    a = 0.5 * np.eye(3) + 0.1 * rng.standard_normal((3, 3))
    b, c, d = rng.standard_normal((3, 2)), rng.standard_normal((1, 3)), rng.standard_normal((1, 2))
    sys = lqo.LQOSystem(a, b, c, D=d, dt=1.0)
    zero_rom = _static_gain(1.0, d)  # the same feedthrough: the error is the dynamic part
    expected = np.sqrt(np.trace(c @ sla.solve_discrete_lyapunov(a, b @ b.T) @ c.T))
    error = jax.jit(lqo.h2_error)
    np.testing.assert_allclose(float(error(sys, zero_rom)), expected, rtol=1e-12)
    assert float(error(zero_rom, zero_rom)) == 0.0


def test_diagonal_system_with_no_states():
    for dt in (None, 1.0):
        sys = lqo.DiagonalLQOSystem(np.zeros(0, complex), np.zeros((0, 2)), np.zeros((1, 0)), dt=dt)
        assert float(lqo.h2_norm(sys)) == 0.0
        assert lqo.controllability_gramian(sys).shape == (0, 0)
        assert lqo.hankel_singular_values(sys).shape == (0,)
