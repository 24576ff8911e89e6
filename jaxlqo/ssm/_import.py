r"""Import trained S5 and LRU layers as complex-diagonal systems.

Both codebases run the recurrence with the *current* input already in the state,

$$h_k = \bar\Lambda \odot h_{k-1} + \bar B u_k,\qquad
  y_k = \operatorname{Re}(c\, \tilde C h_k) + D \odot u_k, \qquad h_{-1} = 0,$$

(`c = 2` for S5 with conjugate symmetry, else `c = 1`), whereas a
[`jaxlqo.DiagonalLQOSystem`][] is strictly causal (`x_{k+1} = λ x_k + B u_k`, `y_k = Re(C x_k) +
D u_k`, `x_0 = 0`). With `x_k = h_{k-1}`, `h_k = Λ̄ x_k + B̄ u_k`, so the same input-output map
is exactly

$$\lambda = \bar\Lambda,\quad B = \bar B,\quad C = c\,\tilde C \operatorname{diag}(\bar\Lambda),
  \quad D_{\text{jaxlqo}} = \operatorname{diag}(D) + \operatorname{Re}(c\,\tilde C \bar B),
  \quad dt = 1 .$$

**Bidirectional S5 layers** run the same $(\bar\Lambda, \bar B)$ forwards and backwards in time
with two readouts, $y_k = \operatorname{Re}(c\,\tilde C_1 h^{\to}_k) + \operatorname{Re}(c\,\tilde
C_2 h^{\leftarrow}_k) + D \odot u_k$ with $h^{\to}_k = \sum_{j \le k} \bar\Lambda^{k-j} \bar B u_j$
and $h^{\leftarrow}_k = \sum_{j \ge k} \bar\Lambda^{j-k} \bar B u_j$. The backward part is the
forward recurrence run on the reversed sequence, so the layer is exactly one system with stacked
outputs $[C_1; C_2]$ (`p = 2H`: the first `H` outputs read forwards, the last `H` backwards),
applied to the sequence and to its reverse ([`jaxlqo.ssm.simulate_bidirectional`][]). The
layer's elementwise `D` goes to the forward block; the backward block's feedthrough is its own
current-input term $\operatorname{Re}(c\,\tilde C_2 \bar B)$.

**Parameter sets.** `params` is a mapping of names to arrays (a flax `params` tree, nested
dicts are flattened with `/`), or the path of a `.npz` file (e.g. written by
`np.savez(path, **flat_params)`). The parameters of one layer are found by their names (below);
when the tree holds several layers, pass `prefix=` (e.g. `"encoder/layers_0/seq/"`); the error
message lists the prefixes found.

The resulting system feeds every jaxlqo tool (`h2_norm`, `balanced_truncation`, `reduce`, ...);
[`jaxlqo.ssm.SSMLayer.from_system`][] turns it into a layer whose `block` is the imported SSM
(the surrounding nonlinearity, normalisation and GLU of the original S5/LRU layer are not
imported).

??? cite "References"
    J. T. H. Smith, A. Warrington, S. Linderman, "Simplified State Space Layers for Sequence
    Modeling", ICLR 2023 (S5; `github.com/lindermanlab/S5`, `s5/ssm.py`).
    A. Orvieto et al., "Resurrecting Recurrent Neural Networks for Long Sequences", ICML 2023
    (LRU; the parameter names of `github.com/NicolasZucchet/minimal-LRU`, `lru/model.py`).
"""

import collections.abc
import os
import re

import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._misc import as_inexact_array, complex_dtype, promoted_dtype
from .._systems import DiagonalLQOSystem

# The readout is `C`, or `C1` and `C2` (bidirectional; see _s5_readouts).
_S5_NAMES = ("Lambda_re", "Lambda_im", "B", "D", "log_step")
_LRU_NAMES = ("nu_log", "theta_log", "B_re", "B_im", "C_re", "C_im", "D")


def flatten_params(tree, parent: str = "") -> dict:
    """A nested mapping of parameters as one flat dict with `/`-joined keys."""
    out = {}
    for key, value in tree.items():
        name = f"{parent}{key}"
        if isinstance(value, collections.abc.Mapping):
            out.update(flatten_params(value, name + "/"))
        else:
            out[name] = value
    return out


def load_params(params, caller: str) -> dict:
    """`params` (a mapping, nested or flat, or a `.npz` path) as a flat dict of arrays."""
    if isinstance(params, (str, os.PathLike)):
        with np.load(params) as f:
            return {k: f[k] for k in f.files}
    if isinstance(params, collections.abc.Mapping):
        return flatten_params(params)
    raise TypeError(
        f"{caller}: `params` must be a mapping of parameter names to arrays or the path of a "
        f".npz file; got {type(params).__name__}."
    )


def _select(flat: dict, names: tuple, prefix, caller: str) -> str:
    """The prefix under which all `names` exist (given, or found when it is unique)."""
    if prefix is not None:
        missing = [n for n in names if prefix + n not in flat]
        if missing:
            raise ValueError(
                f"{caller}: no parameter{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(prefix + n) for n in missing)} in `params`; its keys are "
                f"{_keys(flat)}."
            )
        return prefix
    first = names[0]
    candidates = sorted(
        k[: len(k) - len(first)] for k in flat if k == first or k.endswith("/" + first)
    )
    complete = [c for c in candidates if all(c + n in flat for n in names)]
    if len(complete) == 1:
        return complete[0]
    if not complete:
        raise ValueError(
            f"{caller}: `params` lacks the parameters {', '.join(names)} (expected names; see "
            f"the docstring); its keys are {_keys(flat)}."
        )
    raise ValueError(
        f"{caller}: `params` holds {len(complete)} layers, under the prefixes {complete}; pass "
        f"`prefix=` to choose one (e.g. prefix={complete[0]!r})."
    )


def layer_prefixes(flat: dict, kind: str) -> list[str]:
    """The prefixes of every complete S5 (`kind="s5"`) or LRU (`"lru"`) layer in `flat`.

    Sorted naturally (`layers_2/` before `layers_10/`), which is the layer order of flax trees.
    """
    names = {"s5": _S5_NAMES, "lru": _LRU_NAMES}[kind]
    first = names[0]
    found = [k[: len(k) - len(first)] for k in flat if k == first or k.endswith("/" + first)]
    complete = [pre for pre in found if all(pre + n in flat for n in names)]
    if kind == "s5":
        complete = [
            pre
            for pre in complete
            if pre + "C" in flat or (pre + "C1" in flat and pre + "C2" in flat)
        ]
    return sorted(complete, key=_natural_key)


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _keys(flat: dict) -> str:
    keys = sorted(flat)
    return repr(keys[:20])[:-1] + (", ...]" if len(keys) > 20 else "]")


def _real(flat, key, caller) -> Array:
    x = as_inexact_array(flat[key], key, caller)
    if jnp.iscomplexobj(x):
        raise TypeError(f"{caller}: `{key}` must be real; got dtype {x.dtype}.")
    return x


def _complex_param(flat, key, shape: tuple, caller: str, cdtype) -> Array:
    """A complex parameter stored complex of `shape`, or real with a trailing (re, im) axis."""
    x = as_inexact_array(flat[key], key, caller)
    if jnp.iscomplexobj(x) and x.shape == shape:
        return x.astype(cdtype)
    if not jnp.iscomplexobj(x) and x.shape == shape + (2,):
        rdtype = jnp.finfo(cdtype).dtype
        return lax.complex(x[..., 0].astype(rdtype), x[..., 1].astype(rdtype))
    raise ValueError(
        f"{caller}: `{key}` must have shape {shape + (2,)} (real and imaginary parts on the last "
        f"axis) or be complex of shape {shape}; got {x.dtype} of shape {x.shape}."
    )


def _feedthrough(flat, key, H: int, caller: str, rdtype) -> Array:
    d = _real(flat, key, caller)
    if d.shape == (H,):
        return jnp.diag(d.astype(rdtype))  # both codebases apply D elementwise
    if d.shape == (H, H):
        return d.astype(rdtype)
    raise ValueError(
        f"{caller}: `{key}` must have shape ({H},) (or ({H}, {H})); got shape {d.shape}."
    )


def _check(x: Array, shape: tuple, key: str, caller: str, meaning: str) -> None:
    if x.shape != shape:
        raise ValueError(f"{caller}: `{key}` must have shape {shape} ({meaning}); got {x.shape}.")


def _to_strictly_causal(poles, b, c_tilde, d, scale) -> DiagonalLQOSystem:
    """`h_k = λh_{k-1} + Bu_k, y_k = Re(s C̃ h_k) + Du_k` in strictly causal form (module doc).

    `c_tilde` (p, P) and `d` (p, H): for a bidirectional layer the stacked `[C̃₁; C̃₂]` and
    `[diag(D); 0]`.
    """
    c = scale * c_tilde
    d = d + jnp.real(c @ b).astype(d.dtype)
    return DiagonalLQOSystem(poles, b, c * poles[None, :], d, dt=1.0)


def _s5_readouts(flat, pre, P, H, bidirectional, caller, cdtype) -> tuple[Array, bool]:
    """`C̃` (H, P), or the stacked `[C̃₁; C̃₂]` (2H, P) of a bidirectional layer.

    S5 names the two readouts `C1` and `C2` (each `(H, P, 2)`), except with
    `C_init="complex_normal"`, where one `C` of shape `(H, 2P, 2)` holds `[C̃₁, C̃₂]`.
    """
    if pre + "C1" in flat and pre + "C2" in flat:
        if pre + "C" in flat:
            raise ValueError(
                f"{caller}: `params` holds both `{pre}C` and `{pre}C1`/`{pre}C2`; an S5 layer has "
                "one or the other. Pass the layer's own parameters."
            )
        found = True
        parts = [_complex_param(flat, pre + k, (H, P), caller, cdtype) for k in ("C1", "C2")]
    elif pre + "C" in flat:
        c_raw = as_inexact_array(flat[pre + "C"], pre + "C", caller)
        found = c_raw.ndim >= 2 and c_raw.shape[:2] == (H, 2 * P)
        if found:
            c = _complex_param(flat, pre + "C", (H, 2 * P), caller, cdtype)
            parts = [c[:, :P], c[:, P:]]
        else:
            parts = [_complex_param(flat, pre + "C", (H, P), caller, cdtype)]
    else:
        raise ValueError(
            f"{caller}: `params` has no readout `{pre}C` (or `{pre}C1` and `{pre}C2`, "
            f"bidirectional); its keys are {_keys(flat)}."
        )
    if bidirectional is not None and bool(bidirectional) != found:
        what = "two readouts (C1, C2 or a C with 2P columns)" if found else "one readout C (H, P)"
        raise ValueError(
            f"{caller}: `bidirectional={bidirectional}`, but the layer has {what}; pass "
            f"`bidirectional={found}` or None (detect)."
        )
    return jnp.concatenate(parts, axis=0), found


def system_from_s5(
    params,
    *,
    prefix=None,
    conj_sym: bool = True,
    discretization: str = "zoh",
    step_rescale: float = 1.0,
    clip_eigs: bool = False,
    bidirectional: bool | None = None,
) -> DiagonalLQOSystem:
    r"""One S5 layer's SSM as a discrete-time [`jaxlqo.DiagonalLQOSystem`][] (`dt=1`).

    S5 (`s5/ssm.py`, `S5SSM`) stores the continuous-time diagonal system and a step per state:

    - `Lambda_re`, `Lambda_im` `(P,)`: $\Lambda = \Lambda_{re} + i\Lambda_{im}$ (with
        `clip_eigs`, $\Lambda_{re}$ is clipped to $\le -10^{-4}$ first);
    - `B` `(P, H, 2)` (real and imaginary parts) or complex `(P, H)`: $\tilde B$;
    - `C` `(H, P, 2)` or complex `(H, P)`: $\tilde C$; a bidirectional layer has `C1`, `C2`
        of that shape instead (or one `C` of shape `(H, 2P, 2)`: $[\tilde C_1, \tilde C_2]$);
    - `D` `(H,)`: applied elementwise, $D \odot u$;
    - `log_step` `(P, 1)` or `(P,)`: $\Delta = \text{step\_rescale}\cdot e^{\text{log\_step}}$.

    It discretises with zero-order hold, $\bar\Lambda = e^{\Lambda\Delta}$,
    $\bar B = \Lambda^{-1}(\bar\Lambda - 1)\tilde B$ (or bilinear,
    $\bar\Lambda = (1 - \tfrac\Delta2\Lambda)^{-1}(1 + \tfrac\Delta2\Lambda)$,
    $\bar B = (1 - \tfrac\Delta2\Lambda)^{-1}\Delta\tilde B$), runs
    $h_k = \bar\Lambda h_{k-1} + \bar B u_k$ and outputs
    $y_k = 2\operatorname{Re}(\tilde C h_k) + D\odot u_k$. The factor 2 is S5's conjugate
    symmetry (`conj_sym=True`, its default): only `P` of the `2P` eigenvalues, one of each
    conjugate pair, are stored, and the pair's output is twice the real part. The returned
    system is this map exactly, in jaxlqo's strictly causal form (module docstring).

    **Arguments:**

    - `params`: a mapping of names to arrays (flax tree or flat) or a `.npz` path.
    - `prefix`: keyword-only; where the layer's names live in `params`, e.g.
        `"encoder/layers_0/seq/"`; `None` (default) finds it when unique.
    - `conj_sym`, `discretization` (`"zoh"` or `"bilinear"`), `step_rescale`, `clip_eigs`:
        keyword-only; the S5 model's settings of the same names.
    - `bidirectional`: keyword-only; `None` (default) detects it: a layer with readouts
        `C1` and `C2` (S5's names), or one `C` with `2P` columns (S5 with
        `C_init="complex_normal"`), is bidirectional. `True`/`False` insist.

    **Returns:** a `DiagonalLQOSystem` with `P` complex states, `H` inputs and `H` outputs,
    `dt=1`; for a bidirectional layer `2H` outputs, the forward readout stacked on the
    backward one (module docstring), to be run with [`jaxlqo.ssm.simulate_bidirectional`][].
    Every reduction method applies to it as it is: the reduced system shares one
    $(\hat\Lambda, \hat B)$ between the directions, and its h2 error is that of both directions
    together ([`jaxlqo.ssm.bidirectional_h2_error`][]).
    """
    caller = "system_from_s5"
    if discretization not in ("zoh", "bilinear"):
        raise ValueError(
            f"{caller}: `discretization` must be 'zoh' or 'bilinear' (S5's options); got "
            f"{discretization!r}."
        )
    flat = load_params(params, caller)
    pre = _select(flat, _S5_NAMES, prefix, caller)
    lam_re, lam_im = _real(flat, pre + "Lambda_re", caller), _real(flat, pre + "Lambda_im", caller)
    log_step = _real(flat, pre + "log_step", caller)
    P = lam_re.shape[0] if lam_re.ndim == 1 else -1
    _check(lam_re, (P,), pre + "Lambda_re", caller, "P eigenvalues")
    _check(lam_im, (P,), pre + "Lambda_im", caller, f"P = {P} from Lambda_re")
    if log_step.shape == (P, 1):
        log_step = log_step[:, 0]
    _check(log_step, (P,), pre + "log_step", caller, f"(P, 1) or (P,) with P = {P}")
    rdtype = promoted_dtype(lam_re.dtype, lam_im.dtype, log_step.dtype)
    cdtype = complex_dtype(rdtype)
    b_raw = as_inexact_array(flat[pre + "B"], pre + "B", caller)
    H = b_raw.shape[1] if b_raw.ndim >= 2 else -1
    b = _complex_param(flat, pre + "B", (P, H), caller, cdtype)
    c, is_bidirectional = _s5_readouts(flat, pre, P, H, bidirectional, caller, cdtype)
    d = _feedthrough(flat, pre + "D", H, caller, rdtype)
    if is_bidirectional:  # the backward readout has no feedthrough of its own
        d = jnp.concatenate([d, jnp.zeros_like(d)], axis=0)

    lam_re = lam_re.astype(rdtype)
    if clip_eigs:
        lam_re = jnp.minimum(lam_re, -1e-4)
    lam = lax.complex(lam_re, lam_im.astype(rdtype))
    step = (step_rescale * jnp.exp(log_step.astype(rdtype))).astype(cdtype)
    if discretization == "zoh":
        lam_bar = jnp.exp(lam * step)
        b_bar = ((lam_bar - 1) / lam)[:, None] * b
    else:
        inverse = 1 / (1 - (step / 2) * lam)
        lam_bar = inverse * (1 + (step / 2) * lam)
        b_bar = (inverse * step)[:, None] * b
    return _to_strictly_causal(lam_bar, b_bar, c, d, 2 if conj_sym else 1)


def system_from_lru(params, *, prefix=None) -> DiagonalLQOSystem:
    r"""One LRU layer's recurrence as a discrete-time [`jaxlqo.DiagonalLQOSystem`][] (`dt=1`).

    The LRU (`lru/model.py`, `LRU`) stores, for `N` states and width `H`:

    - `nu_log`, `theta_log` `(N,)`: $\lambda = \exp(-e^{\nu_{\log}} + i\,e^{\theta_{\log}})$;
    - `gamma_log` `(N,)` (optional, default 0): the input normalisation
        $\gamma = e^{\gamma_{\log}}$ scaling the rows of `B`;
    - `B_re`, `B_im` `(N, H)`: $\bar B = \operatorname{diag}(\gamma)(B_{re} + iB_{im})$;
    - `C_re`, `C_im` `(H, N)`: $C = C_{re} + iC_{im}$;
    - `D` `(H,)`: applied elementwise;

    and runs $h_k = \lambda\odot h_{k-1} + \bar B u_k$,
    $y_k = \operatorname{Re}(C h_k) + D\odot u_k$ (no factor 2: the LRU keeps no conjugate
    pairs). The returned system is this map exactly, in jaxlqo's strictly causal form (module
    docstring). Arguments `params` and `prefix` as for [`jaxlqo.ssm.system_from_s5`][].
    """
    caller = "system_from_lru"
    flat = load_params(params, caller)
    pre = _select(flat, _LRU_NAMES, prefix, caller)
    nu_log, theta_log = _real(flat, pre + "nu_log", caller), _real(flat, pre + "theta_log", caller)
    N = nu_log.shape[0] if nu_log.ndim == 1 else -1
    _check(nu_log, (N,), pre + "nu_log", caller, "N states")
    _check(theta_log, (N,), pre + "theta_log", caller, f"N = {N} from nu_log")
    parts = {k: _real(flat, pre + k, caller) for k in ("B_re", "B_im", "C_re", "C_im")}
    H = parts["B_re"].shape[1] if parts["B_re"].ndim == 2 else -1
    for k, shape, meaning in (
        ("B_re", (N, H), "N states × H inputs"),
        ("B_im", (N, H), f"(N, H) = ({N}, {H})"),
        ("C_re", (H, N), f"(H, N) = ({H}, {N})"),
        ("C_im", (H, N), f"(H, N) = ({H}, {N})"),
    ):
        _check(parts[k], shape, pre + k, caller, meaning)
    gamma_log = None
    if pre + "gamma_log" in flat:
        gamma_log = _real(flat, pre + "gamma_log", caller)
        _check(gamma_log, (N,), pre + "gamma_log", caller, f"N = {N} from nu_log")
    rdtype = promoted_dtype(nu_log.dtype, theta_log.dtype, *(x.dtype for x in parts.values()))
    d = _feedthrough(flat, pre + "D", H, caller, rdtype)

    def cast(x):
        return x.astype(rdtype)

    poles = jnp.exp(lax.complex(-jnp.exp(cast(nu_log)), jnp.exp(cast(theta_log))))
    b = lax.complex(cast(parts["B_re"]), cast(parts["B_im"]))
    if gamma_log is not None:
        b = jnp.exp(cast(gamma_log)).astype(b.dtype)[:, None] * b
    c = lax.complex(cast(parts["C_re"]), cast(parts["C_im"]))
    return _to_strictly_causal(poles, b, c, d, 1)
