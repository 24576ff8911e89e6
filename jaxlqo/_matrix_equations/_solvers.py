"""Interchangeable algorithms for `L(X) = C` (see `_operator.py`).

Each solver has the shape of a lineax solver: `init` (the work that depends on `A` and `B`
only: a factorisation, returned as a state), `compute(state, c) -> (x, result, stats)` (one
right-hand side) and `transpose(state)` (the state of the transposed equation, from the same
factorisation). The public functions wrap `compute` in `lax.custom_linear_solve`, so no solver
is ever differentiated: the derivatives come from the operator (see `_solve.py`). `init` only
ever sees `lax.stop_gradient` inputs.
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Bool

from .._solution import RESULTS
from ._operator import SylvesterOperator, as_dense


class AbstractSylvesterSolver(eqx.Module):
    """An algorithm for `A X + X B = C` (continuous) or `A X B − X + C = 0` (discrete).

    Subclasses implement, as lineax's solvers do:

    - `init(operator, adjoint_pair)`: the factorisation, as a state (`adjoint_pair=True`
        promises `B = Aᴴ`, a Lyapunov / Stein equation, so a solver may factorise once);
    - `compute(state, c)`: `(X, result, stats)` with `L(X) = c`; `result` is the solver's
        own verdict (`singular_equation` when the eigenvalues make the equation unsolvable,
        `not_converged` for an iteration that stopped early), `stats` a dict of arrays
        (e.g. `num_steps`);
    - `transpose(state)`: the state of `Lᵀ(X) = c` (`Aᵀ`, `Bᵀ`, no conjugation) from the
        same factorisation.
    """

    @abc.abstractmethod
    def init(self, operator: SylvesterOperator, adjoint_pair: bool) -> Any: ...

    @abc.abstractmethod
    def compute(self, state: Any, c: Array) -> tuple[Array, RESULTS, dict[str, Array]]:
        """Solve `L(X) = c` for the operator `state` was made from: `(X, result, stats)`."""

    @abc.abstractmethod
    def transpose(self, state: Any) -> Any:
        """The state of the transposed operator `Lᵀ` (`Aᵀ`, `Bᵀ`, no conjugation)."""

    def failure(self, state: Any) -> RESULTS:
        """The result code of a solve whose residual check fails (solvable equation)."""
        return RESULTS.singular_equation


def _eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def _separation_result(lam: Array, mu: Array, discrete: bool) -> RESULTS:
    """`successful`, or `singular_equation` when the eigenvalues make `L` singular."""
    separated = eigenvalues_separated(lam, mu, discrete)
    return RESULTS.where(separated, RESULTS.successful, RESULTS.singular_equation)


def eigenvalues_separated(lam: Array, mu: Array, discrete: bool) -> Bool[Array, ""]:
    """Solvable iff λ_i + μ_j ≠ 0 (continuous) or λ_i μ_j ≠ 1 (discrete), to a relative tol."""
    with jax.numpy_dtype_promotion("standard"):  # a 1-D side of Bartels-Stewart may be real
        lam, mu = (x.astype(jnp.result_type(lam.dtype, mu.dtype)) for x in (lam, mu))
    eps = _eps(lam.dtype)
    if discrete:
        gap = jnp.abs(1 - lam[:, None] * mu[None, :])
        scale = jnp.maximum(1.0, jnp.abs(lam[:, None] * mu[None, :]))
    else:
        gap = jnp.abs(lam[:, None] + mu[None, :])
        # `initial`: an empty side (a system with no states) has no pairs and must not fail.
        scale = jnp.maximum(jnp.max(jnp.abs(lam), initial=0.0), jnp.max(jnp.abs(mu), initial=0.0))
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

    def compute(self, state, c):
        a, b = state.a, state.b
        if state.discrete:
            x = c / (1 - a[:, None] * b[None, :])
        else:
            x = c / (a[:, None] + b[None, :])
        return x, _separation_result(a, b, state.discrete), {}

    def transpose(self, state):
        return state  # diagonal matrices are their own transposes


class Kronecker(AbstractSylvesterSolver):
    """Dense solve of the `nm × nm` Kronecker form; `O(n³m³)`. For tiny sizes and as an oracle.

    With row-major `vec`: `vec(A X) = (A ⊗ I) vec X`, `vec(X B) = (I ⊗ Bᵀ) vec X` and
    `vec(A X B) = (A ⊗ Bᵀ) vec X`. Solvability is judged, as for the other solvers, by the
    eigenvalues of `A` and `B` (`λ_i + μ_j ≠ 0`, resp. `λ_i μ_j ≠ 1`), not by the condition
    number of the Kronecker matrix: a well-posed equation with a large solution, such as
    `A = [[−1, 1e5], [0, −1]]` or `A = diag(−1e−14, −1)` in `A X + X Aᴴ = Q`, has a
    Kronecker matrix of condition ~1e20, which LU with partial pivoting still solves to
    working accuracy.
    """

    def init(self, operator, adjoint_pair):
        a, b = as_dense(operator.a), as_dense(operator.b)
        n, m = a.shape[0], b.shape[0]
        eye_n, eye_m = jnp.eye(n, dtype=a.dtype), jnp.eye(m, dtype=b.dtype)
        if operator.discrete:
            matrix = jnp.eye(n * m, dtype=a.dtype) - jnp.kron(a, b.T)
        else:
            matrix = jnp.kron(a, eye_m) + jnp.kron(eye_n, b.T)
        lam = _eigenvalues(operator.a)
        # eig(B) = conj(eig(Bᴴ)); Bᴴ is A₂ in a Gramian equation, so XLA can share the call
        # with the stability check of A₂ (see BartelsStewart.init).
        mu = jnp.conj(lam if adjoint_pair else _eigenvalues(operator.b.conj().T))
        # LU-factorised once: a reused state (`lqo.factorise`) costs two triangular solves.
        return jsl.lu_factor(matrix), False, lam, mu, operator.discrete

    def compute(self, state, c):
        lu, transposed, lam, mu, discrete = state
        # A plain LU solve, not lineax: inside `shard_map` lineax compares the vector's
        # structure including its sharding with the operator's, and refuses (map_layers).
        # A singular matrix gives non-finite values here; the eigenvalue check reports it.
        x = jsl.lu_solve(lu, c.reshape(-1), trans=int(transposed)).reshape(c.shape)
        return x, _separation_result(lam, mu, discrete), {}

    def transpose(self, state):
        # The same LU serves the transposed matrix; the eigenvalues of Aᵀ, Bᵀ are those of A, B.
        lu, transposed, lam, mu, discrete = state
        return lu, not transposed, lam, mu, discrete


def _eigenvalues(a: Array) -> Array:
    """Eigenvalues of a dense or 1-D (diagonal) matrix; zeros for a non-finite one.

    A non-finite matrix is reported as such by the caller (`nonfinite_input`), and LAPACK's
    `geev` must not see it.
    """
    if a.ndim == 1:
        return a
    finite = jnp.isfinite(a).all()
    return jnp.linalg.eigvals(jnp.where(finite, a, jnp.zeros_like(a)))


class _Rotations(eqx.Module):
    """A unitary `Γ` that is tridiagonal: disjoint 2 × 2 rotations on index pairs `(k, k + 1)`.

    Stored by its diagonals (`Γ_kk`, `Γ_k,k+1`, `Γ_k+1,k`), so applying it costs `O(n²)` for
    an `(n, m)` matrix rather than a dense product.
    """

    diagonal: Array  # (n,)
    upper: Array  # (n - 1,)
    lower: Array  # (n - 1,)

    def adjoint(self) -> "_Rotations":
        return _Rotations(jnp.conj(self.diagonal), jnp.conj(self.lower), jnp.conj(self.upper))

    def conj(self) -> "_Rotations":
        return _Rotations(jnp.conj(self.diagonal), jnp.conj(self.upper), jnp.conj(self.lower))

    def left(self, x: Array) -> Array:
        """`Γ X`: row i is `Γ_i,i-1 x_{i-1} + Γ_ii x_i + Γ_i,i+1 x_{i+1}`."""
        out = self.diagonal[:, None] * x
        out = out + jnp.pad(self.upper[:, None] * x[1:], ((0, 1), (0, 0)))
        return out + jnp.pad(self.lower[:, None] * x[:-1], ((1, 0), (0, 0)))

    def right(self, x: Array) -> Array:
        """`X Γ`: column j is `x_{j-1} Γ_j-1,j + x_j Γ_jj + x_{j+1} Γ_j+1,j`."""
        out = x * self.diagonal[None, :]
        out = out + jnp.pad(x[:, :-1] * self.upper[None, :], ((0, 0), (1, 0)))
        return out + jnp.pad(x[:, 1:] * self.lower[None, :], ((0, 0), (0, 1)))


def _real_to_complex_schur(t: Array) -> tuple[Array, _Rotations | None]:
    """A real Schur form `T` (quasi-triangular) as a complex one: `Γᴴ T Γ` upper triangular.

    Each 2 × 2 diagonal block (a complex-conjugate pair of eigenvalues) is triangularised by
    the rotation whose first column is its eigenvector `[λ − t_k+1,k+1, t_k+1,k]`, as in
    SciPy's `rsf2csf`. The blocks are disjoint, so the rotations commute and are applied all
    at once as one tridiagonal unitary `Γ` (`O(n²)`), instead of one after another. Together
    with LAPACK's real Schur form (`gees`, about a quarter of the flops of the complex one)
    this is the complex Schur form at the price of the real one.
    """
    n = t.shape[0]
    with jax.numpy_dtype_promotion("standard"):  # deliberate real -> complex promotion
        cdtype = jnp.result_type(t.dtype, jnp.complex64)
    if n == 1:
        return t.astype(cdtype), None
    a, d = jnp.diagonal(t)[:-1], jnp.diagonal(t)[1:]
    b, c = jnp.diagonal(t, 1), jnp.diagonal(t, -1)
    pair = jnp.abs(c) > _eps(t.dtype) * (jnp.abs(a) + jnp.abs(d))
    # LAPACK's blocks never touch; should two ever do, rotating both would break triangularity
    # (and the residual check would report a failed solve), so keep the first.
    pair = pair & ~jnp.pad(pair[:-1], (1, 0))
    half = (a - d) / 2
    mu = half.astype(cdtype) + jnp.sqrt((half**2 + b * c).astype(cdtype))  # λ − t_k+1,k+1
    norm = jnp.sqrt(jnp.abs(mu) ** 2 + c**2)
    # jnp.asarray: the three-argument `where` is typed as if it could return a tuple.
    norm = jnp.asarray(jnp.where(pair, norm, 1.0))
    cos = jnp.asarray(jnp.where(pair, mu / norm.astype(cdtype), 1.0))
    sin = jnp.asarray(jnp.where(pair, c / norm, 0.0)).astype(cdtype)
    diagonal = 1 + jnp.pad(cos - 1, (0, 1)) + jnp.pad(jnp.conj(cos) - 1, (1, 0))
    rotations = _Rotations(diagonal, -sin, sin)
    tc = rotations.adjoint().left(rotations.right(t.astype(cdtype)))
    return jnp.triu(tc), rotations


def _matmul(a: Array, b: Array) -> Array:
    """`A B` where one factor may be real: two real products instead of a complex one."""
    if jnp.iscomplexobj(a) and not jnp.iscomplexobj(b):
        return lax.complex(a.real @ b, a.imag @ b)
    if jnp.iscomplexobj(b) and not jnp.iscomplexobj(a):
        return lax.complex(a @ b.real, a @ b.imag)
    return a @ b


class _Triangularised(eqx.Module):
    """`A = U T Uᴴ` with `T` triangular (upper unless `lower`) and `U = Z Γ`.

    `Z` is dense (`None` for a diagonal or already triangular `A`), real for real `A`;
    `Γ` is `None` or the tridiagonal rotations that turn a real Schur form complex.
    """

    unitary: Array | None
    rotations: _Rotations | None
    triangular: Array  # (n, n) triangular, or (n,) for a diagonal matrix
    lower: bool = eqx.field(static=True)

    def adjoint(self) -> "_Triangularised":
        # Aᴴ = U Tᴴ Uᴴ.
        t = jnp.conj(self.triangular) if self.triangular.ndim == 1 else self.triangular.conj().T
        return _Triangularised(
            self.unitary, self.rotations, t, not self.lower and self.triangular.ndim == 2
        )

    def transpose(self) -> "_Triangularised":
        # Aᵀ = (U T Uᴴ)ᵀ = Ū Tᵀ Ūᴴ, with Ū = Z̄ Γ̄.
        u = None if self.unitary is None else jnp.conj(self.unitary)
        g = None if self.rotations is None else self.rotations.conj()
        t = self.triangular if self.triangular.ndim == 1 else self.triangular.T
        return _Triangularised(u, g, t, not self.lower and self.triangular.ndim == 2)

    def eigenvalues(self) -> Array:
        return self.triangular if self.triangular.ndim == 1 else jnp.diagonal(self.triangular)

    # One method per side, so that no string chooses the product.
    def dense_to_basis_left(self, x: Array) -> Array:
        """`Zᴴ X`."""
        return x if self.unitary is None else _matmul(self.unitary.conj().T, x)

    def dense_to_basis_right(self, x: Array) -> Array:
        """`X Z`."""
        return x if self.unitary is None else _matmul(x, self.unitary)

    def rotate_to_basis_left(self, x: Array) -> Array:
        """`Γᴴ X`."""
        return x if self.rotations is None else self.rotations.adjoint().left(x)

    def rotate_to_basis_right(self, x: Array) -> Array:
        """`X Γ`."""
        return x if self.rotations is None else self.rotations.right(x)

    def rotate_from_basis_left(self, y: Array) -> Array:
        """`Γ Y`."""
        return y if self.rotations is None else self.rotations.left(y)

    def rotate_from_basis_right(self, y: Array) -> Array:
        """`Y Γᴴ`."""
        return y if self.rotations is None else self.rotations.adjoint().right(y)

    def dense_from_basis_left(self, y: Array) -> Array:
        """`Z Y`."""
        return y if self.unitary is None else _matmul(self.unitary, y)

    def dense_from_basis_right(self, y: Array) -> Array:
        """`Y Zᴴ`."""
        return y if self.unitary is None else _matmul(y, self.unitary.conj().T)


def _triangularise(a: Array) -> _Triangularised:
    if a.ndim == 1:
        return _Triangularised(None, None, a, False)
    if jnp.iscomplexobj(a):
        t, u = jsl.schur(a, output="complex")
        return _Triangularised(u, None, t, False)
    t, z = jsl.schur(a, output="real")
    t, rotations = _real_to_complex_schur(t)
    return _Triangularised(z, rotations, t, False)


def _as_upper(t: Array, lower: bool) -> Array:
    """A triangular matrix as an upper one: reversing rows and columns flips lower to upper."""
    if t.ndim == 1:
        t = jnp.diag(t)
    return t[::-1, ::-1] if lower else t


def _solve_triangular_sylvester_columns(r: Array, s: Array, f: Array, discrete: bool) -> Array:
    """Solve `R Y + Y S = F` or `Y − R Y S = F` with `R`, `S` upper triangular, column by column.

    Column k of `R Y + Y S = F` reads `(R + s_kk I) y_k = g_k`, `g_k = f_k − Σ_{j<k} s_jk y_j`,
    and of `Y − R Y S = F` reads `(I − s_kk R) y_k = g_k`, `g_k = f_k + R Σ_{j<k} s_jk y_j`: a
    triangular solve each, `O(n²)`, so `O(n² m)` for all columns. The right-hand sides are
    carried and updated by a rank-one term once `y_k` is known (`g_j −= s_kj y_k`, resp.
    `+= s_kj R y_k`, for `j > k`), which measured faster than forming `Σ_{j<k} s_jk y_j` from
    the solved columns at every step (n = 32: 127 against 152 µs). Columns are stored as rows
    (`Yᵀ`, `Gᵀ`), so that each step reads and writes contiguous memory.
    """
    n, m = f.shape
    eye = jnp.eye(n, dtype=r.dtype)
    later = jnp.arange(m)

    def column(carry, k):
        y_t, g_t = carry
        matrix = eye - s[k, k] * r if discrete else r + s[k, k] * eye
        y_k = jsl.solve_triangular(matrix, g_t[k], lower=False)
        # Row k of S, restricted to the columns j > k that are still to be solved.
        s_k = jnp.where(later > k, s[k], 0)
        if discrete:
            g_t = g_t + s_k[:, None] * (r @ y_k)[None, :]
        else:
            g_t = g_t - s_k[:, None] * y_k[None, :]
        return (lax.dynamic_update_slice_in_dim(y_t, y_k[None], k, axis=0), g_t), None

    (y_t, _), _ = lax.scan(column, (jnp.zeros_like(f.T), f.T), later)
    return y_t.T


def _complex_matmul(a: Array, b: Array) -> Array:
    """`A B` by four real products: XLA's CPU complex products are ~8× a real one, not 4×."""
    if not (jnp.iscomplexobj(a) and jnp.iscomplexobj(b)):
        return _matmul(a, b)
    ar, ai, br, bi = a.real, a.imag, b.real, b.imag
    return lax.complex(ar @ br - ai @ bi, ar @ bi + ai @ br)


# Target block size of the blocked triangular solve; measured on CPU (n = 256, 512): 32 was
# faster than 16 (more sequential steps) and 64 (more level-2 work in the column sweeps).
_BLOCK = 32
# Up to this order on both sides the triangular stage is one column sweep, not blocked.
# Measured on 2 cores (whole Lyapunov solves, jitted, separate processes): at n = 48 and 64
# the sweep was within 2% or up to 6% faster warm and compiled in 0.76-0.89 s instead of
# 1.2-1.7 s (the blocked program has two nested scans and the padding); at n = 96 and 128
# blocking was 6-50% faster warm.
_ONE_BLOCK_MAX = 64


def _pad_triangular(t: Array, size: int, dummy: Array) -> Array:
    """`[[T, 0], [0, dummy I]]`: the padded rows/columns of `Y` solve a decoupled equation."""
    k = t.shape[0]
    if size == k:
        return t
    pad = jnp.concatenate([jnp.zeros(k, t.dtype), jnp.full(size - k, dummy, t.dtype)])
    return jnp.pad(t, ((0, size - k), (0, size - k))) + jnp.diag(pad)


def _solve_triangular_sylvester(r: Array, s: Array, f: Array, discrete: bool) -> Array:
    """Solve `R Y + Y S = F` or `Y − R Y S = F` (`R`, `S` upper triangular), blocked.

    With `R`, `S` and `Y` cut into `p × p` and `q × q` blocks (`R_ik = 0` for `k < i`,
    `S_lj = 0` for `l > j`), block `Y_ij` solves a small equation of the same kind,

        continuous:  R_ii Y_ij + Y_ij S_jj = F_ij − Σ_{l<j} Y_il S_lj − Σ_{k>i} R_ik Y_kj
        discrete:    Y_ij − R_ii Y_ij S_jj = H_ij + Σ_{k>i} R_ik Y_kj S_jj,
                     H_j = F_j + R Σ_{l<j} Y_l S_lj,

    taking block columns left to right and, within one, block rows bottom to top; the
    small equations go column by column (`_solve_triangular_sylvester_columns`). So all but
    `O(nm(p + q))` of the work is matrix-matrix products (level-3 BLAS), where the plain
    column sweep over the whole matrix is one triangular solve and matrix-vector products
    per column. Two nested `lax.scan`s with zero-padded (still-unsolved) blocks keep the
    program small: a recursive split unrolled at trace time compiled for 30 s at n = 512.
    The sizes are padded to whole blocks with a decoupled diagonal (`d = 0` discrete,
    `d = 1 + max |diag|` continuous, so `d + s_jj ≠ 0` and `r_ii + d ≠ 0`), whose part of `Y`
    is exactly zero.

    References: I. Jonsson, B. Kågström, "Recursive blocked algorithms for solving triangular
    systems — Part I: one-sided and coupled Sylvester-type matrix equations", ACM TOMS 28 (2002).
    """
    n, m = f.shape
    if max(n, m) <= _ONE_BLOCK_MAX:
        # The blocking's padding and nested scans cost more than they save here (n = 16:
        # 95 against 141 µs), and compile for longer (see `_ONE_BLOCK_MAX`).
        return _solve_triangular_sylvester_columns(r, s, f, discrete)
    row_blocks, col_blocks = -(-n // _BLOCK), -(-m // _BLOCK)
    p, q = -(-n // row_blocks), -(-m // col_blocks)  # padding < one row (column) per block
    rows, cols = row_blocks * p, col_blocks * q
    if discrete:
        dummy = jnp.zeros((), r.dtype)
    else:
        scale = jnp.maximum(jnp.max(jnp.abs(jnp.diagonal(r))), jnp.max(jnp.abs(jnp.diagonal(s))))
        dummy = (1 + scale).astype(r.dtype)
    r, s = _pad_triangular(r, rows, dummy), _pad_triangular(s, cols, dummy)
    f = jnp.pad(f, ((0, rows - n), (0, cols - m)))
    r_rows = r.reshape(row_blocks, p, rows)
    f_cols = f.reshape(rows, col_blocks, q).transpose(1, 0, 2)

    def column_block(y, j):
        # Unsolved blocks of `y` are zero, so full products give the sums over solved blocks.
        s_j = lax.dynamic_slice_in_dim(s, j * q, q, axis=1)
        s_jj = lax.dynamic_slice_in_dim(s_j, j * q, q, axis=0)
        if discrete:
            g = f_cols[j] + _complex_matmul(r, _complex_matmul(y, s_j))
        else:
            g = f_cols[j] - _complex_matmul(y, s_j)

        def row_block(y_j, i):
            r_i = r_rows[i]
            r_ii = lax.dynamic_slice_in_dim(r_i, i * p, p, axis=1)
            g_i = lax.dynamic_slice_in_dim(g, i * p, p, axis=0)
            if discrete:
                rhs = g_i + _complex_matmul(_complex_matmul(r_i, y_j), s_jj)
            else:
                rhs = g_i - _complex_matmul(r_i, y_j)
            y_ij = _solve_triangular_sylvester_columns(r_ii, s_jj, rhs, discrete)
            return lax.dynamic_update_slice_in_dim(y_j, y_ij, i * p, axis=0), None

        y_j = jnp.zeros((rows, q), f.dtype)
        y_j, _ = lax.scan(row_block, y_j, jnp.arange(row_blocks), reverse=True)
        return lax.dynamic_update_slice_in_dim(y, y_j, j * q, axis=1), None

    y, _ = lax.scan(column_block, jnp.zeros_like(f), jnp.arange(col_blocks))
    return y[:n, :m]


class BartelsStewart(AbstractSylvesterSolver):
    """Bartels–Stewart: Schur forms `A = U R Uᴴ`, `B = V S Vᴴ`, then a triangular solve.

    `A X + X B = C` becomes `R Y + Y S = F` with `F = Uᴴ C V`, `X = U Y Vᴴ` (and likewise
    for `A X B − X + C = 0`). For real `A` the real Schur form (LAPACK `gees`, about a quarter
    of the flops of the complex one) is made triangular by `O(n²)` rotations; the triangular
    equation is solved by blocks, mostly matrix-matrix products.

    `O(n³ + m³)` for the Schur forms and `O(nm(n + m))` per right-hand side. A diagonal
    (1-D) side needs no Schur form. CPU only (JAX has no GPU `schur`).

    **Arguments:**

    - `left_upper_triangular`: promise that `A` is already upper triangular (a Schur form
        computed once by the caller, e.g. inside an optimisation loop), so its Schur
        decomposition is skipped. Not checked.

    References: R. H. Bartels, G. W. Stewart, "Solution of the matrix equation AX + XB = C",
    Comm. ACM 15 (1972). I. Jonsson, B. Kågström, "Recursive blocked algorithms for solving
    triangular systems — Part I", ACM TOMS 28 (2002).
    """

    left_upper_triangular: bool = eqx.field(static=True, default=False)

    def init(self, operator, adjoint_pair):
        if self.left_upper_triangular and operator.a.ndim == 2:
            left = _Triangularised(None, None, operator.a, False)
        else:
            left = _triangularise(operator.a)
        # A Lyapunov/Stein equation has B = Aᴴ = U Tᴴ Uᴴ: one Schur form serves both sides.
        # Otherwise factorise Bᴴ and take the adjoint: the Gramian equations of jaxlqo all
        # have B = A₂ᴴ, so this is the Schur form of A₂ itself, and XLA's common-subexpression
        # elimination shares it with every other solve of the program that factorises A₂
        # (a dense h2 error and its gradient: two Schur forms, not three).
        right = left.adjoint() if adjoint_pair else _triangularise(operator.b.conj().T).adjoint()
        return left, right, operator.discrete

    def compute(self, state, c):
        left, right, discrete = state
        with jax.numpy_dtype_promotion("standard"):  # deliberate real -> complex promotion
            cdtype = jnp.result_type(c.dtype, left.triangular.dtype, right.triangular.dtype)
        # F = Γ_Aᴴ (Z_Aᴴ C Z_B) Γ_B: the dense products first, in real arithmetic for real C.
        g = right.dense_to_basis_right(left.dense_to_basis_left(c))
        f = right.rotate_to_basis_right(left.rotate_to_basis_left(g.astype(cdtype)))
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
        w = left.rotate_from_basis_left(right.rotate_from_basis_right(y))
        real_factors = all(
            side.unitary is None or not jnp.iscomplexobj(side.unitary) for side in (left, right)
        )
        if real_factors and not jnp.iscomplexobj(c):
            w = jnp.real(w)  # X = Z W Zᴴ with Z real, so Re X = Z (Re W) Zᴴ: real products
        x = left.dense_from_basis_left(right.dense_from_basis_right(w))
        x = x if jnp.iscomplexobj(c) else jnp.real(x).astype(c.dtype)
        return x, _separation_result(left.eigenvalues(), right.eigenvalues(), discrete), {}

    def transpose(self, state):
        left, right, discrete = state
        return left.transpose(), right.transpose(), discrete


class Doubling(AbstractSylvesterSolver):
    """Squared Smith (doubling) iteration for discrete-time (Stein) equations; GPU-friendly.

    `X = Σ_k A^k C B^k` summed by doubling: `X ← X + A_k X B_k`, `A_{k+1} = A_k²`,
    `B_{k+1} = B_k²`, so `2^K` terms cost `K` steps of three matrix products. Converges iff
    `ρ(A) ρ(B) < 1`; needs only matrix products, so it runs on any backend.

    **Arguments:**

    - `max_steps`: at most this many doublings (`2^max_steps` terms).
    """

    max_steps: int = eqx.field(static=True, default=64)

    def failure(self, state):
        return RESULTS.not_converged

    def init(self, operator, adjoint_pair):
        if not operator.discrete:
            raise TypeError(
                "lqo.Doubling() solves discrete-time equations only; use lqo.MatrixSign()."
            )
        return operator

    def compute(self, state, c):
        a, b = as_dense(state.a).astype(c.dtype), as_dense(state.b).astype(c.dtype)
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
        steps, x, _, _, change = lax.while_loop(cond, body, init)
        # Not converged (ρ(A)ρ(B) ≥ 1): NaN, which also lets a fallback take over.
        converged = change <= tol
        result = RESULTS.where(converged, RESULTS.successful, RESULTS.not_converged)
        return jnp.where(converged, x, jnp.nan), result, {"num_steps": steps}

    def transpose(self, state):
        return state.transpose()


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

    def failure(self, state):
        return RESULTS.not_converged

    def init(self, operator, adjoint_pair):
        if operator.discrete:
            raise TypeError(
                "lqo.MatrixSign() solves continuous-time equations only; use lqo.Doubling()."
            )
        return operator

    def compute(self, state, c):
        a = as_dense(state.a).astype(c.dtype)
        d = -as_dense(state.b).astype(c.dtype)
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
        steps, a_k, d_k, e, change = lax.while_loop(cond, body, init)
        # The iteration also converges for spectra on both sides of the imaginary axis, but to
        # sign(A) ≠ −I (then ‖sign(A) + I‖_F ≥ ρ(sign(A) + I) = 2) and a meaningless E. Either
        # failure gives NaN → `not_converged` (and the default's fallback on GPU).
        at_sign = jnp.linalg.norm(a_k + jnp.eye(n, dtype=a_k.dtype)) < 1
        at_sign = at_sign & (jnp.linalg.norm(d_k - jnp.eye(m, dtype=d_k.dtype)) < 1)
        converged = (change <= tol) & at_sign
        result = RESULTS.where(converged, RESULTS.successful, RESULTS.not_converged)
        return jnp.where(converged, 0.5 * e, jnp.nan), result, {"num_steps": steps}

    def transpose(self, state):
        return state.transpose()


class Eigendecomposition(AbstractSylvesterSolver):
    """Diagonalisation `A = V Λ V⁻¹`, `B = W M W⁻¹`, then a closed form; stable or unstable `A`.

    `A X + X B = C` becomes `Λ Y + Y M = F` with `F = V⁻¹ C W`, `X = V Y W⁻¹`, so
    `Y_ij = F_ij / (λ_i + μ_j)` (discrete: `F_ij / (1 − λ_i μ_j)`). It needs no stability, only
    a solvable equation and diagonalisable `A`, `B`; its accuracy degrades with the condition
    of the eigenvector bases (`κ(V) κ(W) ε`), and for a defective (Jordan) `A` the residual
    check reports `RESULTS.eigendecomposition_failed`. `O(n³ + m³)` for the factorisations and
    `O(nm(n + m))` per right-hand side, in complex arithmetic.

    Uses `jnp.linalg.eig`, which JAX provides on CPU and on CUDA / ROCm GPUs (a hybrid kernel
    that runs LAPACK's `geev` on the host or cuSOLVER's `geev`; the products stay on the
    device), not on TPU. On GPU the default [`jaxlqo.AutoSolver`][] falls back to it for
    equations whose coefficients are not stable. On CPU prefer [`jaxlqo.BartelsStewart`][]
    (backward stable for any `A`).
    """

    def failure(self, state):
        return RESULTS.eigendecomposition_failed

    def init(self, operator, adjoint_pair):
        left = _diagonalise(operator.a)
        if adjoint_pair:
            # B = Aᴴ = V⁻ᴴ Λ̄ Vᴴ: one eigendecomposition serves both sides.
            lam, v, v_inv = left
            right = (jnp.conj(lam), _adjoint(v_inv), _adjoint(v))
        else:
            right = _diagonalise(operator.b)
        return left, right, operator.discrete

    def compute(self, state, c):
        (lam, v, v_inv), (mu, w, w_inv), discrete = state
        with jax.numpy_dtype_promotion("standard"):  # deliberate real -> complex promotion
            cdtype = jnp.result_type(c.dtype, lam.dtype, mu.dtype)
        f = _left_product(v_inv, _right_product(c.astype(cdtype), w))
        lam, mu = lam.astype(cdtype)[:, None], mu.astype(cdtype)[None, :]
        y = f / (1 - lam * mu) if discrete else f / (lam + mu)
        x = _left_product(v, _right_product(y, w_inv))
        x = x if jnp.iscomplexobj(c) else jnp.real(x).astype(c.dtype)
        return x, _separation_result(lam, mu, discrete), {}

    def transpose(self, state):
        # Aᵀ = V⁻ᵀ Λ Vᵀ: eigenvectors V⁻ᵀ, their inverse Vᵀ (no conjugation).
        (lam, v, v_inv), (mu, w, w_inv), discrete = state
        return (
            (lam, _transpose(v_inv), _transpose(v)),
            (mu, _transpose(w_inv), _transpose(w)),
            discrete,
        )


def _adjoint(x: Array | None) -> Array | None:
    return None if x is None else x.conj().T


def _transpose(x: Array | None) -> Array | None:
    return None if x is None else x.T


def _left_product(t: Array | None, x: Array) -> Array:
    """`T X`; `T = None` is the identity."""
    return x if t is None else _complex_matmul(t, x)


def _right_product(x: Array, t: Array | None) -> Array:
    """`X T`; `T = None` is the identity."""
    return x if t is None else _complex_matmul(x, t)


def _diagonalise(a: Array) -> tuple[Array, Array | None, Array | None]:
    """`(λ, V, V⁻¹)` with `A = V diag(λ) V⁻¹`; `V = None` for a 1-D (diagonal) `A`."""
    if a.ndim == 1:
        return a, None, None
    finite = jnp.isfinite(a).all()  # non-finite input is reported by the caller
    lam, v = jnp.linalg.eig(jnp.where(finite, a, jnp.zeros_like(a)))
    return lam, v, jnp.linalg.inv(v)


def _cond_any(pred, true_fn, false_value, operands):
    """`true_fn(*operands)` if `pred`, else `false_value`, where `true_fn` runs only if needed.

    `false_value` and the output of `true_fn` are pytrees of the same structure.

    Under `vmap` a `lax.cond` with a batched predicate becomes a `select` that runs both
    branches for every element. Here the batching rule instead runs the (batched) `true_fn`
    once if *any* element needs it, and selects per element: a batch that needs no fallback
    pays nothing for it. `true_fn` must be a function of `operands` alone (no closed-over
    traced values), as `custom_vmap` requires.
    """

    @jax.custom_batching.custom_vmap
    def run(pred, false_value, operands):
        return lax.cond(pred, lambda: true_fn(*operands), lambda: false_value)

    @run.def_vmap
    def _rule(axis_size, in_batched, pred, false_value, operands):
        pred_batched, false_batched, operands_batched = in_batched
        false_value = jax.tree_util.tree_map(
            lambda v, b: v if b else jnp.broadcast_to(v, (axis_size,) + v.shape),
            false_value,
            false_batched,
        )
        in_axes = jax.tree_util.tree_map(lambda b: 0 if b else None, operands_batched)

        def batched_true(pred, false_value, *ops):
            out = jax.vmap(true_fn, in_axes=tuple(in_axes))(*ops)
            if not pred_batched:
                return out

            def select(o, f):
                return jnp.where(pred.reshape((axis_size,) + (1,) * (o.ndim - 1)), o, f)

            return jax.tree_util.tree_map(select, out, false_value)

        any_pred = jnp.any(pred) if pred_batched else pred
        # Recursing keeps the same economy under nested `vmap`s.
        out = _cond_any(
            any_pred,
            batched_true,
            false_value,
            (pred, false_value, *operands),
        )
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return run(pred, false_value, operands)


class _WithFallback(AbstractSylvesterSolver):
    """`first`, and where its result is not finite (an iteration that did not converge) `second`.

    `second` is factorised inside the fallback branch, so an equation that `first` solves
    never pays for it (not even under `vmap`, see `_cond_any`).
    """

    first: AbstractSylvesterSolver = eqx.field(kw_only=True)
    second: AbstractSylvesterSolver = eqx.field(kw_only=True)

    def failure(self, state):
        return RESULTS.eigendecomposition_failed

    def init(self, operator, adjoint_pair):
        return self.first.init(operator, adjoint_pair), operator, adjoint_pair, False

    def compute(self, state, c):
        first_state, operator, adjoint_pair, transposed = state
        x, result, stats = self.first.compute(first_state, c)
        discrete, second = operator.discrete, self.second

        def fallback(a, b, c):
            # `second` factorises the operator as given and transposes its own state, as a
            # direct call of `second` would.
            inner = second.init(SylvesterOperator(a, b, discrete), adjoint_pair)
            inner = second.transpose(inner) if transposed else inner
            x, result, _ = second.compute(inner, c)
            return x, result

        failed = ~jnp.isfinite(x).all()
        x, result = _cond_any(failed, fallback, (x, result), (operator.a, operator.b, c))
        return x, result, stats

    def transpose(self, state):
        first_state, operator, adjoint_pair, transposed = state
        return self.first.transpose(first_state), operator, adjoint_pair, not transposed


class AutoSolver(AbstractSylvesterSolver):
    """The default: chooses a solver from static structure and the default backend.

    - both `A` and `B` 1-D (diagonal): [`jaxlqo.Diagonal`][];
    - `n m ≤ 64` (Lyapunov / Stein equations, `B = Aᴴ`: `n² ≤ 36`): [`jaxlqo.Kronecker`][]
      (one small LU beats any factorisation);
    - CPU backend: [`jaxlqo.BartelsStewart`][];
    - GPU (CUDA / ROCm, no `schur`): [`jaxlqo.Doubling`][] for discrete-time and
      [`jaxlqo.MatrixSign`][] for continuous-time equations, which converge for stable
      coefficients (`ρ(A)ρ(B) < 1`, resp. spectra in the open left half-plane); where the
      iteration does not converge (e.g. `A X + X Aᴴ = Q` with an unstable `A`, which is
      solvable whenever `λ_i + λ̄_j ≠ 0`), the solve falls back to
      [`jaxlqo.Eigendecomposition`][]. The fallback is a `lax.cond` that runs only when
      needed, also under `vmap` (then once for the batch, if any element needs it);
    - other backends (TPU: neither `schur` nor `eig`): Doubling / MatrixSign alone, so only
      equations with stable coefficients are solved there.
    """

    def select(self, operator: SylvesterOperator, adjoint_pair: bool) -> AbstractSylvesterSolver:
        if operator.a.ndim == 1 and operator.b.ndim == 1:
            return Diagonal()
        # One Schur form serves a Lyapunov equation, so Bartels–Stewart overtakes the
        # Kronecker LU at a smaller size than for a Sylvester equation (measured, medians of
        # 500 interleaved calls: n = 8 Lyapunov, 68 against 89 µs; 32 × 2 Sylvester, 491
        # against 333 µs; 8 × 8 Sylvester, 155 against 177 µs).
        if operator.a.shape[0] * operator.b.shape[0] <= (36 if adjoint_pair else 64):
            return Kronecker()
        backend = jax.default_backend()
        if backend == "cpu":
            return BartelsStewart()
        iteration = Doubling() if operator.discrete else MatrixSign()
        if backend in ("gpu", "cuda", "rocm"):
            return _WithFallback(first=iteration, second=Eigendecomposition())
        return iteration

    def init(self, operator, adjoint_pair):
        solver = self.select(operator, adjoint_pair)
        return solver, solver.init(operator, adjoint_pair)

    def compute(self, state, c):
        solver, inner = state
        return solver.compute(inner, c)

    def transpose(self, state):
        solver, inner = state
        return solver, solver.transpose(inner)

    def failure(self, state):
        solver, inner = state
        return solver.failure(inner)
