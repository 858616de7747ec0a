"""`StreamDataset`: a `Dataset` whose rows stay in their file(s), what `load_stream` gives."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from nettrain.data.split import fold_codes
from nettrain.data.stats import TrainStats
from nettrain.data.stream.path import SPLIT_NAMES
from nettrain.data.stream.reader import RowReader
from nettrain.data.types import Dataset

HOLDOUT_ROWS = 50_000      # rows of the held-out split the final plots are drawn from


@dataclass
class StreamDataset(Dataset):
    """A `Dataset` whose rows stay in their file(s): `train`, `validation` and `test` are None; the rows
    of a split come from `reader.rows(dataset.codes[split])`, their numbers from `rows(split)`."""

    reader: RowReader | None = None
    codes: dict[str, frozenset] = field(default_factory=dict)     # split name -> split codes
    code_rows: dict[int, int] = field(default_factory=dict)       # split code -> rows (after the policy)
    class_counts: dict[int, np.ndarray] = field(default_factory=dict)  # split code -> rows per class
    fold_stats: list[TrainStats] | None = None                    # k-fold: each fold's training statistics
    n_folds: int = 1
    fold: int | None = None                                       # this view's fold (1-based)
    why: str = ""                                                 # DataPath.why

    def rows(self, split: str) -> int:
        return sum(self.code_rows.get(c, 0) for c in self.codes.get(split, ()))

    def split_rows(self) -> dict[str, int]:
        return {name: self.rows(name) for name in SPLIT_NAMES}

    def split_class_counts(self, split: str) -> np.ndarray:
        """Rows per class (int64, in class order) of `split`, summed over its split codes."""
        n = len(self.schema.class_names or ())
        return sum((self.class_counts.get(c, np.zeros(n, dtype=np.int64)) for c in self.codes.get(split, ())),
                   np.zeros(n, dtype=np.int64))

    def class_shares(self) -> dict[str, dict[str, float]] | None:
        """{split: {class: share of the split's rows}}: stratification is approximate when streaming."""
        names = self.schema.class_names
        if not names:
            return None
        out = {}
        for split in SPLIT_NAMES:
            counts = self.split_class_counts(split)
            total = int(counts.sum())
            if total:
                out[split] = {name: round(float(n) / total, 4) for name, n in zip(names, counts)}
        return out

    def for_fold(self, fold: int) -> "StreamDataset":
        """Fold `fold` (1-based) of a k-fold stream: its training rows, its validation fold, the test rows."""
        train, valid = fold_codes(fold, self.n_folds)
        return dataclasses.replace(self, codes={"train": frozenset(train), "validation": frozenset(valid),
                                                "test": self.codes.get("test", frozenset())},
                                   stats=self.fold_stats[fold - 1], fold=fold)

    def texts(self, name: str) -> Callable[[], Iterable[np.ndarray]]:
        """A text column's training rows, re-read from the file chunk by chunk at every call."""
        def source():
            for split in self.reader.rows(self.codes["train"]):
                yield split.inputs[name].ravel()
                del split
        return source
