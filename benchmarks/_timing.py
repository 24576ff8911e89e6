"""Shared timing helpers: compile and run timed separately, medians of repeats, recompiles.

Compile time is measured from JAX's own monitoring events (the backend-compile and
jaxpr-trace durations reported during the first call), so it excludes the run itself.
Recompilation is detected the same way: every timed repeat must trigger zero compilations.
"""

import contextlib
import resource
import sys
import time

import jax
import jax.monitoring
import numpy as np

_COMPILE_EVENTS = (
    "/jax/core/compile/backend_compile_duration",
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
)
_BACKEND_COMPILE = _COMPILE_EVENTS[0]


class _CompileLog:
    """Accumulates JAX compile events; one global listener, reset per measurement."""

    def __init__(self):
        self.seconds = 0.0
        self.compiles = 0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            self.seconds += duration
        if event == _BACKEND_COMPILE:
            self.compiles += 1

    @contextlib.contextmanager
    def watch(self):
        start_s, start_n = self.seconds, self.compiles
        box = {}
        yield box
        box["seconds"] = self.seconds - start_s
        box["compiles"] = self.compiles - start_n


COMPILES = _CompileLog()


def measure(fn, *args, repeats: int = 5, min_time: float = 0.0) -> dict:
    """Time `fn(*args)`: the first call (trace + compile + run), then `repeats` timed calls.

    Returns `first_s`, `compile_s` (trace, lowering and XLA compile of the first call, from
    JAX's monitoring events), `median_s`, `min_s`, `repeats` and `recompiles` (compilations
    during the timed calls: must be 0 for a function called again with the same shapes).
    With `min_time`, repeats continue until their total reaches it (for very fast calls).
    """
    with COMPILES.watch() as first:
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        first_s = time.perf_counter() - start
    times = []
    with COMPILES.watch() as later:
        while len(times) < repeats or sum(times) < min_time:
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
            if len(times) >= 1000:
                break
    return {
        "first_s": first_s,
        "compile_s": first["seconds"],
        "median_s": float(np.median(times)),
        "min_s": float(np.min(times)),
        "repeats": len(times),
        "recompiles": later["compiles"],
    }


def first_call(fn, *args):
    """`(fn(*args), compile seconds)` for the first (compiling) call of a jitted function."""
    with COMPILES.watch() as box:
        out = jax.block_until_ready(fn(*args))
    return out, box["seconds"]


def time_call(fn, *args, repeats: int = 5) -> float:
    """Median wall time (s) of `fn(*args)` after one warm-up call (which compiles)."""
    return measure(fn, *args, repeats=repeats)["median_s"]


def compile_time(fn, *args) -> float:
    """Wall time (s) of the first call of a fresh jitted function (trace + compile + run)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB), from `getrusage`."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mb() -> float:
    """Current resident memory (MiB), from /proc (Linux); `nan` elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def device_memory_mb() -> dict:
    """`peak_bytes_in_use` / `bytes_in_use` of the default device in MiB, where JAX reports it."""
    stats = jax.devices()[0].memory_stats() or {}
    return {k: v / 2**20 for k, v in stats.items() if k in ("peak_bytes_in_use", "bytes_in_use")}


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(_fmt(x).rjust(w) for x, w in zip(row, widths, strict=True)))


def _fmt(x) -> str:
    if isinstance(x, float):
        if x != x:
            return "n/a"
        return f"{x:.3g}"
    return str(x)
