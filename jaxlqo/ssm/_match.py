r"""Layerwise output matching: refine a reduced block on unlabelled calibration sequences.

The h2 objectives treat a block's input as white noise in time (the input-aware ones give it
the measured covariance `E[s sᵀ]`, still white in time). A layer's real input is neither: the
first layer sees an affine image of a smooth scalar signal. Output matching uses the real
input process instead. For layer `i`, with `ŝⁱ⁻¹` the calibration sequences after the already
compressed layers `1, …, i−1` and `sⁱ` the full model's output of layer `i` on the same
sequences, the reduced block's parameters `θ` (stable modal parameters, as in
[`jaxlqo.reduce`][]) minimise

    J(θ) = mean_{n,k} ‖ LN_i(ŝⁱ⁻¹_{n,k} + σ(Ŝ_θ(ŝⁱ⁻¹_n)_k)) − sⁱ_{n,k} ‖²,

the layer's own output error on the data, including GELU and LayerNorm. Because the target is
the *full* model's output and the input comes from the *compressed* upstream layers, each layer
also corrects the error its predecessors left. No labels are used and no other parameter
changes: the feedthrough `D_i`, the LayerNorm, encoder and head are the original ones.

The optimiser is the one of [`jaxlqo.reduce`][] (L-BFGS, best iterate kept), started from the
given reduced block (e.g. input-weighted balanced truncation), so the result is never worse on
the calibration data than its start, and every iterate is stable.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._reduction._optimise import minimise_lbfgs, parameters_from
from .._solution import Solution
from .._systems import DiagonalLQOSystem
from ._model import block_output_batch, gelu


def match_layer(
    rom: DiagonalLQOSystem,
    norm: eqx.nn.LayerNorm,
    inputs: Array,
    targets: Array,
    *,
    readout=None,
    max_steps: int = 100,
    tol: float = 1e-8,
) -> Solution:
    r"""Refine `rom` so that `LN(s + σ(Ŝ(s)))` matches `targets` on the calibration `inputs`.

    **Arguments:**

    - `rom`: the starting reduced block (discrete, `H` inputs and outputs, stable).
    - `norm`: the layer's LayerNorm (kept fixed).
    - `inputs`: `(N, L, H)` the layer's inputs (from the compressed upstream layers).
    - `targets`: `(N, L, H)` the full layer's outputs on the full model's trajectory.
    - `readout`: optional map applied to one `(L, H)` output sequence before comparing
        (e.g. the classifier, so the last layer matches the logits: only what the head reads
        of the last layer's output matters); `targets` are then the full model's readouts.
    - `max_steps`, `tol`: L-BFGS settings, as for [`jaxlqo.reduce`][].

    **Returns:** a [`jaxlqo.Solution`][]: `value` is the refined block, `result` says whether
    L-BFGS met `tol` (`successful`), stopped at `max_steps` (`max_steps_reached`, the usual
    case: the best iterate is kept either way) or met a non-finite objective;
    `stats["objective"]` is the final mean squared error, `stats["initial_objective"]` that of
    `rom`, `stats["steps"]` the number of steps taken.
    """
    if inputs.ndim != 3 or inputs.shape[-1] != rom.m or targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"match_layer: `inputs` must be (N, L, H) with H = {rom.m} and `targets` must have "
            f"the same N; got {inputs.shape} and {targets.shape}."
        )
    readout = _identity if readout is None else readout
    return _match(rom, norm, inputs, targets, readout, max_steps, tol)


def _identity(out: Array) -> Array:
    # A module-level function (not a fresh lambda): the compiled `_match` is reused.
    return out


@eqx.filter_jit
def _match(rom, norm, inputs, targets, readout, max_steps, tol):
    params0 = parameters_from(rom, jnp.ones(rom.n, rom.D.dtype))

    # Time-major once: the block runs on the whole batch at once (real GEMMs over all steps
    # and a scan suited to the backend, `block_output_batch`), not one sequence at a time.
    inputs_tm = jnp.moveaxis(inputs, 1, 0)

    def objective(params):
        block = params.system(rom.D, rom.dt)
        quadratic = block.quadratic_readout
        parts = None
        if quadratic is not None:
            f, g = quadratic
            parts = (jnp.real(f), jnp.imag(f), jnp.real(g), jnp.imag(g))
        y = block_output_batch(
            block.poles,
            (jnp.real(block.B), jnp.imag(block.B)),
            (jnp.real(block.C), jnp.imag(block.C)),
            block.D,
            parts,
            inputs_tm,
        )
        out = jax.vmap(jax.vmap(norm))(jnp.moveaxis(inputs_tm + gelu(y), 0, 1))
        mismatch = jax.vmap(readout)(out) - targets
        return jnp.sum(mismatch**2) / (inputs.shape[0] * inputs.shape[1])

    best, result, stats = minimise_lbfgs(objective, params0, max_steps, tol)
    return Solution(best.system(rom.D, rom.dt), result, stats)
