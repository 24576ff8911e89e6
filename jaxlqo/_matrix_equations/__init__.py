from ._operator import SylvesterOperator as SylvesterOperator
from ._solve import (
    Factorisation as Factorisation,
    factorise as factorise,
    solve_continuous_lyapunov as solve_continuous_lyapunov,
    solve_discrete_lyapunov as solve_discrete_lyapunov,
    solve_discrete_sylvester as solve_discrete_sylvester,
    solve_sylvester as solve_sylvester,
)
from ._solvers import (
    AbstractSylvesterSolver as AbstractSylvesterSolver,
    AutoSolver as AutoSolver,
    BartelsStewart as BartelsStewart,
    Diagonal as Diagonal,
    Doubling as Doubling,
    Eigendecomposition as Eigendecomposition,
    Kronecker as Kronecker,
    MatrixSign as MatrixSign,
)
