"""Test configuration: float64, strict dtype promotion, a PRNG key, hypothesis profiles."""

import gc
import os
import pathlib

from jaxlqo._xla_flags import use_fast_compilation

# The suite is ~85% XLA compilation of many small programs: compile with less optimisation
# (jaxlqo/_xla_flags.py; test_norms.py alone: 123 s -> 61 s). Before any array operation,
# since XLA reads its flags when the backend starts; subprocesses inherit them.
use_fast_compilation()

import equinox as eqx  # noqa: E402
import hypothesis  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jaxlqo._blas import limit_blas_threads  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
# One BLAS thread: XLA's thread pool already uses every core, and OpenBLAS threads competing
# with it made LAPACK calls many times slower on the 2-core CI machine (jaxlqo/_blas.py).
limit_blas_threads(1)

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


# XLA's own defaults for the two options `use_fast_compilation` changes. Per-program compiler
# options override XLA_FLAGS, so a test about rounding as users get it (two separate forward
# passes of one model rounding alike) compiles its program with these.
XLA_DEFAULT_OPTIONS = {"xla_cpu_use_fusion_emitters": True, "xla_backend_optimization_level": 2}


def jit_as_by_default(fn):
    """`fn` under `eqx.filter_jit`, compiled with XLA's default options, not the suite's."""
    return eqx.filter_jit(fn, compiler_options=XLA_DEFAULT_OPTIONS)


def load_benchmark(name: str) -> dict:
    """A SLICOT / LQO benchmark model from tests/data (see tests/data/README.md)."""
    with np.load(DATA / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module.

    XLA's CPU executables hold memory mappings; one pytest process compiling the whole
    suite's shapes accumulates tens of thousands of them, and at the kernel's
    `vm.max_map_count` (65 530 by default) the next compilation crashes the process (seen as a
    segfault or abort inside `backend_compile` late in the suite). Clearing the caches returns
    the process to a few hundred mappings; a module rarely reuses another module's shapes.
    """
    yield
    jax.clear_caches()
    gc.collect()


# Summed test time per file on the 2-core machine (s, 804 tests at 12e7a1d): test_reduction
# 492, test_matrix_equations 370, test_ssm_compress 345, test_ssm_bound 226, test_norms 148,
# test_docs_examples 119, test_accuracy 107; every other file ≤ 60. Under `--dist loadfile`
# xdist hands whole files to the workers in collection order, and alphabetically the heavy
# files came last, so one worker idled for minutes at the end. Heaviest first is the classic
# longest-processing-time-first schedule: the light files fill in the gaps at the end
# (2026-12-04: 567 s wall for the suite, 192% CPU on the two workers).
HEAVIEST_FILES_FIRST = (
    "test_reduction.py",
    "test_matrix_equations.py",
    "test_ssm_compress.py",
    "test_ssm_bound.py",
    "test_norms.py",
    "test_docs_examples.py",
    "test_accuracy.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FILES_FIRST)}
    # A stable sort: the order of the tests within a file is kept.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
