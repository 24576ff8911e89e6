"""The matrix-equation layer: the four solves and the solver Modules behind them.

`_operator` holds the Sylvester operator `L(X; A, B)`, `_solvers` the solver Modules
(`init` → state, `compute`, `transpose`), `_solve` the public solves and `factorise`. The
public names are exported once, by `jaxlqo/__init__.py`; the library imports them from the
module that defines them.
"""
