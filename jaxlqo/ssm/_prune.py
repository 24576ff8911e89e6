r"""State pruning by per-mode scores: the LAST and AIRE-Prune baselines, and state budgets.

A complex-diagonal block `x_{k+1} = λ ⊙ x_k + B s_k`, `y_k = Re(C x_k) + …` is a sum of
first-order modes `c_i b_iᵀ / (z − λ_i)`. Pruning keeps a subset of modes (their poles, rows
of `B`, columns of `C`, `F`, `G`); the feedthrough and LayerNorm are untouched, and nothing is
retrained.

**Scores.** With `b_i` the `i`-th row of `B` and `c_i` the `i`-th column of the readout
(`C` stacked with the quadratic readout's `F_l, G_l`, so a mode that only feeds the
quadratic part is not scored zero; for an LTI block this is `C`'s column):

- LAST (Gwak et al., NeurIPS 2024): the squared H∞ norm of the mode,
  `‖c_i‖² ‖b_i‖² / (1 − |λ_i|)²` (the peak gain of `c_i b_iᵀ / (z − λ_i)` is at
  `z = λ_i / |λ_i|`);
- AIRE (arXiv 2602.00534): the mode's h2 energy, `‖c_i‖² ‖b_i‖² / (1 − |λ_i|²)`.

**Normalisation and one global threshold (LAST).** In each layer sort the scores in
descending order, `s_(1) ≥ s_(2) ≥ …`, and divide each by the layer's energy at or above it,

$$\eta_{(j)} = \frac{s_{(j)}}{\sum_{k \le j} s_{(k)}},$$

so the scores of different layers are comparable (each is the share a mode adds to what its
layer already keeps). `η` decreases along each layer's order, so one threshold across all
layers keeps a prefix of every layer's sorted modes: a global budget of `K` states keeps the
`K` largest `η` overall (and at least one state per layer).

`budget_ranks` applies the same normalised rule to the (input-weighted) Hankel singular
values, so every jaxlqo method can take a global state budget.

??? cite "References"
    J. Gwak, M. Park, Y. Lee, S. Yun, "Layer-Adaptive State Pruning for Deep State Space
    Models" (LAST), NeurIPS 2024, arXiv 2411.02824.

    AIRE-Prune, arXiv 2602.00534 (per-mode h2 energy scores).
"""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array

from .._gramians import hankel_singular_values
from .._solution import RESULTS, Solution
from .._systems import DiagonalLQOSystem, with_input_factor
from ._model import DeepSSM
from ._weighting import input_weight_roots


class AbstractModeScore(eqx.Module):
    """A per-mode importance score of a complex-diagonal block (larger: more important)."""

    def __call__(self, sys: DiagonalLQOSystem) -> Array:
        raise NotImplementedError


def _gains(sys: DiagonalLQOSystem) -> tuple[Array, Array, Array]:
    """`‖b_i‖²`, `‖c_i‖²` (readout stacked with the quadratic readout) and `|λ_i|` per mode."""
    b = jnp.sum(jnp.abs(sys.B) ** 2, axis=1)
    c = jnp.sum(jnp.abs(sys.C) ** 2, axis=0)
    if (fg := sys.quadratic_readout) is not None:
        f, g = fg
        c = c + jnp.sum(jnp.abs(f) ** 2, axis=(0, 1)) + jnp.sum(jnp.abs(g) ** 2, axis=(0, 1))
    return b, c, jnp.abs(sys.poles)


class HInfinityModeScore(AbstractModeScore):
    """LAST's score: `‖c_i‖² ‖b_i‖² / (1 − |λ_i|)²`, the mode's squared H∞ norm."""

    def __call__(self, sys: DiagonalLQOSystem) -> Array:
        b, c, modulus = _gains(sys)
        return c * b / (1 - modulus) ** 2


class H2ModeScore(AbstractModeScore):
    """AIRE-Prune's score: `‖c_i‖² ‖b_i‖² / (1 − |λ_i|²)`, the mode's h2 energy."""

    def __call__(self, sys: DiagonalLQOSystem) -> Array:
        b, c, modulus = _gains(sys)
        return c * b / (1 - modulus**2)


def normalised_scores(scores: Array) -> tuple[np.ndarray, np.ndarray]:
    """`(order, η)`: the descending order of `scores` and `η_(j) = s_(j) / Σ_{k≤j} s_(k)`."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")
    sorted_scores = values[order]
    cumulative = np.cumsum(sorted_scores)
    eta = np.where(cumulative > 0, sorted_scores / np.where(cumulative > 0, cumulative, 1), 0.0)
    return order, eta


def global_threshold_ranks(
    per_layer_scores: Sequence[Array], budget: int, *, minimum: int = 1
) -> tuple[int, ...]:
    """Ranks from one global threshold on the normalised scores, `Σ_i r_i = budget`.

    Every layer keeps at least `minimum` states; the remaining budget goes to the largest
    normalised scores `η` across layers (ties broken by layer order, deterministic).
    """
    orders = [len(np.asarray(s)) for s in per_layer_scores]
    _check_budget(budget, orders, minimum, "global_threshold_ranks")
    candidates = []
    for layer, scores in enumerate(per_layer_scores):
        _, eta = normalised_scores(scores)
        candidates += [(-eta[j], layer, j) for j in range(minimum, len(eta))]
    ranks = [minimum] * len(orders)
    for _, layer, _ in sorted(candidates)[: budget - minimum * len(orders)]:
        ranks[layer] += 1
    return tuple(ranks)


def _check_budget(budget, orders, minimum, caller):
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise TypeError(f"{caller}: the state budget must be an int; got {budget!r}.")
    if not minimum * len(orders) <= budget <= sum(orders):
        raise ValueError(
            f"{caller}: the state budget must lie between {minimum * len(orders)} (at least "
            f"{minimum} per layer) and {sum(orders)} (every state); got {budget}."
        )


def prune_system(sys: DiagonalLQOSystem, keep: ArrayLike) -> DiagonalLQOSystem:
    """The block restricted to the modes `keep` (indices): poles, `B` rows, readout columns."""
    keep = jnp.asarray(keep)
    return DiagonalLQOSystem(
        sys.poles[keep],
        sys.B[keep],
        sys.C[:, keep],
        sys.D,
        F=None if sys.F is None else sys.F[:, :, keep],
        G=None if sys.G is None else sys.G[:, :, keep],
        dt=sys.dt,
    )


def prune_layer(sys: DiagonalLQOSystem, r: int, score: AbstractModeScore) -> Solution:
    """Keep the `r` modes of largest `score` (in their original order).

    **Returns:** a [`jaxlqo.Solution`][]: `value` is the pruned block, `result` is
    `RESULTS.successful` (pruning cannot fail), `stats["kept"]` the indices of the kept modes.
    """
    order, _ = normalised_scores(score(sys))
    kept = np.sort(order[:r])
    return Solution(prune_system(sys, kept), RESULTS.successful, {"kept": kept})


def budget_ranks(
    model: DeepSSM,
    budget: int,
    *,
    second_moments: Sequence[Array] | None = None,
    horizon=None,
    minimum: int = 1,
) -> tuple[int, ...]:
    r"""States per layer for a global budget, by LAST's normalised rule on Hankel singular values.

    Each layer's state `j` (in balanced order) is scored by its Hankel singular values
    `σ_{2j−1}² + σ_{2j}²` (a complex state is a real pair; HSVs of the block with input
    `B W_i^{1/2}` when `second_moments` `W_i` are given, so the scores see the inputs the
    layer actually receives), normalised by the layer's energy at or above it, and one
    threshold across layers keeps `budget` states
    ([`global_threshold_ranks`][jaxlqo.ssm.global_threshold_ranks]).

    **Arguments:**

    - `model`: a [`jaxlqo.ssm.DeepSSM`][].
    - `budget`: the total number of complex states to keep.
    - `second_moments`: keyword-only; per-layer input second moments
        ([`jaxlqo.ssm.layer_input_second_moments`][]), or `None` for white inputs.
    - `horizon`: keyword-only; lags of time-limited HSVs (default infinite).
    - `minimum`: keyword-only; the fewest states any layer keeps (default 1).

    **Returns:** a tuple of ranks, one per layer, summing to `budget`.
    """
    _check_budget(budget, [layer.n for layer in model.layers], minimum, "budget_ranks")
    scores = []
    for i, layer in enumerate(model.layers):
        sys = layer.system()
        if second_moments is not None:
            sys = with_input_factor(sys, input_weight_roots(second_moments[i])[0])
        sigma = np.asarray(hankel_singular_values(sys, horizon=horizon), dtype=np.float64)
        sigma = np.concatenate([sigma, np.zeros(2 * layer.n - len(sigma))])[: 2 * layer.n]
        scores.append(sigma[0::2] ** 2 + sigma[1::2] ** 2)
    return global_threshold_ranks(scores, budget, minimum=minimum)
