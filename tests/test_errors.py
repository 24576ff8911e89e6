"""The most likely user mistakes, each answered by a clear message that tells the fix.

1. `B` or `C` transposed (or 1-D)          7. integer arrays (work: promoted)
2. `B` and `C` swapped                     8. NaN / inf in the system (inf in C, M, D too)
3. discrete `A` with `dt=None` (and back)  9. reducing to `r > n`
4. an unstable system in `h2_norm`        10. a bad `horizon`
5. float32 input (kept, no warning)       11. mismatched `dt` in `h2_error`
6. a complex `LQOSystem`                  12. a python-control / SciPy object passed directly
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal as signal

import jaxlqo as lqo

N, M_IN, P_OUT = 4, 2, 3


@pytest.fixture
def mats():
    rng = np.random.default_rng(1)
    a = np.diag([0.5, 0.3, -0.2, 0.1]) + 0.05 * rng.normal(size=(N, N))
    return a, rng.normal(size=(N, M_IN)), rng.normal(size=(P_OUT, N))


def _discrete(mats, **kw):
    a, b, c = mats
    return lqo.LQOSystem(a, b, c, dt=1.0, **kw)


# 1, 2 ------------------------------------------------------------------------------------


def test_transposed_b_or_c(mats):
    a, b, c = mats
    with pytest.raises(ValueError, match=r"looks transposed: pass `B\.T`"):
        lqo.LQOSystem(a, b.T, c, dt=1.0)
    with pytest.raises(ValueError, match=r"looks transposed: pass `C\.T`"):
        lqo.LQOSystem(a, b, c.T, dt=1.0)
    with pytest.raises(ValueError, match=r"single input pass `B\[:, None\]`"):
        lqo.LQOSystem(a, b[:, 0], c, dt=1.0)
    with pytest.raises(ValueError, match=r"single output pass `C\[None, :\]`"):
        lqo.LQOSystem(a, b, c[0], dt=1.0)
    poles = jnp.array([0.5 + 0.1j, 0.2 + 0.0j])
    with pytest.raises(ValueError, match=r"n = 2 from poles.*pass `B\.T`"):
        lqo.DiagonalLQOSystem(poles, jnp.ones((3, 2)), jnp.ones((1, 2)), dt=1.0)
    # The fixed calls work.
    assert lqo.LQOSystem(a, b[:, :1], c[:1], dt=1.0).m == 1


def test_swapped_b_and_c(mats):
    a, b, c = mats
    with pytest.raises(ValueError, match=r"look swapped.*\(A, B, C\)"):
        lqo.LQOSystem(a, c, b, dt=1.0)


# 3 ---------------------------------------------------------------------------------------


def test_discrete_matrix_with_continuous_dt(mats):
    a, b, c = mats
    assert np.max(np.abs(np.linalg.eigvals(a))) < 1  # a stable discrete-time A
    sys = lqo.LQOSystem(a, b, c)  # dt forgotten: continuous time, and unstable there
    message = r"unstable in continuous time.*did you mean `dt=1\.0`"
    for f in (
        lqo.h2_norm,
        lqo.controllability_gramian,
        lqo.hankel_singular_values,
        eqx.filter_jit(lqo.h2_norm),
        lambda s: lqo.balanced_truncation(s, 2),
        lambda s: lqo.h2_error(s, s),
    ):
        with pytest.raises(RuntimeError, match=message):
            f(sys)
    # Without throwing: the plain "unstable" code and inf, as for any unstable system.
    sol = lqo.h2_norm(sys, throw=False)
    assert bool(sol.result == lqo.RESULTS.unstable) and float(sol.value) == np.inf
    # The fix.
    assert np.isfinite(float(lqo.h2_norm(lqo.LQOSystem(a, b, c, dt=1.0))))


def test_continuous_matrix_with_discrete_dt(mats):
    _, b, c = mats
    a = -2.0 * np.eye(N) + 0.1 * np.triu(np.ones((N, N)), 1)  # Re λ < 0 but |λ| = 2
    with pytest.raises(RuntimeError, match=r"unstable in discrete time.*did you mean `dt=None`"):
        lqo.h2_norm(lqo.LQOSystem(a, b, c, dt=0.1))
    assert np.isfinite(float(lqo.h2_norm(lqo.LQOSystem(a, b, c))))


def test_dt_zero_mentions_python_control(mats):
    a, b, c = mats
    with pytest.raises(ValueError, match=r"python-control's `dt=0`.*`dt=None`"):
        lqo.LQOSystem(a, b, c, dt=0)


# 4 ---------------------------------------------------------------------------------------


def test_unstable_system_message(mats):
    a, b, c = mats
    # Unstable in both time domains: the generic message, which names both ways out.
    sys = lqo.LQOSystem(a + 1.5 * np.eye(N), b, c, dt=1.0)
    with pytest.raises(RuntimeError, match=r"unstable.*`horizon=`.*`throw=False`"):
        lqo.h2_norm(sys)
    # The same through h2_error's modal form (which checks the other domain on its poles).
    with pytest.raises(RuntimeError, match=r"unstable.*`horizon=`.*`throw=False`"):
        lqo.h2_error(sys, sys)
    assert float(lqo.h2_norm(sys, throw=False).value) == np.inf
    assert np.isfinite(float(lqo.h2_norm(sys, horizon=16)))


# 5 ---------------------------------------------------------------------------------------


def test_float32_input_is_kept_without_warning(mats):
    # No warning (pytest turns warnings into errors here): the dtype is the user's choice.
    a, b, c = (x.astype(np.float32) for x in mats)
    sys = lqo.LQOSystem(a, b, c, dt=1.0)
    assert sys.A.dtype == jnp.float32
    value = lqo.h2_norm(sys)
    assert value.dtype == jnp.float32
    reference = float(lqo.h2_norm(_discrete(mats)))
    np.testing.assert_allclose(float(value), reference, rtol=1e-5)
    # Mixed precisions promote to the wider one, explicitly.
    mixed = lqo.LQOSystem(a, mats[1], c, dt=1.0)
    assert mixed.A.dtype == jnp.float64


# 6 ---------------------------------------------------------------------------------------


def test_complex_dense_system(mats):
    a, b, c = mats
    sys = lqo.LQOSystem(a.astype(np.complex128), b, c, dt=1.0)
    with pytest.raises(TypeError, match="real-output systems.*DiagonalLQOSystem"):
        lqo.h2_norm(sys)
    with pytest.raises(TypeError, match="`D` must be real"):
        lqo.DiagonalLQOSystem(
            jnp.array([0.5]),
            jnp.ones((1, 1)),
            jnp.ones((1, 1)),
            jnp.ones((1, 1), jnp.complex128),
            dt=1.0,
        )


# 7 ---------------------------------------------------------------------------------------


def test_integer_arrays_are_promoted():
    a = np.array([[0, 1], [0, 0]])  # nilpotent: h2² = ‖CB‖² + ‖CAB‖²
    b = np.array([[0], [1]], dtype=np.uint16)
    c = np.array([[3, 4]], dtype=np.int8)
    sys = lqo.LQOSystem(a, b, c, dt=1.0)
    assert sys.A.dtype == jnp.float64 and sys.C.dtype == jnp.float64
    np.testing.assert_allclose(float(lqo.h2_norm(sys)), 5.0, rtol=1e-12)


# 8 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["A", "B", "C", "M", "D"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dt", [1.0, None])
def test_nonfinite_system_arrays(mats, field, bad, dt):
    a, b, c = mats
    if dt is None:
        a = a - 2 * np.eye(N)
    arrays = {"A": a, "B": b, "C": c, "M": np.zeros((P_OUT, N, N)), "D": np.zeros((P_OUT, M_IN))}
    good = lqo.LQOSystem(*(arrays[k] for k in "ABCM"), dt=dt)
    arrays[field] = arrays[field].copy()
    arrays[field].flat[0] = bad
    sys = lqo.LQOSystem(*(arrays[k] for k in "ABCMD"), dt=dt)
    for sol in (
        lqo.h2_norm(sys, throw=False),
        lqo.h2_error(sys, good, throw=False),
        lqo.h2_error(good, sys, throw=False),
        lqo.h2_norm(sys, horizon=5 if dt else 5.0, throw=False),
        lqo.controllability_gramian(sys, throw=False),
        lqo.hankel_singular_values(sys, throw=False),
    ):
        assert bool(sol.result == lqo.RESULTS.nonfinite_input)
    with pytest.raises(RuntimeError, match="NaN or inf"):
        lqo.h2_norm(sys)
    with pytest.raises(RuntimeError, match="NaN or inf"):
        lqo.balanced_truncation(sys, 2)


def test_inf_feedthrough_of_a_diagonal_system():
    # The closed-form path for diagonal systems checks D too (an inf D gave inf, "successful").
    d = jnp.array([[jnp.inf]])
    sys = lqo.DiagonalLQOSystem(
        jnp.array([0.5 + 0.2j]), jnp.ones((1, 1)), jnp.ones((1, 1)), d, dt=1.0
    )
    good = lqo.DiagonalLQOSystem(
        jnp.array([0.5 + 0.2j]), jnp.ones((1, 1)), jnp.ones((1, 1)), dt=1.0
    )
    assert bool(lqo.h2_norm(sys, throw=False).result == lqo.RESULTS.nonfinite_input)
    assert bool(lqo.h2_error(good, sys, throw=False).result == lqo.RESULTS.nonfinite_input)
    assert bool(lqo.h2_norm(good, throw=False).result == lqo.RESULTS.successful)


def test_finiteness_check_keeps_gradients(mats):
    sys = _discrete(mats)
    grads = jax.grad(lambda s: lqo.h2_norm(s) ** 2)(sys)
    assert all(bool(jnp.isfinite(g).all()) for g in (grads.A, grads.B, grads.C))


# 9 ---------------------------------------------------------------------------------------


def test_reducing_to_too_many_states(mats):
    sys = _discrete(mats)
    with pytest.raises(ValueError, match=r"1 ≤ r ≤ n = 4 \(the order of `sys`\); got 5"):
        lqo.balanced_truncation(sys, N + 1)
    with pytest.raises(ValueError, match=r"`r` = 6 exceeds the order of `fom` \(n = 4\)"):
        lqo.reduce(sys, N + 2)
    with pytest.raises(ValueError, match="must be an int"):
        lqo.balanced_truncation(sys, 2.0)
    # r = n is allowed and reproduces the system.
    rom = lqo.balanced_truncation(sys, N).value
    assert float(lqo.h2_error(sys, rom)) < 1e-6 * float(lqo.h2_norm(sys))


# 10 --------------------------------------------------------------------------------------


def test_bad_horizon(mats):
    sys = _discrete(mats)
    for horizon in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=r"number of steps.*horizon=None"):
            lqo.h2_norm(sys, horizon=horizon)
    cont = lqo.LQOSystem(mats[0] - 2 * np.eye(N), mats[1], mats[2])
    for horizon in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"time T > 0.*horizon=None"):
            lqo.h2_norm(cont, horizon=horizon)
    # A NumPy integer is a valid number of steps (e.g. from np.arange or a config file).
    np.testing.assert_allclose(
        float(lqo.h2_norm(sys, horizon=np.int64(7))), float(lqo.h2_norm(sys, horizon=7))
    )


# 11 --------------------------------------------------------------------------------------


def test_mismatched_dt_in_h2_error(mats):
    a, b, c = mats
    fom = lqo.LQOSystem(a, b, c, dt=1.0)
    with pytest.raises(ValueError, match=r"same sampling step.*dt=fom\.dt"):
        lqo.h2_error(fom, lqo.LQOSystem(a, b, c, dt=0.5))
    with pytest.raises(ValueError, match="discrete-time and `rom` is continuous-time"):
        lqo.h2_error(fom, lqo.LQOSystem(a, b, c))


# 12 --------------------------------------------------------------------------------------


def test_foreign_system_objects(mats):
    a, b, c = mats
    scipy_sys = signal.StateSpace(a, b, c, np.zeros((P_OUT, M_IN)), dt=1.0)
    with pytest.raises(TypeError, match=r"got StateSpaceDiscrete.*lqo\.from_scipy\(sys\)"):
        lqo.h2_norm(scipy_sys)
    with pytest.raises(TypeError, match=r"`rom` must be a jaxlqo system.*from_scipy\(rom\)"):
        lqo.h2_error(_discrete(mats), scipy_sys)
    with pytest.raises(TypeError, match=r"lqo\.LQOSystem\(A, B, C, dt=\.\.\.\)"):
        lqo.balanced_truncation((a, b, c), 2)
    control = pytest.importorskip("control")
    with pytest.raises(TypeError, match=r"lqo\.from_control\(sys\)"):
        lqo.controllability_gramian(control.ss(a, b, c, 0, 1.0))
    with pytest.raises(TypeError, match=r"lqo\.from_control\(fom\)"):
        lqo.reduce(control.ss(a, b, c, 0, 1.0), 2)


# 13-17 (issue 17) --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_systems_are_rejected(mats, dtype):
    a, b, c = (jnp.asarray(x, dtype) for x in mats)
    with pytest.raises(TypeError, match=r"LQOSystem: argument `A` has dtype .*float32"):
        lqo.LQOSystem(a, b, c, dt=1.0)
    with pytest.raises(TypeError, match=r"argument `C` has dtype"):
        lqo.LQOSystem(np.asarray(mats[0]), np.asarray(mats[1]), c, dt=1.0)
    with pytest.raises(TypeError, match=r"DiagonalLQOSystem: argument `poles` has dtype"):
        lqo.DiagonalLQOSystem(jnp.diagonal(a), b, c, dt=1.0)


def test_modal_truncation_of_a_jordan_block_raises():
    # Before: a model with h2 error 1.2e16 against ‖Σ‖ = 7.8, silently.
    a = np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]])
    sys = lqo.LQOSystem(a, np.ones((3, 1)), np.ones((1, 3)), dt=1.0)
    with pytest.raises(Exception, match="ill-conditioned.*balanced_truncation"):
        lqo.modal_truncation(sys, 3)
    # A diagonalisable system of the same size is fine.
    sol = lqo.modal_truncation(
        lqo.LQOSystem(np.diag([0.5, 0.4, 0.3]), np.ones((3, 1)), np.ones((1, 3)), dt=1.0), 3
    )
    assert sol.value.n == 3 and sol.result == lqo.RESULTS.successful


@pytest.mark.parametrize(
    "weight, match",
    [
        (-np.eye(M_IN), "indefinite"),
        (np.array([[1.0, 0.5], [0.0, 1.0]]), "not symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "indefinite"),
        (np.zeros((M_IN, M_IN)), "zero"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN"),
    ],
)
def test_reduce_rejects_invalid_weights(mats, weight, match):
    # Before: `weight=-I` returned the start model as "successful" with objective 0.
    with pytest.raises(ValueError, match=rf"reduce: `weight` .*{match}"):
        lqo.reduce(_discrete(mats), 2, weight=weight)


@pytest.mark.parametrize("max_steps", [-1, 2.5, True])
def test_reduce_rejects_bad_max_steps(mats, max_steps):
    with pytest.raises(ValueError, match="max_steps"):
        lqo.reduce(_discrete(mats), 2, max_steps=max_steps)
    with pytest.raises(ValueError, match="max_steps"):
        lqo.tlh2(_discrete(mats), 2, horizon=4, max_steps=max_steps)


def test_reduce_reports_a_nonfinite_objective(mats):
    # Before: reported as `max_steps_reached`.
    sys = _discrete(mats)
    init = lqo.balanced_truncation(sys, 2).value
    bad = eqx.tree_at(lambda s: s.B, init, init.B.at[0, 0].set(jnp.nan))
    sol = lqo.reduce(sys, 2, init=bad, max_steps=3)
    assert sol.result == lqo.RESULTS.nonfinite_objective
    assert sol.result != lqo.RESULTS.max_steps_reached


def test_infinite_horizon_means_no_horizon(mats):
    # Before: `horizon=inf` raised "NaN or inf" (continuous) or rejected the value (discrete).
    sys = _discrete(mats)
    cont = lqo.LQOSystem(
        np.diag([-1.0, -2.0, -3.0]) + np.triu(np.ones((3, 3)), 1),
        np.array([[1.0], [0.5], [2.0]]),
        np.array([[1.0, -1.0, 0.3]]),
    )  # minimal (HSVs 1.0, 0.086, 0.012): B = C = ones had order 1, so its BT to r = 2 kept a
    # zero-HSV direction with eigenvalue 0 and h2_error raised "unstable"
    for s in (sys, cont):
        assert float(lqo.h2_norm(s, horizon=np.inf)) == float(lqo.h2_norm(s))
        assert float(lqo.h2_norm(s, horizon=float("inf"))) == float(lqo.h2_norm(s))
    rom = lqo.balanced_truncation(cont, 2, horizon=np.inf).value
    assert float(lqo.h2_error(cont, rom, horizon=np.inf)) == float(lqo.h2_error(cont, rom))


def test_long_continuous_horizon_approaches_the_infinite_one():
    cont = lqo.LQOSystem(
        np.diag([-1.0, -2.0, -3.0]) + np.triu(np.ones((3, 3)), 1),
        np.array([[1.0], [0.5], [2.0]]),
        np.array([[1.0, -1.0, 0.3]]),
    )  # minimal (HSVs 1.0, 0.086, 0.012): B = C = ones had order 1, so its BT to r = 2 kept a
    # zero-HSV direction with eigenvalue 0 and h2_error raised "unstable"
    assert abs(float(lqo.h2_norm(cont, horizon=1e6)) - float(lqo.h2_norm(cont))) <= 1e-12
