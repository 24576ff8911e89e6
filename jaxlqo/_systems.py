"""Linear and linear-quadratic-output (LQO) systems as Equinox pytrees.

Discrete time (`dt` a number):   x_{k+1} = A x_k + B u_k,       x_0 = 0
Continuous time (`dt=None`):     ẋ(t)    = A x(t) + B u(t),     x(0) = 0
Output (both):                   y = C x + D u + [xᵀ M_1 x, …, xᵀ M_p x]ᵀ
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Real

from ._misc import as_inexact_array, check_shape, common_inexact_dtype
from ._realisation import Realisation, doubled_rows, doubling_transform, product_core


def _check_dt(dt, caller: str) -> float | None:
    if dt is None:
        return None
    try:
        dt = float(dt)
    except (TypeError, ValueError) as e:  # e.g. a traced value: `dt` is static structure
        raise TypeError(
            f"{caller}: `dt` must be None (continuous time) or a positive Python number "
            f"(discrete time); got {dt!r}. It is static, so it cannot be a traced value."
        ) from e
    if not (math.isfinite(dt) and dt > 0):
        hint = (
            " (python-control's `dt=0` means continuous time, which is `dt=None` here)"
            if dt == 0
            else ""
        )
        raise ValueError(
            f"{caller}: `dt` must be a positive finite number or None; got {dt}{hint}."
        )
    return dt


def _check_input_output_shapes(B, C, D, n: int, source: str, caller: str) -> tuple[int, int]:
    """Check `B (n, m)`, `C (p, n)` and `D (p, m)` (if given) against `n` from `source`.

    **Returns:** `(m, p)`.
    """
    _check_orientation(B, C, n, source, caller)
    check_shape(B, (n, None), "B", caller, f"(n, m) with n = {n} from {source}")
    m = B.shape[1]
    check_shape(C, (None, n), "C", caller, f"(p, n) with n = {n} from {source}")
    p = C.shape[0]
    if D is not None:
        check_shape(D, (p, m), "D", caller, f"(p, m) with p = {p} from C, m = {m} from B")
    return m, p


def _check_orientation(B, C, n: int, source: str, caller: str) -> None:
    """Catch the likely mistakes a bare shape check reports obscurely: `Bᵀ`, `Cᵀ`, B and C swapped.

    `B` must be `(n, m)` and `C` `(p, n)`. Only unambiguous cases are caught (a square `n × n`
    B or C, or swapped B and C with `m = p = n`, are valid shapes and cannot be told apart).
    The message keeps the format of `check_shape` and adds the likely fix.
    """

    def fail(name, x, hint):
        pretty = f"({n}, *)" if name == "B" else f"(*, {n})"
        meaning = "(n, m)" if name == "B" else "(p, n)"
        raise ValueError(
            f"{caller}: argument `{name}` must have shape {pretty} ({meaning} with n = {n} from "
            f"{source}); got shape {x.shape}. {hint}"
        )

    b_transposed = B.ndim == 2 and B.shape[0] != n and B.shape[1] == n
    c_transposed = C.ndim == 2 and C.shape[1] != n and C.shape[0] == n
    if b_transposed and c_transposed:
        fail(
            "B",
            B,
            f"With `C` of shape {C.shape}, B and C look swapped: the argument order is "
            f"({source}, B, C); B maps inputs to states, C states to outputs.",
        )
    if b_transposed:
        fail("B", B, "It looks transposed: pass `B.T`.")
    if c_transposed:
        fail("C", C, "It looks transposed: pass `C.T`.")
    if B.ndim == 1 and B.shape[0] == n:
        fail("B", B, "For a single input pass `B[:, None]` (shape (n, 1)).")
    if C.ndim == 1 and C.shape[0] == n:
        fail("C", C, "For a single output pass `C[None, :]` (shape (1, n)).")


def check_system(sys, caller: str, name: str = "sys") -> None:
    """Raise `TypeError` with the conversion to use if `sys` is not a jaxlqo system."""
    if isinstance(sys, AbstractSystem):
        return
    module = type(sys).__module__
    if module.startswith("control"):
        hint = f" Convert a python-control system with `lqo.from_control({name})`."
    elif module.startswith("scipy.signal"):
        hint = f" Convert a scipy.signal system with `lqo.from_scipy({name})`."
    else:
        hint = " Build one with `lqo.LQOSystem(A, B, C, dt=...)` (`dt=None`: continuous time)."
    raise TypeError(
        f"{caller}: `{name}` must be a jaxlqo system (`lqo.LQOSystem` or "
        f"`lqo.DiagonalLQOSystem`); got {type(sys).__name__}.{hint}"
    )


class AbstractSystem(eqx.Module):
    """A state-space system with `n` states, `m` inputs and `p` outputs.

    Concrete subclasses: [`jaxlqo.LQOSystem`][] (dense) and [`jaxlqo.DiagonalLQOSystem`][]
    (complex-diagonal with real output).
    """

    B: eqx.AbstractVar[Array]  # (n, m): inputs to states
    C: eqx.AbstractVar[Array]  # (p, n): the linear output
    D: eqx.AbstractVar[Array]  # (p, m): the feedthrough, real
    dt: eqx.AbstractVar[float | None]

    @property
    def is_discrete(self) -> bool:
        """Whether the system is discrete time (`dt` is a number)."""
        return self.dt is not None

    @property
    def n(self) -> int:
        """The number of states (complex states for a diagonal system)."""
        return self.state_matrix.shape[-1]

    @property
    def m(self) -> int:
        """The number of inputs."""
        return self.B.shape[-1]

    @property
    def p(self) -> int:
        """The number of outputs."""
        return self.C.shape[-2]

    @property
    @abc.abstractmethod
    def is_lti(self) -> bool:
        """Whether the system has no quadratic output."""

    @property
    @abc.abstractmethod
    def state_matrix(self) -> Array:
        """The state matrix: `(n, n)`, or its diagonal `(n,)` for a diagonal system.

        Its eigenvalues decide stability (`jaxlqo.is_stable`).
        """

    @abc.abstractmethod
    def to_dense(self) -> "LQOSystem":
        """The same input-output map as a dense [`jaxlqo.LQOSystem`][]."""

    @abc.abstractmethod
    def realisation(self, caller: str) -> Realisation:
        """The system as a `Realisation` (real output by construction, see `_realisation.py`):
        the one form every Gramian, norm and h2 error is computed on."""

    @abc.abstractmethod
    def controllability_gramian_in_dense_coordinates(self, p: Array) -> Array:
        """The controllability Gramian `P` of `self.realisation()` in `self.to_dense()`'s
        coordinates (with realisation state `x = T x_dense`: `P_dense = T⁻¹ P T⁻ᴴ`)."""

    @abc.abstractmethod
    def observability_gramian_in_dense_coordinates(self, q: Array) -> Array:
        """The observability Gramian `Q` of `self.realisation()` in `self.to_dense()`'s
        coordinates (with realisation state `x = T x_dense`: `Q_dense = Tᴴ Q T`)."""

    @abc.abstractmethod
    def states(self, u: Array) -> Array:
        """The states `x_0, …, x_{L-1}` (`x_0 = 0`) of the discrete recurrence driven by `u`."""

    @abc.abstractmethod
    def output(self, x: Array, u: Array) -> Array:
        """The output `y` for one state `x` (n,) and input `u` (m,)."""


class LQOSystem(AbstractSystem):
    r"""A dense linear-quadratic-output system.

    $$x_{k+1} = A x_k + B u_k \;(\text{or } \dot x = A x + B u),\qquad
      y_j = (C x + D u)_j + x^\top M_j x .$$

    **Arguments:**

    - `A`: state matrix, shape `(n, n)`.
    - `B`: input matrix, shape `(n, m)`.
    - `C`: linear output matrix, shape `(p, n)`.
    - `M`: quadratic output, shape `(p, n, n)`: one matrix per output, aligned with the rows
        of `C`. It is symmetrised on construction (`xᵀ M x = xᵀ ½(M + Mᵀ) x`, and every h2
        formula assumes symmetry). `None` (default) gives an ordinary LTI system.
    - `D`: feedthrough, shape `(p, m)`; `None` means zero.
    - `dt`: keyword-only; `None` (default) for continuous time, a positive number for
        discrete time with that sampling step.

    Integer and boolean arrays are promoted to the default float dtype; all arrays are cast to
    one common dtype. Shapes are checked with an error naming the argument.
    """

    A: Inexact[Array, "n n"]
    B: Inexact[Array, "n m"]
    C: Inexact[Array, "p n"]
    M: Inexact[Array, "p n n"] | None
    D: Inexact[Array, "p m"]
    dt: float | None = eqx.field(static=True)

    def __init__(self, A, B, C, M=None, D=None, *, dt=None):
        caller = "LQOSystem"
        A = as_inexact_array(A, "A", caller, allow_half=False)
        B = as_inexact_array(B, "B", caller, allow_half=False)
        C = as_inexact_array(C, "C", caller, allow_half=False)
        M = None if M is None else as_inexact_array(M, "M", caller, allow_half=False)
        D = None if D is None else as_inexact_array(D, "D", caller, allow_half=False)
        # Shapes are checked here, before any arithmetic that would broadcast them wrongly.
        check_shape(A, (None, None), "A", caller, "(n, n)")
        n = A.shape[0]
        check_shape(A, (n, n), "A", caller, "square (n, n)")
        m, p = _check_input_output_shapes(B, C, D, n, "A", caller)
        if M is not None:
            check_shape(M, (p, n, n), "M", caller, f"(p, n, n) with p = {p} from C, n = {n}")
        dtype = common_inexact_dtype(A, B, C, M, D)
        self.A = A.astype(dtype)
        self.B = B.astype(dtype)
        self.C = C.astype(dtype)
        self.M = None if M is None else (0.5 * (M + jnp.swapaxes(M, -1, -2))).astype(dtype)
        self.D = jnp.zeros((p, m), dtype) if D is None else D.astype(dtype)
        self.dt = _check_dt(dt, caller)

    @property
    def is_lti(self) -> bool:
        return self.M is None

    @property
    def state_matrix(self) -> Array:
        return self.A

    def to_dense(self) -> "LQOSystem":
        return self

    def realisation(self, caller: str) -> Realisation:
        """A real dense system is its own realisation (`W_j = I`, `S_j = M_j`)."""
        if jnp.iscomplexobj(self.A):
            raise TypeError(
                f"{caller}: h2 norms and Gramians are defined here for real-output systems: a "
                "real `LQOSystem` or a `DiagonalLQOSystem` (output Re(Cx)); got a complex "
                f"`LQOSystem` ({self.A.dtype})."
            )
        return Realisation(self.A, self.B, self.C, None, self.M, self.D, self.is_discrete, self.dt)

    def controllability_gramian_in_dense_coordinates(self, p: Array) -> Array:
        return p  # the realisation has the system's own coordinates

    def observability_gramian_in_dense_coordinates(self, q: Array) -> Array:
        return q

    def states(self, u: Array) -> Array:
        A, B = self.A, self.B

        def step(x, u_k):
            return A @ x + B @ u_k, x

        _, states = jax.lax.scan(step, jnp.zeros(self.n, A.dtype), u)
        return states

    def output(self, x: Array, u: Array) -> Array:
        """`y = C x + D u + [xᵀ M_j x]_j` for one state `x` (n,) and input `u` (m,)."""
        y = self.C @ x + self.D @ u.astype(self.D.dtype)
        if self.M is not None:
            y = y + jnp.einsum("i,jik,k->j", x, self.M, x)
        return y


class DiagonalLQOSystem(AbstractSystem):
    r"""A complex-diagonal system with real output, as in S4D / S5 / LRU layers.

    $$x_{k+1} = \operatorname{diag}(\lambda) x_k + B u_k
      \;(\text{or } \dot x = \lambda\odot x + Bu),
      \qquad y_j = \operatorname{Re}(C x)_j + (D u)_j
             + \sum_{l=1}^{k} \operatorname{Re}(F_{jl} x)\,\operatorname{Re}(G_{jl} x).$$

    The state `x` is complex, the input `u` and output `y` are real. The quadratic readout is a
    sum of `k` products of two real linear readouts per output: a gated / bilinear readout
    (GLU-style `Re(Fx) ⊙ Re(Gx)` for `k = 1`). It costs `O(p k n)` to store, where the
    equivalent dense `M` would cost `O(p n²)`.

    **Arguments:**

    - `poles`: the diagonal `λ`, shape `(n,)` (complex; real input is promoted).
    - `B`: input matrix, shape `(n, m)`, complex.
    - `C`: output matrix, shape `(p, n)`, complex.
    - `D`: real feedthrough, shape `(p, m)`; `None` means zero.
    - `F`, `G`: keyword-only quadratic readout factors, each of shape `(p, k, n)` (complex);
        both `None` (default) for an LTI system.
    - `dt`: keyword-only and required: `None` for continuous time, a positive number for
        discrete time (it is required because deep-SSM layers are usually discrete and a
        forgotten `dt` would silently mean continuous time).

    [`to_dense`][jaxlqo.DiagonalLQOSystem.to_dense] gives the exact realified
    [`jaxlqo.LQOSystem`][] with state `[Re x; Im x]`.
    """

    poles: Inexact[Array, " n"]
    B: Inexact[Array, "n m"]
    C: Inexact[Array, "p n"]
    D: Real[Array, "p m"]
    F: Inexact[Array, "p k n"] | None
    G: Inexact[Array, "p k n"] | None
    dt: float | None = eqx.field(static=True)

    def __init__(self, poles, B, C, D=None, *, F=None, G=None, dt):
        caller = "DiagonalLQOSystem"
        poles = as_inexact_array(poles, "poles", caller, allow_half=False)
        B = as_inexact_array(B, "B", caller, allow_half=False)
        C = as_inexact_array(C, "C", caller, allow_half=False)
        D = None if D is None else as_inexact_array(D, "D", caller, allow_half=False)
        if (F is None) != (G is None):
            raise ValueError(f"{caller}: pass both `F` and `G` (the quadratic readout) or neither.")
        F = None if F is None else as_inexact_array(F, "F", caller, allow_half=False)
        G = None if G is None else as_inexact_array(G, "G", caller, allow_half=False)
        check_shape(poles, (None,), "poles", caller, "(n,)")
        n = poles.shape[0]
        m, p = _check_input_output_shapes(B, C, D, n, "poles", caller)
        if D is not None and jnp.iscomplexobj(D):
            raise TypeError(f"{caller}: `D` must be real (the output is real); got {D.dtype}.")
        if F is not None:
            check_shape(F, (p, None, n), "F", caller, f"(p, k, n) with p = {p}, n = {n}")
            check_shape(G, F.shape, "G", caller, "the shape of `F`")
        dtype = common_inexact_dtype(poles, B, C, F, G, D)
        with jax.numpy_dtype_promotion("standard"):  # deliberate real -> complex promotion
            cdtype = jnp.result_type(dtype, jnp.complex64)
        rdtype = jnp.finfo(cdtype).dtype
        self.poles = poles.astype(cdtype)
        self.B = B.astype(cdtype)
        self.C = C.astype(cdtype)
        self.D = jnp.zeros((p, m), rdtype) if D is None else D.astype(rdtype)
        self.F = None if F is None else F.astype(cdtype)
        self.G = None if G is None else G.astype(cdtype)
        self.dt = _check_dt(dt, caller)

    @property
    def is_lti(self) -> bool:
        return self.F is None

    @property
    def quadratic_readout(self) -> tuple[Array, Array] | None:
        """`(F, G)`, or `None` for an LTI system (the constructor sets both or neither)."""
        if self.F is None:
            return None
        assert self.G is not None
        return self.F, self.G

    @property
    def state_matrix(self) -> Array:
        return self.poles

    def realisation(self, caller: str) -> Realisation:
        """The diagonal system with poles `[λ; λ̄]` and state `[x; x̄]` (`_realisation.py`)."""
        poles = jnp.concatenate([self.poles, jnp.conj(self.poles)])
        b = jnp.concatenate([self.B, jnp.conj(self.B)], axis=0)
        c = doubled_rows(self.C)
        rows = core = None
        if (fg := self.quadratic_readout) is not None:
            rows = jnp.concatenate([doubled_rows(fg[0]), doubled_rows(fg[1])], axis=-2)
            core = product_core(fg[0].shape[-2], self.p, self.poles.dtype)
        return Realisation(poles, b, c, rows, core, self.D, self.is_discrete, self.dt)

    def controllability_gramian_in_dense_coordinates(self, p: Array) -> Array:
        t = doubling_transform(self.n, p.dtype)
        # x_c = T x_r  ⇒  P_r = T⁻¹ P_c T⁻ᴴ,  T⁻¹ = ½ Tᴴ
        return jnp.real(0.25 * t.conj().T @ p @ t)

    def observability_gramian_in_dense_coordinates(self, q: Array) -> Array:
        t = doubling_transform(self.n, q.dtype)
        return jnp.real(t.conj().T @ q @ t)  # Q_r = Tᴴ Q_c T

    def states(self, u: Array) -> Array:
        drive = u.astype(self.B.dtype) @ self.B.T  # (L, n): B u_k
        decay = jnp.broadcast_to(self.poles, drive.shape)

        # x_{k+1} = λ ⊙ x_k + b_k composes associatively:
        # (a₁, b₁) then (a₂, b₂) = (a₂a₁, a₂b₁ + b₂).
        def combine(first, second):
            a1, b1 = first
            a2, b2 = second
            return a2 * a1, a2 * b1 + b2

        _, after = jax.lax.associative_scan(combine, (decay, drive))  # x_1, …, x_L
        return jnp.concatenate([jnp.zeros_like(after[:1]), after[:-1]], axis=0)

    def output(self, x: Array, u: Array) -> Array:
        """`y = Re(C x) + D u + Σ_l Re(F_l x) Re(G_l x)` for one complex state `x` (n,)."""
        y = jnp.real(self.C @ x) + self.D @ u.astype(self.D.dtype)
        if (fg := self.quadratic_readout) is not None:
            y = y + jnp.sum(jnp.real(fg[0] @ x) * jnp.real(fg[1] @ x), axis=-1)
        return y

    def to_dense(self) -> LQOSystem:
        """The realified dense system with state `[Re x; Im x]` (2n states), exactly.

        With `x = a + i b` and `λ = α + i β`: `λx = (αa − βb) + i(βa + αb)`, and
        `Re(c x) = Re(c) a − Im(c) b`, so a complex row `c` becomes the real row `[Re c, −Im c]`.
        """
        alpha, beta = jnp.real(self.poles), jnp.imag(self.poles)
        A = jnp.block([[jnp.diag(alpha), -jnp.diag(beta)], [jnp.diag(beta), jnp.diag(alpha)]])
        B = jnp.concatenate([jnp.real(self.B), jnp.imag(self.B)], axis=0)
        C = _realify_rows(self.C)
        M = None
        if (fg := self.quadratic_readout) is not None:
            f, g = _realify_rows(fg[0]), _realify_rows(fg[1])  # (p, k, 2n)
            # Re(f x) Re(g x) = x̃ᵀ ½(f̃ g̃ᵀ + g̃ f̃ᵀ) x̃ with x̃ = [Re x; Im x].
            M = 0.5 * (jnp.einsum("jli,jlk->jik", f, g) + jnp.einsum("jli,jlk->jik", g, f))
        return LQOSystem(A, B, C, M, self.D, dt=self.dt)


def _realify_rows(c: Array) -> Array:
    """Map complex rows `c` (…, n) to real rows `[Re c, −Im c]` (…, 2n): `Re(c x) = c̃ x̃`."""
    return jnp.concatenate([jnp.real(c), -jnp.imag(c)], axis=-1)


def with_input_factor(sys: "DiagonalLQOSystem", factor: Array | None) -> "DiagonalLQOSystem":
    """The system driven through `factor`: input matrix `B R` (kernels `h R`, `K (R ⊗ R)`).

    Used for input weights (`R = W^{1/2}`: the error for inputs coloured by `W`); `None`
    leaves the system as it is.
    """
    if factor is None:
        return sys
    return eqx.tree_at(lambda s: s.B, sys, sys.B @ factor.astype(sys.B.dtype))
