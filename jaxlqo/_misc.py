"""Small helpers shared by every layer: dtype promotion and input validation."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array


def default_float_dtype():
    """The float dtype JAX uses for Python floats (float64 under `jax_enable_x64`)."""
    return jnp.asarray(0.0).dtype


def as_inexact_array(x, name: str, caller: str, *, allow_half: bool = True) -> Array:
    """Convert `x` to a JAX array with an inexact dtype.

    Integer and boolean arrays are promoted to the default float dtype *before* any arithmetic,
    so a `uint16` matrix can never overflow. Object and string arrays are rejected, and with
    `allow_half=False` so are floats narrower than 32 bits (float16, bfloat16, float8).
    """
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    if jnp.issubdtype(dtype, jnp.inexact):
        if not allow_half and jnp.finfo(dtype).bits < 32:
            raise TypeError(
                f"{caller}: argument `{name}` has dtype {jnp.dtype(dtype).name}; systems need "
                "float32 or float64 (or complex64 / complex128): in half precision the "
                "Gramian and h2 computations lose every digit (ε ≈ 1e-3, 8e-3 for bfloat16). "
                f"Cast it first, e.g. `{name}.astype(jnp.float32)`."
            )
        return jnp.asarray(x)
    if jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_):
        return jnp.asarray(x, dtype=default_float_dtype())
    raise TypeError(
        f"{caller}: argument `{name}` has dtype {dtype}; expected a real or complex numeric array."
    )


def common_inexact_dtype(*arrays):
    """The dtype every array is cast to before they meet (explicit, so strict promotion passes).

    The common dtype is computed with JAX's standard promotion lattice even when the caller has
    set `jax_numpy_dtype_promotion="strict"`: mixing e.g. real poles with a complex `B` is a
    documented, deliberate promotion here, and every array is then cast to it explicitly.
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*[a.dtype for a in arrays if a is not None])


def check_shape(x, expected: tuple, name: str, caller: str, meaning: str = "") -> None:
    """Raise `ValueError` naming the argument, the expected and the received shape.

    `expected` holds ints (fixed sizes) or `None` (any size).
    """
    ok = x.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, x.shape, strict=True)
    )
    if not ok:
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(
            f"{caller}: argument `{name}` must have shape {pretty}{extra}; got shape {x.shape}."
        )


def promoted_dtype(*dtypes):
    """The common dtype of `dtypes` under JAX's standard lattice (a deliberate promotion)."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*dtypes)


def complex_dtype(dtype):
    """The complex counterpart of a real dtype (a complex dtype is returned as is)."""
    return promoted_dtype(dtype, jnp.complex64)
