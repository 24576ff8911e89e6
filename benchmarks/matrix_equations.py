"""Benchmark: jaxlqo's matrix-equation solvers against SciPy and jax.scipy.

    python benchmarks/matrix_equations.py [--sizes 16,64,256,512] [--json out.json]

Checks correctness first (agreement with SciPy), then prints the median time of the forward
solve, of a further solve with the factorisation reused (`state=lqo.factorise(A)`), and of
forward + gradient (of a scalar loss of X with respect to A and Q), for the
continuous and discrete Lyapunov equations, with ratios to SciPy; plus the diagonal
closed form against a dense solve of the same size, and jax.scipy.linalg.solve_sylvester
(which has no derivative with respect to A).
"""

import argparse
import json
import pathlib
import sys

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg as sl

import jaxlqo as lqo
from benchmarks._timing import first_call, measure, print_table, time_call

try:  # python-control; without slycot its lyap/dlyap fall back to SciPy
    import control
except ImportError:
    control = None


def problem(n: int, discrete: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    if discrete:
        a = 0.9 * a / np.max(np.abs(np.linalg.eigvals(a)))
    else:
        a = a - (np.max(np.linalg.eigvals(a).real) + 0.5) * np.eye(n)
    b = rng.standard_normal((n, 2))
    return a, b @ b.T


def run(sizes: list[int]) -> list[dict]:
    records = []
    for discrete in (False, True):
        name = "discrete Lyapunov" if discrete else "continuous Lyapunov"
        ours = lqo.solve_discrete_lyapunov if discrete else lqo.solve_continuous_lyapunov
        theirs = sl.solve_discrete_lyapunov if discrete else sl.solve_continuous_lyapunov
        rows = []
        for n in sizes:
            a, q = problem(n, discrete)
            forward = jax.jit(ours)
            x, compile_s = first_call(forward, a, q)
            reference = theirs(a, q)
            error = float(np.max(np.abs(x - reference)) / np.max(np.abs(reference)))
            tol = 1e-8 if x.dtype == jnp.float64 else 1e-2 * n / 16  # float32: conditioning
            assert error < tol, f"{name} n={n}: relative error {error}"
            grad = jax.jit(
                jax.grad(lambda a, q, ours=ours: jnp.sum(ours(a, q) ** 2), argnums=(0, 1))
            )
            timing = measure(forward, a, q)
            t_ours = timing["median_s"]
            t_grad = time_call(grad, a, q)
            t_scipy = time_call(theirs, a, q)
            # A factorisation reused (`state=`): the cost of each further right-hand side.
            state = lqo.factorise(a, discrete=discrete)
            reused = jax.jit(lambda state, a, q, ours=ours: ours(a, q, state=state))
            assert np.allclose(reused(state, a, q), x, rtol=1e-12, atol=1e-12 * np.abs(x).max())
            t_reused = time_call(reused, state, a, q)
            t_control = float("nan")
            if control is not None:  # control.lyap(A, Q): AX + XAᵀ + Q = 0; dlyap: AXAᵀ − X + Q = 0
                theirs_c = control.dlyap if discrete else control.lyap
                x_c = theirs_c(a, q if discrete else -q)
                assert np.allclose(x_c, reference, rtol=1e-8, atol=1e-8 * np.abs(reference).max())
                t_control = time_call(theirs_c, a, q if discrete else -q)
            rec = {
                "equation": name,
                "n": n,
                "scipy_s": t_scipy,
                "jaxlqo_s": t_ours,
                "jaxlqo_fwd_grad_s": t_grad,
                "ratio_fwd": t_ours / t_scipy,
                "jaxlqo_reused_s": t_reused,
                "ratio_reused": t_reused / t_scipy,
                "ratio_grad_over_fwd": t_grad / t_ours,
                "rel_error": error,
                "control_s": t_control,
                "compile_s": compile_s,
                "recompiles": timing["recompiles"],
            }
            if not discrete:
                jsp = jax.jit(lambda a, q: jax.scipy.linalg.solve_sylvester(a, a.T, q))
                rec["jax_scipy_s"] = time_call(jsp, a, q)
            records.append(rec)
            rows.append(
                [
                    n,
                    t_scipy * 1e3,
                    t_control * 1e3,
                    t_ours * 1e3,
                    rec["ratio_fwd"],
                    t_reused * 1e3,
                    t_grad * 1e3,
                    rec["ratio_grad_over_fwd"],
                    rec.get("jax_scipy_s", float("nan")) * 1e3,
                    error,
                    compile_s,
                    timing["recompiles"],
                ]
            )
        print_table(
            f"{name}: median ms ({jax.default_backend()}, {jnp.zeros(()).dtype})",
            [
                "n",
                "scipy",
                "control",
                "jaxlqo",
                "ours/scipy",
                "state=",
                "fwd+grad",
                "grad/fwd",
                "jax.scipy",
                "rel err",
                "compile s",
                "recompiles",
            ],
            rows,
        )
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        lam = np.exp(-rng.uniform(0.01, 1, n) + 1j * rng.uniform(0, np.pi, n))
        q = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
        diag = jax.jit(lqo.solve_discrete_lyapunov)
        dense = jax.jit(lambda a, q: lqo.solve_discrete_lyapunov(a, q, solver=lqo.BartelsStewart()))
        t_diag = time_call(diag, lam, q)
        t_dense = time_call(dense, np.diag(lam), q)
        atol = 1e-9 if jnp.zeros(()).dtype == jnp.float64 else 1e-2
        assert np.allclose(diag(lam, q), dense(np.diag(lam), q), atol=atol * np.abs(q).max())
        records.append(
            {"equation": "diagonal Stein", "n": n, "diagonal_s": t_diag, "dense_s": t_dense}
        )
        rows.append([n, t_diag * 1e3, t_dense * 1e3, t_dense / t_diag])
    print_table(
        "diagonal closed form vs dense Bartels-Stewart (complex Stein), ms",
        ["n", "diagonal", "dense", "speed-up"],
        rows,
    )
    records += _hankel_singular_values(sizes)
    return records


def _hankel_singular_values(sizes: list[int]) -> list[dict]:
    """Both Gramians of one dense system: jaxlqo factorises `A` once (the observability
    equation takes the transposed factorisation); SciPy solves two Lyapunov equations."""
    records, rows = [], []
    for n in sizes:
        a, _ = problem(n, discrete=False)
        rng = np.random.default_rng(n)
        b, c = rng.standard_normal((n, 2)), rng.standard_normal((3, n))
        sys_ = lqo.LQOSystem(a, b, c)
        ours = jax.jit(lqo.hankel_singular_values)

        def theirs(a=a, b=b, c=c):
            p = sl.solve_continuous_lyapunov(a, -b @ b.T)
            q = sl.solve_continuous_lyapunov(a.T, -c.T @ c)
            return np.sqrt(np.abs(np.sort(np.linalg.eigvals(p @ q).real)[::-1]))

        hsv, reference = np.asarray(ours(sys_)), theirs()
        k = min(5, n)  # the leading values are well conditioned
        atol = 1e-8 if jnp.zeros(()).dtype == jnp.float64 else 1e-2
        assert np.allclose(hsv[:k], reference[:k], rtol=atol, atol=atol * reference[0])
        t_ours, t_theirs = time_call(ours, sys_), time_call(theirs)
        records.append(
            {"equation": "Hankel singular values", "n": n, "jaxlqo_s": t_ours, "scipy_s": t_theirs}
        )
        rows.append([n, t_theirs * 1e3, t_ours * 1e3, t_ours / t_theirs])
    print_table(
        "Hankel singular values of a dense system (both Gramians), ms",
        ["n", "scipy (2 Lyapunov + eig)", "jaxlqo", "ours/scipy"],
        rows,
    )
    return records


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="16,64,256,512")
    parser.add_argument("--json", default=None)
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", not args.float32)
    records = run([int(s) for s in args.sizes.split(",")])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()
