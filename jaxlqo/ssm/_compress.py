"""Compress every layer of a deep SSM, and bound the output error of the result.

A thin composition over jaxlqo's reducers: each layer's LQO block is a
[`jaxlqo.DiagonalLQOSystem`][]; it is replaced by a reduced one with `r` states, and the
layer is rebuilt around it (same feedthrough, nonlinearity, residual and LayerNorm).
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._reduction import balanced_truncation, modal_truncation, reduce, tlh2
from .._systems import DiagonalLQOSystem
from ._bound import with_input_factor
from ._certify import Trajectory, bound_chain, pair_data, safe_norm, trajectory_of
from ._match import match_layer
from ._model import DeepSSM, SSMLayer
from ._prune import (
    H2ModeScore,
    HInfinityModeScore,
    budget_ranks,
    global_threshold_ranks,
    prune_layer,
)
from ._weighting import input_weight_roots

#: Every compression method, in the order the main job reports them.
METHODS = (
    "modal",
    "last",
    "aire",
    "bt",
    "tlh2",
    "h2",
    "bound",
    "bt-input",
    "h2-input",
    "bound-input",
    "match",
)

#: The pruning baselines: the per-mode score each keeps the largest of.
_PRUNING_SCORES = {"last": HInfinityModeScore(), "aire": H2ModeScore()}

_NEEDS_CALIBRATION = ("bound", "bt-input", "h2-input", "bound-input", "match")


def layer_input_second_moments(model: DeepSSM, inputs: Array) -> list[Array]:
    """`E[s sᵀ]` (H, H) of every layer's input, over all steps of the calibration sequences.

    The second moment (not the covariance) is what weights an h2 objective: the block
    responds to the mean of its input as well.
    """
    return _second_moments(model, inputs)


@eqx.filter_jit
def _second_moments(model: DeepSSM, inputs: Array) -> list[Array]:
    return _moments_of(jax.vmap(model.layer_inputs)(inputs))


def _moments_of(per_sequence: list[Array]) -> list[Array]:
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


@eqx.filter_jit
def _bound_batch(model, compressed, inputs, trajectory, local):
    static = pair_data(model, compressed, inputs.shape[1])
    return jax.vmap(lambda u, t: bound_chain(model, compressed, static, t, u, local))(
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
    caller = "output_error_bound"
    inputs, single, trajectory = _prepare(
        model, compressed, inputs, horizon, trajectory, local, caller
    )
    bounds = _bound_batch(model, compressed, inputs, trajectory, local)["bound"]
    return bounds[0] if single else bounds


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
    inputs, single, trajectory = _prepare(
        model, compressed, inputs, None, trajectory, local, "certify"
    )
    out = _bound_batch(model, compressed, inputs, trajectory, local)["certified"]
    return out[0] if single else out


def bound_report(
    model: DeepSSM,
    compressed: DeepSSM,
    inputs: Array,
    labels: Array | None = None,
    *,
    horizon=None,
    trajectory: Trajectory | None = None,
) -> dict:
    r"""Everything the bound says about one compressed model on `inputs`, as floats.

    **Returns:** a dict with

    - `bound`: max over inputs of the proven bound on `max_k ‖s_out,k − ŝ_out,k‖`;
    - `trivial_bound`: what holds with no information about the compression (LayerNorm's
        output norm cap, max over inputs);
    - `h2_bound`: the a-priori (`local="h2"`) form of `bound`;
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
        result = _report(model, compressed, inputs[index], part)
        keep = min(chunk, len(inputs) - start)
        pieces.append({k: np.asarray(v)[:keep] for k, v in result.items()})
    out = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    bound, measured = out["bound"], out["error"]
    ratio = np.where(measured > 0, bound / np.where(measured > 0, measured, 1.0), np.inf)
    report = {
        "bound": float(bound.max()),
        "trivial_bound": float(out["trivial"].max()),
        "h2_bound": float(out["h2_bound"].max()),
        "output_error": float(measured.max()),
        "pooled_bound": float(out["pooled"].max()),
        "pooled_error": float(out["pooled_error"].max()),
        "logit_bound": float(out["logit_bound"].max()),
        "logit_error": float(out["logit_error"].max()),
        "median_ratio": float(np.median(ratio)),
        "certified": float(out["certified"].mean()),
    }
    if labels is not None:
        label_ids = np.asarray(labels)
        predicted = out["predicted"]
        full_correct = np.asarray(jnp.argmax(trajectory.logits, axis=-1)) == label_ids
        report["accuracy"] = float(np.mean(predicted == label_ids))
        report["certified_correct"] = float(np.mean(out["certified"] & full_correct))
    return report


@eqx.filter_jit
def _report(model, compressed, inputs, trajectory):
    static = pair_data(model, compressed, inputs.shape[1])

    def one(u, t):
        measured = bound_chain(model, compressed, static, t, u, "measured")
        h2 = bound_chain(model, compressed, static, t, u, "h2")
        feats = compressed.features(u)
        logits = compressed.classify(feats)
        return {
            **{k: measured[k] for k in ("bound", "trivial", "pooled", "logit_bound", "certified")},
            "h2_bound": h2["bound"],
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
            return bound_chain(model, model, static, t, u, "h2", override)["bound"]

        return jnp.mean(jax.vmap(one)(inputs, trajectories))

    base = mean_bound(jnp.zeros((layers, 2), inputs.dtype))
    directions = step * jnp.eye(2 * layers, dtype=inputs.dtype).reshape(2 * layers, layers, 2)
    weights = ((jax.lax.map(mean_bound, directions) - base) / step).reshape(layers, 2)
    return weights[:, 0], weights[:, 1]


def _is_count(x) -> bool:
    """An int or NumPy integer, not a bool (`True` is not a rank of 1)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _ranks(rank, layers: int) -> tuple[int, ...]:
    if _is_count(rank):
        return (int(rank),) * layers
    if isinstance(rank, (str, bytes)) or not isinstance(rank, Sequence):
        raise TypeError(
            f"compress: `rank` must be an int or a sequence of one int per layer; got {rank!r}."
        )
    if not all(_is_count(r) for r in rank):
        raise TypeError(f"compress: every entry of `rank` must be an int; got {rank!r}.")
    rank = tuple(int(r) for r in rank)
    if len(rank) != layers:
        raise ValueError(f"compress: `rank` needs one entry per layer ({layers}); got {rank}.")
    return rank


def _pad(sys: DiagonalLQOSystem, slots: int) -> DiagonalLQOSystem:
    """Add dead states (zero `b`, `c`, readout columns) so every rank shares one compiled shape.

    A dead state is never excited and never read, and its parameters have zero gradient, so
    the optimiser leaves it dead: the padded and unpadded problems are the same.
    """
    extra = slots - sys.n
    if extra == 0:
        return sys

    def pad_states(x, axis):
        zeros = jnp.zeros(x.shape[:axis] + (extra,) + x.shape[axis + 1 :], x.dtype)
        return jnp.concatenate([x, zeros], axis=axis)

    poles = jnp.concatenate([sys.poles, jnp.full((extra,), 0.5, sys.poles.dtype)])
    f = None if sys.F is None else pad_states(sys.F, 2)
    g = None if sys.G is None else pad_states(sys.G, 2)
    return DiagonalLQOSystem(
        poles, pad_states(sys.B, 0), pad_states(sys.C, 1), sys.D, F=f, G=g, dt=sys.dt
    )


def pad_layers(model: DeepSSM, n: int) -> DeepSSM:
    """The same model with every block padded to `n` states by dead states.

    A dead state has zero input and readout columns, so the padded model computes exactly
    the same outputs, h2 norms and bounds. Models compressed to different ranks, padded to
    one `n`, share every compiled function (evaluation, output error, bound): a sweep over
    ranks compiles once. Parameter counts must be taken before padding.
    """
    for layer in model.layers:
        if layer.n > n:
            raise ValueError(f"pad_layers: a layer has {layer.n} > n = {n} states; cannot pad.")
    return model.with_layers(
        [SSMLayer.from_system(_pad(layer.system(), n), layer.norm) for layer in model.layers]
    )


def _unpad(sys: DiagonalLQOSystem, r: int) -> DiagonalLQOSystem:
    f = None if sys.F is None else sys.F[..., :r]
    g = None if sys.G is None else sys.G[..., :r]
    return DiagonalLQOSystem(sys.poles[:r], sys.B[:r], sys.C[:, :r], sys.D, F=f, G=g, dt=sys.dt)


@eqx.filter_jit
def _modal(sys: DiagonalLQOSystem, r: int) -> DiagonalLQOSystem:
    return modal_truncation(sys, r)


@eqx.filter_jit
def _balanced(sys: DiagonalLQOSystem, r: int, horizon, roots) -> DiagonalLQOSystem:
    """Balanced truncation of the input-weighted block `B W^{1/2}`.

    `roots = (W^{1/2}, W^{-1/2})`.
    """
    root, inverse_root = roots
    rom, _ = balanced_truncation(with_input_factor(sys, root), r, horizon=horizon)
    assert isinstance(rom, DiagonalLQOSystem)  # a diagonal system reduces to a diagonal one
    # The projection is linear in B: undoing the weight on the reduced B gives the rom of sys.
    return with_input_factor(rom, inverse_root)


def compress_layer(
    sys: DiagonalLQOSystem,
    r: int,
    *,
    method: str,
    horizon=None,
    second_moment: Array | None = None,
    split: Array | None = None,
    max_steps: int = 100,
    slots: int | None = None,
) -> tuple[DiagonalLQOSystem, dict]:
    """Reduce one layer's block to `r` states with `method` (see [`jaxlqo.ssm.compress`][])."""
    info = {}
    input_aware = method.endswith("-input")
    if method == "modal":
        return _modal(sys, r), info
    if method in _PRUNING_SCORES:
        return prune_layer(sys, r, _PRUNING_SCORES[method]), info
    if method == "tlh2":
        horizon = horizon if horizon is not None else 10 * sys.n
        slots = r if slots is None else slots
        white = input_weight_roots(jnp.eye(sys.m, dtype=sys.D.dtype))
        start = _balanced(sys, r, horizon, white)
        sol = tlh2(sys, slots, horizon=horizon, init=_pad(start, slots), max_steps=max_steps)
        info["stable"] = bool(sol.stats["stable"])
        return _unpad(sol.value, r), info
    if not input_aware or second_moment is None:
        # A plain method is its input-aware twin with a white input (W = I), so that both
        # share one compiled function; the results agree to rounding.
        second_moment = jnp.eye(sys.m, dtype=sys.D.dtype)
    rom = _balanced(sys, r, horizon, input_weight_roots(second_moment))
    if method in ("bt", "bt-input"):
        return rom, info
    if method in ("h2", "h2-input", "bound", "bound-input"):
        slots = r if slots is None else slots
        sol = reduce(
            sys,
            slots,
            horizon=horizon,
            init=_pad(rom, slots),
            weight=second_moment,
            split=split if method.startswith("bound") else None,
            max_steps=max_steps,
        )
        info["steps"] = int(sol.stats["steps"])
        return _unpad(sol.value, r), info
    raise ValueError(f"compress: unknown method {method!r}; choose from {METHODS}.")


def compress(
    model: DeepSSM,
    rank: int | Sequence[int] | None = None,
    *,
    method: str = "bound-input",
    budget: int | None = None,
    horizon=None,
    calibration: Array | None = None,
    max_steps: int = 100,
    slots: int | None = None,
):
    r"""Reduce the state of every layer of a deep SSM, without retraining.

    **Methods** (`method=`):

    - `"modal"`: keep each block's `r` most dominant poles ([`jaxlqo.modal_truncation`][]);
    - `"last"`, `"aire"`: the state-pruning baselines LAST (per-mode H∞ score) and
      AIRE-Prune (per-mode h2 energy): keep each block's `r` highest-scored modes, or, with
      a `budget`, one global threshold on the layer-normalised scores (see
      `jaxlqo/ssm/_prune.py` and [`jaxlqo.ssm.global_threshold_ranks`][]);
    - `"bt"`: balanced truncation of each block ([`jaxlqo.balanced_truncation`][]);
    - `"tlh2"`: time-limited h2 reduction without stability constraint ([`jaxlqo.tlh2`][]);
      may return an unstable block, which the layer cannot hold (reported, not repaired);
    - `"h2"`: layerwise (time-limited) h2-optimal reduction ([`jaxlqo.reduce`][]) from BT;
    - `"bound"`: the paper's bound-weighted method: each block minimises its share
      `α_i ‖Σ_{i,1} − Σ̂_{i,1}‖ + β_i ‖Σ_{i,2} − Σ̂_{i,2}‖` of the first-order output-error
      bound ([`jaxlqo.ssm.bound_weights`][], computed on `calibration`);
    - `"bt-input"`, `"h2-input"`, `"bound-input"`: input-aware variants: each block's
      inputs are weighted by their second moment `E[s sᵀ]` measured on `calibration`
      (no labels), so the reduction is accurate for the inputs the block actually sees;
    - `"match"`: output matching ([`jaxlqo.ssm.match_layer`][]): layer by layer, input-weighted
      BT refined so the layer reproduces the full layer's output on the `calibration`
      sequences fed through the already compressed layers (the last layer matches the
      logits); the real input process, coloured in time, replaces the h2 objective's white
      noise. No labels; only the blocks change.

    **Arguments:**

    - `model`: a [`jaxlqo.ssm.DeepSSM`][].
    - `rank`: states kept per layer: an int, or one per layer. Give either `rank` or
        `budget`.
    - `budget`: keyword-only; a total number of states kept over all layers, split among
        them by LAST's normalised rule: on each method's own mode scores for `last`/`aire`,
        on the (input-weighted, for the input-aware methods and `match`) Hankel singular
        values for the others ([`jaxlqo.ssm.budget_ranks`][]).
    - `horizon`: lags for the time-limited methods (default: the calibration length `L`,
        else infinite; `tlh2` always needs one and uses `L` or `10 n`).
    - `calibration`: `(N, L, d_in)` unlabelled inputs (needed by the input-aware and
        bound-weighted methods).
    - `max_steps`: L-BFGS steps per layer for the optimising methods.
    - `slots`: optimise with this many (≥ rank) state slots, the extra ones dead, so that a
        sweep over ranks compiles once.

    **Returns:** `(compressed, info)`: the compressed `DeepSSM` (or `None` if a block came
    out unstable) and a dict with per-layer details (`ranks`, `stable`, `steps`).
    """
    if method not in METHODS:
        raise ValueError(f"compress: unknown method {method!r}; choose from {METHODS}.")
    if method in _NEEDS_CALIBRATION and calibration is None:
        raise ValueError(f"compress: method {method!r} needs `calibration` inputs (N, L, d_in).")
    if calibration is not None:
        calibration = _checked_calibration(calibration, model)
    if not _is_count(max_steps) or max_steps < 0:
        raise ValueError(f"compress: `max_steps` must be an int ≥ 0; got {max_steps!r}.")
    if (rank is None) == (budget is None):
        raise ValueError("compress: give exactly one of `rank` (per layer) and `budget` (total).")
    if budget is not None:
        ranks = _budget_to_ranks(model, budget, method, calibration, horizon)
    else:
        ranks = _ranks(rank, len(model.layers))
    for r, layer in zip(ranks, model.layers, strict=True):
        if not 1 <= r <= layer.n:
            raise ValueError(f"compress: rank {r} must be between 1 and the layer order {layer.n}.")
    if slots is not None and (not _is_count(slots) or slots < max(ranks)):
        raise ValueError(
            f"compress: `slots` must be an int ≥ the largest rank ({max(ranks)}); got {slots!r}."
        )
    if horizon is None and calibration is not None:
        horizon = calibration.shape[1]
    if method == "match":
        return _compress_by_matching(model, ranks, calibration, horizon, max_steps, slots)
    moments = splits = None
    if method.endswith("-input"):
        assert calibration is not None  # checked above (_NEEDS_CALIBRATION)
        moments = layer_input_second_moments(model, calibration)
    if method.startswith("bound"):
        assert calibration is not None  # checked above (_NEEDS_CALIBRATION)
        alpha, beta = bound_weights(model, calibration, horizon=horizon)
        # Only the ratio matters per layer; normalise so the objective is O(error).
        splits = [jnp.stack([a, b]) / (a + b) for a, b in zip(alpha, beta, strict=True)]
    layers, infos = [], []
    for i, (layer, r) in enumerate(zip(model.layers, ranks, strict=True)):
        rom, info = compress_layer(
            layer.system(),
            r,
            method=method,
            horizon=horizon,
            second_moment=None if moments is None else moments[i],
            split=None if splits is None else splits[i],
            max_steps=max_steps,
            slots=slots,
        )
        infos.append(info)
        if not bool(jnp.all(jnp.abs(rom.poles) < 1)):
            return None, {"ranks": ranks, "stable": False, "layers": infos}
        layers.append(SSMLayer.from_system(rom, layer.norm))
    return model.with_layers(layers), {"ranks": ranks, "stable": True, "layers": infos}


def _checked_calibration(calibration, model: DeepSSM) -> Array:
    """Calibration sequences as an array `(N ≥ 1, L ≥ 1, d_in)`, or a clear error."""
    if not hasattr(calibration, "shape"):
        raise TypeError(
            "compress: `calibration` must be an array of shape (N, L, d_in); got "
            f"{type(calibration).__name__} (wrap a list with jnp.asarray)."
        )
    calibration = jnp.asarray(calibration)
    if calibration.ndim != 3 or calibration.shape[-1] != model.d_in:
        raise ValueError(
            f"compress: `calibration` must have shape (N, L, d_in = {model.d_in}); got "
            f"{calibration.shape}."
        )
    if calibration.shape[0] == 0 or calibration.shape[1] == 0:
        raise ValueError(
            f"compress: `calibration` is empty (shape {calibration.shape}); pass at least one "
            "sequence of at least one step."
        )
    return calibration


def _budget_to_ranks(model, budget, method, calibration, horizon) -> tuple[int, ...]:
    """Per-layer ranks for a total `budget` (see `compress`)."""
    if method in _PRUNING_SCORES:
        score = _PRUNING_SCORES[method]
        scores = [score(layer.system()) for layer in model.layers]
        return global_threshold_ranks(scores, budget)
    moments = None
    if method.endswith("-input") or method == "match":
        moments = layer_input_second_moments(model, calibration)
    if horizon is None and calibration is not None:
        horizon = calibration.shape[1]
    return budget_ranks(model, budget, second_moments=moments, horizon=horizon)


def _compress_by_matching(model, ranks, calibration, horizon, max_steps, slots):
    """Layer by layer: input-weighted BT, then output matching (`jaxlqo/ssm/_match.py`)."""
    full_inputs = jax.vmap(model.layer_inputs)(calibration)
    # The last layer matches the logits: only what the head reads of its output matters.
    targets = full_inputs[1:] + [jax.vmap(model)(calibration)]
    readouts = [None] * (len(model.layers) - 1) + [model.classify]
    moments = _moments_of(full_inputs)
    upstream = full_inputs[0]  # the encoder is shared
    layers, infos = [], []
    for layer, r, target, readout, moment in zip(
        model.layers, ranks, targets, readouts, moments, strict=True
    ):
        start, _ = compress_layer(
            layer.system(), r, method="bt-input", horizon=horizon, second_moment=moment
        )
        refined, stats = match_layer(
            _pad(start, r if slots is None else slots),
            layer.norm,
            upstream,
            target,
            readout=readout,
            max_steps=max_steps,
        )
        refined = _unpad(refined, r)
        infos.append(
            {
                "steps": int(stats["steps"]),
                "initial_objective": float(stats["initial_objective"]),
                "objective": float(stats["objective"]),
            }
        )
        if not bool(jnp.all(jnp.abs(refined.poles) < 1)):
            return None, {"ranks": ranks, "stable": False, "layers": infos}
        compressed_layer = SSMLayer.from_system(refined, layer.norm)
        layers.append(compressed_layer)
        upstream = jax.vmap(compressed_layer)(upstream)
    return model.with_layers(layers), {"ranks": ranks, "stable": True, "layers": infos}
