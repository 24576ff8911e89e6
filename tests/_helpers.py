"""Shared by `test_gramians.py` and `test_norms.py`: system strategies of a few fixed sizes
(the jitted functions compile once per structure) and memoised deterministic examples."""

import hypothesis

import jaxlqo as lqo

T = lqo.testing

# A dense system of order N = 4, a diagonal one with ND = 2 complex states (realified order 4,
# so `to_dense()` shares the dense system's compilations); 2 inputs and 2 outputs throughout.
N, ND, M_IN, P_OUT = 4, 2, 2, 2


def dense(n=N, *, discrete=True, lti=False, feedthrough=False, max_radius=0.7, **kw):
    return T.lqo_systems(
        n=n,
        m=M_IN,
        p=P_OUT,
        discrete=discrete,
        lti=lti,
        feedthrough=feedthrough,
        max_radius=max_radius,
        **kw,
    )


def diagonal(n=ND, *, discrete=True, lti=False, feedthrough=False, max_radius=0.7, **kw):
    return T.diagonal_systems(
        n=n,
        m=M_IN,
        p=P_OUT,
        rank=1,
        discrete=discrete,
        lti=lti,
        feedthrough=feedthrough,
        max_radius=max_radius,
        **kw,
    )


_FOUND = {}


def first(strategy, condition=lambda s: True):
    """A deterministic example from a strategy (for the non-hypothesis tests), memoised."""
    key = (repr(strategy), condition)
    if key not in _FOUND:
        _FOUND[key] = hypothesis.find(
            strategy, condition, settings=hypothesis.settings(database=None, derandomize=True)
        )
    return _FOUND[key]
