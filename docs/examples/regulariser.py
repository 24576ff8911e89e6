"""An h2 error as a training regulariser: fit a diagonal SSM and keep it compressible.

The model is a complex-diagonal discrete-time system with stable poles
λ = exp(−exp(ν) + iθ). The loss is a data fit (the model's impulse response against a
teacher's) plus a penalty ‖Σ − Σ_R‖²_h2 between the model and its first `R` states, so the last
states are pushed to matter little: after training, truncating to `R` states costs little.
Gradients flow through `lqo.h2_error` (closed-form diagonal solves, implicit derivatives).
"""

import jax
import jax.numpy as jnp
import optax

import jaxlqo as lqo

jax.config.update("jax_enable_x64", True)

N, R, L = 8, 4, 64  # model states, states to keep, sequence length


def system(params, n=N):
    """The model as a `DiagonalLQOSystem`, keeping its first `n` states."""
    poles = jnp.exp(-jnp.exp(params["log_decay"]) + 1j * params["angle"])
    B = params["B_re"] + 1j * params["B_im"]
    C = params["C_re"] + 1j * params["C_im"]
    return lqo.DiagonalLQOSystem(poles[:n], B[:n], C[:, :n], dt=1.0)


def init(key):
    k = jax.random.split(key, 5)
    return {
        "log_decay": jnp.log(-jnp.log(jax.random.uniform(k[0], (N,), minval=0.5, maxval=0.9))),
        "angle": jax.random.uniform(k[1], (N,), maxval=jnp.pi / 4),
        "B_re": jax.random.normal(k[2], (N, 1)) / jnp.sqrt(N),
        "B_im": jnp.zeros((N, 1)),
        "C_re": jax.random.normal(k[3], (1, N)) / jnp.sqrt(N),
        "C_im": jax.random.normal(k[4], (1, N)) / jnp.sqrt(N),
    }


def impulse_response(sys):
    """h(k) = Re(C diag(λ)^k B), k < L (single input, single output)."""
    k = jnp.arange(L)
    return jnp.real((sys.C[0] * sys.B[:, 0]) @ sys.poles[:, None] ** k)


# The training data: a teacher system's impulse response.
teacher = system(init(jax.random.key(1)))
y = impulse_response(teacher)


def loss(params, weight):
    sys = system(params)
    fit = jnp.sum((impulse_response(sys) - y) ** 2)
    # The regulariser: how much the model loses when truncated to its first R states.
    tail = lqo.h2_error(sys, system(params, R)) ** 2
    return fit + weight * tail, (fit, tail)


@jax.jit
def step(params, state, weight):
    (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(params, weight)
    updates, state = optimiser.update(grads, state)
    return optax.apply_updates(params, updates), state, aux


optimiser = optax.adam(1e-2)
results = {}
for weight in (0.0, 1.0):  # without and with the regulariser
    params = init(jax.random.key(0))
    state = optimiser.init(params)
    _, (fit0, _) = jax.jit(loss)(params, weight)
    for _ in range(300):
        params, state, (fit, tail) = step(params, state, weight)
    results[weight] = (float(fit), float(tail))
    print(
        f"weight {weight}: data fit {float(fit0):.2e} -> {float(fit):.2e}, "
        f"truncation error² {float(tail):.2e}"
    )
    assert fit < 0.5 * fit0  # training fits the data

# The regulariser makes the model compressible to R states, at a small cost in fit.
assert results[1.0][1] < 0.5 * results[0.0][1]
