"""Generate the documentation's figures (run by docs/hooks.py before every `mkdocs build`).

Usage: python docs/scripts/make_figures.py OUT_DIR

1. bode_build.png: Bode magnitude of the SLICOT "building" model (n = 48) and its reductions
   (balanced truncation at r = 8 and 16, `lqo.reduce` at r = 8);
2. hsv.png: Hankel singular values of the SLICOT "building" and "heat_cont" models;
3. ssm_accuracy.png: test accuracy vs share of parameters removed for the bundled deep SSM,
   read from recorded tables (docs/data/compression.json and the model's digits.json) — no
   compression is run here.
"""

import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxlqo as lqo  # noqa: E402
from jaxlqo._xla_flags import use_fast_compilation  # noqa: E402

# This script is compilation-bound (a few small programs, each run once): compile with less
# optimisation (jaxlqo/_xla_flags.py; 26 s -> 15 s here). Before the first array operation.
use_fast_compilation()
jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def magnitude(sys, w):
    A, B, C = (np.asarray(x) for x in (sys.A, sys.B, sys.C))
    eye = np.eye(A.shape[0])
    return np.array([abs((C @ np.linalg.solve(1j * wk * eye - A, B))[0, 0]) for wk in w])


def bode(out: Path):
    d = np.load(DATA / "build.npz")
    fom = lqo.LQOSystem(d["A"], d["B"], d["C"])
    w = np.logspace(-1, 3, 600)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.loglog(w, magnitude(fom, w), "k", lw=2, label=f"full model (n = {fom.n})")
    # jit: one compilation is cheaper than op-by-op dispatch of the checks and solves.
    bt = jax.jit(lqo.balanced_truncation, static_argnums=1)
    for r, style in ((8, "C0--"), (16, "C1--")):
        rom = bt(fom, r).value
        ax.loglog(w, magnitude(rom, w), style, label=f"balanced truncation, r = {r}")
    rom = jax.jit(lambda s: lqo.reduce(s, 8, max_steps=20).value)(fom)
    ax.loglog(w, magnitude(rom, w), "C2:", lw=2, label="lqo.reduce (h2-optimal), r = 8")
    ax.set_xlabel("frequency ω [rad/s]")
    ax.set_ylabel("|G(iω)|")
    ax.set_title('SLICOT "building": Bode magnitude')
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bode_build.png", dpi=110)
    plt.close(fig)


def hsv(out: Path):
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("build", "heat_cont"):
        d = np.load(DATA / f"{name}.npz")
        sys = lqo.LQOSystem(d["A"], d["B"], d["C"])
        s = np.asarray(jax.jit(lqo.hankel_singular_values)(sys))
        s = s[s / s[0] > 1e-15]  # below: rounding noise
        ax.semilogy(np.arange(1, s.size + 1), s / s[0], ".-", label=f"{name} (n = {sys.n})")
    ax.set_xlabel("index i")
    ax.set_ylabel("σᵢ / σ₁")
    ax.set_title("Hankel singular values (lqo.hankel_singular_values)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "hsv.png", dpi=110)
    plt.close(fig)


def ssm_accuracy(out: Path):
    meta = json.loads((ROOT / "jaxlqo" / "ssm" / "weights" / "digits.json").read_text())
    table = json.loads((ROOT / "docs" / "data" / "compression.json").read_text())
    arch, counts = meta["architecture"], meta["parameter_counts"]
    n, layers = arch["n"], arch["layers"]
    per_state = counts["ssm"] / (n * layers)  # B, C, F, G columns, ν, θ of one complex state

    def removed(rank):
        return 100 * per_state * (n - int(rank)) * layers / counts["total"]

    curves = dict(table["test_accuracy_by_method_and_rank"])
    recorded = meta.get("compressibility", {})
    if recorded.get("method") == "bt":  # the model's own record extends the bt curve
        curves["bt"] = {**recorded["test_accuracy_by_rank"], **curves.get("bt", {})}
    labels = {
        "bt": "balanced truncation (bt)",
        "h2-input": "layerwise h2, input-aware (h2-input)",
        "bound-input": "bound-weighted, input-aware (bound-input)",
    }
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, by_rank in curves.items():
        ranks = sorted(by_rank, key=int, reverse=True)
        x = [removed(r) for r in ranks]
        y = [100 * by_rank[r] for r in ranks]
        ax.plot(x, y, "o-", label=labels.get(method, method))
        if method == "bt":
            for r, xi, yi in zip(ranks, x, y, strict=True):
                ax.annotate(
                    f"r={r}", (xi, yi), textcoords="offset points", xytext=(4, -12), fontsize=7
                )
    ax.axhline(
        100 * meta["test_accuracy"],
        color="k",
        lw=1,
        ls="--",
        label=f"uncompressed ({100 * meta['test_accuracy']:.1f}%)",
    )
    ax.set_xlabel("trainable parameters removed [%]")
    ax.set_ylabel("test accuracy [%]")
    ax.set_title("Deep SSM (sequential digits), compression without retraining")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "ssm_accuracy.png", dpi=110)
    plt.close(fig)


def main(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for make in (ssm_accuracy, hsv, bode):
        t = time.perf_counter()
        make(out)
        print(f"make_figures: {make.__name__} {time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
