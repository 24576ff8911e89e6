"""Argument checks shared by the Gramians, norms and reducers: horizons, finiteness, `dt`.

`raise_if_time_domain_mixup` turns the generic "unstable" error into one that names the likely
cause (a discrete-time matrix passed with `dt=None`, or the reverse).
"""

import numbers

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from ._linalg import is_stable_matrix
from ._systems import AbstractSystem


def check_horizon(horizon, discrete: bool, caller: str):
    """`None`, a positive Python int `L` (discrete time) or a positive time `T` (continuous)."""
    if horizon is None:
        return None
    if discrete:
        if isinstance(horizon, numbers.Integral) and not isinstance(horizon, bool):
            horizon = int(horizon)  # a NumPy integer is fine; it must be static
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(
                f"{caller}: a discrete-time `horizon` is a number of steps, a Python int ≥ 1 "
                f"(e.g. horizon=64); got {horizon!r}. Pass `horizon=None` for the infinite "
                "horizon."
            )
        return horizon
    if isinstance(horizon, (int, float)) and not horizon > 0:
        raise ValueError(
            f"{caller}: a continuous-time `horizon` is a time T > 0 (e.g. horizon=10.0); got "
            f"{horizon!r}. Pass `horizon=None` for the infinite horizon."
        )
    return horizon


def systems_are_finite(*systems: AbstractSystem):
    """Whether every array of every system is finite.

    Checked explicitly: an `inf` in `C`, `M` or `D` need not turn the result into NaN (it can
    give `inf`, which would otherwise read as a legitimate infinite norm).
    """
    finite = jnp.array(True)
    for leaf in jax.tree_util.tree_leaves(eqx.filter(systems, eqx.is_inexact_array)):
        finite = finite & jnp.isfinite(lax.stop_gradient(leaf)).all()
    return finite


def raise_if_time_domain_mixup(value, systems, stable, spectra=None):
    """Raise a specific message when unstable systems would be stable in the other time domain.

    A discrete-time `A` passed with `dt=None` (the default of `LQOSystem`) reads as an unstable
    continuous-time system, and vice versa; the generic "unstable" error would not say why.
    `spectra`: the systems' eigenvalues, where the caller has them already (then no `eigvals`
    is compiled: inside the `cond` below XLA could not share it with the caller's `eig`).
    """
    discrete = systems[0].is_discrete
    matrices = [sys.state_matrix for sys in systems] if spectra is None else list(spectra)

    def stable_in_other_domain():
        other = systems_are_finite(*systems)
        for a in matrices:
            other = other & is_stable_matrix(a, not discrete)
        return other

    if spectra is None:
        # `cond`: the extra eigenvalue computation only runs for an unstable system (outside
        # vmap).
        other = lax.cond(stable, lambda: jnp.array(False), stable_in_other_domain)
    else:
        other = ~stable & stable_in_other_domain()
    if discrete:
        message = (
            f"The system is unstable in discrete time (dt={systems[0].dt}: some |λ| ≥ 1), but "
            "every eigenvalue has Re λ < 0, as for a stable continuous-time system: did you "
            "mean `dt=None` (continuous time)?"
        )
    else:
        message = (
            "The system is unstable in continuous time (dt=None: some Re λ ≥ 0), but every "
            "|λ| < 1, as for a stable discrete-time system: did you mean `dt=1.0` (or your "
            "sampling step)? `dt=None`, the default of `LQOSystem`, means continuous time."
        )
    return eqx.error_if(value, other, message)
