"""Layerwise sharding: `lqo.shard_layers`, `lqo.map_layers`, `lqo.layer_mesh`.

The multi-device checks run in a subprocess with four virtual CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4` must be set before JAX is imported).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo

SCRIPT = textwrap.dedent(
    r"""
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    import jaxlqo as lqo

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)

    def diagonal(n, h):
        lam = np.exp(-np.exp(rng.uniform(-3, 0, n)) + 1j * rng.uniform(0, np.pi, n))
        cn = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)
        return lqo.DiagonalLQOSystem(lam, cn(n, h), cn(h, n), dt=1.0)

    def stack(systems):
        return jax.tree.map(lambda *x: jnp.stack(x), *systems)

    def close(a, b):
        return all(
            np.allclose(x, y, rtol=1e-10, atol=1e-12)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        )

    def spans(tree):
        return min(len(x.sharding.device_set) for x in jax.tree.leaves(tree))

    out = {}
    foms = stack([diagonal(12, 3) for _ in range(8)])
    roms = stack([diagonal(4, 3) for _ in range(8)])
    dense = stack([diagonal(6, 2).to_dense() for _ in range(8)])  # 12 real states
    loss = lambda rom, fom: lqo.h2_error(fom, rom) ** 2
    value_and_grad = jax.vmap(jax.value_and_grad(loss))
    reference = jax.jit(value_and_grad)(roms, foms)

    # 1. map_layers: shard_map over a 1-D mesh, each device its own layers.
    mesh = lqo.layer_mesh(8)
    out["mesh_size"] = mesh.shape["layers"]
    sharded = jax.jit(lqo.map_layers(jax.value_and_grad(loss)))(roms, foms)
    out["map_h2_equal"] = close(sharded, reference)
    out["map_h2_devices"] = spans(sharded)

    # 2. shard_layers + plain jit(vmap): partitioned by XLA (throw=False: no value checks,
    # hence no cross-device all-reduce on the oversubscribed virtual CPU devices).
    f_s, r_s = lqo.shard_layers(foms), lqo.shard_layers(roms)
    out["placed_devices"] = spans(f_s)
    nothrow = lambda rom, fom: lqo.h2_error(fom, rom, throw=False).value ** 2
    gspmd = jax.jit(jax.vmap(jax.value_and_grad(nothrow)))(r_s, f_s)
    out["gspmd_h2_equal"] = close(gspmd, reference)
    out["gspmd_h2_devices"] = spans(gspmd)
    text = jax.jit(jax.vmap(jax.value_and_grad(nothrow))).lower(r_s, f_s).compile().as_text()
    kinds = ("all-gather", "all-reduce", "all-to-all")
    out["gspmd_collectives"] = sum(text.count(k) for k in kinds)

    # 3. Gramians (dense, Bartels-Stewart on CPU) and Hankel singular values.
    gram = jax.vmap(lqo.controllability_gramian)
    g_ref = jax.jit(gram)(dense)
    g_map = jax.jit(lqo.map_layers(lqo.controllability_gramian))(dense)
    out["gramian_equal"] = close(g_map, g_ref)
    out["gramian_devices"] = spans(g_map)
    hsv_map = jax.jit(lqo.map_layers(lqo.hankel_singular_values))(foms)
    out["hsv_equal"] = close(hsv_map, jax.jit(jax.vmap(lqo.hankel_singular_values))(foms))

    # 3b. Tiny dense systems (n·m ≤ 64: the default solver is the Kronecker solve).
    tiny = stack([diagonal(2, 1).to_dense() for _ in range(8)])  # 4 real states
    t_ref = jax.jit(gram)(tiny)
    t_map = jax.jit(lqo.map_layers(lqo.controllability_gramian))(tiny)
    out["tiny_gramian_equal"] = close(t_map, t_ref)

    # 4. reduce (L-BFGS in a while loop) per device.
    red = lambda fom: lqo.reduce(fom, 3, max_steps=8).value
    r_map = jax.jit(lqo.map_layers(red))(foms)
    out["reduce_equal"] = close(r_map, jax.jit(jax.vmap(red))(foms))
    out["reduce_devices"] = spans(r_map)

    # 5. A value check still raises inside shard_map (one unstable layer).
    import equinox as eqx
    bad = eqx.tree_at(lambda s: s.poles, foms, foms.poles.at[5, 0].set(1.5))
    try:
        jax.block_until_ready(jax.jit(lqo.map_layers(lqo.h2_norm))(bad))
        out["unstable_raises"] = False
    except Exception as e:  # equinox raises an XlaRuntimeError / EqxRuntimeError
        out["unstable_raises"] = "unstable" in str(e)
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def four_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
        # Neither flag changes values, only the order in which the runtime executes a program;
        # both were the first (partial) remedies for the deadlock that NPROC below removes.
        " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    ).strip()
    env["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = "false"
    env["JAX_PLATFORMS"] = "cpu"
    # XLA's intra-op thread pool has max(cores, devices) = 4 threads here unless NPROC sets
    # it. jaxlib's batched complex SVD (Hankel singular values) schedules its pieces on that
    # pool and blocks until they finish, so the four devices, each in such a kernel, could
    # hold all four threads and wait forever: gdb showed exactly that (4 tf_XLAEigen threads
    # in lapack_zgesdd_ffi, in BlockUntilReady). It hung 3 of 6 concurrent runs before, 0 of
    # 21 with NPROC=16 (jaxlqo/_sharding.py says the same to users).
    env["NPROC"] = "16"
    # Normally 20-60 s. The retry is a safety net for a stall of another kind, not expected.
    for attempt in range(2):
        try:
            proc = subprocess.run(
                [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240
            )
            break
        except subprocess.TimeoutExpired:
            if attempt == 1:
                raise
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT") :])


def test_map_layers_h2_error_and_gradient(four_devices):
    assert four_devices["mesh_size"] == 4
    assert four_devices["map_h2_equal"]
    assert four_devices["map_h2_devices"] == 4


def test_shard_layers_then_jit_vmap(four_devices):
    assert four_devices["placed_devices"] == 4
    assert four_devices["gspmd_h2_equal"]
    assert four_devices["gspmd_h2_devices"] == 4
    assert four_devices["gspmd_collectives"] == 0  # purely layerwise: no communication


def test_map_layers_gramians(four_devices):
    assert four_devices["gramian_equal"]
    assert four_devices["gramian_devices"] == 4
    assert four_devices["hsv_equal"]
    assert four_devices["tiny_gramian_equal"]  # Kronecker solver inside shard_map


def test_map_layers_reduce(four_devices):
    assert four_devices["reduce_equal"]
    assert four_devices["reduce_devices"] == 4


def test_map_layers_value_checks_raise(four_devices):
    assert four_devices["unstable_raises"]


# Single-device behaviour (this process).


def _stack(n_layers, n=5):
    lam = jnp.linspace(0.1, 0.5, n).astype(jnp.complex128)
    sys = lqo.DiagonalLQOSystem(lam, jnp.ones((n, 2)), jnp.ones((1, n)), dt=1.0)
    return jax.tree.map(lambda x: jnp.stack([x] * n_layers), sys)


def test_layer_mesh_picks_a_divisor():
    devices = [jax.devices()[0]] * 1
    assert lqo.layer_mesh(6, devices=devices).shape["layers"] == 1
    assert lqo.layer_mesh().axis_names == ("layers",)
    with pytest.raises(ValueError, match="num_layers"):
        lqo.layer_mesh(0)


def test_map_layers_matches_vmap_on_one_device():
    stack = _stack(3)
    got = jax.jit(lqo.map_layers(lqo.h2_norm))(stack)
    want = jax.vmap(lqo.h2_norm)(stack)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_shard_layers_errors():
    stack = _stack(3)
    with pytest.raises(ValueError, match="leading"):
        lqo.shard_layers({"a": jnp.ones((3, 2)), "b": jnp.ones((4, 2))})
    with pytest.raises(ValueError, match="no array leaves"):
        lqo.shard_layers({"a": 1.0})
    mesh = lqo.layer_mesh(axis="x")
    with pytest.raises(ValueError, match="axes"):
        lqo.shard_layers(stack, mesh)
    placed = lqo.shard_layers(stack)
    np.testing.assert_array_equal(placed.poles, stack.poles)
