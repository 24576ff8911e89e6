"""Deep-SSM compression: every method runs, and the output-error bound is never violated."""

import json

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jit_as_by_default

import jaxlqo as lqo
import jaxlqo.ssm as ssm


def _tiny_model(seed: int, H: int = 3, n: int = 6, layers: int = 2):
    return ssm.DeepSSM(key=jax.random.key(seed), d_in=1, H=H, n=n, layers=layers, n_classes=3)


def _random_reduction(
    system: lqo.DiagonalLQOSystem, r: int, scale: float, rng
) -> lqo.DiagonalLQOSystem:
    """Truncate to `r` states and perturb every matrix: an arbitrary (stable) reduced block."""

    def noise(x):
        z = rng.standard_normal(x.shape) + (
            1j * rng.standard_normal(x.shape) if jnp.iscomplexobj(x) else 0
        )
        return x + scale * jnp.asarray(z, x.dtype) * (jnp.abs(x) + 1e-3).astype(x.dtype)

    shrink = np.exp(-scale * rng.uniform(0, 1, r))
    poles = system.poles[:r] * jnp.asarray(shrink, system.poles.dtype)
    f = None if system.F is None else noise(system.F[..., :r])
    g = None if system.G is None else noise(system.G[..., :r])
    return lqo.DiagonalLQOSystem(
        poles, noise(system.B[:r]), noise(system.C[:, :r]), system.D, F=f, G=g, dt=1.0
    )


@hypothesis.settings(max_examples=8, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**16),
    ranks=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    scale=st.sampled_from([0.0, 0.01, 0.1, 1.0]),
    input_scale=st.sampled_from([0.1, 1.0, 5.0]),
)
def test_bound_is_never_violated(seed, ranks, scale, input_scale):
    model = _tiny_model(seed % 7)
    rng = np.random.default_rng(seed)
    layers = [
        ssm.SSMLayer.from_system(_random_reduction(layer.system(), r, scale, rng), layer.norm)
        for layer, r in zip(model.layers, ranks, strict=True)
    ]
    compressed = model.with_layers(layers)
    inputs = jnp.asarray(input_scale * rng.standard_normal((6, 10, 1)))
    bound = ssm.output_error_bound(model, compressed, inputs)
    error = ssm.output_error(model, compressed, inputs)
    assert bound.shape == error.shape == (6,)
    assert jnp.all(error <= bound * (1 + 1e-9) + 1e-12), (error, bound)


def test_bound_is_zero_without_compression_and_tight_order():
    model = _tiny_model(0)
    inputs = jnp.asarray(np.random.default_rng(0).standard_normal((4, 10, 1)))
    bound = ssm.output_error_bound(model, model, inputs)
    assert jnp.all(bound <= 1e-6), bound
    # Exactly zero when compiled as users' programs are (see test_ssm_bound.py).
    assert jnp.all(jit_as_by_default(ssm.output_error)(model, model, inputs) == 0)


def test_bound_weights_favour_shallow_layers():
    model = _tiny_model(1, layers=3)
    inputs = jnp.asarray(np.random.default_rng(1).standard_normal((8, 12, 1)))
    alpha, beta = ssm.bound_weights(model, inputs)
    assert alpha.shape == beta.shape == (3,)
    assert jnp.all(jnp.isfinite(alpha)) and jnp.all(alpha > 0) and jnp.all(beta > 0)
    assert alpha[0] > alpha[-1]


def test_bound_matches_first_order_weights_for_small_errors():
    """For a tiny perturbation the bound is ≈ Σ α δ₁ + β δ₂ (its first-order form)."""
    model = _tiny_model(2)
    rng = np.random.default_rng(2)
    inputs = jnp.asarray(rng.standard_normal((5, 10, 1)))
    layers = [
        ssm.SSMLayer.from_system(_random_reduction(layer.system(), layer.n, 1e-7, rng), layer.norm)
        for layer in model.layers
    ]
    compressed = model.with_layers(layers)
    alpha, beta = ssm.bound_weights(model, inputs)
    q = [
        ssm.layer_quantities(a.system(), b.system(), 10)
        for a, b in zip(model.layers, compressed.layers, strict=True)
    ]
    first_order = sum(
        a * x.linear_error + b * x.quadratic_error for a, b, x in zip(alpha, beta, q, strict=True)
    )
    bound = jnp.mean(ssm.output_error_bound(model, compressed, inputs, local="h2"))
    # The a-priori form charges the linear part its generalised-h2 gain (≤ δ₁) and the gated
    # readout a product estimate (within a small factor of δ₂): first order, same weights.
    assert 0.05 * float(first_order) < bound < 3 * float(first_order)
    # The measured-defect form can only be tighter here.
    measured = ssm.output_error_bound(model, compressed, inputs)
    assert jnp.all(measured <= ssm.output_error_bound(model, compressed, inputs, local="h2"))


@pytest.mark.parametrize("method", ssm.METHODS)
def test_every_method_gives_a_model_of_the_requested_rank(method):
    model = _tiny_model(3, n=8)
    inputs = jnp.asarray(np.random.default_rng(3).standard_normal((16, 10, 1)))
    compressed, info = ssm.compress(model, (3, 2), method=method, calibration=inputs, max_steps=5)
    assert info["ranks"] == (3, 2)
    if compressed is None:  # only the unconstrained TLH2 baseline may come out unstable
        assert method == "tlh2" and not info["stable"]
        return
    assert [layer.n for layer in compressed.layers] == [3, 2]
    assert compressed.trainable_parameter_count() < model.trainable_parameter_count()
    error = ssm.output_error(model, compressed, inputs)
    assert jnp.all(error <= ssm.output_error_bound(model, compressed, inputs) * (1 + 1e-9))


def test_precomputed_bound_weights_give_the_same_compression():
    model = _tiny_model(4, n=8)
    inputs = jnp.asarray(np.random.default_rng(4).standard_normal((16, 10, 1)))
    weights = ssm.bound_weights(model, inputs)
    for input_aware in (False, True):
        computed, _ = ssm.compress(
            model,
            3,
            method=ssm.BoundWeighted(input_aware=input_aware),
            calibration=inputs,
            max_steps=4,
        )
        given, _ = ssm.compress(
            model,
            3,
            method=ssm.BoundWeighted(input_aware=input_aware, weights=weights),
            calibration=inputs,
            max_steps=4,
        )
        assert computed is not None and given is not None
        assert bool(eqx.tree_equal(computed, given))
    # The given weights are the ones used: others give another compression.
    other = ssm.BoundWeighted(input_aware=True, weights=(jnp.ones(2), jnp.zeros(2)))
    changed, _ = ssm.compress(model, 3, method=other, calibration=inputs, max_steps=4)
    assert not bool(eqx.tree_equal(changed, given))
    with pytest.raises(ValueError, match="one weight per layer"):
        wrong = ssm.BoundWeighted(weights=(weights[0][:1], weights[1][:1]))
        ssm.compress(model, 3, method=wrong, calibration=inputs, max_steps=1)


def test_padding_with_dead_states_changes_nothing():
    model = _tiny_model(5, n=8)
    inputs = jnp.asarray(np.random.default_rng(5).standard_normal((4, 10, 1)))
    compressed, _ = ssm.compress(model, (3, 2), method="bt")
    padded = ssm.pad_layers(compressed, 6)
    assert [layer.n for layer in padded.layers] == [6, 6]
    np.testing.assert_allclose(
        jax.vmap(padded)(inputs), jax.vmap(compressed)(inputs), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        ssm.output_error_bound(model, padded, inputs),
        ssm.output_error_bound(model, compressed, inputs),
        rtol=1e-9,
    )
    with pytest.raises(ValueError, match="cannot pad"):
        ssm.pad_layers(model, 4)


def test_output_matching_improves_its_start_on_the_calibration_data():
    """`match` refines input-weighted BT; each layer's objective must go down, and the
    refined model must be closer to the full one on the calibration data than BT-input."""
    model = _tiny_model(6, n=8)
    rng = np.random.default_rng(6)
    calibration = jnp.asarray(rng.standard_normal((32, 12, 1)))
    matched, info = ssm.compress(model, 2, method="match", calibration=calibration, max_steps=30)
    start, _ = ssm.compress(model, 2, method="bt-input", calibration=calibration)
    for layer in info["layers"]:
        assert layer["objective"] < layer["initial_objective"]
    assert all(bool(jnp.all(jnp.abs(layer.poles) < 1)) for layer in matched.layers)

    def logit_error(m):
        return float(jnp.mean((jax.vmap(m)(calibration) - jax.vmap(model)(calibration)) ** 2))

    assert logit_error(matched) < logit_error(start)


@pytest.mark.parametrize("method", ["tlh2", "h2"])
def test_dead_state_slots_do_not_change_the_optimised_block(method):
    """Optimising with extra dead slots (one compile per sweep) gives the same block."""
    layer = _tiny_model(8, n=8).layers[0]
    plain = ssm.compress_layer(layer.system(), 3, method=method, horizon=10, max_steps=20).value
    slotted = ssm.compress_layer(
        layer.system(), 3, method=method, horizon=10, max_steps=20, slots=6
    ).value
    assert slotted.n == 3
    np.testing.assert_allclose(slotted.poles, plain.poles, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(slotted.C, plain.C, rtol=1e-6, atol=1e-8)


def test_allocate_ranks_spends_the_budget_where_the_estimate_drops_most():
    model = _tiny_model(9, n=6)
    rng = np.random.default_rng(9)
    calibration = jnp.asarray(rng.standard_normal((16, 10, 1)))
    ranks = ssm.allocate_ranks(model, 7, calibration=calibration)
    assert len(ranks) == 2 and sum(ranks) == 7 and all(1 <= r <= 6 for r in ranks)
    # A second layer whose block is almost switched off needs (almost) no states.
    quiet = model.layers[1]
    quiet = eqx.tree_at(lambda l: (l.B_re, l.B_im), quiet, (1e-8 * quiet.B_re, 1e-8 * quiet.B_im))
    lopsided = model.with_layers([model.layers[0], quiet])
    assert ssm.allocate_ranks(lopsided, 7, calibration=calibration) == (6, 1)
    assert ssm.allocate_ranks(model, 12, calibration=calibration) == (6, 6)
    with pytest.raises(ValueError, match="total"):
        ssm.allocate_ranks(model, 13, calibration=calibration)
    with pytest.raises(ValueError, match="total"):
        ssm.allocate_ranks(model, 1, calibration=calibration)


def test_match_layer_checks_shapes():
    model = _tiny_model(7)
    layer = model.layers[0]
    with pytest.raises(ValueError, match="match_layer"):
        ssm.match_layer(layer.system(), layer.norm, jnp.zeros((2, 5, 2)), jnp.zeros((2, 5, 2)))


def test_compress_errors():
    model = _tiny_model(4)
    inputs = jnp.zeros((2, 5, 1))
    with pytest.raises(ValueError, match="unknown method"):
        ssm.compress(model, 2, method="nope", calibration=inputs)
    with pytest.raises(ValueError, match="calibration"):
        ssm.compress(model, 2, method="h2-input")
    with pytest.raises(ValueError, match="one entry per layer"):
        ssm.compress(model, (1, 2, 3), method="bt")
    with pytest.raises(ValueError, match="between 1"):
        ssm.compress(model, 0, method="bt")


def test_cli_runs_a_reduced_sweep(tmp_path):
    from jaxlqo.cli import main

    out_json = tmp_path / "table.json"
    main(
        [
            "compress",
            "--ranks",
            "12",
            "--methods",
            "bt,h2-input",
            "--test-limit",
            "40",
            "--calibration",
            "32",
            "--max-steps",
            "3",
            "--json",
            str(out_json),
            "--out",
            str(tmp_path),
            "--no-cache",
        ]
    )
    records = json.loads(out_json.read_text())
    assert [(r["method"], r["rank"]) for r in records] == [("bt", 12), ("h2-input", 12)]
    keys = {
        "method",
        "rank",
        "params_removed",
        "accuracy",
        "original_accuracy",
        "output_error",
        "bound",
        "trivial_bound",
        "logit_bound",
        "certified",
    }
    for r in records:
        assert keys <= set(r)
        assert 0 < r["params_removed"] < 1
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["original_accuracy"] <= 1
        assert 0 <= r["output_error"] <= r["bound"] <= r["trivial_bound"]
        assert 0 <= r["certified"] <= 1 and r["logit_bound"] >= 0
    assert (tmp_path / "compress.png").exists()
