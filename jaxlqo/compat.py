r"""python-control / MATLAB-flavoured names for jaxlqo's functions (`jaxlqo.compat`).

For code ported from python-control or MATLAB: the same names, argument orders and **sign
conventions** as python-control (`control.lyap` etc., which follow MATLAB), computed by
jaxlqo's differentiable, `jit`-able solvers. Mind the signs: python-control writes the
Lyapunov equation with `+Q` on the left (`A X + X Aᵀ + Q = 0`), SciPy and jaxlqo's native
[`jaxlqo.solve_continuous_lyapunov`][] with `Q` on the right (`A X + X Aᴴ = Q`).

| `jaxlqo.compat` | equation / meaning | native jaxlqo call |
|---|---|---|
| `lyap(A, Q)` | `A X + X Aᵀ + Q = 0` | `solve_continuous_lyapunov(A, -Q)` |
| `lyap(A, Q, C)` | `A X + X Q + C = 0` (Sylvester) | `solve_sylvester(A, Q, -C)` |
| `lyap(A, Q, None, E)` | `A X Eᵀ + E X Aᵀ + Q = 0` | `solve_continuous_lyapunov(E⁻¹A, -E⁻¹QE⁻ᵀ)` |
| `dlyap(A, Q)` | `A X Aᵀ − X + Q = 0` | `solve_discrete_lyapunov(A, Q)` |
| `dlyap(A, Q, C)` | `A X Qᵀ − X + C = 0` (Sylvester) | `solve_discrete_sylvester(A, Q.T, C)` |
| `dlyap(A, Q, None, E)` | `A X Aᵀ − E X Eᵀ + Q = 0` | `solve_discrete_lyapunov(E⁻¹A, E⁻¹QE⁻ᵀ)` |
| `gram(sys, 'c')` | controllability Gramian | `controllability_gramian(sys)` |
| `gram(sys, 'o')` | (LQO) observability Gramian | `observability_gramian(sys)` |
| `gram(sys, 'cf')`, `'of'` | upper-triangular `R`, `W = Rᵀ R` | Cholesky factor, transposed |
| `hsvd(sys)` | Hankel singular values, decreasing | `hankel_singular_values(sys)` |
| `balred(sys, orders)` | balanced truncation to `orders` | `balanced_truncation(sys, r).value` |
| `norm(sys, 2)` | h2 norm (`inf` if unstable) | `h2_norm(sys, throw=False).value` |
| `ss(A, B, C, D, dt)` | a system, python-control's `dt` | `LQOSystem(A, B, C, D=D, dt=...)` |

(For complex matrices every `ᵀ` above is `ᴴ`, as in python-control's SciPy path.)

**Systems.** Every function taking `sys` accepts a python-control `StateSpace` (or other
python-control LTI object), a `scipy.signal` `lti`/`dlti`, or a jaxlqo system. python-control
and SciPy objects are converted with [`jaxlqo.from_control`][] / [`jaxlqo.from_scipy`][]
(python-control's `dt=0` is continuous time, `dt=True` becomes `dt=1.0`).

**Returns.** Arrays are JAX arrays (they convert with `np.asarray`, and differentiate);
`norm` returns a JAX scalar (`float(...)` gives the number); `balred` returns a system of
the kind it was given (a python-control system for a python-control input, etc.).

**Differences from python-control.** No slycot is needed. `gram`, `hsvd` and `balred` also
work in discrete time (python-control's `hsvd` raises there, and its `balred` always treats
the system as continuous). For a system with a quadratic output, `gram(sys, 'o')`, `hsvd`
and `balred` use the LQO observability Gramian. An unstable system raises in `gram`, `hsvd`
and `balred` (python-control's `balred` instead keeps the unstable part, `alpha`) and gives
`inf` in `norm` (without python-control's warning). `method` arguments choosing between
slycot and SciPy are accepted and ignored; `balred(method='matchdc')` and `norm(sys, 'inf')`
are not implemented.

**Exceptions.** As python-control: a bad argument raises [`jaxlqo.compat.ArgumentError`][],
which is both a `TypeError` (python-control's `ControlArgument`) and a `ValueError` (its
`ControlDimension` and plain `ValueError`s), so either `except` clause of ported code catches
it; shape mismatches are `ValueError`s. A value-dependent failure (an unstable system in `gram`,
`hsvd` or `balred`, a singular equation in `lyap` / `dlyap`, non-finite input) raises
[`jaxlqo.compat.ComputationError`][], a `ValueError` (as python-control's "the system is
unstable") and a `numpy.linalg.LinAlgError` (as SciPy's singular-equation error). Inside `jit`
or `vmap` these checks cannot raise a Python exception of a chosen class: there they raise
Equinox's `EquinoxRuntimeError` (a `RuntimeError`) with the same message, as jaxlqo's native
functions do.

**Size 0.** `lyap` and `dlyap` accept empty matrices and return an empty array, as SciPy
(python-control's `lyap` raises `IndexError` on them).
"""

import numbers

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._gramians import (
    controllability_gramian,
    hankel_singular_values,
    is_stable,
    observability_gramian,
)
from ._interop import (
    external_dt,
    from_control,
    from_scipy,
    is_control_system,
    is_scipy_system,
    to_control,
    to_scipy,
)
from ._linalg import psd_sqrt_factor
from ._matrix_equations._solve import (
    solve_continuous_lyapunov,
    solve_discrete_lyapunov,
    solve_discrete_sylvester,
    solve_sylvester,
)
from ._matrix_equations._solvers import (
    AbstractSylvesterSolver,
    AutoSolver,
)
from ._misc import as_inexact_array, check_shape, common_inexact_dtype
from ._norms import h2_norm
from ._reduction import balanced_truncation
from ._solution import RESULTS
from ._systems import AbstractSystem, LQOSystem

__all__ = [
    "ArgumentError",
    "ComputationError",
    "balred",
    "dlyap",
    "gram",
    "hsvd",
    "lyap",
    "norm",
    "ss",
]


class ArgumentError(TypeError, ValueError):
    """A bad argument to a `jaxlqo.compat` function (a wrong `type`, `method`, `p`, `orders` ...).

    python-control raises `ValueError` for some such mistakes and `TypeError` (its
    `ControlArgument`) for others; this class is both, so ported `except` clauses catch it.
    """


class ComputationError(np.linalg.LinAlgError):
    """A value-dependent failure: an unstable system, a singular equation, non-finite input.

    A `ValueError` (python-control raises `ValueError` for an unstable system in `gram`) and a
    `numpy.linalg.LinAlgError` (SciPy's error for a singular discrete Lyapunov equation).
    Raised eagerly; inside `jit` / `vmap` the same check raises `EquinoxRuntimeError`.
    """


def _checked(solution, caller: str):
    """The value of a `throw=False` result, raising `ComputationError` unless successful.

    A traced result (inside `jit`, `vmap`, `grad`) cannot raise a chosen exception class: it
    goes through `eqx.error_if` like the native functions (an `EquinoxRuntimeError`).
    """
    result = solution.result
    if isinstance(result._value, jax.core.Tracer):
        return result.error_if(solution.value, result != RESULTS.successful)
    if bool(result != RESULTS.successful):
        raise ComputationError(f"{caller}: {RESULTS[result]}")
    return solution.value


_AUTO = AutoSolver()  # the default solver (a module-level instance: Modules are immutable)


def _check_method(method, caller: str) -> None:
    if method not in (None, "scipy", "slycot"):
        raise ArgumentError(
            f"{caller}: `method` must be None, 'scipy' or 'slycot' (accepted for python-control "
            f"compatibility and ignored: jaxlqo's own solver is used); got {method!r}."
        )


def _matrices(caller: str, **named):
    """Arrays as 2-D (python-control's `ndmin=2`), cast to one common inexact dtype."""
    out = {}
    for name, x in named.items():
        if x is None:
            out[name] = None
            continue
        try:
            x = as_inexact_array(x, name, caller)
        except TypeError as e:  # e.g. strings: python-control's `ss` raises ValueError there
            raise ArgumentError(str(e)) from e
        if x.ndim > 2:
            raise ValueError(f"{caller}: `{name}` must be a matrix (2-D); got shape {x.shape}.")
        out[name] = jnp.atleast_2d(x)
    dtype = common_inexact_dtype(*out.values())
    return [None if x is None else x.astype(dtype) for x in out.values()]


def _generalised(A, Q, E, caller: str):
    """`(E⁻¹A, E⁻¹ Q E⁻ᴴ)`: the standard form of a generalized Lyapunov/Stein equation."""
    n = A.shape[0]
    check_shape(E, (n, n), "E", caller, f"square (n, n) with n = {n} from A")
    a = jnp.linalg.solve(E, A)
    q = jnp.linalg.solve(E, jnp.linalg.solve(E, Q).conj().T).conj().T
    return a, q


def _check_square(A, caller: str) -> int:
    check_shape(A, (None, None), "A", caller, "(n, n)")
    n = A.shape[0]
    check_shape(A, (n, n), "A", caller, "square (n, n)")
    return n


def lyap(A, Q, C=None, E=None, method=None, *, solver: AbstractSylvesterSolver = _AUTO):
    r"""python-control's `lyap`: the continuous Lyapunov equation $A X + X A^\top + Q = 0$.

    - `lyap(A, Q)` solves $A X + X A^\top + Q = 0$ (note the sign of `Q`: the native
        [`jaxlqo.solve_continuous_lyapunov`][] solves $A X + X A^H = Q$).
    - `lyap(A, Q, C)` solves the Sylvester equation $A X + X Q + C = 0$.
    - `lyap(A, Q, None, E)` solves the generalized equation $A X E^\top + E X A^\top + Q = 0$
        (`E` invertible), as $\tilde A X + X \tilde A^\top + E^{-1} Q E^{-\top} = 0$ with
        $\tilde A = E^{-1} A$.

    **Arguments:** `A` (n, n); `Q` (n, n), or (m, m) for Sylvester; `C` (n, m); `E` (n, n);
    `method` is accepted for compatibility and ignored; `solver` (keyword-only) is any
    [`jaxlqo.AbstractSylvesterSolver`][].

    **Returns:** `X`, a JAX array. Raises [`jaxlqo.compat.ComputationError`][] on a singular
    equation or non-finite input (see the module's notes on exceptions).
    """
    caller = "lyap"
    A, Q, C, E = _lyapunov_arguments(caller, A, Q, C, E, method)
    if C is not None:
        return _checked(solve_sylvester(A, Q, -C, solver=solver, throw=False), caller)
    if E is not None:
        A, Q = _generalised(A, Q, E, caller)
    return _checked(solve_continuous_lyapunov(A, -Q, solver=solver, throw=False), caller)


def dlyap(A, Q, C=None, E=None, method=None, *, solver: AbstractSylvesterSolver = _AUTO):
    r"""python-control's `dlyap`: the discrete Lyapunov equation $A X A^\top - X + Q = 0$.

    - `dlyap(A, Q)` solves $A X A^\top - X + Q = 0$ (same sign as the native
        [`jaxlqo.solve_discrete_lyapunov`][]).
    - `dlyap(A, Q, C)` solves the Sylvester equation $A X Q^\top - X + C = 0$ (python-control
        needs slycot for this one; here it is `solve_discrete_sylvester(A, Q.T, C)`).
    - `dlyap(A, Q, None, E)` solves $A X A^\top - E X E^\top + Q = 0$ (`E` invertible).

    Arguments and returns as for [`jaxlqo.compat.lyap`][].
    """
    caller = "dlyap"
    A, Q, C, E = _lyapunov_arguments(caller, A, Q, C, E, method)
    if C is not None:
        return _checked(solve_discrete_sylvester(A, Q.T, C, solver=solver, throw=False), caller)
    if E is not None:
        A, Q = _generalised(A, Q, E, caller)
    return _checked(solve_discrete_lyapunov(A, Q, solver=solver, throw=False), caller)


def _lyapunov_arguments(caller: str, A, Q, C, E, method):
    """The checks `lyap` and `dlyap` share: `method`, `C` xor `E`, shapes, square `A`."""
    _check_method(method, caller)
    if C is not None and E is not None:
        raise ArgumentError(
            f"{caller}: pass `C` (Sylvester equation) or `E` (generalized Lyapunov equation), "
            "not both."
        )
    A, Q, C, E = _matrices(caller, A=A, Q=Q, C=C, E=E)
    if A is None or Q is None:
        raise ArgumentError(f"{caller}: `A` and `Q` must be matrices; got None.")
    _check_square(A, caller)
    return A, Q, C, E


def _as_system(sys, caller: str) -> AbstractSystem:
    if isinstance(sys, AbstractSystem):
        return sys
    if is_control_system(sys):
        return from_control(sys)
    if is_scipy_system(sys):
        return from_scipy(sys)
    raise ArgumentError(
        f"{caller}: `sys` must be a python-control StateSpace, a scipy.signal lti/dlti or a "
        f"jaxlqo system; got {type(sys).__name__}."
    )


def gram(sys, type):
    r"""python-control's `gram`: the controllability (`'c'`) or observability (`'o'`) Gramian.

    $$A W_c + W_c A^\top + B B^\top = 0,\qquad A^\top W_o + W_o A + C^\top C = 0$$

    in continuous time, $A W_c A^\top - W_c + B B^\top = 0$ (and its dual) in discrete time.
    `'cf'` / `'of'` return an upper-triangular factor `R` with $W = R^\top R$: the Cholesky
    factor (positive diagonal) for a positive definite Gramian, and for a singular one (an
    uncontrollable / unobservable system) the triangular factor of a QR decomposition of
    $Z^\top$, $W = Z Z^\top$, as SLICOT's `sb03od` (python-control's routine) also returns a
    factor of a semidefinite Gramian.

    **Arguments:** `sys` (python-control, SciPy or jaxlqo system); `type` one of `'c'`, `'o'`,
    `'cf'`, `'of'` (the name shadows the builtin, as in python-control).

    **Returns:** a JAX array. Raises [`jaxlqo.compat.ComputationError`][] (a `ValueError`, as
    python-control) for an unstable system.
    """
    caller = "gram"
    if type not in ("c", "o", "cf", "of"):
        raise ArgumentError(f"{caller}: `type` must be 'c', 'o', 'cf' or 'of'; got {type!r}.")
    s = _as_system(sys, caller)
    gramian = controllability_gramian if type[0] == "c" else observability_gramian
    w = _checked(gramian(s, throw=False), caller)
    if type in ("c", "o"):
        return w
    return _upper_factor(w)


def _upper_factor(w):
    """Upper-triangular `R` with `W = Rᴴ R` for a Hermitian positive semidefinite `W`.

    Cholesky where `W` is positive definite; otherwise (NaN from Cholesky) `R` from the QR
    decomposition `Zᴴ = Q R` of a square-root factor `W = Z Zᴴ`, since then
    `Rᴴ R = Rᴴ Qᴴ Q R = Z Zᴴ = W`, with rows scaled to a real non-negative diagonal.
    """
    w = 0.5 * (w + w.conj().T)
    cholesky = jnp.linalg.cholesky(w).conj().T
    r = jnp.linalg.qr(psd_sqrt_factor(w).conj().T, mode="r")
    d: Array = jnp.diagonal(r)  # (jax's stub leaves `diagonal` unannotated)
    magnitude = jnp.abs(d)
    phase = jnp.where(magnitude > 0, d / jnp.where(magnitude > 0, magnitude, 1).astype(d.dtype), 1)
    r = jnp.conj(phase)[:, None] * r
    return jnp.where(jnp.isfinite(cholesky).all(), cholesky, r)


def hsvd(sys):
    r"""python-control's `hsvd`: the Hankel singular values $\sqrt{\lambda_i(W_c W_o)}$, decreasing.

    Continuous or discrete time (python-control supports only continuous). A
    [`jaxlqo.DiagonalLQOSystem`][] with `n` complex states has `2n` values. Returns a JAX array.
    """
    return _checked(hankel_singular_values(_as_system(sys, "hsvd"), throw=False), "hsvd")


def balred(sys, orders, method="truncate", alpha=None):
    r"""python-control's `balred`: balanced truncation to `orders` states.

    **Arguments:**

    - `sys`: python-control, SciPy or jaxlqo system (stable; continuous or discrete time).
    - `orders`: an int (Python or NumPy), or a sequence of them (then a list of systems is
        returned). For a [`jaxlqo.DiagonalLQOSystem`][] it counts complex states (see
        [`jaxlqo.balanced_truncation`][]). A float, a bool or a string is an
        [`jaxlqo.compat.ArgumentError`][].
    - `method`: only `'truncate'` (python-control's `'matchdc'` is not implemented).
    - `alpha`: must be `None` (unstable systems are not split into stable and unstable parts).

    **Returns:** the reduced system(s), of the same kind as `sys`; the feedthrough `D` is kept.
    An unstable system raises [`jaxlqo.compat.ComputationError`][] (a `ValueError`).
    """
    caller = "balred"
    if method != "truncate":
        raise ArgumentError(
            f"{caller}: only method='truncate' is implemented; got {method!r}. For "
            "'matchdc' use python-control (`control.balred(lqo.to_control(sys), r, "
            "method='matchdc')`, needs slycot)."
        )
    if alpha is not None:
        raise ArgumentError(
            f"{caller}: `alpha` (stability boundary for splitting unstable systems) is not "
            "supported; pass alpha=None and a stable system."
        )
    s = _as_system(sys, caller)
    if isinstance(orders, np.ndarray) and orders.ndim == 0:
        orders = orders.item()
    scalar = not isinstance(orders, (list, tuple, np.ndarray, range))
    ranks = [orders] if scalar else list(orders)
    if not ranks or not all(
        isinstance(r, numbers.Integral) and not isinstance(r, (bool, np.bool_)) for r in ranks
    ):
        raise ArgumentError(
            f"{caller}: `orders` must be an int (the reduced order, e.g. 2) or a sequence of "
            f"ints; got {orders!r}."
        )
    if not _any_traced(s):
        if not bool(is_stable(s)):
            raise ComputationError(f"{caller}: {RESULTS[RESULTS.unstable]}")
    results = []
    for r in ranks:
        try:
            rom = balanced_truncation(s, int(r)).value
        except eqx.EquinoxRuntimeError as e:  # eager: a value-dependent failure
            raise ComputationError(f"{caller}: {e}") from e
        if is_control_system(sys):
            rom = to_control(rom)
        elif is_scipy_system(sys):
            rom = to_scipy(rom)
        results.append(rom)
    return results[0] if scalar else results


def _any_traced(sys) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(sys))


def norm(sys, p=2, tol=1e-6, print_warning=True, method=None):
    r"""python-control's `norm` (`system_norm`) for `p=2`: the h2 norm.

    $$\|G\|_{h_2}^2 = \operatorname{tr}(C W_c C^\top) \;(+\operatorname{tr}(D D^\top)
      \text{ in discrete time}),$$

    `inf` for an unstable system and for a continuous-time system with `D ≠ 0` (as
    python-control). LQO systems include the quadratic-output term (see [`jaxlqo.h2_norm`][]).
    `tol`, `print_warning` and `method` are accepted for compatibility and ignored.

    **Returns:** a JAX scalar.
    """
    caller = "norm"
    _check_method(method, caller)
    if isinstance(p, bool) or p != 2:
        raise ArgumentError(
            f"{caller}: only p=2 (the h2 norm) is implemented; got p={p!r}. For the "
            "L-infinity norm use `control.norm(lqo.to_control(sys), 'inf')`."
        )
    return h2_norm(_as_system(sys, caller), throw=False).value


def ss(A, B, C, D=0, dt=0) -> LQOSystem:
    r"""python-control's `ss(A, B, C, D, dt)` as a [`jaxlqo.LQOSystem`][].

    `dt` follows python-control: `0` (default) or `None` is continuous time, a positive number
    is discrete time with that step and `True` is discrete time with `dt=1.0`. A scalar `D`
    (python-control's default `0`) is broadcast to shape `(p, m)`.
    """
    caller = "ss"
    dt = external_dt(dt, caller, "python-control-style")
    A, B, C = _matrices(caller, A=A, B=B, C=C)
    if A is None or B is None or C is None:
        raise ArgumentError(f"{caller}: `A`, `B` and `C` must be matrices; got None.")
    D = as_inexact_array(D, "D", caller)
    if D.ndim == 0:
        D = jnp.full((C.shape[0], B.shape[1]), D, dtype=D.dtype)
    return LQOSystem(A, B, C, D=D, dt=dt)
