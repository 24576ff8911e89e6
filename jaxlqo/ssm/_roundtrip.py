r"""Compress every SSM layer of a foreign (S5 or LRU) parameter tree, and write it back.

Import ([`jaxlqo.ssm.system_from_s5`][] / [`jaxlqo.ssm.system_from_lru`][]) → reduce
([`jaxlqo.ssm.compress_layer`][]) → make exact for the layer ([`jaxlqo.ssm.exportable`][]) →
export ([`jaxlqo.ssm.system_to_s5`][] / [`jaxlqo.ssm.system_to_lru`][]), layer by layer. Every
other parameter of the tree (encoder, normalisations, GLU, decoder) is passed through untouched;
the caller's own code loads the new tree (with `P'` states in its SSM config) and runs it.
"""

import collections.abc
from collections.abc import Mapping, Sequence
from typing import TypedDict

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._misc import as_inexact_array
from .._norms import h2_error, h2_norm
from ._bidirectional import bidirectional_h2_error, bidirectional_h2_norm
from ._compress import compress_layer
from ._export import exportable, system_to_lru, system_to_s5
from ._import import layer_prefixes, load_params, system_from_lru, system_from_s5

#: The methods [`jaxlqo.ssm.compress_s5`][] and [`jaxlqo.ssm.compress_lru`][] accept: the
#: data-free ones and the input-aware ones that need only each layer's input second moment.
#: (`bound`, `bound-input` and `match` need a [`jaxlqo.ssm.DeepSSM`][]: the whole model's
#: trajectory, not only its SSM parameters.)
PARAMETER_METHODS = ("modal", "bt", "tlh2", "h2", "bt-input", "h2-input")


class _S5Settings(TypedDict):
    """The S5 model's settings, shared by `system_from_s5` and `system_to_s5`."""

    conj_sym: bool
    discretization: str
    step_rescale: float
    clip_eigs: bool


# Compiled: eager dispatch of the closed forms costs more than one compilation per shape.
_h2_error, _h2_norm = eqx.filter_jit(h2_error), eqx.filter_jit(h2_norm)


def input_second_moment(inputs: Array) -> Array:
    r"""$E[u u^\top]$ `(H, H)` of a layer's inputs, over all sequences and steps.

    **Arguments:**

    - `inputs`: the inputs the SSM sees in the caller's model, `(N, L, H)` (or one sequence
        `(L, H)`), recorded on unlabelled calibration data.

    **Returns:** the second moment (not the covariance: the block responds to the input's mean
    as well), as [`jaxlqo.ssm.compress_s5`][]'s `second_moments` take it.
    """
    u = as_inexact_array(inputs, "inputs", "input_second_moment")
    if u.ndim == 2:
        u = u[None]
    if u.ndim != 3:
        raise ValueError(
            f"input_second_moment: `inputs` must have shape (N, L, H) or (L, H); got {u.shape}."
        )
    return jnp.einsum("nlh,nlg->hg", u, u) / (u.shape[0] * u.shape[1])


def _per_layer(value, prefixes: list, name: str, caller: str) -> dict:
    """A per-layer setting: one value for all, a mapping by prefix, or a sequence in order."""
    if isinstance(value, Mapping):
        missing = [p for p in prefixes if p not in value]
        if missing:
            raise ValueError(
                f"{caller}: `{name}` has no entry for the layers {missing}; its keys must be the "
                f"layer prefixes {prefixes}."
            )
        return {p: value[p] for p in prefixes}
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(prefixes):
            raise ValueError(
                f"{caller}: `{name}` needs one entry per SSM layer ({len(prefixes)}: {prefixes}); "
                f"got {len(value)}."
            )
        return dict(zip(prefixes, value, strict=True))
    return {p: value for p in prefixes}


def _rebuild(tree, updates: dict, parent: str = "") -> dict:
    """A copy of the nested `tree` (plain dicts) with the leaves named in `updates` replaced."""
    out = {}
    for key, value in tree.items():
        name = f"{parent}{key}"
        if isinstance(value, collections.abc.Mapping):
            out[key] = _rebuild(value, updates, name + "/")
        else:
            out[key] = updates.get(name, value)
    return out


def _like(new: np.ndarray, old) -> np.ndarray:
    """`new` in the layout and dtype of the parameter it replaces."""
    old = np.asarray(old)
    if np.iscomplexobj(old) and not np.iscomplexobj(new):
        new = new[..., 0] + 1j * new[..., 1]
    if new.ndim == old.ndim + 1 and new.shape[-1] == 1:  # log_step stored (P,)
        new = new[..., 0]
    if new.ndim == 1 and old.ndim == 2 and old.shape[0] == old.shape[1]:  # a D stored (H, H)
        new = np.diag(new)
    return new.astype(old.dtype)


def _compress_tree(params, rank, method, second_moments, horizon, max_steps, caller, kind, run):
    """The shared loop; `run(flat, prefix) -> (system, export)` imports one layer."""
    if method not in PARAMETER_METHODS:
        raise ValueError(
            f"{caller}: method {method!r} is not available for a parameter tree; choose from "
            f"{PARAMETER_METHODS}. ('bound', 'bound-input' and 'match' need the whole model's "
            "trajectory: use `jaxlqo.ssm.compress` on a `jaxlqo.ssm.DeepSSM`.)"
        )
    input_aware = method.endswith("-input")
    if input_aware and second_moments is None:
        raise ValueError(
            f"{caller}: method {method!r} needs `second_moments`, each layer's E[u uᵀ] (H, H) "
            "(see `jaxlqo.ssm.input_second_moment`)."
        )
    if not input_aware and second_moments is not None:
        raise ValueError(
            f"{caller}: method {method!r} is data-free and ignores `second_moments`; use "
            f"{method + '-input'!r} to weight the reduction by them."
        )
    flat = load_params(params, caller)
    prefixes = layer_prefixes(flat, kind)
    if not prefixes:
        raise ValueError(
            f"{caller}: no {kind.upper()} layer in `params` (see the parameter names in the "
            f"docstring of `jaxlqo.ssm.system_from_{kind}`); its keys are {sorted(flat)[:20]}."
        )
    ranks = _per_layer(rank, prefixes, "rank", caller)
    moments = _per_layer(second_moments, prefixes, "second_moments", caller)
    updates = {}
    info = {
        "layers": prefixes,
        "ranks": {},
        "h2_errors": {},
        "h2_norms": {},
        "bidirectional": {},
        "systems": {},
    }
    for pre in prefixes:
        sys, export = run(flat, pre)
        r = ranks[pre]
        if not isinstance(r, (int, np.integer)) or not 1 <= r <= sys.n:
            raise ValueError(
                f"{caller}: the rank of layer {pre!r} must be an int between 1 and its {sys.n} "
                f"states; got {r!r}."
            )
        moment = moments[pre]
        if moment is not None:
            moment = as_inexact_array(moment, "second_moments", caller).astype(sys.D.dtype)
            if moment.shape != (sys.m, sys.m):
                raise ValueError(
                    f"{caller}: the second moment of layer {pre!r} must have shape "
                    f"({sys.m}, {sys.m}); got {moment.shape}."
                )
        rom = compress_layer(
            sys, int(r), method=method, horizon=horizon, second_moment=moment, max_steps=max_steps
        ).value
        if not bool(jnp.all(jnp.abs(rom.poles) < 1)):
            raise ValueError(
                f"{caller}: method {method!r} returned an unstable block for layer {pre!r}; use "
                "'h2' (stable by construction) or another rank."
            )
        layer = exportable(rom)
        bidirectional = sys.p == 2 * sys.m
        if bidirectional:
            error, norm = bidirectional_h2_error(sys, layer), bidirectional_h2_norm(sys)
        else:
            error, norm = _h2_error(sys, layer), _h2_norm(sys)
        for key, value in export(layer).items():
            updates[pre + key] = _like(value, flat[pre + key])
        info["ranks"][pre] = int(r)
        info["h2_errors"][pre] = float(error)
        info["h2_norms"][pre] = float(norm)
        info["bidirectional"][pre] = bidirectional
        info["systems"][pre] = layer
    if isinstance(params, collections.abc.Mapping):
        return _rebuild(params, updates), info
    return {**flat, **updates}, info


def compress_s5(
    params,
    rank: int | Sequence[int] | Mapping,
    *,
    method: str = "bt",
    second_moments=None,
    horizon=None,
    max_steps: int = 100,
    conj_sym: bool = True,
    discretization: str = "zoh",
    step_rescale: float = 1.0,
    clip_eigs: bool = False,
) -> tuple[dict, dict]:
    r"""Compress every S5 layer's SSM in an S5 parameter tree, returning a tree S5 loads.

    Each layer (found by its parameter names, bidirectional ones included: see
    [`jaxlqo.ssm.system_from_s5`][]) is imported, reduced to `rank` states, made exact for an
    S5 layer ([`jaxlqo.ssm.exportable`][]) and written back with
    [`jaxlqo.ssm.system_to_s5`][] in the input's layout (`C` or `C1`/`C2`, real pairs or
    complex, `log_step` `(P, 1)` or `(P,)`, dtype), with step $\Delta$ the geometric mean of
    the layer's trained steps. Build the model that loads it with the rank as `S5SSM`'s `P`
    (the number of eigenvalues stored: S5's training script passes `ssm_size_base // 2` with
    `conj_sym`, so set `ssm_size_base = 2 P'` there) and the same settings; the initialisers'
    `Lambda_*_init`, `V`, `Vinv` only need the new size, as the loaded parameters replace what
    they draw.

    **Arguments:**

    - `params`: the model's parameters: a (nested) mapping such as a flax `params` tree, or a
        `.npz` path (as for [`jaxlqo.ssm.system_from_s5`][]).
    - `rank`: states kept per layer: an int, a mapping from prefix to int, or one int per layer
        in the order of `info["layers"]` (natural order of the prefixes: `layers_2/` before
        `layers_10/`).
    - `method`: keyword-only; one of `PARAMETER_METHODS`, named as in
        [`jaxlqo.ssm.compress`][]: `"modal"`, `"bt"` (default), `"tlh2"` (may return an
        unstable block: `ValueError`), `"h2"` need only the parameters; `"bt-input"`,
        `"h2-input"` weight each layer's reduction by its input second moment.
    - `second_moments`: keyword-only; for the input-aware methods, each layer's
        $E[u u^\top]$ `(H, H)` (a mapping from prefix, or a sequence in layer order). Compute
        them with your own model: record the input `u` `(N, L, H)` each SSM receives on
        unlabelled calibration sequences (in flax, e.g. an `nn.intercept_methods`
        interceptor that keeps `args[0]` of each SSM module's `__call__`, or
        `capture_intermediates` on the module that produces it, the layer's normalisation)
        and pass [`jaxlqo.ssm.input_second_moment`][]`(u)`.
    - `horizon`, `max_steps`: keyword-only; as in [`jaxlqo.ssm.compress_layer`][].
    - `conj_sym`, `discretization`, `step_rescale`, `clip_eigs`: keyword-only; the S5 model's
        settings, used both to import and to export.

    **Returns:** `(new_params, info)`: the tree with every SSM layer's parameters replaced
    (nested plain dicts with the input's structure; a flat dict for a `.npz` path, to be
    written back with `np.savez(path, **new_params)`), every other leaf passed through as it
    is; and `info`, a dict with `layers` (the prefixes, in order), and per prefix `ranks`,
    `h2_errors` (the h2 norm of the exported layer's map minus the original's: the error the
    new parameters really have, [`jaxlqo.ssm.exportable`][]'s lag-0 correction included;
    bidirectional layers: [`jaxlqo.ssm.bidirectional_h2_error`][]), `h2_norms` (of the
    original layers), `bidirectional` and `systems` (the exported layers as jaxlqo systems:
    [`jaxlqo.simulate`][] of one equals the new parameters' forward pass).
    """
    caller = "compress_s5"
    settings = _S5Settings(
        conj_sym=conj_sym,
        discretization=discretization,
        step_rescale=step_rescale,
        clip_eigs=clip_eigs,
    )

    def run(flat, pre):
        sys = system_from_s5(flat, prefix=pre, **settings)
        log_step = np.asarray(flat[pre + "log_step"], dtype=np.float64)
        step = float(step_rescale * np.exp(np.mean(log_step)))  # geometric mean of the Δ's
        stacked = pre + "C1" not in flat

        def export(layer):
            return system_to_s5(layer, step=step, stacked_readout=stacked, **settings)

        return sys, export

    return _compress_tree(
        params, rank, method, second_moments, horizon, max_steps, caller, "s5", run
    )


def compress_lru(
    params,
    rank: int | Sequence[int] | Mapping,
    *,
    method: str = "bt",
    second_moments=None,
    horizon=None,
    max_steps: int = 100,
) -> tuple[dict, dict]:
    """Compress every LRU layer in an LRU parameter tree, returning a tree the LRU code loads.

    Each layer ([`jaxlqo.ssm.system_from_lru`][]'s names) is imported, reduced to `rank`
    states, made exact for an LRU layer ([`jaxlqo.ssm.exportable`][]) and written back with
    [`jaxlqo.ssm.system_to_lru`][] in the input's dtype, with `gamma_log` when the input has it.
    Build the model that loads it with `d_hidden` = the rank.

    **Arguments** and **returns** as for [`jaxlqo.ssm.compress_s5`][] (without its S5
    settings).
    """
    caller = "compress_lru"

    def run(flat, pre):
        gamma = pre + "gamma_log" in flat
        return system_from_lru(flat, prefix=pre), lambda layer: system_to_lru(layer, gamma=gamma)

    return _compress_tree(
        params, rank, method, second_moments, horizon, max_steps, caller, "lru", run
    )
