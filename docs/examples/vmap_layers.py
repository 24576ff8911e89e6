"""vmap across the layers of a model: one compiled call for every layer.

jaxlqo's functions are written for one system; a model's layers of equal shape are stacked into
one batched pytree and mapped with `jax.vmap`. Here: the two LQO blocks of the bundled
deep-SSM classifier (48 complex states, 16 inputs and outputs, a quadratic readout).
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxlqo as lqo
import jaxlqo.ssm as ssm

jax.config.update("jax_enable_x64", True)  # the bundled weights are float64

model, _ = ssm.load_default_model()
systems = [layer.system() for layer in model.layers]  # DiagonalLQOSystem, one per layer

# Stack the layers leaf by leaf: one DiagonalLQOSystem whose arrays have a leading layer axis.
stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *systems)
print("stacked poles:", stacked.poles.shape)  # (layers, n)

# The h2 norm of every layer over the 64 steps the model sees, in one compiled call.
horizon = 64
norms = jax.jit(jax.vmap(lambda s: lqo.h2_norm(s, horizon=horizon)))(stacked)
print("h2 norms per layer:", np.asarray(norms))

# Modal truncation of every layer to its 16 most dominant poles.
roms = jax.jit(jax.vmap(lambda s: lqo.modal_truncation(s, 16).value))(stacked)
print("reduced poles:", roms.poles.shape)  # (layers, 16)


# The squared h2 error of every layer and its gradient with respect to the reduced layer
# (e.g. to fine-tune all reduced layers at once).
def squared_error(rom, fom):
    return lqo.h2_error(fom, rom, horizon=horizon) ** 2


errors2, grads = jax.jit(jax.vmap(jax.value_and_grad(squared_error)))(roms, stacked)
print("relative h2 errors at r = 16:", np.asarray(jnp.sqrt(errors2) / norms))
print("gradient w.r.t. the reduced poles:", grads.poles.shape)

# vmap agrees with a loop over the layers.
norm_one = jax.jit(lambda s: lqo.h2_norm(s, horizon=horizon))
for i, sys in enumerate(systems):
    np.testing.assert_allclose(norms[i], norm_one(sys), rtol=1e-12)
assert bool(jnp.all(jnp.sqrt(errors2) < norms))  # the reductions keep most of each layer
assert bool(jnp.all(jnp.isfinite(grads.poles)))

# Unstack one reduced layer when needed.
first = jax.tree.map(lambda leaf: leaf[0], roms)
assert isinstance(first, lqo.DiagonalLQOSystem) and first.n == 16
