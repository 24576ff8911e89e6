"""Training throughput: tokens/s of value + gradient of a deep-SSM classifier's loss.

    python -m benchmarks.training [--quick] [--sizes H:n:L,...] [--batch 16] [--layers 4]

Three formulations of the same network (encoder, `layers` × [complex-diagonal LQO block with
a rank-1 quadratic readout, GELU, residual, LayerNorm], mean pool, head), same parameters,
same batch, float32, in one run:

- `jaxlqo` — `jaxlqo.ssm.cross_entropy` (what `jaxlqo.ssm.train` differentiates:
  `batched_logits`, batched real GEMMs and a backend-suited scan);
- `S5 scan` — a reference written on S5's own formulation (`apply_ssm` of lindermanlab/S5:
  per sequence `B u_k` by `vmap` of a matrix–vector product, `lax.associative_scan` with the
  binary operator `(a_i, b_i) ∘ (a_j, b_j) = (a_j a_i, a_j b_i + b_j)`, `C x_k` by `vmap`;
  sequences batched by `vmap`), written here from that definition;
- `vmap(model)` — the per-sequence model `jax.vmap(model)` (jaxlqo's path before the fast one).

Correctness first: the three losses must agree (float32 rounding) before anything is timed.
Goal (issue 12): jaxlqo ≥ 3× the S5-scan reference on CPU.
"""

import argparse
import math

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._timing import measure


def s5_reference_logits(model, inputs):
    """The logits of `model` on a batch, written on S5's scan formulation (see module doc)."""

    def binary_operator(q_i, q_j):
        a_i, b_i = q_i
        a_j, b_j = q_j
        return a_j * a_i, a_j * b_i + b_j

    def layer_apply(layer, s):  # one sequence (L, H)
        lam = layer.poles
        B = lax.complex(layer.B_re, layer.B_im)
        C = lax.complex(layer.C_re, layer.C_im)
        F = lax.complex(layer.F_re, layer.F_im)[:, 0]  # (H, n): rank-1 readout
        G = lax.complex(layer.G_re, layer.G_im)[:, 0]
        Bu = jax.vmap(lambda u: B @ u.astype(B.dtype))(s)
        elements = jnp.broadcast_to(lam, Bu.shape)
        _, xs = lax.associative_scan(binary_operator, (elements, Bu))
        xs = jnp.concatenate([jnp.zeros_like(xs[:1]), xs[:-1]])  # strictly causal x_k
        y = jax.vmap(lambda x, u: (C @ x).real + layer.D @ u + (F @ x).real * (G @ x).real)(xs, s)
        return jax.vmap(layer.norm)(s + jax.nn.gelu(y, approximate=False))

    def one(u):
        s = jax.vmap(model.encoder)(u)
        for layer in model.layers:
            s = layer_apply(layer, s)
        return model.head(jnp.mean(s, axis=0))

    return jax.vmap(one)(inputs)


def _loss(logits_fn):
    def loss(model, inputs, labels):
        logits = logits_fn(model, inputs)
        return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))

    return loss


def run(sizes, batch: int, layers: int, repeats: int = 3) -> list[dict]:
    import jaxlqo.ssm as ssm

    formulations = {
        "jaxlqo": ssm.cross_entropy,
        "S5 scan": _loss(s5_reference_logits),
        "vmap(model)": _loss(lambda m, x: jax.vmap(m)(x)),
    }
    rows = []
    for H, n, L in sizes:
        model = ssm.DeepSSM(
            key=jax.random.key(0), d_in=1, H=H, n=n, layers=layers, n_classes=10, dtype="float32"
        )
        rng = np.random.default_rng(0)
        inputs = jnp.asarray(rng.standard_normal((batch, L, 1)), jnp.float32)
        labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
        value_grads = {
            name: eqx.filter_jit(eqx.filter_value_and_grad(fn)) for name, fn in formulations.items()
        }
        values = {name: float(f(model, inputs, labels)[0]) for name, f in value_grads.items()}
        reference = values["S5 scan"]
        for name, value in values.items():
            if not math.isclose(value, reference, rel_tol=1e-4):
                raise AssertionError(
                    f"{name} loss {value} differs from the S5 reference {reference}"
                )
        timings = {
            name: measure(f, model, inputs, labels, repeats=repeats)
            for name, f in value_grads.items()
        }
        tokens = batch * L
        for name, t in timings.items():
            rows.append(
                {
                    "H": H,
                    "n": n,
                    "L": L,
                    "batch": batch,
                    "layers": layers,
                    "formulation": name,
                    "tokens_per_s": tokens / t["median_s"],
                    "median_s": t["median_s"],
                    "compile_s": t["compile_s"],
                    "recompiles": t["recompiles"],
                    "speedup_vs_s5": timings["S5 scan"]["median_s"] / t["median_s"],
                }
            )
    return rows


def report(rows: list[dict]) -> None:
    print(
        f"\ntraining value+grad (float32, backend {jax.default_backend()}): tokens/s, "
        "speed-up vs the S5-scan reference"
    )
    print(
        f"{'H':>4} {'n':>4} {'L':>5} {'formulation':<12} {'tokens/s':>10} {'×S5':>6} "
        f"{'compile s':>9} {'recompiles':>10}"
    )
    for r in rows:
        print(
            f"{r['H']:>4} {r['n']:>4} {r['L']:>5} {r['formulation']:<12} "
            f"{r['tokens_per_s']:>10.0f} {r['speedup_vs_s5']:>6.2f} {r['compile_s']:>9.1f} "
            f"{r['recompiles']:>10}"
        )


def _parse_sizes(text: str):
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training")
    parser.add_argument("--quick", action="store_true", help="one small size")
    parser.add_argument("--sizes", default="64:64:1024,64:64:2048,128:64:1024")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args(argv)
    sizes = [(32, 32, 256)] if args.quick else _parse_sizes(args.sizes)
    rows = run(sizes, args.batch, args.layers)
    report(rows)
    return rows


if __name__ == "__main__":
    main()
