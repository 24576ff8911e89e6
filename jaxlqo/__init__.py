"""jaxlqo: differentiable control theory for linear and linear-quadratic-output systems in JAX."""

from . import compat as compat, testing as testing
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
from ._matrix_equations import (
    AbstractSylvesterSolver as AbstractSylvesterSolver,
    AutoSolver as AutoSolver,
    BartelsStewart as BartelsStewart,
    Diagonal as Diagonal,
    Doubling as Doubling,
    Eigendecomposition as Eigendecomposition,
    Kronecker as Kronecker,
    MatrixSign as MatrixSign,
    solve_continuous_lyapunov as solve_continuous_lyapunov,
    solve_discrete_lyapunov as solve_discrete_lyapunov,
    solve_discrete_sylvester as solve_discrete_sylvester,
    solve_sylvester as solve_sylvester,
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

__version__ = "0.1.0"

from jaxlib.version import __version__ as _jaxlib_version  # noqa: E402

from ._versions import warn_if_deadlocking_jaxlib as _warn_if_deadlocking_jaxlib  # noqa: E402

_warn_if_deadlocking_jaxlib(_jaxlib_version)
