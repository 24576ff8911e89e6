"""Train a deep-SSM classifier and write its checkpoint: `python -m jaxlqo.ssm.train`.

The defaults reproduce the bundled model `jaxlqo/ssm/weights/digits.{eqx,json}`:

    python -m jaxlqo.ssm.train --dataset digits --out jaxlqo/ssm/weights/digits

Training runs in float64 (`jax_enable_x64` is switched on here, in the script's `main`, never
in the library) unless `--dtype float32` is given.
"""

import argparse
import math
import platform
import shlex
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jaxlqo.ssm.train",
        description="Train a jaxlqo.ssm.DeepSSM on a sequential image-classification task.",
    )
    p.add_argument("--dataset", choices=["digits", "fashion_mnist", "bbc_news"], default="digits")
    p.add_argument("--out", required=True, help="checkpoint stem: writes OUT.eqx and OUT.json")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batching seed")
    p.add_argument("--split-seed", type=int, default=0, help="digits train/test split seed")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--H", type=int, default=16, help="layer width")
    p.add_argument("--n", type=int, default=48, help="complex states per layer")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--quad-rank", type=int, default=1)
    p.add_argument("--r-min", type=float, default=0.9)
    p.add_argument("--r-max", type=float, default=0.999)
    p.add_argument("--max-phase", type=float, default=math.pi)
    p.add_argument("--pool", type=int, default=2, help="fashion_mnist: average-pooling factor")
    p.add_argument("--max-train", type=int, default=None, help="fashion_mnist: train subset")
    p.add_argument("--length", type=int, default=2048, help="bbc_news: bytes per sequence")
    p.add_argument(
        "--dtype", choices=["float64", "float32"], default="float64", help="the training dtype"
    )
    p.add_argument(
        "--save-dtype",
        choices=["float64", "float32"],
        default=None,
        help="the dtype of the written checkpoint (default: the training dtype); "
        "float32 training with float64 checkpoints keeps compression in float64",
    )
    p.add_argument(
        "--init",
        default=None,
        help="continue from this checkpoint (same architecture) instead of a random "
        "initialisation; its recorded commands are kept in the new metadata",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> dict:
    args = _parser().parse_args(argv)
    import jax

    save_dtype = args.save_dtype or args.dtype
    if "float64" in (args.dtype, save_dtype):
        jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import optax

    from ._data import (
        load_bbc_news_sequences,
        load_digits_sequences,
        load_fashion_mnist_sequences,
    )
    from ._model import DeepSSM
    from ._train import evaluate, save_checkpoint, train

    if args.dataset == "digits":
        data = load_digits_sequences(args.split_seed)
    elif args.dataset == "bbc_news":
        data = load_bbc_news_sequences(length=args.length, seed=args.split_seed)
    else:
        data = load_fashion_mnist_sequences(pool=args.pool, max_train=args.max_train)
    hyper = dict(
        d_in=data["train_inputs"].shape[-1],
        H=args.H,
        n=args.n,
        layers=args.layers,
        n_classes=data["n_classes"],
        quad_rank=args.quad_rank,
        r_min=args.r_min,
        r_max=args.r_max,
        max_phase=args.max_phase,
        dtype=args.dtype,
        vocab_size=data.get("vocab_size"),
    )
    model = DeepSSM(key=jax.random.key(args.seed), **hyper)
    previous = {}
    if args.init is not None:
        from ._train import load_checkpoint

        start_model, previous = load_checkpoint(args.init, dtype=args.dtype)
        if start_model.architecture() != model.architecture():
            raise SystemExit(
                f"--init: {args.init} has architecture {start_model.architecture()}, not the "
                f"requested {model.architecture()}."
            )
        model = start_model
    counts = model.parameter_counts()
    print(
        f"{args.dataset}: {len(data['train_labels'])} train / {len(data['test_labels'])} test "
        f"sequences of length {data['train_inputs'].shape[1]}; {counts['total']} trainable "
        f"parameters ({counts['ssm']} = {counts['ssm'] / counts['total']:.1%} in the SSM "
        "matrices)",
        flush=True,
    )
    start = time.perf_counter()
    model, history = train(
        model,
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        seed=args.seed,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - start
    if save_dtype != args.dtype:
        model = jax.tree_util.tree_map(
            lambda x: x.astype(save_dtype) if eqx.is_inexact_array(x) else x, model
        )
    test_acc = evaluate(model, data["test_inputs"], data["test_labels"])
    train_acc = evaluate(model, data["train_inputs"], data["train_labels"])
    argv_used = sys.argv[1:] if argv is None else list(argv)
    metadata = {
        "dataset": args.dataset,
        "split_seed": args.split_seed if args.dataset in ("digits", "bbc_news") else None,
        "length": args.length if args.dataset == "bbc_news" else None,
        "pool": args.pool if args.dataset == "fashion_mnist" else None,
        "seed": args.seed,
        "dtype": save_dtype,
        "training_dtype": args.dtype,
        "test_accuracy": test_acc,
        "test_correct": int(round(test_acc * len(data["test_labels"]))),
        "n_test": len(data["test_labels"]),
        "train_accuracy": train_acc,
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "weight_decay": args.weight_decay,
            "optimizer": "clip_by_global_norm(1) + adamw, warm-up 5% + cosine decay",
        },
        "init": {"r_min": args.r_min, "r_max": args.r_max, "max_phase": args.max_phase},
        "parameter_counts": counts,
        "training_time_s": round(elapsed, 1),
        "history": {
            "loss": [round(x, 6) for x in history["loss"]],
            "test_accuracy": history["test_accuracy"],
        },
        "command": "python -m jaxlqo.ssm.train " + shlex.join(argv_used),
        # The whole recipe when training continued from a checkpoint: run these in order.
        "commands": previous.get("commands", [previous["command"]] if "command" in previous else [])
        + ["python -m jaxlqo.ssm.train " + shlex.join(argv_used)],
        "training_time_total_s": round(
            elapsed + previous.get("training_time_total_s", previous.get("training_time_s", 0.0)), 1
        ),
        "environment": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "equinox": eqx.__version__,
            "optax": optax.__version__,
            "machine": platform.machine(),
        },
    }
    base = save_checkpoint(args.out, model, metadata)
    print(
        f"test accuracy {test_acc:.4f} ({metadata['test_correct']}/{metadata['n_test']}), "
        f"train accuracy {train_acc:.4f}, {elapsed:.1f} s; wrote {base}.eqx and {base}.json",
        flush=True,
    )
    return metadata


if __name__ == "__main__":
    main()
