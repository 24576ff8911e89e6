"""The `jaxlqo` command line: `jaxlqo compress` compresses a deep SSM and reports the result.

`jaxlqo compress` with no arguments loads the bundled sequential-digits model and data,
compresses it with every method over a sweep of ranks, and prints one table: method, rank,
share of trainable parameters removed, test accuracy without retraining, measured output
error and its proven bound (max over the test inputs). It writes a plot and, with `--json`,
the table as records.
"""

import argparse
import json
import os
import pathlib
import sys
import time


def _parse_list(text: str, kind=str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlqo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compress", help="compress a deep SSM and report accuracy and error bounds")
    c.add_argument(
        "--model",
        default="digits",
        help="a bundled model (digits, fashion_mnist) or a checkpoint path without suffix "
        "(default: digits)",
    )
    c.add_argument(
        "--dataset",
        default=None,
        choices=["digits", "fashion_mnist", "fashion-mnist"],
        help="test and calibration data (default: the data set the model was trained on)",
    )
    c.add_argument("--ranks", default=None, help="comma-separated ranks (default: a sweep)")
    c.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    c.add_argument("--horizon", type=int, default=None, help="time-limit in steps (default L)")
    c.add_argument("--calibration", type=int, default=256, help="unlabelled training sequences")
    c.add_argument("--max-steps", type=int, default=60, help="L-BFGS steps per layer")
    c.add_argument("--out", default="jaxlqo-compress", help="output folder for the plot")
    c.add_argument("--json", default=None, help="write the table as JSON records to this file")
    c.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N tests")
    c.add_argument("--no-plot", action="store_true", help="skip the plot")
    c.add_argument(
        "--fine-tune",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also fine-tune every compressed model for EPOCHS epochs (with labels) and report "
        "its accuracy as `fine_tuned_accuracy` (default 0: off)",
    )
    c.add_argument(
        "--from-scratch",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also train a model of each reduced size from scratch for EPOCHS epochs and report "
        "it as method `scratch` (default 0: off)",
    )
    c.add_argument(
        "--cache-dir",
        default=None,
        help="XLA compilation cache, reused by later runs (default: $JAXLQO_CACHE or "
        "~/.cache/jaxlqo/xla)",
    )
    c.add_argument("--no-cache", action="store_true", help="do not use a compilation cache")
    c.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="threads for NumPy/SciPy's BLAS, which runs jaxlib's LAPACK calls (default 1: no "
        "contention with XLA's own thread pool; 0 leaves the libraries' default)",
    )
    return parser


def _default_ranks(n: int) -> list[int]:
    """A sweep around the interesting range: 1/6, 1/4 and 1/3 of the states (8, 12, 16 of 48)."""
    return sorted({max(1, round(n * f)) for f in (1 / 6, 1 / 4, 1 / 3)})


def compress_main(args) -> list[dict]:
    import jax

    # An application entry point (not the library) chooses the precision: control
    # computations want float64, and the bundled weights are float64.
    jax.config.update("jax_enable_x64", True)
    if not args.no_cache:
        # Compilation dominates a sweep's first run; later runs load the compiled programs.
        default = pathlib.Path.home() / ".cache" / "jaxlqo" / "xla"
        cache = args.cache_dir or os.environ.get("JAXLQO_CACHE") or default
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import jax.numpy as jnp

    from . import ssm

    start = time.perf_counter()
    if args.model in ssm.BUNDLED_MODELS:
        model, metadata = ssm.load_default_model(args.model)
    else:
        model, metadata = ssm.load_checkpoint(args.model)
    dataset = (args.dataset or metadata.get("dataset") or "digits").replace("-", "_")
    if dataset == "digits":
        data = ssm.load_digits_sequences(metadata.get("split_seed") or 0)
    else:
        data = ssm.load_fashion_mnist_sequences(pool=metadata.get("pool") or 2)
    test_x, test_y = data["test_inputs"], data["test_labels"]
    if args.test_limit is not None:
        test_x, test_y = test_x[: args.test_limit], test_y[: args.test_limit]
        data = {**data, "test_inputs": test_x, "test_labels": test_y}
    calibration = jnp.asarray(data["train_inputs"][: args.calibration])
    test_x = jnp.asarray(test_x)
    n = max(layer.n for layer in model.layers)
    ranks = _parse_list(args.ranks, int) if args.ranks else _default_ranks(n)
    methods = _parse_list(args.methods) if args.methods else list(ssm.METHODS)
    for m in methods:
        if m not in ssm.METHODS:
            raise SystemExit(f"jaxlqo compress: unknown method {m!r}; choose from {ssm.METHODS}")
    original_accuracy = ssm.evaluate(model, test_x, test_y)
    total = model.trainable_parameter_count()
    print(
        f"model: {len(model.layers)} layers, H = {model.H}, n = {n}, {total} trainable "
        f"parameters; test accuracy {original_accuracy:.4f} on {len(test_y)} sequences",
        flush=True,
    )
    records = []
    jobs = [(m, r) for m in methods for r in ranks]
    progress = _progress(len(jobs))
    for method, rank in jobs:
        progress.set_description(f"{method} r={rank}")
        compressed, info = ssm.compress(
            model,
            rank,
            method=method,
            horizon=args.horizon,
            calibration=calibration,
            max_steps=args.max_steps,
            slots=max(ranks),
        )
        record = {"method": method, "rank": rank, "original_accuracy": original_accuracy}
        if compressed is None:  # an unstable block (TLH2): reported as such
            reduced = total - sum(layer.n - rank for layer in model.layers) * _per_state(model)
            record.update(
                params_removed=1 - reduced / total, accuracy=None, output_error=None,
                bound=None, stable=False,
            )
        else:
            removed = 1 - compressed.trainable_parameter_count() / total
            # Padded with dead states to the largest rank, every compressed model shares one
            # compiled evaluation, error and bound (same outputs, see ssm.pad_layers).
            padded = ssm.pad_layers(compressed, max(ranks))
            record.update(
                params_removed=removed,
                accuracy=ssm.evaluate(padded, test_x, test_y),
                output_error=float(jnp.max(ssm.output_error(model, padded, test_x))),
                bound=float(
                    jnp.max(ssm.output_error_bound(model, padded, test_x, horizon=args.horizon))
                ),
                stable=True,
            )
        if args.fine_tune and compressed is not None:
            record["fine_tuned_accuracy"] = _fine_tune(compressed, data, metadata, args.fine_tune)
        records.append(record)
        progress.update(1)
    progress.close()
    if args.from_scratch:
        for rank in ranks:
            records.append(_from_scratch(model, rank, data, metadata, args.from_scratch, total))
            records[-1]["original_accuracy"] = original_accuracy
    _print_table(records)
    out = pathlib.Path(args.out)
    if not args.no_plot:
        path = _plot(records, out)
        if path is not None:
            print(f"plot written to {path}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(records, indent=2))
        print(f"table written to {args.json}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return records


def _training_settings(metadata: dict, epochs: int) -> dict:
    training = metadata.get("training", {})
    return dict(
        epochs=epochs,
        batch_size=training.get("batch_size", 32),
        learning_rate=training.get("learning_rate", 3e-3),
        weight_decay=training.get("weight_decay", 0.01),
        progress=False,
    )


def _fine_tune(compressed, data, metadata: dict, epochs: int) -> float:
    """Accuracy after a short fine-tune of every parameter, at a tenth of the training rate."""
    from . import ssm

    settings = _training_settings(metadata, epochs)
    settings["learning_rate"] /= 10
    train = {k: data[k] for k in ("train_inputs", "train_labels")}
    tuned, _ = ssm.train(compressed, train, **settings)
    return ssm.evaluate(tuned, data["test_inputs"], data["test_labels"])


def _from_scratch(model, rank: int, data, metadata: dict, epochs: int, total: int) -> dict:
    """A model with `rank` states per layer trained from scratch with the original recipe."""
    import jax

    from . import ssm

    arch = dict(metadata.get("architecture", {}))
    init = metadata.get("init", {})
    small = ssm.DeepSSM(
        jax.random.key(metadata.get("seed", 0)),
        d_in=model.d_in,
        H=model.H,
        n=rank,
        layers=len(model.layers),
        n_classes=model.n_classes,
        quad_rank=arch.get("quad_rank", 1),
        norm_eps=arch.get("norm_eps", ssm.LAYER_NORM_EPS),
        dtype=model.dtype,
        **init,
    )
    train = {k: data[k] for k in ("train_inputs", "train_labels")}
    small, _ = ssm.train(small, train, **_training_settings(metadata, epochs))
    return {
        "method": "scratch",
        "rank": rank,
        "params_removed": 1 - small.trainable_parameter_count() / total,
        "accuracy": ssm.evaluate(small, data["test_inputs"], data["test_labels"]),
        "output_error": None,
        "bound": None,
        "stable": True,
    }


def _per_state(model) -> int:
    """Trainable real scalars per state of a layer's block (ν, θ, B, C, F, G columns)."""
    layer = model.layers[0]
    q = 0 if layer.F_re is None else layer.F_re.shape[1]
    return 2 + 4 * layer.H + 4 * layer.H * q


class _PlainProgress:
    def __init__(self, total):
        self.total, self.done, self.label = total, 0, ""

    def set_description(self, label):
        self.label = label
        print(f"[{self.done + 1}/{self.total}] {label} ...", file=sys.stderr, flush=True)

    def update(self, k):
        self.done += k

    def close(self):
        pass


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total)
    return tqdm(total=total, unit="run", file=sys.stderr)


def _fmt(x, spec):
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    return "—".rjust(width) if x is None else format(x, spec)


def _print_table(records: list[dict]) -> None:
    header = f"{'method':<12} {'rank':>4} {'removed':>8} {'accuracy':>9} {'Δacc':>7} {'out err':>10} {'bound':>10}"
    print(header)
    print("-" * len(header))
    for r in records:
        delta = None if r["accuracy"] is None else r["accuracy"] - r["original_accuracy"]
        note = "" if r["stable"] else "  unstable"
        if r.get("fine_tuned_accuracy") is not None:
            note += f"  fine-tuned {r['fine_tuned_accuracy']:.4f}"
        print(
            f"{r['method']:<12} {r['rank']:>4} {r['params_removed']:>8.1%} "
            f"{_fmt(r['accuracy'], '9.4f')} {_fmt(delta, '+7.4f')} "
            f"{_fmt(r['output_error'], '10.3e')} {_fmt(r['bound'], '10.3e')}{note}"
        )


def _plot(records: list[dict], out: pathlib.Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'jaxlqo[ssm]')")
        return None
    out.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method and r["accuracy"] is not None]
        if not rows:
            continue
        left.plot([r["params_removed"] for r in rows], [r["accuracy"] for r in rows], "o-", label=method)
        bounded = [r for r in rows if r["bound"] is not None]
        if bounded:
            right.loglog(
                [r["output_error"] for r in bounded], [r["bound"] for r in bounded], "o",
                label=method,
            )
    original = records[0]["original_accuracy"]
    left.axhline(original, color="k", lw=0.8, ls="--", label="original")
    left.axhline(original - 0.01, color="grey", lw=0.8, ls=":", label="original − 1 pt")
    left.set_xlabel("share of trainable parameters removed")
    left.set_ylabel("test accuracy (no retraining)")
    left.legend(fontsize=7)
    lo = min(r["output_error"] for r in records if r["output_error"] is not None)
    hi = max(r["bound"] for r in records if r["bound"] is not None)
    right.loglog([lo, hi], [lo, hi], "k--", lw=0.8, label="bound = error")
    right.set_xlabel("measured max output error")
    right.set_ylabel("proven bound")
    right.legend(fontsize=7)
    fig.tight_layout()
    path = out / "compress.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ._blas import limit_blas_threads

    limit_blas_threads(args.blas_threads)
    if args.command == "compress":
        compress_main(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
