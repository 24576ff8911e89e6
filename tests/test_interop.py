"""Conversion to and from python-control and scipy.signal: round trips, dt, h2 norms, errors."""

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal as signal

import jaxlqo as lqo

control = pytest.importorskip("control")


def _matrices(rng, n=4, m=2, p=3, *, discrete=False):
    a = rng.normal(size=(n, n))
    if discrete:
        a = 0.8 * a / np.max(np.abs(np.linalg.eigvals(a)))
    else:
        a = a - (np.max(np.linalg.eigvals(a).real) + 1.0) * np.eye(n)
    return a, rng.normal(size=(n, m)), rng.normal(size=(p, n)), rng.normal(size=(p, m))


def _assert_same(sys: lqo.LQOSystem, a, b, c, d):
    for x, y in ((sys.A, a), (sys.B, b), (sys.C, c), (sys.D, d)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- python-control ----------------------------------------------------------------------


@pytest.mark.parametrize("dt", [None, 0.1, 2.0])
def test_control_round_trip(rng, dt):
    a, b, c, d = _matrices(rng, discrete=dt is not None)
    sys = lqo.LQOSystem(a, b, c, D=d, dt=dt)
    ext = lqo.to_control(sys)
    assert isinstance(ext, control.StateSpace)
    assert ext.dt == (0 if dt is None else dt)
    assert ext.isctime(strict=True) == (dt is None)
    _assert_same(lqo.LQOSystem(ext.A, ext.B, ext.C, D=ext.D, dt=dt), a, b, c, d)
    back = lqo.from_control(ext)
    assert back.dt == dt and back.M is None
    _assert_same(back, a, b, c, d)
    assert back.A.dtype == jnp.float64


@pytest.mark.parametrize(
    "control_dt, expected", [(0, None), (None, None), (True, 1.0), (0.25, 0.25)]
)
def test_from_control_dt_conventions(rng, control_dt, expected):
    a, b, c, d = _matrices(rng, discrete=True)
    assert lqo.from_control(control.ss(a, b, c, d, control_dt)).dt == expected


def test_from_control_transfer_function():
    tf = control.tf([1.0, 2.0], [1.0, 3.0, 2.0, 1.0])
    sys = lqo.from_control(tf)
    assert (sys.n, sys.m, sys.p, sys.dt) == (3, 1, 1, None)
    reference = control.ss(tf)
    np.testing.assert_allclose(np.asarray(sys.A), reference.A)


@pytest.mark.parametrize("dt", [None, 0.5])
def test_h2_norm_agrees_with_control(rng, dt):
    a, b, c, d = _matrices(rng, discrete=dt is not None)
    if dt is None:
        d = np.zeros_like(d)  # continuous h2 norms need D = 0 (else both are inf)
    ext = control.ss(a, b, c, d, 0 if dt is None else dt)
    expected = control.norm(ext, 2, method="scipy")
    np.testing.assert_allclose(float(lqo.h2_norm(lqo.from_control(ext))), expected, rtol=1e-10)


def test_continuous_feedthrough_is_infinite_in_both(rng):
    a, b, c, d = _matrices(rng)
    ext = control.ss(a, b, c, d)
    with pytest.warns(UserWarning, match="feedthrough"):
        assert control.norm(ext, 2, method="scipy") == np.inf
    assert float(lqo.h2_norm(lqo.from_control(ext))) == np.inf


def test_c2d_matches_discrete_h2(rng):
    a, b, c, d = _matrices(rng)
    ext = control.c2d(control.ss(a, b, c, d), 0.05, method="zoh")
    sys = lqo.from_control(ext)
    assert sys.dt == 0.05
    np.testing.assert_allclose(
        float(lqo.h2_norm(sys)), control.norm(ext, 2, method="scipy"), rtol=1e-10
    )


def test_diagonal_system_exports_its_real_form(getkey):
    poles = jnp.array([0.9 * jnp.exp(0.3j), 0.5 + 0.0j, -0.4 + 0.2j])
    b = jax.random.normal(getkey(), (3, 2), jnp.complex128)
    c = jax.random.normal(getkey(), (2, 3), jnp.complex128)
    diag = lqo.DiagonalLQOSystem(poles, b, c, dt=1.0)
    ext = lqo.to_control(diag)
    assert ext.nstates == 2 * diag.n and ext.dt == 1.0
    np.testing.assert_allclose(
        control.norm(ext, 2, method="scipy"), float(lqo.h2_norm(diag)), rtol=1e-10
    )
    dense = diag.to_dense()
    _assert_same(lqo.from_control(ext), dense.A, dense.B, dense.C, dense.D)


def test_quadratic_output_cannot_be_exported(rng):
    a, b, c, d = _matrices(rng, discrete=True)
    m = rng.normal(size=(c.shape[0], a.shape[0], a.shape[0]))
    sys = lqo.LQOSystem(a, b, c, m, d, dt=1.0)
    for export in (lqo.to_control, lqo.to_scipy):
        with pytest.raises(ValueError, match="quadratic output.*drop_quadratic=True"):
            export(sys)
    linear = lqo.from_control(lqo.to_control(sys, drop_quadratic=True))
    assert linear.M is None
    _assert_same(linear, a, b, c, d)
    diag = lqo.DiagonalLQOSystem(
        jnp.array([0.5 + 0.1j]),
        jnp.ones((1, 1)),
        jnp.ones((1, 1)),
        F=jnp.ones((1, 1, 1)),
        G=jnp.ones((1, 1, 1)),
        dt=1.0,
    )
    with pytest.raises(ValueError, match="quadratic output"):
        lqo.to_control(diag)


def test_export_errors(rng):
    a, b, c, d = _matrices(rng, discrete=True)
    complex_sys = lqo.LQOSystem(a + 0j, b, c, D=d, dt=1.0)
    with pytest.raises(TypeError, match="complex `LQOSystem`"):
        lqo.to_control(complex_sys)
    with pytest.raises(TypeError, match="must be a jaxlqo system"):
        lqo.to_control(control.ss(a, b, c, d, 1))
    sys = lqo.LQOSystem(a, b, c, D=d, dt=1.0)
    with pytest.raises(TypeError, match="outside JAX transformations"):
        eqx.filter_jit(lambda s: lqo.to_control(s).nstates)(sys)


def test_import_errors(rng, monkeypatch):
    a, b, c, d = _matrices(rng, discrete=True)
    with pytest.raises(TypeError, match="lqo.from_scipy"):
        lqo.from_control(signal.StateSpace(a, b, c, d, dt=1.0))
    with pytest.raises(TypeError, match="lqo.from_control"):
        lqo.from_scipy(control.ss(a, b, c, d, 1))
    with pytest.raises(TypeError, match="python-control system"):
        lqo.from_control((a, b, c, d))
    with pytest.raises(ValueError, match="no states"):
        lqo.from_control(control.ss([], [], [], [[2.0]]))
    monkeypatch.setitem(sys.modules, "control", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install control"):
        lqo.to_control(lqo.LQOSystem(a, b, c, D=d, dt=1.0))


def test_from_control_dtype(rng):
    a, b, c, d = _matrices(rng)
    sys = lqo.from_control(control.ss(a, b, c, d), dtype=np.float32)
    assert sys.A.dtype == jnp.float32 and sys.D.dtype == jnp.float32


# --- scipy.signal ------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [None, 0.2])
def test_scipy_round_trip(rng, dt):
    a, b, c, d = _matrices(rng, discrete=dt is not None)
    sys = lqo.LQOSystem(a, b, c, D=d, dt=dt)
    ext = lqo.to_scipy(sys)
    assert isinstance(ext, signal.StateSpace)
    assert isinstance(ext, signal.dlti if dt is not None else signal.lti)
    assert getattr(ext, "dt", None) == dt
    back = lqo.from_scipy(ext)
    assert back.dt == dt
    _assert_same(back, a, b, c, d)


def test_scipy_dt_true_and_transfer_functions():
    assert lqo.from_scipy(signal.dlti([1.0], [1.0, -0.5])).dt == 1.0  # scipy's default dt=True
    tf = signal.TransferFunction([1.0], [1.0, 3.0, 2.0])
    sys = lqo.from_scipy(tf)
    assert (sys.n, sys.dt) == (2, None)
    # The h2 norm of 1/((s+1)(s+2)) is sqrt(1/12).
    np.testing.assert_allclose(float(lqo.h2_norm(sys)), np.sqrt(1 / 12), rtol=1e-12)
    zpk = signal.ZerosPolesGain([], [0.5, -0.25], 1.0, dt=0.1)
    assert lqo.from_scipy(zpk).dt == 0.1


def test_scipy_and_control_agree(rng):
    a, b, c, d = _matrices(rng, discrete=True)
    sys = lqo.LQOSystem(a, b, c, D=d, dt=0.3)
    via_scipy = lqo.from_scipy(lqo.to_scipy(sys))
    via_control = lqo.from_control(lqo.to_control(sys))
    assert via_scipy.dt == via_control.dt == 0.3
    _assert_same(via_scipy, via_control.A, via_control.B, via_control.C, via_control.D)
    # The impulse response through scipy equals jaxlqo's simulation (y_k = C A^(k-1) B, D at 0).
    t, (y,) = signal.dimpulse(lqo.to_scipy(lqo.LQOSystem(a, b[:, :1], c, D=d[:, :1], dt=0.3)), n=6)
    u = jnp.zeros((6, 1)).at[0, 0].set(1.0)
    sim = lqo.simulate(lqo.LQOSystem(a, b[:, :1], c, D=d[:, :1], dt=0.3), u)
    np.testing.assert_allclose(np.asarray(sim), y, atol=1e-12)
