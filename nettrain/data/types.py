"""The plain values the data stage hands to the model and training stages.

No TensorFlow, no pandas in these types: arrays and JSON-able schema only, so the same
`FeatureSchema` turns raw rows into model inputs at fit, evaluate and predict time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Literal

import numpy as np

# Name of the single model input that carries all numeric columns, in `numeric_columns` order
# (defined with the model-file metadata it names).
from nettrain.store.meta import NUMERIC_INPUT, column_of_input, input_name  # noqa: F401

if TYPE_CHECKING:
    from nettrain.data.stats import TrainStats

Task = Literal["regression", "binary", "multiclass"]
Kind = Literal["numeric", "categorical", "text"]



@dataclass
class ColumnInfo:
    name: str
    kind: Kind
    # text only
    max_tokens: int | None = None
    output_mode: str | None = None
    sequence_length: int | None = None
    # categorical (embedding) or text (int mode)
    embedding_dim: int | None = None
    # a numeric column made from another column (a date's part `when.year`, a yes/no column's 1/0
    # `smoker.yes`): how (`data.typing.derived_origins`: {"column": the raw column, "type": "date" or
    # "boolean", ...}); None for a column of the data itself. Stored in `FeatureSchema.derived`.
    origin: dict[str, Any] | None = None


@dataclass
class FeatureSchema:
    """How raw columns become model inputs; saved in the run directory as `features.json`."""

    task: Task
    target: str | None
    columns: list[ColumnInfo]
    class_names: list[str] | None = None          # classification: output order, as text ("2", "10")
    imputation: dict[str, Any] = field(default_factory=dict)  # column -> fill value (train rows)
    id_column: str | None = None
    # what the class names stand for: "int", "float", "bool" or "str"; None (files written before it
    # existed) reads as "str". `class_names` stays text so every model file keeps one shape.
    class_type: str | None = None
    # column -> how its CSV/TSV cells are read ("number", "bool" or "str", `data.cells`), for every
    # feature, the target and the id, decided once at fit; empty (files written before it existed):
    # each read types the cells by their own values
    cell_types: dict[str, str] = field(default_factory=dict)
    # derived column -> its `ColumnInfo.origin`, as features.json keeps them (the column entries keep
    # the shape they always had); given to the columns when the schema is made
    derived: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        for column in self.columns:
            if column.origin is None and column.name in self.derived:
                column.origin = self.derived[column.name]
        self.derived = {c.name: c.origin for c in self.columns if c.origin is not None}

    @property
    def class_labels(self) -> list[Any] | None:
        """The classes as the values the target column held: 2 and 10 (numbers) for integer labels,
        True/False for booleans, the text for everything else; in output order."""
        if self.class_names is None:
            return None
        return [label_value(name, self.class_type) for name in self.class_names]

    @property
    def numeric_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "numeric"]

    @property
    def other_columns(self) -> list[ColumnInfo]:
        return [c for c in self.columns if c.kind != "numeric"]

    @property
    def file_columns(self) -> list[str]:
        """The columns of the data the model reads, in schema order, each once: a derived column's
        raw column in its place."""
        return list(dict.fromkeys(c.origin["column"] if c.origin else c.name for c in self.columns))

    @property
    def numeric_file_columns(self) -> list[str]:
        """The numeric columns that are columns of the data (a reader converts them to numbers)."""
        return [c.name for c in self.columns if c.kind == "numeric" and c.origin is None]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for column in out["columns"]:
            column.pop("origin", None)
        out["derived"] = {c.name: dict(c.origin) for c in self.columns if c.origin is not None}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSchema":
        d = dict(d)
        d["columns"] = [ColumnInfo(**c) for c in d["columns"]]
        return cls(**d)  # (`derived` gives the columns their origin)




def label_value(name: str, class_type: str | None) -> Any:
    """A class name (text, as stored) back as the value the target column held."""
    try:
        if class_type == "int":
            return int(name)
        if class_type == "float":
            return float(name)
    except (TypeError, ValueError):
        return name
    if class_type == "bool" and name in ("True", "False"):
        return name == "True"
    return name


@dataclass
class Split:
    """One split's rows as model inputs and encoded targets.

    inputs: {"numeric": float32 (n, k)} when there are numeric columns, plus one array of shape
            (n, 1) per categorical or text column (dtype object holding str).
    y:      regression float32 (n,) or (n, t); classification int64 class indices (n,).
    ids:    the id column's values (n,), when the data has one.
    """

    inputs: dict[str, np.ndarray]
    y: np.ndarray | None
    ids: np.ndarray | None = None
    row_index: np.ndarray | None = None  # positions in the source table (for evaluate/debugging)

    def __len__(self) -> int:
        first = next(iter(self.inputs.values()))
        return len(first)

    def take(self, positions) -> "Split":
        """The rows at `positions` (an array of positions, a boolean mask or a slice), every field
        alike: a fold of a pool, a chunk cut short, a window in serving order."""
        def pick(a):
            return None if a is None else a[positions]

        return Split(inputs={k: v[positions] for k, v in self.inputs.items()}, y=pick(self.y), ids=pick(self.ids),
                     row_index=pick(self.row_index))

    @staticmethod
    def concat(splits: "Iterable[Split]") -> "Split":
        """The rows of `splits` one after the other (one Split is given back as it is). The inputs
        are those of the first split; a field that some split lacks (None) is None in the result."""
        splits = list(splits)
        if len(splits) == 1:
            return splits[0]

        def cat(arrays):
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return Split(inputs={k: np.concatenate([s.inputs[k] for s in splits]) for k in splits[0].inputs},
                     y=cat([s.y for s in splits]), ids=cat([s.ids for s in splits]),
                     row_index=cat([s.row_index for s in splits]))


@dataclass
class Dataset:
    schema: FeatureSchema
    train: Split
    validation: Split | None
    test: Split | None
    fingerprint: str                    # sha256 of the source rows and split assignment
    source: str                         # human description: path or bundled name
    n_rows: int                         # rows after the missing-value policy, before splitting
    # k-fold (split.folds > 1): (train_positions, validation_positions) into `pool`, the non-test rows
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    pool: Split | None = None
    # things the data stage did that a user should hear about (rows dropped, stratification off)
    notes: list[str] = field(default_factory=list)
    # the source's own train/test split was kept (Keras sets, an .npz with x_train ... y_test)
    official_split: bool = False
    # statistics of the training rows (`data.stats`), all the model stage reads of them; for k-fold
    # those of the first fold's training rows (each fold's dataset carries its own)
    stats: "TrainStats | None" = None
