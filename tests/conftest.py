"""Test configuration: float64, strict dtype promotion, a PRNG key, hypothesis profiles."""

import os
import pathlib

import hypothesis
import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

hypothesis.settings.register_profile("dev", max_examples=20, deadline=None, derandomize=True)
hypothesis.settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture
def getkey():
    """A function returning a fresh PRNG key at each call."""
    keys = iter(jax.random.split(jax.random.key(0), 10_000))
    return lambda: next(keys)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def load_benchmark(name: str) -> dict:
    """A SLICOT / LQO benchmark model from tests/data (see tests/data/README.md)."""
    with np.load(DATA / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}
