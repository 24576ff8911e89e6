"""Model reduction: balanced truncation, modal truncation, `reduce` (h2-optimal) and `tlh2`.

Oracles: the stored Hankel singular values of `heat_cont`; the a-priori bounds
`σ_{r+1} ≤ ‖G − G_r‖_H∞ ≤ 2 Σ_{i>r} σ_i` of balanced truncation, with the error transfer
function evaluated by NumPy (partial fractions) on a frequency grid; the Meier–Luenberger
interpolation conditions of an h2-optimal SISO model; `reduce` keeps its best iterate (never
worse than its initial model) and is stable by construction.

Compile cost: `lqo.reduce` compiles once per shapes and static settings (`r`, `max_steps`,
`tol`, `horizon`, `dt`, whether `init` / `weight` are given), ~20 s each. So the tests share
a few structures: `DENSE` (discrete LQO, also the TLH2 example), `DIAG` (continuous diagonal
LQO, also the batched systems), and SISO systems of order 48 (`build`, its zero-order hold,
and random systems of the same shapes), with one `max_steps` per structure.
"""

import functools

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from conftest import load_benchmark

import jaxlqo as lqo

T = lqo.testing

# `eqx.filter_jit`: one compilation per structure (eagerly, every primitive of balanced
# truncation dispatches and compiles separately), and `eqx.error_if` raises readably.
balanced_truncation = eqx.filter_jit(lqo.balanced_truncation)
modal_truncation = eqx.filter_jit(lqo.modal_truncation)
h2_error = eqx.filter_jit(lqo.h2_error)
h2_norm = eqx.filter_jit(lqo.h2_norm)
is_stable = eqx.filter_jit(lqo.is_stable)

FEW = hypothesis.settings(max_examples=5, deadline=None)

R = 2  # reduced order of the random systems
STEPS = 40  # `DENSE` and `DIAG`: enough to move well away from the initial model
BENCH_STEPS, BENCH_TOL = 500, 1e-10  # order-48 SISO systems: converged tightly
ORDERS = (2, 4, 8)

DENSE = T.lqo_systems(n=6, m=2, p=2, discrete=True, lti=False)
DENSE_HORIZON = 5  # steps
DIAG = T.diagonal_systems(n=6, m=2, p=2, rank=1, discrete=False, lti=False, feedthrough=False)
DIAG_HORIZON = 2.0  # time

# `h2_error` squares and subtracts inner products: its square is accurate to about ε‖Σ‖²
# (METHOD.md §4), which is what a comparison of two squared errors has to allow.
CANCELLATION = 1e-13


def first(strategy):
    """A deterministic example of a strategy (its shrunk minimum: with fixed poles, seed 0)."""
    return hypothesis.find(
        strategy, lambda s: True, settings=hypothesis.settings(database=None, derandomize=True)
    )


def rel(a, b) -> float:
    return abs(float(a) - float(b)) / abs(float(b))


def assert_squared_errors_close(a, b, norm, rtol):
    """`|a − b| ≤ rtol·b + CANCELLATION·‖Σ‖²` for two squared h2 errors."""
    a, b, norm = float(a), float(b), float(norm)
    assert abs(a - b) <= rtol * b + CANCELLATION * norm**2, (a, b, norm)


# ---------------------------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------------------------


def _continuous_poles(n_pairs: int, n_real: int, seed: int, max_frequency=5.0) -> np.ndarray:
    """A conjugation-closed continuous-time pole set (decays in [0.05, 2])."""
    rng = np.random.default_rng(seed)
    pairs = -rng.uniform(0.05, 2.0, n_pairs) + 1j * rng.uniform(0.2, max_frequency, n_pairs)
    return np.concatenate([pairs, pairs.conj(), -rng.uniform(0.05, 2.0, n_real) + 0j])


def _discrete_poles(n_pairs: int, seed: int, min_radius: float, max_radius: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    upper = rng.uniform(min_radius, max_radius, n_pairs) * np.exp(
        1j * rng.uniform(0.05, 3, n_pairs)
    )
    return np.concatenate([upper, upper.conj()])


def dense_example(seed: int = 0, min_radius: float = 0.3, max_radius: float = 0.9):
    """A deterministic system of the `DENSE` structure (it shares its compilations)."""
    poles = _discrete_poles(3, seed, min_radius, max_radius)
    return first(T.lqo_systems(poles=poles, m=2, p=2, discrete=True, lti=False))


def diagonal_example(seed: int = 0) -> lqo.DiagonalLQOSystem:
    """A deterministic system of the `DIAG` structure."""
    rng = np.random.default_rng(seed)
    poles = -rng.uniform(0.1, 2.0, 6) + 1j * rng.uniform(-3, 3, 6)
    return first(
        T.diagonal_systems(
            poles=poles, m=2, p=2, rank=1, discrete=False, lti=False, feedthrough=False
        )
    )


@functools.cache
def model(name: str) -> lqo.LQOSystem:
    """Benchmarks, and random SISO LTI systems of order 48 (the shapes of `build`)."""
    if name in ("build", "heat_cont"):
        d = load_benchmark(name)
        return lqo.LQOSystem(d["A"], d["B"], d["C"])
    if name == "build_zoh":
        d = load_benchmark("build")
        zoh = scipy.signal.cont2discrete((d["A"], d["B"], d["C"], np.zeros((1, 1))), 0.1)
        return lqo.LQOSystem(*zoh[:3], dt=0.1)
    if name == "random":
        poles = _continuous_poles(22, 4, 7)
        return first(T.lqo_systems(poles=poles, m=1, p=1, discrete=False, lti=True))
    if name == "random_zoh":
        poles = _discrete_poles(24, 7, 0.5, 0.98)
        return first(T.lqo_systems(poles=poles, m=1, p=1, lti=True, dt=0.1))
    raise KeyError(name)


@eqx.filter_jit
def _balanced_truncations(sys):
    return [lqo.balanced_truncation(sys, r) for r in ORDERS]


@functools.cache
def balanced(name: str) -> dict:
    """`(rom, hsv)` of balanced truncation at every order in `ORDERS`, in one compilation
    (shared Gramians)."""
    solutions = _balanced_truncations(model(name))
    pairs = [(sol.value, sol.stats["hankel_singular_values"]) for sol in solutions]
    return dict(zip(ORDERS, pairs, strict=True))


@functools.cache
def reduced(name: str, r: int) -> lqo.Solution:
    return lqo.reduce(model(name), r, max_steps=BENCH_STEPS, tol=BENCH_TOL)


# ---------------------------------------------------------------------------------------------
# NumPy transfer functions
# ---------------------------------------------------------------------------------------------


def _modal_data(sys: lqo.LQOSystem):
    """`(λ, C V, V⁻¹ B, D)` with `A = V diag(λ) V⁻¹` (NumPy). The eigenbases here are well
    conditioned (checked), so partial fractions are accurate to about cond(V) ε."""
    A, B, C, D = (np.asarray(x) for x in (sys.A, sys.B, sys.C, sys.D))
    lam, v = np.linalg.eig(A)
    assert np.linalg.cond(v) < 1e6
    return lam, C @ v, np.linalg.solve(v, B), D


def transfer_function(sys: lqo.LQOSystem, s, derivative: bool = False) -> np.ndarray:
    """`G(s) = C (sI − A)⁻¹ B + D` or `G'(s) = −C (sI − A)⁻² B` at the points `s`, (k, p, m)."""
    lam, c, b, d = _modal_data(sys)
    s = np.atleast_1d(s)[:, None]
    weights = -1 / (s - lam) ** 2 if derivative else 1 / (s - lam)
    g = np.einsum("pi,ki,im->kpm", c, weights, b)
    return g if derivative else g + d


def hinf_on_grid(fom, rom) -> float:
    """`max ‖G(s) − G_r(s)‖₂` over a frequency grid that contains every pole's frequency.

    A grid maximum is a lower bound on the H∞ norm, so `≤ bound` is a valid check, and the
    lower bound `σ_{r+1}` checks that the grid resolves the peak.
    """
    poles = np.concatenate([_modal_data(s)[0] for s in (fom, rom)])
    if fom.is_discrete:
        s = np.exp(1j * np.concatenate([np.linspace(0, np.pi, 4001), np.abs(np.angle(poles))]))
    else:
        s = 1j * np.concatenate([[0.0], np.logspace(-4, 4, 4001), np.abs(poles.imag)])
    diff = transfer_function(fom, s) - transfer_function(rom, s)
    return float(np.max(np.linalg.norm(diff, ord=2, axis=(1, 2))))


# =============================================================================================
# 1. Balanced truncation: Hankel singular values, the H∞ bound, stability
# =============================================================================================


def test_balanced_truncation_reproduces_heat_hankel_singular_values():
    ref = load_benchmark("heat_cont")["hsv"]
    rom, hsv = balanced("heat_cont")[4]
    hsv = np.asarray(hsv)
    assert hsv.shape == (200,) and np.all(np.diff(hsv) <= 0)
    err = np.abs(hsv[:20] - ref[:20]) / ref[0]
    # The leading 12 (down to σ₁₂ ≈ 1.5e-9 σ₁) agree to 1.2e-11 σ₁ (observed). Further down, the
    # square root of the *full* Gramians has a floor: a Gramian error of ~1e-12 ‖P‖ (the
    # Bartels–Stewart residual) puts noise of up to 1.6e-10 σ₁ on σ₁₃ … σ₂₀ (observed, and
    # the same with SciPy's Gramians factored the same way; the reference is good to 1e-12).
    assert np.all(err[:12] <= 1e-10), err
    assert np.all(err <= 5e-10), err
    assert bool(is_stable(rom))


@pytest.mark.parametrize("r", ORDERS)
@pytest.mark.parametrize("name", ["build", "heat_cont", "build_zoh"])
def test_balanced_truncation_hinf_bound(name, r):
    sys = model(name)
    rom, hsv = balanced(name)[r]
    hsv = np.asarray(hsv)
    assert isinstance(rom, lqo.LQOSystem) and rom.n == r and rom.dt == sys.dt
    assert bool(is_stable(rom))
    err = hinf_on_grid(sys, rom)
    bound = 2 * np.sum(hsv[r:])
    assert err <= bound * (1 + 1e-8), (err, bound)
    # Every order-r model has ‖G − G_r‖_H∞ ≥ σ_{r+1}: the grid does resolve the peak.
    assert err >= hsv[r] * (1 - 1e-6), (err, hsv[r])


# =============================================================================================
# 2. Every returned model is stable (and `reduce` is never worse than its initial model)
# =============================================================================================


def _perturbed(rom: lqo.LQOSystem, seed: int) -> lqo.LQOSystem:
    """An initial model other than the default: `B̂`, `Ĉ`, `M̂` perturbed (`Â` kept: stable)."""
    rng = np.random.default_rng(seed)
    b, c, m = (x + 0.3 * rng.standard_normal(x.shape) for x in (rom.B, rom.C, rom.M))
    return lqo.LQOSystem(rom.A, b, c, m, rom.D, dt=rom.dt)  # symmetrises M̂


@FEW
@hypothesis.given(DENSE, st.integers(0, 2**32 - 1))
def test_dense_reductions_are_stable(sys, seed):
    rom_bt = balanced_truncation(sys, R).value
    modal = modal_truncation(sys, R).value
    init = _perturbed(rom_bt, seed)
    given = lqo.reduce(sys, R, init=init, max_steps=STEPS)
    limited = lqo.reduce(sys, R, horizon=DENSE_HORIZON, max_steps=STEPS)
    assert isinstance(modal, lqo.DiagonalLQOSystem) and modal.n == R
    for sol in (given, limited):
        assert isinstance(sol.value, lqo.LQOSystem) and sol.value.n == R
        assert sol.value.M is not None and sol.value.M.shape == (2, R, R)
    for rom in (rom_bt, modal, given.value, limited.value):
        assert bool(is_stable(rom))
        assert np.isfinite(float(h2_error(sys, rom)))
    # reduce starts from the given model and returns its best iterate.
    norm = h2_norm(sys)
    e_init, e_red = float(h2_error(sys, init)), float(h2_error(sys, given.value))
    assert_squared_errors_close(given.stats["initial_objective"], e_init**2, norm, 1e-8)
    assert e_red**2 <= e_init**2 * (1 + 1e-12) + CANCELLATION * float(norm) ** 2


@FEW
@hypothesis.given(DIAG)
def test_diagonal_reductions_are_stable(sys):
    rom_bt = balanced_truncation(sys, R).value
    modal = modal_truncation(sys, R).value
    infinite = lqo.reduce(sys, R, max_steps=STEPS)
    limited = lqo.reduce(sys, R, horizon=DIAG_HORIZON, max_steps=STEPS)
    for rom in (rom_bt, modal, infinite.value, limited.value):
        assert isinstance(rom, lqo.DiagonalLQOSystem) and rom.n == R
        assert rom.F is not None and rom.F.shape[:2] == sys.F.shape[:2]
        assert bool(is_stable(rom))
        assert np.all(np.real(np.asarray(rom.poles)) < 0)
        assert np.isfinite(float(h2_error(sys, rom)))
    # The default initial model is balanced truncation; the best iterate is returned.
    norm = float(h2_norm(sys))
    e_bt, e_red = float(h2_error(sys, rom_bt)), float(h2_error(sys, infinite.value))
    assert_squared_errors_close(infinite.stats["initial_objective"], e_bt**2, norm, 1e-8)
    assert e_red**2 <= e_bt**2 * (1 + 1e-12) + CANCELLATION * norm**2


def test_reduce_keeps_negative_real_discrete_poles():
    # Real modes are held as μ = ±exp(−exp(ν)); the sign of a negative real pole must survive.
    poles = np.array([-0.9, -0.6, 0.2, -0.3, 0.5 + 0.3j, 0.5 - 0.3j])
    sys = first(T.lqo_systems(poles=poles, m=2, p=2, lti=False))  # the `DENSE` structure
    init = balanced_truncation(sys, R, horizon=DENSE_HORIZON).value
    mu0 = np.linalg.eigvals(np.asarray(init.A))
    assert np.all(mu0.imag == 0) and np.any(mu0.real < 0)
    sol = lqo.reduce(sys, R, horizon=DENSE_HORIZON, max_steps=STEPS)
    e_init = float(h2_error(sys, init, horizon=DENSE_HORIZON))
    norm = h2_norm(sys, horizon=DENSE_HORIZON)
    assert_squared_errors_close(sol.stats["initial_objective"], e_init**2, norm, 1e-8)
    assert float(h2_error(sys, sol.value, horizon=DENSE_HORIZON)) <= e_init * (1 + 1e-12)


def test_reduce_of_a_dense_fom_with_a_low_degree_modal_model_is_stable():
    # Regression: `init` has two real modes at −1 with equal residues (McMillan degree 1 < r).
    # Its dense form used to come from balanced truncation of the order-2·slots `to_dense()`
    # to order r, which kept a zero Hankel singular value: a pole at 0, an unstable model.
    a = jnp.array([[-1.0, 0.2, 0.0], [0.0, -2.0, 0.3], [0.1, 0.0, -3.0]])
    sys = lqo.LQOSystem(a, jnp.ones((3, 2)), jnp.ones((2, 3)), dt=None)
    init = lqo.LQOSystem(-jnp.eye(2), jnp.ones((2, 2)), jnp.ones((2, 2)), dt=None)
    rom = lqo.reduce(sys, 2, init=init, max_steps=0).value
    assert isinstance(rom, lqo.LQOSystem) and rom.n == 2 and rom.dt is None
    assert bool(is_stable(rom))
    np.testing.assert_allclose(np.linalg.eigvals(np.asarray(rom.A)), [-1.0, -1.0])
    assert float(h2_error(sys, rom)) <= float(h2_error(sys, init)) * (1 + 1e-12)
    # No step taken: the returned model is `init` itself (the same transfer function).
    s = 1j * np.logspace(-2, 2, 9)
    np.testing.assert_allclose(transfer_function(rom, s), transfer_function(init, s), atol=1e-12)


@FEW
@hypothesis.given(
    T.lqo_systems(n=st.integers(1, 5), m=2, p=2, discrete=st.booleans(), lti=False),
    st.integers(0, 2**32 - 1),
)
def test_dense_result_of_reduce_is_exactly_its_modal_model(sys, seed):
    """The modal → dense step of `reduce` is exact for any modal parameters: order `n`, the
    same poles and transfer function (its h2 distance to the modal model is rounding)."""
    from jaxlqo._reduction._modal import modal_form
    from jaxlqo._reduction._optimise import _to_real_order, parameters_from

    diag, is_pair, alive, _ = modal_form(sys, sys.n)
    params = parameters_from(diag, is_pair.astype(diag.D.dtype))
    # Any parameter values an optimiser may reach: dead slots (b = 0) stay dead, so their
    # `b` is not perturbed; everything else is.
    rng = np.random.default_rng(seed)
    kick = lambda x: x + 0.3 * rng.standard_normal(x.shape)  # noqa: E731
    b = params.b + jnp.where(alive[:, None], 0.3 * rng.standard_normal(params.b.shape), 0)
    params = eqx.tree_at(
        lambda q: (q.log_decay, q.angle, q.b, q.c, q.f, q.g),
        params,
        (
            kick(params.log_decay),
            kick(params.angle),
            b,
            kick(params.c),
            kick(params.f),
            kick(params.g),
        ),
    )
    modal = params.system(diag.D, diag.dt)
    dense = _to_real_order(modal, is_pair, alive, sys.n)
    assert isinstance(dense, lqo.LQOSystem) and dense.n == sys.n and dense.M is not None
    mu = np.asarray(modal.poles)[np.asarray(alive)]
    pairs = mu[np.asarray(is_pair)[np.asarray(alive)]]
    expected = np.concatenate([mu, pairs.conj()])
    np.testing.assert_allclose(
        np.sort_complex(np.linalg.eigvals(np.asarray(dense.A))),
        np.sort_complex(expected),
        atol=1e-12,
    )
    assert bool(is_stable(dense))
    assert float(h2_error(dense, modal)) <= 1e-6 * float(h2_norm(modal))


def test_objective_without_schur_coordinates_keeps_the_imaginary_part_of_b_hat():
    # Off CPU a dense fom is not moved to complex Schur coordinates, so its `B` stays real:
    # the cross term `B B̂ᴴ` must still be complex (it used to drop Im B̂).
    from jaxlqo._reduction._optimise import (
        _error_objective,
        _initial,
        _schur_coordinates,
        parameters_from,
    )

    sys = dense_example(2)
    for horizon in (None, DENSE_HORIZON):
        _, rom0, is_pair, _ = _initial(sys, 4, horizon, None)
        assert bool(jnp.any(is_pair == 1))  # a complex mode: Im B̂ ≠ 0
        params = parameters_from(rom0, is_pair)
        expected = h2_error(sys, rom0, horizon=horizon) ** 2
        real = sys.realisation("test")
        for fom_r, solver in (_schur_coordinates(real), (real, None)):
            value = _error_objective(fom_r, solver, horizon, None, rom0.D, rom0.dt)(params)
            assert_squared_errors_close(value, expected, h2_norm(sys), 1e-10)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("horizon", [None, "finite"])
@pytest.mark.parametrize("weighted", [False, True])
def test_closed_form_objective_of_a_diagonal_fom_equals_the_realised_one(
    discrete, horizon, weighted
):
    # `reduce` evaluates its objective for an LTI diagonal fom by closed forms: it must be the
    # same function of the parameters as the realised (Gramian) objective, at any iterate.
    from jaxlqo._reduction._optimise import (
        _diagonal_objective,
        _error_objective,
        _weighted,
        parameters_from,
    )

    rng = np.random.default_rng(3)
    n, r, m, p = 7, 3, 3, 2
    cn = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)  # noqa: E731
    if discrete:
        poles = 0.9 * rng.uniform(0.2, 1, n) * np.exp(1j * rng.uniform(-3, 3, n))
        horizon = 6 if horizon else None
    else:
        poles = -rng.uniform(0.1, 2, n) + 1j * rng.uniform(-3, 3, n)
        horizon = 1.5 if horizon else None
    dt = 1.0 if discrete else None
    fom = lqo.DiagonalLQOSystem(poles, cn(n, m), cn(p, n), rng.standard_normal((p, m)), dt=dt)
    factor = jnp.asarray(rng.standard_normal((m, m))) if weighted else None
    rom = lqo.DiagonalLQOSystem(poles[:r] * 0.8, cn(r, m), cn(p, r), fom.D, dt=dt)
    params = parameters_from(rom, jnp.ones(r))
    closed = _diagonal_objective(fom, horizon, factor, fom.D, dt)
    realised = _error_objective(
        _weighted(fom.realisation("test"), factor), None, horizon, factor, fom.D, dt
    )
    value, grad = jax.value_and_grad(closed)(params)
    expected, expected_grad = jax.value_and_grad(realised)(params)
    assert rel(value, expected) <= 1e-12
    for g, e in zip(jax.tree.leaves(grad), jax.tree.leaves(expected_grad), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-10 * float(jnp.max(jnp.abs(e))))


# =============================================================================================
# 3. reduce vs balanced truncation (its default initial model)
# =============================================================================================


@pytest.mark.parametrize("name", ["build", "random", "build_zoh", "random_zoh"])
def test_reduce_is_never_worse_than_balanced_truncation(name):
    sys = model(name)
    norm = float(h2_norm(sys))
    rows = []
    for r in ORDERS:
        sol = reduced(name, r)
        rom = sol.value
        assert isinstance(rom, lqo.LQOSystem) and rom.n == r and rom.dt == sys.dt
        assert bool(is_stable(rom))
        e_bt, e_red = float(h2_error(sys, balanced(name)[r][0])), float(h2_error(sys, rom))
        assert_squared_errors_close(sol.stats["initial_objective"], e_bt**2, norm, 1e-8)
        assert_squared_errors_close(sol.stats["objective"], e_red**2, norm, 1e-6)
        assert e_red**2 <= e_bt**2 * (1 + 1e-12) + CANCELLATION * norm**2, (r, e_red, e_bt)
        history = np.asarray(sol.stats["objective_history"])
        assert np.nanmin(history) >= float(sol.stats["objective"]) * (1 - 1e-12)
        rows.append((r, e_bt, e_red, int(sol.stats["steps"])))
    print(f"\nh2 error, reduce / balanced truncation: {name} (n = {sys.n}, ‖Σ‖ = {norm:.4e})")
    print("   r   h2(BT)        h2(reduce)    ratio     steps")
    for r, e_bt, e_red, steps in rows:
        print(f"  {r:2d}   {e_bt:.6e}  {e_red:.6e}  {e_red / e_bt:.6f}  {steps:5d}")


# =============================================================================================
# 4. First-order optimality
# =============================================================================================


@pytest.mark.parametrize("name", ["build", "random"])
def test_reduce_reaches_a_stationary_point(name):
    sol = reduced(name, 2)
    assert float(sol.stats["grad_norm"]) <= 1e-3 * float(sol.stats["initial_grad_norm"])


@pytest.mark.parametrize("name", ["build", "random"])
def test_h2_optimal_siso_model_interpolates_at_mirrored_poles(name):
    """Meier–Luenberger: `G(−μ̄ᵢ) = Ĝ(−μ̄ᵢ)` and `G'(−μ̄ᵢ) = Ĝ'(−μ̄ᵢ)` at an h2-optimal model.

    The gradient of `J = ‖G − Ĝ‖²` with respect to the residue (the pole) of mode `i` is
    proportional to the interpolation error of `G` (of `G'`) at `−μ̄ᵢ`. So `‖∇J‖ ≤ 1e-6 ‖∇J₀‖`
    bounds the mismatch by ~1e-6 of its size at the initial model, which is O(1) relative
    (balanced truncation does not interpolate, checked below); 1e-5 leaves room for the
    conditioning of the map from gradient to mismatch. Observed: ~1e-12.
    """
    fom, sol = model(name), reduced(name, 2)
    rom = sol.value
    assert float(sol.stats["grad_norm"]) <= 1e-6 * float(sol.stats["initial_grad_norm"])

    def mismatch(rom):
        mu = np.linalg.eigvals(np.asarray(rom.A))
        assert np.all(mu.real < 0)
        s = -mu.conj()
        value = np.abs(transfer_function(fom, s) - transfer_function(rom, s))[:, 0, 0]
        slope = np.abs(
            transfer_function(fom, s, derivative=True) - transfer_function(rom, s, derivative=True)
        )[:, 0, 0]
        return (
            value / np.abs(transfer_function(fom, s)[:, 0, 0]),
            slope / np.abs(transfer_function(fom, s, derivative=True)[:, 0, 0]),
        )

    value, slope = mismatch(rom)
    print(f"\n{name}, r = 2: interpolation mismatch at −μ̄: |ΔG|/|G| {value}, |ΔG'|/|G'| {slope}")
    assert np.all(value <= 1e-5) and np.all(slope <= 1e-5)
    value_bt, slope_bt = mismatch(balanced(name)[2][0])
    assert np.max(value_bt) > 1e-3 or np.max(slope_bt) > 1e-3


# =============================================================================================
# 5. Modal truncation; balanced truncation of diagonal systems
# =============================================================================================


def test_modal_truncation_keeps_the_dominant_poles():
    poles = jnp.array([-0.1 + 1j, -0.2 - 2j, -1.0 + 0.5j, -2.0, -0.05 + 3j, -1.5 - 1j])
    gains = np.array([1.0, 3.0, 0.01, 5.0, 0.02, 0.5])  # |b_i| |c_i|
    # Dominance |b||c| / √(2|Re λ|): 2.24, 4.74, 0.007, 2.5, 0.063, 0.29: modes 1, 3, 0.
    b = jnp.asarray(np.sqrt(gains)[:, None] * np.ones((6, 1)), dtype=jnp.complex128)
    c = jnp.asarray(np.sqrt(gains)[None, :] * np.exp(1j * np.arange(6))[None, :])
    sys = lqo.DiagonalLQOSystem(poles, b, c, dt=None)
    rom = modal_truncation(sys, 3).value
    assert isinstance(rom, lqo.DiagonalLQOSystem) and rom.n == 3
    expected = np.asarray(poles)[[1, 3, 0]]
    np.testing.assert_allclose(np.sort_complex(np.asarray(rom.poles)), np.sort_complex(expected))
    # Keeping the dominant modes beats keeping the others.
    weak_modes = np.array([2, 4, 5])
    weak = lqo.DiagonalLQOSystem(poles[weak_modes], b[weak_modes], c[:, weak_modes], dt=None)
    assert float(h2_error(sys, rom)) < float(h2_error(sys, weak))


def test_modal_truncation_of_all_modes_of_a_dense_system_is_exact():
    sys = dense_example(1)
    rom = modal_truncation(sys, sys.n).value
    assert isinstance(rom, lqo.DiagonalLQOSystem) and rom.F is not None
    assert float(h2_error(sys, rom)) <= 1e-6 * float(h2_norm(sys))
    # With fewer slots the dominant modes go first, and the error is not zero.
    partial = modal_truncation(sys, R).value
    assert bool(is_stable(partial))
    assert float(h2_error(sys, partial)) > 1e-3 * float(h2_norm(sys))


def test_modal_truncation_of_a_repeated_real_pole_is_exact():
    # `eig` returns a (numerically) double real pole as a pair with tiny imaginary parts,
    # whose eigenvectors are not real: it must be one complex mode, not two real ones.
    a = jnp.array([[-0.5, 1e-17], [-1e-17, -0.5]])
    sys = lqo.LQOSystem(a, jnp.array([[1.0, 0.0], [0.5, 2.0]]), jnp.array([[1.0, -1.0]]))
    rom = modal_truncation(sys, 2).value
    assert float(h2_error(sys, rom)) <= 1e-6 * float(h2_norm(sys))


def test_balanced_truncation_of_a_diagonal_system():
    sys = diagonal_example(3)
    sol = balanced_truncation(sys, R)
    rom, hsv = sol.value, sol.stats["hankel_singular_values"]
    assert sol.result == lqo.RESULTS.successful
    assert isinstance(rom, lqo.DiagonalLQOSystem) and rom.n == R and rom.dt == sys.dt
    assert hsv.shape == (2 * sys.n,)  # of the realified system
    assert bool(is_stable(rom))
    e_bt = float(h2_error(sys, rom))
    e_modal = float(h2_error(sys, modal_truncation(sys, R).value))
    print(f"\ndiagonal LQO, n = 6 → {R}: h2 error BT {e_bt:.4e}, modal truncation {e_modal:.4e}")
    assert e_bt <= e_modal


# =============================================================================================
# 6. TLH2 baseline
# =============================================================================================


def test_tlh2_can_return_an_unstable_model_where_reduce_stays_stable():
    # Poles of radius 0.97 … 0.995 and a horizon of 5 steps (the `DENSE` structure).
    fom = dense_example(4, min_radius=0.97, max_radius=0.995)
    init = balanced_truncation(fom, R, horizon=DENSE_HORIZON).value
    sol = lqo.tlh2(fom, R, horizon=DENSE_HORIZON, max_steps=STEPS)
    rom = sol.value
    assert isinstance(rom, lqo.LQOSystem) and rom.n == R and rom.dt == fom.dt
    e_init = float(h2_error(fom, init, horizon=DENSE_HORIZON))
    e_tlh2 = float(h2_error(fom, rom, horizon=DENSE_HORIZON))
    assert rel(sol.stats["initial_objective"], e_init**2) <= 1e-8
    assert e_tlh2 < e_init
    # The time-limited objective does not see stability: from a stable start, TLH2 leaves it.
    assert bool(is_stable(init))
    assert not bool(sol.stats["stable"]) and not bool(is_stable(rom))
    assert np.max(np.abs(np.linalg.eigvals(np.asarray(rom.A)))) > 1
    # reduce: the same objective, and every iterate is stable.
    red = lqo.reduce(fom, R, horizon=DENSE_HORIZON, max_steps=STEPS)
    assert bool(is_stable(red.value))
    assert float(h2_error(fom, red.value, horizon=DENSE_HORIZON)) <= e_init * (1 + 1e-12)
    assert np.isfinite(float(h2_error(fom, red.value)))


def test_reduce_starts_from_an_unstable_time_limited_balanced_truncation():
    # Time-limited balanced truncation need not be stable; reduce mirrors its unstable poles.
    # A SISO system (in the `DENSE` structure) with poles of radius 0.97 … 0.995.
    rng = np.random.default_rng(1)
    upper = rng.uniform(0.97, 0.995, 3) * np.exp(1j * rng.uniform(0.05, 0.6, 3))
    fom = first(T.lqo_systems(poles=np.concatenate([upper, upper.conj()]), m=2, p=2))
    fom = eqx.tree_at(
        lambda s: (s.B, s.C, s.M), fom, (fom.B.at[:, 1].set(0), fom.C.at[1].set(0), 0 * fom.M)
    )
    init = balanced_truncation(fom, R, horizon=DENSE_HORIZON).value
    assert not bool(is_stable(init))
    red = lqo.reduce(fom, R, horizon=DENSE_HORIZON, max_steps=STEPS)
    assert bool(is_stable(red.value))
    assert np.isfinite(float(red.stats["objective"]))


# =============================================================================================
# 7. Batching
# =============================================================================================


def _stacked_diagonal_systems():
    systems = [diagonal_example(seed) for seed in range(3)]
    return systems, jax.tree_util.tree_map(lambda *x: jnp.stack(x), *systems)


def test_vmapped_reduce_equals_loop():
    systems, stacked = _stacked_diagonal_systems()
    batched = jax.vmap(lambda s: lqo.reduce(s, R, max_steps=STEPS).value)(stacked)
    assert batched.poles.shape == (3, R)
    for i, sys in enumerate(systems):
        looped = lqo.reduce(sys, R, max_steps=STEPS).value
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], batched)
        assert rel(h2_error(sys, one), h2_error(sys, looped)) <= 1e-8
        assert float(h2_error(looped, one)) <= 1e-6 * float(h2_norm(looped))


def test_vmapped_balanced_truncation_equals_loop():
    systems, stacked = _stacked_diagonal_systems()
    batched = jax.vmap(lambda s: lqo.balanced_truncation(s, R))(stacked)
    hsv = batched.stats["hankel_singular_values"]
    for i, sys in enumerate(systems):
        looped_sol = balanced_truncation(sys, R)
        looped, hsv_i = looped_sol.value, looped_sol.stats["hankel_singular_values"]
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], batched.value)
        np.testing.assert_allclose(hsv[i], hsv_i, rtol=1e-10, atol=1e-14)
        assert rel(h2_error(sys, one), h2_error(sys, looped)) <= 1e-8


# =============================================================================================
# 8. Input weight
# =============================================================================================


def _first_input(sys: lqo.LQOSystem) -> lqo.LQOSystem:
    return lqo.LQOSystem(sys.A, sys.B[:, :1], sys.C, sys.M, sys.D[:, :1], dt=sys.dt)


@functools.cache
def _weight_example():
    sys = dense_example(2)
    init = _perturbed(balanced_truncation(sys, R).value, 0)
    return sys, init, lqo.reduce(sys, R, init=init, max_steps=STEPS)


def test_identity_weight_equals_unweighted():
    sys, init, plain = _weight_example()
    weighted = lqo.reduce(sys, R, init=init, weight=jnp.eye(2), max_steps=STEPS)
    assert rel(weighted.stats["initial_objective"], plain.stats["initial_objective"]) <= 1e-12
    assert rel(weighted.stats["objective"], plain.stats["objective"]) <= 1e-6
    assert rel(h2_error(sys, weighted.value), h2_error(sys, plain.value)) <= 1e-6


def test_weight_selecting_the_first_input():
    sys, init, plain = _weight_example()
    sol = lqo.reduce(sys, R, init=init, weight=jnp.diag(jnp.array([1.0, 0.0])), max_steps=STEPS)
    fom1 = _first_input(sys)
    norm = h2_norm(fom1)
    e_init = h2_error(fom1, _first_input(init))
    assert_squared_errors_close(sol.stats["initial_objective"], e_init**2, norm, 1e-8)
    e_red = h2_error(fom1, _first_input(sol.value))
    assert_squared_errors_close(sol.stats["objective"], e_red**2, norm, 1e-6)
    # Fitting the first input only fits it better than fitting both.
    assert float(e_red) < float(h2_error(fom1, _first_input(plain.value)))


# =============================================================================================
# 9. Errors
# =============================================================================================


def test_bad_orders_raise():
    sys, diag = dense_example(), diagonal_example()
    for r in (0, -1, 2.0, "2", None):
        for fn in (lqo.balanced_truncation, lqo.modal_truncation, lqo.reduce):
            with pytest.raises(ValueError, match="`r`"):
                fn(sys, r)
    with pytest.raises(ValueError, match="`r`"):
        lqo.balanced_truncation(sys, sys.n + 1)
    with pytest.raises(ValueError, match="`r`"):
        lqo.balanced_truncation(diag, diag.n + 1)
    with pytest.raises(ValueError, match="`r`"):
        lqo.modal_truncation(diag, diag.n + 1)
    # A dense fom is reduced to real order r: `init` must have that order.
    init = balanced_truncation(sys, R).value
    with pytest.raises(ValueError, match="`init` has order 2 but `r` = 3"):
        lqo.reduce(sys, R + 1, init=init)
    with pytest.raises(ValueError, match="real order 4, but `r` = 2"):
        lqo.reduce(
            sys,
            R,
            init=lqo.DiagonalLQOSystem(
                diag.poles[:2], jnp.ones((2, 2)), jnp.ones((2, 2)), dt=sys.dt
            ),
        )


def test_tlh2_needs_a_horizon():
    sys = dense_example()
    with pytest.raises(ValueError, match="horizon"):
        lqo.tlh2(sys, R, horizon=None)
    with pytest.raises(TypeError):
        lqo.tlh2(sys, R)  # `horizon` is keyword-only and required
    with pytest.raises(ValueError, match="horizon"):
        lqo.tlh2(sys, R, horizon=0)


def test_bad_weight_raises():
    with pytest.raises(ValueError, match="weight"):
        lqo.reduce(dense_example(), R, weight=jnp.eye(3))


def test_reduce_is_never_worse_than_its_start_at_tiny_errors():
    # Issue 17: near the rounding floor (here e ≈ 5e-11 ‖Σ‖, poles with 1 − |λ| ≈ 1e-4) the
    # three-term objective is noise; before, reduce returned a model 6237× worse than its
    # balanced-truncation start (by the accurate error) and reported objective 0.
    rng = np.random.default_rng(0)
    n = 4
    poles = np.exp(-np.exp(rng.uniform(-9, -5, n)) + 1j * rng.uniform(0.3, 2.8, n))
    b = rng.standard_normal((n, 1)) + 1j * rng.standard_normal((n, 1))
    c = rng.standard_normal((1, n)) + 1j * rng.standard_normal((1, n))
    b[-1], c[:, -1], poles[-1] = 1e-4 * b[-1], 1e-4 * c[:, -1], 0.5
    fom = lqo.DiagonalLQOSystem(poles, b, c, dt=1.0)
    sol = lqo.reduce(fom, 3, max_steps=30)
    e_red = float(lqo.h2_error(fom, sol.value))
    assert e_red**2 <= float(sol.stats["initial_objective"]) * (1 + 1e-4)  # floor: ~1e-6 of e
    assert float(sol.stats["objective"]) <= float(sol.stats["initial_objective"])
    e_bt = float(lqo.h2_error(fom, lqo.balanced_truncation(fom, 3).value))
    # The start is this BT (computed inside the compiled reduce: equal to a few 1e-3 here, the
    # reproducibility of BT itself at e ≈ 5e-11 ‖Σ‖).
    assert e_red <= 1.01 * e_bt
