"""Pure NumPy / SciPy oracles for h2 norms and Gramians, independent of jaxlqo's solvers.

Discrete time: sums of squared impulse-response kernels (METHOD.md §2-3),

    ‖Σ‖² = ‖D‖²_F + Σ_{i<L} ‖C Aⁱ B‖²_F + Σ_j Σ_{i₁,i₂<L} ‖Bᵀ (Aᵀ)^{i₁} M_j A^{i₂} B‖²_F,

computed with the stacked "impulse state" matrix `S = [B, A B, …, A^{L-1} B]` (n × Lm): the
linear part is `‖C S‖²_F` and the quadratic part `Σ_j ‖Sᵀ M_j S‖²_F`. Errors use the kernels
of the two systems *subtracted* (never the inner-product formula the library uses).
Complex-diagonal systems use their complex recurrence directly (not `to_dense()`).

Continuous time: Kronecker-product solves of the Lyapunov equations, and the Van Loan block
exponential for time-limited Gramians (fine for the small, non-stiff systems used here).
"""

import numpy as np
import scipy.linalg as sla


def as_numpy(sys):
    """`(A, B, C, M or None, D)` of a dense jaxlqo system as NumPy arrays."""
    m = None if sys.M is None else np.asarray(sys.M)
    return np.asarray(sys.A), np.asarray(sys.B), np.asarray(sys.C), m, np.asarray(sys.D)


def truncation_length(rho: float, tol: float = 1e-18, cond: float = 1e3) -> int:
    """Lags after which `cond · ρ^i` is below `tol`: the neglected tail of an infinite sum."""
    rho = max(rho, 1e-3)  # ρ = 0: A = 0 here (the strategies draw diagonalisable A)
    return int(np.ceil(np.log(tol / cond) / np.log(rho))) + 1


# --- kernels ----------------------------------------------------------------------------------


class Kernels:
    """The real impulse-response kernels of a discrete system over lags `0 … L-1`.

    `lin`: (p, L·m), column block i holds the linear kernel at lag i (without D).
    `quad`: (p, L·m, L·m) or None, block (i₁, i₂) of output j holds K_j(i₁, i₂).
    `d`: the feedthrough (p, m).
    """

    def __init__(self, lin, quad, d):
        self.lin, self.quad, self.d = lin, quad, d

    def __sub__(self, other):
        if self.quad is None and other.quad is None:
            quad = None
        else:
            zero = np.zeros_like(self.quad if self.quad is not None else other.quad)
            quad = (zero if self.quad is None else self.quad) - (
                zero if other.quad is None else other.quad
            )
        return Kernels(self.lin - other.lin, quad, self.d - other.d)

    def squared_norm(self) -> float:
        out = np.sum(self.lin**2) + np.sum(self.d**2)
        if self.quad is not None:
            out += np.sum(self.quad**2)
        return float(out)


def dense_kernels(sys, lags: int) -> Kernels:
    """Kernels of a dense `LQOSystem` (real)."""
    A, B, C, M, D = as_numpy(sys)
    blocks, x = [], B
    for _ in range(lags):
        blocks.append(x)
        x = A @ x
    S = np.concatenate(blocks, axis=1)  # n × (lags·m)
    quad = None if M is None else np.einsum("ai,jab,bk->jik", S, M, S)
    return Kernels(C @ S, quad, D)


def diagonal_kernels(sys, lags: int) -> Kernels:
    """Kernels of a `DiagonalLQOSystem` from its complex recurrence `x ← λ ⊙ x + B u`.

    Linear: `Re(C λ^i B)`. Quadratic: `Re(F x) Re(G x)` with `x = Σ_i λ^i B u_i` is the
    symmetric bilinear form `½ Σ_l (f_lᵀ g_l + g_lᵀ f_l)` in the stacked inputs, with
    `f_l = Re(F_l S)`, `g_l = Re(G_l S)`.
    """
    lam, B, C, D = (np.asarray(a) for a in (sys.poles, sys.B, sys.C, sys.D))
    S = np.concatenate([(lam**i)[:, None] * B for i in range(lags)], axis=1)  # complex
    quad = None
    if sys.F is not None:
        f = np.real(np.einsum("jla,ai->jli", np.asarray(sys.F), S))
        g = np.real(np.einsum("jla,ai->jli", np.asarray(sys.G), S))
        quad = 0.5 * (np.einsum("jli,jlk->jik", f, g) + np.einsum("jli,jlk->jik", g, f))
    return Kernels(np.real(C @ S), quad, D)


def kernels(sys, lags: int) -> Kernels:
    if hasattr(sys, "poles"):
        return diagonal_kernels(sys, lags)
    return dense_kernels(sys, lags)


def spectral_radius(sys) -> float:
    if hasattr(sys, "poles"):
        return float(np.max(np.abs(np.asarray(sys.poles))))
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(sys.A)))))


def discrete_h2_squared(sys, horizon=None) -> float:
    """`‖Σ‖²` as an impulse-response sum (truncated when the terms are negligible)."""
    lags = horizon if horizon is not None else truncation_length(spectral_radius(sys))
    return kernels(sys, lags).squared_norm()


def discrete_h2_error_squared(fom, rom, horizon=None) -> float:
    """`‖Σ − Σ̂‖²` from the kernels of the difference."""
    if horizon is None:
        horizon = truncation_length(max(spectral_radius(fom), spectral_radius(rom)))
    return (kernels(fom, horizon) - kernels(rom, horizon)).squared_norm()


# --- Gramians ---------------------------------------------------------------------------------


def kron_lyapunov(A, R, discrete: bool):
    """`X = A X Aᵀ + R` or `A X + X Aᵀ + R = 0`, by a Kronecker solve (row-major vec)."""
    n = A.shape[0]
    eye = np.eye(n)
    if discrete:
        op = np.eye(n * n) - np.kron(A, A)
        return np.linalg.solve(op, R.reshape(-1)).reshape(n, n)
    op = np.kron(A, eye) + np.kron(eye, A)
    return np.linalg.solve(op, -R.reshape(-1)).reshape(n, n)


def finite_sum_gramian(A, R, lags: int):
    """`Σ_{k<L} A^k R (Aᵀ)^k` (discrete time-limited Gramian), by the plain loop."""
    out, term = np.zeros_like(R), R
    for _ in range(lags):
        out = out + term
        term = A @ term @ A.T
    return out


def van_loan_gramian(A, R, T: float):
    """`∫_0^T e^{At} R e^{Aᵀt} dt` from the block exponential of `[[−A, R], [0, Aᵀ]] T`."""
    n = A.shape[0]
    block = np.block([[-A, R], [np.zeros((n, n)), A.T]]) * T
    e = sla.expm(block)
    phi = e[n:, n:].T  # e^{AT}
    return phi @ e[:n, n:]


def controllability_gramian(sys, horizon=None):
    A, B, _, _, _ = as_numpy(sys)
    discrete = sys.dt is not None
    R = B @ B.T
    if horizon is None:
        return kron_lyapunov(A, R, discrete)
    return finite_sum_gramian(A, R, horizon) if discrete else van_loan_gramian(A, R, horizon)


def observability_gramian(sys, horizon=None):
    """LQO observability Gramian: source `CᵀC + Σ_j M_j P M_j` with the (time-limited) `P`."""
    A, _, C, M, _ = as_numpy(sys)
    discrete = sys.dt is not None
    P = controllability_gramian(sys, horizon)
    R = C.T @ C
    if M is not None:
        R = R + sum(Mj @ P @ Mj for Mj in M)
    if horizon is None:
        return kron_lyapunov(A.T, R, discrete)
    if discrete:
        return finite_sum_gramian(A.T, R, horizon)
    return van_loan_gramian(A.T, R, horizon)


def gramian_h2_squared(sys, horizon=None) -> float:
    """`tr(C P Cᵀ) + Σ_j tr(M_j P M_j P)` from the NumPy Gramian (continuous time, D = 0)."""
    _, _, C, M, _ = as_numpy(sys)
    P = controllability_gramian(sys, horizon)
    out = np.trace(C @ P @ C.T)
    if M is not None:
        out += sum(np.trace(Mj @ P @ Mj @ P) for Mj in M)
    return float(out)


def error_system(fom, rom):
    """The dense error system `(blkdiag(A, Â), [B; B̂], [C, −Ĉ], blkdiag(M, −M̂), D − D̂)`."""
    import jaxlqo as lqo

    A1, B1, C1, M1, D1 = as_numpy(fom.to_dense())
    A2, B2, C2, M2, D2 = as_numpy(rom.to_dense())
    n1, n2, p = A1.shape[0], A2.shape[0], C1.shape[0]
    M = None
    if M1 is not None or M2 is not None:
        M = np.zeros((p, n1 + n2, n1 + n2))
        if M1 is not None:
            M[:, :n1, :n1] = M1
        if M2 is not None:
            M[:, n1:, n1:] = -M2
    return lqo.LQOSystem(
        sla.block_diag(A1, A2),
        np.concatenate([B1, B2]),
        np.concatenate([C1, -C2], axis=1),
        M,
        D1 - D2,
        dt=fom.dt,
    )
