"""Benchmark: balanced truncation, TLH2 and `reduce` on SLICOT models and deep-SSM layers.

    python benchmarks/reduce.py [--models build,CDplayer,heat_cont,iss1R,beam]
                                [--ranks 2,4,8,16,32] [--horizon 100] [--max-steps 200] [--json f]

SLICOT models are discretised by zero-order hold (dt chosen per model so the spectral radius
is < 1) and reduced with the time-limited objective over `horizon` steps; a deep-SSM-sized
diagonal layer (H = 16 channels, n = 192 states) too. Prints the time and the final
time-limited h2 error of each method, and the ratio reduce / BT (≤ 1 by construction).
"""

import argparse
import json
import pathlib
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import numpy as np
import scipy.signal as ss

import jaxlqo as lqo
from benchmarks._timing import peak_rss_mb, print_table

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"
STEPS = {"build": 0.1, "CDplayer": 1e-3, "heat_cont": 1e-3, "iss1R": 0.05, "beam": 0.05}
_COLUMNS = [
    "model",
    "r",
    "BT err",
    "reduce err",
    "TLH2 err",
    "TLH2 stable",
    "reduce/BT",
    "BT s",
    "reduce s",
    "TLH2 s",
]


def slicot(name):
    with np.load(DATA / f"{name}.npz") as f:
        a, b, c = f["A"], f["B"], f["C"]
    ad, bd, cd, _, _ = ss.cont2discrete((a, b, c, np.zeros((c.shape[0], b.shape[1]))), STEPS[name])
    return lqo.LQOSystem(ad, bd, cd, dt=STEPS[name])


def ssm_layer(n=192, h=16, seed=0):
    rng = np.random.default_rng(seed)
    lam = np.exp(-np.exp(rng.uniform(-4, -1, n)) + 1j * rng.uniform(0, np.pi, n))
    cn = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)  # noqa: E731
    return lqo.DiagonalLQOSystem(lam, cn(n, h) / np.sqrt(h), cn(h, n) / np.sqrt(n), dt=1.0)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - start


def run(models, ranks, horizon, max_steps):
    records, rows = [], []
    systems = [(m, slicot(m)) for m in models] + [("ssm-layer n=192", ssm_layer())]
    for name, fom in systems:
        for r in ranks:
            if r >= fom.n:
                continue
            bt_sol, t_bt = timed(lqo.balanced_truncation, fom, r, horizon=horizon)
            bt = bt_sol.value
            sol, t_red = timed(lqo.reduce, fom, r, horizon=horizon, max_steps=max_steps)
            tl, t_tl = timed(lqo.tlh2, fom, r, horizon=horizon, max_steps=max_steps)
            e_bt = float(lqo.h2_error(fom, bt, horizon=horizon))
            e_red = float(lqo.h2_error(fom, sol.value, horizon=horizon))
            e_tl = float(lqo.h2_error(fom, tl.value, horizon=horizon))
            stable_tl = bool(tl.stats["stable"])
            rec = {
                "model": name,
                "r": r,
                "bt_error": e_bt,
                "reduce_error": e_red,
                "tlh2_error": e_tl,
                "tlh2_stable": stable_tl,
                "reduce_stable": bool(lqo.is_stable(sol.value)),
                "bt_s": t_bt,
                "reduce_s": t_red,
                "tlh2_s": t_tl,
                "ratio": e_red / e_bt,
            }
            records.append(rec)
            rows.append(
                [
                    name,
                    r,
                    e_bt,
                    e_red,
                    e_tl,
                    "yes" if stable_tl else "NO",
                    rec["ratio"],
                    t_bt,
                    t_red,
                    t_tl,
                ]
            )
            print_table(
                "",
                _COLUMNS,
                rows[-1:],
            )
    print_table(
        f"time-limited h2 error over {horizon} steps (discrete time; times include compilation)",
        _COLUMNS,
        rows,
    )
    return records


def run_s5(quick=False, layers=6, channels=256, states=192, rank=16, max_steps=200):
    """`lqo.reduce` of every layer of an S5-IMDb-sized model (a loop over layers), end to end.

    Also balanced truncation (all layers in one vmapped call) and python-control's `balred`
    (which needs slycot). The loop is used because `reduce`'s L-BFGS while-loop under `vmap`
    runs every layer to the slowest layer's step count (and each line search to the longest).
    """
    from benchmarks.h2 import layer, stack

    if quick:
        layers, channels, states, rank, max_steps = 2, 32, 48, 8, 50
    rng = np.random.default_rng(0)
    foms = [layer(rng, states, channels) for _ in range(layers)]
    start = time.perf_counter()
    sols = [jax.block_until_ready(lqo.reduce(f, rank, max_steps=max_steps)) for f in foms]
    t_loop = time.perf_counter() - start
    first = None
    errors = []
    for f, sol in zip(foms, sols, strict=True):
        bt = lqo.balanced_truncation(f, rank).value
        errors.append((float(lqo.h2_error(f, bt)), float(lqo.h2_error(f, sol.value))))
        assert errors[-1][1] <= errors[-1][0] * (1 + 1e-6), "reduce worse than its BT init"
    bt_fn = jax.jit(jax.vmap(lambda f: lqo.balanced_truncation(f, rank).value))
    stacked = stack(foms)
    start = time.perf_counter()
    jax.block_until_ready(bt_fn(stacked))
    t_bt_first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(bt_fn(stacked))
    t_bt = time.perf_counter() - start
    first = time.perf_counter()
    jax.block_until_ready(lqo.reduce(foms[0], rank, max_steps=max_steps))
    t_one_cached = time.perf_counter() - first
    try:
        import control

        d = foms[0].to_dense()
        control.balred(control.ss(*(np.asarray(x) for x in (d.A, d.B, d.C, d.D)), 1.0), 2 * rank)
        balred = "available"
    except Exception as e:  # ControlSlycot (an ImportError): balred needs slycot's ab09ad
        if "slycot" in str(e).lower():
            balred = "n/a (needs slycot)"
        elif isinstance(e, ImportError):
            balred = "n/a (python-control not installed)"
        else:
            balred = f"n/a ({e})"
    rows = [
        [f"lqo.reduce, loop over {layers} layers (incl. compile)", t_loop, sols[0].stats["steps"]],
        ["lqo.reduce, one layer, compiled", t_one_cached, ""],
        [f"lqo.balanced_truncation, vmap over {layers} layers (first call)", t_bt_first, ""],
        [f"lqo.balanced_truncation, vmap over {layers} layers", t_bt, ""],
        ["python-control balred", balred, ""],
    ]
    print_table(
        f"reduce: {layers} layers × {channels} channels × {states} states → {rank} "
        f"(max_steps={max_steps}; h2 error BT → reduce, layer 0: {errors[0][0]:.4g} → "
        f"{errors[0][1]:.4g}); peak RSS {peak_rss_mb():.0f} MiB",
        ["path", "seconds", "L-BFGS steps (layer 0)"],
        rows,
    )
    return {
        "layers": layers,
        "channels": channels,
        "states": states,
        "rank": rank,
        "max_steps": max_steps,
        "reduce_loop_s": t_loop,
        "reduce_one_layer_cached_s": t_one_cached,
        "bt_vmap_first_s": t_bt_first,
        "bt_vmap_s": t_bt,
        "balred": balred,
        "errors_bt_reduce": errors,
        "peak_rss_mb": peak_rss_mb(),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="build,CDplayer,heat_cont,iss1R,beam")
    parser.add_argument("--ranks", default="2,4,8,16,32")
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--json", default=None)
    parser.add_argument("--s5", action="store_true", help="the S5-IMDb-sized model instead")
    parser.add_argument("--quick", action="store_true", help="with --s5: small sizes")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    if args.s5:
        record = run_s5(quick=args.quick)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(record, f, indent=2)
        return
    models = [m for m in args.models.split(",") if m]
    records = run(models, [int(r) for r in args.ranks.split(",")], args.horizon, args.max_steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()
