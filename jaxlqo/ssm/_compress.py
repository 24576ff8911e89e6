"""Compress every layer of a deep SSM, and bound the output error of the result.

A thin composition over jaxlqo's reducers: each layer's LQO block is a
[`jaxlqo.DiagonalLQOSystem`][]; it is replaced by a reduced one with `r` states, and the
layer is rebuilt around it (same feedthrough, nonlinearity, residual and LayerNorm).
"""

from collections.abc import Sequence
from typing import Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._reduction import balanced_truncation, modal_truncation, reduce, tlh2
from .._simulate import simulate
from .._systems import DiagonalLQOSystem
from ._bound import bound_from_quantities, layer_quantities, with_input_factor
from ._match import match_layer
from ._model import DeepSSM, SSMLayer, gelu

#: Every compression method, in the order the main job reports them.
METHODS = ("modal", "bt", "tlh2", "h2", "bound", "bt-input", "h2-input", "bound-input", "match")

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


def full_trajectory(model: DeepSSM, u: Array) -> list[tuple[Array, Array]]:
    """Each layer's input `s` and pre-LayerNorm vector `a = s + σ(y)` along the full model."""
    out = []
    for layer, s in zip(model.layers, model.layer_inputs(u)):
        y = simulate(layer.system(), s)
        out.append((s, s + gelu(y)))
    return out


def _norm_constants(model: DeepSSM):
    constants = []
    for layer in model.layers:
        weight = layer.norm.weight
        gamma = 1.0 if weight is None else jnp.max(jnp.abs(weight))
        constants.append((gamma, layer.norm.eps))
    return constants


def output_error_bound(
    model: DeepSSM, compressed: DeepSSM, inputs: Array, *, horizon=None, whiten: bool = True
):
    r"""A rigorous upper bound on `max_k ‖s_out,k − ŝ_out,k‖₂` for each input sequence.

    The theorem, its proof and the recursion are in `jaxlqo/ssm/_bound.py` (and the docs):
    it uses the full model's trajectory and, per layer, the time-limited h2 errors of the
    linear and quadratic parts, the h2 norms of the reduced parts, `‖D‖₂`, GELU's Lipschitz
    constant and a data-dependent Lipschitz constant of LayerNorm.

    **Arguments:**

    - `model`, `compressed`: the full and compressed [`jaxlqo.ssm.DeepSSM`][] (same encoder,
        head and LayerNorms; only the blocks' orders differ).
    - `inputs`: `(N, L, d_in)` input sequences (or one `(L, d_in)`).
    - `horizon`: lags covered by the h2 norms; default `L`, the most a length-`L` sequence
        sees.
    - `whiten`: also use the input-whitened estimate of each layer's reduction error (with
        `R_i` the root of the layer's input second moment over `inputs`) and keep the smaller
        (see `jaxlqo/ssm/_bound.py`); `False` gives the plain theorem, whose first-order form
        is [`jaxlqo.ssm.bound_weights`][].

    **Returns:** `(N,)` bounds (a scalar for one sequence).
    """
    single = inputs.ndim == 2
    inputs = inputs[None] if single else inputs
    horizon = inputs.shape[1] if horizon is None else horizon
    bounds = _output_error_bound(model, compressed, inputs, horizon, whiten)
    return bounds[0] if single else bounds


@eqx.filter_jit
def _output_error_bound(model, compressed, inputs, horizon, whiten):
    quantities, whitened = [], []
    # The refinement's R_i: the root of each layer's input second moment over these inputs
    # (any invertible R gives a valid bound; this one charges only the directions seen).
    moments = _second_moments(model, inputs)
    for full, reduced, moment in zip(model.layers, compressed.layers, moments, strict=True):
        full_sys, reduced_sys = full.system(), reduced.system()
        quantities.append(layer_quantities(full_sys, reduced_sys, horizon))
        root, inverse_root = _weight_root(moment)
        q_white = layer_quantities(
            with_input_factor(full_sys, root), with_input_factor(reduced_sys, root), horizon
        )
        whitened.append((q_white, inverse_root))
    norms = _norm_constants(model)

    def one(u):
        trajectory = full_trajectory(model, u)
        refinement = whitened if whiten else None
        return jnp.max(bound_from_quantities(trajectory, quantities, norms, refinement))

    return jax.vmap(one)(inputs)


def output_error(model: DeepSSM, compressed: DeepSSM, inputs: Array) -> Array:
    """The measured `max_k ‖s_out,k − ŝ_out,k‖₂` for each input sequence `(N,)`."""
    single = inputs.ndim == 2
    errors = _output_error(model, compressed, inputs[None] if single else inputs)
    return errors[0] if single else errors


@eqx.filter_jit
def _output_error(model, compressed, inputs):
    diff = jax.vmap(model.features)(inputs) - jax.vmap(compressed.features)(inputs)
    return jnp.max(jnp.linalg.norm(diff, axis=-1), axis=-1)


def bound_weights(model: DeepSSM, inputs: Array, *, horizon=None) -> tuple[Array, Array]:
    r"""First-order weights `(α_i, β_i)` of the bound: `bound ≈ Σ_i α_i δ_{i,1} + β_i δ_{i,2}`.

    The one-sided derivative of the mean (over `inputs`) bound with respect to each layer's
    linear and quadratic h2 errors at zero error (reduced norms = full norms). Near zero the
    bound is positively homogeneous in the errors (it contains `ℓ2` norms of error
    profiles, which have no derivative at 0 but a one-sided one), so each weight is the
    bound at a tiny error `t` along one coordinate, divided by `t`. Shallow layers weigh
    more: their errors pass through every later layer.
    """
    inputs = inputs[None] if inputs.ndim == 2 else inputs
    horizon = inputs.shape[1] if horizon is None else horizon
    return _bound_weights(model, inputs, horizon)


@eqx.filter_jit
def _bound_weights(model: DeepSSM, inputs: Array, horizon) -> tuple[Array, Array]:
    base = [layer_quantities(l.system(), l.system(), horizon) for l in model.layers]
    norms = _norm_constants(model)
    trajectories = jax.vmap(lambda u: full_trajectory(model, u))(inputs)
    step = 1e-7

    @jax.vmap
    def mean_bound(deltas):
        qs = [
            eqx.tree_at(lambda q: (q.linear_error, q.quadratic_error), q, (d[0], d[1]))
            for q, d in zip(base, deltas)
        ]
        per_input = jax.vmap(lambda traj: jnp.max(bound_from_quantities(traj, qs, norms)))
        return jnp.mean(per_input(trajectories))

    layers = len(model.layers)
    directions = step * jnp.eye(2 * layers, dtype=inputs.dtype).reshape(2 * layers, layers, 2)
    weights = (mean_bound(directions) / step).reshape(layers, 2)
    return weights[:, 0], weights[:, 1]


def _ranks(rank, layers: int) -> tuple[int, ...]:
    if isinstance(rank, (int, np.integer)):
        return (int(rank),) * layers
    rank = tuple(int(r) for r in rank)
    if len(rank) != layers:
        raise ValueError(f"compress: `rank` needs one entry per layer ({layers}); got {rank}.")
    return rank


def _weight_root(second_moment: Array) -> tuple[Array, Array]:
    """`W^{1/2}` and a regularised inverse, for weighting inputs by their second moment."""
    h = second_moment.shape[0]
    regularised = second_moment + 1e-6 * jnp.trace(second_moment) / h * jnp.eye(h, dtype=second_moment.dtype)
    w, v = jnp.linalg.eigh(regularised)
    root = (v * jnp.sqrt(w)) @ v.T
    inverse_root = (v / jnp.sqrt(w)) @ v.T
    return root, inverse_root


def _pad(sys: DiagonalLQOSystem, slots: int) -> DiagonalLQOSystem:
    """Add dead states (zero `b`, `c`, readout columns) so every rank shares one compiled shape.

    A dead state is never excited and never read, and its parameters have zero gradient, so
    the optimiser leaves it dead: the padded and unpadded problems are the same.
    """
    extra = slots - sys.n
    if extra == 0:
        return sys
    pad_states = lambda x, axis: jnp.concatenate(  # noqa: E731
        [x, jnp.zeros(x.shape[:axis] + (extra,) + x.shape[axis + 1 :], x.dtype)], axis=axis
    )
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
    """Balanced truncation of the input-weighted block `B W^{1/2}`; `roots = (W^{1/2}, W^{-1/2})`."""
    root, inverse_root = roots
    rom, _ = balanced_truncation(with_input_factor(sys, root), r, horizon=horizon)
    # The projection is linear in B: undoing the weight on the reduced B gives the rom of sys.
    return with_input_factor(rom, inverse_root)


def compress_layer(
    sys: DiagonalLQOSystem,
    r: int,
    *,
    method: str,
    horizon=None,
    second_moment: Optional[Array] = None,
    split: Optional[Array] = None,
    max_steps: int = 100,
    slots: Optional[int] = None,
) -> tuple[DiagonalLQOSystem, dict]:
    """Reduce one layer's block to `r` states with `method` (see [`jaxlqo.ssm.compress`][])."""
    info = {}
    input_aware = method.endswith("-input")
    if method == "modal":
        return _modal(sys, r), info
    if method == "tlh2":
        horizon = horizon if horizon is not None else 10 * sys.n
        slots = r if slots is None else slots
        start = _balanced(sys, r, horizon, _weight_root(jnp.eye(sys.m, dtype=sys.D.dtype)))
        sol = tlh2(sys, slots, horizon=horizon, init=_pad(start, slots), max_steps=max_steps)
        info["stable"] = bool(sol.stats["stable"])
        return _unpad(sol.value, r), info
    if not input_aware or second_moment is None:
        # A plain method is its input-aware twin with a white input (W = I), so that both
        # share one compiled function; the results agree to rounding.
        second_moment = jnp.eye(sys.m, dtype=sys.D.dtype)
    rom = _balanced(sys, r, horizon, _weight_root(second_moment))
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
    rank: Union[int, Sequence[int]],
    *,
    method: str = "bound-input",
    horizon=None,
    calibration: Optional[Array] = None,
    max_steps: int = 100,
    slots: Optional[int] = None,
):
    r"""Reduce the state of every layer of a deep SSM, without retraining.

    **Methods** (`method=`):

    - `"modal"`: keep each block's `r` most dominant poles ([`jaxlqo.modal_truncation`][]);
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
    - `rank`: states kept per layer: an int, or one per layer.
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
    ranks = _ranks(rank, len(model.layers))
    for r, layer in zip(ranks, model.layers):
        if not 1 <= r <= layer.n:
            raise ValueError(f"compress: rank {r} must be between 1 and the layer order {layer.n}.")
    if horizon is None and calibration is not None:
        horizon = calibration.shape[1]
    if method == "match":
        return _compress_by_matching(model, ranks, calibration, horizon, max_steps, slots)
    moments = splits = None
    if method.endswith("-input"):
        moments = layer_input_second_moments(model, calibration)
    if method.startswith("bound"):
        alpha, beta = bound_weights(model, calibration, horizon=horizon)
        # Only the ratio matters per layer; normalise so the objective is O(error).
        splits = [jnp.stack([a, b]) / (a + b) for a, b in zip(alpha, beta)]
    layers, infos = [], []
    for i, (layer, r) in enumerate(zip(model.layers, ranks)):
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
            _pad(start, r if slots is None else slots), layer.norm, upstream, target,
            readout=readout, max_steps=max_steps,
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
