"""Shared timing helpers: compile and run timed separately, medians of repeats."""

import time

import jax
import numpy as np


def time_call(fn, *args, repeats: int = 5) -> float:
    """Median wall time (s) of `fn(*args)` after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compile_time(fn, *args) -> float:
    """Wall time (s) of the first call of a fresh jitted function (trace + compile + run)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(_fmt(x).rjust(w) for x, w in zip(row, widths)))


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)
