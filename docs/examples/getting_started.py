import jax

import jaxlqo as lqo

jax.config.update("jax_enable_x64", True)  # float64 for control computations
A = 0.5 * jax.random.orthogonal(jax.random.key(0), 10)  # spectral radius 0.5: stable
B, C = jax.random.normal(jax.random.key(1), (10, 2)), jax.random.normal(jax.random.key(2), (1, 10))
M = jax.random.normal(jax.random.key(3), (1, 10, 10))  # one quadratic output xᵀ M x
fom = lqo.LQOSystem(A, B, C, M, dt=1.0)  # dt a number: discrete time
bt = lqo.balanced_truncation(fom, 4)  # LQO balanced truncation, r = 4: a Solution
rom, hsv = bt.value, bt.stats["hankel_singular_values"]
norm, err = lqo.h2_norm(fom), lqo.h2_error(fom, rom)  # ‖Σ‖_h2 and ‖Σ − Σ_r‖_h2
print(norm, err, hsv[:4])
grads = jax.jit(jax.grad(lambda r: lqo.h2_error(fom, r) ** 2))(rom)  # an LQOSystem of gradients
assert err < norm and grads.A.shape == (4, 4)
