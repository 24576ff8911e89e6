"""jaxlqo: differentiable control theory for linear and linear-quadratic-output systems in JAX."""

from . import compat as compat
from ._gramians import (
    controllability_gramian as controllability_gramian,
    hankel_singular_values as hankel_singular_values,
    is_stable as is_stable,
    observability_gramian as observability_gramian,
)
from ._interop import (
    from_control as from_control,
    from_scipy as from_scipy,
    to_control as to_control,
    to_scipy as to_scipy,
)
from ._matrix_equations._solve import (
    Factorisation as Factorisation,
    factorise as factorise,
    solve_continuous_lyapunov as solve_continuous_lyapunov,
    solve_discrete_lyapunov as solve_discrete_lyapunov,
    solve_discrete_sylvester as solve_discrete_sylvester,
    solve_sylvester as solve_sylvester,
)
from ._matrix_equations._solvers import (
    AbstractSylvesterSolver as AbstractSylvesterSolver,
    AutoSolver as AutoSolver,
    BartelsStewart as BartelsStewart,
    Diagonal as Diagonal,
    Doubling as Doubling,
    Eigendecomposition as Eigendecomposition,
    Kronecker as Kronecker,
    MatrixSign as MatrixSign,
)
from ._norms import (
    h2_error as h2_error,
    h2_error_gradient as h2_error_gradient,
    h2_norm as h2_norm,
)
from ._reduction import (
    balanced_truncation as balanced_truncation,
    modal_truncation as modal_truncation,
    reduce as reduce,
    tlh2 as tlh2,
)
from ._sharding import (
    layer_mesh as layer_mesh,
    map_layers as map_layers,
    shard_layers as shard_layers,
)
from ._simulate import simulate as simulate
from ._solution import RESULTS as RESULTS, Solution as Solution
from ._systems import (
    AbstractSystem as AbstractSystem,
    DiagonalLQOSystem as DiagonalLQOSystem,
    LQOSystem as LQOSystem,
)


def _package_version() -> str:
    # One source of truth: the version in pyproject.toml, as installed.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxlqo")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _package_version()


def __getattr__(name: str):
    # `jaxlqo.testing` (hypothesis strategies) is imported on first use, so `import jaxlqo`
    # does not import hypothesis.
    if name == "testing":
        import importlib

        module = importlib.import_module(".testing", __name__)
        globals()["testing"] = module
        return module
    raise AttributeError(f"module 'jaxlqo' has no attribute {name!r}")


from jaxlib.version import __version__ as _jaxlib_version  # noqa: E402

from ._versions import warn_if_deadlocking_jaxlib as _warn_if_deadlocking_jaxlib  # noqa: E402

_warn_if_deadlocking_jaxlib(_jaxlib_version)
