#!/usr/bin/env bash
# GPU readiness check for jaxlqo (under 8 minutes on one NVIDIA GPU).
#
#   bash benchmarks/device_check.sh            # from the repository root
#
# 1. Uses the existing environment if JAX already sees a GPU; otherwise installs
#    jaxlqo with its test extras and jax[cuda12] and checks again.
# 2. Prints jax.devices().
# 3. Lowers every default path on the GPU *unchanged* (throw=True, Equinox's error
#    callbacks included) and fails on `schur`, LAPACK custom calls, or a host callback
#    outside Equinox's error branch; prints each function's custom-call targets.
# 4. Runs a short pytest selection on the GPU default paths (Doubling / MatrixSign
#    solvers, Gramians, h2 norms, reduce, the CUDA-lowering test).
# 5. Runs the benchmark tables (--quick) in float32 and float64.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
START=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - START ))s] $*"; }

has_gpu() { "$PY" -c 'import jax, sys; sys.exit(0 if jax.default_backend() == "gpu" else 1)' 2>/dev/null; }

step "environment"
if ! has_gpu; then
  echo "JAX does not see a GPU here; installing jaxlqo[test] and jax[cuda12]"
  timeout 240 "$PY" -m pip install -q -e ".[test]" "jax[cuda12]" || echo "pip install failed"
fi
"$PY" -c 'import jax; print("jax", jax.__version__, "backend", jax.default_backend()); print(jax.devices())'
if ! has_gpu; then echo "FAIL: no GPU visible to JAX"; exit 1; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true

step "GPU lowering of the default paths (no schur / LAPACK / host callbacks)"
timeout 180 "$PY" - <<'PYEOF'
import re, sys
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxlqo as lqo

rng = np.random.default_rng(0)
def dense(n, dt=1.0):
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    a = 0.8 * a / np.max(np.abs(np.linalg.eigvals(a))) if dt else a - (np.max(np.linalg.eigvals(a).real) + 0.5) * np.eye(n)
    return lqo.LQOSystem(a, rng.standard_normal((n, 2)), rng.standard_normal((2, n)), dt=dt)
def diag(n):
    lam = np.exp(-np.exp(rng.uniform(-3, 0, n)) + 1j * rng.uniform(0, np.pi, n))
    return lqo.DiagonalLQOSystem(lam, rng.standard_normal((n, 2)) + 0j, rng.standard_normal((2, n)) + 0j, dt=1.0)
d, c, rd, g, gr = dense(40), dense(40, None), dense(10), diag(64), diag(8)
q = jnp.eye(40)
cases = {
    "solve_discrete_lyapunov": (lqo.solve_discrete_lyapunov, (d.A, q)),
    "solve_continuous_lyapunov": (lqo.solve_continuous_lyapunov, (c.A, q)),
    "grad dlyap": (jax.grad(lambda a, q: jnp.sum(lqo.solve_discrete_lyapunov(a, q) ** 2)), (d.A, q)),
    "observability_gramian": (lqo.observability_gramian, (d,)),
    "hankel_singular_values": (lqo.hankel_singular_values, (d,)),
    "h2_norm dense": (lqo.h2_norm, (d,)),
    "h2_norm diagonal": (lqo.h2_norm, (g,)),
    "h2_error dense + grad": (jax.value_and_grad(lambda r, f: lqo.h2_error(f, r)), (rd, d)),
    "h2_error diagonal + grad": (jax.value_and_grad(lambda r, f: lqo.h2_error(f, r)), (gr, g)),
    "balanced_truncation": (lambda s: lqo.balanced_truncation(s, 8).value, (d,)),
    "reduce diagonal": (lambda s: lqo.reduce(s, 8, max_steps=5).value, (g,)),
    "reduce dense": (lambda s: lqo.reduce(s, 8, max_steps=5).value, (d,)),
}
bad = []
for name, (fn, args) in cases.items():
    try:
        text = jax.jit(fn).lower(*args).as_text()
    except Exception as e:
        print(f"{name:28s} LOWERING FAILED: {type(e).__name__}: {str(e)[:200]}"); bad.append(name); continue
    targets = sorted(set(re.findall(r'custom_call @([\w.]+)', text)) | set(re.findall(r'call_target_name = "([\w.]+)"', text)))
    callbacks = [t for t in targets if "callback" in t]
    forbidden = [t for t in targets if re.search("schur|lapack", t, re.I)] + (["stablehlo schur"] if "schur" in text.lower() else [])
    # Equinox's error_if callbacks live in cond branches that run only on failure.
    print(f"{name:28s} targets={targets}")
    if forbidden:
        bad.append(name)
print("FAIL:" if bad else "OK: no schur / LAPACK on the GPU default paths", bad)
sys.exit(1 if bad else 0)
PYEOF
LOWER=$?

step "pytest selection (GPU default paths)"
timeout 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu_lowering.py 2>&1 | tail -3
# Solver tests parametrised over Doubling / MatrixSign / the default (AutoSolver picks them on GPU).
timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_matrix_equations.py -m "not slow" \
  -k "(Doubling or MatrixSign or Auto or large_default) and not Kronecker" 2>&1 | tail -3
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_norms.py tests/test_reduction.py \
  -m "not slow" -k "h2_norm or reference or stable or vmap" 2>&1 | tail -3

step "benchmarks --quick, float32"
timeout 150 "$PY" -m benchmarks --quick --float32 --suites h2,batch,matrix --json /tmp/jaxlqo-bench-f32.json
step "benchmarks --quick, float64"
timeout 150 "$PY" -m benchmarks --quick --suites h2,batch,matrix --json /tmp/jaxlqo-bench-f64.json

step "done (lowering check exit code $LOWER)"
exit $LOWER
