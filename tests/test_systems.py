"""LQOSystem / DiagonalLQOSystem: construction, validation, dtypes and realification."""

import re

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo

T = lqo.testing


def _dense(n=2, m=1, p=1, **overrides):
    rng = np.random.default_rng(0)
    args = dict(
        A=0.3 * rng.standard_normal((n, n)),
        B=rng.standard_normal((n, m)),
        C=rng.standard_normal((p, n)),
        M=rng.standard_normal((p, n, n)),
        D=rng.standard_normal((p, m)),
    )
    args.update(overrides)
    return args


def _diagonal(n=2, m=1, p=1, k=1, **overrides):
    rng = np.random.default_rng(0)
    cn = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)  # noqa: E731
    args = dict(
        poles=0.5 * np.exp(1j * rng.uniform(0, np.pi, n)),
        B=cn(n, m),
        C=cn(p, n),
        D=rng.standard_normal((p, m)),
        F=cn(p, k, n),
        G=cn(p, k, n),
    )
    args.update(overrides)
    return args


def _make_dense(args, dt=1.0):
    return lqo.LQOSystem(args["A"], args["B"], args["C"], args["M"], args["D"], dt=dt)


def _make_diagonal(args, dt=1.0):
    return lqo.DiagonalLQOSystem(
        args["poles"], args["B"], args["C"], args["D"], F=args["F"], G=args["G"], dt=dt
    )


# --- shape validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, bad, expected",
    [
        ("A", np.zeros((2, 3)), "square (n, n)"),
        ("A", np.zeros(2), "(*, *)"),
        ("B", np.zeros((3, 1)), "(2, *)"),
        ("B", np.zeros(2), "(2, *)"),
        ("C", np.zeros((1, 3)), "(*, 2)"),
        ("M", np.zeros((1, 2, 3)), "(1, 2, 2)"),
        ("M", np.zeros((2, 2)), "(1, 2, 2)"),
        ("M", np.zeros((2, 2, 2)), "(1, 2, 2)"),
        ("D", np.zeros((1, 2)), "(1, 1)"),
        ("D", np.zeros((2, 1)), "(1, 1)"),
    ],
)
def test_dense_shape_errors_name_argument_and_shapes(name, bad, expected):
    args = _dense(n=2, m=1, p=1, **{name: bad})
    with pytest.raises(ValueError) as info:
        _make_dense(args)
    msg = str(info.value)
    assert msg.startswith("LQOSystem:") and f"`{name}`" in msg
    assert expected in msg, msg
    assert f"got shape {bad.shape}" in msg, msg


@pytest.mark.parametrize(
    "name, bad, expected",
    [
        ("poles", np.zeros((2, 2), complex), "(*)"),
        ("B", np.zeros((3, 1), complex), "(2, *)"),
        ("C", np.zeros((1, 3), complex), "(*, 2)"),
        ("D", np.zeros((1, 2)), "(1, 1)"),
        ("F", np.zeros((2, 1, 2), complex), "(1, *, 2)"),
        ("F", np.zeros((1, 2), complex), "(1, *, 2)"),
        ("G", np.zeros((1, 2, 2), complex), "(1, 1, 2)"),
    ],
)
def test_diagonal_shape_errors_name_argument_and_shapes(name, bad, expected):
    args = _diagonal(n=2, m=1, p=1, k=1, **{name: bad})
    with pytest.raises(ValueError) as info:
        _make_diagonal(args)
    msg = str(info.value)
    assert msg.startswith("DiagonalLQOSystem:") and f"`{name}`" in msg
    assert expected in msg, msg
    assert f"got shape {bad.shape}" in msg, msg


@pytest.mark.parametrize("missing", ["F", "G"])
def test_diagonal_quadratic_readout_needs_both_factors(missing):
    args = _diagonal(**{missing: None})
    with pytest.raises(ValueError, match=re.escape("pass both `F` and `G`")):
        _make_diagonal(args)


def test_diagonal_complex_feedthrough_is_rejected():
    args = _diagonal(D=np.ones((1, 1), complex))
    with pytest.raises(TypeError, match="`D` must be real"):
        _make_diagonal(args)


@pytest.mark.parametrize("bad", [np.array([["a", "b"], ["c", "d"]]), np.array([[None]])])
def test_non_numeric_arrays_are_rejected(bad):
    with pytest.raises(TypeError, match="argument `A` has dtype"):
        lqo.LQOSystem(bad, np.zeros((bad.shape[0], 1)), np.zeros((1, bad.shape[0])), dt=1.0)


def test_properties():
    sys = _make_dense(_dense(n=3, m=2, p=4))
    assert (sys.n, sys.m, sys.p) == (3, 2, 4) and not sys.is_lti and sys.is_discrete
    assert sys.to_dense() is sys
    lti = lqo.LQOSystem(np.eye(3), np.ones((3, 2)), np.ones((4, 3)))
    assert lti.is_lti and not lti.is_discrete and lti.M is None
    np.testing.assert_array_equal(lti.D, np.zeros((4, 2)))
    diag = _make_diagonal(_diagonal(n=3, m=2, p=4, k=2))
    assert (diag.n, diag.m, diag.p) == (3, 2, 4) and not diag.is_lti
    args = _diagonal(n=3, m=2, p=4, F=None, G=None)
    assert _make_diagonal(args, dt=None).is_lti


# --- dtypes -------------------------------------------------------------------------------


def test_uint16_is_promoted_before_any_arithmetic():
    # 60000² overflows uint16 (and 60000² · 60000 overflows int32): none of it may wrap.
    A = np.zeros((1, 1), np.uint16)
    B = np.full((1, 1), 60000, np.uint16)
    C = np.ones((1, 1), np.uint16)
    M = np.full((1, 1, 1), 60000, np.uint16)
    D = np.full((1, 1), 60000, np.uint16)
    sys = lqo.LQOSystem(A, B, C, M, D, dt=1.0)
    assert all(x.dtype == jnp.float64 for x in (sys.A, sys.B, sys.C, sys.M, sys.D))
    np.testing.assert_array_equal(sys.B.T @ sys.B, [[3.6e9]])
    y = lqo.simulate(sys, np.array([[1], [0]], np.uint16))
    # y_0 = D u_0 = 6e4; x_1 = B u_0 = 6e4 so y_1 = C x_1 + M x_1² = 6e4 + 6e4³.
    np.testing.assert_array_equal(y, [[6e4], [6e4 + 6e4**3]])


@pytest.mark.parametrize("int_dtype", [np.uint16, np.int8, np.int32, np.int64, np.bool_])
def test_integer_inputs_match_float_inputs(int_dtype, rng):
    hi = 2 if int_dtype is np.bool_ else 5
    ints = {
        k: rng.integers(0, hi, size=s).astype(int_dtype)
        for k, s in dict(A=(3, 3), B=(3, 2), C=(2, 3), M=(2, 3, 3), D=(2, 2)).items()
    }
    as_int = lqo.LQOSystem(*(ints[k] for k in "ABCMD"), dt=1.0)
    as_float = lqo.LQOSystem(*(ints[k].astype(np.float64) for k in "ABCMD"), dt=1.0)
    for a, b in zip(jax.tree.leaves(as_int), jax.tree.leaves(as_float), strict=True):
        assert a.dtype == b.dtype == jnp.float64
        np.testing.assert_array_equal(a, b)
    u = rng.integers(0, hi, size=(6, 2)).astype(int_dtype)
    np.testing.assert_array_equal(lqo.simulate(as_int, u), lqo.simulate(as_float, u))


def test_integer_diagonal_inputs_are_promoted():
    sys = lqo.DiagonalLQOSystem(
        np.array([0, 1]),
        np.ones((2, 1), np.uint16),
        np.ones((1, 2), np.int32),
        np.ones((1, 1), int),
        dt=1.0,
    )
    assert sys.poles.dtype == sys.B.dtype == sys.C.dtype == jnp.complex128
    assert sys.D.dtype == jnp.float64


def test_float32_is_preserved():
    args = {k: np.asarray(v, np.float32) for k, v in _dense().items()}
    sys = _make_dense(args)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(sys))
    dargs = {
        k: np.asarray(v, np.float32 if k == "D" else np.complex64) for k, v in _diagonal().items()
    }
    diag = _make_diagonal(dargs)
    assert diag.poles.dtype == jnp.complex64 and diag.D.dtype == jnp.float32


def test_mixed_dtypes_are_cast_to_one_common_dtype():
    # Works under conftest's strict dtype promotion: the casts are explicit.
    args = _dense()
    args["A"] = args["A"].astype(np.float32)
    args["B"] = args["B"].astype(np.complex64)
    sys = _make_dense(args)
    assert all(x.dtype == jnp.complex128 for x in jax.tree.leaves(sys))
    # Real poles are promoted to complex; complex64 and float64 meet at complex128.
    dargs = _diagonal()
    dargs["poles"] = np.array([0.5, -0.2])
    dargs["B"] = dargs["B"].astype(np.complex64)
    diag = _make_diagonal(dargs)
    assert diag.poles.dtype == diag.B.dtype == diag.F.dtype == jnp.complex128
    assert diag.D.dtype == jnp.float64


# --- symmetrisation, immutability, pytree behaviour ---------------------------------------


def test_M_is_symmetrised_without_changing_the_quadratic_form(rng):
    args = _dense(n=3, p=2)
    M = args["M"].copy()
    sys = _make_dense(args)
    np.testing.assert_array_equal(args["M"], M)  # the caller's array is not mutated
    np.testing.assert_allclose(sys.M, 0.5 * (M + np.swapaxes(M, 1, 2)), rtol=0, atol=0)
    np.testing.assert_array_equal(sys.M, jnp.swapaxes(sys.M, 1, 2))
    x = rng.standard_normal(3)
    expected = np.einsum("i,jik,k->j", x, M, x)
    y = sys.output(jnp.asarray(x), jnp.zeros(1)) - sys.C @ x
    np.testing.assert_allclose(y, expected, rtol=1e-13)


def test_systems_are_pytrees_with_static_dt():
    sys = _make_dense(_dense())
    leaves, treedef = jax.tree.flatten(sys)
    assert len(leaves) == 5  # A, B, C, M, D; dt is static
    doubled = eqx.tree_at(lambda s: s.B, sys, 2 * sys.B)
    np.testing.assert_array_equal(doubled.B, 2 * sys.B)
    assert doubled.dt == sys.dt

    @jax.jit
    def first_output(s):
        assert s.dt == 1.0  # static: a Python float at trace time
        return lqo.simulate(s, jnp.ones((3, 1)))

    np.testing.assert_allclose(first_output(sys), lqo.simulate(sys, jnp.ones((3, 1))))


def test_construction_under_jit():
    args = _dense()

    @jax.jit
    def build(A):
        return lqo.LQOSystem(A, args["B"], args["C"], args["M"], args["D"], dt=0.5)

    sys = build(jnp.asarray(args["A"]))
    np.testing.assert_array_equal(sys.A, args["A"])
    assert sys.dt == 0.5


# --- dt ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [0.0, -1.0, float("nan"), float("inf"), -np.inf])
@pytest.mark.parametrize("make", [_make_dense, _make_diagonal])
def test_bad_dt_is_a_value_error(make, dt):
    args = _dense() if make is _make_dense else _diagonal()
    with pytest.raises(ValueError, match="`dt` must be a positive finite number"):
        make(args, dt=dt)


@pytest.mark.parametrize("dt", ["1.0s", [1.0, 2.0], np.ones(2)])
def test_non_numeric_dt_is_a_type_error(dt):
    with pytest.raises(TypeError, match="`dt` must be None"):
        _make_dense(_dense(), dt=dt)


def test_traced_dt_is_a_type_error():
    args = _dense()

    def build(dt):
        return lqo.LQOSystem(args["A"], args["B"], args["C"], dt=dt)

    with pytest.raises(TypeError, match="cannot be a traced value"):
        jax.jit(build)(1.0)


@pytest.mark.parametrize("dt", [2, np.float32(0.25), jnp.asarray(0.5)])
def test_dt_is_stored_as_a_python_float(dt):
    sys = _make_dense(_dense(), dt=dt)
    assert type(sys.dt) is float and sys.dt == float(dt)


def test_diagonal_dt_is_required():
    args = _diagonal()
    with pytest.raises(TypeError, match="dt"):
        lqo.DiagonalLQOSystem(args["poles"], args["B"], args["C"])  # type: ignore[call-arg]


# --- realification ------------------------------------------------------------------------


def test_to_dense_small_example():
    # x = a + ib, λ = α + iβ; one state, one input, one output, F = G = 1.
    sys = lqo.DiagonalLQOSystem(
        np.array([0.5 + 0.25j]),
        np.array([[1.0 + 2.0j]]),
        np.array([[3.0 - 1.0j]]),
        np.array([[0.5]]),
        F=np.array([[[1.0 + 0.0j]]]),
        G=np.array([[[0.0 + 1.0j]]]),
        dt=1.0,
    )
    dense = sys.to_dense()
    np.testing.assert_array_equal(dense.A, [[0.5, -0.25], [0.25, 0.5]])
    np.testing.assert_array_equal(dense.B, [[1.0], [2.0]])
    np.testing.assert_array_equal(dense.C, [[3.0, 1.0]])  # Re((3 − i)(a + ib)) = 3a + b
    # Re(x) · Re(i x) = a · (−b): M = [[0, −½], [−½, 0]].
    np.testing.assert_array_equal(dense.M, [[[0.0, -0.5], [-0.5, 0.0]]])
    np.testing.assert_array_equal(dense.D, [[0.5]])
    assert dense.dt == 1.0


_to_dense = eqx.filter_jit(lambda sys: sys.to_dense())


@hypothesis.given(
    T.diagonal_systems(
        n=st.integers(1, 5),
        m=st.integers(1, 2),
        p=st.integers(1, 3),
        rank=st.integers(1, 3),
        lti=st.booleans(),
        discrete=st.booleans(),
    )
)
def test_to_dense_structure(sys):
    dense = _to_dense(sys)
    n = sys.n
    assert isinstance(dense, lqo.LQOSystem) and dense.dt == sys.dt
    assert dense.A.shape == (2 * n, 2 * n) and dense.B.shape == (2 * n, sys.m)
    assert dense.C.shape == (sys.p, 2 * n) and dense.D.shape == (sys.p, sys.m)
    assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(dense))
    assert dense.is_lti == sys.is_lti
    # The spectrum of the realification is λ ∪ λ̄.
    expected = list(np.concatenate([sys.poles, np.conj(sys.poles)]))
    for lam in np.linalg.eigvals(np.asarray(dense.A)):  # greedy nearest matching
        i = int(np.argmin(np.abs(np.asarray(expected) - lam)))
        assert abs(expected.pop(i) - lam) <= 1e-12


@jax.jit
def _simulate_both(sys, u):
    # One compilation per drawn shape (eager scans would compile op by op).
    return lqo.simulate(sys, u), lqo.simulate(sys.to_dense(), u)


@hypothesis.given(
    st.data(),
    T.diagonal_systems(
        n=st.integers(1, 5), m=st.integers(1, 2), p=2, rank=st.integers(1, 2), lti=st.booleans()
    ),
)
def test_to_dense_simulates_identically(data, sys):
    u = data.draw(T.input_sequences(st.sampled_from([1, 2, 16]), sys.m), label="u")
    y_diag, y_dense = _simulate_both(sys, u)
    assert y_diag.shape == y_dense.shape == (u.shape[0], sys.p)
    scale = max(1.0, float(jnp.max(jnp.abs(y_dense))))
    np.testing.assert_allclose(y_diag, y_dense, rtol=0, atol=1e-12 * scale)
