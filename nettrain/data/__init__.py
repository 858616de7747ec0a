"""The data stage: sources, column typing, task inference, missing values, splits (no TensorFlow).

- `load_dataset(cfg)`: a validated Config -> `Dataset` (schema, train/validation/test splits,
  k folds, fingerprint).
- `read_table(path)`: a data file -> DataFrame (.csv .tsv .parquet .jsonl .npz); `read_parts(path)`
  keeps the train/test parts of an .npz that holds its own split.
- `prepare_inputs(frame, schema)`: raw rows (e.g. a predict file) -> a `Split` with the same
  preprocessing as training; `data.rows.file_rows(path, schema)`: a data file's rows as such Splits,
  read chunk by chunk with the reader of a stream (`data.stream`, data larger than memory).
- `suggest_config(path, target)`: YAML text of a starting config for a data file.
"""

from nettrain.data.lazy import lazy_names

# The package's names, imported from their modules on first use (PEP 562): `validate` imports
# `nettrain.data.kinds` or `nettrain.data.stream.path` without numpy and pandas coming along.
_HOME = {"prepare_inputs": "inputs", "load_dataset": "load", "read_parts": "sources", "read_table": "sources",
         "suggest_config": "suggest", "NUMERIC_INPUT": "types", "ColumnInfo": "types", "Dataset": "types",
         "FeatureSchema": "types", "Split": "types"}

__all__ = ["load_dataset", "read_table", "read_parts", "prepare_inputs", "suggest_config", "Dataset", "Split",
           "FeatureSchema", "ColumnInfo", "NUMERIC_INPUT"]


__getattr__ = lazy_names(__name__, _HOME, globals())
