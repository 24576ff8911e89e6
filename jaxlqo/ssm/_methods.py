r"""The compression methods of a deep SSM, one Module each.

A method turns a [`DeepSSM`][jaxlqo.ssm.DeepSSM] and per-layer ranks into a compressed
model. Most methods reduce each layer's block on its own
([`AbstractLayerwiseMethod.reduce_layer`][jaxlqo.ssm.AbstractLayerwiseMethod], returning a
[`jaxlqo.Solution`][] whose `value` is the reduced
[`jaxlqo.DiagonalLQOSystem`][] and whose `stats` hold the method's diagnostics); output
matching needs the layers in order and implements `compress_model` itself. Each method also
says how it splits a global state budget over the layers (`allocate`).

`jaxlqo.ssm.compress(model, r, method="bt")` looks the name up in `METHOD_TABLE` (the
command line's names); passing a Module, e.g.
`method=ssm.BalancedTruncation(input_aware=True)`, is the same. A new method is one class
here and, for the command line, one entry in `METHOD_TABLE`.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._reduction import balanced_truncation, modal_truncation, reduce, tlh2
from .._solution import RESULTS, Solution
from .._systems import DiagonalLQOSystem
from ._bound import with_input_factor
from ._evaluate import bound_weights, layer_input_second_moments, second_moments_of
from ._match import match_layer
from ._model import DeepSSM, SSMLayer
from ._prune import (
    AbstractModeScore,
    H2ModeScore,
    HInfinityModeScore,
    budget_ranks,
    global_threshold_ranks,
    prune_layer,
)
from ._weighting import input_weight_roots


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


# The compiled reducers below run with `throw=False` and are checked by `_successful` outside:
# an `eqx.error_if` puts a host callback in the program, and JAX never writes a program with
# host callbacks to its persistent compilation cache, so `jaxlqo compress` compiled these
# again on every run (measured: 4.1 s of a warm run, `_balanced` 1.8 s per rank).


@eqx.filter_jit
def _modal(sys: DiagonalLQOSystem, r: int) -> tuple[DiagonalLQOSystem, RESULTS]:
    solution = modal_truncation(sys, r, throw=False)
    return solution.value, solution.result


@eqx.filter_jit
def _balanced(sys: DiagonalLQOSystem, r: int, horizon, roots) -> tuple[DiagonalLQOSystem, RESULTS]:
    """Balanced truncation of the input-weighted block `B W^{1/2}`.

    `roots = (W^{1/2}, W^{-1/2})`.
    """
    root, inverse_root = roots
    solution = balanced_truncation(with_input_factor(sys, root), r, horizon=horizon, throw=False)
    rom = solution.value
    assert isinstance(rom, DiagonalLQOSystem)  # a diagonal system reduces to a diagonal one
    # The projection is linear in B: undoing the weight on the reduced B gives the rom of sys.
    return with_input_factor(rom, inverse_root), solution.result


def _successful(reduced: tuple[DiagonalLQOSystem, RESULTS], caller: str) -> DiagonalLQOSystem:
    """The reduced block, or the reducer's failure raised (as `throw=True` would have)."""
    rom, result = reduced
    if bool(result != RESULTS.successful):
        raise ValueError(f"{caller}: a layer's block could not be reduced: {RESULTS[result]}")
    return rom


def _solution(rom: DiagonalLQOSystem, stats: dict) -> Solution:
    return Solution(value=rom, result=RESULTS.successful, stats=stats)


def _is_stable_block(sys: DiagonalLQOSystem) -> bool:
    return bool(jnp.all(jnp.abs(sys.poles) < 1))


def _white(sys: DiagonalLQOSystem) -> Array:
    return jnp.eye(sys.m, dtype=sys.D.dtype)


def _input_weight(sys: DiagonalLQOSystem, data: "LayerData", input_aware: bool) -> Array:
    """The second moment an input-aware method weights by; `I` (a white input) otherwise.

    A plain method is its input-aware twin with `W = I`, so that both share one compiled
    function; the results agree to rounding.
    """
    moment = data.second_moment if input_aware else None
    return _white(sys) if moment is None else moment


class LayerData(eqx.Module):
    """What a layerwise method measured on the calibration data for one layer."""

    second_moment: Array | None = None  # E[s sᵀ] of the layer's input
    split: Array | None = None  # (w₁, w₂): the bound's first-order weights, normalised


class AbstractCompressionMethod(eqx.Module):
    """A way to compress every layer of a deep SSM to given ranks, without retraining."""

    #: Whether the method weights each layer by its input's second moment.
    input_aware: eqx.AbstractVar[bool]

    @property
    def needs_calibration(self) -> bool:
        """Whether the method needs unlabelled calibration inputs (default: if input-aware)."""
        return self.input_aware

    @abc.abstractmethod
    def compress_model(
        self, model: DeepSSM, ranks: tuple[int, ...], *, calibration, horizon, max_steps, slots
    ) -> tuple[DeepSSM | None, dict]:
        """The compressed model (`None` if a block came out unstable) and per-layer details."""

    def allocate(self, model: DeepSSM, budget: int, calibration, horizon) -> tuple[int, ...]:
        """Per-layer ranks for a total of `budget` states: LAST's normalised rule on the
        (input-weighted, for an input-aware method) Hankel singular values."""
        moments = None
        if self.input_aware:
            moments = layer_input_second_moments(model, calibration)
        return budget_ranks(model, budget, second_moments=moments, horizon=horizon)


class AbstractLayerwiseMethod(AbstractCompressionMethod):
    """A method that reduces each layer's block independently of the others."""

    def layer_data(self, model: DeepSSM, calibration, horizon) -> list[LayerData]:
        """Per-layer data measured on `calibration` (default: the input second moments of an
        input-aware method, nothing otherwise)."""
        if self.input_aware and calibration is not None:
            return [LayerData(m) for m in layer_input_second_moments(model, calibration)]
        return [LayerData() for _ in model.layers]

    @abc.abstractmethod
    def reduce_layer(
        self, sys: DiagonalLQOSystem, r: int, data: LayerData, *, horizon, max_steps, slots
    ) -> Solution:
        """Reduce one block to `r` states: `Solution(value=reduced block, stats=...)`."""

    def compress_model(self, model, ranks, *, calibration, horizon, max_steps, slots):
        data = self.layer_data(model, calibration, horizon)
        layers, infos = [], []
        for layer, r, layer_data in zip(model.layers, ranks, data, strict=True):
            sol = self.reduce_layer(
                layer.system(), r, layer_data, horizon=horizon, max_steps=max_steps, slots=slots
            )
            infos.append(dict(sol.stats))
            if not _is_stable_block(sol.value):
                return None, {"ranks": ranks, "stable": False, "layers": infos}
            layers.append(SSMLayer.from_system(sol.value, layer.norm))
        return model.with_layers(layers), {"ranks": ranks, "stable": True, "layers": infos}


class ModalTruncation(AbstractLayerwiseMethod):
    """Keep each block's `r` most dominant poles ([`jaxlqo.modal_truncation`][])."""

    input_aware: bool = eqx.field(default=False, static=True)

    def reduce_layer(self, sys, r, data, *, horizon, max_steps, slots):
        return _solution(_successful(_modal(sys, r), "modal"), {})


class ModePruning(AbstractLayerwiseMethod):
    """Keep each block's `r` highest-scored modes (the LAST and AIRE-Prune baselines).

    A global budget is split by one threshold on the layer-normalised scores
    ([`jaxlqo.ssm.global_threshold_ranks`][]), as LAST does.
    """

    score: AbstractModeScore
    input_aware: bool = eqx.field(default=False, static=True)

    def reduce_layer(self, sys, r, data, *, horizon, max_steps, slots):
        return _solution(prune_layer(sys, r, self.score).value, {})

    def allocate(self, model, budget, calibration, horizon):
        scores = [self.score(layer.system()) for layer in model.layers]
        return global_threshold_ranks(scores, budget)


class BalancedTruncation(AbstractLayerwiseMethod):
    """Balanced truncation of each block; `input_aware`: of the block with input matrix
    `B W^{1/2}`, `W` the layer input's second moment on the calibration data."""

    input_aware: bool = eqx.field(default=False, static=True)

    def reduce_layer(self, sys, r, data, *, horizon, max_steps, slots):
        moment = _input_weight(sys, data, self.input_aware)
        reduced = _balanced(sys, r, horizon, input_weight_roots(moment))
        return _solution(_successful(reduced, "balanced truncation"), {})


class TimeLimitedH2(AbstractLayerwiseMethod):
    """Time-limited h2 reduction without stability constraint ([`jaxlqo.tlh2`][]) from BT.

    May return an unstable block, which the layer cannot hold (reported, not repaired).
    The horizon defaults to `10 n` when none is given.
    """

    input_aware: bool = eqx.field(default=False, static=True)

    def reduce_layer(self, sys, r, data, *, horizon, max_steps, slots):
        horizon = horizon if horizon is not None else 10 * sys.n
        slots = r if slots is None else slots
        start = _successful(
            _balanced(sys, r, horizon, input_weight_roots(_white(sys))), "tlh2 (its balanced start)"
        )
        sol = tlh2(sys, slots, horizon=horizon, init=_pad(start, slots), max_steps=max_steps)
        return _solution(_unpad(sol.value, r), {"stable": bool(sol.stats["stable"])})


class LayerwiseH2(AbstractLayerwiseMethod):
    """Layerwise (time-limited) h2-optimal reduction with a stable parameterisation
    ([`jaxlqo.reduce`][]), started from (input-weighted) balanced truncation."""

    input_aware: bool = eqx.field(default=False, static=True)

    def _split(self, data: LayerData) -> Array | None:
        return None

    def reduce_layer(self, sys, r, data, *, horizon, max_steps, slots):
        moment = _input_weight(sys, data, self.input_aware)
        start = _successful(
            _balanced(sys, r, horizon, input_weight_roots(moment)), "h2 (its balanced start)"
        )
        slots = r if slots is None else slots
        sol = reduce(
            sys,
            slots,
            horizon=horizon,
            init=_pad(start, slots),
            weight=moment,
            split=self._split(data),
            max_steps=max_steps,
        )
        return _solution(_unpad(sol.value, r), {"steps": int(sol.stats["steps"])})


class BoundWeighted(LayerwiseH2):
    """The paper's method: each block minimises its share
    `α_i ‖Σ_{i,1} − Σ̂_{i,1}‖ + β_i ‖Σ_{i,2} − Σ̂_{i,2}‖` of the first-order output-error
    bound ([`jaxlqo.ssm.bound_weights`][], computed on the calibration data).

    `weights`: `(α, β)` from `ssm.bound_weights(model, calibration, horizon=…)` computed once
    by the caller, to reuse across a sweep of ranks (they depend on neither the rank nor
    `input_aware`); `None` (default) computes them on every call.
    """

    weights: tuple[Array, Array] | None = None

    @property
    def needs_calibration(self) -> bool:
        return True  # the bound's weights are measured on the calibration data

    def layer_data(self, model, calibration, horizon):
        moments = [None] * len(model.layers)
        if self.input_aware:
            moments = layer_input_second_moments(model, calibration)
        if self.weights is None:
            alpha, beta = bound_weights(model, calibration, horizon=horizon)
        else:
            alpha, beta = self.weights
            if jnp.shape(alpha) != (len(model.layers),) or jnp.shape(beta) != jnp.shape(alpha):
                raise ValueError(
                    f"BoundWeighted: `weights` must be two arrays of one weight per layer "
                    f"({len(model.layers)}), as ssm.bound_weights returns; got shapes "
                    f"{jnp.shape(alpha)} and {jnp.shape(beta)}."
                )
        # Only the ratio matters per layer; normalise so the objective is O(error).
        return [
            LayerData(m, jnp.stack([a, b]) / (a + b))
            for m, a, b in zip(moments, alpha, beta, strict=True)
        ]

    def _split(self, data):
        return data.split


class OutputMatching(AbstractCompressionMethod):
    """Output matching ([`jaxlqo.ssm.match_layer`][]): layer by layer, input-weighted BT
    refined so the layer reproduces the full layer's output on the calibration sequences fed
    through the already compressed layers (the last layer matches the logits)."""

    input_aware: bool = eqx.field(default=True, static=True)

    def compress_model(self, model, ranks, *, calibration, horizon, max_steps, slots):
        full_inputs = jax.vmap(model.layer_inputs)(calibration)
        # The last layer matches the logits: only what the head reads of its output matters.
        targets = full_inputs[1:] + [jax.vmap(model)(calibration)]
        readouts = [None] * (len(model.layers) - 1) + [model.classify]
        moments = second_moments_of(full_inputs)
        upstream = full_inputs[0]  # the encoder is shared
        start_method = BalancedTruncation(input_aware=True)
        layers, infos = [], []
        for layer, r, target, readout, moment in zip(
            model.layers, ranks, targets, readouts, moments, strict=True
        ):
            start = start_method.reduce_layer(
                layer.system(), r, LayerData(moment), horizon=horizon, max_steps=0, slots=None
            ).value
            matched = match_layer(
                _pad(start, r if slots is None else slots),
                layer.norm,
                upstream,
                target,
                readout=readout,
                max_steps=max_steps,
            )
            refined, stats = _unpad(matched.value, r), matched.stats
            infos.append(
                {
                    "steps": int(stats["steps"]),
                    "initial_objective": float(stats["initial_objective"]),
                    "objective": float(stats["objective"]),
                }
            )
            if not _is_stable_block(refined):
                return None, {"ranks": ranks, "stable": False, "layers": infos}
            compressed_layer = SSMLayer.from_system(refined, layer.norm)
            layers.append(compressed_layer)
            upstream = jax.vmap(compressed_layer)(upstream)
        return model.with_layers(layers), {"ranks": ranks, "stable": True, "layers": infos}


#: The methods by the names the command line and `compress(method=...)` use, in the order
#: the main job reports them.
METHOD_TABLE: dict[str, AbstractCompressionMethod] = {
    "modal": ModalTruncation(),
    "last": ModePruning(score=HInfinityModeScore()),
    "aire": ModePruning(score=H2ModeScore()),
    "bt": BalancedTruncation(),
    "tlh2": TimeLimitedH2(),
    "h2": LayerwiseH2(),
    "bound": BoundWeighted(),
    "bt-input": BalancedTruncation(input_aware=True),
    "h2-input": LayerwiseH2(input_aware=True),
    "bound-input": BoundWeighted(input_aware=True),
    "match": OutputMatching(),
}
