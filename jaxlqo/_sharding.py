"""Layerwise work across devices with JAX's own sharding (a 1-D mesh over the layer axis).

A deep SSM's layers are independent systems: their Gramians, h2 errors and reductions are
embarrassingly parallel. Stack them (a pytree whose array leaves share a leading layer axis,
e.g. `jax.tree.map(lambda *x: jnp.stack(x), *layers)`) and either

- place the stack with [`jaxlqo.shard_layers`][]: `jax.jit(jax.vmap(f))` of sharded inputs is
  then partitioned by XLA (GSPMD) along the layer axis; or
- wrap the function with [`jaxlqo.map_layers`][]: `jax.shard_map` of `jax.vmap(f)`, so each
  device runs its own block of layers with no communication at all.

Both are plain JAX (`Mesh`, `NamedSharding`, `PartitionSpec`, `jax.shard_map`); nothing here
distributes work by hand. `map_layers` is the recommended form: with `throw=True` (the
default) every value check of a vmapped function is an `any` over the batch, which under
GSPMD becomes a (small) all-reduce across devices, while under `shard_map` each device checks
its own layers.

**Virtual CPU devices** (`XLA_FLAGS=--xla_force_host_platform_device_count=d`, the usual way
to try sharding on one machine): set the environment variable `NPROC` to at least `2 d`
before JAX starts. jaxlib's batched LAPACK kernels (e.g. the complex SVD behind
[`jaxlqo.hankel_singular_values`][]) split their batch over XLA's intra-op thread pool and
wait for the pieces; that pool has `max(cores, d)` threads (jax 0.9.2), so `d` devices each
running such a kernel can occupy every thread with a waiting kernel and deadlock (seen with
4 virtual devices on 2 cores). XLA sizes the pool from `NPROC` when it is set.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def layer_mesh(num_layers: int | None = None, *, devices=None, axis: str = "layers") -> Mesh:
    """A 1-D device mesh for layerwise work.

    **Arguments:**

    - `num_layers`: optional; if given, the mesh uses the largest number of devices that
        divides it (6 layers on 4 devices: 3 devices), so every device holds the same number
        of layers.
    - `devices`: keyword-only; the devices to use (default `jax.devices()`).
    - `axis`: keyword-only; the mesh axis name (default `"layers"`).

    **Returns:** a `jax.sharding.Mesh` of shape `(d,)` with axis name `axis`.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("layer_mesh: `devices` is empty; pass at least one device.")
    count = len(devices)
    if num_layers is not None:
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(
                f"layer_mesh: `num_layers` must be a positive int; got {num_layers!r}."
            )
        count = max(d for d in range(1, min(count, num_layers) + 1) if num_layers % d == 0)
    return Mesh(np.array(devices[:count]), (axis,))


def _num_layers(tree: Any, caller: str) -> int:
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_array(x)]
    if not leaves:
        raise ValueError(f"{caller}: the tree has no array leaves to shard.")
    sizes = {x.shape[0] if x.ndim else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"{caller}: every array leaf must have the same leading (layer) axis; got leading "
            f"sizes {sorted(sizes, key=str)}. Stack the layers with "
            "`jax.tree.map(lambda *x: jnp.stack(x), *layers)`."
        )
    size = sizes.pop()
    assert size is not None  # a leaf without a leading axis was rejected above
    return size


def _check_mesh(mesh: Mesh, axis: str, layers: int, caller: str) -> None:
    if axis not in mesh.axis_names:
        raise ValueError(f"{caller}: the mesh has axes {mesh.axis_names}, not {axis!r}.")
    size = mesh.shape[axis]
    if layers % size:
        raise ValueError(
            f"{caller}: {layers} layers cannot be split evenly over the {size} devices of mesh "
            f"axis {axis!r}; use `lqo.layer_mesh({layers})`, which picks a divisor, or pad the "
            "stack."
        )


def shard_layers(tree: Any, mesh: Mesh | None = None, *, axis: str = "layers") -> Any:
    """Place a stack of systems (leading layer axis) across the devices of a 1-D mesh.

    Every array leaf is `jax.device_put` with `NamedSharding(mesh, PartitionSpec(axis))`:
    layer `i` lives on device `i // (layers / devices)`. Non-array leaves (static fields such
    as `dt`) are left alone. Then e.g.

    ```python
    foms, roms = lqo.shard_layers(foms), lqo.shard_layers(roms)
    errors = jax.jit(jax.vmap(lqo.h2_error))(foms, roms)   # sharded over the layer axis
    ```

    runs partitioned by XLA along the layers and returns a sharded result.

    **Arguments:**

    - `tree`: a pytree (e.g. a stacked [`jaxlqo.DiagonalLQOSystem`][]) whose array leaves
        share their leading dimension (the number of layers).
    - `mesh`: a `jax.sharding.Mesh` with axis `axis`; default
        [`jaxlqo.layer_mesh`][]`(num_layers)` over all devices.
    - `axis`: keyword-only; the mesh axis to shard the layers over.

    **Returns:** the same pytree with its arrays placed on the mesh.
    """
    caller = "shard_layers"
    layers = _num_layers(tree, caller)
    mesh = layer_mesh(layers, axis=axis) if mesh is None else mesh
    _check_mesh(mesh, axis, layers, caller)
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(x, sharding) if eqx.is_array(x) else x, tree
    )


def map_layers(fn: Callable, mesh: Mesh | None = None, *, axis: str = "layers") -> Callable:
    """`jax.vmap(fn)` over a leading layer axis, each device running its own block of layers.

    Returns `jax.shard_map(jax.vmap(fn), mesh=mesh, in_specs=P(axis), out_specs=P(axis))`:
    every positional argument is split along its leading axis, each device vmaps `fn` over
    its layers, and the outputs are concatenated back along the layer axis (sharded). No
    communication happens between devices, including for value checks (`throw=True`).

    ```python
    step = jax.jit(lqo.map_layers(jax.value_and_grad(loss)))    # loss(rom, fom) of one layer
    values, grads = step(roms, foms)
    ```

    **Arguments:**

    - `fn`: a function of one layer; all its positional arguments are stacked pytrees with
        the same number of layers (use `functools.partial` for shared, unstacked arguments).
    - `mesh`: a 1-D `jax.sharding.Mesh`; default: [`jaxlqo.layer_mesh`][] over all devices,
        chosen at the first call from the number of layers.
    - `axis`: keyword-only; the mesh axis name.

    **Returns:** a function of the stacked arguments; wrap it in `jax.jit`.
    """
    spec = PartitionSpec(axis)
    batched = jax.vmap(fn)

    def mapped(*args):
        layers = _num_layers(args, "map_layers")
        chosen = layer_mesh(layers, axis=axis) if mesh is None else mesh
        _check_mesh(chosen, axis, layers, "map_layers")
        return jax.shard_map(batched, mesh=chosen, in_specs=spec, out_specs=spec, check_vma=False)(
            *args
        )

    return mapped
