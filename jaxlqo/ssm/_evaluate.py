"""Measure a deep SSM and a compressed one: layer-input statistics, output errors, the bound.

The functions here only *evaluate* a (model, compressed) pair, or the full model on
calibration data; the compression methods (`_methods.py`) and `compress` (`_compress.py`)
use them. The theorem behind the bound is in `jaxlqo/ssm/_certify.py` and the docs.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._certify import Trajectory, bound_chain, pair_data, safe_norm, trajectory_of
from ._model import DeepSSM


def layer_input_second_moments(model: DeepSSM, inputs: Array) -> list[Array]:
    """`E[s sᵀ]` (H, H) of every layer's input, over all steps of the calibration sequences.

    The second moment (not the covariance) is what weights an h2 objective: the block
    responds to the mean of its input as well.
    """
    return _second_moments(model, inputs)


@eqx.filter_jit
def _second_moments(model: DeepSSM, inputs: Array) -> list[Array]:
    return second_moments_of(jax.vmap(model.layer_inputs)(inputs))


def second_moments_of(per_sequence: list[Array]) -> list[Array]:
    """`E[s sᵀ]` over sequences and steps of each `(N, L, H)` array."""
    return [jnp.einsum("nlh,nlg->hg", s, s) / (s.shape[0] * s.shape[1]) for s in per_sequence]


def full_trajectory(model: DeepSSM, inputs: Array) -> Trajectory:
    """The full model's trajectory on `inputs` (`(L, d_in)` or batched `(N, L, d_in)`).

    Each layer's input `s` and block output `y`, the last layer's features and the logits:
    everything the bound needs from the full model. Compute it once and pass it as
    `trajectory=` to [`jaxlqo.ssm.bound_report`][] (or the other bound functions) for every
    compressed model of a sweep.
    """
    inputs = _checked_inputs(inputs, model, "full_trajectory")
    if inputs.ndim == 2:
        return _trajectory_one(model, inputs)
    return _trajectory_batch(model, inputs)


@eqx.filter_jit
def _trajectory_one(model, u):
    return trajectory_of(model, u)


@eqx.filter_jit
def _trajectory_batch(model, inputs):
    return jax.vmap(lambda u: trajectory_of(model, u))(inputs)


def _checked_inputs(inputs, model: DeepSSM, caller: str) -> Array:
    inputs = jnp.asarray(inputs)
    if inputs.ndim not in (2, 3) or inputs.shape[-1] != model.d_in:
        raise ValueError(
            f"{caller}: `inputs` must have shape (L, d_in) or (N, L, d_in) with d_in = "
            f"{model.d_in}; got shape {inputs.shape}."
        )
    if inputs.size == 0:
        raise ValueError(
            f"{caller}: `inputs` is empty (shape {inputs.shape}); pass at least one sequence "
            "of at least one step."
        )
    if jnp.iscomplexobj(inputs):
        raise TypeError(f"{caller}: `inputs` must be real; got dtype {inputs.dtype}.")
    return inputs.astype(model.dtype)


def _check_pair(model: DeepSSM, compressed: DeepSSM, caller: str) -> None:
    same = (
        isinstance(compressed, DeepSSM)
        and len(compressed.layers) == len(model.layers)
        and (compressed.d_in, compressed.H, compressed.n_classes)
        == (model.d_in, model.H, model.n_classes)
        and jnp.dtype(compressed.dtype) == jnp.dtype(model.dtype)
        and all(
            a.quad_rank == b.quad_rank for a, b in zip(model.layers, compressed.layers, strict=True)
        )
    )
    if not same:
        raise ValueError(
            f"{caller}: `compressed` must be a DeepSSM with the same layers, widths, classes, "
            "quadratic-readout ranks and dtype as `model` (only the blocks' orders, and any "
            "parameter values, may differ)."
        )


def _check_horizon(horizon, length: int, caller: str) -> None:
    if horizon is not None and not (isinstance(horizon, (int, np.integer)) and horizon >= length):
        raise ValueError(
            f"{caller}: `horizon` must be None or an int ≥ the input length L = {length} (a "
            f"length-L sequence excites every lag < L, and the bound must cover them all); got "
            f"{horizon!r}. The bound uses exactly the lags < L, so leave it None."
        )


_LOCAL = ("measured", "h2")


def _prepare(model, compressed, inputs, horizon, trajectory, local, caller):
    if local not in _LOCAL:
        raise ValueError(f"{caller}: `local` must be one of {_LOCAL}; got {local!r}.")
    _check_pair(model, compressed, caller)
    inputs = _checked_inputs(inputs, model, caller)
    single = inputs.ndim == 2
    inputs = inputs[None] if single else inputs
    _check_horizon(horizon, inputs.shape[1], caller)
    if trajectory is None:
        trajectory = _trajectory_batch(model, inputs)
    elif trajectory.features.shape[:2] != inputs.shape[:2]:
        raise ValueError(
            f"{caller}: `trajectory` was computed for inputs of shape "
            f"{trajectory.features.shape[:2]} (N, L); `inputs` have {inputs.shape[:2]}."
        )
    return inputs, single, trajectory


def _one_report_field(field, model, compressed, inputs, horizon, trajectory, local, caller):
    """One field of the bound's batched report (`"bound"`, `"certified"`), checked inputs in."""
    inputs, single, trajectory = _prepare(
        model, compressed, inputs, horizon, trajectory, local, caller
    )
    out = _bound_batch(model, compressed, inputs, trajectory, local == "h2")[field]
    return out[0] if single else out


@eqx.filter_jit
def _bound_batch(model, compressed, inputs, trajectory, a_priori: bool):
    static = pair_data(model, compressed, inputs.shape[1])
    return jax.vmap(lambda u, t: bound_chain(model, compressed, static, t, u, a_priori))(
        inputs, trajectory
    )


def output_error_bound(
    model: DeepSSM,
    compressed: DeepSSM,
    inputs: Array,
    *,
    horizon=None,
    local: str = "measured",
    trajectory: Trajectory | None = None,
):
    r"""A proven upper bound on `max_k ‖s_out,k − ŝ_out,k‖₂` for each input sequence.

    The theorem and its proof are in `jaxlqo/ssm/_certify.py` and
    [the docs](../output_error_bound.md): along the *full* model's trajectory, each
    compressed layer's local defect (`local="measured"`, the compressed layer applied to
    the full model's layer input) or its a-priori h2-type estimate (`local="h2"`, from
    impulse-response differences only) is propagated through the later layers with the
    per-step ℓ1 impulse-response gains of the compressed blocks, the gated readout's gain
    about the actual state, GELU's slope on the actual pre-activation range and LayerNorm's
    constant from the observed per-step spread, the residual path adding the input error
    once. Differences of feedthrough, LayerNorm, encoder and head between the two models are
    included (not assumed away), and rounding is bounded, so the bound holds in floating
    point, also at full order.

    **Arguments:**

    - `model`, `compressed`: the full and compressed [`jaxlqo.ssm.DeepSSM`][].
    - `inputs`: `(N, L, d_in)` input sequences (or one `(L, d_in)`).
    - `horizon`: `None` (default) or an int `≥ L`: every lag `< L` is covered exactly,
        whatever the horizon the compression used; a shorter horizon is refused.
    - `local`: `"measured"` (default, tightest) or `"h2"` (a priori in the layer errors;
        its first-order form is [`jaxlqo.ssm.bound_weights`][]).
    - `trajectory`: the full model's [`jaxlqo.ssm.full_trajectory`][] on `inputs`, to
        reuse it across compressed models.

    **Returns:** `(N,)` bounds (a scalar for one sequence).
    """
    return _one_report_field(
        "bound", model, compressed, inputs, horizon, trajectory, local, "output_error_bound"
    )


def certify(
    model: DeepSSM,
    compressed: DeepSSM,
    inputs: Array,
    *,
    local: str = "measured",
    trajectory: Trajectory | None = None,
) -> Array:
    r"""Which inputs provably keep the full model's prediction after compression.

    An input is certified when, for its full-model prediction `c` and every other class `j`,
    `z_c − z_j` exceeds the proven bound on `|(z_c − ẑ_c) − (z_j − ẑ_j)|` (see
    [`jaxlqo.ssm.output_error_bound`][]); a top-logit margin above twice the logit-error
    bound implies it. Then `argmax ẑ = c`, whatever the rounding.

    **Returns:** `(N,)` booleans (a scalar for one sequence).
    """
    return _one_report_field(
        "certified", model, compressed, inputs, None, trajectory, local, "certify"
    )


def bound_report(
    model: DeepSSM,
    compressed: DeepSSM,
    inputs: Array,
    labels: Array | None = None,
    *,
    horizon=None,
    trajectory: Trajectory | None = None,
    a_priori: bool = True,
) -> dict:
    r"""Everything the bound says about one compressed model on `inputs`, as floats.

    **Returns:** a dict with

    - `bound`: max over inputs of the proven bound on `max_k ‖s_out,k − ŝ_out,k‖`;
    - `trivial_bound`: what holds with no information about the compression (LayerNorm's
        output norm cap, max over inputs);
    - `h2_bound`: the a-priori (`local="h2"`) form of `bound` (only with `a_priori=True`, the
        default; `False` skips it, about 40% of the report's time);
    - `output_error`: the measured `max_k ‖s_out,k − ŝ_out,k‖`, max over inputs;
    - `pooled_bound`, `pooled_error`: bound and measured error of the mean-pooled features
        (max over inputs);
    - `logit_bound`, `logit_error`: bound and measured `max_j |z_j − ẑ_j|` (max over inputs);
    - `median_ratio`: median over inputs of bound / measured output error;
    - `certified`: the fraction of inputs certified to keep the full model's prediction
        ([`jaxlqo.ssm.certify`][]);
    - with `labels`: `accuracy` of the compressed model and `certified_correct`, the
        fraction certified *and* correctly classified by the full model (a proven lower bound
        on the compressed model's accuracy).

    `trajectory` ([`jaxlqo.ssm.full_trajectory`][] of `model` on `inputs`) avoids
    recomputing the full model for every row of a sweep.
    """
    caller = "bound_report"
    inputs, _, trajectory = _prepare(
        model, compressed, inputs, horizon, trajectory, "measured", caller
    )
    # In chunks of sequences: the per-step gains of long sequences (L = 2048) take tens of
    # MB per sequence, so one vmap over a whole test set would not fit in memory. Chunks of
    # one size share one compiled program (the last chunk is padded by repetition).
    chunk = max(1, min(len(inputs), 2**15 // max(1, inputs.shape[1])))
    pieces = []
    for start in range(0, len(inputs), chunk):
        index = np.minimum(np.arange(start, start + chunk), len(inputs) - 1)
        part = jax.tree_util.tree_map(lambda x, i=index: x[i], trajectory)
        result = _report(model, compressed, inputs[index], part, bool(a_priori))
        keep = min(chunk, len(inputs) - start)
        pieces.append({k: np.asarray(v)[:keep] for k, v in result.items()})
    out = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    bound, measured = out["bound"], out["error"]
    ratio = np.where(measured > 0, bound / np.where(measured > 0, measured, 1.0), np.inf)
    report = {
        "bound": float(bound.max()),
        "trivial_bound": float(out["trivial"].max()),
        "output_error": float(measured.max()),
        "pooled_bound": float(out["pooled"].max()),
        "pooled_error": float(out["pooled_error"].max()),
        "logit_bound": float(out["logit_bound"].max()),
        "logit_error": float(out["logit_error"].max()),
        "median_ratio": float(np.median(ratio)),
        "certified": float(out["certified"].mean()),
    }
    if a_priori:
        report["h2_bound"] = float(out["h2_bound"].max())
    if labels is not None:
        label_ids = np.asarray(labels)
        predicted = out["predicted"]
        full_correct = np.asarray(jnp.argmax(trajectory.logits, axis=-1)) == label_ids
        report["accuracy"] = float(np.mean(predicted == label_ids))
        report["certified_correct"] = float(np.mean(out["certified"] & full_correct))
    return report


@eqx.filter_jit
def _report(model, compressed, inputs, trajectory, a_priori: bool):
    static = pair_data(model, compressed, inputs.shape[1])

    def one(u, t):
        measured = bound_chain(model, compressed, static, t, u, a_priori=False)
        if a_priori:
            h2 = {"h2_bound": bound_chain(model, compressed, static, t, u, a_priori=True)["bound"]}
        else:
            h2 = {}
        feats = compressed.features(u)
        logits = compressed.classify(feats)
        return {
            **{k: measured[k] for k in ("bound", "trivial", "pooled", "logit_bound", "certified")},
            **h2,
            "error": jnp.max(safe_norm(t.features - feats)),
            "pooled_error": safe_norm(jnp.mean(t.features - feats, axis=0)),
            "logit_error": jnp.max(jnp.abs(t.logits - logits)),
            "predicted": jnp.argmax(logits),
        }

    return jax.vmap(one)(inputs, trajectory)


def output_error(model: DeepSSM, compressed: DeepSSM, inputs: Array) -> Array:
    """The measured `max_k ‖s_out,k − ŝ_out,k‖₂` for each input sequence `(N,)`.

    Differentiable everywhere in the inputs (zero derivative where the error is zero).
    """
    single = inputs.ndim == 2
    errors = _output_error(model, compressed, inputs[None] if single else inputs)
    return errors[0] if single else errors


@eqx.filter_jit
def _output_error(model, compressed, inputs):
    diff = jax.vmap(model.features)(inputs) - jax.vmap(compressed.features)(inputs)
    return jnp.max(safe_norm(diff), axis=-1)


def bound_weights(model: DeepSSM, inputs: Array, *, horizon=None) -> tuple[Array, Array]:
    r"""First-order weights `(α_i, β_i)` of the bound: `bound ≈ Σ_i α_i δ_{i,1} + β_i δ_{i,2}`.

    The one-sided derivative of the mean (over `inputs`) of the reported bound's a-priori
    form (`local="h2"`, see [`jaxlqo.ssm.output_error_bound`][]) at zero error, with each
    layer's block defect bounded by `δ_{i,1} W_k + δ_{i,2} W_k²` (`W_k` the window norm of
    the layer's input along the full trajectory). Near zero the bound is positively
    homogeneous in the errors, so each weight is the bound's increase at a tiny error `t`
    along one coordinate, divided by `t`. Shallow layers weigh more: their errors pass
    through every later layer.
    """
    inputs = _checked_inputs(inputs, model, "bound_weights")
    inputs = inputs[None] if inputs.ndim == 2 else inputs
    _check_horizon(
        None if horizon is None or horizon >= inputs.shape[1] else horizon,
        inputs.shape[1],
        "bound_weights",
    )
    return _bound_weights(model, inputs)


@eqx.filter_jit
def _bound_weights(model: DeepSSM, inputs: Array) -> tuple[Array, Array]:
    static = pair_data(model, model, inputs.shape[1])
    trajectories = jax.vmap(lambda u: trajectory_of(model, u))(inputs)
    layers = len(model.layers)
    step = 1e-7

    def mean_bound(deltas):
        def one(u, t):
            override = []
            for i, trace in enumerate(t.layers):
                s_norm = safe_norm(trace.s)
                window = jnp.sqrt(jnp.cumsum(s_norm**2))
                past = jnp.concatenate([jnp.zeros((1,), window.dtype), window[:-1]])
                vec = deltas[i, 0] * past + deltas[i, 1] * past**2
                override.append((vec, jnp.broadcast_to(vec[:, None], trace.s.shape)))
            return bound_chain(model, model, static, t, u, True, override)["bound"]

        return jnp.mean(jax.vmap(one)(inputs, trajectories))

    base = mean_bound(jnp.zeros((layers, 2), inputs.dtype))
    directions = step * jnp.eye(2 * layers, dtype=inputs.dtype).reshape(2 * layers, layers, 2)
    weights = ((jax.lax.map(mean_bound, directions) - base) / step).reshape(layers, 2)
    return weights[:, 0], weights[:, 1]
