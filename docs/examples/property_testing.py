"""Property-testing your own control code with `jaxlqo.testing` strategies (hypothesis).

`my_impulse_energy` stands for user code: the energy of a discrete system's impulse response
over `L` steps, computed by simulation. Two properties pin it down: it equals the squared
time-limited h2 norm, and it never exceeds the infinite-horizon one. The strategies draw
stable systems by *structure* (sizes, poles, a seed), so failures shrink to small systems.
In a test suite, the decorated functions are ordinary pytest tests.
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np

import jaxlqo as lqo
import jaxlqo.testing as lqot

jax.config.update("jax_enable_x64", True)

L = 20  # steps


@jax.jit
def my_impulse_energy(sys: lqo.LQOSystem) -> jax.Array:
    """Σ_k ‖y_k‖², k = 1..L, over the responses to a unit impulse at each input (user code)."""
    impulses = jnp.zeros((sys.m, L + 1, sys.m)).at[:, 0, :].set(jnp.eye(sys.m))
    y = jax.vmap(lambda u: lqo.simulate(sys, u))(impulses)
    return jnp.sum(y[:, 1:] ** 2)  # y_0 = D u_0 is the feedthrough (D = 0 here)


h2_norm = jax.jit(lqo.h2_norm, static_argnames="horizon")


settings = hypothesis.settings(max_examples=6, deadline=None, derandomize=True)
small = st.integers(min_value=1, max_value=3)


@settings
@hypothesis.given(lqot.lqo_systems(n=small, m=small, p=1, lti=True))
def test_energy_is_time_limited_h2_norm(sys):
    expected = h2_norm(sys, horizon=L) ** 2
    np.testing.assert_allclose(my_impulse_energy(sys), expected, rtol=1e-10)


@settings
@hypothesis.given(lqot.lqo_systems(n=small, lti=True, max_radius=0.99))
def test_energy_is_at_most_h2_norm(sys):
    assert my_impulse_energy(sys) <= h2_norm(sys) ** 2 * (1 + 1e-10)


@settings
@hypothesis.given(lqot.stable_matrices(small, discrete=True), st.integers(0, 2**31 - 1))
def test_my_gramian_solves_the_stein_equation(A, seed):
    # Any function returning a Gramian can be checked against its defining equation.
    B = np.random.default_rng(seed).standard_normal((A.shape[0], 2))
    P = lqo.solve_discrete_lyapunov(A, B @ B.T)  # A P Aᵀ − P + B Bᵀ = 0
    np.testing.assert_allclose(A @ P @ A.T - P + B @ B.T, 0.0, atol=1e-10 * np.abs(P).max())


if __name__ == "__main__":  # calling a @given test runs all its examples
    test_energy_is_time_limited_h2_norm()
    test_energy_is_at_most_h2_norm()
    test_my_gramian_solves_the_stein_equation()
    print("all properties hold")
