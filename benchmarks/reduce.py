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
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
import scipy.signal as ss  # noqa: E402
from _timing import print_table  # noqa: E402

import jaxlqo as lqo  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"
STEPS = {"build": 0.1, "CDplayer": 1e-3, "heat_cont": 1e-3, "iss1R": 0.05, "beam": 0.05}


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


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def run(models, ranks, horizon, max_steps):
    records, rows = [], []
    systems = [(m, slicot(m)) for m in models] + [("ssm-layer n=192", ssm_layer())]
    for name, fom in systems:
        for r in ranks:
            if r >= fom.n:
                continue
            (bt, _), t_bt = timed(lambda: lqo.balanced_truncation(fom, r, horizon=horizon))
            sol, t_red = timed(lambda: lqo.reduce(fom, r, horizon=horizon, max_steps=max_steps))
            tl, t_tl = timed(lambda: lqo.tlh2(fom, r, horizon=horizon, max_steps=max_steps))
            e_bt = float(lqo.h2_error(fom, bt, horizon=horizon))
            e_red = float(lqo.h2_error(fom, sol.value, horizon=horizon))
            e_tl = float(lqo.h2_error(fom, tl.value, horizon=horizon))
            stable_tl = bool(tl.stats["stable"])
            rec = {
                "model": name, "r": r, "bt_error": e_bt, "reduce_error": e_red, "tlh2_error": e_tl,
                "tlh2_stable": stable_tl, "reduce_stable": bool(lqo.is_stable(sol.value)),
                "bt_s": t_bt, "reduce_s": t_red, "tlh2_s": t_tl, "ratio": e_red / e_bt,
            }
            records.append(rec)
            rows.append([name, r, e_bt, e_red, e_tl, "yes" if stable_tl else "NO", rec["ratio"], t_bt, t_red, t_tl])
            print_table("", ["model", "r", "BT err", "reduce err", "TLH2 err", "TLH2 stable", "reduce/BT", "BT s", "reduce s", "TLH2 s"], rows[-1:])
    print_table(
        f"time-limited h2 error over {horizon} steps (discrete time; times include compilation)",
        ["model", "r", "BT err", "reduce err", "TLH2 err", "TLH2 stable", "reduce/BT", "BT s", "reduce s", "TLH2 s"],
        rows,
    )
    return records


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="build,CDplayer,heat_cont,iss1R,beam")
    parser.add_argument("--ranks", default="2,4,8,16,32")
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    records = run(models, [int(r) for r in args.ranks.split(",")], args.horizon, args.max_steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()
