"""Benchmark: batch throughput on many small SISO diagonal systems (S4D channels).

    python -m benchmarks.batch [--systems 10000 --order 64 --rank 8]

One vmapped call over all systems: `h2_norm`, and value + gradient of `h2_error²` against
reduced models of order `rank` (with the constant ‖Σ‖² hoisted). Baselines: python-control's
`control.norm(sys, 2)` per system (realified, SciPy Lyapunov solve; timed on a subset and
reported as systems/s) and a plain NumPy loop of the closed form.
"""

import argparse
import pathlib
import sys

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import jaxlqo as lqo
from benchmarks._timing import first_call, measure, print_table


def systems(count, order, seed=0, dtype=np.complex128):
    rng = np.random.default_rng(seed)
    lam = np.exp(
        -np.exp(rng.uniform(-4, -1, (count, order))) + 1j * rng.uniform(0, np.pi, (count, order))
    )
    b = rng.standard_normal((count, order, 1)) + 1j * rng.standard_normal((count, order, 1))
    c = (
        rng.standard_normal((count, 1, order)) + 1j * rng.standard_normal((count, 1, order))
    ) / order
    make = jax.vmap(lambda p, b, c: lqo.DiagonalLQOSystem(p, b, c, dt=1.0))
    return make(jnp.asarray(lam, dtype), jnp.asarray(b, dtype), jnp.asarray(c, dtype))


def _np_norm(lam, b, c):
    k = (b @ b.conj().T) * (c.T @ c.conj()) / (1 - lam[:, None] * lam.conj()[None, :])
    k2 = (b @ b.T) * (c.T @ c) / (1 - lam[:, None] * lam[None, :])
    return np.sqrt(0.5 * np.real(k.sum() + k2.sum()))


def run(count, order, rank, *, control_subset=50):
    real = jnp.zeros(()).dtype
    cdtype = np.complex128 if real == jnp.float64 else np.complex64
    rtol = 1e-8 if real == jnp.float64 else 1e-3
    foms = systems(count, order, 0, cdtype)
    keep = slice(0, rank)
    roms = jax.vmap(
        lambda s: lqo.DiagonalLQOSystem(s.poles[keep], s.B[keep], s.C[:, keep], dt=1.0)
    )(foms)

    norm = jax.jit(jax.vmap(lqo.h2_norm))
    loss = lambda r, f, n2: lqo.h2_error(f, r, fom_norm_squared=n2) ** 2  # noqa: E731
    error = jax.jit(jax.vmap(eqx.filter_value_and_grad(loss)))
    norms, c_norm = first_call(norm, foms)
    (_, _), c_err = first_call(error, roms, foms, norms**2)

    # Correctness: NumPy closed form and python-control on a few systems.
    host = [np.asarray(x) for x in (foms.poles, foms.B, foms.C)]
    for i in range(3):
        assert np.isclose(norms[i], _np_norm(host[0][i], host[1][i], host[2][i]), rtol=rtol)
    control_row = None
    try:
        import control

        dense = [jax.tree.map(lambda x, i=i: x[i], foms).to_dense() for i in range(control_subset)]
        ss = [
            control.ss(*(np.asarray(x, np.float64) for x in (d.A, d.B, d.C, d.D)), 1.0)
            for d in dense
        ]
        value = control.norm(ss[0], 2, print_warning=False)
        # python-control returns inf when it judges poles 'close to' the unit circle
        # (|λ| up to 0.98 here); only a finite value is compared.
        assert not np.isfinite(value) or np.isclose(value, norms[0], rtol=max(rtol, 1e-6))
        start = time.perf_counter()
        for s in ss:
            control.norm(s, 2, print_warning=False)
        control_row = control_subset / (time.perf_counter() - start)
    except ImportError:
        pass

    t_norm = measure(norm, foms, repeats=5)
    t_err = measure(error, roms, foms, norms**2, repeats=5)
    subset = min(count, 2000)

    def numpy_loop():
        return [_np_norm(host[0][i], host[1][i], host[2][i]) for i in range(subset)]

    start = time.perf_counter()
    numpy_loop()
    np_rate = subset / (time.perf_counter() - start)
    rows = [
        [
            "jaxlqo h2_norm (one vmapped call)",
            count / t_norm["median_s"],
            t_norm["median_s"] * 1e3,
            c_norm,
            t_norm["recompiles"],
        ],
        [
            f"jaxlqo h2_error² + grad vs order {rank}",
            count / t_err["median_s"],
            t_err["median_s"] * 1e3,
            c_err,
            t_err["recompiles"],
        ],
        ["NumPy closed-form h2 norm, loop", np_rate, float("nan"), float("nan"), "-"],
        [
            "python-control norm(sys, 2), loop",
            control_row if control_row else float("nan"),
            float("nan"),
            float("nan"),
            "-",
        ],
    ]
    record = {
        "systems": count,
        "order": order,
        "rank": rank,
        "dtype": str(real),
        "h2_norm_per_s": count / t_norm["median_s"],
        "h2_error_grad_per_s": count / t_err["median_s"],
        "numpy_norm_per_s": np_rate,
        "control_norm_per_s": control_row,
        "timings": {"h2_norm": t_norm, "h2_error_grad": t_err},
    }
    return record, rows


def report(record, rows):
    print_table(
        f"batch throughput: {record['systems']} SISO diagonal systems of order {record['order']}"
        f" ({jax.default_backend()}, {record['dtype']})",
        ["path", "systems/s", "median ms", "compile s", "recompiles"],
        rows,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", type=int, default=10_000)
    parser.add_argument("--order", type=int, default=64)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", not args.float32)
    report(*run(args.systems, args.order, args.rank))


if __name__ == "__main__":
    main()
