"""Result codes at the end of a computation: combine them, then throw or return a `Solution`.

Every public Gramian and norm ends in `finish`: an infinite horizon needs a stable
system, a non-finite input is `RESULTS.nonfinite_input`, and `throw=True` raises behind
`eqx.error_if` where `throw=False` returns a [`jaxlqo.Solution`][].
"""

from ._checks import raise_if_time_domain_mixup, systems_are_finite
from ._solution import RESULTS, Solution


def first_failure(*results: RESULTS) -> RESULTS:
    """The first unsuccessful result code, or `successful`."""
    out = RESULTS.successful
    for r in reversed(results):
        out = RESULTS.where(r == RESULTS.successful, out, r)
    return out


def finish(value, result, stable, horizon, throw, systems=(), spectra=None):
    """The common end of a Gramian or norm computation: result code, then throw or `Solution`.

    An infinite horizon needs a stable system (`RESULTS.unstable`); a non-finite array in
    `systems` is `RESULTS.nonfinite_input`. With `throw` the value is returned behind
    `eqx.error_if` (first the specific message for a `dt` that mixes up the time domains),
    else a [`jaxlqo.Solution`][] with the result code. `spectra`: the eigenvalues of
    `systems`' state matrices, if the caller has them (see `raise_if_time_domain_mixup`).
    """
    if horizon is None:
        result = RESULTS.where(stable, result, RESULTS.unstable)
    if systems:
        result = RESULTS.where(systems_are_finite(*systems), result, RESULTS.nonfinite_input)
    if throw:
        if systems and horizon is None:
            value = raise_if_time_domain_mixup(value, systems, stable, spectra)
        return result.error_if(value, result != RESULTS.successful)
    return Solution(value=value, result=result, stats={})
