r"""Conversion to and from python-control and `scipy.signal` state-space objects.

| jaxlqo | python-control | `scipy.signal` |
|---|---|---|
| `dt=None` (continuous time) | `dt=0` | `lti` / `StateSpace(A, B, C, D)` (`dt` absent or `None`) |
| `dt=h` (discrete, step `h`) | `dt=h` | `dlti` / `StateSpace(A, B, C, D, dt=h)` |
| `dt=1.0` (when imported) | `dt=True` (discrete, unspecified step) | `dt=True` |
| `dt=None` (when imported) | `dt=None` (unspecified timebase) | — |

Only linear systems exist in python-control and SciPy: an [`jaxlqo.LQOSystem`][] with a
quadratic output `M` cannot be exported unless the quadratic part is explicitly dropped
(`drop_quadratic=True`). A [`jaxlqo.DiagonalLQOSystem`][] is exported through its exact real
form [`to_dense`][jaxlqo.DiagonalLQOSystem.to_dense] (state `[Re x; Im x]`, `2n` states).
"""

import math

import jax
import jax.core
import numpy as np

from ._systems import AbstractSystem, LQOSystem


def _import_control(caller: str):
    try:
        import control
    except ImportError as e:  # optional dependency
        raise ImportError(
            f"{caller} needs python-control, which is not installed. Install it with "
            "`pip install control`."
        ) from e
    return control


def _import_signal(caller: str):
    try:
        import scipy.signal as signal
    except ImportError as e:  # pragma: no cover - scipy is a dependency of jax
        raise ImportError(
            f"{caller} needs SciPy, which is not installed. Install it with `pip install scipy`."
        ) from e
    return signal


def external_dt(dt, caller: str, library: str):
    """A python-control / SciPy `dt` as a jaxlqo `dt`: `None` (continuous) or a positive float."""
    if dt is None:
        return None
    if isinstance(dt, (bool, np.bool_)):
        # `True`: discrete time with an unspecified step; jaxlqo needs a number.
        return 1.0 if dt else None
    dt = float(dt)
    if dt == 0:
        return None
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"{caller}: the {library} system has an invalid sampling time dt={dt}.")
    return dt


def _numpy_matrices(sys: AbstractSystem, caller: str, drop_quadratic: bool):
    """`(A, B, C, D)` of `sys` as real NumPy arrays, after the checks every export shares."""
    if not isinstance(sys, AbstractSystem):
        raise TypeError(
            f"{caller}: `sys` must be a jaxlqo system (`lqo.LQOSystem` or "
            f"`lqo.DiagonalLQOSystem`); got {type(sys).__name__}."
        )
    dense = sys.to_dense()
    if dense.M is not None and not drop_quadratic:
        raise ValueError(
            f"{caller}: `sys` has a quadratic output (M, or F/G for a diagonal system), which "
            "linear state-space objects cannot represent. Pass `drop_quadratic=True` to "
            "export only the linear part (A, B, C, D), or build the system without `M`."
        )
    arrays = (dense.A, dense.B, dense.C, dense.D)
    if any(isinstance(x, jax.core.Tracer) for x in arrays):
        raise TypeError(
            f"{caller}: `sys` holds traced arrays (inside `jit`/`vmap`/`grad`); conversion to "
            "NumPy-based objects must happen outside JAX transformations."
        )
    if np.iscomplexobj(np.asarray(dense.A)):
        raise TypeError(
            f"{caller}: `sys` is a complex `LQOSystem`; only real systems can be exported "
            "(for complex-diagonal models use `lqo.DiagonalLQOSystem`, exported as its real form)."
        )
    return tuple(np.asarray(x) for x in arrays)


def _jaxlqo_system(A, B, C, D, dt, dtype, caller: str) -> LQOSystem:
    arrays = [np.atleast_2d(np.asarray(x)) for x in (A, B, C, D)]
    if arrays[0].size == 0:
        raise ValueError(
            f"{caller}: the system has no states (a static gain); jaxlqo systems need n ≥ 1."
        )
    if dtype is not None:
        arrays = [x.astype(dtype) for x in arrays]
    A, B, C, D = arrays
    return LQOSystem(A, B, C, D=D, dt=dt)


def from_control(sys, *, dtype=None) -> LQOSystem:
    r"""A python-control system as a [`jaxlqo.LQOSystem`][].

    $$\text{control.ss}(A, B, C, D, dt) \;\mapsto\; \text{LQOSystem}(A, B, C, D=D, dt=\ldots).$$

    **Arguments:**

    - `sys`: a `control.StateSpace`, or any python-control LTI system (e.g. a
        `TransferFunction`, converted with `control.ss` first).
    - `dtype`: keyword-only; cast the matrices to this dtype (default: keep NumPy's, i.e.
        float64, which JAX stores as float32 unless `jax_enable_x64` is set).

    **Returns:** an `LQOSystem` with `M = None`. The sampling time maps as `dt=0 → dt=None`
    (continuous), `dt=h → dt=h`, `dt=True` (discrete, unspecified step) `→ dt=1.0`, and
    python-control's unspecified timebase `dt=None → dt=None` (continuous).

    **Raises:** `ImportError` without python-control; `TypeError` for other objects.
    """
    caller = "from_control"
    control = _import_control(caller)
    if not isinstance(sys, control.LTI):
        raise TypeError(
            f"{caller}: `sys` must be a python-control system (`control.ss(...)`); got "
            f"{type(sys).__name__}."
            + (" For a scipy.signal system use `lqo.from_scipy`." if is_scipy_system(sys) else "")
        )
    if not isinstance(sys, control.StateSpace):
        sys = control.ss(sys)
        assert isinstance(sys, control.StateSpace)  # `ss` of an LTI system (not an IO system)
    dt = external_dt(sys.dt, caller, "python-control")
    return _jaxlqo_system(sys.A, sys.B, sys.C, sys.D, dt, dtype, caller)


def to_control(sys: AbstractSystem, *, drop_quadratic: bool = False):
    r"""A jaxlqo system as a python-control `StateSpace`.

    $$\text{LQOSystem}(A, B, C, D=D, dt) \;\mapsto\; \text{control.ss}(A, B, C, D, dt'),
      \qquad dt' = 0 \text{ for } dt = \text{None}.$$

    **Arguments:**

    - `sys`: a real [`jaxlqo.LQOSystem`][], or a [`jaxlqo.DiagonalLQOSystem`][] (exported as
        `sys.to_dense()`, the real form with state `[Re x; Im x]` and `2n` states).
    - `drop_quadratic`: keyword-only; python-control has no quadratic outputs, so a system
        with `M` (or `F`, `G`) raises `ValueError` unless this is `True`, in which case only
        the linear part `(A, B, C, D)` is exported.

    **Returns:** a `control.StateSpace` with NumPy arrays (call outside `jit`).

    **Raises:** `ImportError` without python-control (`pip install control`).
    """
    caller = "to_control"
    control = _import_control(caller)
    A, B, C, D = _numpy_matrices(sys, caller, drop_quadratic)
    return control.ss(A, B, C, D, 0 if sys.dt is None else sys.dt)


def is_scipy_system(sys) -> bool:
    return type(sys).__module__.startswith("scipy.signal")


def from_scipy(sys, *, dtype=None) -> LQOSystem:
    r"""A `scipy.signal` LTI system as a [`jaxlqo.LQOSystem`][].

    **Arguments:**

    - `sys`: a `scipy.signal.StateSpace` (continuous `lti` or discrete `dlti`), or any
        `scipy.signal.lti` / `dlti` (a `TransferFunction` or `ZerosPolesGain` is converted with
        `.to_ss()` first).
    - `dtype`: keyword-only; cast the matrices to this dtype.

    **Returns:** an `LQOSystem` with `M = None`: `dt=None` for a continuous system, `dt=h` for
    a discrete one with `dt=h`, and `dt=1.0` for SciPy's `dt=True` (discrete, unspecified step).
    """
    caller = "from_scipy"
    signal = _import_signal(caller)
    if not isinstance(sys, (signal.lti, signal.dlti)):
        raise TypeError(
            f"{caller}: `sys` must be a scipy.signal `lti`/`dlti` system (e.g. "
            f"`scipy.signal.StateSpace(A, B, C, D, dt=...)`); got {type(sys).__name__}."
            + (
                " For a python-control system use `lqo.from_control`."
                if is_control_system(sys)
                else ""
            )
        )
    if not isinstance(sys, signal.StateSpace):
        # Every concrete `lti`/`dlti` (a TransferFunction or ZerosPolesGain) has `to_ss`; the
        # base classes do not declare it.
        sys = sys.to_ss()  # pyright: ignore[reportAttributeAccessIssue]
    dt = external_dt(getattr(sys, "dt", None), caller, "scipy.signal")
    return _jaxlqo_system(sys.A, sys.B, sys.C, sys.D, dt, dtype, caller)


def is_control_system(sys) -> bool:
    return type(sys).__module__.startswith("control.")


def to_scipy(sys: AbstractSystem, *, drop_quadratic: bool = False):
    r"""A jaxlqo system as a `scipy.signal.StateSpace`.

    A continuous-time system (`dt=None`) becomes a continuous `StateSpace(A, B, C, D)`; a
    discrete one becomes `StateSpace(A, B, C, D, dt=dt)` (a `dlti`). Quadratic outputs and
    diagonal systems are handled as in [`jaxlqo.to_control`][] (`drop_quadratic=True` to
    export only the linear part; `to_dense()` for a `DiagonalLQOSystem`).
    """
    caller = "to_scipy"
    signal = _import_signal(caller)
    A, B, C, D = _numpy_matrices(sys, caller, drop_quadratic)
    if sys.dt is None:
        return signal.StateSpace(A, B, C, D)
    return signal.StateSpace(A, B, C, D, dt=sys.dt)
