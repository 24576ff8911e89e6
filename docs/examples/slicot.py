"""Reduce a SLICOT benchmark model: balanced truncation, then h2-optimal refinement.

The "building" model (Los Angeles hospital, SLICOT model-reduction collection): 48 states,
one input, one output, continuous time. The data file ships with the tests
(`tests/data/build.npz`, see `tests/data/README.md` for its provenance).
"""

from pathlib import Path

import jax
import numpy as np

import jaxlqo as lqo

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[2]  # the repository root
data = np.load(ROOT / "tests" / "data" / "build.npz")
fom = lqo.LQOSystem(data["A"], data["B"], data["C"])  # dt=None: continuous time
norm = lqo.h2_norm(fom)
print(f"n = {fom.n}, h2 norm = {float(norm):.10e}")
np.testing.assert_allclose(norm, 4.5300605179e-03, rtol=1e-9)  # the SLICOT reference value

# Hankel singular values: how many states matter.
hsv = lqo.hankel_singular_values(fom)
print("leading Hankel singular values:", np.asarray(hsv[:6]))

r = 8
bt = lqo.balanced_truncation(fom, r).value  # square-root balanced truncation
sol = lqo.reduce(fom, r, init=bt, max_steps=20)  # h2-optimal refinement, stable iterates
h2 = sol.value
# reduce reports the squared h2 error J of its starting point (BT) and of its result.
e_bt = float(np.sqrt(sol.stats["initial_objective"]) / norm)
e_h2 = float(np.sqrt(sol.stats["objective"]) / norm)
print(f"r = {r}: relative h2 error, balanced truncation {e_bt:.3e}, reduce {e_h2:.3e}")


# Balanced truncation's a-priori bound: ‖G − G_r‖_h∞ ≤ 2 Σ_{i>r} σ_i. Check it on a grid.
def frequency_response(sys, w):
    return np.array([sys.C @ np.linalg.solve(1j * wk * np.eye(sys.n) - sys.A, sys.B) for wk in w])


w = np.logspace(-1, 3, 400)
peak = np.max(np.abs(frequency_response(fom, w) - frequency_response(bt, w)))
print(f"peak error on the grid {peak:.3e} <= 2 Σ tail σ = {2 * float(hsv[r:].sum()):.3e}")
assert peak <= 2 * float(hsv[r:].sum())
assert bool(lqo.is_stable(bt)) and bool(lqo.is_stable(h2))
assert e_h2 <= e_bt  # reduce starts from BT and returns its best iterate
