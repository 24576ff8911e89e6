"""Deep state-space models built from complex-diagonal LQO layers (`jaxlqo.ssm`).

Layers, a classifier, sequential data sets, training and checkpoints. scikit-learn (the
optional extra `jaxlqo[ssm]`) is needed only by `load_digits_sequences`.
"""

from ._data import (
    load_digits_sequences as load_digits_sequences,
    load_fashion_mnist_sequences as load_fashion_mnist_sequences,
)
from ._model import (
    GELU_LIPSCHITZ as GELU_LIPSCHITZ,
    LAYER_NORM_EPS as LAYER_NORM_EPS,
    DeepSSM as DeepSSM,
    SSMLayer as SSMLayer,
    gelu as gelu,
)
from ._train import (
    cross_entropy as cross_entropy,
    evaluate as evaluate,
    load_checkpoint as load_checkpoint,
    load_default_model as load_default_model,
    predict as predict,
    save_checkpoint as save_checkpoint,
    train as train,
)
