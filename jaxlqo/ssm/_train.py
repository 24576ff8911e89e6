r"""Training, evaluation and checkpoints of [`DeepSSM`][jaxlqo.ssm.DeepSSM] classifiers.

Training minimises the mean cross-entropy of a batch,

$$\mathcal{L}(\theta) = \frac{1}{|b|}\sum_{(u, c)\in b}
  \Bigl(\log\sum_j e^{z_j(u)} - z_c(u)\Bigr),\qquad z = \text{model}(u),$$

with AdamW under a warm-up + cosine learning-rate schedule and global-norm gradient clipping.
"""

import importlib.resources
import json
import pathlib
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._batched import batched_logits
from ._model import DeepSSM

#: The `"format"` tag of the JSON sidecar written by `save_checkpoint`.
CHECKPOINT_FORMAT = "jaxlqo.ssm.DeepSSM/1"


def cross_entropy(model: DeepSSM, inputs, labels) -> jax.Array:
    """The mean cross-entropy of `model` on a batch: `inputs` (N, L, d_in), `labels` (N,).

    The logits come from [`batched_logits`][jaxlqo.ssm.batched_logits] (batched GEMMs and a
    backend-suited scan), equal to `jax.vmap(model)(inputs)` up to rounding.
    """
    logits = batched_logits(model, inputs)
    return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))


@eqx.filter_jit
def _predict(model: DeepSSM, inputs) -> jax.Array:
    return jnp.argmax(batched_logits(model, inputs), axis=-1)


def predict(model: DeepSSM, inputs, *, batch_size: int | None = None) -> np.ndarray:
    """The predicted classes (N,) of `inputs` (N, L, d_in), in chunks of `batch_size`.

    `batch_size=None` (default) takes `max(1, 2¹⁸ // L)` sequences a chunk (a bounded
    activation size: 4 096 sequences of the digits' `L = 64`, 128 of `L = 2048`).
    """
    inputs = np.asarray(inputs)
    if batch_size is None:
        batch_size = max(1, 2**18 // max(1, inputs.shape[1] if inputs.ndim > 1 else 1))
    out = [
        np.asarray(_predict(model, jnp.asarray(inputs[i : i + batch_size], model.dtype)))
        for i in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0,), np.int32)


def evaluate(model: DeepSSM, inputs, labels, *, batch_size: int | None = None) -> float:
    """The accuracy (share of `argmax(logits) == label`) of `model` on `inputs` (N, L, d_in).

    Deterministic: the same model, data and `batch_size` give the same accuracy on the same
    machine (the chunking is fixed, so every example sees the same computation).
    """
    labels = np.asarray(labels)
    if len(labels) != len(inputs):
        raise ValueError(
            f"evaluate: {len(inputs)} inputs but {len(labels)} labels; pass one label per input."
        )
    return float(np.mean(predict(model, inputs, batch_size=batch_size) == labels))


def _decay_mask(model: DeepSSM):
    """Weight decay on the matrices only: not on `ν, θ` (the poles), norms or biases."""
    mask = jax.tree_util.tree_map(lambda _: False, model)

    def matrices(m):
        out = [m.head.weight]
        if m.vocab_size is None:  # an embedding table is not decayed (as in S5 / LRA)
            out.append(m.encoder.weight)
        for layer in m.layers:
            out += [layer.B_re, layer.B_im, layer.C_re, layer.C_im, layer.D]
            if layer.F_re is not None:
                out += [layer.F_re, layer.F_im, layer.G_re, layer.G_im]
        return out

    return eqx.tree_at(matrices, mask, replace_fn=lambda _: True)


def make_optimizer(
    model: DeepSSM,
    *,
    learning_rate: float,
    total_steps: int,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.05,
    clip_norm: float = 1.0,
) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay to 0, after global-norm clipping."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=max(1, int(warmup_fraction * total_steps)),
        decay_steps=max(2, total_steps),
        end_value=0.0,
    )
    return optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(schedule, weight_decay=weight_decay, mask=_decay_mask(model)),
    )


def train(
    model: DeepSSM,
    data: dict,
    *,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    progress: bool = True,
) -> tuple[DeepSSM, dict]:
    r"""Train `model` on `data["train_inputs"]`, `data["train_labels"]` by minibatch AdamW.

    Each epoch visits a fresh permutation of the training set (from `seed`) in
    `N // batch_size` full batches (the remainder changes every epoch, and full batches keep
    one compiled step). The step is `eqx.filter_jit`-compiled; the loss
    [`cross_entropy`][jaxlqo.ssm.cross_entropy] is `vmap`ped over the batch.

    **Arguments:**

    - `model`: the initial [`DeepSSM`][jaxlqo.ssm.DeepSSM]; the data are cast to its dtype.
    - `data`: a dict from e.g. [`load_digits_sequences`][jaxlqo.ssm.load_digits_sequences];
        if it has `"test_inputs"`/`"test_labels"` the test accuracy is recorded every epoch
        (for monitoring only: the returned model is the last one, never a selected one).
    - `epochs`, `batch_size`, `learning_rate` (peak), `weight_decay`, `seed`: keyword-only.
    - `progress`: keyword-only; show a tqdm bar if tqdm is installed, else print one line
        per epoch.

    **Returns:** `(model, history)`, `history` a dict of per-epoch lists `"loss"` (mean
    training loss), `"test_accuracy"` (if test data were given), and `"time_s"` (the total
    wall-clock training time, compilation included).
    """
    inputs = np.asarray(data["train_inputs"])
    labels = np.asarray(data["train_labels"])
    n_train = len(inputs)
    if batch_size > n_train:
        raise ValueError(f"train: batch_size={batch_size} exceeds the {n_train} examples.")
    steps_per_epoch = n_train // batch_size
    optimizer = make_optimizer(
        model,
        learning_rate=learning_rate,
        total_steps=epochs * steps_per_epoch,
        weight_decay=weight_decay,
    )
    # Optax mixes Python floats with int32 step counts, which a caller's strict dtype
    # promotion would reject: its (internal) arithmetic runs under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(cross_entropy)(model, x, y)
        params = eqx.filter(model, eqx.is_inexact_array)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        # The schedule is float64 under x64: keep a float32 model in float32.
        updates = jax.tree_util.tree_map(lambda u, p: u.astype(p.dtype), updates, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    has_test = "test_inputs" in data and "test_labels" in data
    history: dict[str, Any] = {"loss": [], "test_accuracy": [] if has_test else None}
    rng = np.random.default_rng(seed)
    bar = _progress_bar(epochs) if progress else None
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(n_train)
        losses = []
        for i in range(steps_per_epoch):
            batch = order[i * batch_size : (i + 1) * batch_size]
            x = jnp.asarray(inputs[batch], model.dtype)
            y = jnp.asarray(labels[batch])
            model, opt_state, loss = step(model, opt_state, x, y)
            losses.append(loss)
        history["loss"].append(float(np.mean(np.asarray(jnp.stack(losses)))))
        line = f"epoch {epoch + 1}/{epochs}  loss {history['loss'][-1]:.4f}"
        if has_test:
            acc = evaluate(model, data["test_inputs"], data["test_labels"])
            history["test_accuracy"].append(acc)
            line += f"  test accuracy {acc:.4f}"
        if bar is not None:
            bar.set_postfix_str(line.split("  ", 1)[1])
            bar.update(1)
        elif progress:
            print(line, flush=True)
    if bar is not None:
        bar.close()
    history["time_s"] = time.perf_counter() - start
    return model, history


def _progress_bar(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="train", unit="epoch")


# --- checkpoints ---------------------------------------------------------------------------


def _base(path) -> pathlib.Path:
    path = pathlib.Path(path)
    return path.with_suffix("") if path.suffix in (".eqx", ".json") else path


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if isinstance(x, pathlib.Path):
        return str(x)
    raise TypeError(f"save_checkpoint: metadata value {x!r} is not JSON-serialisable.")


def save_checkpoint(path, model: DeepSSM, metadata: dict | None = None) -> pathlib.Path:
    """Write `model` to `<path>.eqx` (its leaves) and `<path>.json` (how to rebuild it).

    The JSON sidecar holds `"format"`, `"architecture"` (from
    [`DeepSSM.architecture`][jaxlqo.ssm.DeepSSM.architecture]: `d_in, H, n, layers,
    n_classes, quad_rank, norm_eps, dtype`) and every key of `metadata` (e.g. the test
    accuracy, seed, training command and time).

    **Arguments:**

    - `path`: the file stem; a trailing `.eqx` or `.json` is dropped. Parent folders are
        created.
    - `model`: a [`DeepSSM`][jaxlqo.ssm.DeepSSM] (possibly compressed: per-layer `n`).
    - `metadata`: a JSON-serialisable dict. The keys `"format"` and `"architecture"` are
        written by this function: an `"architecture"` in `metadata` is replaced by `model`'s
        own, and a `"format"` must equal the one written. So the metadata returned by
        [`load_checkpoint`][jaxlqo.ssm.load_checkpoint] can be passed back as it is
        (load → compress → save).

    **Returns:** the stem written to.
    """
    if not isinstance(model, DeepSSM):
        raise TypeError(f"save_checkpoint: `model` must be a DeepSSM; got {type(model).__name__}.")
    metadata = dict(metadata or {})
    if metadata.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise ValueError(
            f"save_checkpoint: metadata key 'format' is reserved: it is {metadata['format']!r}, "
            f"but this function writes {CHECKPOINT_FORMAT!r}; drop the key from `metadata`."
        )
    # An "architecture" in `metadata` (e.g. from load_checkpoint, before compression) is
    # replaced: the sidecar must describe the model actually written.
    metadata.pop("format", None)
    metadata.pop("architecture", None)
    base = _base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(base.with_suffix(".eqx"), model)
    sidecar = {"format": CHECKPOINT_FORMAT, "architecture": model.architecture(), **metadata}
    text = json.dumps(sidecar, indent=2, default=_json_default)
    base.with_suffix(".json").write_text(text + "\n")
    return base


def load_checkpoint(path, *, dtype=None) -> tuple[DeepSSM, dict]:
    """Read a model written by [`save_checkpoint`][jaxlqo.ssm.save_checkpoint].

    The skeleton is rebuilt from the JSON sidecar's `"architecture"` with
    `eqx.filter_eval_shape` (no random initialisation is computed) and filled from the
    `.eqx` file.

    **Arguments:**

    - `path`: the stem (with or without `.eqx` / `.json`).
    - `dtype`: keyword-only; the real dtype to load into. `None` (default) keeps the stored
        dtype, which for a float64 checkpoint requires `jax_enable_x64`; pass
        `dtype="float32"` to load it in single precision.

    **Returns:** `(model, metadata)`, `metadata` the whole JSON sidecar as a dict.
    """
    base = _base(path)
    sidecar_path = base.with_suffix(".json")
    if not sidecar_path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no sidecar {sidecar_path}.")
    metadata = json.loads(sidecar_path.read_text())
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"load_checkpoint: {sidecar_path} has format {metadata.get('format')!r}; expected "
            f"{CHECKPOINT_FORMAT!r}."
        )
    arch = dict(metadata["architecture"])
    stored = jnp.dtype(arch.pop("dtype"))
    target = stored if dtype is None else jnp.dtype(dtype)
    if target == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"load_checkpoint: {base} is to be loaded in float64 but `jax_enable_x64` is off; "
            'call `jax.config.update("jax_enable_x64", True)` first, or pass dtype="float32".'
        )
    skeleton = eqx.filter_eval_shape(lambda: DeepSSM(key=jax.random.key(0), **arch, dtype=target))

    def fill(f, like):
        if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
            value = np.load(f)
            if value.shape != like.shape:
                raise ValueError(
                    f"load_checkpoint: {base}.eqx does not match its sidecar (a leaf of shape "
                    f"{value.shape} where {like.shape} was expected)."
                )
            return jnp.asarray(value.astype(like.dtype))
        return eqx.default_deserialise_filter_spec(f, like)

    model = eqx.tree_deserialise_leaves(base.with_suffix(".eqx"), skeleton, filter_spec=fill)
    return model, metadata


BUNDLED_MODELS = ("digits", "fashion_mnist", "bbc_news")
"""The names of the classifiers shipped in `jaxlqo/ssm/weights/`, for
[`load_default_model`][jaxlqo.ssm.load_default_model] (and the CLI's `--model`)."""


def load_default_model(name: str = "digits", *, dtype=None) -> tuple[DeepSSM, dict]:
    """A bundled classifier and its metadata (`weights/<name>.*`).

    - `"digits"` (default): sequential 8×8 digits, `L = 64`;
    - `"fashion_mnist"`: sequential Fashion-MNIST average-pooled to 14×14, `L = 196`
        (4 layers, `H = 64`, `n = 64`, LTI blocks; trained on all 60 000 training images;
        its data comes from Debian's `dataset-fashion-mnist`);
    - `"bbc_news"`: byte-level BBC News topic classification (5 classes), `L = 2048`, a
        token model (4 layers, `H = 64`, `n = 64`, LTI blocks; needs `jaxlqo[text]` for
        its data, [`load_bbc_news_sequences`][jaxlqo.ssm.load_bbc_news_sequences]).

    All were trained by `python -m jaxlqo.ssm.train` (the exact command, the test accuracy
    on the data set's test split and the training time are in the returned metadata). Stored
    in float64: enable `jax_enable_x64` or pass `dtype="float32"`.
    """
    if name not in BUNDLED_MODELS:
        raise ValueError(
            f"load_default_model: `name` must be one of {BUNDLED_MODELS}; got {name!r}."
        )
    weights = importlib.resources.files("jaxlqo.ssm").joinpath("weights")
    with importlib.resources.as_file(weights) as folder:
        return load_checkpoint(pathlib.Path(folder) / name, dtype=dtype)
