"""Interchangeable algorithms for `L(X) = C` (see `_operator.py`).

Each solver splits into `init` (the work that depends on `A` and `B` only: a factorisation)
and `compute` (one right-hand side, optionally for the transposed operator). The public
functions wrap both in `lax.custom_linear_solve`, so no solver is ever differentiated: the
derivatives come from the operator (see `_solve.py`). `init` only ever sees
`lax.stop_gradient` inputs.
"""

import abc
from typing import Any, Optional

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
from jaxtyping import Array, Bool

from ._operator import SylvesterOperator, as_dense


class AbstractSylvesterSolver(eqx.Module):
    """An algorithm for `A X + X B = C` (continuous) or `A X B − X + C = 0` (discrete).

    Subclasses implement `init(operator, adjoint_pair)`, returning a state that holds the
    factorisation, and `compute(state, c, transpose)`. `adjoint_pair=True` promises
    `B = Aᴴ` (a Lyapunov / Stein equation) so a solver may factorise once.
    """

    @abc.abstractmethod
    def init(self, operator: SylvesterOperator, adjoint_pair: bool) -> Any: ...

    @abc.abstractmethod
    def compute(self, state: Any, c: Array, transpose: bool) -> Array:
        """Solve `L(X) = c`, or `Lᵀ(X) = c` (no conjugation) when `transpose` is set."""

    def separation_ok(self, state: Any) -> Bool[Array, ""]:
        """Whether the eigenvalues make the equation solvable (`True` if unknown)."""
        return jnp.array(True)

    failure_code: str = eqx.field(static=True, default="singular_equation")


def _eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def _separation_ok(lam: Array, mu: Array, discrete: bool) -> Bool[Array, ""]:
    """Solvable iff λ_i + μ_j ≠ 0 (continuous) or λ_i μ_j ≠ 1 (discrete), with a relative tolerance."""
    with jax.numpy_dtype_promotion("standard"):  # a 1-D side of Bartels-Stewart may be real
        lam, mu = (x.astype(jnp.result_type(lam.dtype, mu.dtype)) for x in (lam, mu))
    eps = _eps(lam.dtype)
    if discrete:
        gap = jnp.abs(1 - lam[:, None] * mu[None, :])
        scale = jnp.maximum(1.0, jnp.abs(lam[:, None] * mu[None, :]))
    else:
        gap = jnp.abs(lam[:, None] + mu[None, :])
        scale = jnp.maximum(jnp.max(jnp.abs(lam)), jnp.max(jnp.abs(mu)))
        scale = jnp.where(scale > 0, scale, 1.0)
    return jnp.all(gap > 16 * eps * scale)


class Diagonal(AbstractSylvesterSolver):
    """Closed form for diagonal `A` and `B` (both given as 1-D arrays), `O(nm)`.

    `X_ij = C_ij / (a_i + b_j)` (continuous) or `X_ij = C_ij / (1 − a_i b_j)` (discrete).
    """

    def init(self, operator, adjoint_pair):
        if operator.a.ndim != 1 or operator.b.ndim != 1:
            raise TypeError(
                "lqo.Diagonal() needs 1-D (diagonal) `A` and `B`; got shapes "
                f"{operator.a.shape} and {operator.b.shape}. Use lqo.AutoSolver()."
            )
        return operator

    def compute(self, state, c, transpose):
        a, b = state.a, state.b  # diagonal matrices are their own transposes
        if state.discrete:
            return c / (1 - a[:, None] * b[None, :])
        return c / (a[:, None] + b[None, :])

    def separation_ok(self, state):
        return _separation_ok(state.a, state.b, state.discrete)


class Kronecker(AbstractSylvesterSolver):
    """Dense solve of the `nm × nm` Kronecker form; `O(n³m³)`. For tiny sizes and as an oracle.

    With row-major `vec`: `vec(A X) = (A ⊗ I) vec X`, `vec(X B) = (I ⊗ Bᵀ) vec X` and
    `vec(A X B) = (A ⊗ Bᵀ) vec X`.
    """

    def init(self, operator, adjoint_pair):
        a, b = as_dense(operator.a), as_dense(operator.b)
        n, m = a.shape[0], b.shape[0]
        eye_n, eye_m = jnp.eye(n, dtype=a.dtype), jnp.eye(m, dtype=b.dtype)
        if operator.discrete:
            matrix = jnp.eye(n * m, dtype=a.dtype) - jnp.kron(a, b.T)
        else:
            matrix = jnp.kron(a, eye_m) + jnp.kron(eye_n, b.T)
        return matrix

    def compute(self, state, c, transpose):
        matrix = state.T if transpose else state
        operator = lx.MatrixLinearOperator(matrix)
        sol = lx.linear_solve(operator, c.reshape(-1), lx.LU(), throw=False)
        return sol.value.reshape(c.shape)

    def separation_ok(self, state):
        # Rounding turns an exactly singular Kronecker matrix into a merely ill-conditioned
        # one, whose "solution" is huge but has a small residual: judge by the condition.
        sigma = jnp.linalg.svd(state, compute_uv=False)
        eps = jnp.finfo(sigma.dtype).eps
        return sigma[-1] > 16 * eps * state.shape[0] * sigma[0]


class _Triangularised(eqx.Module):
    """`A = U T Uᴴ` with `T` triangular (upper unless `lower`); diagonal `A` has `U = None`."""

    unitary: Optional[Array]
    triangular: Array  # (n, n) triangular, or (n,) for a diagonal matrix
    lower: bool = eqx.field(static=True)

    def adjoint(self) -> "_Triangularised":
        u = self.unitary
        t = jnp.conj(self.triangular) if self.triangular.ndim == 1 else self.triangular.conj().T
        return _Triangularised(u, t, not self.lower and self.triangular.ndim == 2)

    def transpose(self) -> "_Triangularised":
        # Aᵀ = (U T Uᴴ)ᵀ = Ū Tᵀ Ūᴴ.
        u = None if self.unitary is None else jnp.conj(self.unitary)
        t = self.triangular if self.triangular.ndim == 1 else self.triangular.T
        return _Triangularised(u, t, not self.lower and self.triangular.ndim == 2)

    def eigenvalues(self) -> Array:
        return self.triangular if self.triangular.ndim == 1 else jnp.diagonal(self.triangular)

    def to_basis(self, x: Array, side: str) -> Array:
        """`Uᴴ X` (side="left") or `X U` (side="right")."""
        if self.unitary is None:
            return x
        return self.unitary.conj().T @ x if side == "left" else x @ self.unitary

    def from_basis(self, y: Array, side: str) -> Array:
        """`U Y` (side="left") or `Y Uᴴ` (side="right")."""
        if self.unitary is None:
            return y
        return self.unitary @ y if side == "left" else y @ self.unitary.conj().T


def _triangularise(a: Array) -> _Triangularised:
    if a.ndim == 1:
        return _Triangularised(None, a, False)
    with jax.numpy_dtype_promotion("standard"):  # deliberate real -> complex promotion
        cdtype = jnp.result_type(a.dtype, jnp.complex64)
    t, u = jsl.schur(a.astype(cdtype), output="complex")
    return _Triangularised(u, t, False)


def _as_upper(t: Array, lower: bool) -> Array:
    """A triangular matrix as an upper one: reversing rows and columns flips lower to upper."""
    if t.ndim == 1:
        t = jnp.diag(t)
    return t[::-1, ::-1] if lower else t


def _solve_triangular_sylvester(r: Array, s: Array, f: Array, discrete: bool) -> Array:
    """Solve `R Y + Y S = F` or `Y − R Y S = F` with `R`, `S` upper triangular, column by column.

    Column k of `R Y + Y S = F` reads `(R + s_kk I) y_k = f_k − Σ_{j<k} s_jk y_j`, and of
    `Y − R Y S = F` reads `(I − s_kk R) y_k = f_k + R Σ_{j<k} s_jk y_j`: a triangular solve each,
    `O(n²)`, so `O(n² m)` for all columns.
    """
    n, m = f.shape
    eye = jnp.eye(n, dtype=r.dtype)

    def column(y, k):
        s_k = s[:, k]  # entries j ≥ k multiply zero columns of y, so only j < k count
        coupling = y @ s_k
        if discrete:
            matrix, rhs = eye - s_k[k] * r, f[:, k] + r @ coupling
        else:
            matrix, rhs = r + s_k[k] * eye, f[:, k] - coupling
        y_k = jsl.solve_triangular(matrix, rhs, lower=False)
        return y.at[:, k].set(y_k), None

    y, _ = lax.scan(column, jnp.zeros_like(f), jnp.arange(m))
    return y


class BartelsStewart(AbstractSylvesterSolver):
    """Bartels–Stewart: complex Schur forms of `A` and `B`, then a triangular solve.

    `O(n³ + m³)` for the Schur forms and `O(nm(n + m))` per right-hand side. A diagonal
    (1-D) side needs no Schur form. CPU only (JAX has no GPU `schur`).

    **Arguments:**

    - `left_upper_triangular`: promise that `A` is already upper triangular (a Schur form
        computed once by the caller, e.g. inside an optimisation loop), so its Schur
        decomposition is skipped. Not checked.

    References: R. H. Bartels, G. W. Stewart, "Solution of the matrix equation AX + XB = C",
    Comm. ACM 15 (1972).
    """

    left_upper_triangular: bool = eqx.field(static=True, default=False)

    def init(self, operator, adjoint_pair):
        if self.left_upper_triangular and operator.a.ndim == 2:
            left = _Triangularised(None, operator.a, False)
        else:
            left = _triangularise(operator.a)
        # A Lyapunov/Stein equation has B = Aᴴ = U Tᴴ Uᴴ: one Schur form serves both sides.
        right = left.adjoint() if adjoint_pair else _triangularise(operator.b)
        return left, right, operator.discrete

    def compute(self, state, c, transpose):
        left, right, discrete = state
        if transpose:
            left, right = left.transpose(), right.transpose()
        with jax.numpy_dtype_promotion("standard"):  # deliberate real -> complex promotion
            cdtype = jnp.result_type(c.dtype, left.triangular.dtype, right.triangular.dtype)
        f = right.to_basis(left.to_basis(c.astype(cdtype), "left"), "right")
        r = _as_upper(left.triangular, left.lower).astype(cdtype)  # a 1-D side may be real
        s = _as_upper(right.triangular, right.lower).astype(cdtype)
        if left.lower:
            f = f[::-1, :]
        if right.lower:
            f = f[:, ::-1]
        y = _solve_triangular_sylvester(r, s, f, discrete)
        if left.lower:
            y = y[::-1, :]
        if right.lower:
            y = y[:, ::-1]
        x = left.from_basis(right.from_basis(y, "right"), "left")
        return x if jnp.iscomplexobj(c) else jnp.real(x).astype(c.dtype)

    def separation_ok(self, state):
        left, right, discrete = state
        return _separation_ok(left.eigenvalues(), right.eigenvalues(), discrete)


class Doubling(AbstractSylvesterSolver):
    """Squared Smith (doubling) iteration for discrete-time (Stein) equations; GPU-friendly.

    `X = Σ_k A^k C B^k` summed by doubling: `X ← X + A_k X B_k`, `A_{k+1} = A_k²`,
    `B_{k+1} = B_k²`, so `2^K` terms cost `K` steps of three matrix products. Converges iff
    `ρ(A) ρ(B) < 1`; needs only matrix products, so it runs on any backend.

    **Arguments:**

    - `max_steps`: at most this many doublings (`2^max_steps` terms).
    """

    max_steps: int = eqx.field(static=True, default=64)
    failure_code: str = eqx.field(static=True, default="not_converged")

    def init(self, operator, adjoint_pair):
        if not operator.discrete:
            raise TypeError("lqo.Doubling() solves discrete-time equations only; use lqo.MatrixSign().")
        return operator

    def compute(self, state, c, transpose):
        op = state.transpose() if transpose else state
        a, b = as_dense(op.a).astype(c.dtype), as_dense(op.b).astype(c.dtype)
        rdtype = jnp.finfo(c.dtype).dtype
        tol = _eps(c.dtype)

        def cond(carry):
            step, _, _, _, change = carry
            return (step < self.max_steps) & (change > tol)

        def body(carry):
            step, x, a_k, b_k, _ = carry
            increment = a_k @ x @ b_k
            x_new = x + increment
            tiny = jnp.finfo(rdtype).tiny
            change = jnp.linalg.norm(increment) / jnp.maximum(jnp.linalg.norm(x_new), tiny)
            return step + 1, x_new, a_k @ a_k, b_k @ b_k, change.astype(rdtype)

        init = (0, c, a, b, jnp.array(jnp.inf, rdtype))
        _, x, _, _, change = lax.while_loop(cond, body, init)
        # Not converged (ρ(A)ρ(B) ≥ 1): NaN makes the caller report `not_converged`.
        return jnp.where(change <= tol, x, jnp.nan)


class MatrixSign(AbstractSylvesterSolver):
    """Matrix-sign-function (Newton) solver for continuous-time equations; GPU-friendly.

    With `H = [[A, −C], [0, −B]]`, `sign(H) = [[−I, 2X], [0, I]]` where `A X + X B = C`,
    provided `A` and `B` have their spectra in the open left half-plane (true for stable
    Lyapunov equations). Newton's iteration `H ← ½(cH + (cH)⁻¹)` keeps the block structure:
    `A ← ½(cA + (cA)⁻¹)`, `D ← ½(cD + (cD)⁻¹)`, `E ← ½(cE − (cA)⁻¹ (cE)(cD)⁻¹)`, with
    determinant scaling `c = |det A det D|^{-1/(n+m)}`. Needs only LU factorisations.

    References: J. D. Roberts, "Linear model reduction and solution of the algebraic Riccati
    equation by use of the sign function", Int. J. Control 32 (1980).
    """

    max_steps: int = eqx.field(static=True, default=100)
    failure_code: str = eqx.field(static=True, default="not_converged")

    def init(self, operator, adjoint_pair):
        if operator.discrete:
            raise TypeError("lqo.MatrixSign() solves continuous-time equations only; use lqo.Doubling().")
        return operator

    def compute(self, state, c, transpose):
        op = state.transpose() if transpose else state
        a = as_dense(op.a).astype(c.dtype)
        d = -as_dense(op.b).astype(c.dtype)
        n, m = a.shape[0], d.shape[0]
        rdtype = jnp.finfo(c.dtype).dtype
        tol = 10 * _eps(c.dtype)

        def cond(carry):
            step, _, _, _, change = carry
            return (step < self.max_steps) & (change > tol)

        def body(carry):
            step, a_k, d_k, e_k, _ = carry
            _, logdet_a = jnp.linalg.slogdet(a_k)
            _, logdet_d = jnp.linalg.slogdet(d_k)
            scale = jnp.exp(-(logdet_a + logdet_d) / (n + m)).astype(rdtype)
            # Scaling only speeds up the early steps; near convergence it is ≈ 1 and is dropped.
            scale = jnp.where(step < 8, scale, 1.0).astype(c.dtype)
            a_inv = jnp.linalg.inv(scale * a_k)
            d_inv = jnp.linalg.inv(scale * d_k)
            a_new = 0.5 * (scale * a_k + a_inv)
            d_new = 0.5 * (scale * d_k + d_inv)
            e_new = 0.5 * (scale * e_k - a_inv @ (scale * e_k) @ d_inv)
            change = jnp.linalg.norm(a_new - a_k) / jnp.linalg.norm(a_new) + jnp.linalg.norm(
                d_new - d_k
            ) / jnp.linalg.norm(d_new)
            return step + 1, a_new, d_new, e_new, change.astype(rdtype)

        init = (0, a, d, -c, jnp.array(jnp.inf, rdtype))
        _, _, _, e, change = lax.while_loop(cond, body, init)
        # Not converged (spectra not in the open left half-plane): NaN → `not_converged`.
        return jnp.where(change <= tol, 0.5 * e, jnp.nan)


class AutoSolver(AbstractSylvesterSolver):
    """The default: chooses a solver from static structure and the default backend.

    - both `A` and `B` 1-D (diagonal): [`jaxlqo.Diagonal`][];
    - `n m ≤ 64`: [`jaxlqo.Kronecker`][] (one small LU beats any factorisation);
    - CPU backend: [`jaxlqo.BartelsStewart`][];
    - other backends (GPU/TPU, no `schur`): [`jaxlqo.Doubling`][] for discrete-time and
      [`jaxlqo.MatrixSign`][] for continuous-time equations.
    """

    def select(self, operator: SylvesterOperator) -> AbstractSylvesterSolver:
        if operator.a.ndim == 1 and operator.b.ndim == 1:
            return Diagonal()
        if operator.a.shape[0] * operator.b.shape[0] <= 64:
            return Kronecker()
        if jax.default_backend() == "cpu":
            return BartelsStewart()
        return Doubling() if operator.discrete else MatrixSign()

    def init(self, operator, adjoint_pair):
        solver = self.select(operator)
        return solver, solver.init(operator, adjoint_pair)

    def compute(self, state, c, transpose):
        solver, inner = state
        return solver.compute(inner, c, transpose)

    def separation_ok(self, state):
        solver, inner = state
        return solver.separation_ok(inner)

