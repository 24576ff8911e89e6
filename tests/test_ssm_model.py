"""`jaxlqo.ssm` layers and models against NumPy loops; checkpoints; the bundled model."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo
from jaxlqo import ssm

# --- an independent reference: one layer as a plain NumPy loop ------------------------------


def _np_gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def reference_layer(layer: ssm.SSMLayer, s) -> np.ndarray:
    """`x_{k+1} = λ x_k + B s_k`, `y = Re(Cx) + Ds + Σ Re(F x) Re(G x)`, post-norm residual."""
    nu, theta = np.asarray(layer.log_decay), np.asarray(layer.angle)
    lam = np.exp(-np.exp(nu)) * np.exp(1j * theta)
    B = np.asarray(layer.B_re) + 1j * np.asarray(layer.B_im)
    C = np.asarray(layer.C_re) + 1j * np.asarray(layer.C_im)
    D = np.asarray(layer.D)
    F = G = None
    if layer.F_re is not None:
        F = np.asarray(layer.F_re) + 1j * np.asarray(layer.F_im)
        G = np.asarray(layer.G_re) + 1j * np.asarray(layer.G_im)
    w, b, eps = np.asarray(layer.norm.weight), np.asarray(layer.norm.bias), layer.norm.eps
    x = np.zeros(len(lam), complex)
    out = []
    for s_k in np.asarray(s):
        y = (C @ x).real + D @ s_k
        if F is not None:
            for j in range(len(y)):
                for l in range(F.shape[1]):
                    y[j] += (F[j, l] @ x).real * (G[j, l] @ x).real
        v = s_k + _np_gelu(y)
        out.append((v - v.mean()) / np.sqrt(v.var() + eps) * w + b)
        x = lam * x + B @ s_k
    return np.array(out)


@eqx.filter_jit
def apply(f, *args):
    """`f(*args)` compiled (eager op-by-op dispatch of a whole model compiles every op)."""
    return f(*args)


@eqx.filter_jit
def apply_batch(f, batch):
    return jax.vmap(f)(batch)


def _tiny_model(key, **kwargs):
    kw = dict(d_in=2, H=3, n=5, layers=2, n_classes=4, quad_rank=2)
    kw.update(kwargs)
    return ssm.DeepSSM(key=key, **kw)


def _randomise_norms(model, key):
    """Non-trivial LayerNorm weights and biases, so the reference really tests them."""
    layers = []
    for layer, k in zip(model.layers, jax.random.split(key, len(model.layers)), strict=True):
        kw, kb = jax.random.split(k)
        H = layer.H
        layers.append(
            eqx.tree_at(
                lambda l: (l.norm.weight, l.norm.bias),
                layer,
                (1.0 + 0.3 * jax.random.normal(kw, (H,)), 0.2 * jax.random.normal(kb, (H,))),
            )
        )
    return model.with_layers(layers)


# --- the layer ----------------------------------------------------------------------------


def test_gelu_lipschitz_constant():
    x = jnp.linspace(-8.0, 8.0, 400_001)
    slope = jax.vmap(jax.grad(ssm.gelu))(x)
    assert abs(float(jnp.max(jnp.abs(slope))) - ssm.GELU_LIPSCHITZ) < 1e-9
    assert abs(ssm.GELU_LIPSCHITZ - 1.1289) < 1e-4
    np.testing.assert_allclose(ssm.gelu(x[::1000]), _np_gelu(np.asarray(x[::1000])), atol=1e-14)


@pytest.mark.parametrize("quad_rank", [0, 2])
def test_layer_matches_numpy_loop(getkey, quad_rank):
    model = _randomise_norms(_tiny_model(getkey(), quad_rank=quad_rank), getkey())
    layer = model.layers[0]
    s = jax.random.normal(getkey(), (9, layer.H))
    expected = reference_layer(layer, s)
    np.testing.assert_allclose(apply(layer, s), expected, rtol=0, atol=1e-12)
    batch = jax.random.normal(getkey(), (3, 9, layer.H))
    np.testing.assert_allclose(
        apply_batch(layer, batch),
        np.stack([reference_layer(layer, b) for b in batch]),
        rtol=0,
        atol=1e-12,
    )


def test_layer_system_shapes_and_stability(getkey):
    layer = ssm.SSMLayer(key=getkey(), H=4, n=7, quad_rank=2)
    sys = layer.system()
    assert isinstance(sys, lqo.DiagonalLQOSystem) and sys.dt == 1.0
    assert sys.poles.shape == (7,) and sys.B.shape == (7, 4) and sys.C.shape == (4, 7)
    assert sys.D.shape == (4, 4) and sys.F.shape == (4, 2, 7) and sys.G.shape == (4, 2, 7)
    modulus = np.abs(np.asarray(sys.poles))
    assert np.all((modulus >= 0.9 - 1e-12) & (modulus <= 0.999 + 1e-12))
    assert ssm.SSMLayer(key=getkey(), H=4, n=7, quad_rank=0).system().F is None


def test_key_is_the_last_keyword_only_argument(getkey):
    # As in equinox.nn: `key` is keyword-only, so a positional key is a clear TypeError.
    with pytest.raises(TypeError, match="positional"):
        ssm.SSMLayer(getkey(), H=4, n=7)
    with pytest.raises(TypeError, match="positional"):
        ssm.DeepSSM(getkey(), d_in=1, H=3, n=2, layers=1, n_classes=2)
    with pytest.raises(TypeError, match="key"):
        ssm.SSMLayer(H=4, n=7)
    one = ssm.SSMLayer(H=4, n=7, key=jax.random.key(1))
    two = ssm.SSMLayer(key=jax.random.key(1), H=4, n=7)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True)
    )


def test_from_system_round_trip(getkey):
    layer = _randomise_norms(_tiny_model(getkey()), getkey()).layers[1]
    again = ssm.SSMLayer.from_system(layer.system(), layer.norm)
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(layer)
    for a, b in zip(
        jax.tree_util.tree_leaves(layer), jax.tree_util.tree_leaves(again), strict=True
    ):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    s = jax.random.normal(getkey(), (9, layer.H))
    np.testing.assert_allclose(apply(again, s), apply(layer, s), atol=1e-12)


def test_from_system_reduced_and_fresh_norm():
    # A hand-made 2-state block (fewer states than the layer it may replace).
    poles = jnp.array([0.5 + 0.2j, -0.3 + 0.0j])
    B = jnp.array([[1.0, 0.5j, 0.0], [0.2, 0.0, 1.0 - 1j]])
    C = jnp.array([[1.0, 1j], [0.0, 2.0], [0.5, -0.5j]])
    sys = lqo.DiagonalLQOSystem(poles, B, C, jnp.eye(3), dt=1.0)
    layer = ssm.SSMLayer.from_system(sys)
    assert layer.n == 2 and layer.quad_rank == 0 and layer.H == 3
    np.testing.assert_allclose(layer.poles, poles, atol=1e-15)
    np.testing.assert_array_equal(layer.norm.weight, np.ones(3))
    s = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
    # Eager here (the other tests compile): the same answer either way.
    np.testing.assert_allclose(layer(s), reference_layer(layer, s), atol=1e-12)


def test_from_system_rejects_bad_systems():
    B, C = jnp.ones((1, 2)), jnp.ones((2, 1))
    with pytest.raises(Exception, match=r"\|λ\| < 1"):
        ssm.SSMLayer.from_system(lqo.DiagonalLQOSystem(jnp.array([1.2 + 0j]), B, C, dt=1.0))
    with pytest.raises(ValueError, match="dt=1.0"):
        ssm.SSMLayer.from_system(lqo.DiagonalLQOSystem(jnp.array([-0.5 + 0j]), B, C, dt=None))
    with pytest.raises(ValueError, match="as many outputs as inputs"):
        ssm.SSMLayer.from_system(
            lqo.DiagonalLQOSystem(jnp.array([0.5 + 0j]), B, jnp.ones((3, 1)), dt=1.0)
        )


# --- the model ----------------------------------------------------------------------------


def test_layer_inputs_and_features_consistent(getkey):
    model = _tiny_model(getkey())
    u = jax.random.normal(getkey(), (7, model.d_in))
    inputs = apply(model.layer_inputs, u)
    assert len(inputs) == 2 and all(s.shape == (7, model.H) for s in inputs)
    encoded = u @ model.encoder.weight.T + model.encoder.bias
    np.testing.assert_allclose(inputs[0], encoded, atol=1e-15)
    np.testing.assert_allclose(inputs[1], reference_layer(model.layers[0], inputs[0]), atol=1e-12)
    features = apply(model.features, u)
    np.testing.assert_allclose(features, reference_layer(model.layers[1], inputs[1]), atol=1e-12)
    logits = apply(model, u)
    expected = model.head.weight @ np.mean(features, axis=0) + model.head.bias
    np.testing.assert_allclose(logits, expected, atol=1e-12)


def test_parameter_count(getkey):
    d_in, H, n, xi, c, q = 2, 3, 5, 2, 4, 2
    model = _tiny_model(getkey())
    ssm_part = xi * (2 * n + 2 * n * H + 2 * H * n + 2 * 2 * H * q * n)  # ν, θ, B, C, F, G
    other = xi * (H * H + 2 * H) + (d_in * H + H) + (H * c + c)  # D, norm, encoder, head
    assert model.trainable_parameter_count() == ssm_part + other
    counts = model.parameter_counts()
    assert counts["ssm"] == ssm_part and counts["total"] == ssm_part + other
    # Complex leaves count twice; integer and static leaves never.
    assert ssm._model._count((jnp.ones(3, jnp.complex128), jnp.ones(4, jnp.int32), 2.0)) == 6
    # Per-layer state counts (a compressed model).
    smaller = _tiny_model(getkey(), n=[5, 2])
    assert smaller.layers[1].n == 2 and smaller.architecture()["n"] == [5, 2]


def test_with_layers_replaces_only_layers(getkey):
    model = _tiny_model(getkey())
    reduced = ssm.SSMLayer.from_system(
        lqo.DiagonalLQOSystem(
            model.layers[0].system().poles[:2],
            model.layers[0].system().B[:2],
            model.layers[0].system().C[:, :2],
            model.layers[0].D,
            dt=1.0,
        ),
        model.layers[0].norm,
    )
    new = model.with_layers([reduced, model.layers[1]])
    assert new.layers[0].n == 2 and model.layers[0].n == 5
    assert eqx.tree_equal(new.encoder, model.encoder) and eqx.tree_equal(new.head, model.head)
    assert eqx.tree_equal(new.layers[1], model.layers[1])
    with pytest.raises(ValueError, match="expected 2 layers"):
        model.with_layers([reduced])


def test_float32_model(getkey):
    model = _tiny_model(getkey(), dtype=jnp.float32)
    u = np.ones((5, 2))  # float64 input is cast to the model's dtype
    assert apply(model, u).dtype == jnp.float32
    assert model.layers[0].system().poles.dtype == jnp.complex64


def test_shape_errors(getkey):
    model = _tiny_model(getkey())
    with pytest.raises(ValueError, match=r"\(L, d_in\)"):
        model(jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="jax.vmap"):
        model(jnp.ones((2, 5, 2)))


# --- training and checkpoints -------------------------------------------------------------


def test_checkpoint_round_trip(getkey, tmp_path):
    model = _randomise_norms(_tiny_model(getkey(), n=[5, 3], quad_rank=[1, 0]), getkey())
    u = jax.random.normal(getkey(), (6, 2))
    base = ssm.save_checkpoint(tmp_path / "sub" / "m.eqx", model, {"test_accuracy": 0.5})
    assert (tmp_path / "sub" / "m.json").is_file() and base == tmp_path / "sub" / "m"
    loaded, meta = ssm.load_checkpoint(tmp_path / "sub" / "m")
    assert meta["test_accuracy"] == 0.5 and meta["architecture"]["n"] == [5, 3]
    assert jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(model)
    np.testing.assert_array_equal(apply(loaded, u), apply(model, u))
    loaded32, _ = ssm.load_checkpoint(base, dtype="float32")
    assert apply(loaded32, u).dtype == jnp.float32
    np.testing.assert_allclose(apply(loaded32, u), apply(model, u), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="'format' is reserved"):
        ssm.save_checkpoint(tmp_path / "x", model, {"format": "other/1"})


def test_checkpoint_metadata_round_trips(getkey, tmp_path):
    # load → save(metadata as loaded) → load: the metadata comes back unchanged.
    model = _tiny_model(getkey(), n=[5, 3], quad_rank=[1, 0])
    ssm.save_checkpoint(tmp_path / "a", model, {"test_accuracy": 0.5, "seed": 3})
    loaded, meta = ssm.load_checkpoint(tmp_path / "a")
    assert {"format", "architecture", "seed"} <= set(meta)  # reserved keys come back too
    ssm.save_checkpoint(tmp_path / "b", loaded, meta)
    again, meta_again = ssm.load_checkpoint(tmp_path / "b")
    assert meta_again == meta
    u = jax.random.normal(getkey(), (6, 2))
    np.testing.assert_array_equal(apply(again, u), apply(model, u))
    # A stale architecture (e.g. of the model before compression) is replaced by the model's.
    smaller = _tiny_model(getkey(), n=[2, 1], quad_rank=[1, 0])
    ssm.save_checkpoint(tmp_path / "c", smaller, meta)
    _, meta_small = ssm.load_checkpoint(tmp_path / "c")
    assert meta_small["architecture"]["n"] == [2, 1] and meta_small["seed"] == 3


def test_one_training_step_decreases_loss(getkey):
    model = _tiny_model(getkey())
    rng = np.random.default_rng(0)
    data = {"train_inputs": rng.normal(size=(8, 6, 2)), "train_labels": rng.integers(0, 4, 8)}
    loss = eqx.filter_jit(ssm.cross_entropy)
    before = float(loss(model, jnp.asarray(data["train_inputs"]), data["train_labels"]))
    # One step (a single full batch), at a constant learning rate after the 1-step warm-up.
    trained, history = ssm.train(
        model, data, epochs=2, batch_size=8, learning_rate=1e-2, progress=False
    )
    after = float(loss(trained, jnp.asarray(data["train_inputs"]), data["train_labels"]))
    assert len(history["loss"]) == 2 and history["test_accuracy"] is None
    assert after < before


def test_evaluate_counts_correct_predictions(getkey):
    model = _tiny_model(getkey())
    u = jax.random.normal(getkey(), (10, 4, 2))
    predicted = np.asarray(jnp.argmax(apply_batch(model, u), axis=-1))
    np.testing.assert_array_equal(ssm.predict(model, u, batch_size=5), predicted)
    labels = predicted.copy()
    labels[:3] = (labels[:3] + 1) % 4
    assert ssm.evaluate(model, u, labels, batch_size=5) == 0.7


# --- data and the bundled model -----------------------------------------------------------


def test_digits_split():
    pytest.importorskip("sklearn")
    data = ssm.load_digits_sequences(0)
    assert data["train_inputs"].shape == (1438, 64, 1) and data["test_inputs"].shape == (359, 64, 1)
    assert 0.0 <= data["train_inputs"].min() and data["train_inputs"].max() <= 1.0
    counts = np.bincount(data["test_labels"], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~20% of every digit
    again = ssm.load_digits_sequences(0)
    np.testing.assert_array_equal(again["test_labels"], data["test_labels"])
    other = ssm.load_digits_sequences(1)
    assert not np.array_equal(other["test_inputs"], data["test_inputs"])


def test_fashion_mnist_missing_files_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        ssm.load_fashion_mnist_sequences(root=tmp_path)


def test_fashion_mnist_if_installed():
    if not (ssm._data.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    data = ssm.load_fashion_mnist_sequences(pool=2, max_train=20, max_test=10)
    assert data["train_inputs"].shape == (20, 196, 1) and data["test_inputs"].shape == (10, 196, 1)
    assert 0.0 <= data["test_inputs"].min() and data["test_inputs"].max() <= 1.0
    assert set(np.unique(data["train_labels"])) <= set(range(10))


def test_bundled_model_reproduces_recorded_accuracy():
    pytest.importorskip("sklearn")
    model, meta = ssm.load_default_model()
    assert model.trainable_parameter_count() == meta["parameter_counts"]["total"]
    data = ssm.load_digits_sequences(meta["split_seed"])
    accuracy = ssm.evaluate(model, data["test_inputs"], data["test_labels"])
    assert accuracy == meta["test_accuracy"]
    assert accuracy >= 0.95
    json.dumps(meta)  # plain JSON
