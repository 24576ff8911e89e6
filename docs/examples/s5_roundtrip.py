"""Compress a trained S5 model's parameters and hand them back to S5.

A stand-in for your model: the parameter tree of an S5 classifier with two bidirectional layers
(`C1`, `C2`, as S5's `bidirectional=True` names them), with `P = 16` eigenvalues and width
`H = 8`. In practice `params` is your checkpoint's flax `params` tree, or the path of an
`.npz` file written with `np.savez(path, **flat_params)`.
"""

import jax
import numpy as np

import jaxlqo.ssm as ssm

jax.config.update("jax_enable_x64", True)  # optional; round trips are exact to 1e-10 in float64

rng = np.random.default_rng(0)
P, H = 16, 8
settings = dict(conj_sym=True, discretization="zoh", step_rescale=1.0)  # your S5 config


def trained_s5_layer():
    step = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (P, 1)))
    return {
        "Lambda_re": -0.5 * np.ones(P),
        "Lambda_im": np.pi * np.arange(P),
        "B": rng.normal(size=(P, H, 2)) / np.sqrt(H),
        "C1": rng.normal(size=(H, P, 2)) / np.sqrt(P),
        "C2": rng.normal(size=(H, P, 2)) / np.sqrt(P),
        "D": rng.normal(size=H),
        "log_step": np.log(step),
    }


params = {
    "encoder": {
        "encoder": {"kernel": rng.normal(size=(1, H)), "bias": np.zeros(H)},
        "layers_0": {"seq": trained_s5_layer(), "norm": {"scale": np.ones(H), "bias": np.zeros(H)}},
        "layers_1": {"seq": trained_s5_layer(), "norm": {"scale": np.ones(H), "bias": np.zeros(H)}},
    },
    "decoder": {"kernel": rng.normal(size=(H, 10)), "bias": np.zeros(10)},
}

# 1. Data-free: balanced truncation of every SSM layer to P' = 6 states.
small, info = ssm.compress_s5(params, 6, method="bt", **settings)
for prefix in info["layers"]:
    relative = info["h2_errors"][prefix] / info["h2_norms"][prefix]
    print(f"{prefix}: {P} -> {info['ranks'][prefix]} states, relative h2 error {relative:.2e}")
    assert info["bidirectional"][prefix] and relative < 0.5

# 2. Input-aware: weight each layer by the second moment of the inputs its SSM sees. Record
# them with your own model on unlabelled sequences; here a stand-in forward pass (encoder, SSM,
# tanh) does it, with jaxlqo's exact simulation of each imported S5 layer.
calibration = rng.normal(size=(16, 64, 1))  # (N, L, d_in)
encoder = params["encoder"]["encoder"]
first = calibration @ encoder["kernel"] + encoder["bias"]  # input of layers_0's SSM
layer_0 = ssm.system_from_s5(params, prefix="encoder/layers_0/seq/", **settings)
second = np.tanh(np.stack([ssm.simulate_bidirectional(layer_0, u) for u in first]))
moments = [ssm.input_second_moment(first), ssm.input_second_moment(second)]
aware, aware_info = ssm.compress_s5(
    params, 6, method="bt-input", second_moments=moments, **settings
)

# 3. The new tree has S5's layout with P' = 6; every other leaf is passed through.
new_layer = aware["encoder"]["layers_1"]["seq"]
print({k: v.shape for k, v in new_layer.items()})
assert new_layer["C1"].shape == (H, 6, 2) and new_layer["log_step"].shape == (6, 1)
assert aware["decoder"]["kernel"] is params["decoder"]["kernel"]

# S5's forward pass on the new parameters is the compressed layer jaxlqo reports
# (tests/test_ssm_roundtrip.py checks this against an independent S5 forward pass).
u = second[0]
reloaded = ssm.system_from_s5(aware, prefix="encoder/layers_1/seq/", **settings)
expected = ssm.simulate_bidirectional(aware_info["systems"]["encoder/layers_1/seq/"], u)
np.testing.assert_allclose(ssm.simulate_bidirectional(reloaded, u), expected, atol=1e-10)
full = ssm.system_from_s5(params, prefix="encoder/layers_1/seq/", **settings)
error = np.max(np.abs(ssm.simulate_bidirectional(full, u) - expected))
print(f"layers_1 on a calibration sequence: max |y - y'| = {error:.3f}")

# Save it with your checkpointer (or flax.traverse_util.flatten_dict(aware, sep="/") and
# np.savez) and build the S5 model with P = 6 (S5's ssm_size_base = 12 with conj_sym).
