"""jaxlqo.compat against python-control itself (SciPy backend) and SciPy where slycot is needed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.signal as signal

import jaxlqo as lqo
from jaxlqo import compat

control = pytest.importorskip("control")


def _stable(rng, n, *, discrete=False):
    a = rng.normal(size=(n, n))
    if discrete:
        return 0.9 * a / np.max(np.abs(np.linalg.eigvals(a)))
    return a - (np.max(np.linalg.eigvals(a).real) + 0.5) * np.eye(n)


def _spd(rng, n):
    q = rng.normal(size=(n, n))
    return q @ q.T + np.eye(n)


def test_lyap_sign_convention_matches_control(rng):
    a, q = _stable(rng, 5), _spd(rng, 5)
    x = np.asarray(compat.lyap(a, q))
    np.testing.assert_allclose(x, control.lyap(a, q, method="scipy"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a @ x + x @ a.T + q, 0, atol=1e-10)  # + Q on the left
    # ... which is the native solver with the opposite sign of Q.
    np.testing.assert_allclose(x, np.asarray(lqo.solve_continuous_lyapunov(a, -q)), atol=1e-12)


def test_lyap_sylvester_matches_control(rng):
    a, b, c = _stable(rng, 4), _stable(rng, 3), rng.normal(size=(4, 3))
    x = np.asarray(compat.lyap(a, b, c))
    np.testing.assert_allclose(x, control.lyap(a, b, c, method="scipy"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a @ x + x @ b + c, 0, atol=1e-10)


def test_lyap_generalised(rng):
    a, q = _stable(rng, 4), _spd(rng, 4)
    e = np.eye(4) + 0.2 * rng.normal(size=(4, 4))
    x = np.asarray(compat.lyap(a, q, None, e))
    np.testing.assert_allclose(a @ x @ e.T + e @ x @ a.T + q, 0, atol=1e-10)


def test_dlyap_matches_control(rng):
    a, q = _stable(rng, 5, discrete=True), _spd(rng, 5)
    x = np.asarray(compat.dlyap(a, q))
    np.testing.assert_allclose(x, control.dlyap(a, q, method="scipy"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a @ x @ a.T - x + q, 0, atol=1e-10)


def test_dlyap_sylvester_and_generalised(rng):
    # python-control needs slycot (sb04qd) for these: check the defining equations instead.
    a, b, c = (
        _stable(rng, 4, discrete=True),
        _stable(rng, 3, discrete=True),
        rng.normal(size=(4, 3)),
    )
    x = np.asarray(compat.dlyap(a, b, c))
    np.testing.assert_allclose(a @ x @ b.T - x + c, 0, atol=1e-10)
    q, e = _spd(rng, 4), np.eye(4) + 0.2 * rng.normal(size=(4, 4))
    y = np.asarray(compat.dlyap(a, q, None, e))
    np.testing.assert_allclose(a @ y @ a.T - e @ y @ e.T + q, 0, atol=1e-10)


def test_lyap_scalars_and_integers():
    # python-control promotes scalars to 1x1 matrices; integer input is promoted, not truncated.
    np.testing.assert_allclose(np.asarray(compat.lyap(-2, 4)), [[1.0]])
    np.testing.assert_allclose(np.asarray(compat.dlyap(np.array([[0]]), np.array([[3]]))), [[3.0]])


def test_lyap_is_differentiable_and_jittable(rng):
    a, q = _stable(rng, 3), _spd(rng, 3)
    f = jax.jit(lambda a: jnp.trace(compat.lyap(a, q)))
    np.testing.assert_allclose(f(a), np.trace(control.lyap(a, q, method="scipy")), rtol=1e-10)
    grad = jax.grad(f)(jnp.asarray(a))
    eps = 1e-6
    e01 = np.zeros_like(a)
    e01[0, 1] = eps
    fd = (f(a + e01) - f(a - e01)) / (2 * eps)
    np.testing.assert_allclose(grad[0, 1], fd, rtol=1e-5)


def test_lyap_argument_errors(rng):
    a, q = _stable(rng, 3), _spd(rng, 3)
    with pytest.raises(ValueError, match="not both"):
        compat.lyap(a, q, q, q)
    with pytest.raises(ValueError, match="method"):
        compat.dlyap(a, q, method="bartels")
    with pytest.raises(ValueError, match="square"):
        compat.lyap(np.ones((2, 3)), q)
    assert compat.lyap(a, q, method="scipy").shape == (3, 3)


@pytest.mark.parametrize("dt", [0, 0.1])
def test_gram(rng, dt):
    a = _stable(rng, 4, discrete=dt != 0)
    b, c = rng.normal(size=(4, 2)), rng.normal(size=(3, 4))
    sys = control.ss(a, b, c, 0, dt)
    if dt == 0:
        wc = sla.solve_continuous_lyapunov(a, -b @ b.T)
        wo = sla.solve_continuous_lyapunov(a.T, -c.T @ c)
    else:
        wc = sla.solve_discrete_lyapunov(a, b @ b.T)
        wo = sla.solve_discrete_lyapunov(a.T, c.T @ c)
    np.testing.assert_allclose(np.asarray(compat.gram(sys, "c")), wc, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(compat.gram(sys, "o")), wo, rtol=1e-9, atol=1e-12)
    # The same through control.lyap / dlyap (what control.gram computes with slycot).
    solve = control.lyap if dt == 0 else control.dlyap
    np.testing.assert_allclose(
        np.asarray(compat.gram(sys, "c")), solve(a, b @ b.T, method="scipy"), rtol=1e-9, atol=1e-12
    )
    for kind, w in (("cf", wc), ("of", wo)):
        r = np.asarray(compat.gram(sys, kind))
        np.testing.assert_allclose(r, np.triu(r))  # upper triangular
        np.testing.assert_allclose(r.T @ r, w, rtol=1e-9, atol=1e-12)  # W = Rᵀ R
    with pytest.raises(ValueError, match="'c', 'o', 'cf' or 'of'"):
        compat.gram(sys, "x")


def test_gram_accepts_every_system_kind(rng):
    a, b, c = _stable(rng, 3), rng.normal(size=(3, 1)), rng.normal(size=(1, 3))
    expected = np.asarray(compat.gram(control.ss(a, b, c, 0), "c"))
    for sys in (lqo.LQOSystem(a, b, c), signal.StateSpace(a, b, c, np.zeros((1, 1)))):
        np.testing.assert_allclose(np.asarray(compat.gram(sys, "c")), expected)
    with pytest.raises(TypeError, match="python-control StateSpace"):
        compat.gram((a, b, c), "c")


def test_hsvd_matches_control_definition(rng):
    # control.hsvd needs slycot (via gram); its definition is sqrt(eig(Wo Wc)), decreasing.
    a, b, c = _stable(rng, 5), rng.normal(size=(5, 2)), rng.normal(size=(2, 5))
    wc = control.lyap(a, b @ b.T, method="scipy")
    wo = control.lyap(a.T, c.T @ c, method="scipy")
    expected = np.sort(np.sqrt(np.linalg.eigvals(wo @ wc).real))[::-1]
    np.testing.assert_allclose(np.asarray(compat.hsvd(control.ss(a, b, c, 0))), expected, rtol=1e-8)
    # compat.hsvd also works in discrete time (control.hsvd raises NotImplementedError there).
    ad = _stable(rng, 5, discrete=True)
    hsv = np.asarray(compat.hsvd(control.ss(ad, b, c, 0, 1.0)))
    wc = control.dlyap(ad, b @ b.T, method="scipy")
    wo = control.dlyap(ad.T, c.T @ c, method="scipy")
    np.testing.assert_allclose(
        hsv, np.sort(np.sqrt(np.linalg.eigvals(wo @ wc).real))[::-1], rtol=1e-8
    )


def test_balred(rng):
    a, b, c = _stable(rng, 6), rng.normal(size=(6, 2)), rng.normal(size=(2, 6))
    d = rng.normal(size=(2, 2))
    sys = control.ss(a, b, c, d)
    rom = compat.balred(sys, 3)
    assert isinstance(rom, control.StateSpace) and rom.nstates == 3 and rom.dt == 0
    np.testing.assert_array_equal(rom.D, d)  # the feedthrough is kept, as in python-control
    # A balanced truncation keeps the leading Hankel singular values exactly.
    hsv = np.asarray(compat.hsvd(control.ss(a, b, c, 0)))
    rom_hsv = np.asarray(compat.hsvd(control.ss(rom.A, rom.B, rom.C, 0)))
    np.testing.assert_allclose(rom_hsv, hsv[:3], rtol=1e-8)
    roms = compat.balred(sys, [1, 2])
    assert [r.nstates for r in roms] == [1, 2]
    # Errors drop as the order grows, measured by python-control's own h2 norm (D cancels).
    errors = [
        control.norm(control.ss(a, b, c, 0) - control.ss(r.A, r.B, r.C, 0), 2, method="scipy")
        for r in (*roms, rom)
    ]
    assert errors[0] > errors[1] > errors[2]
    native = compat.balred(lqo.from_control(sys), 3)
    assert isinstance(native, lqo.LQOSystem)
    scipy_rom = compat.balred(lqo.to_scipy(lqo.from_control(sys)), 3)
    assert isinstance(scipy_rom, signal.StateSpace)
    with pytest.raises(ValueError, match="matchdc"):
        compat.balred(sys, 2, method="matchdc")
    with pytest.raises(ValueError, match="alpha"):
        compat.balred(sys, 2, alpha=0.0)


def test_balred_discrete_time(rng):
    a, b, c = _stable(rng, 6, discrete=True), rng.normal(size=(6, 1)), rng.normal(size=(1, 6))
    rom = compat.balred(control.ss(a, b, c, 0, 0.5), 4)
    assert rom.dt == 0.5
    assert np.all(np.abs(np.linalg.eigvals(rom.A)) < 1)


@pytest.mark.parametrize("dt", [0, 0.2])
def test_norm_matches_control(rng, dt):
    a = _stable(rng, 5, discrete=dt != 0)
    b, c = rng.normal(size=(5, 2)), rng.normal(size=(3, 5))
    d = np.zeros((3, 2)) if dt == 0 else rng.normal(size=(3, 2))
    sys = control.ss(a, b, c, d, dt)
    np.testing.assert_allclose(
        float(compat.norm(sys)), control.norm(sys, 2, method="scipy"), rtol=1e-10
    )
    np.testing.assert_allclose(
        float(compat.norm(lqo.from_control(sys), 2)),
        control.norm(sys, 2, method="scipy"),
        rtol=1e-10,
    )


def test_norm_of_unstable_system_is_inf_as_in_control(rng):
    a = _stable(rng, 3) + 5 * np.eye(3)
    sys = control.ss(a, np.ones((3, 1)), np.ones((1, 3)), 0)
    with pytest.warns(UserWarning, match="unstable"):
        assert control.norm(sys, 2, method="scipy") == np.inf
    assert float(compat.norm(sys)) == np.inf
    with pytest.raises(ValueError, match="only p=2"):
        compat.norm(sys, "inf")


def test_ss_dt_convention(rng):
    a, b, c = _stable(rng, 3), rng.normal(size=(3, 2)), rng.normal(size=(1, 3))
    assert compat.ss(a, b, c).dt is None
    assert compat.ss(a, b, c, 0, 0).dt is None
    assert compat.ss(a, b, c, 0, True).dt == 1.0
    sys = compat.ss(a, b, c, 0, 0.1)
    assert sys.dt == 0.1 and sys.D.shape == (1, 2)
    np.testing.assert_array_equal(np.asarray(sys.D), 0)
    with pytest.raises(ValueError, match="sampling time"):
        compat.ss(a, b, c, 0, -1.0)


# ---------------------------------------------------------------------------------------------
# Exceptions: the class python-control raises (or a subclass), for every compat function
# ---------------------------------------------------------------------------------------------


def _unstable_ss():
    return control.ss(np.array([[1.0, 0.0], [0.0, -1.0]]), np.ones((2, 1)), np.ones((1, 2)), 0)


def _stable_ss():
    return control.ss(-np.eye(2) + np.triu(np.ones((2, 2)), 1), np.ones((2, 1)), np.ones((1, 2)), 0)


_E = np.eye(2)
# (name, compat call, python-control call): both must raise.
ERROR_CASES = [
    ("lyap C and E", lambda m: m.lyap(-_E, _E, _E, _E, method="scipy")),
    ("lyap bad method", lambda m: m.lyap(-_E, _E, method="bartels")),
    ("lyap non-square A", lambda m: m.lyap(np.ones((2, 3)), _E, method="scipy")),
    ("lyap Q shape", lambda m: m.lyap(-_E, np.eye(3), method="scipy")),
    ("lyap NaN", lambda m: m.lyap(np.array([[np.nan, 1.0], [-1.0, -1.0]]), _E, method="scipy")),
    ("dlyap singular", lambda m: m.dlyap(_E, _E, method="scipy")),
    ("dlyap bad method", lambda m: m.dlyap(0.5 * _E, _E, method="bartels")),
    ("gram unstable", lambda m: m.gram(_unstable_ss(), "c")),
    ("gram unstable 'of'", lambda m: m.gram(_unstable_ss(), "of")),
    ("gram bad type", lambda m: m.gram(_stable_ss(), "x")),
    ("gram not a system", lambda m: m.gram((1.0, 2.0), "c")),
    ("hsvd unstable", lambda m: m.hsvd(_unstable_ss())),
    ("norm bad p", lambda m: m.norm(_stable_ss(), "fro")),
    ("norm bad method", lambda m: m.norm(_stable_ss(), 2, method="bad")),
    ("norm not a system", lambda m: m.norm((1.0, 2.0), 2)),
    ("balred bad method", lambda m: m.balred(_stable_ss(), 1, method="exact")),
    ("ss bad dt", lambda m: m.ss(-1.0, 1.0, 1.0, 0, -1.0)),
    ("ss B shape", lambda m: m.ss(-_E, np.ones((3, 1)), np.ones((1, 2)), 0)),
    ("ss strings", lambda m: m.ss([["a"]], [[1.0]], [[1.0]], 0)),
]


def _builtin_class(exc: BaseException) -> type:
    """The built-in exception class behind python-control's (ControlArgument → TypeError)."""
    return next(c for c in type(exc).__mro__ if c.__module__ == "builtins")


@pytest.mark.filterwarnings("ignore::UserWarning")  # python-control's "unstable" warning
@pytest.mark.parametrize("name, call", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_exception_classes_match_python_control(name, call):
    with pytest.raises(Exception) as theirs:
        call(control)
    expected = _builtin_class(theirs.value)
    assert expected in (TypeError, ValueError), (name, theirs.value)
    with pytest.raises(expected):
        call(compat)


def test_exception_classes_are_both_or_valueerrors():
    assert issubclass(compat.ArgumentError, TypeError)
    assert issubclass(compat.ArgumentError, ValueError)
    assert issubclass(compat.ComputationError, ValueError)
    assert issubclass(compat.ComputationError, np.linalg.LinAlgError)
    with pytest.raises(compat.ComputationError, match="gram: The system is unstable"):
        compat.gram(_unstable_ss(), "c")
    with pytest.raises(compat.ComputationError, match="balred: The system is unstable"):
        compat.balred(_unstable_ss(), 1)
    with pytest.raises(compat.ComputationError, match="singular"):
        compat.lyap(np.array([[0.0, 1.0], [-1.0, 0.0]]), _E)
    # Inside jit no chosen class can be raised: Equinox's runtime error, as the native API.
    with pytest.raises(RuntimeError, match="singular"):
        jax.jit(compat.lyap)(np.array([[0.0, 1.0], [-1.0, 0.0]]), _E)


def test_gram_factor_of_an_uncontrollable_system():
    # W = diag(1/2, 0) is only semidefinite: Cholesky gave NaN; W = Rᵀ R still has a factor.
    sys = control.ss(np.diag([-1.0, -2.0]), [[1.0], [0.0]], [[1.0, 1.0]], 0)
    r = np.asarray(compat.gram(sys, "cf"))
    assert np.isfinite(r).all()
    np.testing.assert_array_equal(r, np.triu(r))
    np.testing.assert_allclose(r.T @ r, np.diag([0.5, 0.0]), atol=1e-15)


def test_balred_orders_accept_numpy_integers_and_reject_floats(rng):
    a, b, c = _stable(rng, 4), rng.normal(size=(4, 1)), rng.normal(size=(1, 4))
    sys = control.ss(a, b, c, 0)
    rom, roms = compat.balred(sys, np.int64(2)), compat.balred(sys, np.array([2]))
    assert rom.nstates == 2 and len(roms) == 1
    np.testing.assert_array_equal(rom.A, roms[0].A)
    for bad in (2.0, np.float64(2.0), True, "2", [1, 2.5], []):
        with pytest.raises(compat.ArgumentError, match="`orders` must be an int"):
            compat.balred(sys, bad)


def test_lyap_of_empty_matrices_is_empty_as_scipy():
    e0 = np.zeros((0, 0))
    for ours, theirs in (
        (compat.lyap, sla.solve_continuous_lyapunov),
        (compat.dlyap, sla.solve_discrete_lyapunov),
    ):
        x = ours(e0, e0)
        assert x.shape == theirs(e0, -e0).shape == (0, 0)
