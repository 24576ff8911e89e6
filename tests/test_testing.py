"""Properties of the public hypothesis strategies in `jaxlqo.testing`."""

import subprocess
import sys as _sys

import hypothesis
import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo

T = lqo.testing
TOL = 1e-12


def _spectral_radius(A) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(A)))))


def _spectral_abscissa(A) -> float:
    return float(np.max(np.linalg.eigvals(np.asarray(A)).real))


def _assert_same_multiset(computed, expected, atol):
    """Greedy nearest matching of two multisets of complex numbers."""
    computed = list(np.asarray(computed, dtype=complex))
    expected = np.asarray(expected, dtype=complex)
    assert len(computed) == expected.size
    for lam in expected:
        i = int(np.argmin(np.abs(np.asarray(computed) - lam)))
        assert abs(computed[i] - lam) <= atol, (lam, computed)
        computed.pop(i)


def _assert_conjugate_closed(lam):
    lam = np.asarray(lam)
    _assert_same_multiset(lam, lam.conj(), atol=0.0)


# --- poles --------------------------------------------------------------------------------


@hypothesis.given(T.poles(st.integers(0, 8), discrete=True, min_radius=0.2, max_radius=0.7))
def test_discrete_poles_lie_in_the_annulus_and_are_conjugate_closed(lam):
    assert lam.dtype == jnp.complex128 and lam.ndim == 1
    r = np.abs(np.asarray(lam))
    assert np.all(r <= 0.7 + TOL) and np.all(r >= 0.2 - TOL)
    _assert_conjugate_closed(lam)


@hypothesis.given(T.poles(6, discrete=False, min_decay=0.3, max_decay=1.5, max_frequency=2.0))
def test_continuous_poles_lie_in_the_strip(lam):
    assert lam.shape == (6,)
    lam = np.asarray(lam)
    assert np.all(lam.real <= -0.3) and np.all(lam.real >= -1.5)
    assert np.all(np.abs(lam.imag) <= 2.0)
    _assert_conjugate_closed(lam)


@hypothesis.given(st.data(), st.booleans())
def test_real_poles_have_a_real_dtype(data, discrete):
    lam = data.draw(T.poles(5, discrete=discrete, complex_=False, max_radius=0.5, max_decay=3.0))
    assert lam.dtype == jnp.float64 and lam.shape == (5,)
    lam = np.asarray(lam)
    if discrete:
        assert np.all(np.abs(lam) <= 0.5)
    else:
        assert np.all(lam <= -0.1) and np.all(lam >= -3.0)


@hypothesis.given(T.poles(7, discrete=True, self_conjugate=False, max_radius=0.5))
def test_free_complex_poles(lam):
    assert lam.dtype == jnp.complex128 and lam.shape == (7,)
    assert np.all(np.abs(np.asarray(lam)) <= 0.5 + TOL)


def test_free_complex_poles_are_not_always_conjugate_closed():
    # Otherwise `self_conjugate=False` would be a no-op.
    lam = hypothesis.find(
        T.poles(1, discrete=True, self_conjugate=False),
        lambda lam: abs(float(jnp.imag(lam[0]))) > 0.1,
        settings=hypothesis.settings(database=None, derandomize=True),
    )
    assert abs(float(jnp.imag(lam[0]))) > 0.1


@hypothesis.given(T.poles(4, discrete=True, dtype=jnp.float32))
def test_pole_dtype_follows_the_requested_real_dtype(lam):
    assert lam.dtype == jnp.complex64


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_radius=1.0),
        dict(max_radius=-0.1),
        dict(min_radius=0.6, max_radius=0.5),
        dict(min_decay=0.0),
        dict(min_decay=2.0, max_decay=1.0),
        dict(max_frequency=-1.0),
    ],
)
def test_unstable_pole_regions_are_rejected_at_construction(kwargs):
    with pytest.raises(ValueError, match="jaxlqo.testing.poles"):
        T.poles(3, discrete=True, **kwargs)


# --- stable matrices ----------------------------------------------------------------------


@hypothesis.given(T.stable_matrices(st.integers(1, 7), discrete=True, max_radius=0.8))
def test_stable_matrices_discrete(A):
    assert A.dtype == jnp.float64 and A.shape[0] == A.shape[1]
    assert _spectral_radius(A) <= 0.8 + 1e-10


@hypothesis.given(T.stable_matrices(5, discrete=False, min_decay=0.2))
def test_stable_matrices_continuous(A):
    assert A.dtype == jnp.float64 and A.shape == (5, 5)
    assert _spectral_abscissa(A) <= -0.2 + 1e-10


@hypothesis.given(T.stable_matrices(4, discrete=st.booleans(), complex_=True))
def test_stable_matrices_complex(A):
    assert A.dtype == jnp.complex128 and A.shape == (4, 4)
    lam = np.linalg.eigvals(np.asarray(A))
    assert np.all(np.abs(lam) <= 0.9 + 1e-10) or np.all(lam.real <= -0.1 + 1e-10)


def test_stable_matrices_are_not_normal():
    # The eigenbasis is not orthogonal: `A` should not commute with `Aᵀ` (a normal `A` would make
    # solver tests too easy). n = 1 is always normal, so ask for n = 3 real poles.
    A = hypothesis.find(
        T.stable_matrices(3, discrete=True),
        lambda A: float(jnp.linalg.norm(A @ A.T - A.T @ A)) > 1e-3,
        settings=hypothesis.settings(database=None, derandomize=True),
    )
    assert float(jnp.linalg.norm(A @ A.T - A.T @ A)) > 1e-3


# --- dense LQO systems --------------------------------------------------------------------


@hypothesis.given(T.lqo_systems(n=st.integers(1, 6), m=2, p=3, feedthrough=True))
def test_lqo_systems_shapes_and_stability(sys):
    n = sys.n
    assert isinstance(sys, lqo.LQOSystem)
    assert sys.A.shape == (n, n) and sys.B.shape == (n, 2) and sys.C.shape == (3, n)
    assert sys.M.shape == (3, n, n) and sys.D.shape == (3, 2)
    assert all(x.dtype == jnp.float64 for x in (sys.A, sys.B, sys.C, sys.M, sys.D))
    assert sys.dt == 1.0 and sys.is_discrete and not sys.is_lti
    assert _spectral_radius(sys.A) < 1.0
    np.testing.assert_array_equal(sys.M, jnp.swapaxes(sys.M, -1, -2))
    assert float(jnp.max(jnp.abs(sys.D))) > 0


@hypothesis.given(T.lqo_systems(discrete=False, lti=True))
def test_lqo_systems_continuous_lti(sys):
    assert sys.dt is None and not sys.is_discrete
    assert sys.M is None and sys.is_lti
    np.testing.assert_array_equal(sys.D, 0.0)
    assert _spectral_abscissa(sys.A) < 0.0


@hypothesis.given(st.data(), st.booleans())
def test_lqo_systems_spectrum_is_exactly_the_drawn_poles(data, discrete):
    lam = data.draw(T.poles(st.integers(1, 7), discrete=discrete), label="poles")
    sys = data.draw(T.lqo_systems(poles=lam, discrete=discrete), label="sys")
    assert sys.n == lam.shape[0]
    # Bauer–Fike with cond(V) <= 4: the computed eigenvalues are within a few ulps · 4 · ‖A‖.
    _assert_same_multiset(np.linalg.eigvals(np.asarray(sys.A)), lam, atol=1e-10)


@hypothesis.given(T.lqo_systems(poles=T.poles(4, discrete=True, complex_=False), lti=True))
def test_lqo_systems_accepts_a_poles_strategy(sys):
    lam = np.linalg.eigvals(np.asarray(sys.A))
    assert sys.n == 4 and np.all(np.abs(lam.imag) < 1e-10)


def test_lqo_systems_rejects_poles_not_closed_under_conjugation():
    strategy = T.lqo_systems(poles=np.array([0.5 + 0.1j, 0.2]))
    with pytest.raises(ValueError, match="closed under complex conjugation"):
        hypothesis.find(strategy, lambda _: True)


@hypothesis.given(T.lqo_systems(n=3, m=1, p=1, dtype=jnp.float32, feedthrough=True))
def test_lqo_systems_dtype(sys):
    assert all(x.dtype == jnp.float32 for x in (sys.A, sys.B, sys.C, sys.M, sys.D))


@hypothesis.given(T.lqo_systems(n=5, scale=1e-3, lti=False))
def test_lqo_systems_scale(sys):
    assert float(jnp.max(jnp.abs(sys.B))) < 1e-2
    assert float(jnp.max(jnp.abs(sys.M))) < 1e-2


@pytest.mark.parametrize(
    "kwargs", [dict(n=0), dict(m=-1), dict(p=1.5), dict(cond=0.5), dict(scale=0.0), dict(dt=-1.0)]
)
def test_lqo_systems_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="jaxlqo.testing.lqo_systems"):
        T.lqo_systems(**kwargs)


def test_failures_shrink_to_small_structure():
    # Strategies draw structure, so a failing example shrinks to the smallest size and the
    # simplest poles (all at the origin in discrete time).
    sys = hypothesis.find(
        T.lqo_systems(n=st.integers(1, 6)),
        lambda s: s.n >= 3,
        settings=hypothesis.settings(database=None, derandomize=True, max_examples=200),
    )
    assert sys.n == 3 and sys.m == 1 and sys.p == 1
    np.testing.assert_allclose(np.linalg.eigvals(np.asarray(sys.A)), 0.0, atol=1e-12)


# --- diagonal systems ---------------------------------------------------------------------


@hypothesis.given(
    T.diagonal_systems(n=st.integers(1, 6), m=2, p=3, rank=st.integers(1, 3), max_radius=0.8)
)
def test_diagonal_systems_shapes_dtypes_and_stability(sys):
    n = sys.n
    assert isinstance(sys, lqo.DiagonalLQOSystem)
    assert sys.poles.shape == (n,) and sys.B.shape == (n, 2) and sys.C.shape == (3, n)
    assert sys.D.shape == (3, 2) and sys.F.shape[0] == 3 and sys.F.shape[2] == n
    assert 1 <= sys.F.shape[1] <= 3 and sys.G.shape == sys.F.shape
    assert all(x.dtype == jnp.complex128 for x in (sys.poles, sys.B, sys.C, sys.F, sys.G))
    assert sys.D.dtype == jnp.float64 and sys.dt == 1.0
    assert float(jnp.max(jnp.abs(sys.poles))) <= 0.8 + TOL
    assert float(jnp.max(jnp.abs(jnp.imag(sys.B)))) > 0  # complex, not merely complex-typed


@hypothesis.given(T.diagonal_systems(n=4, m=1, p=1, lti=True, discrete=False, rank=2))
def test_diagonal_systems_continuous_lti(sys):
    assert sys.F is None and sys.G is None and sys.is_lti and sys.dt is None
    assert float(jnp.max(jnp.real(sys.poles))) <= -0.1


@hypothesis.given(st.data())
def test_diagonal_systems_with_given_poles(data):
    lam = data.draw(T.poles(st.integers(1, 5), discrete=True, self_conjugate=False))
    sys = data.draw(T.diagonal_systems(poles=lam, lti=True))
    np.testing.assert_array_equal(sys.poles, lam)


@hypothesis.given(T.diagonal_systems(n=2, m=1, p=1, rank=4))
def test_diagonal_systems_fixed_rank(sys):
    assert sys.F.shape == (1, 4, 2)


# --- input sequences ----------------------------------------------------------------------


@hypothesis.given(T.input_sequences(st.integers(0, 20), 3, scale=2.0))
def test_input_sequences(u):
    assert u.ndim == 2 and u.shape[1] == 3 and u.shape[0] <= 20
    assert u.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(u)))


@hypothesis.given(T.input_sequences(4, st.integers(1, 3), dtype=jnp.float32))
def test_input_sequences_dtype(u):
    assert u.dtype == jnp.float32 and u.shape[0] == 4


def test_default_dtype_follows_jax_without_x64():
    # conftest enables x64; in a fresh interpreter without it everything is float32/complex64,
    # and the library must not have switched x64 on by itself.
    code = (
        "import jax, jax.numpy as jnp, jaxlqo as lqo, hypothesis\n"
        "@hypothesis.settings(max_examples=3, database=None, derandomize=True)\n"
        "@hypothesis.given(lqo.testing.lqo_systems(n=2), lqo.testing.diagonal_systems(n=2))\n"
        "def check(s, d):\n"
        "    assert s.A.dtype == jnp.float32, s.A.dtype\n"
        "    assert d.poles.dtype == jnp.complex64 and d.D.dtype == jnp.float32\n"
        "check()\n"
        "assert not jax.config.jax_enable_x64\n"
    )
    subprocess.run([_sys.executable, "-c", code], check=True, timeout=120)
