r"""The output-error bound of a compressed deep SSM, and certified predictions.

Notation. A [`DeepSSM`][jaxlqo.ssm.DeepSSM] maps `u` to `s⁰ = enc(u)`, then per layer
`yⁱ = S_i(sⁱ⁻¹)`, `aⁱ = sⁱ⁻¹ + σ(yⁱ)`, `sⁱ = LN_i(aⁱ)`, and the logits
`z = W s̄ + b` with `s̄ = (1/L) Σ_k s^ξ_k`. The compressed model (hats) has blocks `Ŝ_i`,
LayerNorms `LN̂_i`, encoder and head of its own (usually all but the blocks shared). Every
quantity below is computed from the *full* model's trajectory on the given input and from the
compressed model's *blocks applied to that trajectory*; the compressed model is never run end
to end. `LN(v) = γ ⊙ g(Pv) + β`, `g(w) = w / √(‖w‖²/H + ε)`, `P` the centring projector.

For a block `Ŝ` write its impulse response as lags `m = 0, …, L−1`:
`T̂(0) = D̂`, `T̂(m) = Re(Ĉ diag(λ̂)^{m−1} B̂)` (H×H), and for the gated quadratic readout
`y_c ∋ Σ_l Re(F̂_{cl} x) Re(Ĝ_{cl} x)` the readout responses `f̂_{cl}(m) = Re(F̂_{cl} λ̂^{m−1} B̂)`,
`ĝ_{cl}(m)` (1×H, zero at `m = 0`). `(κ ⋆ e)_k = Σ_{m ≤ k} κ(m) e_{k−m}` is a causal
convolution of nonnegative sequences.

**Theorem.** Let `εⁱ⁻¹_k ≥ ‖sⁱ⁻¹_k − ŝⁱ⁻¹_k‖` (`ε⁰_k = ‖enc(u_k) − enĉ(u_k)‖`). Let `x̃`, `ỹ` be
the state and output of `Ŝ_i` driven by the full model's `sⁱ⁻¹`, `ã = sⁱ⁻¹ + σ(ỹ)`, and

    p_{c,k} = (‖T̂_c‖ ⋆ ε)_k + Σ_l [ |Re F̂_{cl} x̃_k| (‖ĝ_{cl}‖ ⋆ ε)_k
                               + |Re Ĝ_{cl} x̃_k| (‖f̂_{cl}‖ ⋆ ε)_k
                               + (‖f̂_{cl}‖ ⋆ ε)_k (‖ĝ_{cl}‖ ⋆ ε)_k ],
    P_k = min( ‖p_{·,k}‖, (‖T̂‖₂ ⋆ ε)_k + ‖q_{·,k}‖ )        (q: the bracketed quadratic part),
    ℓ_c = max |σ'| on [ỹ_{c,k} − min(p_{c,k}, P_k), ỹ_{c,k} + min(p_{c,k}, P_k)],
    Δ_k = ε_k + min( ‖ℓ ⊙ min(p, P)‖, max_c ℓ_c P_k ),
    π_k = ‖γ̂‖_∞ min( Δ_k / √(max(‖P ã_k‖ − Δ_k, 0)²/H + ε̂),  ‖g(P ã_k)‖ + √H ),
    λ_k = LN(a_k) − LN̂(ã_k)                                  (the local defect, computed).

Then `‖sⁱ_k − ŝⁱ_k‖ ≤ ‖λ_k‖ + π_k`; also `≤ ‖γ ⊙ g(P a_k) + β − β̂‖ + ‖γ̂‖_∞ √H` (the trivial
bound: no information), so `εⁱ_k` is the smaller. For the pooled features and logits,
with `r_k = min(π_k, ‖λ_k‖ + trivial_k)` on the last layer:

    ‖s̄ − ŝ̄‖ ≤ min( ‖λ̄‖ + r̄,  mean_k ε^ξ_k ),
    z − ẑ = e⁰ + Ŵ λ̄ + Ŵ ρ,  e⁰ = (W − Ŵ) s̄ + b − b̂,  ‖ρ‖ ≤ r̄,
    |z_j − ẑ_j| ≤ |e⁰_j + (Ŵ λ̄)_j| + ‖ŵ_j‖ r̄,

and an input whose full-model prediction `c` satisfies, for every `j ≠ c`,
`z_c − z_j > |(e⁰ + Ŵλ̄)_c − (e⁰ + Ŵλ̄)_j| + ‖ŵ_c − ŵ_j‖ r̄` keeps its prediction in the
compressed model (*certified*); a top-logit margin above twice the logit bound implies it.

**Proof.** Fix a layer; write `s, ŝ` for its input along the two models, `d = s − ŝ`,
`‖d_k‖ ≤ ε_k`. Split `sⁱ − ŝⁱ = [LN(a) − LN̂(ã)] + [LN̂(ã) − LN̂(â)]`: the first bracket is
`λ`, computed exactly (up to rounding, below). For the second:
(1) *Block.* `ỹ − ŷ = Ŝ(s) − Ŝ(ŝ)`. Its linear part is `Σ_{m ≤ k} T̂(m) d_{k−m}`; by the
triangle inequality channel `c` is at most `Σ_m ‖T̂_c(m)‖ ε_{k−m}` and the vector at most
`Σ_m ‖T̂(m)‖₂ ε_{k−m}` (the ℓ∞→ℓ∞ gain: the ℓ1 norm of the impulse response, weighted by the
per-step error profile). The states differ by `Δx_k = Σ_{j<k} λ̂^{k−1−j} B̂ d_j`, so
`|Re F̂_{cl} Δx_k| ≤ (‖f̂_{cl}‖ ⋆ ε)_k =: φ` and likewise `γ` for `Ĝ`. The gated product is
bilinear: with `x̂ = x̃ − Δx`, `f(x̃)g(x̃) − f(x̂)g(x̂) = f(x̃)g(Δx) + f(Δx)g(x̃) − f(Δx)g(Δx)`,
at most `|f(x̃)|γ + |g(x̃)|φ + φγ` — the readout's own induced gain about the *actual* state
`x̃`. Summing gives `|ỹ_c − ŷ_c| ≤ p_c` and `‖ỹ − ŷ‖ ≤ P` (each channel is also `≤ P`).
(2) *GELU.* By the mean value theorem `σ(ỹ_c) − σ(ŷ_c) = σ'(ξ_c)(ỹ_c − ŷ_c)` with `ξ_c`
between them, in the interval of (1). `σ'(x) = Φ(x) + xφ(x)` has its only critical points at
`±√2` (`σ'' = φ(x)(2 − x²)`), so `max |σ'|` on an interval is attained at an endpoint or at
`±√2` inside it (`σ'(√2) ≈ 1.1289`, `σ'(−√2) ≈ −0.1289`). So
`‖σ(ỹ) − σ(ŷ)‖ ≤ min(‖ℓ ⊙ min(p, P)‖, max_c ℓ_c P)`.
(3) *Residual.* `ã − â = d + σ(ỹ) − σ(ŷ)`, so `‖ã − â‖ ≤ Δ`: the identity path adds the
input error once (the factor is `1 + Lip(branch)`, not a product of layer constants).
(4) *LayerNorm.* `g` has Jacobian `(I − w wᵀ/(Hρ²))/ρ`, `ρ = √(‖w‖²/H + ε)`, of norm `1/ρ`.
On the segment from `Pã` to `Pâ` (length `≤ Δ`, as `‖P‖ = 1`), `‖w‖ ≥ ‖Pã‖ − Δ`: the observed
per-step spread of `ã`, less the error radius, not `ε`, sets the constant. The mean value
inequality and `‖γ̂ ⊙ v‖ ≤ ‖γ̂‖_∞ ‖v‖` give `π`'s first term; `‖g(w)‖ < √H` for every `w` gives
its second, and the trivial bound. Induction over layers gives every `εⁱ`.
(5) *Pooling and head.* `s̄ − ŝ̄ = λ̄ + mean_k(LN̂(ã_k) − LN̂(â_k))`, the second term of norm
`≤ r̄` (`r_k` bounds `‖d^ξ_k − λ_k‖` both through `π_k` and through `‖d_k‖ + ‖λ_k‖`). The
logits are affine: `z − ẑ = (W − Ŵ) s̄ + b − b̂ + Ŵ(s̄ − ŝ̄)`; Cauchy–Schwarz per row gives the
logit bound, and `ẑ_c − ẑ_j = z_c − z_j − (e_c − e_j)` the certificate. ∎

**Rounding.** Each computed block output carries an error `≤ ν_k = κ·eps·M_k`, `M_k` the
convolution of the absolute impulse response (`|C| |λ|^m |B|`, readouts alike) with `‖s‖`,
`κ = 8 (L + n + H)` (a generous form of the `γ_L` forward-error bound of a length-`L` sum);
it is added to `P` and to `λ`'s error through LayerNorm's Lipschitz constant, so the bound
stays above the measured error at full order, where both are at rounding level.

**A-priori (h2) form.** `local="h2"` replaces `λ` by worst-case estimates that use the
blocks' h2-type quantities only: the block-output defect `y − ỹ` is bounded per step by
`δ_{1}(k) W_k + δ_{2}(k) W_k² + ‖D − D̂‖₂ ‖s_k‖`, `W_k = ‖s‖_{[0,k]}`, with
`δ₁(k) = ‖[E(1), …, E(k)]‖₂` the generalised-h2 (ℓ2→ℓ∞) gain of the error's impulse
response `E = T − T̂` over lags `≤ k` (`√λ_max` of its windowed Gramian), and `δ₂` the
gated-product estimate `Σ_l ‖f − f̂‖ ‖g‖ + ‖f̂‖ ‖g − ĝ‖` (window norms), per channel too;
then steps (2)–(4) around the full trajectory. Every δ is computed from impulse-response
differences, never from `‖Σ‖² + ‖Σ̂‖² − 2⟨Σ, Σ̂⟩`, so it has no cancellation floor. Its
first-order form in the layer errors is [`jaxlqo.ssm.bound_weights`][].

??? cite "References"
    H. Sakamoto, K. Sato, "A Deep State-Space Model Compression Method using Upper Bound on
    Output Error", arXiv:2510.14542 (2025): the layerwise, h2-weighted bound this refines.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
from jaxtyping import Array

from .._systems import DiagonalLQOSystem
from ._model import GELU_LIPSCHITZ, DeepSSM, gelu

_SQRT2 = math.sqrt(2.0)
#: `σ'(−√2)`: the most negative GELU slope.
_GELU_MIN_SLOPE = GELU_LIPSCHITZ - 1.0


def safe_norm(x: Array, axis=-1) -> Array:
    """`‖x‖` along `axis`: scaled (no overflow for huge entries), with a zero (not NaN)
    derivative at `x = 0` (double-where)."""
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axis, keepdims=True))
    positive = scale > 0
    scale = jnp.where(positive, scale, 1.0)
    squared = jnp.sum((x / scale) ** 2, axis=axis)
    positive = squared > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
    return jnp.squeeze(scale, axis) * root


def _gelu_slope(x: Array) -> Array:
    return jsp.special.ndtr(x) + x * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def gelu_slope_bound(lo: Array, hi: Array) -> Array:
    """`max |σ'|` over `[lo, hi]` for the exact GELU (endpoints and the critical points ±√2)."""
    slope = jnp.maximum(jnp.abs(_gelu_slope(lo)), jnp.abs(_gelu_slope(hi)))
    slope = jnp.where((lo <= _SQRT2) & (hi >= _SQRT2), GELU_LIPSCHITZ, slope)
    inner = (lo <= -_SQRT2) & (hi >= -_SQRT2)
    slope = jnp.where(inner, jnp.maximum(slope, abs(_GELU_MIN_SLOPE)), slope)
    # Rounding of erf/exp: a relative margin keeps the slope an upper bound.
    return jnp.minimum(slope * (1 + 1e-6), GELU_LIPSCHITZ * (1 + 1e-12))


def _powers(poles: Array, lags: int) -> Array:
    """`λ^m` for `m = 0, …, lags − 1`, shape `(lags, n)` (products, so `λ = 0` is fine)."""
    ones = jnp.ones((1,) + poles.shape, poles.dtype)
    if lags == 1:
        return ones
    rest = jnp.cumprod(jnp.broadcast_to(poles, (lags - 1,) + poles.shape), axis=0)
    return jnp.concatenate([ones, rest], axis=0)


class BlockResponse(eqx.Module):
    """Impulse response of a block over lags `0..L−1` (lag 0: `D`; readouts zero at lag 0)."""

    linear: Array  # (L, H, H) T(m)
    f: Array | None  # (L, H, q, H)
    g: Array | None
    linear_abs: Array  # (L,) ‖|C| |λ|^{m−1} |B|‖_F, |D| at 0: rounding magnitudes
    f_abs: Array | None  # (L, H, q)
    g_abs: Array | None


def block_response(sys: DiagonalLQOSystem, lags: int) -> BlockResponse:
    """`T(m)`, `f(m)`, `g(m)` for `m < lags` of a diagonal LQO block (see the module docs)."""
    powers = _powers(sys.poles, lags - 1) if lags > 1 else jnp.zeros((0, sys.n), sys.poles.dtype)
    lin = jnp.real(jnp.einsum("pn,ln,nm->lpm", sys.C, powers, sys.B))
    lin = jnp.concatenate([sys.D[None].astype(lin.dtype), lin], axis=0)
    apow = jnp.abs(powers)
    lin_abs = jnp.linalg.norm(
        jnp.einsum("pn,ln,nm->lpm", jnp.abs(sys.C), apow, jnp.abs(sys.B)), axis=(1, 2)
    )
    lin_abs = jnp.concatenate([jnp.linalg.norm(sys.D)[None].astype(lin_abs.dtype), lin_abs])
    if sys.F is None:
        return BlockResponse(lin, None, None, lin_abs, None, None)

    def readout(F):
        resp = jnp.real(jnp.einsum("pqn,ln,nm->lpqm", F, powers, sys.B))
        mag = jnp.linalg.norm(
            jnp.einsum("pqn,ln,nm->lpqm", jnp.abs(F), apow, jnp.abs(sys.B)), axis=-1
        )
        zero = jnp.zeros((1,) + resp.shape[1:], resp.dtype)
        return (
            jnp.concatenate([zero, resp], axis=0),
            jnp.concatenate([zero[..., 0], mag], axis=0),
        )

    f, f_abs = readout(sys.F)
    g, g_abs = readout(sys.G)
    return BlockResponse(lin, f, g, lin_abs, f_abs, g_abs)


def _op_norm_bound(m: Array, squarings: int = 5) -> Array:
    """An upper bound on the spectral norm of each trailing matrix, without LAPACK.

    `‖M‖₂^{2^{j+1}} = ‖(MᵀM)^{2^j}‖₂ ≤ ‖(MᵀM)^{2^j}‖_F`: repeated squaring (normalised
    against overflow) gives an upper bound within a factor `rank^{1/2^{j+1}}` (≤ 1.05 for
    rank 16, j = 5). Batched SVDs inside `vmap` can stall XLA's CPU thread pool, matmuls
    cannot. Capped by the Frobenius norm.
    """
    peak = jnp.max(jnp.abs(m), axis=(-2, -1))
    peak = jnp.where(peak > 0, peak, 1.0)
    m = m / peak[..., None, None]
    frob = jnp.sqrt(jnp.sum(m * m, axis=(-2, -1)))
    safe = jnp.where(frob > 0, frob, 1.0)
    g = jnp.swapaxes(m, -1, -2) @ m / (safe**2)[..., None, None]  # ‖g‖₂ ≤ 1
    log_scale = jnp.zeros_like(frob)
    for j in range(squarings):
        norm = jnp.sqrt(jnp.sum(g * g, axis=(-2, -1)))
        norm = jnp.where(norm > 0, norm, 1.0)
        g = g / norm[..., None, None]
        log_scale = log_scale + jnp.log(norm) / 2.0**j
        g = g @ g
    last = jnp.sqrt(jnp.sum(g * g, axis=(-2, -1)))
    log_sq = log_scale + jnp.log(jnp.where(last > 0, last, 1.0)) / 2.0**squarings
    bound = safe * jnp.exp(log_sq / 2) * (1 + 1e-10)
    return peak * jnp.where(frob > 0, jnp.minimum(bound, frob * (1 + 1e-12)), 0.0)


def _toeplitz(kernel: Array) -> Array:
    """`K[k, j] = kernel[k − j]` for `j ≤ k`, else 0: shape `(L, L) + kernel.shape[1:]`."""
    length = kernel.shape[0]
    k = jnp.arange(length)
    lag = k[:, None] - k[None, :]
    full = kernel[jnp.clip(lag, 0, length - 1)]
    mask = (lag >= 0).reshape((length, length) + (1,) * (kernel.ndim - 1))
    return jnp.where(mask, full, 0.0)


def _conv(kernel: Array, e: Array) -> Array:
    """`(κ ⋆ e)_k = Σ_{m≤k} κ(m) e_{k−m}`: kernel `(L, …)`, `e` `(L,)` → `(L, …)`."""
    return jnp.tensordot(_toeplitz(kernel), e, axes=([1], [0]))


class _Gains(eqx.Module):
    """The input-independent norms of one compressed block used by the propagation step."""

    row: Array  # (L, H) ‖T̂_c(m)‖
    op: Array  # (L,) ‖T̂(m)‖₂
    f_row: Array | None  # (L, H, q)
    g_row: Array | None
    abs_full: BlockResponse
    abs_red: BlockResponse


def _gains(full: BlockResponse, red: BlockResponse, H: int) -> _Gains:
    tiny = 16 * H * jnp.finfo(red.linear.dtype).eps
    row = jnp.linalg.norm(red.linear, axis=-1) * (1 + tiny)
    op = _op_norm_bound(red.linear) * (1 + tiny)
    f_row = None if red.f is None else jnp.linalg.norm(red.f, axis=-1) * (1 + tiny)
    g_row = None if red.g is None else jnp.linalg.norm(red.g, axis=-1) * (1 + tiny)
    return _Gains(row, op, f_row, g_row, full, red)


def _rounding(resp: BlockResponse, s_norm: Array, kappa_eps) -> Array:
    """`ν_k`: a bound on the rounding error of one computed block output (see module docs)."""
    mag = _conv(resp.linear_abs, s_norm)
    if resp.f_abs is not None:
        assert resp.g_abs is not None  # both readouts are set or both None
        mf, mg = _conv(resp.f_abs, s_norm), _conv(resp.g_abs, s_norm)
        mag = mag + safe_norm(jnp.sum(mf * mg, axis=-1), axis=-1)
    return kappa_eps * mag


def _ln_parts(norm: eqx.nn.LayerNorm, H: int, dtype):
    gamma = jnp.ones(H, dtype) if norm.weight is None else norm.weight
    beta = jnp.zeros(H, dtype) if norm.bias is None else norm.bias
    return gamma, beta, norm.eps


def _centred(a: Array) -> Array:
    return a - jnp.mean(a, axis=-1, keepdims=True)


def _ln_propagate(gamma_max, ln_eps, centred_norm, radius, H, cap):
    """`‖γ‖_∞ min(Δ/ρ_min, cap)` with `ρ_min = √(max(‖Pa‖ − Δ, 0)²/H + ε)`."""
    rho = jnp.sqrt(jnp.maximum(centred_norm - radius, 0.0) ** 2 / H + ln_eps)
    return gamma_max * jnp.minimum(radius / rho, cap)


class LayerTrace(eqx.Module):
    """One layer of the full model's trajectory on one input: input `s`, block output `y`."""

    s: Array  # (L, H)
    y: Array  # (L, H)


class Trajectory(eqx.Module):
    """The full model's trajectory on one (or, batched, several) input sequence(s).

    Computed once by [`jaxlqo.ssm.full_trajectory`][] and reused for every compressed model
    of a sweep.
    """

    layers: tuple[LayerTrace, ...]
    features: Array  # (L, H)
    logits: Array  # (n_classes,)


def trajectory_of(model: DeepSSM, u: Array) -> Trajectory:
    s = model.encode(u)
    traces = []
    for layer in model.layers:
        y = layer.block(s)
        traces.append(LayerTrace(s, y))
        s = jax.vmap(layer.norm)(s + gelu(y))
    return Trajectory(tuple(traces), s, model.classify(s))


class PairData(eqx.Module):
    """Per-layer input-independent data of a (model, compressed) pair."""

    gains: tuple[_Gains, ...]
    error: tuple  # per layer (E linear (L,H,H), ef, eg, f, g, f̂, ĝ) for the h2 form
    systems: tuple  # the reduced systems


def pair_data(model: DeepSSM, compressed: DeepSSM, length: int) -> PairData:
    gains, errors, systems = [], [], []
    for full, red in zip(model.layers, compressed.layers, strict=True):
        fs, rs = full.system(), red.system()
        rf, rr = block_response(fs, length), block_response(rs, length)
        gains.append(_gains(rf, rr, full.H))
        errors.append((rf, rr))
        systems.append(rs)
    return PairData(tuple(gains), tuple(errors), tuple(systems))


def _h2_local(rf: BlockResponse, rr: BlockResponse, s: Array, kappa_eps):
    """A-priori bounds (vector `(L,)`, per channel `(L, H)`) on the block defect `y − ỹ`."""
    s_norm = safe_norm(s)
    window = jnp.sqrt(jnp.cumsum(s_norm**2))  # ‖s‖_{[0,k]}
    err = rf.linear - rr.linear  # (L, H, H); lag 0: D − D̂
    slack = kappa_eps * (rf.linear_abs + rr.linear_abs)  # rounding of each E(m)
    d_op = _op_norm_bound(err[0]) + slack[0]
    d_row = jnp.linalg.norm(err[0], axis=-1) + slack[0]
    lag = err[1:]
    # Generalised h2 over lags ≤ k: √λ_max(Σ_{1≤m≤k} E(m) E(m)ᵀ), plus the rounding slack.
    gram = jnp.cumsum(jnp.einsum("lij,lkj->lik", lag, lag), axis=0)
    # λ_max of a PSD matrix ≤ its trace and ≤ its largest absolute row sum (Gershgorin).
    lam = jnp.minimum(
        jnp.trace(gram, axis1=-2, axis2=-1), jnp.max(jnp.sum(jnp.abs(gram), axis=-1), axis=-1)
    )
    lam = jnp.maximum(lam, 0.0) * (1 + 64 * kappa_eps) + jnp.max(jnp.abs(gram)) * kappa_eps
    op = jnp.sqrt(lam) + jnp.sqrt(jnp.cumsum(slack[1:] ** 2))
    row = (
        jnp.sqrt(jnp.cumsum(jnp.sum(lag**2, axis=-1), axis=0))
        + jnp.sqrt(jnp.cumsum(slack[1:] ** 2))[:, None]
    )
    zero = jnp.zeros((1,), op.dtype)
    op = jnp.concatenate([zero, op])  # lags ≤ k of the strictly causal part: index k−1
    row = jnp.concatenate([jnp.zeros((1, row.shape[1]), row.dtype), row])
    # window of inputs s_0..s_{k−1} for the strictly causal part
    past = jnp.concatenate([zero, window[:-1]])
    vec = op * past + d_op * s_norm
    chan = row * past[:, None] + d_row[None] * s_norm[:, None]
    if rf.f is not None:
        # Both blocks have a quadratic readout (the compressed layer keeps its rank).
        assert rf.g is not None and rf.f_abs is not None and rf.g_abs is not None
        assert rr.f is not None and rr.g is not None
        assert rr.f_abs is not None and rr.g_abs is not None

        def wnorm(x):  # window norm over lags 1..k and the input dim: (L, H, q)
            return jnp.sqrt(jnp.cumsum(jnp.sum(x**2, axis=-1), axis=0))

        q_slack = kappa_eps * (rf.f_abs + rr.f_abs + rf.g_abs + rr.g_abs)
        qs = jnp.sqrt(jnp.cumsum(q_slack**2, axis=0))
        ef, eg = wnorm(rf.f - rr.f) + qs, wnorm(rf.g - rr.g) + qs
        # the window of lags 1..k pairs with inputs s_{k−1}..s_0
        quad = jnp.sum(ef * wnorm(rf.g) + wnorm(rr.f) * eg, axis=-1)  # (L, H)
        quad = quad * past[:, None] ** 2
        chan = chan + quad
        vec = vec + safe_norm(quad)
    return vec, jnp.minimum(chan, vec[:, None])


def bound_chain(
    model: DeepSSM,
    compressed: DeepSSM,
    static: PairData,
    traj: Trajectory,
    u: Array,
    a_priori: bool,
    local_override=None,
):
    """The theorem's recursion for one input. Returns a dict of per-input results.

    `a_priori=False` uses each compressed layer's measured local defect, `True` its a-priori
    h2-type estimate (the public `local="measured"` / `local="h2"`); `local_override`
    replaces the local terms per layer (the bound's first-order weights).
    """
    if not isinstance(a_priori, bool):  # a string such as "measured" would read as True
        raise TypeError(f"bound_chain: `a_priori` must be a bool; got {a_priori!r}.")
    dtype = traj.features.dtype
    eps = jnp.finfo(dtype).eps
    length, H = traj.features.shape
    n_max = max(layer.n for layer in model.layers)
    kappa_eps = 8 * (length + n_max + H) * eps
    enc_full = model.encode(u.astype(dtype))
    enc_red = compressed.encode(u.astype(dtype))
    e_prev = safe_norm(enc_full - enc_red) + kappa_eps * (safe_norm(enc_full) + safe_norm(enc_red))
    sqrt_h = math.sqrt(H)
    for i, (full, red, trace) in enumerate(
        zip(model.layers, compressed.layers, traj.layers, strict=True)
    ):
        gains = static.gains[i]
        rsys = static.systems[i]
        s, y = trace.s, trace.y
        s_norm = safe_norm(s)
        x_red = rsys.states(s)
        y_red = jax.vmap(rsys.output)(x_red, s)
        nu_full = _rounding(gains.abs_full, s_norm, kappa_eps)
        nu_red = _rounding(gains.abs_red, s_norm, kappa_eps)
        # (1) propagated block error, per channel and as a vector
        lin_c = _conv(gains.row, e_prev)  # (L, H)
        lin_v = _conv(gains.op, e_prev)  # (L,)
        quad_c = jnp.zeros_like(lin_c)
        if gains.f_row is not None:
            assert gains.g_row is not None  # both readouts are set or both None
            phi = _conv(gains.f_row, e_prev)  # (L, H, q)
            gam = _conv(gains.g_row, e_prev)
            fx = jnp.real(jnp.einsum("cqn,kn->kcq", rsys.F, x_red))
            gx = jnp.real(jnp.einsum("cqn,kn->kcq", rsys.G, x_red))
            quad_c = jnp.sum(jnp.abs(fx) * gam + jnp.abs(gx) * phi + phi * gam, axis=-1)
        p = lin_c + quad_c + (nu_red + nu_full)[:, None]
        P = jnp.minimum(safe_norm(p), lin_v + safe_norm(quad_c) + nu_red + nu_full)
        gamma, beta, ln_eps = _ln_parts(full.norm, H, dtype)
        gamma_r, beta_r, ln_eps_r = _ln_parts(red.norm, H, dtype)
        gmax_r = jnp.max(jnp.abs(gamma_r))
        a = s + gelu(y)
        if local_override is not None or a_priori:
            if local_override is not None:
                loc_v, loc_c = local_override[i]
            else:
                rf, rr = static.error[i]
                loc_v, loc_c = _h2_local(rf, rr, s, kappa_eps)
            # y − ŷ = (y − ỹ) + (ỹ − ŷ), centred on the full y
            rad_c = jnp.minimum(loc_c + p, (loc_v + P)[:, None])
            rad_v = loc_v + P
            slope = gelu_slope_bound(y - rad_c, y + rad_c)
            branch = jnp.minimum(safe_norm(slope * rad_c), jnp.max(slope, axis=-1) * rad_v)
            delta = e_prev + branch + kappa_eps * (safe_norm(a) + s_norm)
            # LN(a) − LN̂(â) = [LN(a) − LN̂(a)] (computed; 0 for shared norms) + LN̂(a) − LN̂(â)
            swap = safe_norm(jax.vmap(full.norm)(a) - jax.vmap(red.norm)(a))
            centred = safe_norm(_centred(a))
            gnorm = centred / jnp.sqrt(centred**2 / H + ln_eps_r)
            trivial = (
                safe_norm(
                    gamma * _centred(a) / jnp.sqrt(centred**2 / H + ln_eps)[:, None] + beta - beta_r
                )
                + gmax_r * sqrt_h
            ) * (1 + kappa_eps)
            eps_out = swap + _ln_propagate(gmax_r, ln_eps_r, centred, delta, H, gnorm + sqrt_h)
            eps_out = eps_out + kappa_eps * (
                2 * gmax_r * sqrt_h + safe_norm(beta_r) + safe_norm(beta)
            )
            exact = jnp.zeros_like(s)
            remainder = jnp.minimum(eps_out, trivial)
            eps_out = remainder
        else:
            rad_c = jnp.minimum(p, P[:, None])
            slope = gelu_slope_bound(y_red - rad_c, y_red + rad_c)
            branch = jnp.minimum(safe_norm(slope * rad_c), jnp.max(slope, axis=-1) * P)
            a_red = s + gelu(y_red)
            delta = e_prev + branch + kappa_eps * (safe_norm(a_red) + s_norm)
            c_red = safe_norm(_centred(a_red))
            g_red = c_red / jnp.sqrt(c_red**2 / H + ln_eps_r)
            pi = _ln_propagate(gmax_r, ln_eps_r, c_red, delta, H, g_red + sqrt_h)
            exact = jax.vmap(full.norm)(a) - jax.vmap(red.norm)(a_red)
            # rounding of the computed defect: both block outputs through each LayerNorm
            c_full = safe_norm(_centred(a))
            gmax = jnp.max(jnp.abs(gamma))
            nu_a = GELU_LIPSCHITZ * nu_full + kappa_eps * (safe_norm(a) + s_norm)
            nu_ar = GELU_LIPSCHITZ * nu_red + kappa_eps * (safe_norm(a_red) + s_norm)
            nu_exact = (
                _ln_propagate(gmax, ln_eps, c_full, nu_a, H, 2 * sqrt_h)
                + _ln_propagate(gmax_r, ln_eps_r, c_red, nu_ar, H, 2 * sqrt_h)
                + kappa_eps
                * (gmax * sqrt_h + gmax_r * sqrt_h + safe_norm(beta) + safe_norm(beta_r))
            )
            exact_norm = safe_norm(exact)
            trivial = (
                safe_norm(
                    gamma * _centred(a) / jnp.sqrt(c_full**2 / H + ln_eps)[:, None] + beta - beta_r
                )
                + gmax_r * sqrt_h
            ) * (1 + kappa_eps)
            remainder = jnp.minimum(pi + nu_exact, trivial + exact_norm)
            eps_out = jnp.minimum(exact_norm + remainder, trivial)
        e_prev = eps_out
    # (5) pooling and head
    pooled_exact = jnp.mean(exact, axis=0)
    r_bar = jnp.mean(remainder)
    pooled = jnp.minimum(safe_norm(pooled_exact) + r_bar, jnp.mean(e_prev))
    s_bar = jnp.mean(traj.features, axis=0)
    w, b = model.head.weight, model.head.bias
    w_r, b_r = compressed.head.weight, compressed.head.bias
    e0 = (w - w_r) @ s_bar
    if b is not None:
        assert b_r is not None  # the compressed model keeps the head as it is
        e0 = e0 + b - b_r
    e_exact = e0 + w_r @ pooled_exact
    head_slack: Array = kappa_eps * (
        jnp.abs(w) @ jnp.abs(s_bar) + jnp.abs(w_r) @ jnp.abs(s_bar) + 1.0
    )
    row_norms = jnp.linalg.norm(w_r, axis=-1)
    logit_bound = (
        jnp.minimum(jnp.abs(e_exact) + row_norms * r_bar, jnp.abs(e0) + row_norms * pooled)
        + head_slack
    )
    z = traj.logits
    c = jnp.argmax(z)
    diff_rows = jnp.linalg.norm(w_r[c][None] - w_r, axis=-1)
    need = (
        jnp.minimum(
            jnp.abs(e_exact[c] - e_exact) + diff_rows * r_bar,
            jnp.abs(e0[c] - e0) + diff_rows * pooled,
        )
        + head_slack
        + head_slack[c]
    )
    gap = z[c] - z
    others = jnp.arange(z.shape[0]) != c
    certified = jnp.all(jnp.where(others, gap > need, True))
    return {
        "steps": e_prev,
        "bound": jnp.max(e_prev),
        "trivial": jnp.max(trivial),
        "pooled": pooled,
        "logits": logit_bound,
        "logit_bound": jnp.max(logit_bound),
        "certified": certified,
    }
