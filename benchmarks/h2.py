"""Benchmark: h2 error + gradient over the layers of an S5-IMDb-sized deep SSM.

    python -m benchmarks.h2 [--layers 6 --channels 256 --states 192 --rank 16] [--json f]

Each layer is a complex-diagonal system (n states, H inputs/outputs, output Re(Cx)); its
reduced model has r states. Value and gradient of Σ_layers h2_error² with respect to the
reduced models (poles, B̂, Ĉ), by:

  - jaxlqo, diagonal fast path, all layers in one jitted vmap, with the constant ‖Σ‖²
    hoisted (`h2_error(fom, rom, fom_norm_squared=...)`), and without hoisting;
  - the same, sharded over the host devices with `lqo.map_layers` (one layer block per device);
  - jaxlqo on the realified dense systems (2n real states, Bartels–Stewart), vmapped;
  - a plain NumPy loop over layers (the same closed forms and analytic gradient);
  - SciPy, a per-layer loop on the realified dense systems (Lyapunov/Sylvester solves and the
    analytic gradient of METHOD.md §4).

Correctness first (all agree), then times (compile separately), recompiles and peak memory.
"""

import argparse
import json
import pathlib
import sys

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg as sl

import jaxlqo as lqo
from benchmarks._timing import current_rss_mb, first_call, measure, peak_rss_mb, print_table


def layer(rng, n, h, dtype=np.complex128):
    lam = np.exp(-np.exp(rng.uniform(-4, -1, n)) + 1j * rng.uniform(0, np.pi, n))
    b = (rng.standard_normal((n, h)) + 1j * rng.standard_normal((n, h))) / np.sqrt(2 * h)
    c = (rng.standard_normal((h, n)) + 1j * rng.standard_normal((h, n))) / np.sqrt(n)
    return lqo.DiagonalLQOSystem(lam.astype(dtype), b.astype(dtype), c.astype(dtype), dt=1.0)


def stack(systems):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *systems)


def modal_rom(fom, r):
    """The r slowest modes of `fom` (a cheap, deterministic reduced model to start from)."""
    keep = np.argsort(-np.abs(np.asarray(fom.poles)))[:r]
    return lqo.DiagonalLQOSystem(fom.poles[keep], fom.B[keep], fom.C[:, keep], dt=fom.dt)


# --- NumPy baseline: the same closed forms, one layer at a time ---------------------------


def _np_inner_and_grad(lam, b, c, mu, bh, ch):
    """`⟨Σ, Σ̂⟩` and its gradient w.r.t. (μ, B̂, Ĉ) in JAX's convention (`2 ∂f/∂z`)."""
    s = 1 / (1 - lam[:, None] * np.conj(mu)[None, :])
    t = 1 / (1 - lam[:, None] * mu[None, :])
    k1, k2 = b @ bh.conj().T, b @ bh.T
    l1, l2 = c.T @ ch.conj(), c.T @ ch
    value = 0.5 * np.real(np.sum(k1 * l1 * s) + np.sum(k2 * l2 * t))
    w1, w2 = l1 * s, l2 * t
    g_b = 0.5 * (np.conj(w1.T @ b) + w2.T @ b)
    g_c = 0.5 * (np.conj(c @ (k1 * s)) + c @ (k2 * t))
    g_mu = 0.5 * (
        np.conj(np.sum(k1 * l1 * lam[:, None] * s**2, axis=0))
        + np.sum(k2 * l2 * lam[:, None] * t**2, axis=0)
    )
    return value, (g_mu, g_b, g_c)


def numpy_layer(fom, rom, fom_norm_squared):
    """Value and gradient of `h2_error²` for one layer, in NumPy (hoisted fom norm)."""
    rr, g_rr = _np_inner_and_grad(*rom, *rom)
    fr, g_fr = _np_inner_and_grad(*fom, *rom)
    value = fom_norm_squared + rr - 2 * fr
    # ⟨Σ̂, Σ̂⟩ is symmetric: its gradient is twice the second-argument one.
    return value, tuple(2 * a - 2 * b for a, b in zip(g_rr, g_fr, strict=True))


# --- SciPy baseline: realified dense systems ----------------------------------------------


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


def _dense_arrays(system):
    d = system.to_dense()
    return np.asarray(d.A), np.asarray(d.B), np.asarray(d.C)


def _loss(rom, fom, fom_norm_squared):
    return lqo.h2_error(fom, rom, fom_norm_squared=fom_norm_squared) ** 2


def _loss_plain(rom, fom):
    return lqo.h2_error(fom, rom) ** 2


def _loss_dense(rom, fom):
    # `jax.jit(jax.vmap(...))` of this path hung now and then on jaxlib 0.10.x (found by this
    # benchmark): its batched LAPACK calls deadlock XLA's CPU pool there (docs/faq.md).
    return lqo.h2_error(fom, rom) ** 2


def run(layers, channels, states, rank, *, dense=True, scipy_layers=None, repeats=20):
    """All paths for one model size; returns (record, rows)."""
    real = jnp.zeros(()).dtype  # float32 or float64, as configured
    cdtype = np.complex128 if real == jnp.float64 else np.complex64
    rtol = 1e-7 if real == jnp.float64 else 2e-3
    rng = np.random.default_rng(0)
    foms = [layer(rng, states, channels, cdtype) for _ in range(layers)]
    roms = [modal_rom(f, rank) for f in foms]
    fom_s, rom_s = stack(foms), stack(roms)
    rss_before = current_rss_mb()

    norms2 = jax.jit(jax.vmap(lqo.h2_norm))(fom_s) ** 2
    hoisted = jax.jit(jax.vmap(eqx.filter_value_and_grad(_loss)))
    plain = jax.jit(jax.vmap(eqx.filter_value_and_grad(_loss_plain)))
    mesh = lqo.layer_mesh(layers)
    sharded = jax.jit(lqo.map_layers(eqx.filter_value_and_grad(_loss), mesh))
    sh_args = lqo.shard_layers((rom_s, fom_s, norms2), mesh)

    # Correctness first.
    compile_s = {}
    (v_fast, g_fast), compile_s["fast_hoisted"] = first_call(hoisted, rom_s, fom_s, norms2)
    (v_plain, _), compile_s["fast"] = first_call(plain, rom_s, fom_s)
    (v_shard, g_shard), compile_s["fast_sharded"] = first_call(sharded, *sh_args)
    np_inputs = [
        (
            tuple(np.asarray(x, np.complex128) for x in (f.poles, f.B, f.C)),
            tuple(np.asarray(x, np.complex128) for x in (r.poles, r.B, r.C)),
        )
        for f, r in zip(foms, roms, strict=True)
    ]
    np_norms = [float(n) for n in norms2]
    v_np, g_np = numpy_layer(*np_inputs[0], np_norms[0])
    assert np.allclose(v_fast, v_plain, rtol=rtol), (v_fast, v_plain)
    assert np.allclose(v_fast[0], v_np, rtol=rtol), (v_fast[0], v_np)
    for got, want in zip((g_fast.poles[0], g_fast.B[0], g_fast.C[0]), g_np, strict=True):
        scale = np.abs(want).max()
        assert np.allclose(got, want, rtol=rtol, atol=rtol * scale), "NumPy gradient differs"
    assert np.allclose(v_shard, v_fast, rtol=rtol) and np.allclose(g_shard.B, g_fast.B, rtol=rtol)
    scipy_layers = layers if scipy_layers is None else min(scipy_layers, layers)
    sp_inputs = [(_dense_arrays(f), _dense_arrays(r)) for f, r in zip(foms, roms, strict=True)]
    sp_inputs = [
        tuple(tuple(np.asarray(x, np.float64) for x in sys) for sys in pair)
        for pair in sp_inputs[:scipy_layers]
    ]
    v_sp = scipy_layer(*sp_inputs[0])[0]
    assert np.isclose(v_fast[0], v_sp, rtol=max(rtol, 1e-6)), (v_fast[0], v_sp)

    rows, timings = [], {}
    timings["fast_hoisted"] = measure(hoisted, rom_s, fom_s, norms2, repeats=repeats, min_time=0.5)
    timings["fast"] = measure(plain, rom_s, fom_s, repeats=repeats, min_time=0.5)
    timings["fast_sharded"] = measure(sharded, *sh_args, repeats=repeats, min_time=0.5)
    peak_fast = peak_rss_mb()
    if dense:
        dense_f = stack([f.to_dense() for f in foms])
        dense_r = stack([r.to_dense() for r in roms])
        dense_fn = jax.jit(jax.vmap(eqx.filter_value_and_grad(_loss_dense)))
        (v_dense, _), compile_s["dense"] = first_call(dense_fn, dense_r, dense_f)
        assert np.allclose(v_dense, v_fast, rtol=max(rtol, 1e-6)), (v_dense, v_fast)
        timings["dense"] = measure(dense_fn, dense_r, dense_f, repeats=3)

    def numpy_loop():
        return [numpy_layer(f, r, n) for (f, r), n in zip(np_inputs, np_norms, strict=True)]

    def scipy_loop():
        return [scipy_layer(f, r) for f, r in sp_inputs]

    timings["numpy"] = measure(numpy_loop, repeats=5)
    timings["scipy"] = measure(scipy_loop, repeats=3)
    # A partial SciPy loop is scaled to all layers (each layer costs the same).
    scipy_s = timings["scipy"]["median_s"] * layers / scipy_layers
    names = {
        "fast_hoisted": "jaxlqo diagonal, ‖Σ‖² hoisted (vmap)",
        "fast": "jaxlqo diagonal (vmap)",
        "fast_sharded": f"jaxlqo diagonal, hoisted, map_layers × {mesh.shape['layers']} dev",
        "dense": "jaxlqo realified dense (vmap)",
        "numpy": "NumPy closed form, loop over layers",
        "scipy": "SciPy dense, loop over layers"
        + ("" if scipy_layers == layers else f" ({scipy_layers} timed, scaled)"),
    }
    for key, t in timings.items():
        t["compile_s"] = compile_s.get(key, float("nan"))
        median = scipy_s if key == "scipy" else t["median_s"]
        rows.append(
            [
                names[key],
                median * 1e3,
                scipy_s / median,
                timings["fast_hoisted"]["median_s"] / median,
                t["compile_s"] if key not in ("numpy", "scipy") else float("nan"),
                t["recompiles"] if key not in ("numpy", "scipy") else "-",
            ]
        )
    record = {
        "layers": layers,
        "channels": channels,
        "states": states,
        "rank": rank,
        "dtype": str(real),
        "timings": timings,
        "scipy_all_layers_s": scipy_s,
        "speedup_vs_scipy": scipy_s / timings["fast_hoisted"]["median_s"],
        "sharded_speedup": timings["fast_hoisted"]["median_s"]
        / timings["fast_sharded"]["median_s"],
        "devices": mesh.shape["layers"],
        "rss_before_mb": rss_before,
        "peak_rss_fast_mb": peak_fast,
        "peak_rss_mb": peak_rss_mb(),
        "device_memory_mb": _device_memory(),
    }
    return record, rows


def _device_memory():
    stats = jax.devices()[0].memory_stats() or {}
    return {k: v / 2**20 for k, v in stats.items() if k in ("peak_bytes_in_use", "bytes_in_use")}


HEADER = ["path", "median ms", "× vs SciPy", "rel. to fast", "compile s", "recompiles"]


def report(record, rows):
    print_table(
        f"h2 error + gradient, {record['layers']} layers × {record['channels']} channels × "
        f"{record['states']} states → {record['rank']} ({jax.default_backend()}, "
        f"{record['dtype']})",
        HEADER,
        rows,
    )
    print(
        f"peak RSS: {record['peak_rss_fast_mb']:.0f} MiB after the jaxlqo paths, "
        f"{record['peak_rss_mb']:.0f} MiB after all (process baseline before the suite "
        f"{record['rss_before_mb']:.0f} MiB); device memory stats: "
        f"{record['device_memory_mb'] or 'not reported on this backend'}"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--states", type=int, default=192)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", not args.float32)
    record, rows = run(args.layers, args.channels, args.states, args.rank)
    report(record, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
