"""Pure NumPy oracles and problem builders for the matrix-equation tests.

The four equations, in SciPy's conventions (a 1-D `A` or `B` stands for a diagonal matrix):

    sylvester:            A X + X B = C
    discrete_sylvester:   A X B − X + C = 0
    continuous_lyapunov:  A X + X Aᴴ = Q          (B = Aᴴ)
    discrete_lyapunov:    A X Aᴴ − X + Q = 0      (B = Aᴴ)

Nothing here calls jaxlqo: the reference solve is a dense Kronecker-product solve with
row-major `vec` (`vec(A X B) = (A ⊗ Bᵀ) vec X`), and the builders draw structure (a size, a
seed, a spectral radius or abscissa) rather than raw ill-conditioned matrices.
"""

import numpy as np

EQUATIONS = ("sylvester", "discrete_sylvester", "continuous_lyapunov", "discrete_lyapunov")


def is_discrete(equation: str) -> bool:
    return equation.startswith("discrete")


def is_lyapunov(equation: str) -> bool:
    return equation.endswith("lyapunov")


def dense(a) -> np.ndarray:
    a = np.asarray(a)
    return np.diag(a) if a.ndim == 1 else a


def adjoint(a) -> np.ndarray:
    a = np.asarray(a)
    return a.conj() if a.ndim == 1 else a.conj().T


# --- builders ---------------------------------------------------------------------------------


def normal(rng: np.random.Generator, shape, complex_: bool = False) -> np.ndarray:
    """I.i.d. standard normal entries (complex: `E|z|² = 1`)."""
    x = rng.standard_normal(shape)
    if complex_:
        x = (x + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return x


def hurwitz(rng, n: int, complex_: bool = False, abscissa: float = -1.0) -> np.ndarray:
    """A dense random `n × n` matrix whose spectral abscissa (max Re λ) is exactly `abscissa`."""
    g = normal(rng, (n, n), complex_) / np.sqrt(n)
    return g - (np.max(np.linalg.eigvals(g).real) - abscissa) * np.eye(n)


def schur_stable(rng, n: int, complex_: bool = False, radius: float = 0.8) -> np.ndarray:
    """A dense random `n × n` matrix whose spectral radius is exactly `radius`."""
    g = normal(rng, (n, n), complex_)
    rho = np.max(np.abs(np.linalg.eigvals(g)))
    return g * (radius / rho)


def problem(
    rng,
    equation: str,
    n: int,
    m: int | None = None,
    complex_: bool = False,
    *,
    radius: float = 0.8,
    abscissa: float = -1.0,
):
    """`(A, B, C)` for `equation`: stable coefficients, a normal right-hand side.

    Continuous equations get spectral abscissae `abscissa` (so `λ_i + μ_j ≠ 0`), discrete ones
    spectral radii `radius < 1` (so `λ_i μ_j ≠ 1`). For a Lyapunov equation `B = Aᴴ`, `m = n`.
    """
    stable = schur_stable if is_discrete(equation) else hurwitz
    kwargs = {"radius": radius} if is_discrete(equation) else {"abscissa": abscissa}
    a = stable(rng, n, complex_, **kwargs)
    if is_lyapunov(equation):
        b, m = a.conj().T, n
    else:
        m = n if m is None else m
        b = stable(rng, m, complex_, **kwargs)
    c = normal(rng, (n, m), complex_)
    return a, b, c


# --- oracles ----------------------------------------------------------------------------------


def kronecker_matrix(a, b, discrete: bool) -> np.ndarray:
    """The `nm × nm` matrix of `X ↦ A X + X B` or `X ↦ X − A X B` on row-major `vec X`."""
    a, b = dense(a), dense(b)
    n, m = a.shape[0], b.shape[0]
    if discrete:
        return np.eye(n * m) - np.kron(a, b.T)
    return np.kron(a, np.eye(m)) + np.kron(np.eye(n), b.T)


def solve(equation: str, a, b, c) -> np.ndarray:
    """The reference solution (for a Lyapunov equation `b` is ignored and `Aᴴ` used)."""
    if is_lyapunov(equation):
        b = adjoint(a)
    c = np.asarray(c)
    matrix = kronecker_matrix(a, b, is_discrete(equation))
    return np.linalg.solve(matrix, c.reshape(-1)).reshape(c.shape)


def residual(equation: str, a, b, c, x) -> np.ndarray:
    """`L(X) − C` in the `L(X) = C` form (see module docstring); zero at the solution."""
    a, x, c = dense(a), np.asarray(x), np.asarray(c)
    b = adjoint(a) if is_lyapunov(equation) else dense(b)
    if is_discrete(equation):
        return x - a @ x @ b - c
    return a @ x + x @ b - c


def residual_scale(equation: str, a, b, c, x) -> float:
    """`‖A‖‖X‖‖B‖ + ‖X‖ + ‖C‖` (discrete) or `‖A‖‖X‖ + ‖X‖‖B‖ + ‖C‖` (continuous), Frobenius.

    A backward-stable solver leaves a residual of a modest multiple of `n ε` times this.
    """
    b = adjoint(a) if is_lyapunov(equation) else b
    na, nb = np.linalg.norm(dense(a)), np.linalg.norm(dense(b))
    nx, nc = np.linalg.norm(np.asarray(x)), np.linalg.norm(np.asarray(c))
    if is_discrete(equation):
        return float(na * nx * nb + nx + nc)
    return float(na * nx + nx * nb + nc)


def relative_error(x, reference) -> float:
    x, reference = np.asarray(x), np.asarray(reference)
    return float(np.linalg.norm(x - reference) / np.linalg.norm(reference))
