"""Compress every layer of a deep SSM (the entry point over the methods of `_methods.py`).

A thin composition over jaxlqo's reducers: each layer's LQO block is a
[`jaxlqo.DiagonalLQOSystem`][]; it is replaced by a reduced one with `r` states, and the
layer is rebuilt around it (same feedthrough, nonlinearity, residual and LayerNorm).
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._solution import Solution
from .._systems import DiagonalLQOSystem
from ._methods import (
    METHOD_TABLE,
    AbstractCompressionMethod,
    AbstractLayerwiseMethod,
    LayerData,
)
from ._model import DeepSSM

#: Every compression method's name, in the order the main job reports them.
METHODS = tuple(METHOD_TABLE)


def method_named(
    method: "str | AbstractCompressionMethod", caller: str
) -> AbstractCompressionMethod:
    """The method Module for a name of [`METHODS`][jaxlqo.ssm.METHODS] (a Module passes through)."""
    if isinstance(method, AbstractCompressionMethod):
        return method
    if isinstance(method, str) and method in METHOD_TABLE:
        return METHOD_TABLE[method]
    raise ValueError(
        f"{caller}: unknown method {method!r}; choose from {METHODS} or pass a method Module "
        "such as ssm.BalancedTruncation(input_aware=True)."
    )


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


def compress_layer(
    sys: DiagonalLQOSystem,
    r: int,
    *,
    method: "str | AbstractLayerwiseMethod",
    horizon=None,
    second_moment: Array | None = None,
    split: Array | None = None,
    max_steps: int = 100,
    slots: int | None = None,
) -> Solution:
    """Reduce one layer's block to `r` states with a layerwise `method` (see
    [`jaxlqo.ssm.compress`][]); `second_moment` and `split` are what the input-aware and
    bound-weighted methods measure on calibration data (`None`: a white input, no split).

    **Returns:** a [`jaxlqo.Solution`][]: `value` the reduced block, `stats` the method's
    details (`steps`, `stable`).
    """
    module = method_named(method, "compress_layer")
    if not isinstance(module, AbstractLayerwiseMethod):
        raise ValueError(
            f"compress_layer: method {method!r} reduces the layers in order, not one alone; "
            "use ssm.compress."
        )
    data = LayerData(second_moment, split)
    return module.reduce_layer(sys, r, data, horizon=horizon, max_steps=max_steps, slots=slots)


def compress(
    model: DeepSSM,
    rank: int | Sequence[int] | None = None,
    *,
    method: "str | AbstractCompressionMethod" = "bound-input",
    budget: int | None = None,
    horizon=None,
    calibration: Array | None = None,
    max_steps: int = 100,
    slots: int | None = None,
):
    r"""Reduce the state of every layer of a deep SSM, without retraining.

    **Methods** (`method=`: a name of [`METHODS`][jaxlqo.ssm.METHODS], or a method Module
    such as `ssm.BalancedTruncation(input_aware=True)`; the names map to the Modules of
    `jaxlqo/ssm/_methods.py` as listed in `METHOD_TABLE`):

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
    module = method_named(method, "compress")
    if module.needs_calibration and calibration is None:
        raise ValueError(f"compress: method {method!r} needs `calibration` inputs (N, L, d_in).")
    if calibration is not None:
        calibration = _checked_calibration(calibration, model)
    if not _is_count(max_steps) or max_steps < 0:
        raise ValueError(f"compress: `max_steps` must be an int ≥ 0; got {max_steps!r}.")
    if (rank is None) == (budget is None):
        raise ValueError("compress: give exactly one of `rank` (per layer) and `budget` (total).")
    if horizon is None and calibration is not None:
        horizon = calibration.shape[1]
    if budget is not None:
        ranks = module.allocate(model, budget, calibration, horizon)
    else:
        ranks = _ranks(rank, len(model.layers))
    for r, layer in zip(ranks, model.layers, strict=True):
        if not 1 <= r <= layer.n:
            raise ValueError(f"compress: rank {r} must be between 1 and the layer order {layer.n}.")
    if slots is not None and (not _is_count(slots) or slots < max(ranks)):
        raise ValueError(
            f"compress: `slots` must be an int ≥ the largest rank ({max(ranks)}); got {slots!r}."
        )
    return module.compress_model(
        model, ranks, calibration=calibration, horizon=horizon, max_steps=max_steps, slots=slots
    )


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
