"""Hypothesis strategies for property-testing control code.

The strategies draw *structure* — sizes, pole locations and a random seed — and build the
matrices from it, rather than drawing raw matrix entries. So every drawn system is stable by
construction, its spectrum is exactly the drawn one, its eigenvector basis is moderately
conditioned, and a failing example shrinks towards small systems with poles near the origin
(discrete time) or near the stability margin `−min_decay` (continuous time), with seed `0`.

```python
import hypothesis
import jaxlqo as lqo

@hypothesis.given(lqo.testing.lqo_systems(n=4))
def test_simulation_is_finite(sys):
    ...
```

Sizes (`n`, `m`, `p`, `rank`, `length`) and the flags `discrete` and `lti` may each be a
fixed value or a hypothesis strategy. Arrays are JAX arrays of the requested `dtype`, which
defaults to JAX's default float dtype (`float64` under `jax_enable_x64`, else `float32`) and
its complex counterpart for complex arrays. Nothing here changes JAX's configuration.
"""

import math
from typing import Any

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._misc import default_float_dtype
from ._systems import DiagonalLQOSystem, LQOSystem

IntOrStrategy = int | st.SearchStrategy[int]
BoolOrStrategy = bool | st.SearchStrategy[bool]

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


# ---------------------------------------------------------------------------------------------
# Helpers: argument validation, dtypes and the numpy constructions behind every strategy.
# ---------------------------------------------------------------------------------------------


def _resolve(draw, value):
    """Draw `value` if it is a strategy, else return it unchanged."""
    return draw(value) if isinstance(value, st.SearchStrategy) else value


def _size(draw, value, name: str, caller: str, minimum: int = 1) -> int:
    size = _resolve(draw, value)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < minimum:
        raise ValueError(
            f"jaxlqo.testing.{caller}: `{name}` must be an int >= {minimum} or a strategy "
            f"drawing such ints; got {size!r}."
        )
    return int(size)


def _check_size_arg(value, name: str, caller: str, minimum: int = 1) -> None:
    """Reject a bad fixed size when the strategy is built, not only when it is drawn."""
    if isinstance(value, st.SearchStrategy):
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"jaxlqo.testing.{caller}: `{name}` must be an int >= {minimum} or a strategy "
            f"drawing such ints; got {value!r}."
        )


def _real_dtype(dtype, caller: str):
    dtype = jnp.dtype(default_float_dtype() if dtype is None else dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.finfo(dtype).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"jaxlqo.testing.{caller}: `dtype` must be a float dtype; got {dtype}.")
    return dtype


def _complex_dtype(real_dtype):
    with jax.numpy_dtype_promotion("standard"):  # a deliberate promotion, also under "strict"
        return jnp.result_type(real_dtype, jnp.complex64)


def _checked_region(
    caller: str,
    max_radius: float,
    min_radius: float,
    min_decay: float,
    max_decay: float,
    max_frequency: float,
) -> dict[str, float]:
    """The pole region as keywords for the drawing helpers, after checking it."""
    if not 0.0 <= min_radius <= max_radius < 1.0:
        raise ValueError(
            f"jaxlqo.testing.{caller}: need 0 <= min_radius <= max_radius < 1 (a stable discrete "
            f"spectrum); got min_radius={min_radius}, max_radius={max_radius}."
        )
    if not 0.0 < min_decay <= max_decay < math.inf:
        raise ValueError(
            f"jaxlqo.testing.{caller}: need 0 < min_decay <= max_decay < inf (a stable continuous "
            f"spectrum); got min_decay={min_decay}, max_decay={max_decay}."
        )
    if not 0.0 <= max_frequency < math.inf:
        raise ValueError(
            f"jaxlqo.testing.{caller}: need 0 <= max_frequency < inf; got {max_frequency}."
        )
    return dict(
        max_radius=max_radius,
        min_radius=min_radius,
        min_decay=min_decay,
        max_decay=max_decay,
        max_frequency=max_frequency,
    )


def _check_dt(caller: str, dt) -> None:
    if not (isinstance(dt, (int, float)) and 0 < dt < math.inf):
        raise ValueError(f"jaxlqo.testing.{caller}: `dt` must be a positive number; got {dt}.")


def _check_cond_scale(caller: str, cond: float, scale: float) -> None:
    if not 1.0 <= cond < math.inf:
        raise ValueError(f"jaxlqo.testing.{caller}: need 1 <= cond < inf; got cond={cond}.")
    if not 0.0 < scale < math.inf:
        raise ValueError(f"jaxlqo.testing.{caller}: need 0 < scale < inf; got scale={scale}.")


def _haar(rng: np.random.Generator, n: int, complex_: bool) -> np.ndarray:
    """A Haar-distributed orthogonal (or unitary) matrix: QR of a Gaussian, signs fixed."""
    z = rng.standard_normal((n, n))
    if complex_:
        z = (z + 1j * rng.standard_normal((n, n))) / math.sqrt(2)
    q, r = np.linalg.qr(z)
    d = np.diagonal(r)
    return q * (d / np.abs(d))


def _similarity(rng: np.random.Generator, n: int, cond: float, complex_: bool):
    """`V = U₁ diag(d) U₂` and its exact inverse, with `cond(V) ≤ cond` (2-norm)."""
    half = 0.5 * math.log(cond)
    d = np.exp(rng.uniform(-half, half, size=n))
    u1, u2 = _haar(rng, n, complex_), _haar(rng, n, complex_)
    v = (u1 * d) @ u2
    v_inv = (u2.conj().T / d) @ u1.conj().T
    return v, v_inv


def _conjugate_halves(poles: np.ndarray, caller: str):
    """Split a conjugation-closed pole set into (real poles, poles with positive imaginary part)."""
    poles = np.asarray(poles)
    if not np.iscomplexobj(poles):
        return poles.astype(np.float64), np.zeros(0, np.complex128)
    upper, lower = poles[np.imag(poles) > 0], poles[np.imag(poles) < 0]
    scale = 1.0 + (np.max(np.abs(poles)) if poles.size else 0.0)
    if upper.size != lower.size or not np.allclose(
        np.sort_complex(upper), np.sort_complex(lower.conj()), rtol=0.0, atol=1e-12 * scale
    ):
        raise ValueError(
            f"jaxlqo.testing.{caller}: the poles of a real system must be closed under complex "
            f"conjugation; got {poles}."
        )
    return np.real(poles[np.imag(poles) == 0]).astype(np.float64), np.sort_complex(upper)


def _real_matrix_from_poles(rng, poles: np.ndarray, cond: float, caller: str) -> np.ndarray:
    """A real `A = V N V⁻¹` with `N` the real Schur blocks of `poles`: spectrum exactly `poles`."""
    reals, upper = _conjugate_halves(poles, caller)
    n = reals.size + 2 * upper.size
    blocks = np.zeros((n, n))
    for i, lam in enumerate(upper):
        # [[a, b], [−b, a]] has eigenvalues a ± ib.
        a, b = lam.real, lam.imag
        blocks[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[a, b], [-b, a]]
    k = 2 * upper.size
    blocks[k:, k:] = np.diag(reals)
    v, v_inv = _similarity(rng, n, cond, complex_=False)
    return v @ blocks @ v_inv


def _complex_matrix_from_poles(rng, poles: np.ndarray, cond: float) -> np.ndarray:
    """A complex `A = V diag(poles) V⁻¹`."""
    v, v_inv = _similarity(rng, poles.size, cond, complex_=True)
    return (v * poles) @ v_inv


def _complex_normal(rng, shape) -> np.ndarray:
    """Entries with `E|z|² = 1`."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)


# ---------------------------------------------------------------------------------------------
# Poles
# ---------------------------------------------------------------------------------------------


@st.composite
def _draw_poles(
    draw,
    n,
    discrete,
    complex_,
    self_conjugate,
    max_radius,
    min_radius,
    min_decay,
    max_decay,
    max_frequency,
) -> np.ndarray:
    """A numpy (complex128, or float64 if not `complex_`) pole set."""
    n = _size(draw, n, "n", "poles", minimum=0)
    discrete = bool(_resolve(draw, discrete))
    # Floats shrink towards their lower bound, so a shrunk example has slow or zero poles.
    if discrete:
        radius = st.floats(min_radius, max_radius, allow_nan=False, allow_infinity=False)
        angle = st.floats(0.0, math.pi, allow_nan=False, allow_infinity=False)

        def pair() -> complex:
            r, t = draw(radius), draw(angle)
            return r * complex(math.cos(t), math.sin(t))

        def real() -> float:
            r = draw(radius)
            return -r if draw(st.booleans()) else r

        def free() -> complex:
            r, t = draw(radius), draw(angle)
            return r * complex(math.cos(t), -math.sin(t) if draw(st.booleans()) else math.sin(t))

    else:
        decay = st.floats(min_decay, max_decay, allow_nan=False, allow_infinity=False)
        frequency = st.floats(0.0, max_frequency, allow_nan=False, allow_infinity=False)

        def pair() -> complex:
            return complex(-draw(decay), draw(frequency))

        def real() -> float:
            return -draw(decay)

        def free() -> complex:
            w = draw(frequency)
            return complex(-draw(decay), -w if draw(st.booleans()) else w)

    if not complex_:
        return np.array([real() for _ in range(n)], dtype=np.float64)
    if not self_conjugate:
        return np.array([free() for _ in range(n)], dtype=np.complex128)
    num_pairs = draw(st.integers(0, n // 2))
    out = []
    for _ in range(num_pairs):
        lam = pair()
        out += [lam, lam.conjugate()]
    out += [complex(real()) for _ in range(n - 2 * num_pairs)]
    return np.array(out, dtype=np.complex128)


def poles(
    n: IntOrStrategy,
    *,
    discrete: BoolOrStrategy,
    complex_: bool = True,
    self_conjugate: bool = True,
    max_radius: float = 0.9,
    min_radius: float = 0.0,
    min_decay: float = 0.1,
    max_decay: float = 2.0,
    max_frequency: float = 3.0,
    dtype: Any = None,
) -> st.SearchStrategy[Array]:
    r"""A stable set of `n` poles.

    Discrete time: every pole has $\min\_radius \le |\lambda| \le \max\_radius < 1$ (up to
    one rounding of `r·e^{iθ}`).
    Continuous time: every pole has $-\max\_decay \le \operatorname{Re}\lambda \le -\min\_decay < 0$
    and $|\operatorname{Im}\lambda| \le \max\_frequency$.

    **Arguments:**

    - `n`: the number of poles (an int `≥ 0` or a strategy).
    - `discrete`: keyword-only; `True` for discrete time, `False` for continuous time (or a
        strategy drawing booleans).
    - `complex_`: whether non-real poles may be drawn. If `False` every pole is real and the
        result has a real dtype.
    - `self_conjugate`: only with `complex_=True`. If `True` (default) the set is closed under
        conjugation — the spectrum of a real matrix — listed as conjugate pairs `λ, λ̄` followed
        by the real poles. If `False` the `n` poles are independent complex numbers (the
        diagonal of an S4D / S5 / LRU layer).
    - `max_radius`, `min_radius`: the discrete-time annulus.
    - `min_decay`, `max_decay`, `max_frequency`: the continuous-time strip.
    - `dtype`: the real dtype (default: JAX's default float dtype); complex poles use its
        complex counterpart.

    **Returns:** a strategy drawing JAX arrays of shape `(n,)`.

    !!! example

        ```python
        @hypothesis.given(lqo.testing.poles(6, discrete=True, max_radius=0.5))
        def test_fast_poles(lam):
            assert jnp.all(jnp.abs(lam) <= 0.5)
        ```
    """
    _check_size_arg(n, "n", "poles", minimum=0)
    _checked_region("poles", max_radius, min_radius, min_decay, max_decay, max_frequency)
    rdtype = _real_dtype(dtype, "poles")
    out_dtype = _complex_dtype(rdtype) if complex_ else rdtype
    return _draw_poles(
        n,
        discrete,
        complex_,
        self_conjugate,
        max_radius,
        min_radius,
        min_decay,
        max_decay,
        max_frequency,
    ).map(lambda lam: jnp.asarray(lam, dtype=out_dtype))


# ---------------------------------------------------------------------------------------------
# Matrices
# ---------------------------------------------------------------------------------------------


@st.composite
def _draw_stable_matrix(draw, n, discrete, complex_, cond, dtype, region):
    n = _size(draw, n, "n", "stable_matrices")
    lam = draw(
        _draw_poles(n, discrete, True, not complex_, **region)  # complex_: independent poles
    )
    rng = np.random.default_rng(draw(_SEEDS))
    if complex_:
        a = _complex_matrix_from_poles(rng, lam, cond)
    else:
        a = _real_matrix_from_poles(rng, lam, cond, "stable_matrices")
    return jnp.asarray(a, dtype=dtype)


def stable_matrices(
    n: IntOrStrategy,
    *,
    discrete: BoolOrStrategy,
    complex_: bool = False,
    cond: float = 4.0,
    max_radius: float = 0.9,
    min_radius: float = 0.0,
    min_decay: float = 0.1,
    max_decay: float = 2.0,
    max_frequency: float = 3.0,
    dtype: Any = None,
) -> st.SearchStrategy[Array]:
    r"""A stable `n × n` matrix with a drawn spectrum and a moderately conditioned eigenbasis.

    $$A = V \Lambda V^{-1},\qquad V = U_1 \operatorname{diag}(d)\, U_2,$$

    with `Λ` the (real Schur block form of the) poles drawn by [`jaxlqo.testing.poles`][],
    `U₁, U₂` Haar orthogonal (unitary if `complex_`), and `d` log-uniform with
    `cond(V) = max d / min d ≤ cond`. So `A` is genuinely non-normal, yet its eigenvalues are
    well conditioned (Bauer–Fike: perturbations are amplified by at most `cond`). Good input for
    Lyapunov / Stein / Sylvester solvers: a discrete `A` has spectral radius `≤ max_radius`, a
    continuous `A` has spectral abscissa `≤ −min_decay`.

    **Arguments:**

    - `n`: the size (an int `≥ 1` or a strategy).
    - `discrete`: keyword-only; Schur-stable (`True`) or Hurwitz-stable (`False`).
    - `complex_`: `False` (default) for a real matrix (poles in conjugate pairs), `True` for a
        complex matrix with independent complex poles.
    - `cond`: the bound on the condition number of the eigenvector basis `V`.
    - `max_radius`, `min_radius`, `min_decay`, `max_decay`, `max_frequency`: the pole region,
        as in [`jaxlqo.testing.poles`][].
    - `dtype`: the real dtype (default: JAX's default float dtype).

    **Returns:** a strategy drawing JAX arrays of shape `(n, n)`.

    !!! example

        ```python
        @hypothesis.given(lqo.testing.stable_matrices(5, discrete=True))
        def test_stein(A):
            X = lqo.solve_discrete_lyapunov(A, jnp.eye(5))
            ...
        ```
    """
    _check_size_arg(n, "n", "stable_matrices")
    region = _checked_region(
        "stable_matrices", max_radius, min_radius, min_decay, max_decay, max_frequency
    )
    _check_cond_scale("stable_matrices", cond, 1.0)
    rdtype = _real_dtype(dtype, "stable_matrices")
    out_dtype = _complex_dtype(rdtype) if complex_ else rdtype
    return _draw_stable_matrix(n, discrete, complex_, cond, out_dtype, region)


# ---------------------------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------------------------

_DEFAULT_N = st.integers(1, 6)
_DEFAULT_M = st.integers(1, 3)
_DEFAULT_P = st.integers(1, 3)


def _fixed_poles(draw, poles_, caller: str) -> np.ndarray:
    lam = np.asarray(_resolve(draw, poles_))
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(
            f"jaxlqo.testing.{caller}: `poles` must have shape (n,) with n >= 1; got shape "
            f"{lam.shape}."
        )
    return lam.astype(np.complex128 if np.iscomplexobj(lam) else np.float64)


def _draw_structure(
    draw, n, m, p, poles_, discrete, lti, feedthrough, caller, complex_, self_conjugate, region
):
    """What every system strategy draws first, in this order: the flags `discrete`, `lti`,
    `feedthrough`, the poles (drawn with `_draw_poles(…, complex_, self_conjugate, …)`, or the
    fixed `poles_`), the sizes `m`, `p` and a seeded NumPy generator."""
    discrete = bool(_resolve(draw, discrete))
    lti = bool(_resolve(draw, lti))
    feedthrough = bool(_resolve(draw, feedthrough))
    if poles_ is None:
        n = _size(draw, n, "n", caller)
        lam = draw(_draw_poles(n, discrete, complex_, self_conjugate, **region))
    else:
        lam = _fixed_poles(draw, poles_, caller)
    m = _size(draw, m, "m", caller)
    p = _size(draw, p, "p", caller)
    return discrete, lti, feedthrough, lam, m, p, np.random.default_rng(draw(_SEEDS))


@st.composite
def _draw_lqo_system(
    draw, n, m, p, poles_, discrete, lti, feedthrough, complex_poles, cond, scale, dt, dtype, region
):
    caller = "lqo_systems"
    discrete, lti, feedthrough, lam, m, p, rng = _draw_structure(
        draw, n, m, p, poles_, discrete, lti, feedthrough, caller, complex_poles, True, region
    )
    n = lam.size
    A = _real_matrix_from_poles(rng, lam, cond, caller)
    B = scale * rng.standard_normal((n, m))
    C = scale * rng.standard_normal((p, n))
    D = scale * rng.standard_normal((p, m)) if feedthrough else None
    M = None
    if not lti:
        W = rng.standard_normal((p, n, n))
        M = scale * (W + np.swapaxes(W, -1, -2)) / (2.0 * math.sqrt(n))
    as_array = lambda x: None if x is None else jnp.asarray(x, dtype=dtype)  # noqa: E731
    return LQOSystem(
        as_array(A),
        as_array(B),
        as_array(C),
        as_array(M),
        as_array(D),
        dt=dt if discrete else None,
    )


def lqo_systems(
    *,
    n: IntOrStrategy = _DEFAULT_N,
    m: IntOrStrategy = _DEFAULT_M,
    p: IntOrStrategy = _DEFAULT_P,
    discrete: BoolOrStrategy = True,
    lti: BoolOrStrategy = False,
    feedthrough: BoolOrStrategy = False,
    poles: Array | np.ndarray | st.SearchStrategy | None = None,
    complex_poles: bool = True,
    cond: float = 4.0,
    scale: float = 1.0,
    max_radius: float = 0.9,
    min_radius: float = 0.0,
    min_decay: float = 0.1,
    max_decay: float = 2.0,
    max_frequency: float = 3.0,
    dt: float = 1.0,
    dtype: Any = None,
) -> st.SearchStrategy[LQOSystem]:
    r"""A stable dense [`jaxlqo.LQOSystem`][] with a drawn spectrum.

    $$x_{k+1} = A x_k + B u_k\ (\text{or } \dot x = Ax + Bu),\qquad
      y_j = (Cx + Du)_j + x^\top M_j x .$$

    `A` is drawn as in [`jaxlqo.testing.stable_matrices`][] (real, spectrum exactly the drawn
    poles, eigenbasis condition number `≤ cond`). `B`, `C` and `D` have i.i.d. `N(0, scale²)`
    entries; each `M_j = scale · (W + Wᵀ) / (2√n)` with `W` i.i.d. standard normal, so
    `xᵀ M_j x` is of the order of `scale · |x|²`. All of them come from a NumPy generator seeded
    by a drawn integer.

    **Arguments:** (all keyword-only)

    - `n`, `m`, `p`: states, inputs, outputs (ints `≥ 1` or strategies; by default `1..6`,
        `1..3`, `1..3`).
    - `discrete`: `True` (default) for discrete time with `dt`, `False` for continuous time
        (`dt=None`); or a strategy.
    - `lti`: if `True` there is no quadratic output (`M = None`); or a strategy.
    - `feedthrough`: if `True` draw `D`, else `D = 0` (default: continuous-time h2 norms are
        only finite without feedthrough); or a strategy.
    - `poles`: fixed poles (an array closed under conjugation, or a strategy drawing one, e.g.
        [`jaxlqo.testing.poles`][]). Overrides `n` and the pole-region arguments; they are used
        as given, so stability is the caller's choice.
    - `complex_poles`: whether `A` may have complex-conjugate pole pairs (default `True`).
    - `cond`: the bound on the condition number of the eigenbasis of `A`.
    - `scale`: the standard deviation of the entries of `B`, `C`, `D` and the scale of `M`.
    - `max_radius`, `min_radius`, `min_decay`, `max_decay`, `max_frequency`: the pole region,
        as in [`jaxlqo.testing.poles`][].
    - `dt`: the sampling step of a discrete-time system (default `1.0`).
    - `dtype`: the float dtype of every array (default: JAX's default float dtype).

    **Returns:** a strategy drawing [`jaxlqo.LQOSystem`][]s.

    !!! example

        ```python
        import hypothesis
        import jaxlqo as lqo

        @hypothesis.given(lqo.testing.lqo_systems(n=4))
        def test_spectral_radius(sys):
            assert max(abs(np.linalg.eigvals(sys.A))) < 1

        @hypothesis.given(lqo.testing.lqo_systems(n=4, m=1), lqo.testing.input_sequences(20, 1))
        def test_finite_output(sys, u):
            assert jnp.all(jnp.isfinite(lqo.simulate(sys, u)))
        ```
    """
    for name, value in (("n", n), ("m", m), ("p", p)):
        _check_size_arg(value, name, "lqo_systems")
    region = _checked_region(
        "lqo_systems", max_radius, min_radius, min_decay, max_decay, max_frequency
    )
    _check_cond_scale("lqo_systems", cond, scale)
    _check_dt("lqo_systems", dt)
    rdtype = _real_dtype(dtype, "lqo_systems")
    return _draw_lqo_system(
        n,
        m,
        p,
        poles,
        discrete,
        lti,
        feedthrough,
        complex_poles,
        cond,
        scale,
        float(dt),
        rdtype,
        region,
    )


@st.composite
def _draw_diagonal_system(
    draw, n, m, p, rank, poles_, discrete, lti, feedthrough, scale, dt, rdtype, region
):
    caller = "diagonal_systems"
    discrete, lti, feedthrough, lam, m, p, rng = _draw_structure(
        draw, n, m, p, poles_, discrete, lti, feedthrough, caller, True, False, region
    )
    n = lam.size
    B = scale * _complex_normal(rng, (n, m))
    C = scale * _complex_normal(rng, (p, n))
    D = scale * rng.standard_normal((p, m)) if feedthrough else None
    F = G = None
    if not lti:
        k = _size(draw, rank, "rank", caller)
        # Re(F x) Re(G x) is then of the order of scale · |x|², like xᵀ M x in lqo_systems.
        F = math.sqrt(scale / n) * _complex_normal(rng, (p, k, n))
        G = math.sqrt(scale / n) * _complex_normal(rng, (p, k, n))
    cdtype = _complex_dtype(rdtype)
    as_array = lambda x, d: None if x is None else jnp.asarray(x, dtype=d)  # noqa: E731
    return DiagonalLQOSystem(
        as_array(lam, cdtype),
        as_array(B, cdtype),
        as_array(C, cdtype),
        as_array(D, rdtype),
        F=as_array(F, cdtype),
        G=as_array(G, cdtype),
        dt=dt if discrete else None,
    )


def diagonal_systems(
    *,
    n: IntOrStrategy = _DEFAULT_N,
    m: IntOrStrategy = _DEFAULT_M,
    p: IntOrStrategy = _DEFAULT_P,
    rank: IntOrStrategy = 1,
    discrete: BoolOrStrategy = True,
    lti: BoolOrStrategy = False,
    feedthrough: BoolOrStrategy = True,
    poles: Array | np.ndarray | st.SearchStrategy | None = None,
    scale: float = 1.0,
    max_radius: float = 0.9,
    min_radius: float = 0.0,
    min_decay: float = 0.1,
    max_decay: float = 2.0,
    max_frequency: float = 3.0,
    dt: float = 1.0,
    dtype: Any = None,
) -> st.SearchStrategy[DiagonalLQOSystem]:
    r"""A stable complex-diagonal [`jaxlqo.DiagonalLQOSystem`][] (an S4D / S5 / LRU block).

    $$x_{k+1} = \lambda \odot x_k + B u_k,\qquad
      y_j = \operatorname{Re}(Cx)_j + (Du)_j
          + \sum_{l=1}^{\mathrm{rank}} \operatorname{Re}(F_{jl}x)\operatorname{Re}(G_{jl}x).$$

    The `n` poles are independent complex numbers in the stable region (as
    [`jaxlqo.testing.poles`][] with `self_conjugate=False`). `B` and `C` have i.i.d. complex
    normal entries with `E|z|² = scale²`, `D` real i.i.d. `N(0, scale²)`, and `F`, `G` complex
    normal with `E|z|² = scale / n`.

    **Arguments:** (all keyword-only)

    - `n`, `m`, `p`: states, inputs, outputs (ints `≥ 1` or strategies).
    - `rank`: the number `k` of products in the quadratic readout (`F`, `G` have shape
        `(p, k, n)`); an int `≥ 1` or a strategy. Ignored if `lti`.
    - `discrete`: `True` (default) for discrete time with `dt`, `False` for continuous time.
    - `lti`: if `True`, `F = G = None`.
    - `feedthrough`: draw `D` (default) or leave it zero.
    - `poles`: fixed poles `λ` (any complex array of shape `(n,)`, or a strategy drawing one,
        e.g. `poles(8, discrete=True, self_conjugate=False)`). Overrides `n` and the pole-region
        arguments; they are used as given, so stability is the caller's choice.
    - `scale`, `max_radius`, `min_radius`, `min_decay`, `max_decay`, `max_frequency`, `dt`:
        as in [`jaxlqo.testing.lqo_systems`][].
    - `dtype`: the real dtype (default: JAX's default float dtype); complex arrays use its
        complex counterpart.

    **Returns:** a strategy drawing [`jaxlqo.DiagonalLQOSystem`][]s.

    !!! example

        ```python
        @hypothesis.given(lqo.testing.diagonal_systems(n=8, m=1, p=1, rank=2))
        def test_realification(sys):
            u = jnp.ones((16, 1))
            assert jnp.allclose(lqo.simulate(sys, u), lqo.simulate(sys.to_dense(), u))
        ```
    """
    for name, value in (("n", n), ("m", m), ("p", p), ("rank", rank)):
        _check_size_arg(value, name, "diagonal_systems")
    region = _checked_region(
        "diagonal_systems", max_radius, min_radius, min_decay, max_decay, max_frequency
    )
    _check_cond_scale("diagonal_systems", 1.0, scale)
    _check_dt("diagonal_systems", dt)
    rdtype = _real_dtype(dtype, "diagonal_systems")
    return _draw_diagonal_system(
        n, m, p, rank, poles, discrete, lti, feedthrough, scale, float(dt), rdtype, region
    )


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


@st.composite
def _draw_input_sequence(draw, length, m, scale, dtype):
    length = _size(draw, length, "length", "input_sequences", minimum=0)
    m = _size(draw, m, "m", "input_sequences")
    rng = np.random.default_rng(draw(_SEEDS))
    return jnp.asarray(scale * rng.standard_normal((length, m)), dtype=dtype)


def input_sequences(
    length: IntOrStrategy,
    m: IntOrStrategy,
    *,
    scale: float = 1.0,
    dtype: Any = None,
) -> st.SearchStrategy[Array]:
    """An input sequence `u` of shape `(length, m)` for [`jaxlqo.simulate`][].

    Entries are i.i.d. `N(0, scale²)` from a NumPy generator seeded by a drawn integer.

    **Arguments:**

    - `length`: the number of time steps `L` (an int `≥ 0` or a strategy).
    - `m`: the number of inputs (an int `≥ 1` or a strategy).
    - `scale`: keyword-only; the standard deviation of the entries.
    - `dtype`: keyword-only; the float dtype (default: JAX's default float dtype).

    **Returns:** a strategy drawing JAX arrays of shape `(length, m)`.

    !!! example

        ```python
        @hypothesis.given(lqo.testing.lqo_systems(m=2), lqo.testing.input_sequences(32, 2))
        def test_simulate_is_finite(sys, u):
            assert jnp.all(jnp.isfinite(lqo.simulate(sys, u)))
        ```
    """
    _check_size_arg(length, "length", "input_sequences", minimum=0)
    _check_size_arg(m, "m", "input_sequences")
    _check_cond_scale("input_sequences", 1.0, scale)
    return _draw_input_sequence(length, m, scale, _real_dtype(dtype, "input_sequences"))
