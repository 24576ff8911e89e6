"""Compress a deep SSM from a checkpoint, then check accuracy and the proven output-error bound.

The bundled sequential-digits classifier (2 layers, 48 complex states each, 98.3% test
accuracy) is saved to a checkpoint and loaded back, as a trained model of your own would be;
every layer is reduced to 16 states by balanced truncation, without retraining. Kept cheap: one
method, one rank, a few test sequences (`jaxlqo compress` runs the full sweep).
"""

import tempfile
from pathlib import Path

import jax
import numpy as np

import jaxlqo.ssm as ssm

jax.config.update("jax_enable_x64", True)  # the bundled weights are float64

model, meta = ssm.load_default_model()
with tempfile.TemporaryDirectory() as tmp:
    # Writes digits.eqx (the leaves) and digits.json (architecture + your metadata; the
    # metadata of a loaded checkpoint can be passed back as it is).
    path = ssm.save_checkpoint(Path(tmp) / "digits", model, meta)
    model, meta = ssm.load_checkpoint(path)
print("architecture:", meta["architecture"])

data = ssm.load_digits_sequences(seed=meta["split_seed"])  # scikit-learn's 8×8 digits
inputs, labels = data["test_inputs"][:64], data["test_labels"][:64]  # (N, L=64, 1), (N,)

small, info = ssm.compress(model, 16, method="bt")  # balanced truncation of every layer
print("states per layer:", info["ranks"])


def n_params(m):
    return sum(x.size for x in jax.tree.leaves(m))


removed = 1 - n_params(small) / n_params(model)
acc, acc_small = ssm.evaluate(model, inputs, labels), ssm.evaluate(small, inputs, labels)
print(f"parameters removed {removed:.1%}; accuracy {acc:.3f} -> {acc_small:.3f} on 64 sequences")

# The measured output error of the last layer and its proven upper bound, per sequence.
few = inputs[:8]
measured = np.asarray(ssm.output_error(model, small, few))
bound = np.asarray(ssm.output_error_bound(model, small, few))
print("measured max_k ‖s_k − ŝ_k‖:", measured.round(3))
print("bound:                     ", bound.round(3))
assert np.all(measured <= bound)  # the theorem, on these sequences
assert acc_small >= acc - 0.1  # BT at r = 16 keeps most of the accuracy
