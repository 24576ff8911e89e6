"""h2 norms and h2 errors: benchmark values, impulse-response sums, properties, gradients, errors.

Independent references live in `reference_norms.py` (NumPy impulse-response sums, Kronecker
and Van Loan Gramians). Hypothesis draws systems of a few *fixed* sizes so that the jitted
functions below compile once per structure and are reused across tests.
"""

import itertools

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_norms as ref
import scipy.signal
from _helpers import M_IN, P_OUT, N, dense, diagonal, first
from conftest import load_benchmark
from jax.test_util import check_grads

import jaxlqo as lqo

T = lqo.testing

# `eqx.filter_jit` (not `jax.jit`) so that `eqx.error_if` raises a readable runtime error.
h2_norm = eqx.filter_jit(lqo.h2_norm)
h2_error = eqx.filter_jit(lqo.h2_error)
h2_error_gradient = eqx.filter_jit(lqo.h2_error_gradient)


@eqx.filter_jit
@eqx.filter_grad
def grad_error(rom, fom):
    """`∇_rom ‖fom − rom‖_h2` by autodiff."""
    return lqo.h2_error(fom, rom)


@eqx.filter_jit
@eqx.filter_grad
def grad_squared_error(rom, fom):
    """`∇_rom ‖fom − rom‖²_h2` by autodiff."""
    return lqo.h2_error(fom, rom) ** 2


HORIZONS = (1, 3, 7)  # discrete time-limited horizons (steps)
TIMES = (0.5, 1.5)  # continuous time-limited horizons

R = 2  # the order of a dense rom (sizes of the foms: see `_helpers.py`)


def nontrivial(sys) -> bool:
    """Excludes the shrunk example with all poles at the origin."""
    if isinstance(sys, lqo.DiagonalLQOSystem):
        return float(jnp.min(jnp.abs(sys.poles))) > 0.2
    return float(jnp.max(jnp.abs(sys.A))) > 0.2


def assert_rel(actual, expected, rtol):
    actual, expected = float(actual), float(expected)
    assert abs(actual - expected) <= rtol * abs(expected), (actual, expected)


def relative_tree_error(a, b) -> float:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    num = sum(float(jnp.sum(jnp.abs(x - y) ** 2)) for x, y in zip(la, lb, strict=True))
    den = sum(float(jnp.sum(jnp.abs(y) ** 2)) for y in lb)
    return float(np.sqrt(num / den))


# =============================================================================================
# 1. Reference values (tests/data/README.md)
# =============================================================================================

SLICOT_H2 = {
    "build": 4.5300605179e-03,
    "CDplayer": 1.1021289070e06,
    "heat_cont": 1.1263044233e-02,
    "iss1R": 1.0057232711e-02,
    "beam": 3.2667825181e02,
}


def _benchmark(name, **kw):
    d = load_benchmark(name)
    return lqo.LQOSystem(d["A"], d["B"], d["C"], **kw), d


@pytest.mark.parametrize(
    "name",
    [
        "build",
        "CDplayer",
        "heat_cont",
        pytest.param("iss1R", marks=pytest.mark.slow),
        pytest.param("beam", marks=pytest.mark.slow),
    ],
)
def test_slicot_h2_norm(name):
    sys, _ = _benchmark(name)
    assert_rel(h2_norm(sys), SLICOT_H2[name], 1e-8)


@pytest.mark.slow
def test_lqo_benchmark_h2_norm():
    d = load_benchmark("advecdiff_lqo_n300")
    assert d["M"].shape == (300, 300)  # one output: stored without the output axis
    sys = lqo.LQOSystem(d["A"], d["B"], d["C"], d["M"][None])
    assert_rel(h2_norm(sys), 1.5702466803, 1e-8)
    # The linear part (reference given to 8 digits only): M = 0 reuses the compilation.
    linear = lqo.LQOSystem(d["A"], d["B"], d["C"], np.zeros((1, 300, 300)))
    assert_rel(h2_norm(linear), 0.96817633, 1e-7)


def _zoh(name, dt):
    d = load_benchmark(name)
    p, m = d["C"].shape[0], d["B"].shape[1]
    Ad, Bd, Cd, _, _ = scipy.signal.cont2discrete((d["A"], d["B"], d["C"], np.zeros((p, m))), dt)
    return lqo.LQOSystem(Ad, Bd, Cd, dt=dt)


@pytest.mark.parametrize(
    "name, dt, radius, value",
    [("build", 0.1, 0.97416, 1.3036521083e-03), ("CDplayer", 1e-3, 0.999976, 3.485162074e04)],
)
def test_zero_order_hold_h2_norm(name, dt, radius, value):
    sys = _zoh(name, dt)
    rho = np.max(np.abs(np.linalg.eigvals(np.asarray(sys.A))))
    assert abs(rho - radius) <= 5e-6  # the reference is rounded
    assert bool(lqo.is_stable(sys))
    # Observed: 2e-11 (build) and 1e-10 (CDplayer, ρ = 1 − 2.4e-5) relative.
    assert_rel(h2_norm(sys), value, 1e-8)


def test_build_time_limited_h2_norm():
    sys, _ = _benchmark("build")
    assert_rel(h2_norm(sys, horizon=10.0), 4.5241285324e-03, 1e-8)
    assert float(h2_norm(sys, horizon=10.0)) < SLICOT_H2["build"]


# =============================================================================================
# 2. Impulse-response sums (discrete) and Kronecker / Van Loan references (continuous)
# =============================================================================================


@hypothesis.given(dense(lti=st.booleans(), feedthrough=st.booleans()))
def test_discrete_h2_norm_is_the_impulse_response_sum(sys):
    expected = ref.discrete_h2_squared(sys)
    assert_rel(h2_norm(sys) ** 2, expected, 1e-10)


@pytest.mark.parametrize("horizon", HORIZONS)
@hypothesis.given(sys=dense(feedthrough=st.booleans()))
def test_discrete_time_limited_h2_norm_is_the_finite_sum(horizon, sys):
    assert_rel(h2_norm(sys, horizon=horizon) ** 2, ref.discrete_h2_squared(sys, horizon), 1e-10)


@pytest.mark.parametrize("horizon", [None, 3])
@hypothesis.given(sys=diagonal(feedthrough=st.booleans()))
def test_diagonal_h2_norm_is_the_impulse_response_sum(horizon, sys):
    assert_rel(h2_norm(sys, horizon=horizon) ** 2, ref.discrete_h2_squared(sys, horizon), 1e-10)


@pytest.mark.parametrize("horizon", [None, 3])
@hypothesis.given(fom=dense(feedthrough=True), rom=dense(R, feedthrough=True))
def test_h2_error_is_the_impulse_response_sum_of_the_difference(horizon, fom, rom):
    expected = ref.discrete_h2_error_squared(fom, rom, horizon)
    # The inner-product formula cancels: the error is accurate relative to the norms.
    scale = expected + ref.discrete_h2_squared(fom, horizon) + ref.discrete_h2_squared(rom, horizon)
    assert abs(float(h2_error(fom, rom, horizon=horizon)) ** 2 - expected) <= 1e-10 * scale


@pytest.mark.parametrize("horizon", [None, 3])
@hypothesis.given(fom=diagonal(feedthrough=True), rom=dense(R, feedthrough=True))
def test_mixed_h2_error_is_the_impulse_response_sum_of_the_difference(horizon, fom, rom):
    expected = ref.discrete_h2_error_squared(fom, rom, horizon)
    scale = expected + ref.discrete_h2_squared(fom, horizon) + ref.discrete_h2_squared(rom, horizon)
    assert abs(float(h2_error(fom, rom, horizon=horizon)) ** 2 - expected) <= 1e-10 * scale
    assert abs(float(h2_error(rom, fom, horizon=horizon)) ** 2 - expected) <= 1e-10 * scale


def test_time_limited_norm_matches_simulated_impulse_responses():
    # An LTI system's horizon-L norm is the energy of its impulse responses over the steps
    # 0 … L (lag 0 is D): it pins the convention "lags i < L" for C Aⁱ B.
    sys = first(dense(lti=True, feedthrough=True), nontrivial)
    horizon = 7
    energy = 0.0
    for j in range(sys.m):
        u = jnp.zeros((horizon + 1, sys.m)).at[0, j].set(1.0)
        energy += float(jnp.sum(lqo.simulate(sys, u) ** 2))
    assert_rel(h2_norm(sys, horizon=horizon) ** 2, energy, 1e-12)


@hypothesis.given(dense(discrete=False, lti=st.booleans()))
def test_continuous_h2_norm_matches_kronecker_reference(sys):
    assert_rel(h2_norm(sys) ** 2, ref.gramian_h2_squared(sys), 1e-9)


@pytest.mark.parametrize("horizon", TIMES)
@hypothesis.given(sys=dense(discrete=False))
def test_continuous_time_limited_h2_norm_matches_van_loan(horizon, sys):
    assert_rel(h2_norm(sys, horizon=horizon) ** 2, ref.gramian_h2_squared(sys, horizon), 1e-9)


@hypothesis.given(fom=dense(discrete=False), rom=dense(R, discrete=False))
def test_continuous_h2_error_is_the_norm_of_the_error_system(fom, rom):
    expected = ref.gramian_h2_squared(ref.error_system(fom, rom))
    scale = expected + ref.gramian_h2_squared(fom) + ref.gramian_h2_squared(rom)
    assert abs(float(h2_error(fom, rom)) ** 2 - expected) <= 1e-10 * scale


# =============================================================================================
# 3. Properties
# =============================================================================================


@st.composite
def similarity(draw, n=N):
    """A well-conditioned `T = Q diag(d)` (cond ≤ 4) and its inverse."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    d = np.exp(rng.uniform(-np.log(2), np.log(2), n))
    return q * d, (q / d).T


def transformed(sys, t_and_inv):
    t, t_inv = t_and_inv
    A, B, C, M, D = ref.as_numpy(sys)
    M = None if M is None else np.einsum("ai,jab,bk->jik", t, M, t)
    return lqo.LQOSystem(t_inv @ A @ t, t_inv @ B, C @ t, M, D, dt=sys.dt)


@hypothesis.given(st.data(), similarity(), st.booleans())
def test_similarity_invariance(data, t, discrete):
    sys = data.draw(dense(discrete=discrete, feedthrough=discrete))
    other = transformed(sys, t)
    norm = h2_norm(sys)
    assert_rel(h2_norm(other), norm, 1e-10)
    assert float(h2_error(sys, other)) <= 1e-7 * float(norm)


@hypothesis.given(dense(feedthrough=True))
def test_error_to_itself_is_zero_with_finite_gradient(sys):
    assert float(h2_error(sys, sys)) <= 1e-7 * float(h2_norm(sys))
    grad = grad_error(sys, sys)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))


def test_error_of_diagonal_system_to_itself_is_zero():
    sys = first(diagonal(feedthrough=True), nontrivial)
    assert float(h2_error(sys, sys)) <= 1e-7 * float(h2_norm(sys))


@hypothesis.given(dense(feedthrough=True), dense(feedthrough=True), dense(feedthrough=True))
def test_triangle_inequality(g1, g2, g3):
    e13, e12, e23 = h2_error(g1, g3), h2_error(g1, g2), h2_error(g2, g3)
    slack = 1e-8 * float(h2_norm(g1) + h2_norm(g2) + h2_norm(g3))
    assert float(e13) <= float(e12 + e23) + slack
    assert abs(float(h2_error(g3, g1)) - float(e13)) <= slack  # symmetry


@hypothesis.given(dense(feedthrough=st.booleans()))
def test_discrete_time_limited_norm_grows_with_the_horizon(sys):
    norms = [float(h2_norm(sys, horizon=h)) for h in HORIZONS] + [float(h2_norm(sys))]
    assert all(a <= b * (1 + 1e-12) for a, b in itertools.pairwise(norms)), norms


@hypothesis.given(dense(discrete=False))
def test_continuous_time_limited_norm_grows_with_the_horizon(sys):
    norms = [float(h2_norm(sys, horizon=t)) for t in TIMES] + [float(h2_norm(sys))]
    assert all(a <= b * (1 + 1e-12) for a, b in itertools.pairwise(norms)), norms


@pytest.mark.parametrize("horizon", [None, 3])
@hypothesis.given(
    fom=diagonal(feedthrough=True), rom=dense(R, feedthrough=True), diag_rom=diagonal()
)
def test_diagonal_path_equals_realified_dense_path(horizon, fom, rom, diag_rom):
    kw = dict(horizon=horizon)
    fom_d = fom.to_dense()
    assert_rel(h2_norm(fom, **kw), h2_norm(fom_d, **kw), 1e-10)
    pairs = [(fom, rom, fom_d, rom), (rom, fom, rom, fom_d)]
    if horizon is None:
        pairs.append((fom, diag_rom, fom_d, diag_rom.to_dense()))
    scale = float(h2_norm(fom_d, **kw) + h2_norm(rom, **kw))
    for a, b, a_d, b_d in pairs:
        assert abs(float(h2_error(a, b, **kw)) - float(h2_error(a_d, b_d, **kw))) <= 1e-7 * scale


def test_continuous_diagonal_path_equals_realified_dense_path():
    fom = first(diagonal(discrete=False), nontrivial)
    rom = first(dense(R, discrete=False), nontrivial)
    assert_rel(h2_norm(fom), h2_norm(fom.to_dense()), 1e-10)
    assert_rel(h2_error(fom, rom), h2_error(fom.to_dense(), rom), 1e-9)


def _stack(systems):
    return jax.tree.map(lambda *x: jnp.stack(x), *systems)


def test_vmap_over_stacked_diagonal_systems_equals_loop():
    base = first(diagonal(feedthrough=True), nontrivial)
    systems = [
        eqx.tree_at(lambda s: (s.poles, s.B), base, (base.poles * f, base.B * (1 + k)))
        for k, f in enumerate([1.0, 0.8 + 0.3j, 0.5j])
    ]
    rom = first(dense(R, feedthrough=True), nontrivial)
    stacked = _stack(systems)
    norms = eqx.filter_jit(eqx.filter_vmap(lqo.h2_norm))(stacked)
    errors = eqx.filter_jit(eqx.filter_vmap(lambda s: lqo.h2_error(s, rom)))(stacked)
    assert len({float(x) for x in norms}) == 3  # genuinely different systems
    for i, s in enumerate(systems):
        assert_rel(norms[i], h2_norm(s), 1e-12)
        assert_rel(errors[i], h2_error(s, rom), 1e-12)


def test_vmap_over_arrays_building_dense_systems_equals_loop():
    fom = first(dense(feedthrough=True), nontrivial)
    rom = first(dense(R, feedthrough=True), nontrivial)
    scales = jnp.array([0.25, 0.5, 0.9])

    def shrunk(s):
        return eqx.tree_at(lambda t: t.A, rom, s * rom.A)

    batched = jax.jit(jax.vmap(lambda s: lqo.h2_error(fom, shrunk(s))))(scales)
    assert len({float(x) for x in batched}) == 3
    for i, s in enumerate(scales):
        assert_rel(batched[i], h2_error(fom, shrunk(s)), 1e-12)


def test_jit_equals_eager():
    fom = first(dense(feedthrough=True), nontrivial)
    rom = first(dense(R, feedthrough=True), nontrivial)
    assert_rel(lqo.h2_error(fom, rom), h2_error(fom, rom), 1e-13)
    assert_rel(lqo.h2_error(fom, rom, horizon=3), h2_error(fom, rom, horizon=3), 1e-13)


# =============================================================================================
# 4. Gradients
# =============================================================================================


@pytest.mark.parametrize(
    "discrete, lti, diag_fom",
    [
        (True, False, False),
        (True, False, True),
        (False, False, False),
        (False, True, True),
    ],
)
def test_analytic_gradient_matches_autodiff(discrete, lti, diag_fom):
    make = diagonal if diag_fom else dense
    fom = first(make(discrete=discrete, lti=lti, feedthrough=discrete), nontrivial)
    rom = first(dense(R, discrete=discrete, lti=lti, feedthrough=discrete), nontrivial)
    analytic = h2_error_gradient(fom, rom)
    autodiff = grad_squared_error(rom, fom)
    assert isinstance(analytic, lqo.LQOSystem) and (analytic.M is None) == lti
    assert relative_tree_error(analytic, autodiff) <= 1e-8
    for g, x in zip(jax.tree.leaves(analytic), jax.tree.leaves(rom), strict=True):
        assert g.shape == x.shape and g.dtype == x.dtype


@hypothesis.given(fom=dense(feedthrough=True), rom=dense(R, feedthrough=True))
def test_analytic_gradient_matches_autodiff_property(fom, rom):
    analytic = h2_error_gradient(fom, rom)
    assert relative_tree_error(analytic, grad_squared_error(rom, fom)) <= 1e-8


def test_analytic_gradient_vanishes_at_the_fom():
    fom = first(dense(feedthrough=True), nontrivial)
    grad = h2_error_gradient(fom, fom)
    scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(fom)) ** 3
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) <= 1e-10 * scale


def _rom_arrays(rom):
    return (rom.A, rom.B, rom.C, rom.M)


@pytest.mark.parametrize(
    "discrete, horizon, quantity, orders",
    [
        # Second order in reverse mode (Hessian-vector products through the implicit solves).
        pytest.param(True, None, "error", {"fwd": 1, "rev": 2}, marks=pytest.mark.slow),
        (True, None, "norm", {"fwd": 1, "rev": 1}),  # the Lyapunov (not Sylvester) path
        (True, 3, "error", {"rev": 1}),
        (False, None, "error", {"rev": 1}),
        pytest.param(False, 1.5, "norm", {"rev": 1}, marks=pytest.mark.slow),  # through `expm`
    ],
)
def test_check_grads_dense(discrete, horizon, quantity, orders):
    fom = first(dense(discrete=discrete), nontrivial)
    rom = first(dense(R, discrete=discrete), nontrivial)
    dt = rom.dt

    def f(A, B, C, M):
        sys = lqo.LQOSystem(A, B, C, M, dt=dt)
        if quantity == "norm":
            return lqo.h2_norm(sys, horizon=horizon)
        return lqo.h2_error(fom, sys, horizon=horizon)

    f = jax.jit(f)
    for mode, order in orders.items():
        check_grads(f, _rom_arrays(rom), order=order, modes=(mode,))


def test_check_grads_stably_parameterised_diagonal_rom():
    # Real parameters of a diagonal rom: μ = exp(−exp(ν) + iθ) (METHOD.md §6).
    fom = first(dense(feedthrough=False), nontrivial)
    rng = np.random.default_rng(1)
    nu, theta = jnp.log(jnp.array([0.3, 1.0])), jnp.array([0.4, 2.0])
    b, c, f, g = (
        jnp.asarray(rng.standard_normal(s))
        for s in [(2, 2, 2), (2, 2, 2), (2, 2, 1, 2), (2, 2, 1, 2)]
    )

    def error(nu, theta, b, c, f, g):
        def cplx(x):
            return jax.lax.complex(x[0], x[1])

        poles = jnp.exp(jax.lax.complex(-jnp.exp(nu), theta))
        rom = lqo.DiagonalLQOSystem(poles, cplx(b), cplx(c), F=cplx(f), G=cplx(g), dt=1.0)
        return lqo.h2_error(fom, rom)

    check_grads(jax.jit(error), (nu, theta, b, c, f, g), order=1, modes=("fwd", "rev"))


# =============================================================================================
# 5. Errors and the feedthrough policy
# =============================================================================================


def make_unstable(sys):
    """Move the poles of a stable dense system out of the stability region."""
    if sys.is_discrete:  # largest pole at |λ| = 1.2
        return eqx.tree_at(lambda s: s.A, sys, sys.A * (1.2 / ref.spectral_radius(sys)))
    abscissa = float(np.max(np.linalg.eigvals(np.asarray(sys.A)).real))
    return eqx.tree_at(lambda s: s.A, sys, sys.A + (0.3 - abscissa) * jnp.eye(sys.n))


@pytest.mark.parametrize("discrete", [True, False])
def test_unstable_system(discrete):
    stable = first(dense(discrete=discrete), nontrivial)
    stable_rom = first(dense(R, discrete=discrete), nontrivial)
    sys, rom = make_unstable(stable), make_unstable(stable_rom)
    assert not bool(lqo.is_stable(sys)) and not bool(lqo.is_stable(rom))
    assert bool(lqo.is_stable(stable)) and bool(lqo.is_stable(stable_rom))
    with pytest.raises(RuntimeError, match="unstable"):
        h2_norm(sys)
    sol = h2_norm(sys, throw=False)
    assert isinstance(sol, lqo.Solution)
    assert float(sol.value) == np.inf and bool(sol.result == lqo.RESULTS.unstable)
    for fom_, rom_ in [(sys, stable_rom), (stable, rom)]:
        with pytest.raises(RuntimeError, match="unstable"):
            h2_error(fom_, rom_)
        sol = h2_error(fom_, rom_, throw=False)
        assert float(sol.value) == np.inf and bool(sol.result == lqo.RESULTS.unstable)
    ok = h2_error(stable, stable_rom, throw=False)
    assert bool(ok.result == lqo.RESULTS.successful) and np.isfinite(float(ok.value))


@pytest.mark.parametrize("horizon", [3, 7])
def test_time_limited_norm_of_unstable_discrete_system_is_the_finite_sum(horizon):
    sys = make_unstable(first(dense(), nontrivial))
    assert ref.spectral_radius(sys) > 1.1
    value = h2_norm(sys, horizon=horizon)  # does not raise
    assert_rel(value**2, ref.discrete_h2_squared(sys, horizon), 1e-10)
    sol = h2_norm(sys, horizon=horizon, throw=False)
    assert bool(sol.result == lqo.RESULTS.successful)
    rom = first(dense(R), nontrivial)
    assert_rel(
        h2_error(sys, rom, horizon=horizon) ** 2,
        ref.discrete_h2_error_squared(sys, rom, horizon),
        1e-9,
    )


def test_unstable_diagonal_system():
    sys = first(diagonal(), nontrivial)
    bad = eqx.tree_at(
        lambda s: s.poles,
        sys,
        sys.poles * (1.2 / jnp.min(jnp.abs(sys.poles))).astype(sys.poles.dtype),
    )
    with pytest.raises(RuntimeError, match="unstable"):
        h2_norm(bad)
    assert float(h2_norm(bad, throw=False).value) == np.inf
    assert_rel(h2_norm(bad, horizon=3) ** 2, ref.discrete_h2_squared(bad, 3), 1e-10)


@pytest.mark.parametrize("field", ["A", "B", "C", "M"])
def test_nonfinite_input(field):
    sys = first(dense(), nontrivial)
    bad = eqx.tree_at(
        lambda s: getattr(s, field),
        sys,
        getattr(sys, field).at[(0,) * getattr(sys, field).ndim].set(jnp.nan),
    )
    with pytest.raises(RuntimeError):
        h2_norm(bad)
    sol = h2_norm(bad, throw=False)
    assert bool(sol.result == lqo.RESULTS.nonfinite_input)
    with pytest.raises(RuntimeError):
        h2_error(sys, bad)
    assert bool(h2_error(bad, sys, throw=False).result != lqo.RESULTS.successful)


def test_mismatched_pairs_raise():
    fom = first(dense(), nontrivial)
    A, B, C, M, D = ref.as_numpy(fom)
    cases = {
        "inputs": lqo.LQOSystem(A, B[:, :1], C, M, dt=1.0),
        "outputs": lqo.LQOSystem(A, B, C[:1], M[:1], dt=1.0),
        "continuous": lqo.LQOSystem(A, B, C, M),
        "dt": lqo.LQOSystem(A, B, C, M, dt=0.5),
    }
    for word, rom in cases.items():
        for f in (lqo.h2_error, lqo.h2_error_gradient):
            with pytest.raises(ValueError, match=word):
                f(fom, rom)
        with pytest.raises(ValueError, match=word):
            lqo.h2_error(rom, fom)


def test_complex_dense_system_is_rejected():
    fom = first(dense(), nontrivial)
    A, B, C, M, D = ref.as_numpy(fom)
    cplx = lqo.LQOSystem(A + 0j, B, C, M, dt=1.0)
    with pytest.raises(TypeError, match="complex"):
        lqo.h2_norm(cplx)
    with pytest.raises(TypeError, match="complex"):
        lqo.h2_error(fom, cplx)
    with pytest.raises(TypeError):
        lqo.h2_error_gradient(fom, first(diagonal()))


@pytest.mark.parametrize("horizon", [0, -1, 2.5, True, 3.0])
def test_bad_discrete_horizon(horizon):
    sys = first(dense(), nontrivial)
    with pytest.raises(ValueError, match="horizon"):
        lqo.h2_norm(sys, horizon=horizon)
    with pytest.raises(ValueError, match="horizon"):
        lqo.h2_error(sys, sys, horizon=horizon)


@pytest.mark.parametrize("horizon", [0, -1, -0.5])
def test_bad_continuous_horizon(horizon):
    sys = first(dense(discrete=False), nontrivial)
    with pytest.raises(ValueError, match="horizon"):
        lqo.h2_norm(sys, horizon=horizon)
    with pytest.raises(ValueError, match="horizon"):
        lqo.h2_error(sys, sys, horizon=horizon)


def _with_d(sys, d):
    return eqx.tree_at(lambda s: s.D, sys, d)


def test_feedthrough_policy():
    rng = np.random.default_rng(3)
    d = jnp.asarray(rng.standard_normal((P_OUT, M_IN)))
    # Continuous time: D ≠ 0 makes the norm infinite; equal D cancel in the error.
    sys = first(dense(discrete=False), nontrivial)
    rom = first(dense(R, discrete=False), nontrivial)
    assert float(h2_norm(_with_d(sys, d))) == np.inf
    assert float(h2_error(_with_d(sys, d), rom)) == np.inf
    assert_rel(h2_error(_with_d(sys, d), _with_d(rom, d)), h2_error(sys, rom), 1e-12)
    # Discrete time: ‖D‖²_F is the lag-0 term.
    sys = first(dense(), nontrivial)
    rom = first(dense(R), nontrivial)
    assert_rel(h2_norm(_with_d(sys, d)) ** 2, h2_norm(sys) ** 2 + jnp.sum(d**2), 1e-12)
    assert_rel(
        h2_norm(_with_d(sys, d), horizon=3) ** 2,
        h2_norm(sys, horizon=3) ** 2 + jnp.sum(d**2),
        1e-12,
    )
    assert_rel(h2_error(_with_d(sys, d), _with_d(rom, d)), h2_error(sys, rom), 1e-12)
    assert_rel(h2_error(_with_d(sys, d), rom) ** 2, h2_error(sys, rom) ** 2 + jnp.sum(d**2), 1e-10)


def _lapack_calls(fn, *args) -> tuple[dict, str]:
    """LAPACK custom calls in the *optimised* (CSE'd) program that `jit(fn)` runs, and its text."""
    import collections
    import re

    text = jax.jit(fn).lower(*args).compile().as_text()
    calls = collections.Counter(re.findall(r'custom_call_target="lapack_(\w+?)_ffi"', text))
    return calls, text


def _lapack_calls_on(text: str, routine: str, output: str) -> int:
    """How many `routine` calls of an optimised program's `text` have an output `output`."""
    target = f'custom_call_target="lapack_{routine}_ffi"'
    return sum(1 for line in text.splitlines() if target in line and f"{output}{{" in line)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="counts CPU LAPACK calls")
@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("quadratic", [False, True])
def test_dense_h2_error_and_gradient_factorise_each_matrix_once(discrete, quadratic):
    """Issue 14: a dense h2 error + gradient needs the Schur forms of `A` and `Â` only.

    The three Gramian terms (and the quadratic ones) solve with `(A, Aᵀ)`, `(Â, Âᵀ)` and
    `(A, Âᵀ)`; each factorises `A₂` (not `A₂ᵀ`), so the compiled program has two `gees`.
    `n = 14`, `r = 6` keeps `(A, Âᵀ)` on Bartels–Stewart (`n r > 64`).
    """
    rng = np.random.default_rng(3)

    def state_matrix(k):
        a = rng.standard_normal((k, k)) / np.sqrt(k)
        if discrete:
            return 0.8 * a / np.max(np.abs(np.linalg.eigvals(a)))
        return a - (np.max(np.linalg.eigvals(a).real) + 1) * np.eye(k)

    def system(k):
        extra = {}
        if quadratic:
            extra["M"] = 0.1 * jnp.asarray(rng.standard_normal((1, k, k)))
        return dict(
            B=jnp.asarray(rng.standard_normal((k, 2))),
            C=jnp.asarray(rng.standard_normal((1, k))),
            **extra,
        )

    n, r = 14, 6
    a, a_hat = jnp.asarray(state_matrix(n)), jnp.asarray(state_matrix(r))
    fom_rest, rom_rest = system(n), system(r)
    dt = 1.0 if discrete else None

    def error(a, a_hat):
        fom = lqo.LQOSystem(a, **fom_rest, dt=dt)
        rom = lqo.LQOSystem(a_hat, **rom_rest, dt=dt)
        return lqo.h2_error(fom, rom)

    for fn in (error, jax.value_and_grad(error, argnums=(0, 1))):
        calls, text = _lapack_calls(fn, a, a_hat)
        assert 1 <= calls["dgees"] <= 2, calls
        # Eigenvalues of A (14 × 14): for an LTI pair one `geev`, for the modal form, which
        # then decides stability and words the "unstable" error too; for an LQO pair one for
        # the stability check and one in the branch that words the error (a `cond`, run only
        # then).
        assert _lapack_calls_on(text, "dgeev", "f64[14]") <= (2 if quadratic else 1)
