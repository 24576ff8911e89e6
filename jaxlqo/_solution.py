"""Result codes and the `Solution` returned by `throw=False` calls."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, PyTree


class RESULTS(eqx.Enumeration):
    """Why a computation ended. `RESULTS.successful` is the only good outcome."""

    successful = ""
    nonfinite_input = "The input contains NaN or inf."
    singular_equation = (
        "The matrix equation is singular or numerically singular: some eigenvalue pair "
        "violates the solvability condition (continuous time: λ_i + μ_j = 0; discrete "
        "time: λ_i μ_j = 1)."
    )
    not_converged = (
        "The iterative solver did not converge. Doubling needs ρ(A)ρ(B) < 1 and the "
        "matrix-sign solver needs A and B to have their spectra in the open left half-plane; "
        "use `lqo.BartelsStewart()` (CPU) for other equations."
    )
    eigendecomposition_failed = (
        "The eigendecomposition solver (the default's fallback on GPU for equations whose "
        "coefficients are not stable) failed its residual check: A or B is defective or nearly "
        "so (ill-conditioned eigenvectors), or the equation is singular or nearly singular "
        "(λ_i + μ_j ≈ 0, resp. λ_i μ_j ≈ 1). `lqo.BartelsStewart()` (CPU, Schur-based) solves "
        "every non-singular equation."
    )
    factorisation_mismatch = (
        "The solve with the given `state=` failed its residual check: the factorisation was "
        "made from other coefficients than the `A` (and `B`) passed, or the equation is "
        "numerically singular. Pass `lqo.factorise(...)` of these coefficients."
    )
    unstable = (
        "The system is unstable (continuous time: some Re λ ≥ 0; discrete time: some |λ| ≥ 1), "
        "so its infinite-horizon Gramians and h2 norm do not exist. Pass `horizon=` for a "
        "time-limited quantity, or `throw=False` to get `inf`."
    )
    max_steps_reached = "The optimiser reached `max_steps` before meeting its tolerance."
    nonfinite_objective = (
        "The objective or its gradient became NaN or inf during the optimisation; the best "
        "finite iterate is returned. Check the system for NaN / inf, or start from a "
        "different `init`."
    )


class Solution(eqx.Module):
    """What a `throw=False` call returns.

    **Fields:**

    - `value`: the computed quantity (a matrix, a norm, a reduced system ...).
    - `result`: a [`jaxlqo.RESULTS`][] item; `RESULTS.successful` when all went well.
    - `stats`: a dictionary of diagnostics (may be empty).
    """

    value: PyTree[Array]
    result: RESULTS
    stats: dict[str, Any]
