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
from typing import Any


class UserError(Exception):
    """A mistake in the command line or its environment: reported as one line, exit code 2."""


def _parse_list(text: str, name: str, kind: type = str) -> list:
    """A comma-separated list, every item converted by `kind`; a clear error otherwise."""
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not x for x in items):
        raise UserError(
            f"--{name}: expected a comma-separated list without empty items; got {text!r}"
        )
    try:
        values = [kind(x) for x in items]
    except ValueError:
        raise UserError(f"--{name}: every item must be {kind.__name__}; got {text!r}") from None
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    if duplicates:
        raise UserError(f"--{name}: duplicate items {', '.join(map(str, duplicates))}")
    return values


def _count(minimum: int):
    """An argparse type: an int ≥ `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        return value

    parse.__name__ = f"int ≥ {minimum}"
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`jaxlqo compress: error: …`, exit code 2), no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: The bundled models the command knows by name (see `jaxlqo.ssm.BUNDLED_MODELS`).
_BUNDLED = ("digits", "fashion_mnist", "bbc_news")


def _parser() -> argparse.ArgumentParser:
    description = __doc__.splitlines()[0] if __doc__ else None  # None under `python -OO`
    parser = _Parser(prog="jaxlqo", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "compress",
        help="compress a deep SSM and report accuracy and error bounds",
        formatter_class=_HelpFormatter,
    )
    c.add_argument(
        "--model",
        default="digits",
        help=f"a bundled model ({', '.join(_BUNDLED)}) or a checkpoint path without suffix",
    )
    c.add_argument(
        "--dataset",
        default=None,
        choices=["digits", "fashion_mnist", "fashion-mnist", "bbc_news"],
        help="test and calibration data (default: the data set the model was trained on)",
    )
    c.add_argument(
        "--ranks",
        default=None,
        help="comma-separated states kept per layer (default: a sweep chosen for the model)",
    )
    c.add_argument(
        "--budgets",
        default=None,
        help="comma-separated total states kept over all layers, split among the layers by "
        "each method's allocation rule (LAST's normalised scores); combine with --ranks or use "
        "alone",
    )
    c.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    c.add_argument(
        "--horizon", type=_count(1), default=None, help="time-limit in steps (default L)"
    )
    c.add_argument(
        "--calibration",
        type=_count(1),
        default=None,
        help="unlabelled training sequences (default: 512, or fewer for long sequences: at "
        f"most {_CALIBRATION_TOKENS} steps in all)",
    )
    c.add_argument("--max-steps", type=_count(0), default=90, help="L-BFGS steps per layer")
    c.add_argument("--out", default="jaxlqo-compress", help="output folder for the plot")
    c.add_argument("--json", default=None, help="write the table as JSON records to this file")
    c.add_argument(
        "--test-limit", type=_count(1), default=None, help="evaluate on the first N tests only"
    )
    c.add_argument("--no-plot", action="store_true", help="skip the plot")
    c.add_argument(
        "--no-bound",
        action="store_true",
        help="skip the output-error bound and certification (measured error and accuracy "
        "only): the bound's per-step gains cost minutes per row on long sequences (L = 2048)",
    )
    for flag, what in (
        (
            "--fine-tune",
            "fine-tune every compressed model for EPOCHS epochs (with labels) and "
            "report its accuracy as `fine_tuned_accuracy`",
        ),
        (
            "--from-scratch",
            "train a model of each reduced size from scratch for EPOCHS epochs "
            "and report it as method `scratch`",
        ),
    ):
        c.add_argument(
            flag, type=_count(0), default=0, metavar="EPOCHS", help=f"also {what} (default 0: off)"
        )
    c.add_argument(
        "--cache-dir",
        default=None,
        help="XLA compilation cache, reused by later runs, one subfolder per CPU kind "
        "(default: $JAXLQO_CACHE or ~/.cache/jaxlqo/xla)",
    )
    c.add_argument("--no-cache", action="store_true", help="do not use a compilation cache")
    c.add_argument(
        "--blas-threads",
        type=_count(0),
        default=1,
        help="threads for NumPy/SciPy's BLAS, which runs jaxlib's LAPACK calls (default 1: no "
        "contention with XLA's own thread pool; 0 leaves the libraries' default)",
    )
    return parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except `None`: those options say in words what they default to."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _default_ranks(model) -> list[int]:
    """The default sweep: 1/7 and 1/4 of the states (7 and 12 of the digits' 48).

    1/7 is the first rank at which ≥ 80% of the digits model's trainable parameters go; 1/4
    (70.6% removed) is where the data-free methods still hold. (1/3 was dropped so that the
    cold default run, with 512 calibration sequences, stays within 3 minutes on 2 cores.)
    """
    n = max(layer.n for layer in model.layers)
    return sorted({max(1, round(n * f)) for f in (1 / 7, 1 / 4)})


#: The default calibration set: 512 sequences, fewer where they are long (bbc_news, L = 2048:
#: 128), so that the calibration-driven methods cost about the same on every model.
_CALIBRATION_TOKENS = 2**18
# What `ssm.bound_report` gives each row of the table (all None for an unstable block).
_REPORT_FIELDS = ("accuracy", "output_error", "bound", "trivial_bound", "logit_bound", "certified")


def _calibration_count(args, data) -> int:
    if args.calibration is not None:
        return args.calibration
    length = data["train_inputs"].shape[1]
    return max(16, min(512, _CALIBRATION_TOKENS // length))


def _check_writable(path: pathlib.Path, what: str) -> None:
    """Fail before the run, not after it, if `path` (a file to write) cannot be written."""
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if path.is_dir():
        raise UserError(f"{what}: {path} is a folder, not a file")
    if not parent.is_dir():
        raise UserError(f"{what}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{what}: {path} is not writable")


def _prepare_out(out: pathlib.Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out: cannot create the folder {out} ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"--out: the folder {out} is not writable")


def _load_model(name: str):
    from . import ssm

    if name in ssm.BUNDLED_MODELS:
        return ssm.load_default_model(name)
    stem = pathlib.Path(name)
    stem = stem.with_suffix("") if stem.suffix in (".eqx", ".json") else stem
    if not stem.with_suffix(".json").is_file() or not stem.with_suffix(".eqx").is_file():
        raise UserError(
            f"--model: {name!r} is neither a bundled model ({', '.join(ssm.BUNDLED_MODELS)}) "
            f"nor a checkpoint (no {stem}.json and {stem}.eqx)"
        )
    try:
        return ssm.load_checkpoint(stem)
    except (ValueError, OSError) as e:
        raise UserError(f"--model: cannot load the checkpoint {stem}: {e}") from None


def _load_data(dataset: str, metadata: dict) -> dict:
    from . import ssm

    try:
        if dataset == "digits":
            return ssm.load_digits_sequences(metadata.get("split_seed") or 0)
        if dataset == "bbc_news":
            return ssm.load_bbc_news_sequences(
                length=metadata.get("length") or 2048, seed=metadata.get("split_seed") or 0
            )
        return ssm.load_fashion_mnist_sequences(pool=metadata.get("pool") or 2)
    except (ImportError, FileNotFoundError) as e:
        raise UserError(f"the {dataset} data are not available: {e}") from None


def _jobs(args, model, methods) -> list[tuple[str, dict]]:
    """(method, keywords for `ssm.compress`) for every row of the sweep, validated first."""
    n = [layer.n for layer in model.layers]
    ranks = _parse_list(args.ranks, "ranks", int) if args.ranks else []
    budgets = _parse_list(args.budgets, "budgets", int) if args.budgets else []
    if not ranks and not budgets:
        ranks = _default_ranks(model)
    for r in ranks:
        if not 1 <= r <= min(n):
            raise UserError(f"--ranks: {r} is not between 1 and the layers' order {min(n)}")
    for b in budgets:
        if not len(n) <= b <= sum(n):
            raise UserError(
                f"--budgets: {b} is not between {len(n)} (one state per layer) and {sum(n)} "
                "(every state)"
            )
    sweep = [{"rank": r} for r in ranks] + [{"budget": b} for b in budgets]
    return [(m, kw) for m in methods for kw in sweep]


def _slots(jobs, model) -> int:
    """State slots shared by every row (≥ every layer's rank), so the sweep compiles once."""
    n = max(layer.n for layer in model.layers)
    ranks = [kw["rank"] for _, kw in jobs if "rank" in kw]
    # A budget may give one layer up to all its states (or the whole budget, if smaller).
    budgets = [min(n, kw["budget"]) for _, kw in jobs if "budget" in kw]
    return max(ranks + budgets)


def _method_modules(methods, model, calibration, horizon) -> dict:
    """The method Module of each name, the bound-weighted ones sharing one `bound_weights`.

    The weights depend on the model and the calibration data only, not on the rank or on
    `input_aware`: computed once, not once per row (4 × 1.4 s of the default sweep).
    """
    import dataclasses

    from . import ssm
    from .ssm._compress import method_named

    modules = {name: method_named(name, "jaxlqo compress") for name in methods}
    weighted = [name for name, m in modules.items() if isinstance(m, ssm.BoundWeighted)]
    if weighted:
        weights = ssm.bound_weights(model, calibration, horizon=horizon)
        for name in weighted:
            modules[name] = dataclasses.replace(modules[name], weights=weights)
    return modules


def _cpu_fingerprint() -> str:
    """A short name for this CPU kind: its architecture and instruction-set flags."""
    import hashlib
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as f:  # Linux; elsewhere the processor name alone
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    text = " ".join([platform.machine(), platform.processor(), *sorted(flags.split())])
    return f"{platform.machine() or 'cpu'}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def compress_main(args) -> list[dict]:
    import jax

    # An application entry point (not the library) chooses the precision: control
    # computations want float64, and the bundled weights are float64.
    jax.config.update("jax_enable_x64", True)
    if not args.no_cache:
        # Compilation dominates a sweep's first run; later runs load the compiled programs.
        default = pathlib.Path.home() / ".cache" / "jaxlqo" / "xla"
        cache = pathlib.Path(args.cache_dir or os.environ.get("JAXLQO_CACHE") or default)
        # One subfolder per CPU kind: XLA:CPU programs are compiled for the host's
        # instruction set, and a cache on a shared home directory must not hand them to
        # another CPU.
        jax.config.update("jax_compilation_cache_dir", str(cache / _cpu_fingerprint()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        # jaxlib 0.9.2 logs an ERROR line for every program it loads from the cache ("Target
        # machine feature +prefer-no-gather is not supported on the host machine ... could
        # lead to ... SIGILL"), even on the machine that compiled it: those two are LLVM
        # tuning hints that XLA records with the CPU's features, not instructions. A warm
        # run printed 16 of them. The folder above keeps programs on their own CPU kind, so
        # the CLI (an application, not the library) hides jax's log lines below CRITICAL,
        # C++ ones included; failures still raise.
        jax.config.update("jax_logging_level", "CRITICAL")
    import jax.numpy as jnp

    from . import ssm

    start = time.perf_counter()
    methods = _parse_list(args.methods, "methods") if args.methods else list(ssm.METHODS)
    unknown = [m for m in methods if m not in ssm.METHODS]
    if unknown:
        raise UserError(
            f"--methods: unknown {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(ssm.METHODS)}"
        )
    if args.json:
        _check_writable(pathlib.Path(args.json), "--json")
    out = pathlib.Path(args.out)
    if not args.no_plot:
        _prepare_out(out)
    model, metadata = _load_model(args.model)
    jobs = _jobs(args, model, methods)
    slots = _slots(jobs, model)
    dataset = (args.dataset or metadata.get("dataset") or "digits").replace("-", "_")
    data = _load_data(dataset, metadata)
    test_x, test_y = data["test_inputs"], data["test_labels"]
    if args.test_limit is not None:
        test_x, test_y = test_x[: args.test_limit], test_y[: args.test_limit]
        data = {**data, "test_inputs": test_x, "test_labels": test_y}
    calibration = jnp.asarray(data["train_inputs"][: _calibration_count(args, data)])
    test_x = jnp.asarray(test_x)
    # The full model's trajectory, computed once and reused by every row's bound.
    reference = None if args.no_bound else ssm.full_trajectory(model, test_x)
    n = max(layer.n for layer in model.layers)
    states = sum(layer.n for layer in model.layers)
    original_accuracy = ssm.evaluate(model, test_x, test_y)
    total = model.trainable_parameter_count()
    print(
        f"model: {len(model.layers)} layers, H = {model.H}, n = {n}, {total} trainable "
        f"parameters; test accuracy {original_accuracy:.4f} on {len(test_y)} sequences",
        flush=True,
    )
    modules = _method_modules(methods, model, calibration, args.horizon)
    records = []
    progress = _progress(len(jobs))
    for method, sweep in jobs:
        label = f"r={sweep['rank']}" if "rank" in sweep else f"budget={sweep['budget']}"
        progress.set_description(f"{method} {label}")
        compressed, info = ssm.compress(
            model,
            method=modules[method],
            horizon=args.horizon,
            calibration=calibration,
            max_steps=args.max_steps,
            slots=slots,
            **sweep,
        )
        ranks = [int(r) for r in info["ranks"]]
        record = {
            "method": method,
            "rank": ranks[0] if len(set(ranks)) == 1 else None,
            "ranks": ranks,
            "budget": sweep.get("budget"),
            "states_removed": 1 - sum(ranks) / states,
            "original_accuracy": original_accuracy,
        }
        if compressed is None:  # an unstable block (TLH2): reported as such
            gone = sum(layer.n - r for layer, r in zip(model.layers, ranks, strict=True))
            record["params_removed"] = gone * _per_state(model) / total
            record.update(dict.fromkeys(_REPORT_FIELDS), stable=False)
        else:
            removed = 1 - compressed.trainable_parameter_count() / total
            # Padded with dead states to the shared slots, every compressed model shares one
            # compiled evaluation, error and bound (same outputs, see ssm.pad_layers).
            padded = ssm.pad_layers(compressed, slots)
            if args.no_bound:
                report: dict[str, Any] = dict.fromkeys(_REPORT_FIELDS)
                report["accuracy"] = ssm.evaluate(padded, test_x, test_y)
                report["output_error"] = float(jnp.max(ssm.output_error(model, padded, test_x)))
            else:
                # The table has no column for the a-priori form: skip it (~40% of the report).
                report = ssm.bound_report(
                    model, padded, test_x, test_y, trajectory=reference, a_priori=False
                )
            record["params_removed"] = removed
            record.update({key: report[key] for key in _REPORT_FIELDS}, stable=True)
        if args.fine_tune and compressed is not None:
            record["fine_tuned_accuracy"] = _fine_tune(compressed, data, metadata, args.fine_tune)
        records.append(record)
        progress.update(1)
    progress.close()
    if args.from_scratch:
        for rank in sorted({kw["rank"] for _, kw in jobs if "rank" in kw}):
            records.append(_from_scratch(model, rank, data, metadata, args.from_scratch, total))
            records[-1]["original_accuracy"] = original_accuracy
    _print_table(records)
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
        key=jax.random.key(metadata.get("seed", 0)),
        d_in=model.d_in,
        H=model.H,
        n=rank,
        layers=len(model.layers),
        n_classes=model.n_classes,
        quad_rank=arch.get("quad_rank", 1),
        norm_eps=arch.get("norm_eps", ssm.LAYER_NORM_EPS),
        dtype=model.dtype,
        vocab_size=model.vocab_size,
        **init,
    )
    train = {k: data[k] for k in ("train_inputs", "train_labels")}
    small, _ = ssm.train(small, train, **_training_settings(metadata, epochs))
    states = rank * len(model.layers)
    return {
        "method": "scratch",
        "rank": rank,
        "ranks": [rank] * len(model.layers),
        "budget": None,
        "states_removed": 1 - states / sum(layer.n for layer in model.layers),
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
    header = (
        f"{'method':<12} {'ranks':>9} {'states':>7} {'params':>7} {'accuracy':>9} {'Δacc':>7} "
        f"{'out err':>10} {'bound':>10} {'trivial':>10} {'logit bd':>10} {'certified':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in records:
        delta = None if r["accuracy"] is None else r["accuracy"] - r["original_accuracy"]
        note = "" if r["stable"] else "  unstable"
        if r.get("fine_tuned_accuracy") is not None:
            note += f"  fine-tuned {r['fine_tuned_accuracy']:.4f}"
        ranks = str(r["rank"]) if r["rank"] is not None else "/".join(map(str, r["ranks"]))
        print(
            f"{r['method']:<12} {ranks:>9} {r['states_removed']:>7.1%} {r['params_removed']:>7.1%} "
            f"{_fmt(r['accuracy'], '9.4f')} {_fmt(delta, '+7.4f')} "
            f"{_fmt(r['output_error'], '10.3e')} {_fmt(r['bound'], '10.3e')} "
            f"{_fmt(r.get('trivial_bound'), '10.3e')} {_fmt(r.get('logit_bound'), '10.3e')} "
            f"{_fmt(r.get('certified'), '9.1%')}{note}"
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
        left.plot(
            [r["params_removed"] for r in rows], [r["accuracy"] for r in rows], "o-", label=method
        )
        bounded = [r for r in rows if r["bound"] is not None]
        if bounded:
            right.loglog(
                [r["output_error"] for r in bounded],
                [r["bound"] for r in bounded],
                "o",
                label=method,
            )
    original = records[0]["original_accuracy"]
    left.axhline(original, color="k", lw=0.8, ls="--", label="original")
    left.axhline(original - 0.01, color="grey", lw=0.8, ls=":", label="original − 1 pt")
    left.set_xlabel("share of trainable parameters removed")
    left.set_ylabel("test accuracy (no retraining)")
    left.legend(fontsize=7)
    lo = min(r["output_error"] for r in records if r["output_error"] is not None)
    # Without bounds (--no-bound) the diagonal spans the measured errors only.
    hi = max((r["bound"] for r in records if r["bound"] is not None), default=lo)
    right.loglog([lo, hi], [lo, hi], "k--", lw=0.8, label="bound = error")
    trivial = [r["trivial_bound"] for r in records if r.get("trivial_bound") is not None]
    if trivial:
        right.axhline(max(trivial), color="grey", lw=0.8, ls=":", label="trivial bound")
    right.set_xlabel("measured max output error")
    right.set_ylabel("proven bound")
    right.legend(fontsize=7)
    fig.tight_layout()
    path = out / "compress.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    """The `jaxlqo` command: returns the exit code (2 for a user error, printed as one line)."""
    args = _parser().parse_args(argv)
    from ._blas import limit_blas_threads

    try:
        limit_blas_threads(args.blas_threads)
        if args.command == "compress":
            compress_main(args)
    except UserError as e:
        print(f"jaxlqo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # a missing optional extra (matplotlib, scikit-learn, …)
        print(
            f"jaxlqo {args.command}: error: {e} (install the extras: pip install 'jaxlqo[ssm]')",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
