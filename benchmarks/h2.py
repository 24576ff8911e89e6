"""Benchmark: h2 error + gradient over the layers of an S5-IMDb-sized deep SSM.

    python benchmarks/h2.py [--layers 6 --channels 256 --states 192 --rank 16] [--json f]

Each layer is a complex-diagonal system (n states, H inputs/outputs, output Re(Cx)); its
reduced model has r states. Compares, for the value and gradient of Σ_layers h2_error² with
respect to the reduced models:
  - jaxlqo, diagonal path (closed forms, O(n r)), all layers in one vmapped call;
  - jaxlqo, realified dense path (2n real states, Bartels–Stewart), vmapped;
  - SciPy, a per-layer loop on the realified dense systems (value and the analytic
    gradient of METHOD.md §4, with scipy.linalg solves).
Correctness is checked first (all three agree).
"""

import argparse
import json

import jax

jax.config.update("jax_enable_x64", True)
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402
from _timing import compile_time, print_table, time_call  # noqa: E402

import jaxlqo as lqo  # noqa: E402


def layer(rng, n, h):
    lam = np.exp(-np.exp(rng.uniform(-4, -1, n)) + 1j * rng.uniform(0, np.pi, n))
    b = (rng.standard_normal((n, h)) + 1j * rng.standard_normal((n, h))) / np.sqrt(2 * h)
    c = (rng.standard_normal((h, n)) + 1j * rng.standard_normal((h, n))) / np.sqrt(n)
    return lqo.DiagonalLQOSystem(lam, b, c, dt=1.0)


def stack(systems):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *systems)


def scipy_layer(fom, rom):
    """Value and analytic gradient (w.r.t. Â, B̂, Ĉ) of h2_error² for real dense systems."""
    a, b, c = fom
    ah, bh, ch = rom
    p = sl.solve_discrete_lyapunov(a, b @ b.T)
    ph = sl.solve_discrete_lyapunov(ah, bh @ bh.T)
    a_inv = np.linalg.inv(a)
    # X = A X Âᵀ + B B̂ᵀ  ⇔  A⁻¹ X − X Âᵀ = A⁻¹ B B̂ᵀ
    x = sl.solve_sylvester(a_inv, -ah.T, a_inv @ b @ bh.T)
    value = np.trace(c @ p @ c.T) + np.trace(ch @ ph @ ch.T) - 2 * np.trace(c @ x @ ch.T)
    qt = sl.solve_discrete_lyapunov(ah.T, ch.T @ ch)
    # Ỹ = Aᵀ Ỹ Â + Cᵀ Ĉ  ⇔  A⁻ᵀ Ỹ − Ỹ Â = A⁻ᵀ Cᵀ Ĉ
    y = sl.solve_sylvester(a_inv.T, -ah, a_inv.T @ c.T @ ch)
    grads = (
        2 * (qt @ ah @ ph - y.T @ a @ x),
        2 * (qt @ bh - y.T @ b),
        2 * (ch @ ph - c @ x),
    )
    return value, grads


def run(layers, channels, states, rank):
    rng = np.random.default_rng(0)
    foms = [layer(rng, states, channels) for _ in range(layers)]
    roms = [lqo.balanced_truncation(f, rank)[0] for f in foms]
    fom_d, rom_d = stack(foms), stack(roms)

    def objective(fom, rom):
        return lqo.h2_error(fom, rom) ** 2

    diag = jax.jit(jax.vmap(eqx.filter_value_and_grad(lambda r, f: objective(f, r))))
    dense_foms = stack([f.to_dense() for f in foms])
    dense_roms = stack([r.to_dense() for r in roms])
    dense = jax.jit(jax.vmap(eqx.filter_value_and_grad(lambda r, f: objective(f, r))))

    t_compile_diag = compile_time(diag, rom_d, fom_d)
    t_compile_dense = compile_time(dense, dense_roms, dense_foms)
    v_diag, _ = diag(rom_d, fom_d)
    v_dense, g_dense = dense(dense_roms, dense_foms)
    scipy_inputs = [
        ((np.asarray(f.A), np.asarray(f.B), np.asarray(f.C)), (np.asarray(r.A), np.asarray(r.B), np.asarray(r.C)))
        for f, r in zip([f.to_dense() for f in foms], [r.to_dense() for r in roms])
    ]
    v_scipy = [scipy_layer(f, r)[0] for f, r in scipy_inputs]
    assert np.allclose(v_diag, v_dense, rtol=1e-8), (v_diag, v_dense)
    assert np.allclose(v_diag, v_scipy, rtol=1e-7), (v_diag, v_scipy)
    g_scipy = scipy_layer(*scipy_inputs[0])[1]
    assert np.allclose(g_dense.A[0], g_scipy[0], rtol=1e-6, atol=1e-9 * np.abs(g_scipy[0]).max())

    t_diag = time_call(diag, rom_d, fom_d)
    t_dense = time_call(dense, dense_roms, dense_foms, repeats=3)

    def scipy_loop():
        return [scipy_layer(f, r) for f, r in scipy_inputs]

    t_scipy = time_call(scipy_loop, repeats=3)
    rows = [
        ["jaxlqo diagonal (vmap)", t_diag * 1e3, t_scipy / t_diag, t_compile_diag],
        ["jaxlqo realified dense (vmap)", t_dense * 1e3, t_scipy / t_dense, t_compile_dense],
        ["SciPy per-layer loop", t_scipy * 1e3, 1.0, 0.0],
    ]
    print_table(
        f"h2 error + gradient, {layers} layers × {channels} channels × {states} states → {rank}"
        " (CPU, float64)",
        ["path", "median ms", "speed-up vs SciPy", "compile s"],
        rows,
    )
    return {
        "layers": layers, "channels": channels, "states": states, "rank": rank,
        "diagonal_s": t_diag, "dense_s": t_dense, "scipy_s": t_scipy,
        "compile_diagonal_s": t_compile_diag, "compile_dense_s": t_compile_dense,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--states", type=int, default=192)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    record = run(args.layers, args.channels, args.states, args.rank)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
