r"""Deep state-space models whose layers are complex-diagonal LQO systems.

One layer maps an input sequence `s` (L, H) to an output sequence of the same shape:

$$x_{k+1} = \lambda \odot x_k + B s_k,\qquad
  y_k = \operatorname{Re}(C x_k) + D s_k
        + \sum_{l=1}^{q} \operatorname{Re}(F_l x_k) \odot \operatorname{Re}(G_l x_k),$$
$$s^{\text{out}}_k = \operatorname{LayerNorm}\bigl(s_k + \sigma(y_k)\bigr),\qquad
  \sigma = \operatorname{GELU}.$$

A [`DeepSSM`][jaxlqo.ssm.DeepSSM] stacks `ξ` such layers between a linear encoder and a
mean-pooled linear classification head.
"""

import functools
import math
from collections.abc import Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Inexact, PRNGKeyArray, Real

from .._misc import default_float_dtype
from .._simulate import simulate
from .._stable_poles import decay_rate, pole_angle, stable_poles
from .._systems import DiagonalLQOSystem
from ._scan import diagonal_states

#: The Lipschitz constant of the exact GELU `σ(x) = x Φ(x)`:
#: `max |σ'(x)| = σ'(√2) = Φ(√2) + √2 φ(√2) ≈ 1.1289` (since `σ''(x) = φ(x)(2 − x²)`, the
#: derivative `σ'(x) = Φ(x) + x φ(x)` has its extrema at `x = ±√2`, and `σ'(−√2) ≈ −0.1289`).
GELU_LIPSCHITZ: float = 0.5 * (1.0 + math.erf(1.0)) + math.sqrt(2.0) * math.exp(-1.0) / math.sqrt(
    2.0 * math.pi
)

#: The default `eps` of every layer's LayerNorm: `(v − mean) / sqrt(var + eps) ⊙ w + b`.
LAYER_NORM_EPS: float = 1e-5


def gelu(x: Array) -> Array:
    r"""The exact GELU `σ(x) = x Φ(x)` (Φ the standard normal CDF), elementwise.

    It is Lipschitz with constant [`GELU_LIPSCHITZ`][jaxlqo.ssm.GELU_LIPSCHITZ] `≈ 1.1289`;
    the exact (erf) form is used, not the tanh approximation, so that constant is exact.
    """
    return jax.nn.gelu(x, approximate=False)


def _as_model_input(x, dtype, name: str, caller: str) -> Array:
    """Cast a real input sequence to the model's dtype, explicitly (strict-promotion safe)."""
    x = jnp.asarray(x)
    if jnp.iscomplexobj(x):
        raise TypeError(f"{caller}: `{name}` must be real; got dtype {x.dtype}.")
    return x.astype(dtype)


def _check_ndim(x: Array, shape: tuple, name: str, caller: str, meaning: str) -> None:
    ok = x.ndim == len(shape) and all(
        e is None or e == s for e, s in zip(shape, x.shape, strict=False)
    )
    if not ok:
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ValueError(
            f"{caller}: `{name}` must have shape {pretty} ({meaning}); got shape {x.shape}. "
            "Models act on one sequence: batch with `jax.vmap`."
        )


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 7))
def _lru_init(key, H, n, quad_rank, r_min, r_max, max_phase, dtype) -> dict:
    """The random initial parameters of an `SSMLayer`.

    One uniform and one normal draw, sliced into the parameters: XLA compiles the counter-based
    generator once per draw, so this compiles far faster than one draw per parameter.
    """
    k_uniform, k_normal = jax.random.split(key)
    uniform = jax.random.uniform(k_uniform, (2, n), dtype)
    # |λ|² uniform on [r_min², r_max²] (uniform in area), then ν = log(−log|λ|).
    modulus_sq = uniform[0] * (r_max**2 - r_min**2) + r_min**2
    out = {
        "log_decay": jnp.log(-0.5 * jnp.log(modulus_sq)),
        "angle": max_phase * uniform[1],
    }
    shapes: dict[str, tuple[int, ...]] = {"B": (n, H), "C": (H, n)}
    if quad_rank > 0:
        shapes.update(F=(H, quad_rank, n), G=(H, quad_rank, n))
    sizes = [2 * math.prod(shape) for shape in shapes.values()] + [H * H]
    normal = jax.random.normal(k_normal, (sum(sizes),), dtype)
    pieces = jnp.split(normal, np.cumsum(sizes)[:-1].tolist())
    gamma = jnp.sqrt(1.0 - modulus_sq)[:, None]
    for (name, shape), piece in zip(shapes.items(), pieces, strict=False):  # D is last
        # Complex entries with E|z|² = 1/H for B and 1/n otherwise, half in each part.
        variance = 1.0 / H if name == "B" else 1.0 / n
        re, im = piece.reshape((2,) + shape) * math.sqrt(0.5 * variance)
        if name == "B":
            re, im = gamma * re, gamma * im  # the LRU normalisation γ = sqrt(1 − |λ|²)
        out[name + "_re"], out[name + "_im"] = re, im
    out["D"] = pieces[-1].reshape(H, H) / math.sqrt(H)
    return out


class SSMLayer(eqx.Module):
    r"""One deep-SSM layer: a complex-diagonal LQO block, GELU, residual and LayerNorm.

    $$x_{k+1} = \lambda\odot x_k + B s_k,\quad
      y_k = \operatorname{Re}(C x_k) + D s_k
            + \sum_{l=1}^{q}\operatorname{Re}(F_l x_k)\odot\operatorname{Re}(G_l x_k),\quad
      s^{\text{out}}_k = \operatorname{LayerNorm}(s_k + \sigma(y_k)),$$

    with `x_0 = 0`, `H` inputs and outputs, `n` complex states and a rank-`q` gated
    (bilinear) quadratic readout. The poles are parameterised stably,
    `λ = exp(−exp(ν) + iθ)`, so `|λ| = exp(−exp(ν)) < 1` for every real `ν` and an optimiser
    cannot leave the stable set. Every complex matrix is stored as two real arrays, so
    optimisers only ever see real parameters. The LayerNorm is post-norm
    (`eqx.nn.LayerNorm(H)`, learnable weight and bias, `eps` =
    [`LAYER_NORM_EPS`][jaxlqo.ssm.LAYER_NORM_EPS] `= 1e-5` by default).

    **Arguments** (random LRU-style initialisation; use
    [`from_system`][jaxlqo.ssm.SSMLayer.from_system] to build a layer from given matrices):

    - `H`: keyword-only; the width (inputs = outputs of the block).
    - `n`: keyword-only; the number of complex states.
    - `quad_rank`: keyword-only; `q`, the number of products in the quadratic readout
        (`0` gives an LTI block with `F = G = None`). Default 1.
    - `r_min`, `r_max`: keyword-only; `|λ|` is drawn uniformly on the ring
        `r_min ≤ |λ| ≤ r_max` (uniform in area, as in the LRU). Defaults 0.9 and 0.999.
    - `max_phase`: keyword-only; `θ` is drawn uniformly on `[0, max_phase]`. Default `π`.
    - `norm_eps`: keyword-only; the LayerNorm's `eps`.
    - `dtype`: keyword-only; the real dtype of every parameter (default: JAX's default
        float dtype, float64 under `jax_enable_x64`).
    - `key`: keyword-only; a PRNG key (last and keyword-only, as in `equinox.nn`).

    The initial `B` rows are scaled by `γ_i = sqrt(1 − |λ_i|²)` (the LRU normalisation), so
    every state has unit-order stationary variance for unit-variance white input; `C`, `F`,
    `G` have complex entries with `E|c|² = 1/n` and `D` real entries with variance `1/H`.

    ??? cite "References"
        A. Orvieto et al., "Resurrecting Recurrent Neural Networks for Long Sequences",
        ICML 2023 (the LRU: ring initialisation, `exp(−exp(ν) + iθ)`, `γ` normalisation).
    """

    log_decay: Real[Array, " n"]
    angle: Real[Array, " n"]
    B_re: Real[Array, "n H"]
    B_im: Real[Array, "n H"]
    C_re: Real[Array, "H n"]
    C_im: Real[Array, "H n"]
    D: Real[Array, "H H"]
    F_re: Real[Array, "H q n"] | None
    F_im: Real[Array, "H q n"] | None
    G_re: Real[Array, "H q n"] | None
    G_im: Real[Array, "H q n"] | None
    norm: eqx.nn.LayerNorm

    def __init__(
        self,
        *,
        H: int,
        n: int,
        quad_rank: int = 1,
        r_min: float = 0.9,
        r_max: float = 0.999,
        max_phase: float = math.pi,
        norm_eps: float = LAYER_NORM_EPS,
        dtype=None,
        key: PRNGKeyArray,
    ):
        for name, value in (("H", H), ("n", n)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"SSMLayer: `{name}` must be a positive int; got {value!r}.")
        if not (isinstance(quad_rank, int) and quad_rank >= 0):
            raise ValueError(f"SSMLayer: `quad_rank` must be an int ≥ 0; got {quad_rank!r}.")
        if not (0.0 <= r_min < r_max < 1.0):
            raise ValueError(
                f"SSMLayer: need 0 ≤ r_min < r_max < 1 (a stable ring); got r_min={r_min}, "
                f"r_max={r_max}."
            )
        dtype = default_float_dtype() if dtype is None else jnp.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"SSMLayer: `dtype` must be a real float dtype; got {dtype}.")
        params = _lru_init(key, H, n, quad_rank, r_min, r_max, max_phase, dtype)
        self.log_decay, self.angle = params["log_decay"], params["angle"]
        self.B_re, self.B_im = params["B_re"], params["B_im"]
        self.C_re, self.C_im = params["C_re"], params["C_im"]
        self.D = params["D"]
        self.F_re, self.F_im = params.get("F_re"), params.get("F_im")
        self.G_re, self.G_im = params.get("G_re"), params.get("G_im")
        self.norm = eqx.nn.LayerNorm(H, eps=norm_eps, dtype=dtype)

    # --- sizes -----------------------------------------------------------------------------

    @property
    def H(self) -> int:
        """The width: inputs = outputs of the LQO block."""
        return self.D.shape[0]

    @property
    def n(self) -> int:
        """The number of complex states."""
        return self.log_decay.shape[0]

    @property
    def quad_rank(self) -> int:
        """`q`, the number of products in the quadratic readout (0 for an LTI block)."""
        return 0 if self.F_re is None else self.F_re.shape[1]

    @property
    def dtype(self):
        """The real dtype of the parameters."""
        return self.D.dtype

    # --- the LQO block ---------------------------------------------------------------------

    @property
    def poles(self) -> Inexact[Array, " n"]:
        """`λ = exp(−exp(ν) + iθ)`, always inside the unit disc."""
        return stable_poles(self.log_decay, self.angle, discrete=True)

    def state_parameters(self) -> tuple[Array, ...]:
        """The arrays whose size grows with the state dimension, i.e. what order reduction
        removes: `ν`, `θ`, then the real and imaginary parts of `B`, `C` and (with a quadratic
        readout) `F`, `G`, in field order."""
        quadratic = ()
        if self.F_re is not None:
            # The four quadratic-readout arrays are all set or all None.
            assert self.F_im is not None and self.G_re is not None and self.G_im is not None
            quadratic = (self.F_re, self.F_im, self.G_re, self.G_im)
        fields = (self.log_decay, self.angle, self.B_re, self.B_im, self.C_re, self.C_im)
        return fields + quadratic

    def system(self) -> DiagonalLQOSystem:
        """The layer's LQO block as a discrete-time [`jaxlqo.DiagonalLQOSystem`][] (`dt=1`).

        **Returns:** the system with poles `(n,)`, `B (n, H)`, `C (H, n)`, `D (H, H)` and, if
        `quad_rank > 0`, `F, G (H, q, n)`.
        """
        F = G = None
        if self.F_re is not None:
            # The four quadratic-readout arrays are all set or all None.
            assert self.F_im is not None and self.G_re is not None and self.G_im is not None
            F = lax.complex(self.F_re, self.F_im)
            G = lax.complex(self.G_re, self.G_im)
        return DiagonalLQOSystem(
            self.poles,
            lax.complex(self.B_re, self.B_im),
            lax.complex(self.C_re, self.C_im),
            self.D,
            F=F,
            G=G,
            dt=1.0,
        )

    @classmethod
    def from_system(
        cls, system: DiagonalLQOSystem, norm: eqx.nn.LayerNorm | None = None
    ) -> "SSMLayer":
        r"""A layer whose block is `system` (any number of states, e.g. a reduced one).

        The poles are mapped back to the stable parameterisation,
        `ν = log(−log|λ|)` and `θ = arg λ`, so `from_system(s).system()` reproduces `s` up
        to rounding and a compressed layer with `r < n` states trains like any other layer.

        **Arguments:**

        - `system`: a discrete-time [`jaxlqo.DiagonalLQOSystem`][] with `H` inputs and `H`
            outputs and every `|λ| < 1`.
        - `norm`: the LayerNorm to use (typically the original layer's `layer.norm`);
            `None` gives a fresh `eqx.nn.LayerNorm(H)` (unit weight, zero bias).

        **Returns:** an `SSMLayer` in the real dtype of `system`.

        **Raises:** `ValueError` for a continuous-time or non-square system or a `norm` of the
        wrong shape; an `EquinoxRuntimeError` (via `eqx.error_if`) if a pole is not strictly
        inside the unit disc, where `ν` would not exist.
        """
        caller = "SSMLayer.from_system"
        if not isinstance(system, DiagonalLQOSystem):
            raise TypeError(
                f"{caller}: `system` must be a jaxlqo.DiagonalLQOSystem; got "
                f"{type(system).__name__}."
            )
        if system.dt != 1.0:
            raise ValueError(
                f"{caller}: `system` must be discrete time with dt=1.0 (one step per sequence "
                f"element); got dt={system.dt}."
            )
        if system.m != system.p:
            raise ValueError(
                f"{caller}: the block must have as many outputs as inputs (the residual "
                f"connection adds them); got m={system.m} inputs and p={system.p} outputs."
            )
        H, n = system.m, system.n
        if norm is not None and tuple(norm.shape) != (H,):
            raise ValueError(
                f"{caller}: `norm` must be a LayerNorm of shape ({H},); got shape {norm.shape}."
            )
        dtype = system.D.dtype
        poles = eqx.error_if(
            system.poles,
            ~jnp.all(jnp.abs(system.poles) < 1),
            f"{caller}: every pole must satisfy |λ| < 1 (the layer's parameterisation "
            "λ = exp(−exp(ν) + iθ) only represents stable poles).",
        )
        # Every stable pole is representable: ν = log(−log|λ|) ∈ [−∞, +∞] for |λ| ∈ [0, 1).
        log_decay = jnp.log(decay_rate(poles, discrete=True)).astype(dtype)
        angle = pole_angle(poles, discrete=True).astype(dtype)
        q = 0 if system.F is None else system.F.shape[1]
        skeleton = eqx.filter_eval_shape(
            lambda: cls(key=jax.random.key(0), H=H, n=n, quad_rank=q, dtype=dtype)
        )
        if norm is None:
            norm = eqx.nn.LayerNorm(H, eps=skeleton.norm.eps, dtype=dtype)
        values = [log_decay, angle, jnp.real(system.B), jnp.imag(system.B)]
        values += [jnp.real(system.C), jnp.imag(system.C)]
        if q > 0:
            assert system.F is not None and system.G is not None  # q > 0: a quadratic readout
            values += [jnp.real(system.F), jnp.imag(system.F)]
            values += [jnp.real(system.G), jnp.imag(system.G)]
        layer = eqx.tree_at(
            lambda layer: (*layer.state_parameters(), layer.D, layer.norm),
            skeleton,
            (*values, system.D, norm),
        )
        return layer

    # --- the layer map ---------------------------------------------------------------------

    def forward_batch(
        self, s: Float[Array, "L N H"], *, parallel: bool | None = None
    ) -> Float[Array, "L N H"]:
        r"""`LayerNorm(s + σ(y))` for a time-major batch `s` `(L, N, H)`: the fast path.

        The same map as `jax.vmap(layer, in_axes=1, out_axes=1)(s)`, with `B s`, `C x`,
        `D s` and the quadratic readout as real GEMMs over every step of every sequence and
        the scan of [`diagonal_states`][jaxlqo.ssm.diagonal_states] (`parallel`: see there).
        """
        L, N, H = s.shape
        s = s.astype(self.dtype)
        readout = None
        if self.F_re is not None:
            assert self.F_im is not None and self.G_re is not None and self.G_im is not None
            readout = (self.F_re, self.F_im, self.G_re, self.G_im)
        y = block_output_batch(
            self.poles,
            (self.B_re, self.B_im),
            (self.C_re, self.C_im),
            self.D,
            readout,
            s,
            parallel=parallel,
        ).reshape(L * N, H)
        s = s.reshape(L * N, H)
        v = s + gelu(y)
        # The LayerNorm over the last axis, as eqx.nn.LayerNorm computes it per step.
        norm = self.norm
        mean = jnp.mean(v, axis=-1, keepdims=True)
        variance = jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True)
        out = (v - mean) * lax.rsqrt(variance + norm.eps)
        if norm.use_weight:
            assert norm.weight is not None  # eqx.nn.LayerNorm sets it when `use_weight`
            out = out * norm.weight
        if norm.use_bias:
            assert norm.bias is not None  # eqx.nn.LayerNorm sets it when `use_bias`
            out = out + norm.bias
        return out.reshape(L, N, H)

    def block(self, s: Float[Array, "L H"]) -> Float[Array, "L H"]:
        """The LQO block's output `y` (L, H) for the input sequence `s`, from `x_0 = 0`."""
        s = _as_model_input(s, self.dtype, "s", "SSMLayer")
        _check_ndim(s, (None, self.H), "s", "SSMLayer", f"(L, H) with H = {self.H}")
        return simulate(self.system(), s)

    def __call__(self, s: Float[Array, "L H"]) -> Float[Array, "L H"]:
        """`s_out = LayerNorm(s + σ(y))` per time step, `y` the block output.

        **Arguments:**

        - `s`: one input sequence, shape `(L, H)` (cast to the layer's dtype).

        **Returns:** the output sequence, shape `(L, H)`.
        """
        s = _as_model_input(s, self.dtype, "s", "SSMLayer")
        _check_ndim(s, (None, self.H), "s", "SSMLayer", f"(L, H) with H = {self.H}")
        return self.forward_batch(s[:, None, :])[:, 0, :]


def block_output_batch(
    poles: Array,
    b: tuple[Array, Array],
    c: tuple[Array, Array],
    d: Array,
    readout: tuple[Array, Array, Array, Array] | None,
    s: Float[Array, "L N m"],
    *,
    parallel: bool | None = None,
) -> Float[Array, "L N p"]:
    r"""The output `y` of a complex-diagonal LQO block for a time-major batch `s` `(L, N, m)`.

    `y_k = Re(C x_k) + D s_k + Σ_l Re(F_l x_k) ⊙ Re(G_l x_k)`, `x_{k+1} = λ ⊙ x_k + B s_k`,
    with `B s`, `C x`, `D s` and the readouts as real GEMMs over every step of every sequence
    and the scan of [`diagonal_states`][jaxlqo.ssm.diagonal_states] (`parallel`: see there):
    the fast path behind `SSMLayer.forward_batch` and output matching. `b`, `c`: real and
    imaginary parts of `B` `(n, m)` and `C` `(p, n)`; `readout`: `(Re F, Im F, Re G, Im G)`,
    each `(p, q, n)`, or `None`.
    """
    L, N, m = s.shape
    n = poles.shape[0]
    # Two-dimensional (L·N, ·) operands throughout: XLA's CPU backend runs plain GEMMs far
    # faster than dots with several contracting or free dimensions (measured 2× on the
    # gradients of the readout).
    s = s.reshape(L * N, m)
    drive_re = (s @ b[0].T).reshape(L, N, n)
    drive_im = (s @ b[1].T).reshape(L, N, n)
    x_re, x_im = diagonal_states(poles, drive_re, drive_im, parallel=parallel)
    x_re, x_im = x_re.reshape(L * N, n), x_im.reshape(L * N, n)
    y = x_re @ c[0].T - x_im @ c[1].T + s @ d.T
    p = y.shape[1]
    if readout is not None:
        f_re, f_im, g_re, g_im = readout
        q = f_re.shape[1]

        def read(re, im):  # Re(F x) for every (channel, product): (L·N, p·q)
            return x_re @ re.reshape(p * q, n).T - x_im @ im.reshape(p * q, n).T

        products = read(f_re, f_im) * read(g_re, g_im)
        y = y + (products if q == 1 else jnp.sum(products.reshape(L * N, p, q), axis=-1))
    return y.reshape(L, N, p)


def _linear_size(size: int | Literal["scalar"]) -> int:
    """A size of an `eqx.nn.Linear` built here: always an int, never `"scalar"`."""
    assert size != "scalar"
    return size


def _per_layer(value, layers: int, name: str) -> tuple:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * layers
    value = tuple(int(v) for v in value)
    if len(value) != layers:
        raise ValueError(
            f"DeepSSM: `{name}` must be an int or a sequence of one int per layer "
            f"({layers}); got {len(value)} values."
        )
    return value


class DeepSSM(eqx.Module):
    r"""A deep SSM classifier: encoder, `ξ` [`SSMLayer`][jaxlqo.ssm.SSMLayer]s, mean pool, head.

    $$s^{(0)}_k = W_{\text{enc}} u_k + b_{\text{enc}},\qquad
      s^{(i)} = \text{layer}_i(s^{(i-1)}),\qquad
      \text{logits} = W_{\text{head}} \tfrac{1}{L}\textstyle\sum_k s^{(\xi)}_k + b_{\text{head}}.$$

    **Arguments:**

    - `d_in`: keyword-only; input features per time step.
    - `H`: keyword-only; the width of every layer.
    - `n`: keyword-only; states per layer: an int, or one int per layer (as after a
        compression that keeps different orders per layer).
    - `layers`: keyword-only; `ξ`, the number of SSM layers.
    - `n_classes`: keyword-only; the number of logits.
    - `quad_rank`: keyword-only; the rank of each layer's quadratic readout (int or one per
        layer, `0` for LTI blocks). Default 1.
    - `r_min`, `r_max`, `max_phase`, `norm_eps`: keyword-only; passed to every
        [`SSMLayer`][jaxlqo.ssm.SSMLayer].
    - `dtype`: keyword-only; the real parameter dtype (default: JAX's default float dtype).
    - `vocab_size`: keyword-only; `None` (default) for real input features and a linear
        encoder; an int `V` for token sequences (e.g. bytes, `V = 256`): the encoder is then
        an embedding table `s⁽⁰⁾_k = E[u_k]` (`eqx.nn.Embedding(V, H)`) and `d_in` must be 1.
        Token ids are passed as real sequences `(L, 1)` holding integer values in
        `0 … V−1` (exact in float32 and float64), so every tool that takes real input
        sequences (compression, calibration, the bound) works unchanged.
    - `key`: keyword-only; a PRNG key (last and keyword-only, as in `equinox.nn`).

    Every method acts on one sequence `u` of shape `(L, d_in)`, cast to the model's dtype;
    batch with `jax.vmap`, or use [`batched_logits`][jaxlqo.ssm.batched_logits] (the fast
    batched path used for training).
    """

    encoder: eqx.nn.Linear | eqx.nn.Embedding
    layers: tuple[SSMLayer, ...]
    head: eqx.nn.Linear

    def __init__(
        self,
        *,
        d_in: int,
        H: int,
        n: int | Sequence[int],
        layers: int,
        n_classes: int,
        quad_rank: int | Sequence[int] = 1,
        r_min: float = 0.9,
        r_max: float = 0.999,
        max_phase: float = math.pi,
        norm_eps: float = LAYER_NORM_EPS,
        dtype=None,
        vocab_size: int | None = None,
        key: PRNGKeyArray,
    ):
        if not (isinstance(layers, int) and layers >= 1):
            raise ValueError(f"DeepSSM: `layers` must be a positive int; got {layers!r}.")
        if vocab_size is not None:
            if isinstance(vocab_size, bool) or not (
                isinstance(vocab_size, (int, np.integer)) and vocab_size >= 1
            ):
                raise ValueError(
                    f"DeepSSM: `vocab_size` must be None or a positive int; got {vocab_size!r}."
                )
            if d_in != 1:
                raise ValueError(
                    f"DeepSSM: a token model (vocab_size={vocab_size}) takes one token id per "
                    f"step, so `d_in` must be 1; got d_in={d_in}."
                )
        ns = _per_layer(n, layers, "n")
        qs = _per_layer(quad_rank, layers, "quad_rank")
        dtype = default_float_dtype() if dtype is None else jnp.dtype(dtype)
        k_enc, k_head, *k_layers = jax.random.split(key, 2 + layers)
        if vocab_size is None:
            self.encoder = eqx.nn.Linear(d_in, H, key=k_enc, dtype=dtype)
        else:
            self.encoder = eqx.nn.Embedding(int(vocab_size), H, key=k_enc, dtype=dtype)
        self.layers = tuple(
            SSMLayer(
                key=k,
                H=H,
                n=n_i,
                quad_rank=q_i,
                r_min=r_min,
                r_max=r_max,
                max_phase=max_phase,
                norm_eps=norm_eps,
                dtype=dtype,
            )
            for k, n_i, q_i in zip(k_layers, ns, qs, strict=True)
        )
        self.head = eqx.nn.Linear(H, n_classes, key=k_head, dtype=dtype)

    # --- sizes -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int | None:
        """The number of token ids of a token model (embedding encoder); `None` otherwise."""
        if isinstance(self.encoder, eqx.nn.Embedding):
            return self.encoder.num_embeddings
        return None

    @property
    def d_in(self) -> int:
        if isinstance(self.encoder, eqx.nn.Embedding):  # a token model (`vocab_size` set)
            return 1
        return _linear_size(self.encoder.in_features)

    @property
    def H(self) -> int:
        if isinstance(self.encoder, eqx.nn.Embedding):
            return self.encoder.embedding_size
        return _linear_size(self.encoder.out_features)

    @property
    def n_classes(self) -> int:
        return _linear_size(self.head.out_features)

    @property
    def dtype(self):
        """The real parameter dtype."""
        return self.encoder.weight.dtype

    def architecture(self) -> dict:
        """The hyperparameters that rebuild this model's skeleton (JSON-serialisable).

        `n` and `quad_rank` are ints when every layer shares them, else per-layer lists.
        """

        def collapse(values):
            return values[0] if len(set(values)) == 1 else list(values)

        extra = {} if self.vocab_size is None else {"vocab_size": self.vocab_size}
        return {
            "d_in": self.d_in,
            "H": self.H,
            "n": collapse([layer.n for layer in self.layers]),
            "layers": len(self.layers),
            "n_classes": self.n_classes,
            "quad_rank": collapse([layer.quad_rank for layer in self.layers]),
            "norm_eps": self.layers[0].norm.eps,
            "dtype": jnp.dtype(self.dtype).name,
            **extra,
        }

    # --- forward maps ----------------------------------------------------------------------

    def encode(self, u: Float[Array, "L d_in"]) -> Float[Array, "L H"]:
        """The first layer's input `s⁽⁰⁾_k = W_enc u_k + b_enc`, shape `(L, H)`."""
        u = _as_model_input(u, self.dtype, "u", "DeepSSM")
        _check_ndim(u, (None, self.d_in), "u", "DeepSSM", f"(L, d_in) with d_in = {self.d_in}")
        return self.encode_batch(u[None])[0]

    def encode_batch(self, inputs: Float[Array, "N L d_in"]) -> Float[Array, "N L H"]:
        """`encode` for a batch `(N, L, d_in)`, as one GEMM (or one table lookup)."""
        inputs = _as_model_input(inputs, self.dtype, "inputs", "DeepSSM")
        _check_ndim(
            inputs,
            (None, None, self.d_in),
            "inputs",
            "DeepSSM.encode_batch",
            f"(N, L, d_in) with d_in = {self.d_in}",
        )
        if isinstance(self.encoder, eqx.nn.Embedding):  # a token model (`vocab_size` set)
            # Token ids held as reals; rounding guards against ids computed in floating point.
            tokens = jnp.round(inputs[..., 0]).astype(jnp.int32)
            return jnp.take(self.encoder.weight, tokens, axis=0, mode="clip")
        out = inputs @ self.encoder.weight.T
        return out if self.encoder.bias is None else out + self.encoder.bias

    def layer_inputs(self, u: Float[Array, "L d_in"]) -> list[Array]:
        """The input sequence `s⁽ⁱ⁻¹⁾` (L, H) of each layer `i = 1, …, ξ`, in order."""
        s = self.encode(u)
        inputs = []
        for layer in self.layers:
            inputs.append(s)
            s = layer(s)
        return inputs

    def features(self, u: Float[Array, "L d_in"]) -> Float[Array, "L H"]:
        """The last layer's output sequence `s⁽ξ⁾` (L, H), before pooling."""
        s = self.encode(u)
        for layer in self.layers:
            s = layer(s)
        return s

    def classify(self, features: Float[Array, "L H"]) -> Float[Array, " n_classes"]:
        """`W_head mean_k(s⁽ξ⁾_k) + b_head`: the logits from the last layer's outputs."""
        return self.head(jnp.mean(features, axis=0))

    def __call__(self, u: Float[Array, "L d_in"]) -> Float[Array, " n_classes"]:
        """The logits (n_classes,) for one input sequence `u` of shape `(L, d_in)`."""
        return self.classify(self.features(u))

    # --- surgery and bookkeeping -----------------------------------------------------------

    def with_layers(self, layers: Sequence[SSMLayer]) -> "DeepSSM":
        """A copy with the SSM layers replaced (e.g. by compressed ones with fewer states)."""
        layers = tuple(layers)
        if len(layers) != len(self.layers):
            raise ValueError(
                f"DeepSSM.with_layers: expected {len(self.layers)} layers; got {len(layers)}."
            )
        for i, layer in enumerate(layers):
            if not isinstance(layer, SSMLayer) or layer.H != self.H:
                raise ValueError(
                    f"DeepSSM.with_layers: layer {i} must be an SSMLayer of width H = {self.H}."
                )
        return eqx.tree_at(lambda m: m.layers, self, layers)

    def parameter_counts(self) -> dict:
        """Trainable real scalars by part (a complex entry would count 2).

        **Returns:** a dict with `"ssm"` (poles `ν, θ` and `B, C, F, G`: everything whose
        size grows with the state dimension, i.e. what order reduction removes),
        `"feedthrough"` (`D`), `"norm"`, `"encoder"`, `"head"` and `"total"`.
        """
        ssm = feedthrough = norm = 0
        for layer in self.layers:
            ssm += _count(layer.state_parameters())
            feedthrough += _count(layer.D)
            norm += _count(layer.norm)
        counts = {
            "ssm": ssm,
            "feedthrough": feedthrough,
            "norm": norm,
            "encoder": _count(self.encoder),
            "head": _count(self.head),
        }
        counts["total"] = sum(counts.values())
        return counts

    def trainable_parameter_count(self) -> int:
        """The number of trainable real scalars (inexact array leaves; complex counts 2)."""
        return _count(self)


def _count(tree) -> int:
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return sum(x.size * (2 if jnp.iscomplexobj(x) else 1) for x in leaves)
