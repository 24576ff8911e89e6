"""Deep state-space models built from complex-diagonal LQO layers (`jaxlqo.ssm`).

Layers, a classifier, sequential data sets, training and checkpoints. scikit-learn (the
optional extra `jaxlqo[ssm]`) is needed only by `load_digits_sequences`.
"""

from ._allocate import allocate_ranks as allocate_ranks
from ._batched import batched_logits as batched_logits
from ._bidirectional import (
    bidirectional_h2_error as bidirectional_h2_error,
    bidirectional_h2_norm as bidirectional_h2_norm,
    simulate_bidirectional as simulate_bidirectional,
    split_directions as split_directions,
)
from ._bound import LayerQuantities as LayerQuantities, layer_quantities as layer_quantities
from ._compress import (
    METHODS as METHODS,
    compress as compress,
    compress_layer as compress_layer,
)
from ._data import (
    BBC_NEWS_TOPICS as BBC_NEWS_TOPICS,
    PAD_BYTE as PAD_BYTE,
    load_bbc_news_sequences as load_bbc_news_sequences,
    load_digits_sequences as load_digits_sequences,
    load_fashion_mnist_sequences as load_fashion_mnist_sequences,
)
from ._evaluate import (
    bound_report as bound_report,
    bound_weights as bound_weights,
    certify as certify,
    full_trajectory as full_trajectory,
    layer_input_second_moments as layer_input_second_moments,
    output_error as output_error,
    output_error_bound as output_error_bound,
)
from ._export import (
    exportable as exportable,
    system_to_lru as system_to_lru,
    system_to_s5 as system_to_s5,
)
from ._import import system_from_lru as system_from_lru, system_from_s5 as system_from_s5
from ._match import match_layer as match_layer
from ._methods import (
    METHOD_TABLE as METHOD_TABLE,
    AbstractCompressionMethod as AbstractCompressionMethod,
    AbstractLayerwiseMethod as AbstractLayerwiseMethod,
    BalancedTruncation as BalancedTruncation,
    BoundWeighted as BoundWeighted,
    LayerData as LayerData,
    LayerwiseH2 as LayerwiseH2,
    ModalTruncation as ModalTruncation,
    ModePruning as ModePruning,
    OutputMatching as OutputMatching,
    TimeLimitedH2 as TimeLimitedH2,
    pad_layers as pad_layers,
)
from ._model import (
    GELU_LIPSCHITZ as GELU_LIPSCHITZ,
    LAYER_NORM_EPS as LAYER_NORM_EPS,
    DeepSSM as DeepSSM,
    SSMLayer as SSMLayer,
    gelu as gelu,
)
from ._prune import (
    AbstractModeScore as AbstractModeScore,
    H2ModeScore as H2ModeScore,
    HInfinityModeScore as HInfinityModeScore,
    budget_ranks as budget_ranks,
    global_threshold_ranks as global_threshold_ranks,
    normalised_scores as normalised_scores,
    prune_layer as prune_layer,
    prune_system as prune_system,
)
from ._roundtrip import (
    PARAMETER_METHODS as PARAMETER_METHODS,
    compress_lru as compress_lru,
    compress_s5 as compress_s5,
    input_second_moment as input_second_moment,
)
from ._scan import diagonal_states as diagonal_states
from ._train import (
    BUNDLED_MODELS as BUNDLED_MODELS,
    cross_entropy as cross_entropy,
    evaluate as evaluate,
    load_checkpoint as load_checkpoint,
    load_default_model as load_default_model,
    predict as predict,
    save_checkpoint as save_checkpoint,
    train as train,
)
