"""Gramians and Hankel singular values: equations, references, diagonal == dense, transforms.

References are NumPy Kronecker solves, finite sums and the Van Loan exponential
(`reference_norms.py`); the SLICOT heat model's stored Hankel singular values.
"""

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_norms as ref
from _helpers import ND, N, dense, diagonal, first as first_example
from conftest import load_benchmark

import jaxlqo as lqo

T = lqo.testing


@eqx.filter_jit
def quantities(sys, horizon=None):
    """`(P, Q, Hankel singular values, h2 norm)`, compiled once per system structure."""
    kw = dict(horizon=horizon)
    return (
        lqo.controllability_gramian(sys, **kw),
        lqo.observability_gramian(sys, **kw),
        lqo.hankel_singular_values(sys, **kw),
        lqo.h2_norm(sys, **kw),
    )


def _nontrivial(s) -> bool:
    """Not the all-zero shrunk example."""
    return float(jnp.max(jnp.abs(s.A if isinstance(s, lqo.LQOSystem) else s.poles))) > 0.2


def first(strategy):
    """A deterministic example (not the all-zero shrunk one) from a strategy, memoised."""
    return first_example(strategy, _nontrivial)


def assert_close(actual, expected, rtol):
    """Normwise: `‖actual − expected‖ ≤ rtol ‖expected‖`."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    err = np.linalg.norm(actual - expected)
    assert err <= rtol * np.linalg.norm(expected), (err, np.linalg.norm(expected))


def assert_same_hsv(actual, expected, rtol=1e-10):
    """Compare `σ²` against `σ₀²`: a zero Hankel singular value is only resolved to `√ε σ₀`."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.all(np.diff(actual) <= 0) and np.all(actual >= 0)  # decreasing, nonnegative
    np.testing.assert_allclose(actual**2, expected**2, rtol=0, atol=rtol * expected[0] ** 2)


def lqo_source(sys, P):
    """`Σ_j M_j P M_j` (zero for an LTI system)."""
    _, _, _, M, _ = ref.as_numpy(sys)
    return np.zeros_like(P) if M is None else sum(Mj @ P @ Mj for Mj in M)


# =============================================================================================
# Reference values
# =============================================================================================


def test_heat_cont_hankel_singular_values():
    d = load_benchmark("heat_cont")
    sys = lqo.LQOSystem(d["A"], d["B"], d["C"])
    sigma = np.asarray(eqx.filter_jit(lqo.hankel_singular_values)(sys))
    expected = d["hsv"]
    assert sigma.shape == expected.shape == (200,)
    assert np.all(np.diff(sigma) <= 0)  # decreasing
    rel = np.abs(sigma - expected) / expected[0]
    # Observed: ≤ 1.2e-11 for the first 13 values, ≤ 2e-10 for all of them.
    assert np.max(rel[:10]) <= 1e-10, rel[:10]
    assert np.max(rel) <= 1e-8


# =============================================================================================
# Equations and independent references
# =============================================================================================


def _residuals(sys, P, Q):
    A, B, C, _, _ = ref.as_numpy(sys)
    P, Q = np.asarray(P), np.asarray(Q)
    src_p, src_q = B @ B.T, C.T @ C + lqo_source(sys, P)
    if sys.is_discrete:
        res_p, res_q = A @ P @ A.T + src_p - P, A.T @ Q @ A + src_q - Q
    else:
        res_p, res_q = A @ P + P @ A.T + src_p, A.T @ Q + Q @ A + src_q
    scale_a = 1 + np.linalg.norm(A) ** 2
    return (
        np.linalg.norm(res_p) / (scale_a * np.linalg.norm(P) + np.linalg.norm(src_p)),
        np.linalg.norm(res_q) / (scale_a * np.linalg.norm(Q) + np.linalg.norm(src_q)),
    )


@pytest.mark.parametrize("discrete", [True, False])
@hypothesis.given(st.data())
def test_gramians_solve_their_equations(discrete, data):
    sys = data.draw(dense(discrete=discrete, lti=st.booleans()))
    P, Q, _, _ = quantities(sys)
    res_p, res_q = _residuals(sys, P, Q)
    assert res_p <= 1e-13 and res_q <= 1e-13
    for G in (P, Q):
        G = np.asarray(G)
        assert G.dtype == np.float64
        np.testing.assert_allclose(G, G.T, rtol=0, atol=1e-13 * np.linalg.norm(G))
        assert np.min(np.linalg.eigvalsh(G)) >= -1e-12 * np.linalg.norm(G)


@pytest.mark.parametrize("discrete", [True, False])
@hypothesis.given(st.data())
def test_gramians_match_kronecker_reference(discrete, data):
    sys = data.draw(dense(discrete=discrete, lti=st.booleans()))
    P, Q, sigma, norm = quantities(sys)
    P_ref, Q_ref = ref.controllability_gramian(sys), ref.observability_gramian(sys)
    assert_close(P, P_ref, 1e-10)
    assert_close(Q, Q_ref, 1e-10)
    # Hankel singular values: √λ(P Q), decreasing.
    expected = np.sort(np.sqrt(np.abs(np.linalg.eigvals(P_ref @ Q_ref))))[::-1]
    assert_same_hsv(sigma, expected)
    # tr(Bᵀ Q B) is the squared h2 norm (METHOD.md §3).
    B = np.asarray(sys.B)
    np.testing.assert_allclose(np.trace(B.T @ np.asarray(Q) @ B), norm**2, rtol=1e-10)


def test_lqo_observability_gramian_adds_the_quadratic_source():
    sys = first(dense())
    linear = lqo.LQOSystem(sys.A, sys.B, sys.C, dt=sys.dt)
    P, Q, _, _ = quantities(sys)
    _, Q_lin, _, _ = quantities(linear)
    np.testing.assert_allclose(P, quantities(linear)[0], rtol=1e-14, atol=0)
    extra = ref.kron_lyapunov(np.asarray(sys.A).T, lqo_source(sys, np.asarray(P)), True)
    assert np.linalg.norm(extra) > 1e-2 * np.linalg.norm(Q)  # the test can see the term
    assert_close(np.asarray(Q) - np.asarray(Q_lin), extra, 1e-10)


@pytest.mark.parametrize("discrete, horizon", [(True, 1), (True, 3), (False, 1.5)])
@hypothesis.given(st.data())
def test_time_limited_gramians(discrete, horizon, data):
    sys = data.draw(dense(discrete=discrete))  # LQO; the LTI case is its M = None special case
    P, Q, sigma, norm = quantities(sys, horizon)
    P_ref = ref.controllability_gramian(sys, horizon)  # finite sum / Van Loan
    Q_ref = ref.observability_gramian(sys, horizon)
    assert_close(P, P_ref, 1e-10)
    assert_close(Q, Q_ref, 1e-10)
    B = np.asarray(sys.B)
    np.testing.assert_allclose(np.trace(B.T @ np.asarray(Q) @ B), norm**2, rtol=1e-10)
    P_inf = quantities(sys)[0]
    # P_L ⪯ P: the tail A^L P (A^L)ᵀ (or e^{AT} P e^{AᵀT}) is positive semidefinite.
    assert np.min(np.linalg.eigvalsh(np.asarray(P_inf - P))) >= -1e-12 * np.linalg.norm(P_inf)


def test_time_limited_gramian_of_unstable_system():
    sys = first(dense())
    A = np.asarray(sys.A)
    unstable = eqx.tree_at(lambda s: s.A, sys, sys.A * (1.3 / np.max(np.abs(np.linalg.eigvals(A)))))
    with pytest.raises(RuntimeError, match="unstable"):
        quantities(unstable)
    sol = lqo.controllability_gramian(unstable, throw=False)
    assert bool(sol.result == lqo.RESULTS.unstable)
    P, Q, _, _ = quantities(unstable, 3)  # finite horizon: no error
    assert_close(P, ref.controllability_gramian(unstable, 3), 1e-10)
    assert_close(Q, ref.observability_gramian(unstable, 3), 1e-10)


# =============================================================================================
# Invariances, diagonal == dense, transforms
# =============================================================================================


@hypothesis.given(dense(lti=st.booleans()), st.integers(0, 2**32 - 1))
def test_hankel_singular_values_are_similarity_invariant(sys, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    d = np.exp(rng.uniform(-np.log(2), np.log(2), N))
    t, t_inv = q * d, (q / d).T
    A, B, C, M, _ = ref.as_numpy(sys)
    M = None if M is None else np.einsum("ai,jab,bk->jik", t, M, t)
    other = lqo.LQOSystem(t_inv @ A @ t, t_inv @ B, C @ t, M, dt=sys.dt)
    P, Q, sigma, _ = quantities(sys)
    P2, Q2, sigma2, _ = quantities(other)
    assert_same_hsv(sigma2, sigma)
    # Gramians transform contragrediently: P' = T⁻¹ P T⁻ᵀ, Q' = Tᵀ Q T.
    assert_close(P2, t_inv @ np.asarray(P) @ t_inv.T, 1e-10)
    assert_close(Q2, t.T @ np.asarray(Q) @ t, 1e-10)


@pytest.mark.parametrize("discrete, horizon", [(True, None), (True, 3), (False, None)])
@hypothesis.given(st.data())
def test_diagonal_gramians_equal_those_of_the_realified_system(discrete, horizon, data):
    sys = data.draw(diagonal(discrete=discrete, lti=st.booleans() if horizon is None else False))
    P, Q, sigma, norm = quantities(sys, horizon)
    P_d, Q_d, sigma_d, norm_d = quantities(sys.to_dense(), horizon)
    assert P.shape == Q.shape == (2 * ND, 2 * ND) and P.dtype == Q.dtype == jnp.float64
    assert sigma.shape == (2 * ND,)
    assert_close(P, P_d, 1e-11)
    assert_close(Q, Q_d, 1e-11)
    assert_same_hsv(sigma, sigma_d)
    np.testing.assert_allclose(norm, norm_d, rtol=1e-11)


def test_is_stable():
    sys, diag = first(dense()), first(diagonal())
    assert bool(lqo.is_stable(sys)) and bool(lqo.is_stable(diag))
    assert not bool(lqo.is_stable(eqx.tree_at(lambda s: s.A, sys, -sys.A / 0.01)))
    assert not bool(lqo.is_stable(eqx.tree_at(lambda s: s.poles, diag, diag.poles * 0 + 1)))
    cont = first(dense(discrete=False))
    assert bool(lqo.is_stable(cont))
    assert not bool(lqo.is_stable(eqx.tree_at(lambda s: s.A, cont, -cont.A)))


def test_vmap_over_stacked_systems_equals_loop():
    base = first(diagonal())
    systems = [
        eqx.tree_at(lambda s: (s.poles, s.B), base, (base.poles * f, base.B * (1 + k)))
        for k, f in enumerate([1.0, 0.8 + 0.3j, 0.5j])
    ]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *systems)
    P, Q, sigma, norm = eqx.filter_vmap(quantities)(stacked)
    assert len({float(x) for x in norm}) == 3
    for i, s in enumerate(systems):
        for batched, single in zip((P, Q, sigma, norm), quantities(s), strict=True):
            np.testing.assert_allclose(batched[i], single, rtol=1e-12, atol=1e-14)


def test_jit_equals_eager():
    sys = first(dense())
    eager = (
        lqo.controllability_gramian(sys),
        lqo.observability_gramian(sys, horizon=3),
        lqo.hankel_singular_values(sys),
    )
    jitted = (quantities(sys)[0], quantities(sys, 3)[1], quantities(sys)[2])
    for e, j in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(e, j, rtol=1e-13, atol=1e-15)


def test_gramian_errors():
    sys = first(dense())
    with pytest.raises(ValueError, match="horizon"):
        lqo.controllability_gramian(sys, horizon=0)
    with pytest.raises(ValueError, match="horizon"):
        lqo.hankel_singular_values(sys, horizon=2.5)
    with pytest.raises(ValueError, match="horizon"):
        lqo.observability_gramian(first(dense(discrete=False)), horizon=-1.0)
    A, B, C, M, _ = ref.as_numpy(sys)
    with pytest.raises(TypeError, match="complex"):
        lqo.observability_gramian(lqo.LQOSystem(A + 0j, B, C, M, dt=1.0))
    bad = eqx.tree_at(lambda s: s.B, sys, sys.B.at[0, 0].set(jnp.nan))
    with pytest.raises(RuntimeError):
        quantities(bad)
    sol = lqo.controllability_gramian(bad, throw=False)
    assert bool(sol.result == lqo.RESULTS.nonfinite_input)
