"""Run the benchmark suites: correctness first, then tables with medians and baselines.

    python -m benchmarks [--quick] [--float32] [--suites h2,batch,matrix,reduce,training,compile]
                         [--json FILE] [--host-devices N]

Suites: `h2` (S5-IMDb-sized h2 error + gradient: fast path, hoisted norm, sharded, dense,
NumPy and SciPy loops; peak memory), `batch` (10⁴ S4D channels, systems/s, vs python-control
and NumPy), `matrix` (Lyapunov solvers vs SciPy, python-control and jax.scipy), `reduce`
(`lqo.reduce` of the S5-sized model, looped over layers, and balanced truncation; python-control
`balred` needs slycot), `training` (tokens/s of a deep SSM's value + gradient, float32: jaxlqo's
batched path vs a reference on S5's scan formulation and `vmap(model)`), `compile` (compile and
warm times of one dense solve and one h2 error + gradient with XLA's default options and with
`jaxlqo._xla_flags.FAST_COMPILATION_FLAGS`, each in a fresh process). Every timed jitted
call reports its compile time separately and the number of recompilations during the timed
repeats (must be 0). Results are written as JSON
(default `benchmarks/results/<UTC timestamp>.json`) to compare across commits.

On a CPU host the suites run with `--host-devices` virtual devices (default: the number of
cores, at most 8) so the sharded rows (`lqo.map_layers`) have devices to use.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys


def _args():
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--float32", action="store_true", help="float32 instead of float64")
    parser.add_argument("--suites", default="h2,batch,matrix,reduce,training,compile")
    parser.add_argument("--json", default=None, help="output file (default benchmarks/results/)")
    parser.add_argument("--host-devices", type=int, default=min(os.cpu_count() or 1, 8))
    return parser.parse_args()


def main():
    args = _args()
    flag = f"--xla_force_host_platform_device_count={args.host_devices}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    # Virtual devices can deadlock in jaxlib's batched LAPACK kernels unless XLA's intra-op
    # thread pool has spare threads (jaxlqo/_sharding.py): NPROC sizes it.
    os.environ.setdefault("NPROC", str(2 * args.host_devices))
    import jax  # noqa: E402  (after XLA_FLAGS)

    jax.config.update("jax_enable_x64", not args.float32)
    from benchmarks import BLAS_THREADS, batch, h2, matrix_equations  # noqa: E402

    suites = [s for s in args.suites.split(",") if s]
    print(
        f"jax {jax.__version__}, devices {jax.devices()}, x64={not args.float32}, "
        f"quick={args.quick}, BLAS threads {BLAS_THREADS or 'default'} (JAXLQO_BLAS_THREADS)"
    )
    results = {"meta": _meta(args, jax)}
    if "h2" in suites:
        size = (2, 64, 48, 8) if args.quick else (6, 256, 192, 16)
        # The vmapped realified dense path takes minutes at full size: quick runs only.
        record, rows = h2.run(*size, dense=args.quick, scipy_layers=None if args.quick else 2)
        h2.report(record, rows)
        results["h2"] = record
    if "batch" in suites:
        record, rows = batch.run(1000 if args.quick else 10_000, 64, 8)
        batch.report(record, rows)
        results["batch"] = record
    if "matrix" in suites:
        results["matrix"] = matrix_equations.run([16, 64] if args.quick else [16, 64, 256, 512])
    if "training" in suites:
        from benchmarks import training

        rows = training.run(
            [(32, 32, 256)] if args.quick else [(64, 64, 1024), (64, 64, 2048)], 16, 4
        )
        training.report(rows)
        results["training"] = rows
    if "reduce" in suites:
        results["reduce"] = _reduce_in_subprocess(args.quick)
    if "compile" in suites:
        from benchmarks import compile as compile_suite

        records = compile_suite.run([8] if args.quick else [8, 48])
        compile_suite.report(records)
        results["compile"] = records
    out = pathlib.Path(args.json) if args.json else _default_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults written to {out}")


def _reduce_in_subprocess(quick):
    """The reduce suite in a fresh process on one host device.

    Kept apart from the suites' virtual host devices, so it measures what a user on one CPU
    device gets. (On jaxlib 0.10.x it also hung there: the batched-LAPACK deadlock for which
    jaxlqo excludes 0.10.x; see docs/faq.md.) Run alone: `python -m benchmarks.reduce --s5
    [--quick]`.
    """
    import tempfile

    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "reduce.json"
        cmd = [sys.executable, "-m", "benchmarks.reduce", "--s5", "--json", str(out)]
        proc = subprocess.run(cmd + (["--quick"] if quick else []), env=env, check=False)
        if proc.returncode or not out.exists():
            print(f"reduce suite failed (exit code {proc.returncode})")
            return {"failed": proc.returncode}
        return json.loads(out.read_text())


def _default_path():
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return pathlib.Path(__file__).parent / "results" / f"{stamp}.json"


def _meta(args, jax):
    from benchmarks import BLAS_THREADS

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "commit": commit,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": not args.float32,
        "quick": args.quick,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "blas_threads": BLAS_THREADS,
    }


if __name__ == "__main__":
    main()
