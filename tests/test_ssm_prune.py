"""State pruning (LAST, AIRE-Prune), global state budgets, and compress's argument checks.

References: the H∞ norm of each mode by a frequency sweep, its h2 norm by `lqo.h2_norm`
(a Lyapunov-based computation), and simulation of the kept modes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo
import jaxlqo.ssm as ssm


def _system(rng, n=5, H=3, q=1):
    poles = 0.95 * rng.uniform(0.2, 1, n) * np.exp(1j * rng.uniform(0, np.pi, n))
    cplx = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)  # noqa: E731
    F = G = None
    if q:
        F, G = jnp.asarray(cplx(H, q, n)), jnp.asarray(cplx(H, q, n))
    return lqo.DiagonalLQOSystem(
        jnp.asarray(poles),
        jnp.asarray(cplx(n, H)),
        jnp.asarray(cplx(H, n)),
        jnp.asarray(rng.standard_normal((H, H))),
        F=F,
        G=G,
        dt=1.0,
    )


def test_last_score_is_the_squared_hinf_norm_of_each_mode():
    sys = _system(np.random.default_rng(0), q=0)
    scores = np.asarray(ssm.HInfinityModeScore()(sys))
    omega = np.linspace(-np.pi, np.pi, 200_001)
    for i in range(sys.n):
        b, c, lam = np.asarray(sys.B[i]), np.asarray(sys.C[:, i]), complex(sys.poles[i])
        # Spectral norm of the rank-one c bᵀ / (e^{jω} − λ) on a fine grid.
        peak = np.max(np.linalg.norm(c) * np.linalg.norm(b) / np.abs(np.exp(1j * omega) - lam))
        np.testing.assert_allclose(scores[i], peak**2, rtol=1e-6)


def test_aire_score_is_the_h2_energy_of_each_mode():
    sys = _system(np.random.default_rng(1), q=0)
    scores = np.asarray(ssm.H2ModeScore()(sys))
    # The energy Σ_k ‖c bᵀ λ^k‖_F² of each complex mode's kernel, summed directly.
    lags = np.arange(4000)
    for i in range(sys.n):
        b, c, lam = np.asarray(sys.B[i]), np.asarray(sys.C[:, i]), complex(sys.poles[i])
        energy = np.sum(np.abs(lam) ** (2 * lags)) * np.sum(np.abs(np.outer(c, b)) ** 2)
        np.testing.assert_allclose(scores[i], energy, rtol=1e-10)


def test_scores_see_the_quadratic_readout():
    sys = _system(np.random.default_rng(2), q=1)
    silent = lqo.DiagonalLQOSystem(sys.poles, sys.B, 0 * sys.C, sys.D, F=sys.F, G=sys.G, dt=1.0)
    assert np.all(np.asarray(ssm.HInfinityModeScore()(silent)) > 0)


def test_normalised_scores():
    order, eta = ssm.normalised_scores(jnp.array([1.0, 4.0, 0.0, 2.0]))
    assert order.tolist() == [1, 3, 0, 2]
    np.testing.assert_allclose(eta, [1.0, 2 / 6, 1 / 7, 0.0])


def test_global_threshold_spends_the_budget():
    same = np.array([5.0, 3.0, 1.0, 0.5])
    assert ssm.global_threshold_ranks([same, same], 4) == (2, 2)
    # A layer whose energy sits in one mode gives up its other states first.
    peaked = np.array([10.0, 1e-6, 1e-6, 1e-6])
    ranks = ssm.global_threshold_ranks([peaked, same], 5)
    assert sum(ranks) == 5 and ranks[0] == 1
    with pytest.raises(ValueError, match="budget"):
        ssm.global_threshold_ranks([same, same], 1)
    with pytest.raises(TypeError, match="int"):
        ssm.global_threshold_ranks([same, same], 4.0)


def test_pruned_layer_keeps_the_highest_scored_modes_exactly():
    rng = np.random.default_rng(3)
    sys = _system(rng)
    score = ssm.H2ModeScore()
    sol = ssm.prune_layer(sys, 2, score)
    kept = sol.value
    top = np.sort(np.argsort(-np.asarray(score(sys)))[:2])
    np.testing.assert_array_equal(sol.stats["kept"], top)
    np.testing.assert_array_equal(kept.poles, sys.poles[top])
    u = jnp.asarray(rng.standard_normal((9, 3)))
    manual = lqo.DiagonalLQOSystem(
        sys.poles[top],
        sys.B[top],
        sys.C[:, top],
        sys.D,
        F=sys.F[..., top],
        G=sys.G[..., top],
        dt=1.0,
    )
    np.testing.assert_allclose(lqo.simulate(kept, u), lqo.simulate(manual, u), atol=1e-13)


def _model():
    return ssm.DeepSSM(key=jax.random.key(5), d_in=1, H=3, n=6, layers=2, n_classes=3)


@pytest.mark.parametrize("method", ["last", "aire", "bt", "bt-input"])
def test_compress_with_a_global_budget(method):
    model = _model()
    calibration = jnp.asarray(np.random.default_rng(0).standard_normal((8, 10, 1)))
    compressed, info = ssm.compress(model, method=method, budget=7, calibration=calibration)
    assert sum(info["ranks"]) == 7 and min(info["ranks"]) >= 1
    assert [layer.n for layer in compressed.layers] == list(info["ranks"])


def test_budget_ranks_follow_the_hankel_singular_values():
    model = _model()
    ranks = ssm.budget_ranks(model, 8)
    assert sum(ranks) == 8
    # Every state of a layer is kept before a budget beyond the other layer's order.
    assert ssm.budget_ranks(model, 12) == (6, 6)


@pytest.mark.parametrize("rank", [4.5, "4", True, [2, 2.0]])
def test_compress_rejects_non_integer_ranks(rank):
    with pytest.raises(TypeError, match="rank"):
        ssm.compress(_model(), rank, method="bt")


def test_compress_argument_checks():
    model = _model()
    calibration = jnp.zeros((2, 5, 1))
    with pytest.raises(ValueError, match="exactly one"):
        ssm.compress(model, 2, budget=4, method="bt")
    with pytest.raises(ValueError, match="exactly one"):
        ssm.compress(model, method="bt")
    with pytest.raises(ValueError, match="slots"):
        ssm.compress(model, 3, method="h2", slots=2)
    with pytest.raises(ValueError, match="max_steps"):
        ssm.compress(model, 3, method="h2", max_steps=-1)
    with pytest.raises(TypeError, match="calibration"):
        ssm.compress(model, 3, method="bt-input", calibration=[[[0.0]]])
    with pytest.raises(ValueError, match="empty"):
        ssm.compress(model, 3, method="bt-input", calibration=jnp.zeros((0, 5, 1)))
    with pytest.raises(ValueError, match="d_in"):
        ssm.compress(model, 3, method="bt-input", calibration=calibration[..., None])
    assert ssm.compress(model, np.int64(3), method="bt")[1]["ranks"] == (3, 3)
