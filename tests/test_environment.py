"""The runtime environment: BLAS thread limits (`limit_blas_threads`) and jaxlib version checks."""

import threadpoolctl

from jaxlqo._blas import limit_blas_threads


def _blas_threads() -> dict:
    return {
        info["filepath"]: info["num_threads"]
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas"
    }


def test_limit_blas_threads_sets_every_loaded_blas_and_restores():
    outer = threadpoolctl.threadpool_limits(2, user_api="blas")  # a known starting point
    try:
        before = _blas_threads()
        assert before, "no BLAS library loaded: SciPy's OpenBLAS should be (jaxlib's LAPACK)"
        assert set(before.values()) == {2}
        limiter = limit_blas_threads(1)
        assert set(_blas_threads().values()) == {1}
        limiter.restore_original_limits()
        assert _blas_threads() == before
        assert limit_blas_threads(0) is None  # 0: leave the libraries as they are
        assert _blas_threads() == before
    finally:
        outer.restore_original_limits()


def test_known_deadlocking_jaxlib_versions_warn():
    import pytest

    from jaxlqo._versions import warn_if_deadlocking_jaxlib

    with pytest.warns(RuntimeWarning, match="deadlock"):
        assert warn_if_deadlocking_jaxlib("0.10.2")
    assert not warn_if_deadlocking_jaxlib("0.9.2")
    assert not warn_if_deadlocking_jaxlib("0.11.1")


def test_import_is_light_and_the_version_comes_from_the_metadata():
    import importlib.metadata
    import subprocess
    import sys

    script = (
        "import sys, jaxlqo; assert 'hypothesis' not in sys.modules, 'hypothesis imported'; "
        "jaxlqo.testing.lqo_systems; assert 'hypothesis' in sys.modules; "
        "import jaxlqo.testing as t; assert t is jaxlqo.testing; print(jaxlqo.__version__)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == importlib.metadata.version("jaxlqo")


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    import jaxlqo

    with pytest.raises(AttributeError, match="no_such_name"):
        jaxlqo.no_such_name  # noqa: B018
