"""Column selection and typing, task inference, prepare_inputs and suggest_config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nettrain.config import load_config
from nettrain.data import load_dataset, prepare_inputs, suggest_config
from nettrain.data.types import ColumnInfo, FeatureSchema
from nettrain.errors import ConfigError, DataError, UsageError


def make_cfg(tmp_path: Path, data: dict, **sections):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": data, **sections}, sort_keys=False))
    return load_config(path)


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "d.csv") -> str:
    frame.to_csv(tmp_path / name, index=False)
    return name


def people(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": [f"p{i}" for i in range(n)],
        "age": rng.integers(18, 80, size=n),
        "income": rng.normal(50, 10, size=n).round(2),
        "city": rng.choice(["Oslo", "Lima", "Pune"], size=n),
        "member": rng.choice([True, False], size=n),
        "species": np.array(["cat", "dog"])[np.arange(n) % 2],
    })


def load(tmp_path, frame, **data):
    data.setdefault("target", "species")
    return load_dataset(make_cfg(tmp_path, {"source": write(tmp_path, frame), **data}))


# ----------------------------------------------------------------------------- selection

def test_default_features_skip_target_id_and_drop(tmp_path):
    ds = load(tmp_path, people(), id="id", drop=["city"])
    assert [c.name for c in ds.schema.columns] == ["age", "income", "member"]
    assert ds.schema.id_column == "id"
    assert ds.train.ids is not None and ds.train.ids[0].startswith("p")
    assert ds.train.ids.tolist() == [f"p{i}" for i in ds.train.row_index]


def test_features_keep_given_order(tmp_path):
    ds = load(tmp_path, people(), features=["city", "income"])
    assert [c.name for c in ds.schema.columns] == ["city", "income"]
    assert ds.schema.numeric_columns == ["income"]
    assert set(ds.train.inputs) == {"numeric", "city"}


def test_misspelt_target_suggests_the_column(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, people(), target="specis")
    msg = str(info.value)
    assert "data.target" in msg and "'specis'" in msg and "did you mean 'species'" in msg
    assert "exp.yaml" in msg and info.value.exit_code == 2


@pytest.mark.parametrize("data,key,words", [
    ({"features": ["age", "incom"]}, "data.features.1", ["'incom'", "did you mean 'income'"]),
    ({"features": ["age", "city"], "drop": ["city"]}, "data.features.1", ["both data.features and data.drop"]),
    ({"features": ["age", "species"]}, "data.features.1", ["is the target"]),
    ({"features": ["age", "age"]}, "data.features.1", ["listed twice"]),
    ({"drop": ["cty"]}, "data.drop.0", ["'cty'", "did you mean 'city'"]),
    ({"drop": ["species"]}, "data.drop.0", ["cannot be dropped"]),
    ({"id": "ID_"}, "data.id", ["did you mean 'id'"]),
    ({"id": "species"}, "data.id", ["is the target"]),
    ({"features": ["id", "age"], "id": "id"}, "data.features.0", ["is the id column"]),
    ({"columns": {"incme": {"type": "numeric"}}}, "data.columns.incme", ["did you mean 'income'"]),
    ({"columns": {"species": {"type": "categorical"}}}, "data.columns.species", ["is the target", "data.task"]),
    ({"drop": ["id", "age", "income", "city", "member"]}, "data.drop", ["no feature columns left"]),
])
def test_column_mistakes_name_the_key(tmp_path, data, key, words):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, people(), **data)
    assert info.value.path == key
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, UsageError)


# -------------------------------------------------------------------------------- typing

def test_auto_types(tmp_path):
    df = people()
    df["code"] = [str(i * 3) for i in range(len(df))]      # numbers stored as strings
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    ds = load_dataset(make_cfg(tmp_path, {"source": "d.jsonl", "target": "species", "id": "id"}))
    kinds = {c.name: c.kind for c in ds.schema.columns}
    assert kinds == {"age": "numeric", "income": "numeric", "city": "categorical", "member": "numeric",
                     "code": "numeric"}
    numeric = ds.schema.numeric_columns
    x = ds.train.inputs["numeric"]
    rows = ds.train.row_index
    assert set(np.unique(x[:, numeric.index("member")])) <= {0.0, 1.0}
    np.testing.assert_array_equal(x[:, numeric.index("code")], (rows * 3).astype(np.float32))
    assert ds.train.inputs["city"].dtype == object and isinstance(ds.train.inputs["city"][0, 0], str)


def test_long_free_text_is_tokenized_unless_configured(tmp_path):
    # (it stayed categorical before issue 22: init said text, fit one-hot encoded 40 values)
    df = people()
    df["note"] = [f"this is a rather long free text note number {i} about the row" for i in range(len(df))]
    ds = load(tmp_path, df, id="id")
    note = next(c for c in ds.schema.columns if c.name == "note")
    assert (note.kind, note.output_mode, note.max_tokens) == ("text", "multi_hot", 10000)
    ds = load(tmp_path, df, id="id", columns={"note": {"type": "categorical"}})
    assert {c.name: c.kind for c in ds.schema.columns}["note"] == "categorical"
    ds = load(tmp_path, df, columns={"note": {"type": "text", "output_mode": "int", "sequence_length": 12}})
    note = next(c for c in ds.schema.columns if c.name == "note")
    assert (note.kind, note.output_mode, note.sequence_length, note.max_tokens) == ("text", "int", 12, 10000)
    assert ds.train.inputs["note"].shape == (len(ds.train), 1)


def test_override_numeric_column_as_categorical(tmp_path):
    ds = load(tmp_path, people(), columns={"age": {"type": "categorical", "embedding_dim": 4}})
    age = next(c for c in ds.schema.columns if c.name == "age")
    assert (age.kind, age.embedding_dim) == ("categorical", 4)
    assert ds.train.inputs["age"][0, 0].isdigit()


def test_declared_numeric_with_text_value_names_column_value_and_row(tmp_path):
    df = people()
    df["income"] = df["income"].astype(object)
    df.loc[5, "income"] = "n/a?"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, df, columns={"income": {"type": "numeric"}})
    msg = str(info.value)
    assert info.value.path == "data.columns.income.type"
    assert "'income'" in msg and "row 6" in msg and "'n/a?'" in msg


def test_datetime_column_becomes_numeric_date_parts(tmp_path):
    # (before issue 22 a datetime column was an error asking for data.drop)
    df = people(10)
    df["when"] = pd.date_range("2024-01-30", periods=10)
    df.to_parquet(tmp_path / "d.parquet")
    ds = load_dataset(make_cfg(tmp_path, {"source": "d.parquet", "target": "species", "id": "id"}))
    parts = [c.name for c in ds.schema.columns if c.origin is not None]
    assert parts == ["when.year", "when.month", "when.day", "when.weekday"]  # midnight only: no hour
    x = ds.train.inputs["numeric"]
    days = df["when"].iloc[ds.train.row_index]
    np.testing.assert_array_equal(x[:, ds.schema.numeric_columns.index("when.day")], days.dt.day.to_numpy())
    np.testing.assert_array_equal(x[:, ds.schema.numeric_columns.index("when.month")], days.dt.month.to_numpy())
    ds = load_dataset(make_cfg(tmp_path, {"source": "d.parquet", "target": "species", "id": "id", "drop": ["when"]}))
    assert not any(c.name.startswith("when") for c in ds.schema.columns)


# ---------------------------------------------------------------------------------- task

def frame_with_target(values) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({"x": np.linspace(0, 1, n), "y": values})


@pytest.mark.filterwarnings(r"ignore:data\.split\.\w+. cannot stratify:UserWarning")  # 20 or 30 classes in 60 rows
@pytest.mark.parametrize("values,task,names", [
    (np.linspace(0, 5, 60), "regression", None),
    (np.array(["a", "b"] * 30), "binary", ["a", "b"]),
    (np.array(["a", "b", "c"] * 20), "multiclass", ["a", "b", "c"]),
    (np.array([True, False] * 30), "binary", ["False", "True"]),
    (np.array([2, 10, 1] * 20), "multiclass", ["1", "2", "10"]),
    (np.arange(60) % 21, "regression", None),
    (np.arange(60) % 20, "multiclass", [str(i) for i in range(20)]),
])
def test_task_inferred_from_target(tmp_path, values, task, names):
    ds = load(tmp_path, frame_with_target(values), target="y")
    assert ds.schema.task == task
    assert ds.schema.class_names == names
    if names is None:
        assert ds.train.y.dtype == np.float32 and ds.train.y.ndim == 1
    else:
        assert ds.train.y.dtype == np.int64
        frame = frame_with_target(values)
        labels = [str(v) for v in frame["y"].iloc[ds.train.row_index]]
        assert [names[i] for i in ds.train.y] == labels


@pytest.mark.filterwarnings(r"ignore:data\.split\.\w+. cannot stratify:UserWarning")  # 20 or 30 classes in 60 rows
@pytest.mark.parametrize("loss,values,task", [
    ("mean_squared_error", np.arange(60) % 3, "regression"),
    ({"name": "huber", "delta": 1.0}, np.arange(60) % 3, "regression"),
    ("categorical_crossentropy", np.array(["a", "b"] * 30), "multiclass"),
    ("sparse_categorical_crossentropy", np.arange(60) % 30, "multiclass"),
    ("binary_crossentropy", np.arange(60) % 2, "binary"),
    ("hinge", np.array(["n", "p"] * 30), "binary"),
])
def test_loss_decides_task(tmp_path, loss, values, task):
    df = frame_with_target(values)
    cfg = make_cfg(tmp_path, {"source": write(tmp_path, df), "target": "y"}, training={"loss": loss})
    assert load_dataset(cfg).schema.task == task


@pytest.mark.parametrize("loss,task", [
    ("mse", "regression"), ("MeanAbsoluteError", "regression"), ("log_cosh", "regression"),
    ({"name": "Huber"}, "regression"), ("bce", "binary"), ("BinaryFocalCrossentropy", "binary"),
    ("squared_hinge", "binary"), ("kl_divergence", "multiclass"), ("CategoricalHinge", "multiclass"),
    ("auto", None), ("dice", None),
])
def test_loss_names_map_to_tasks(loss, task):
    from nettrain.data.task import loss_task

    assert loss_task(loss) == task


def test_binary_loss_with_three_classes(tmp_path):
    df = frame_with_target(np.array(["a", "b", "c"] * 20))
    cfg = make_cfg(tmp_path, {"source": write(tmp_path, df), "target": "y"},
                   training={"loss": "binary_crossentropy"})
    with pytest.raises(ConfigError) as info:
        load_dataset(cfg)
    msg = str(info.value)
    assert info.value.path == "training.loss" and "3 classes" in msg
    assert "categorical_crossentropy" in msg and "sparse_categorical_crossentropy" in msg


def test_regression_loss_with_text_labels(tmp_path):
    df = frame_with_target(np.array(["a", "b", "c"] * 20))
    cfg = make_cfg(tmp_path, {"source": write(tmp_path, df), "target": "y"},
                   training={"loss": "mean_absolute_error"})
    with pytest.raises(ConfigError, match=r"training\.loss: 'mean_absolute_error' is a regression loss "
                                          r"but target 'y' holds labels"):
        load_dataset(cfg)


def test_explicit_task_checked_against_target(tmp_path):
    df = frame_with_target(np.array(["a", "b", "c"] * 20))
    with pytest.raises(ConfigError, match=r"data\.task: task binary needs 2 classes but target 'y' has 3"):
        load(tmp_path, df, target="y", task="binary")
    with pytest.raises(ConfigError, match=r"data\.task: task is regression but target 'y' holds labels"):
        load(tmp_path, df, target="y", task="regression")
    ds = load(tmp_path, frame_with_target(np.arange(60) % 2), target="y", task="regression")
    assert ds.schema.task == "regression"


def test_single_class_target(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.target: target 'y' has a single class"):
        load(tmp_path, frame_with_target(np.array(["a"] * 20)), target="y")


# ------------------------------------------------------------------------ prepare_inputs

def schema() -> FeatureSchema:
    return FeatureSchema(task="binary", target="species",
                         columns=[ColumnInfo("age", "numeric"), ColumnInfo("income", "numeric"),
                                  ColumnInfo("city", "categorical")],
                         class_names=["cat", "dog"], imputation={"income": 50.0, "city": "Oslo"},
                         id_column="id")


def test_prepare_inputs_applies_schema():
    frame = pd.DataFrame({"city": ["Lima", None, 3], "unused": [1, 2, 3], "age": ["20", 30, 40.5],
                          "income": [1.0, np.nan, 3.0], "id": ["a", "b", "c"],
                          "species": ["dog", "cat", "dog"]})
    split = prepare_inputs(frame, schema())
    np.testing.assert_array_equal(split.inputs["numeric"], np.array([[20, 1], [30, 50], [40.5, 3]], np.float32))
    assert split.inputs["numeric"].dtype == np.float32
    assert split.inputs["city"].tolist() == [["Lima"], ["Oslo"], ["3"]]
    assert split.y.tolist() == [1, 0, 1] and split.y.dtype == np.int64
    assert split.ids.tolist() == ["a", "b", "c"]
    assert split.row_index.tolist() == [0, 1, 2]
    assert len(split) == 3


def test_prepare_inputs_without_target_and_without_fill_values():
    s = schema()
    s.imputation = {}
    frame = pd.DataFrame({"age": [1, 2], "income": [3, 4], "city": ["Pune", None]})
    split = prepare_inputs(frame, s)
    assert split.y is None and split.ids is None
    assert split.inputs["city"].tolist() == [["Pune"], [""]]
    with pytest.raises(DataError, match="target column 'species' is missing"):
        prepare_inputs(frame, s, require_target=True)


def test_prepare_inputs_missing_column_names_it_and_the_file_columns():
    frame = pd.DataFrame({"age": [1], "incme": [2.0], "city": ["Oslo"]})
    with pytest.raises(DataError) as info:
        prepare_inputs(frame, schema(), source="new.csv")
    msg = str(info.value)
    assert "new.csv" in msg and "'income'" in msg and "did you mean 'incme'" in msg
    assert "the data has: age, incme, city" in msg and info.value.exit_code == 2


def test_prepare_inputs_bad_number_names_column_row_and_value():
    frame = pd.DataFrame({"age": [1, 2, "old"], "income": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"column 'age' must be numeric but row 3 holds 'old'"):
        prepare_inputs(frame, schema())


def test_prepare_inputs_remaining_nan_names_column_and_count():
    frame = pd.DataFrame({"age": [np.nan, 2, np.nan], "income": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"column 'age' has 2 missing values.*preprocessing.missing"):
        prepare_inputs(frame, schema())


def test_prepare_inputs_infinite_value():
    frame = pd.DataFrame({"age": [1.0, np.inf], "income": [1.0, 2.0], "city": ["a", "b"]})
    with pytest.raises(DataError, match=r"'age'.*infinite.*row 2") as info:
        prepare_inputs(frame, schema())
    assert "row 2: inf; float32 inputs must be finite" in str(info.value)   # the value as written, not np.float64(inf)


def test_prepare_inputs_unknown_label():
    frame = pd.DataFrame({"age": [1], "income": [1.0], "city": ["a"], "species": ["cow"]})
    with pytest.raises(DataError, match=r"label 'cow' in row 1.*known classes: cat, dog"):
        prepare_inputs(frame, schema())


def test_prepare_inputs_labels_match_across_dtypes():
    s = FeatureSchema(task="multiclass", target="y", columns=[ColumnInfo("x", "numeric")],
                      class_names=["1", "2", "10"])
    as_int = prepare_inputs(pd.DataFrame({"x": [0, 0, 0], "y": [10, 1, 2]}), s)
    as_float = prepare_inputs(pd.DataFrame({"x": [0, 0, 0], "y": [10.0, 1.0, 2.0]}), s)
    as_text = prepare_inputs(pd.DataFrame({"x": [0, 0, 0], "y": ["10", "1", "2"]}), s)
    assert as_int.y.tolist() == as_float.y.tolist() == as_text.y.tolist() == [2, 0, 1]


def test_prepare_inputs_makes_derived_columns_from_their_raw_column():
    date = {"column": "when", "type": "date", "format": "%d.%m.%Y"}
    s = FeatureSchema(task="regression", target="y", columns=[
        ColumnInfo("x", "numeric"), ColumnInfo("when.month", "numeric", origin={**date, "part": "month"}),
        ColumnInfo("when.weekday", "numeric", origin={**date, "part": "weekday"}),
        ColumnInfo("ok.y", "numeric", origin={"column": "ok", "type": "boolean", "true": "y", "false": "n"})],
        imputation={"when.month": 6.0, "when.weekday": 2.0})
    assert s.file_columns == ["x", "when", "ok"] and s.numeric_file_columns == ["x"]
    assert s.numeric_columns == ["x", "when.month", "when.weekday", "ok.y"]
    frame = pd.DataFrame({"x": [1, 2, 3], "when": ["31.01.2017", None, "junk"], "ok": ["Y", "n", None], "y": [1, 2, 3],
                          "when.month": [99, 99, 99]})  # a column of that name in the data is not read
    np.testing.assert_array_equal(prepare_inputs(frame.assign(ok=["Y", "n", "n"]), s).inputs["numeric"],
                                  [[1, 1, 1, 1], [2, 6, 2, 0], [3, 6, 2, 0]])
    from nettrain.data.inputs import missing_counts, missing_rows

    assert missing_counts(frame, s) == {"when": 2, "ok": 1}  # a value that is no date counts as missing
    assert missing_rows(frame, s).tolist() == [False, True, True]
    with pytest.raises(DataError, match=r"missing column 'when'"):
        prepare_inputs(frame.drop(columns="when"), s)


def test_schema_round_trips_through_json(tmp_path):
    import json

    cfg = make_cfg(tmp_path, {"source": write(tmp_path, people()), "target": "species", "id": "id"},
                   preprocessing={"missing": "mean"})
    ds = load_dataset(cfg)
    again = FeatureSchema.from_dict(json.loads(json.dumps(ds.schema.to_dict())))
    assert again == ds.schema
    frame = people().iloc[:5]
    np.testing.assert_array_equal(prepare_inputs(frame, again).inputs["numeric"],
                                  prepare_inputs(frame, ds.schema).inputs["numeric"])


# ------------------------------------------------------------------------ suggest_config

def test_suggest_config_loads_and_trains_the_data(tmp_path, monkeypatch):
    df = people(60)
    df.loc[3, "income"] = np.nan
    df.to_csv(tmp_path / "people.csv", index=False)
    monkeypatch.chdir(tmp_path)
    text = suggest_config(Path("people.csv"), "species")
    assert "source: people.csv" in text and "missing: median" in text
    assert "task: binary" in text and "id: id" in text and "stratify: true" in text
    assert sum(line.startswith("#") for line in text.splitlines()) >= 5
    (tmp_path / "suggested.yaml").write_text(text)
    cfg = load_config(tmp_path / "suggested.yaml")
    assert cfg.training.epochs == 50 and cfg.training.optimizer == {"name": "adam", "learning_rate": 0.001} and cfg.training.loss == "auto"
    assert [layer.type for layer in cfg.model.layers] == ["Dense", "Dense"]
    assert cfg.callbacks.early_stopping.patience == 10 and cfg.callbacks.early_stopping.restore_best_weights
    ds = load_dataset(cfg)
    assert ds.schema.task == "binary" and ds.schema.imputation["income"] > 0


def test_suggest_config_regression_with_awkward_names(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"size: m2": rng.normal(size=50), "#rooms": rng.integers(1, 5, 50),
                       "price (k)": rng.normal(300, 50, size=50)})
    path = tmp_path / "house data.csv"
    df.to_csv(path, index=False)
    text = suggest_config(path, "price (k)")
    # (init wrote missing: error for a sample without gaps before issue 22; predict then failed on a gap)
    assert "task: regression" in text and "missing: median" in text and "stratify" not in text
    assert "missing: error" not in text
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.data.target == "price (k)"
    ds = load_dataset(cfg)
    assert ds.schema.numeric_columns == ["size: m2", "#rooms"]


def test_suggest_config_unknown_target(tmp_path):
    people(10).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(UsageError, match=r"no column 'specie'.*did you mean 'species'"):
        suggest_config(tmp_path / "p.csv", "specie")


def test_identifier_like_categorical_column_is_flagged(tmp_path):
    import warnings

    import pandas as pd

    from nettrain.config import load_config
    from nettrain.data import load_dataset

    n = 120
    pd.DataFrame({"key": [f"k{i}" for i in range(n)], "x": range(n), "y": [i % 2 for i in range(n)]}).to_csv(
        tmp_path / "d.csv", index=False)
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: d.csv, target: y}\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(load_config(path))
    # (before issue 22 the column was one-hot encoded, 120 values wide, with a warning)
    assert [c.name for c in dataset.schema.columns] == ["x"]
    assert any("'key'" in n and "left out" in n and "data.id" in n for n in dataset.notes)
    assert any("'key'" in str(w.message) for w in caught)
    chosen = load_dataset(load_config(path, ["data.features=[key, x]"]))  # a column the user chose stays
    key = next(c for c in chosen.schema.columns if c.name == "key")
    assert (key.kind, key.embedding_dim) == ("categorical", 16)
