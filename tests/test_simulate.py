"""`simulate` against an independent NumPy loop, under jit / vmap / grad, and its errors."""

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxlqo as lqo

T = lqo.testing

simulate = jax.jit(lqo.simulate)  # one compilation per drawn shape


# --- independent references: plain Python loops in NumPy ----------------------------------


def reference_dense(sys: lqo.LQOSystem, u) -> np.ndarray:
    """`x_{k+1} = A x_k + B u_k` from `x_0 = 0`, `y_k = C x_k + D u_k + [x_kᵀ M_j x_k]_j`."""
    A, B, C, D = (np.asarray(a) for a in (sys.A, sys.B, sys.C, sys.D))
    M = None if sys.M is None else np.asarray(sys.M)
    x = np.zeros(sys.n, A.dtype)
    ys = []
    for u_k in np.asarray(u):
        y = C @ x + D @ u_k
        if M is not None:
            y = y + np.array([x @ M_j @ x for M_j in M])
        ys.append(y)
        x = A @ x + B @ u_k
    return np.array(ys).reshape(len(ys), sys.p)


def reference_diagonal(sys: lqo.DiagonalLQOSystem, u) -> np.ndarray:
    """`x_{k+1} = λ ⊙ x_k + B u_k`, `y = Re(C x) + D u + Σ_l Re(F_l x) Re(G_l x)` (complex x)."""
    lam, B, C, D = (np.asarray(a) for a in (sys.poles, sys.B, sys.C, sys.D))
    x = np.zeros(sys.n, complex)
    ys = []
    for u_k in np.asarray(u):
        y = (C @ x).real + D @ u_k
        if sys.F is not None:
            F, G = np.asarray(sys.F), np.asarray(sys.G)
            for j in range(sys.p):
                y[j] += sum((F[j, l] @ x).real * (G[j, l] @ x).real for l in range(F.shape[1]))
        ys.append(y)
        x = lam * x + B @ u_k
    return np.array(ys).reshape(len(ys), sys.p)


def _assert_close(actual, expected, rtol=1e-12):
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def draw_one(strategy):
    """The first (simplest) example of `strategy`, deterministically and without shrinking."""
    drawn = []

    @hypothesis.settings(
        max_examples=1, database=None, derandomize=True, phases=[hypothesis.Phase.generate]
    )
    @hypothesis.given(strategy)
    def record(x):
        drawn.append(x)

    record()
    return drawn[0]


# Fixed poles, so the simplest draw is not the trivial `A = 0`; the seed still builds B, C, M.
DENSE_POLES = np.array([0.6 + 0.5j, 0.6 - 0.5j, -0.7])
DIAGONAL_POLES = np.array([0.6 + 0.5j, -0.7 + 0.1j, 0.3j])


def _dense_system(m=2, p=2, lti=False):
    return draw_one(T.lqo_systems(poles=DENSE_POLES, m=m, p=p, lti=lti, feedthrough=True))


def _diagonal_system(m=2, p=2, rank=2, lti=False):
    return draw_one(T.diagonal_systems(poles=DIAGONAL_POLES, m=m, p=p, rank=rank, lti=lti))


# --- values -------------------------------------------------------------------------------


def test_scalar_closed_form():
    # x = 0, 1, ½ for an impulse; y_k = 2 x_k + 3 x_k² + u_k.
    sys = lqo.LQOSystem([[0.5]], [[1.0]], [[2.0]], [[[3.0]]], [[1.0]], dt=1.0)
    y = lqo.simulate(sys, jnp.array([[1.0], [0.0], [0.0]]))
    np.testing.assert_array_equal(y, [[1.0], [5.0], [1.75]])


def test_diagonal_closed_form():
    # λ = i: x = 0, 1, i, −1; Re(x) = 0, 1, 0, −1; Re(F x) Re(G x) = Re(x) Re(i x) = −Re(x) Im(x).
    sys = lqo.DiagonalLQOSystem(
        jnp.array([1j]),
        jnp.array([[1.0 + 0j]]),
        jnp.array([[1.0 + 0j]]),
        F=jnp.array([[[1.0 + 0j]]]),
        G=jnp.array([[[1j]]]),
        dt=1.0,
    )
    y = lqo.simulate(sys, jnp.array([[1.0], [0.0], [0.0], [0.0]]))
    np.testing.assert_allclose(y, [[0.0], [1.0], [0.0], [-1.0]], atol=1e-15)


@hypothesis.given(
    st.data(),
    T.lqo_systems(
        n=st.integers(1, 5),
        m=st.integers(1, 2),
        p=st.integers(1, 2),
        lti=st.booleans(),
        feedthrough=True,
    ),
)
def test_dense_matches_numpy_loop(data, sys):
    u = data.draw(T.input_sequences(st.sampled_from([1, 3, 20]), sys.m), label="u")
    y = simulate(sys, u)
    assert y.shape == (u.shape[0], sys.p) and y.dtype == jnp.float64
    _assert_close(y, reference_dense(sys, u))


@hypothesis.given(
    st.data(),
    T.diagonal_systems(
        n=st.integers(1, 5),
        m=st.integers(1, 2),
        p=st.integers(1, 2),
        rank=st.integers(1, 2),
        lti=st.booleans(),
    ),
)
def test_diagonal_matches_numpy_loop(data, sys):
    u = data.draw(T.input_sequences(st.sampled_from([1, 3, 20]), sys.m), label="u")
    y = simulate(sys, u)
    assert y.shape == (u.shape[0], sys.p) and y.dtype == jnp.float64
    _assert_close(y, reference_diagonal(sys, u))


def test_complex_dense_system(rng):
    A = draw_one(T.stable_matrices(3, discrete=True, complex_=True, min_radius=0.5))
    B = rng.standard_normal((3, 1)) + 1j * rng.standard_normal((3, 1))
    C = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    M = rng.standard_normal((2, 3, 3)) + 0j
    sys = lqo.LQOSystem(A, B, C, M, dt=1.0)
    u = rng.standard_normal((7, 1))
    y = lqo.simulate(sys, u)
    assert y.dtype == jnp.complex128
    _assert_close(y, reference_dense(sys, u))
    _assert_close(lqo.simulate(sys, u + 1j * u), reference_dense(sys, u + 1j * u))


@pytest.mark.parametrize("make", [_dense_system, _diagonal_system])
def test_empty_sequence(make):
    sys = make()
    y = lqo.simulate(sys, jnp.zeros((0, sys.m)))
    assert y.shape == (0, sys.p)


def test_integer_inputs_are_promoted():
    sys = _dense_system()
    u = np.arange(10, dtype=np.int32).reshape(5, 2)
    np.testing.assert_array_equal(lqo.simulate(sys, u), lqo.simulate(sys, u.astype(np.float64)))


def test_float32_system_computes_in_float32():
    sys = draw_one(
        T.lqo_systems(poles=DENSE_POLES[:3], m=1, p=1, dtype=jnp.float32, feedthrough=True)
    )
    u = np.linspace(-1, 1, 8).reshape(8, 1)
    y = lqo.simulate(sys, u)
    assert y.dtype == jnp.float32
    _assert_close(y, reference_dense(sys, u.astype(np.float32)), rtol=1e-5)


# --- transformations ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [_dense_system, _diagonal_system])
def test_jit_vmap_and_loop_agree(make, rng):
    sys = make()
    us = jnp.asarray(rng.standard_normal((4, 9, sys.m)))
    loop = jnp.stack([lqo.simulate(sys, u) for u in us])  # eager
    batched = jax.jit(jax.vmap(lqo.simulate, in_axes=(None, 0)))(sys, us)
    jit_one = jax.jit(lqo.simulate)(sys, us[0])
    np.testing.assert_allclose(batched, loop, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jit_one, loop[0], rtol=1e-13, atol=1e-13)
    reference = reference_dense if isinstance(sys, lqo.LQOSystem) else reference_diagonal
    _assert_close(loop[2], reference(sys, us[2]))


@pytest.mark.parametrize("make", [_dense_system, _diagonal_system])
def test_vmap_over_a_batch_of_systems(make, rng):
    sys = make()
    scales = jnp.array([0.5, 1.0, 2.0])

    # A batch of systems sharing static structure (dt): scale the input matrix.
    def with_scaled_B(s):
        return eqx.tree_at(lambda t: t.B, sys, s.astype(sys.B.dtype) * sys.B)

    stacked = jax.vmap(with_scaled_B)(scales)
    u = jnp.asarray(rng.standard_normal((6, sys.m)))
    batched = jax.jit(jax.vmap(lqo.simulate, in_axes=(0, None)))(stacked, u)
    reference = reference_dense if isinstance(sys, lqo.LQOSystem) else reference_diagonal
    for i, s in enumerate(scales):
        _assert_close(batched[i], reference(with_scaled_B(s), u))


# --- gradients ----------------------------------------------------------------------------


def _check_grads(f, args):
    # First order in both modes, second order in reverse mode (the one training uses): the full
    # fwd × rev second-order product costs ~4× more compilation for little extra coverage.
    check_grads(f, args, order=1, modes=("fwd", "rev"))
    check_grads(f, args, order=2, modes=("rev",))


def test_check_grads_dense(rng):
    sys = _dense_system(m=2, p=2)
    u = jnp.asarray(rng.standard_normal((6, 2)))

    @jax.jit  # check_grads transforms it many times: compile once per transformation
    def f(A, B, C, M, D, u):
        return lqo.simulate(lqo.LQOSystem(A, B, C, M, D, dt=1.0), u)

    _check_grads(f, (sys.A, sys.B, sys.C, sys.M, sys.D, u))


def test_check_grads_diagonal_complex_leaves(rng):
    sys = _diagonal_system(m=2, p=2, rank=2)
    u = jnp.asarray(rng.standard_normal((6, 2)))

    @jax.jit
    def f(poles, B, C, D, F, G, u):
        return lqo.simulate(lqo.DiagonalLQOSystem(poles, B, C, D, F=F, G=G, dt=1.0), u)

    args = (sys.poles, sys.B, sys.C, sys.D, sys.F, sys.G, u)
    _check_grads(f, args)


def test_check_grads_stable_pole_parameterisation(rng):
    # Real parameters, as an optimiser sees them: λ = exp(−exp(ν) + iθ) is always stable.
    sys = _diagonal_system(m=1, p=1, rank=1)
    nu = jnp.asarray(rng.uniform(-2.0, 0.5, 3))
    theta = jnp.asarray(rng.uniform(0.0, np.pi, 3))
    u = jnp.asarray(rng.standard_normal((8, 1)))

    @jax.jit
    def loss(nu, theta):
        poles = jnp.exp(jax.lax.complex(-jnp.exp(nu), theta))
        one = eqx.tree_at(lambda s: s.poles, sys, poles)
        return jnp.sum(lqo.simulate(one, u) ** 2)

    _check_grads(loss, (nu, theta))


def test_gradient_closed_form():
    # For an LTI system and J = Σ_k w_kᵀ y_k with y_k = C Σ_{i<k} A^{k−1−i} B u_i + D u_k:
    # ∂J/∂B = Σ_k Σ_{i<k} (A^{k−1−i})ᵀ Cᵀ w_k u_iᵀ and ∂J/∂D = Σ_k w_k u_kᵀ.
    # With a quadratic output, ∂J/∂M_j = Σ_k w_kj x_k x_kᵀ.
    sys = _dense_system(m=2, p=2)
    rng = np.random.default_rng(1)
    u = rng.standard_normal((7, 2))
    w = rng.standard_normal((7, 2))

    def loss(s):
        return jnp.sum(jnp.asarray(w) * lqo.simulate(s, jnp.asarray(u)))

    grads = eqx.filter_grad(loss)(sys)
    A, C = np.asarray(sys.A), np.asarray(sys.C)
    gB = np.zeros((3, 2))
    for k in range(7):
        for i in range(k):
            gB += np.linalg.matrix_power(A, k - 1 - i).T @ C.T @ np.outer(w[k], u[i])
    np.testing.assert_allclose(grads.B[:, :], _grad_B_with_quadratic(sys, u, w, gB), rtol=1e-10)
    np.testing.assert_allclose(grads.D, w.T @ u, rtol=1e-12)
    x = _states(sys, u)
    gM = np.einsum("kj,ka,kb->jab", w, x, x)
    np.testing.assert_allclose(grads.M, gM, rtol=1e-10, atol=1e-12)


def _states(sys, u):
    A, B = np.asarray(sys.A), np.asarray(sys.B)
    xs, x = [], np.zeros(sys.n)
    for u_k in u:
        xs.append(x)
        x = A @ x + B @ u_k
    return np.array(xs)


def _grad_B_with_quadratic(sys, u, w, gB_linear):
    # The quadratic term adds Σ_k Σ_j w_kj ∂(x_kᵀ M_j x_k)/∂B
    #   = Σ_k Σ_{i<k} (A^{k−1−i})ᵀ 2 M̄_k x_k u_iᵀ,   with M̄_k = Σ_j w_kj M_j (symmetric).
    A, M = np.asarray(sys.A), np.asarray(sys.M)
    x = _states(sys, u)
    g = gB_linear.copy()
    for k in range(len(u)):
        Mk = np.einsum("j,jab->ab", w[k], M)
        for i in range(k):
            g += np.linalg.matrix_power(A, k - 1 - i).T @ (2 * Mk @ x[k])[:, None] @ u[i][None, :]
    return g


# --- errors -------------------------------------------------------------------------------


def test_continuous_time_is_rejected():
    d = _dense_system()
    dense = lqo.LQOSystem(d.A, d.B, d.C, d.M, d.D, dt=None)
    g = _diagonal_system()
    diag = lqo.DiagonalLQOSystem(g.poles, g.B, g.C, g.D, F=g.F, G=g.G, dt=None)
    for sys in (dense, diag):
        with pytest.raises(ValueError, match="continuous time"):
            lqo.simulate(sys, jnp.zeros((4, sys.m)))


def test_continuous_time_from_strategy_is_rejected():
    sys = draw_one(T.lqo_systems(discrete=False))
    with pytest.raises(ValueError, match=r"simulate: `sys` is continuous time \(dt=None\)"):
        lqo.simulate(sys, jnp.zeros((4, sys.m)))


@pytest.mark.parametrize("shape", [(5,), (5, 3), (5, 1), (2, 5, 2), ()])
@pytest.mark.parametrize("make", [_dense_system, _diagonal_system])
def test_wrong_u_shape(make, shape):
    sys = make(m=2)
    with pytest.raises(ValueError) as info:
        lqo.simulate(sys, jnp.zeros(shape))
    msg = str(info.value)
    assert "simulate: argument `u` must have shape (*, 2)" in msg
    assert f"got shape {shape}" in msg


def test_complex_u_for_a_real_system_is_a_type_error():
    sys = _dense_system(m=2)
    with pytest.raises(TypeError, match="`u` has complex dtype"):
        lqo.simulate(sys, jnp.ones((3, 2), jnp.complex128))
    diag = _diagonal_system(m=2)
    with pytest.raises(TypeError, match="`u` has complex dtype"):
        lqo.simulate(diag, jnp.ones((3, 2), jnp.complex128))


def test_a_system_kind_without_its_methods_cannot_be_built():
    # The behaviour that differs between system kinds is abstract on `AbstractSystem`: a
    # subclass that forgets some of it fails when built, not deep inside a solver.
    class Custom(lqo.AbstractSystem):
        dt: float = 1.0

        @property
        def m(self):
            return 1

        @property
        def D(self):
            return jnp.zeros((1, 1))

    with pytest.raises(TypeError, match="abstract"):
        Custom()
