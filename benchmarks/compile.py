"""Compile time of jaxlqo's basic programs, with XLA's default options and with the fast ones.

    python -m benchmarks.compile [--sizes 8,48] [--json FILE]

For each XLA configuration (default; `jaxlqo._xla_flags.FAST_COMPILATION_FLAGS`) a fresh
Python process compiles and runs, at each size n: one dense continuous and one discrete
Lyapunov solve, one Sylvester solve `A X + X B = C` with `B` of order 2, and the value +
gradient of a dense discrete `h2_error` against a reduced model of order 4. Reported per
program: trace + lowering + XLA compile time of the first call (JAX's monitoring events,
as in every other suite), the warm median, and the ratio fast / default of both. A fresh
process per configuration because XLA reads its flags once, when the backend starts.
"""

import argparse
import json
import os
import subprocess
import sys


def _programs(n: int):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlqo as lqo

    rng = np.random.default_rng(n)
    a = jnp.asarray(rng.standard_normal((n, n)) / np.sqrt(n) * 0.5 - np.eye(n))
    q = jnp.asarray(np.eye(n))
    stein = jnp.asarray(rng.standard_normal((n, n)) / np.sqrt(n) * 0.5)
    b2 = jnp.asarray(-np.eye(2) + 0.1 * rng.standard_normal((2, 2)))
    c = jnp.asarray(rng.standard_normal((n, 2)))
    fom = lqo.LQOSystem(
        stein,
        jnp.asarray(rng.standard_normal((n, 2))),
        jnp.asarray(rng.standard_normal((3, n))),
        dt=1.0,
    )
    rom = lqo.LQOSystem(fom.A[:4, :4], fom.B[:4], fom.C[:, :4], dt=1.0)

    def h2_value_and_grad(fom, rom):
        return jax.value_and_grad(lambda r: lqo.h2_error(fom, r))(rom)

    return {
        "solve_continuous_lyapunov": (lqo.solve_continuous_lyapunov, (a, q)),
        "solve_discrete_lyapunov": (lqo.solve_discrete_lyapunov, (stein, q)),
        "solve_sylvester (n × 2)": (lqo.solve_sylvester, (a, b2, c)),
        "h2_error + gradient (r = 4)": (h2_value_and_grad, (fom, rom)),
    }


def _worker(sizes: list[int]) -> list[dict]:
    """Runs inside the configured process: one record per (program, n)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from benchmarks._timing import measure

    rows = []
    for n in sizes:
        for name, (fn, args) in _programs(n).items():
            timing = measure(jax.jit(fn), *args, repeats=20)
            rows.append({"program": name, "n": n, **timing})
    return rows


def run(sizes: list[int]) -> list[dict]:
    from jaxlqo._xla_flags import FAST_COMPILATION_FLAGS

    records = []
    for config, flags in {"default": (), "fast": FAST_COMPILATION_FLAGS}.items():
        env = dict(os.environ)
        env["XLA_FLAGS"] = " ".join(
            [f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" in f]
            + list(flags)
        )
        code = (
            "import json; from benchmarks.compile import _worker; "
            f"print(json.dumps(_worker({sizes!r})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        for row in json.loads(out.strip().splitlines()[-1]):
            records.append({"config": config, "xla_flags": list(flags), **row})
    return records


def report(records: list[dict]) -> None:
    by_key = {(r["program"], r["n"], r["config"]): r for r in records}
    print(
        f"{'program':30s} {'n':>4s} {'compile s':>10s} {'fast':>7s} {'ratio':>6s}"
        f" {'warm ms':>9s} {'fast':>8s} {'ratio':>6s} {'recompiles':>10s}"
    )
    for program, n, config in by_key:
        if config != "default":
            continue
        d, f = by_key[(program, n, "default")], by_key[(program, n, "fast")]
        print(
            f"{program:30s} {n:4d} {d['compile_s']:10.2f} {f['compile_s']:7.2f}"
            f" {f['compile_s'] / d['compile_s']:6.2f} {d['median_s'] * 1e3:9.3f}"
            f" {f['median_s'] * 1e3:8.3f} {f['median_s'] / d['median_s']:6.2f}"
            f" {d['recompiles'] + f['recompiles']:10d}"
        )


def main():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile")
    parser.add_argument("--sizes", default="8,48")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    records = run([int(s) for s in args.sizes.split(",")])
    report(records)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()
