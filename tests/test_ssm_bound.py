"""The compressed deep SSM's output-error bound: never violated, sound in floating point.

The property test draws many (model, reduction, input) cases per compiled call (one shape,
`jit` + `vmap`), so well over a thousand cases cost a few seconds.
"""

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jit_as_by_default

import jaxlqo.ssm as ssm
from jaxlqo.ssm._certify import bound_chain, gelu_slope_bound, pair_data, trajectory_of

H, N_STATES, L, CASES = 3, 5, 12, 64


def _tiny(seed: int, H: int = H, n: int = N_STATES, dtype=None):
    return ssm.DeepSSM(
        key=jax.random.key(seed), d_in=1, H=H, n=n, layers=2, n_classes=3, dtype=dtype
    )


def _random_case(key, scale, input_scale, rank, share):
    """One random (model, compressed, input): LayerNorms with random weights, a reduction to
    `rank` live states (the rest dead, so every rank has one shape) with every matrix
    perturbed by `scale`, and, unless `share`, perturbed D, LayerNorms, encoder and head."""
    keys = jax.random.split(key, 12)
    model = ssm.DeepSSM(key=keys[0], d_in=1, H=H, n=N_STATES, layers=2, n_classes=3)

    def noisy(k, x, size):
        return x + size * jax.random.normal(k, x.shape, x.dtype)

    layers, reduced = [], []
    for i, layer in enumerate(model.layers):
        k = jax.random.split(keys[1 + i], 8)
        norm = eqx.tree_at(
            lambda m: (m.weight, m.bias),
            layer.norm,
            (noisy(k[0], layer.norm.weight, 0.5), noisy(k[1], layer.norm.bias, 0.5)),
        )
        layer = eqx.tree_at(lambda m: m.norm, layer, norm)
        layers.append(layer)
        live = (jnp.arange(N_STATES, dtype=layer.B_re.dtype) < rank).astype(layer.B_re.dtype)
        rel = lambda kk, x: x * (1 + scale * jax.random.normal(kk, x.shape, x.dtype))  # noqa: E731
        small = eqx.tree_at(
            lambda m: (m.log_decay, m.angle, m.B_re, m.B_im, m.C_re, m.C_im, m.F_re, m.G_im),
            layer,
            (
                layer.log_decay + scale * jax.random.normal(k[2], (N_STATES,)),
                layer.angle + scale * jax.random.normal(k[3], (N_STATES,)),
                rel(k[4], layer.B_re) * live[:, None],
                rel(k[5], layer.B_im) * live[:, None],
                rel(k[6], layer.C_re) * live,
                layer.C_im * live,
                rel(k[7], layer.F_re) * live,
                layer.G_im * live,
            ),
        )
        other = 1.0 - share
        small = eqx.tree_at(
            lambda m: (m.D, m.norm.weight, m.norm.bias),
            small,
            (
                noisy(k[0], small.D, 0.05 * other),
                noisy(k[1], small.norm.weight, 0.05 * other),
                noisy(k[2], small.norm.bias, 0.05 * other),
            ),
        )
        reduced.append(small)
    model = model.with_layers(layers)
    compressed = model.with_layers(reduced)
    compressed = eqx.tree_at(
        lambda m: (m.encoder.weight, m.head.weight),
        compressed,
        (
            noisy(keys[5], model.encoder.weight, 0.05 * (1.0 - share)),
            noisy(keys[6], model.head.weight, 0.05 * (1.0 - share)),
        ),
    )
    u = input_scale * jax.random.normal(keys[7], (L, 1))
    u = u + input_scale * jax.random.normal(keys[8], (1, 1))  # a nonzero mean
    return model, compressed, u


@jax.jit
@jax.vmap
def _cases(key, scale, input_scale, rank, share):
    model, compressed, u = _random_case(key, scale, input_scale, rank, share)
    traj = trajectory_of(model, u)
    static = pair_data(model, compressed, L)
    measured = bound_chain(model, compressed, static, traj, u, a_priori=False)
    h2 = bound_chain(model, compressed, static, traj, u, a_priori=True)
    feats = compressed.features(u)
    diff = traj.features - feats
    logits = compressed.classify(feats)
    return {
        "error": jnp.max(jnp.linalg.norm(diff, axis=-1)),
        "steps_error": jnp.linalg.norm(diff, axis=-1),
        "steps": measured["steps"],
        "bound": measured["bound"],
        "h2_bound": h2["bound"],
        "pooled_error": jnp.linalg.norm(jnp.mean(diff, axis=0)),
        "pooled": measured["pooled"],
        "h2_pooled": h2["pooled"],
        "logit_error": jnp.abs(traj.logits - logits),
        "logits": measured["logits"],
        "h2_logits": h2["logits"],
        "certified": measured["certified"],
        "h2_certified": h2["certified"],
        "same": jnp.argmax(logits) == jnp.argmax(traj.logits),
        "trivial": measured["trivial"],
    }


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([0.0, 1e-9, 1e-4, 1e-2, 0.1, 0.5]),
    input_scale=st.sampled_from([0.01, 1.0, 10.0]),
    rank=st.integers(1, N_STATES),
    share=st.booleans(),
)
def test_bound_is_never_violated(seed, scale, input_scale, rank, share):
    """20 examples × 64 cases = 1280 random cases, one compiled function."""
    keys = jax.random.split(jax.random.key(seed), CASES)
    scales = jnp.full(CASES, scale) * jnp.linspace(0.5, 1.5, CASES)
    out = _cases(
        keys,
        scales,
        jnp.full(CASES, input_scale),
        jnp.full(CASES, float(rank)),
        jnp.full(CASES, float(share)),
    )
    out = jax.tree.map(np.asarray, out)
    for key in ("bound", "h2_bound", "pooled", "h2_pooled", "logits", "h2_logits"):
        assert np.all(np.isfinite(out[key])), key
    assert np.all(out["steps_error"] <= out["steps"]), "per-step bound violated"
    assert np.all(out["error"] <= out["bound"])
    assert np.all(out["error"] <= out["h2_bound"])
    assert np.all(out["bound"] <= out["trivial"])
    assert np.all(out["pooled_error"] <= out["pooled"])
    assert np.all(out["pooled_error"] <= out["h2_pooled"])
    assert np.all(out["logit_error"] <= out["logits"])
    assert np.all(out["logit_error"] <= out["h2_logits"])
    assert np.all(out["same"][out["certified"]]), "a certified prediction changed"
    assert np.all(out["same"][out["h2_certified"]])


def test_property_test_reaches_rounding_level_and_certifies():
    """The cases are not all vacuous: small perturbations give small bounds and certificates."""
    keys = jax.random.split(jax.random.key(1), CASES)
    ones = jnp.ones(CASES)
    out = _cases(keys, 1e-6 * ones, ones, N_STATES * ones, ones)
    assert np.median(out["bound"]) < 1e-3
    assert np.mean(out["certified"]) > 0.9
    assert np.all(out["error"] <= out["bound"])


def test_adversarial_inputs_stay_below_the_bound():
    """Gradient ascent on the inputs, maximising measured error / bound, never crosses 1."""
    model = _tiny(3)
    compressed, _ = ssm.compress(model, 2, method="bt")
    static = pair_data(model, compressed, L)

    def ratio(u):
        traj = trajectory_of(model, u)
        bound = bound_chain(model, compressed, static, traj, u, a_priori=False)
        diff = traj.features - compressed.features(u)
        error = jnp.max(jnp.sqrt(jnp.sum(diff**2, axis=-1) + 1e-30))
        return error / bound["bound"], (error, bound["bound"], bound["pooled"])

    step = jax.jit(jax.vmap(jax.value_and_grad(ratio, has_aux=True)))
    u = jnp.asarray(np.random.default_rng(0).standard_normal((8, L, 1)))
    worst = 0.0
    for _ in range(40):
        (r, (error, bound, _)), grad = step(u)
        assert np.all(np.asarray(error) <= np.asarray(bound)), (error, bound)
        worst = max(worst, float(jnp.max(r)))
        u = u + 0.1 * jnp.sign(grad)
    assert worst <= 1.0
    # the adversary found inputs with a large error relative to the bound
    assert worst > 0.5


def test_bound_holds_at_full_order_and_for_tiny_perturbations():
    """Issue 17: at full order the bound was 0.0 below a measured 1e-12."""
    model = _tiny(0, n=6)
    inputs = jnp.asarray(np.random.default_rng(0).standard_normal((16, L, 1)))
    full, _ = ssm.compress(model, 6, method="bt")
    nudged = model.with_layers(
        [eqx.tree_at(lambda m: m.angle, layer, layer.angle + 1e-12) for layer in model.layers]
    )
    for compressed in (full, nudged, model):
        error = ssm.output_error(model, compressed, inputs)
        for local in ("measured", "h2"):
            bound = ssm.output_error_bound(model, compressed, inputs, local=local)
            assert jnp.all(error <= bound), (local, error, bound)
            assert jnp.all(bound < 1e-6)
    assert jnp.all(ssm.output_error_bound(model, full, inputs) > 0)


def test_differences_outside_the_blocks_are_included():
    """Issue 17: a different D, LayerNorm or encoder gave 0.0; now they count."""
    model = _tiny(1)
    inputs = jnp.asarray(np.random.default_rng(1).standard_normal((6, L, 1)))
    layer = model.layers[0]
    changes = [
        model.with_layers([eqx.tree_at(lambda m: m.D, layer, layer.D + 0.1), model.layers[1]]),
        model.with_layers(
            [eqx.tree_at(lambda m: m.norm.weight, layer, 2 * layer.norm.weight), model.layers[1]]
        ),
        eqx.tree_at(lambda m: m.encoder.bias, model, model.encoder.bias + 0.1),
        eqx.tree_at(lambda m: m.head.bias, model, model.head.bias + 0.1),
    ]
    for changed in changes[:3]:
        error = ssm.output_error(model, changed, inputs)
        assert jnp.all(error > 1e-3)
        for local in ("measured", "h2"):
            assert jnp.all(error <= ssm.output_error_bound(model, changed, inputs, local=local))
    report = ssm.bound_report(model, changes[3], inputs)
    # Same body: the outputs agree up to rounding (the two models compile separately).
    assert report["output_error"] <= 1e-12
    assert report["logit_error"] <= report["logit_bound"]
    assert report["logit_bound"] >= 0.1 - 1e-9


def test_bound_errors_and_edge_cases():
    model = _tiny(2)
    inputs = jnp.zeros((3, L, 1))
    with pytest.raises(ValueError, match="horizon"):
        ssm.output_error_bound(model, model, inputs, horizon=L - 1)
    assert ssm.output_error_bound(model, model, inputs, horizon=10 * L).shape == (3,)
    with pytest.raises(ValueError, match="empty"):
        ssm.output_error_bound(model, model, jnp.zeros((0, L, 1)))
    with pytest.raises(ValueError, match="empty"):
        ssm.output_error_bound(model, model, jnp.zeros((2, 0, 1)))
    with pytest.raises(ValueError, match="shape"):
        ssm.output_error_bound(model, model, jnp.zeros((2, L, 3)))
    with pytest.raises(ValueError, match="local"):
        ssm.output_error_bound(model, model, inputs, local="nope")
    with pytest.raises(ValueError, match="same layers"):
        ssm.output_error_bound(model, _tiny(2, H=4), inputs)
    compressed, _ = ssm.compress(model, 2, method="bt")
    # zero inputs: the encoder bias still drives the blocks
    error = ssm.output_error(model, compressed, inputs)
    bound = ssm.output_error_bound(model, compressed, inputs)
    assert jnp.all(jnp.isfinite(bound)) and jnp.all(error <= bound)
    # huge inputs: no solve fails, the bound stays an upper bound
    huge = 1e100 * jnp.ones((2, L, 1))
    error = ssm.output_error(model, compressed, huge)
    bound = ssm.output_error_bound(model, compressed, huge)
    assert jnp.all(jnp.isfinite(error)) and jnp.all(error <= bound)


def test_float32_models():
    model = _tiny(4, dtype=jnp.float32)
    inputs = jnp.asarray(np.random.default_rng(4).standard_normal((8, L, 1)), jnp.float32)
    compressed, _ = ssm.compress(model, 3, method="bt-input", calibration=inputs)
    error = ssm.output_error(model, compressed, inputs)
    for local in ("measured", "h2"):
        bound = ssm.output_error_bound(model, compressed, inputs, local=local)
        assert bound.dtype == jnp.float32
        assert jnp.all(jnp.isfinite(bound)) and jnp.all(error <= bound)


def test_output_error_gradient_at_zero_error_is_finite():
    model = _tiny(5)
    u = jnp.ones((L, 1))
    # Compiled as users' programs are: the suite's fast options round the two forward passes
    # differently (1e-15), and the error is then not exactly zero.
    grad = jit_as_by_default(lambda m, c, x: jax.grad(lambda x: ssm.output_error(m, c, x))(x))
    grad = grad(model, model, u)
    assert jnp.all(jnp.isfinite(grad)) and jnp.all(grad == 0)


def test_trajectory_is_reused_and_report_is_consistent():
    model = _tiny(6)
    inputs = jnp.asarray(np.random.default_rng(6).standard_normal((10, L, 1)))
    labels = np.asarray(jnp.argmax(jax.vmap(model)(inputs), axis=-1))
    compressed, _ = ssm.compress(model, 3, method="bt")
    traj = ssm.full_trajectory(model, inputs)
    report = ssm.bound_report(model, compressed, inputs, labels, trajectory=traj)
    assert report == ssm.bound_report(model, compressed, inputs, labels)
    assert report["output_error"] <= report["bound"] <= report["trivial_bound"]
    assert report["pooled_error"] <= report["pooled_bound"]
    assert report["logit_error"] <= report["logit_bound"]
    assert report["output_error"] <= report["h2_bound"]
    # Without the a-priori form: every other field the same, `h2_bound` absent.
    lighter = ssm.bound_report(model, compressed, inputs, labels, trajectory=traj, a_priori=False)
    assert lighter == {k: v for k, v in report.items() if k != "h2_bound"}
    certified = ssm.certify(model, compressed, inputs, trajectory=traj)
    assert report["certified"] == pytest.approx(float(jnp.mean(certified)))
    assert report["certified_correct"] <= report["accuracy"] + 1e-12
    assert np.asarray(
        ssm.output_error_bound(model, compressed, inputs, trajectory=traj)
    ) == pytest.approx(np.asarray(ssm.output_error_bound(model, compressed, inputs)))
    with pytest.raises(ValueError, match="trajectory"):
        ssm.output_error_bound(model, compressed, inputs[:3], trajectory=traj)


def test_gelu_slope_bound_dominates_sampled_slopes():
    rng = np.random.default_rng(0)
    lo = jnp.asarray(rng.uniform(-6, 6, 500))
    hi = lo + jnp.asarray(rng.exponential(1.0, 500))
    bound = gelu_slope_bound(lo, hi)
    t = jnp.linspace(0, 1, 201)[:, None]
    x = lo + t * (hi - lo)
    slope = jax.vmap(jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False))))(x)
    assert jnp.all(jnp.abs(slope) <= bound)
    assert jnp.all(bound <= ssm.GELU_LIPSCHITZ * (1 + 1e-12))


def test_bound_weights_follow_the_a_priori_bound():
    model = _tiny(0)
    inputs = jnp.asarray(np.random.default_rng(0).standard_normal((8, L, 1)))
    alpha, beta = ssm.bound_weights(model, inputs)
    assert alpha.shape == beta.shape == (2,)
    assert jnp.all(alpha > 0) and jnp.all(beta >= 0)
    assert alpha[0] > alpha[1]
    with pytest.raises(ValueError, match="horizon"):
        ssm.bound_weights(model, inputs, horizon=L - 1)
