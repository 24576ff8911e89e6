"""Every default path lowers for CUDA without `schur`, LAPACK or host callbacks.

Runs on a CPU-only jaxlib: `jax.jit(f).trace(...).lower(lowering_platforms=("cuda",))` only
needs the CUDA lowering rules, not a GPU. The default solver dispatches on
`jax.default_backend()` at trace time, so it is patched to report "gpu" while tracing.

With `throw=True` (the default) Equinox's `error_if` puts a `pure_callback` in its error
branch (never taken on success), and such a callback only lowers where the GPU backend
exists. Here Equinox's error mode is switched to "nan" (`EQX_ON_ERROR=nan`: the same checks,
no callback), so the default paths are checked everywhere else; `benchmarks/device_check.sh`
lowers them unchanged on a real GPU and reports the callbacks of the error branches.

Known exception, allowed and reported: `jnp.linalg.eigvals` / `eig` (stability checks of
dense systems, the Kronecker solver's solvability check, and the default solver's
eigendecomposition fallback for equations with unstable coefficients) lowers on CUDA to JAX's
`cuhybrid_eig_*` kernel (cuSOLVER's or the host's `geev`; it is the only eig JAX has on GPU).
"""

import re

import equinox._errors
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo

FORBIDDEN = re.compile(r"schur|lapack|callback", re.IGNORECASE)
ALLOWED_HYBRID = ("cuhybrid_eig_real", "cuhybrid_eig_comp")


@pytest.fixture
def gpu_dispatch(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(equinox._errors, "EQX_ON_ERROR", "nan")
    jax.clear_caches()  # no trace made under the CPU dispatch may be reused, nor leak out
    yield
    jax.clear_caches()


def _lower_cuda(fn, *args) -> str:
    fresh = lambda *a: fn(*a)  # noqa: E731  (a new function: no cached trace)
    return jax.jit(fresh).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


def _targets(text: str) -> set[str]:
    return set(re.findall(r"custom_call @([\w.]+)", text)) | set(
        re.findall(r'call_target_name = "([\w.]+)"', text)
    )


def _stable_dense(n, m, p, seed, dt=1.0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    if dt is None:
        a = a - (np.max(np.linalg.eigvals(a).real) + 0.5) * np.eye(n)
    else:
        a = 0.8 * a / np.max(np.abs(np.linalg.eigvals(a)))
    return lqo.LQOSystem(a, rng.standard_normal((n, m)), rng.standard_normal((p, n)), dt=dt)


def _diagonal(n, m, p, seed):
    rng = np.random.default_rng(seed)
    lam = np.exp(-np.exp(rng.uniform(-3, 0, n)) + 1j * rng.uniform(0, np.pi, n))
    cn = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)  # noqa: E731
    return lqo.DiagonalLQOSystem(lam, cn(n, m), cn(p, n), dt=1.0)


def _cases():
    dense_d = _stable_dense(12, 2, 2, 0)
    dense_c = _stable_dense(12, 2, 2, 1, dt=None)
    rom_d = _stable_dense(10, 2, 2, 2)
    diag, diag_rom = _diagonal(16, 2, 2, 3), _diagonal(4, 2, 2, 4)
    q = jnp.eye(12)
    return {
        "solve_discrete_lyapunov": (lqo.solve_discrete_lyapunov, (dense_d.A, q)),
        "solve_continuous_lyapunov": (lqo.solve_continuous_lyapunov, (dense_c.A, q)),
        "solve_sylvester": (lambda a, q: lqo.solve_sylvester(a, a.T, q), (dense_c.A, q)),
        "solve_discrete_sylvester": (
            lambda a, q: lqo.solve_discrete_sylvester(a, a.T, q),
            (dense_d.A, q),
        ),
        "grad solve_discrete_lyapunov": (
            jax.grad(lambda a, q: jnp.sum(lqo.solve_discrete_lyapunov(a, q) ** 2)),
            (dense_d.A, q),
        ),
        "observability_gramian": (lqo.observability_gramian, (dense_d,)),
        "gramian, continuous, horizon": (
            lambda s: lqo.controllability_gramian(s, horizon=2.0),
            (dense_c,),
        ),
        "hankel_singular_values": (lqo.hankel_singular_values, (dense_d,)),
        "h2_norm dense": (lqo.h2_norm, (dense_d,)),
        "h2_norm diagonal": (lqo.h2_norm, (diag,)),
        "h2_error dense + grad": (
            jax.value_and_grad(lambda r, f: lqo.h2_error(f, r)),
            (rom_d, dense_d),
        ),
        "h2_error diagonal + grad": (
            jax.value_and_grad(lambda r, f: lqo.h2_error(f, r)),
            (diag_rom, diag),
        ),
        "balanced_truncation dense": (lambda s: lqo.balanced_truncation(s, 4).value, (dense_d,)),
        "balanced_truncation diagonal": (lambda s: lqo.balanced_truncation(s, 4).value, (diag,)),
        "reduce dense": (lambda s: lqo.reduce(s, 4, max_steps=3).value, (dense_d,)),
        "reduce diagonal": (lambda s: lqo.reduce(s, 4, max_steps=3).value, (diag,)),
    }


CASES = _cases()


# Default paths known not to lower for CUDA (name: reason); each is an xfail(strict=True).
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n]))
        if n in KNOWN_BUGS
        else n
        for n in CASES
    ],
)
def test_default_path_lowers_for_cuda_without_schur_or_callbacks(name, gpu_dispatch):
    fn, args = CASES[name]
    text = _lower_cuda(fn, *args)
    targets = _targets(text) - set(ALLOWED_HYBRID)
    bad = sorted(t for t in targets if FORBIDDEN.search(t))
    assert not bad, f"{name}: CUDA lowering calls {bad}"
    assert "stablehlo.schur" not in text and "lapack" not in text.lower()


def test_cpu_dispatch_does_use_schur():
    # The check above can fail: the CPU default (Bartels-Stewart) is caught by it.
    fn, args = CASES["solve_discrete_lyapunov"]
    with pytest.raises(NotImplementedError, match="schur"):
        _lower_cuda(fn, *args)


def test_gpu_default_carries_the_eigendecomposition_fallback(gpu_dispatch):
    # Stable inputs stay on matrix sign / doubling; the general-A branch (taken only when the
    # iteration fails) is compiled in and lowers to the hybrid eig kernel, not to a callback.
    a = _stable_dense(12, 2, 2, 1, dt=None).A
    for solve in (lqo.solve_continuous_lyapunov, lqo.solve_discrete_lyapunov):
        targets = _targets(_lower_cuda(solve, a, jnp.eye(12)))
        assert targets & set(ALLOWED_HYBRID), targets
