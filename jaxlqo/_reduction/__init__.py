from ._balanced import balanced_truncation as balanced_truncation
from ._modal import modal_truncation as modal_truncation
