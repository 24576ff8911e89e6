from ._balanced import balanced_truncation as balanced_truncation
from ._modal import modal_truncation as modal_truncation
from ._optimise import reduce as reduce, tlh2 as tlh2
