"""XLA:CPU compiler options that trade a little run time for much shorter compilation.

jaxlqo's programs are many and small (a dense solve is a Schur form, two rotations, a blocked
triangular stage and its checks), so a fresh process spends most of its time compiling:
measured on 2 cores (jax 0.9.2), compiling one value + gradient of a dense `h2_error`
(n = 48, r = 4) took 3.4 s, and the test suite is ~85% compilation. Two options of XLA's
CPU backend remove most of that:

- `--xla_cpu_use_fusion_emitters=false`: generate fused loops with XLA's classic elemental
  emitter instead of the newer MLIR fusion emitters, which are slow to compile for many
  small fusions (complex arithmetic on vectors of length n, `pad`, `where`).
- `--xla_backend_optimization_level=0`: skip LLVM's optimisation passes on the generated
  loops. Matrix products and LAPACK calls run library code and are unaffected; elementwise
  loops get slower (measured 1.4–1.6× on whole solves).

Together (`python -m benchmarks.compile`, n = 8 and 48, trace + lowering + compile) a dense
solve compiles in 0.12–0.69 s instead of 0.31–1.75 s and an h2 error with its gradient in
1.3–2.0 s instead of 2.3–5.0 s, for 1.0–1.8× the warm time. The programs are the same,
compiled with less optimisation (no fast-math: IEEE arithmetic as before), so results differ
from the defaults only by rounding.

XLA reads `XLA_FLAGS` once, when JAX first initialises its CPU backend (the first array
operation, not `import jax`), so these must be set before that. The library never sets them:
they are process-wide. Entry points dominated by compilation call `use_fast_compilation()`
first: the test suite (`tests/conftest.py`) and the documentation's figure script. The CLI
does not (its sweep is half compute: measured slower with them, see README).
"""

import os

FAST_COMPILATION_FLAGS = (
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_backend_optimization_level=0",
)


def use_fast_compilation() -> None:
    """Append `FAST_COMPILATION_FLAGS` to `XLA_FLAGS` (flags already set there win).

    Has an effect only before JAX initialises its CPU backend.
    """
    flags = os.environ.get("XLA_FLAGS", "").split()
    names = {flag.split("=")[0] for flag in flags}
    extra = [flag for flag in FAST_COMPILATION_FLAGS if flag.split("=")[0] not in names]
    os.environ["XLA_FLAGS"] = " ".join(flags + extra)
