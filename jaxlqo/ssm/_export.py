r"""Export (reduced) complex-diagonal systems as S5 and LRU parameter sets.

The inverse of `jaxlqo/ssm/_import.py`. A jaxlqo system is strictly causal,
`x_{k+1} = λ x_k + B u_k`, `y_k = Re(C x_k) + D u_k`; an S5 / LRU layer puts the current input
into the state, `h_k = λ h_{k-1} + B u_k`, `y_k = Re(c C̃ h_k) + d ⊙ u_k` (`c = 2` for S5 with
conjugate symmetry, else 1). With `h_k = x_{k+1}` the two agree exactly when

$$c\,\tilde C = C \operatorname{diag}(\lambda)^{-1},\qquad
  \operatorname{diag}(d) = D - \operatorname{Re}(C \operatorname{diag}(\lambda)^{-1} B),$$

so a system is a layer with the same states iff its poles are non-zero (a zero pole is a pure
delay, which a state holding the current input cannot produce) and
$E = D - \operatorname{Re}(C\lambda^{-1}B)$ is diagonal: the layer's `D` is elementwise.
Imported layers satisfy this; a reduced one in general does not, since every jaxlqo reducer
keeps `D̂ = D` while `Re(Ĉ λ̂⁻¹ B̂)` changes. [`jaxlqo.ssm.exportable`][] drops the off-diagonal
part of `E`, the only change, at h2 cost $\|\operatorname{offdiag}(E)\|_F$ (lag 0 alone
differs).

For a bidirectional (stacked) system the map depends on the two feedthroughs only through
`D₁ + D₂` (module docstring of `jaxlqo/ssm/_bidirectional.py`), so the condition is on
$E = (D_1 + D_2) - \operatorname{Re}((C_1 + C_2)\lambda^{-1}B)$.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._systems import DiagonalLQOSystem, check_system


def _is_bidirectional(sys, bidirectional: bool | None, caller: str) -> bool:
    """Whether `sys` is a stacked bidirectional layer (`p = 2m`) or a plain one (`p = m`)."""
    check_system(sys, caller)
    if not isinstance(sys, DiagonalLQOSystem) or not sys.is_discrete or not sys.is_lti:
        raise TypeError(
            f"{caller}: `sys` must be a discrete-time LTI DiagonalLQOSystem (an S5 / LRU layer has "
            f"no quadratic output); got {type(sys).__name__} with dt={sys.dt}"
            f"{'' if sys.is_lti else ' and a quadratic output'}."
        )
    found = {sys.m: False, 2 * sys.m: True}.get(sys.p)
    if found is None:
        raise ValueError(
            f"{caller}: an S5 / LRU layer has as many outputs as inputs (p = m), or twice as many "
            f"when bidirectional (p = 2m, the forward readout stacked on the backward one); got "
            f"m = {sys.m}, p = {sys.p}."
        )
    if bidirectional is not None and bool(bidirectional) != found:
        raise ValueError(
            f"{caller}: `bidirectional={bidirectional}`, but `sys` has p = {sys.p} outputs for "
            f"m = {sys.m} inputs ({'bidirectional' if found else 'one direction'}); pass "
            f"`bidirectional={found}` or None (detect)."
        )
    return found


def exportable(sys: DiagonalLQOSystem, *, bidirectional: bool | None = None) -> DiagonalLQOSystem:
    r"""The system nearest `sys` that an S5 / LRU layer with the same states runs exactly.

    $$D' = D - \operatorname{offdiag}(E),\qquad E = D - \operatorname{Re}(C\lambda^{-1}B)$$

    (bidirectional: $E = (D_1 + D_2) - \operatorname{Re}((C_1 + C_2)\lambda^{-1}B)$, and
    $D_1' = \operatorname{Re}(C_1\lambda^{-1}B) + \operatorname{diag}(E)$,
    $D_2' = \operatorname{Re}(C_2\lambda^{-1}B)$, the same bidirectional map when `E` is
    diagonal). Poles, `B` and `C` are unchanged; only lag 0 changes, so
    `h2_error(sys, exportable(sys)) = ‖offdiag(E)‖_F` (module docstring). Apply it to a reduced
    system before [`jaxlqo.ssm.system_to_s5`][] / [`jaxlqo.ssm.system_to_lru`][], and measure the
    exported layer's error against the full one with it.

    **Arguments:**

    - `sys`: a discrete-time LTI [`jaxlqo.DiagonalLQOSystem`][] with non-zero poles and `p = m`
        (or `p = 2m`: bidirectional).
    - `bidirectional`: keyword-only; `None` (default) reads it from the shape.

    **Returns:** the `DiagonalLQOSystem` with `D` replaced by `D'`. Traceable (`jit`, `vmap`,
    `grad`).
    """
    caller = "exportable"
    bi = _is_bidirectional(sys, bidirectional, caller)
    q = sys.m
    current = jnp.real((sys.C / sys.poles[None, :]) @ sys.B).astype(sys.D.dtype)  # (p, m)
    if bi:
        residual = (sys.D[:q] + sys.D[q:]) - (current[:q] + current[q:])
        d = current + jnp.concatenate([jnp.diag(jnp.diag(residual)), jnp.zeros_like(residual)])
    else:
        d = current + jnp.diag(jnp.diag(sys.D - current))
    return eqx.tree_at(lambda s: s.D, sys, d)


def _layer_form(sys, bidirectional, caller):
    """`(λ, B, c C̃ (p, P), d (m,), bidirectional)` as NumPy arrays; raises if not exact."""
    bi = _is_bidirectional(sys, bidirectional, caller)
    poles, b, c, d_full = (np.asarray(x) for x in (sys.poles, sys.B, sys.C, sys.D))
    if np.any(poles == 0):
        raise ValueError(
            f"{caller}: `sys` has a zero pole (states {np.flatnonzero(poles == 0).tolist()}): "
            "a pure delay, which an S5 / LRU state (it holds the current input) cannot produce."
        )
    c_scaled = c / poles[None, :]
    current = (c_scaled @ b).real
    q = sys.m
    if bi:
        residual = (d_full[:q] + d_full[q:]) - (current[:q] + current[q:])
    else:
        residual = d_full - current
    off = residual - np.diag(np.diag(residual))
    scale = np.linalg.norm(d_full) + np.linalg.norm(np.abs(c_scaled) @ np.abs(b))
    tol = 1e3 * np.finfo(d_full.dtype).eps * scale
    if np.linalg.norm(off) > tol:
        raise ValueError(
            f"{caller}: `sys` is not a layer with {sys.n} states: the part of its feedthrough "
            "that is not the current-input term, D − Re(C λ⁻¹ B), must be diagonal (the "
            f"layer's D acts elementwise), but its off-diagonal part has norm "
            f"{np.linalg.norm(off):.3g} (> {tol:.2g}). A reduced system keeps D̂ = D and is "
            "rarely exact: export `jaxlqo.ssm.exportable(sys)`, which drops that part (its h2 "
            "error to `sys` is this norm)."
        )
    return poles, b, c_scaled, np.diag(residual).copy(), bi


def _pairs(z: np.ndarray) -> np.ndarray:
    """A complex array as real `(..., 2)`: the real and imaginary parts on the last axis."""
    return np.stack([np.real(z), np.imag(z)], axis=-1)


def system_to_s5(
    sys: DiagonalLQOSystem,
    *,
    conj_sym: bool = True,
    discretization: str = "zoh",
    step: float | Array = 1.0,
    step_rescale: float = 1.0,
    clip_eigs: bool = False,
    bidirectional: bool | None = None,
    stacked_readout: bool = False,
) -> dict:
    r"""An S5 layer's SSM parameters (`s5/ssm.py`, `S5SSM`) that run `sys` exactly.

    The inverse of [`jaxlqo.ssm.system_from_s5`][] with the same settings: S5's forward pass
    with these parameters equals [`jaxlqo.simulate`][] of `sys` (bidirectional:
    [`jaxlqo.ssm.simulate_bidirectional`][]), and importing them gives `sys` back (up to
    rounding; for a bidirectional `sys`, with its feedthrough in the canonical split of
    [`jaxlqo.ssm.exportable`][]). S5 keeps a continuous-time $\Lambda$ and a step $\Delta$ per
    state; the discrete poles fix only $\Lambda\Delta$ (zoh) or the bilinear image, so
    $\Delta$ is free (`step`). For poles $\bar\lambda$ and scaled readout
    $\tilde C = C\bar\lambda^{-1}/c$ ($c = 2$ with `conj_sym`):

    - zoh: $\Lambda = \log(\bar\lambda)/\Delta$ (principal branch),
        $\tilde B = \Lambda(\bar\lambda - 1)^{-1} \bar B$;
    - bilinear: $\Lambda = \tfrac{2}{\Delta}(\bar\lambda - 1)(\bar\lambda + 1)^{-1}$,
        $\tilde B = \tfrac{2}{\Delta}(\bar\lambda + 1)^{-1}\bar B$;
    - `D` $= \operatorname{diag}(D - \operatorname{Re}(C\bar\lambda^{-1}B))$, `log_step`
        $= \log(\Delta/\text{step\_rescale})$.

    **Arguments:**

    - `sys`: a discrete-time LTI [`jaxlqo.DiagonalLQOSystem`][] with `p = m` outputs, or
        `p = 2m` for a bidirectional layer (forward readout on top), that a layer runs exactly:
        pass a reduced system through [`jaxlqo.ssm.exportable`][] first (else `ValueError`).
    - `conj_sym`, `discretization` (`"zoh"` or `"bilinear"`), `step_rescale`, `clip_eigs`:
        keyword-only; the settings of the S5 model that will load the parameters. With
        `clip_eigs`, every $\operatorname{Re}\Lambda$ must be $\le -10^{-4}$ (else
        `ValueError`: choose a smaller `step`), so that S5's clipping changes nothing.
    - `step`: keyword-only; $\Delta$ (after `step_rescale`), a positive number or one per
        state `(P,)`. Any value gives the same discrete layer; keep the trained model's
        time scale (e.g. the geometric mean of its steps) if the layer will be retrained or
        run at another resolution through `step_rescale`.
    - `bidirectional`: keyword-only; `None` (default) reads it from the shape of `sys`.
    - `stacked_readout`: keyword-only; bidirectional only: write one `C` of shape
        `(H, 2P, 2)` (S5 with `C_init="complex_normal"`) instead of `C1`, `C2`.

    **Returns:** a dict of NumPy arrays in S5's layout and the system's precision:
    `Lambda_re`, `Lambda_im` `(P,)`, `B` `(P, H, 2)`, `C` `(H, P, 2)` (or `C1`, `C2`),
    `D` `(H,)`, `log_step` `(P, 1)`. Host code: not traceable.
    """
    caller = "system_to_s5"
    if discretization not in ("zoh", "bilinear"):
        raise ValueError(
            f"{caller}: `discretization` must be 'zoh' or 'bilinear' (S5's options); got "
            f"{discretization!r}."
        )
    lam_bar, b_bar, c_scaled, d, bi = _layer_form(sys, bidirectional, caller)
    n = lam_bar.shape[0]
    rdtype = d.dtype
    delta = np.asarray(step, dtype=rdtype)
    if delta.ndim == 0:
        delta = np.full(n, delta)
    elif delta.shape != (n,):
        raise ValueError(
            f"{caller}: `step` must be a number or have shape ({n},) (one per state); got "
            f"shape {delta.shape}."
        )
    if not (np.all(np.isfinite(delta)) and np.all(delta > 0)) or not step_rescale > 0:
        raise ValueError(
            f"{caller}: `step` and `step_rescale` must be positive; got step={step!r}, "
            f"step_rescale={step_rescale!r}."
        )
    if discretization == "zoh":
        if np.any(lam_bar == 1):
            raise ValueError(f"{caller}: a pole at exactly 1 has no zoh counterpart (Λ = 0).")
        lam = np.log(lam_bar) / delta
        b_tilde = (lam / (lam_bar - 1))[:, None] * b_bar
    else:
        if np.any(lam_bar == -1):
            raise ValueError(f"{caller}: a pole at exactly −1 has no bilinear counterpart.")
        lam = (2 / delta) * (lam_bar - 1) / (lam_bar + 1)
        b_tilde = (2 / (delta * (lam_bar + 1)))[:, None] * b_bar
    if clip_eigs and np.any(lam.real > -1e-4):
        raise ValueError(
            f"{caller}: with `clip_eigs=True` S5 clips Re Λ to ≤ −1e-4, but Re Λ reaches "
            f"{lam.real.max():.3g} (poles near the unit circle, or |λ| ≥ 1): the layer would "
            "change. Pass a smaller `step` (Re Λ = log|λ|/Δ for zoh), or `clip_eigs=False`."
        )
    c_tilde = c_scaled / (2 if conj_sym else 1)
    out = {
        "Lambda_re": lam.real.astype(rdtype),
        "Lambda_im": lam.imag.astype(rdtype),
        "B": _pairs(b_tilde).astype(rdtype),
    }
    q = sys.m
    if not bi:
        out["C"] = _pairs(c_tilde).astype(rdtype)
    elif stacked_readout:
        out["C"] = _pairs(np.concatenate([c_tilde[:q], c_tilde[q:]], axis=1)).astype(rdtype)
    else:
        out["C1"], out["C2"] = (
            _pairs(c_tilde[:q]).astype(rdtype),
            _pairs(c_tilde[q:]).astype(rdtype),
        )
    out["D"] = d
    out["log_step"] = np.log(delta / rdtype.type(step_rescale))[:, None].astype(rdtype)
    return out


def system_to_lru(sys: DiagonalLQOSystem, *, gamma: bool = True) -> dict:
    r"""An LRU layer's parameters (`lru/model.py`, `LRU`) that run `sys` exactly.

    The inverse of [`jaxlqo.ssm.system_from_lru`][]: the LRU's forward pass with these
    parameters equals [`jaxlqo.simulate`][] of `sys`, and importing them gives `sys` back (up
    to rounding). For poles $\lambda = e^{-\nu + i\theta}$:

    - `nu_log` $= \log(-\log|\lambda|)$, `theta_log` $= \log\theta$ with
        $\theta = \arg\lambda \bmod 2\pi \in (0, 2\pi]$ (the LRU's phase is positive; a real
        positive pole gets $\theta = 2\pi$);
    - `gamma_log` $= \log\sqrt{1 - |\lambda|^2}$, the LRU's normalisation, and
        `B_re + i B_im` $= \bar B / \gamma$ (with `gamma=False`: no `gamma_log`, `B` as is);
    - `C_re + i C_im` $= C\lambda^{-1}$,
        `D` $= \operatorname{diag}(D - \operatorname{Re}(C\lambda^{-1}B))$.

    **Arguments:**

    - `sys`: a discrete-time LTI [`jaxlqo.DiagonalLQOSystem`][] with `p = m`, poles
        $0 < |\lambda| < 1$ (the LRU's parameterisation holds only those), that a layer runs
        exactly: pass a reduced system through [`jaxlqo.ssm.exportable`][] first.
    - `gamma`: keyword-only; write `gamma_log` (default; minimal-LRU has it) or fold
        everything into `B`.

    **Returns:** a dict of NumPy arrays in the LRU's layout and the system's precision:
    `nu_log`, `theta_log` (and `gamma_log`) `(N,)`, `B_re`, `B_im` `(N, H)`, `C_re`, `C_im`
    `(H, N)`, `D` `(H,)`. Host code: not traceable.
    """
    caller = "system_to_lru"
    lam, b, c, d, bi = _layer_form(sys, None, caller)
    if bi:
        raise ValueError(
            f"{caller}: `sys` has p = 2m outputs (a bidirectional layer); the LRU is "
            "unidirectional. Export it with `system_to_s5`."
        )
    modulus = np.abs(lam)
    if np.any(modulus >= 1):
        raise ValueError(
            f"{caller}: the LRU holds only stable poles (|λ| < 1); `sys` has |λ| up to "
            f"{modulus.max():.6g}. Reduce with a stable method (`reduce`, `bt`, `modal`)."
        )
    rdtype = d.dtype
    theta = np.mod(np.angle(lam), 2 * np.pi)
    theta = np.where(theta == 0, 2 * np.pi, theta)
    out = {"nu_log": np.log(-np.log(modulus)), "theta_log": np.log(theta)}
    if gamma:
        normalisation = np.sqrt(1 - modulus**2)
        out["gamma_log"] = np.log(normalisation)
        b = b / normalisation[:, None]
    out.update(B_re=np.real(b), B_im=np.imag(b), C_re=np.real(c), C_im=np.imag(c), D=d)
    return {k: np.asarray(v).astype(rdtype) for k, v in out.items()}
