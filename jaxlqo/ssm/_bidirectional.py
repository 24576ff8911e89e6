r"""Bidirectional layers: one system with stacked outputs, run forwards and backwards in time.

A bidirectional layer (S5's `bidirectional=True`) runs one recurrence $(\lambda, B)$ over the
sequence and over its reverse and adds two readouts. jaxlqo holds it as one
[`jaxlqo.DiagonalLQOSystem`][] with `p = 2q` outputs, the forward readout on top of the
backward one,

$$\Sigma = \left(\lambda,\ B,\ \begin{bmatrix} C_1 \\ C_2 \end{bmatrix},\
  \begin{bmatrix} D_1 \\ D_2 \end{bmatrix}\right),\qquad
  y = y^{\to} + \operatorname{rev}\big(y^{\leftarrow}(\operatorname{rev} u)\big),$$

where $y^{\to}$ and $y^{\leftarrow}$ are the outputs of the forward block $(\lambda, B, C_1, D_1)$
and the backward block $(\lambda, B, C_2, D_2)$ and `rev` reverses time. The map is a
non-causal convolution with kernel $h_i = \operatorname{Re}(C_1 \lambda^{i-1} B)$ at lags
$i \ge 1$, $\operatorname{Re}(C_2 \lambda^{|i|-1} B)$ at lags $i \le -1$, and $D_1 + D_2$ at lag 0.
Its h2 norm (the root of the output power for a white-noise input, by Parseval the root sum of
squares of the kernel over all lags) is therefore

$$\|\Sigma\|_{h_2,\leftrightarrow}^2 = \|\Sigma^{\to}\|_{h_2}^2 + \|\Sigma^{\leftarrow}\|_{h_2}^2
  - \|D_1\|_F^2 - \|D_2\|_F^2 + \|D_1 + D_2\|_F^2 ,$$

the stacked system's h2 norm with the two feedthroughs lumped. Every jaxlqo reducer keeps
`D̂ = D`, so for its result the stacked h2 error *is* the error of the bidirectional map: the sum
(of squares) of both directions' errors. A reduced stacked system shares one $(\hat\lambda,
\hat B)$ between the two directions, exactly what a reduced bidirectional layer needs.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .._misc import as_inexact_array, check_shape
from .._norms import h2_error, h2_norm
from .._simulate import simulate
from .._systems import DiagonalLQOSystem, check_system


def _check_stacked(sys, caller: str, name: str = "sys") -> int:
    check_system(sys, caller, name)
    if not isinstance(sys, DiagonalLQOSystem) or not sys.is_lti or not sys.is_discrete:
        raise TypeError(
            f"{caller}: `{name}` must be a discrete-time LTI DiagonalLQOSystem (a bidirectional "
            f"layer from `jaxlqo.ssm.system_from_s5`); got {type(sys).__name__} with "
            f"dt={sys.dt}{'' if sys.is_lti else ' and a quadratic output'}."
        )
    if sys.p % 2:
        raise ValueError(
            f"{caller}: `{name}` must have an even number of outputs (the forward readout "
            f"stacked on the backward one); got p = {sys.p}."
        )
    return sys.p // 2


def split_directions(sys: DiagonalLQOSystem) -> tuple[DiagonalLQOSystem, DiagonalLQOSystem]:
    """The forward and backward blocks `(λ, B, C₁, D₁)`, `(λ, B, C₂, D₂)` of a stacked system.

    **Arguments:**

    - `sys`: a bidirectional layer's system, `p = 2q` outputs (module docstring).

    **Returns:** `(forward, backward)`, two systems with `q` outputs each.
    """
    q = _check_stacked(sys, "split_directions")

    def block(rows: slice) -> DiagonalLQOSystem:
        return DiagonalLQOSystem(sys.poles, sys.B, sys.C[rows], sys.D[rows], dt=sys.dt)

    return block(slice(None, q)), block(slice(q, None))


def simulate_bidirectional(sys: DiagonalLQOSystem, u: Array) -> Array:
    r"""The output of a bidirectional layer, forward block plus time-reversed backward block.

    $$y = y^{\to}(u) + \operatorname{rev}\big(y^{\leftarrow}(\operatorname{rev} u)\big).$$

    The forward block (first `q` outputs) runs on `u` from `x_0 = 0`, the backward block (last
    `q` outputs) on the reversed sequence, and their outputs, the backward one reversed back,
    are added (module docstring). For an S5 layer imported with
    [`jaxlqo.ssm.system_from_s5`][] this is S5's bidirectional forward pass exactly.
    Differentiable and `vmap`-able like [`jaxlqo.simulate`][].

    **Arguments:**

    - `sys`: a discrete-time [`jaxlqo.DiagonalLQOSystem`][] with `p = 2q` outputs.
    - `u`: inputs, shape `(L, m)`.

    **Returns:** the outputs, shape `(L, q)`.
    """
    caller = "simulate_bidirectional"
    _check_stacked(sys, caller)
    u = as_inexact_array(u, "u", caller)
    check_shape(u, (None, sys.m), "u", caller, f"(L, m) with m = {sys.m} inputs")
    return _simulate_bidirectional(sys, u)


@eqx.filter_jit
def _simulate_bidirectional(sys, u):
    forward, backward = split_directions(sys)
    return simulate(forward, u) + simulate(backward, u[::-1])[::-1]


def _without_feedthrough(sys: DiagonalLQOSystem) -> DiagonalLQOSystem:
    return eqx.tree_at(lambda s: s.D, sys, jnp.zeros_like(sys.D))


def _lumped_feedthrough(sys: DiagonalLQOSystem, q: int) -> Array:
    return sys.D[:q] + sys.D[q:]


def _root(squared: Array) -> Array:
    # Double `where`: a finite (zero) gradient at a zero norm.
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def bidirectional_h2_norm(sys: DiagonalLQOSystem, *, horizon=None) -> Array:
    r"""The h2 norm of a bidirectional layer's map (module docstring).

    $\|\Sigma\|^2_{h_2,\leftrightarrow} = \|\Sigma^{\to}\|^2 + \|\Sigma^{\leftarrow}\|^2$ with
    the two lag-0 terms lumped into one, $\|D_1 + D_2\|_F^2$. With `horizon`, lags `|i| < horizon`.
    Raises on an unstable system (infinite horizon), as [`jaxlqo.h2_norm`][].
    """
    _check_stacked(sys, "bidirectional_h2_norm")
    return _bidirectional_h2_norm(sys, horizon)


@eqx.filter_jit
def _bidirectional_h2_norm(sys, horizon):
    strictly_causal = h2_norm(_without_feedthrough(sys), horizon=horizon)
    return _root(strictly_causal**2 + jnp.sum(_lumped_feedthrough(sys, sys.p // 2) ** 2))


def bidirectional_h2_error(
    sys: DiagonalLQOSystem, rom: DiagonalLQOSystem, *, horizon=None
) -> Array:
    r"""The h2 norm of the difference of two bidirectional layers' maps (module docstring).

    $$\|\Sigma - \hat\Sigma\|^2_{h_2,\leftrightarrow} = \|\Sigma^{\to} - \hat\Sigma^{\to}\|^2
      + \|\Sigma^{\leftarrow} - \hat\Sigma^{\leftarrow}\|^2$$

    with the lag-0 terms lumped, $\|(D_1 + D_2) - (\hat D_1 + \hat D_2)\|_F^2$ in place of
    $\|D_1 - \hat D_1\|_F^2 + \|D_2 - \hat D_2\|_F^2$. When `D̂ = D` (every jaxlqo reducer) it
    equals the stacked systems' [`jaxlqo.h2_error`][].

    **Arguments:**

    - `sys`, `rom`: stacked systems with the same `p = 2q` outputs and `m` inputs (any orders).
    - `horizon`: keyword-only; `None` or the lags `|i| < horizon` counted.

    **Returns:** the (real, scalar) error. Raises on an unstable system (infinite horizon).
    """
    caller = "bidirectional_h2_error"
    q = _check_stacked(sys, caller)
    if _check_stacked(rom, caller, "rom") != q or rom.m != sys.m:
        raise ValueError(
            f"{caller}: `sys` and `rom` must have the same inputs and outputs; got "
            f"(m, p) = ({sys.m}, {sys.p}) and ({rom.m}, {rom.p})."
        )
    return _bidirectional_h2_error(sys, rom, horizon)


@eqx.filter_jit
def _bidirectional_h2_error(sys, rom, horizon):
    q = sys.p // 2
    strictly_causal = h2_error(
        _without_feedthrough(sys), _without_feedthrough(rom), horizon=horizon
    )
    lag0 = _lumped_feedthrough(sys, q) - _lumped_feedthrough(rom, q).astype(sys.D.dtype)
    return _root(strictly_causal**2 + jnp.sum(lag0**2))
