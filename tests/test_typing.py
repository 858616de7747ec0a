"""Issue 22, column typing a data scientist would choose: one rule (`data.typing`) for init, fit's
automatic typing and `validate --build`, so init's config and fit agree.

One test per trait (ISO timestamps, US and European dates, a date with a time and its hour part,
id-like text, a row index, high-cardinality text, integer codes, booleans), then `init --test`, the
missing-value policy init writes, init and fit agreeing on one file, and a saved model that reads a
date column as fit did (predict parity, in memory and streamed).
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.data import chunks, load_dataset, prepare_inputs, suggest_config
from nettrain.data import typing as T
from nettrain.data import suggest
from nettrain.data.rows import file_rows
from nettrain.errors import ConfigError, DataError, UsageError

runner = CliRunner()
N = 120


def cfg_for(folder: Path, data: dict, **sections):
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": data, **sections}, sort_keys=False))
    return load_config(path)


def loaded(folder: Path, frame: pd.DataFrame, target: str = "y", **data):
    frame.to_csv(folder / "d.csv", index=False)
    return load_dataset(cfg_for(folder, {"source": "d.csv", "target": target, **data}))


def kinds(ds) -> dict[str, str]:
    return {c.name: c.kind for c in ds.schema.columns}


def column(ds, name: str) -> np.ndarray:
    """A numeric feature's training values, in source row order."""
    x = ds.train.inputs["numeric"][:, ds.schema.numeric_columns.index(name)]
    return x[np.argsort(ds.train.row_index)]


def base(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": np.where(x > 0, "a", "b")})


def typed(values, name: str = "c") -> T.ColumnType:
    return T.column_type(pd.Series(values, dtype=object), name)


# ------------------------------------------------------------------------------ dates

def test_iso_timestamps_are_a_date_with_an_hour(tmp_path):
    stamps = pd.date_range("2017-01-01 06:00:42", periods=N, freq="37h")
    df = base().assign(when=stamps.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ct = typed(df["when"])
    assert (ct.kind, ct.date_format, ct.time) == ("date", "%Y-%m-%dT%H:%M:%SZ", True)
    ds = loaded(tmp_path, df)
    parts = [c for c in ds.schema.columns if c.origin is not None]
    assert [c.name for c in parts] == ["when.year", "when.month", "when.day", "when.weekday", "when.hour"]
    assert {c.kind for c in parts} == {"numeric"} and "when" not in kinds(ds)
    rows = np.sort(ds.train.row_index)
    np.testing.assert_array_equal(column(ds, "when.hour"), stamps.hour[rows])
    np.testing.assert_array_equal(column(ds, "when.weekday"), stamps.day_of_week[rows])
    np.testing.assert_array_equal(column(ds, "when.year"), stamps.year[rows])


def test_us_dates_parse_month_first_and_carry_no_hour(tmp_path):
    days = pd.date_range("2016-12-25", periods=N, freq="D")
    df = base().assign(day=days.strftime("%m/%d/%Y"))
    ct = typed(df["day"])
    assert (ct.kind, ct.date_format, ct.time) == ("date", "%m/%d/%Y", False)
    ds = loaded(tmp_path, df)
    assert [c.name for c in ds.schema.columns if c.origin] == ["day.year", "day.month", "day.day", "day.weekday"]
    rows = np.sort(ds.train.row_index)
    np.testing.assert_array_equal(column(ds, "day.day"), days.day[rows])
    np.testing.assert_array_equal(column(ds, "day.month"), days.month[rows])


def test_european_dates_and_ambiguous_ones():
    assert typed(["31.01.2017", "01.02.2017", "15.03.2018"] * 10).date_format == "%d.%m.%Y"
    assert typed(["31/01/2017", "01/02/2017"] * 10).date_format == "%d/%m/%Y"  # a day above 12 decides
    assert typed(["01/02/2017", "03/04/2017"] * 10).date_format == "%m/%d/%Y"  # none does: month first


def test_a_date_with_a_time_has_an_hour_part(tmp_path):
    stamps = pd.date_range("2017-01-01 00:30", periods=N, freq="5h")
    df = base().assign(seen=stamps.strftime("%Y-%m-%d %H:%M"))
    assert typed(df["seen"]).date_format == "%Y-%m-%d %H:%M"
    ds = loaded(tmp_path, df)
    np.testing.assert_array_equal(column(ds, "seen.hour"), stamps.hour[np.sort(ds.train.row_index)])


def test_a_date_needs_95_percent_of_its_values_in_one_format():
    good = [f"2017-01-{d:02d}" for d in range(1, 29)] * 4            # 112 dates
    assert typed(good + ["soon"] * 5).kind == "date"                   # 95.7%
    assert typed(good + ["soon"] * 7).kind != "date"                   # 94.1%
    assert typed(good + [f"02/{d:02d}/2017" for d in range(1, 15)]).kind != "date"  # two formats


def test_a_value_that_is_no_date_counts_as_missing_and_is_filled(tmp_path):
    df = base().assign(when=[f"2017-03-{i % 28 + 1:02d}" for i in range(N)])
    df.loc[[3, 50], "when"] = ["later", None]
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = cfg_for(tmp_path, {"source": "d.csv", "target": "y", "split": {"test": 0, "validation": 0}},
                  preprocessing={"missing": "median"})
    ds = load_dataset(cfg)
    assert ds.schema.imputation["when.day"] == float(np.median(np.arange(N) % 28 + 1))
    assert not np.isnan(ds.train.inputs["numeric"]).any()
    with pytest.raises(DataError, match=r"missing values in 'when' \(2\)"):
        load_dataset(cfg_for(tmp_path, {"source": "d.csv", "target": "y"}))  # missing: error


def test_declared_date_column_and_what_it_refuses(tmp_path):
    df = base().assign(code=[f"2018-{i % 12 + 1:02d}-01" for i in range(N)], word=["soon"] * N)
    ds = loaded(tmp_path, df, columns={"code": {"type": "date"}})
    assert "code.month" in ds.schema.numeric_columns
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, df, columns={"word": {"type": "date"}})
    assert info.value.path == "data.columns.word.type" and "'soon'" in str(info.value) and "YYYY-MM-DD" in str(info.value)
    with pytest.raises(ConfigError, match="embedding_dim"):
        loaded(tmp_path, df, columns={"code": {"type": "date", "embedding_dim": 4}})
    clash = df.assign(**{"code.year": 1.0})
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, clash, columns={"code": {"type": "date"}})
    assert "'code.year'" in str(info.value) and "rename" in str(info.value)


# ------------------------------------------------------------------------ identifiers

def test_id_like_text_is_left_out_by_fit_and_dropped_by_init(tmp_path):
    df = base().assign(ticket=[f"T-{i * 7919 % 100003}" for i in range(N)])
    assert typed(df["ticket"]).kind == "identifier"
    with pytest.warns(UserWarning, match="'ticket' is left out"):
        ds = loaded(tmp_path, df)
    assert "ticket" not in kinds(ds) and any("ticket" in n for n in ds.notes)
    text = suggest_config(tmp_path / "d.csv", "y")
    assert yaml.safe_load(text)["data"]["drop"] == ["ticket"]
    assert "- ticket" in text and "an identifier" in text
    # nearly unique: 90% distinct among 50+ values is an identifier too; fewer distinct is not
    assert typed([f"k{i}" for i in range(90)] + ["k0"] * 10).kind == "identifier"
    assert typed([f"k{i % 40}" for i in range(100)]).kind == "categorical"
    assert typed([f"k{i}" for i in range(10)]).kind == "categorical"  # too few rows to tell


def test_a_row_index_is_dropped_by_init_but_kept_numeric_by_fit(tmp_path):
    df = base().assign(row=np.random.default_rng(1).permutation(N) + 1)
    assert typed(df["row"]).offer == "identifier"
    assert typed(np.arange(1990, 1990 + N)).offer is None          # years: no row index
    ds = loaded(tmp_path, df)
    assert kinds(ds)["row"] == "numeric"
    text = suggest_config(tmp_path / "d.csv", "y")
    assert yaml.safe_load(text)["data"]["drop"] == ["row"] and "a row index" in text


# ------------------------------------------------------------------------ few values

def test_a_column_of_a_few_values_is_left_out_by_fit_and_dropped_by_init(tmp_path):
    """Values in 2 of 161 rows: a split or a fold often held none of them in its training rows, where fit
    refused the run ('no values in the training rows, so no most frequent value') on the config init
    wrote. Such a column is `sparse`: left out by fit, dropped by init, with the reason."""
    n = 161
    df = base(n, seed=5).assign(reason=[("OTHER", "WITHDRAWN")[i - 3] if i in (3, 4) else None for i in range(n)])
    assert typed(df["reason"]).kind == "sparse" and "values in only 2 of 161 rows" in typed(df["reason"]).reason
    numbers = pd.Series([1.5] * 9 + [np.nan] * 91)
    assert T.column_type(numbers, "m").kind == "sparse"
    assert T.column_type(pd.Series([1.5] * 10 + [np.nan] * 90), "m").kind == "numeric"   # ten values: kept
    assert T.column_type(pd.Series([1.5, 2.5, 3.5] + [np.nan] * 17), "m").kind == "numeric"  # 15% of a small table
    assert T.column_type(numbers, "m", sparse=False).kind == "numeric"
    df.to_csv(tmp_path / "d.csv", index=False)
    text = suggest_config(tmp_path / "d.csv", "y")
    assert yaml.safe_load(text)["data"]["drop"] == ["reason"] and "too few to learn from" in text
    (tmp_path / "c.yaml").write_text("seed: 1\ndata: {source: d.csv, target: y, split: {test: 0.2, folds: 5}}\n"
                                     "preprocessing: {missing: median}\nmodel: {layers: [{type: Dense, units: 4}]}\n"
                                     "training: {epochs: 1}\noutput: {plots: false}\n")
    with pytest.warns(UserWarning, match=r"'reason' is left out \(values in only 2 of 161 rows"):
        result = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output   # seed 1: the first fold's training rows held neither value
    features = json.loads((tmp_path / "run" / "fold-1" / "features.json").read_text())
    assert [c["name"] for c in features["columns"]] == ["x"]
    # named in data.features, it is a feature of the kind its values say
    ds = load_dataset(cfg_for(tmp_path, {"source": "d.csv", "target": "y", "features": ["x", "reason"],
                                         "split": {"test": 0.0, "validation": 0.0}},
                              preprocessing={"missing": "most_frequent"}))
    assert kinds(ds)["reason"] == "categorical"


# ------------------------------------------------------------------------ categories

def test_high_cardinality_text_gets_an_embedding_under_one_hot(tmp_path):
    rng = np.random.default_rng(2)
    df = base(300).assign(state=rng.choice([f"S{i:02d}" for i in range(60)], 300), color=rng.choice(["r", "g"], 300))
    ct = typed(df["state"])
    assert (ct.kind, ct.embedding_dim) == ("categorical", T.embedding_size(60)) and 2 <= ct.embedding_dim <= 16
    ds = loaded(tmp_path, df)
    by_name = {c.name: c for c in ds.schema.columns}
    assert (by_name["state"].embedding_dim, by_name["color"].embedding_dim) == (ct.embedding_dim, None)
    text = suggest_config(tmp_path / "d.csv", "y")
    assert yaml.safe_load(text)["data"]["columns"]["state"] == {"type": "categorical",
                                                                "embedding_dim": ct.embedding_dim}
    # the model embeds it although preprocessing.categorical is one_hot, and one-hot encodes color
    from nettrain.model.build import build_model

    model = build_model(cfg_for(tmp_path, {"source": "d.csv", "target": "y"}), ds, compile=False)
    names = [layer.name for layer in model.layers]
    assert "embed_state" in names and "onehot_state" not in names and "onehot_color" in names
    assert model.get_layer("embed_state").output_dim == ct.embedding_dim


def test_integer_codes_are_offered_as_categorical_by_init_only(tmp_path):
    rng = np.random.default_rng(3)
    df = base().assign(month=rng.integers(1, 13, N), area=rng.choice([408, 415, 510], N),
                       children=rng.integers(0, 6, N), n_rooms=rng.integers(1, 6, N))
    assert typed(df["month"]).offer == typed(df["area"]).offer == "categorical"
    assert typed(df["children"]).offer is None            # a count from 0
    assert T.column_type(df["n_rooms"], "n_rooms").offer is None  # a name that counts
    ds = loaded(tmp_path, df)
    assert {kinds(ds)[c] for c in ("month", "area", "children", "n_rooms")} == {"numeric"}
    text = suggest_config(tmp_path / "d.csv", "y")
    columns = yaml.safe_load(text)["data"]["columns"]
    assert columns == {"month": {"type": "categorical"}, "area": {"type": "categorical"}}
    line = next(line for line in text.splitlines() if line.strip().startswith("month:"))
    assert "counts" in line and "a guess" in line and "delete this line" in line


# -------------------------------------------------------------------------- booleans

def test_booleans_are_one_and_zero(tmp_path):
    rng = np.random.default_rng(4)
    df = base().assign(member=rng.choice(["true", "False"], N), smoker=rng.choice(["Yes", "no"], N))
    assert typed(df["member"]).kind == typed(df["smoker"]).kind == "boolean"
    ds = loaded(tmp_path, df)
    assert kinds(ds)["member"] == "numeric" and "smoker.yes" in kinds(ds) and "smoker" not in kinds(ds)
    rows = np.sort(ds.train.row_index)
    np.testing.assert_array_equal(column(ds, "smoker.yes"), (df["smoker"].str.lower() == "yes")[rows].astype(float))
    np.testing.assert_array_equal(column(ds, "member"), (df["member"].str.lower() == "true")[rows].astype(float))
    new = pd.DataFrame({"x": [0.1, 0.2], "member": [True, False], "smoker": ["YES", "maybe"]})
    with pytest.raises(DataError, match=r"'smoker' holds 'maybe' in row 2.*'yes' and 'no'"):
        prepare_inputs(new, ds.schema, source="new.csv")
    assert typed(["yes", "no", "maybe"] * 10).kind == "categorical"


# ------------------------------------------------------------------------------ init

def test_init_with_a_test_file_takes_no_test_split(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    base(100).to_csv(tmp_path / "data" / "train.csv", index=False)
    base(30, seed=9).to_csv(tmp_path / "data" / "test.csv", index=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "data/train.csv", "--target", "y", "--test", "data/test.csv",
                                 "-o", "configs/c.yaml"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load((tmp_path / "configs" / "c.yaml").read_text())["data"]
    assert (data["train"], data["test"]) == ("../data/train.csv", "../data/test.csv") and "source" not in data
    assert "test" not in data["split"] and data["split"]["validation"] == suggest.VALIDATION_SHARE == 0.1
    ds = load_dataset(load_config(tmp_path / "configs" / "c.yaml"))
    assert len(ds.test) == 30 and len(ds.train) + len(ds.validation) == 100
    bad = runner.invoke(app, ["init", "data/train.csv", "--target", "y", "--test", "data/train.csv"])
    assert bad.exit_code == 2 and "training file itself" in bad.stderr
    pd.DataFrame({"x": [1.0]}).to_csv(tmp_path / "data" / "other.csv", index=False)
    bad = runner.invoke(app, ["init", "data/train.csv", "--target", "y", "--test", "data/other.csv"])
    assert bad.exit_code == 2 and "data/other.csv" in bad.stderr and "'y'" in bad.stderr


def test_init_api_takes_the_test_file(tmp_path, monkeypatch):
    from nettrain.api import init_config

    monkeypatch.chdir(tmp_path)
    base(60).to_csv("a.csv", index=False)
    base(20, seed=5).to_csv("b.csv", index=False)
    text = init_config("a.csv", "y", test="b.csv", output="out/c.yaml")
    assert yaml.safe_load(text)["data"]["test"] == "../b.csv"
    assert yaml.safe_load(init_config("a.csv", "y", test=tmp_path / "b.csv"))["data"]["test"] == str(tmp_path / "b.csv")


@pytest.mark.parametrize("frame, policy", [
    (base(), "median"),                                                           # numbers, no gap
    (pd.DataFrame({"c": ["r", "g", "b"] * 20, "y": ["a", "b"] * 30}), "most_frequent"),  # text only
    (base().assign(when=[f"2017-01-{i % 28 + 1:02d}" for i in range(N)]).drop(columns="x"), "median"),
])
def test_init_never_writes_missing_error(tmp_path, frame, policy):
    frame.to_csv(tmp_path / "d.csv", index=False)
    text = suggest_config(tmp_path / "d.csv", "y")
    assert yaml.safe_load(text)["preprocessing"]["missing"] == policy
    assert "missing: error" not in text and "predict time alike" in text


def test_inits_missing_policy_fills_a_gap_at_predict_time(tmp_path):
    base().to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "c.yaml").write_text(suggest_config(tmp_path / "d.csv", "y", output=tmp_path / "c.yaml"))
    ds = load_dataset(load_config(tmp_path / "c.yaml"))
    split = prepare_inputs(pd.DataFrame({"x": [np.nan, 1.0]}), ds.schema)  # a gap the training rows never had
    assert split.inputs["numeric"][0, 0] == np.float32(ds.schema.imputation["x"])


@pytest.mark.slow
def test_inits_median_fills_the_same_gaps_streamed_as_in_memory(tmp_path):
    """init's `missing: median` is applied to a stream too (data.stream: auto may stream on a machine
    with less memory than the one init ran on): the same fill values, in features.json, both ways."""
    df = base(400)
    df.loc[::9, "x"] = np.nan
    df.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "c.yaml").write_text(suggest_config(tmp_path / "d.csv", "y", output=tmp_path / "c.yaml"))
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["preprocessing"]["missing"] == "median"
    fills = {}
    for stream in ("false", "true"):
        done = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / stream), "--quiet",
                                   "--set", f"data.stream={stream}", "--set", "training.epochs=1",
                                   "--set", "data.split.shuffle=false", "--set", "data.split.stratify=false"])
        # (shuffled, the two paths split the rows differently)
        assert done.exit_code == 0, done.output
        fills[stream] = json.loads((tmp_path / stream / "features.json").read_text())["imputation"]
    x = df["x"].dropna().to_numpy(np.float32)
    assert fills["true"] == fills["false"] and fills["true"]["x"] != float(np.median(x))  # of the training rows


# --------------------------------------------------------------------- init and fit agree

def traits(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A column per trait, and a target that depends on some of them."""
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2017-01-01 06:00") + pd.to_timedelta(rng.integers(0, 400 * 24, n), unit="h")
    x = rng.normal(size=n)
    df = pd.DataFrame({
        "rowid": np.arange(1, n + 1),
        "when": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "day": stamps.strftime("%m/%d/%Y"),
        "ticket": [f"T{v}" for v in rng.permutation(10 * n)[:n]],
        "state": rng.choice([f"S{i:02d}" for i in range(55)], n),
        "color": rng.choice(["red", "green", "blue"], n),
        "month": rng.integers(1, 13, n),
        "children": rng.integers(0, 6, n),
        "smoker": rng.choice(["yes", "no"], n),
        "member": rng.choice(["true", "false"], n),
        "note": [f"a rather long free text note, number {i} of them all" for i in range(n)],
        "x": x,
    })
    df["y"] = np.where(x + (stamps.hour > 12) + (df["smoker"] == "yes") > 1, "hi", "lo")
    return df


def test_init_and_fit_type_one_file_alike(tmp_path):
    traits().to_csv(tmp_path / "t.csv", index=False)
    bare = load_dataset(cfg_for(tmp_path, {"source": "t.csv", "target": "y"}))
    (tmp_path / "init.yaml").write_text(suggest_config(tmp_path / "t.csv", "y", output=tmp_path / "init.yaml"))
    config = load_config(tmp_path / "init.yaml")
    assert config.data.drop == ["rowid", "ticket"]
    assert {k: v.type for k, v in config.data.columns.items()} == {
        "when": "date", "day": "date", "month": "categorical", "state": "categorical", "note": "text"}
    initd = load_dataset(config)
    got = {c.name: (c.kind, c.embedding_dim, c.origin) for c in initd.schema.columns}
    auto = {c.name: (c.kind, c.embedding_dim, c.origin) for c in bare.schema.columns}
    # the same columns, kinds, embeddings and date parts, but for what init offers besides: the
    # row index it drops and the integer codes it takes as categories (fit keeps numbers numeric)
    assert got.pop("month")[0] == "categorical" and auto.pop("month")[0] == "numeric"
    assert auto.pop("rowid")[0] == "numeric" and "rowid" not in got
    assert got == auto
    assert auto["state"] == ("categorical", T.embedding_size(55), None) and auto["note"][0] == "text"
    assert {"when.hour", "day.weekday", "smoker.yes"} <= set(auto) and "ticket" not in auto


def test_validate_build_types_like_fit(tmp_path):
    traits().to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "c.yaml").write_text("data: {source: t.csv, target: y, id: ticket}\n")
    result = runner.invoke(app, ["validate", str(tmp_path / "c.yaml"), "--build"])
    assert result.exit_code == 0, result.output
    ds = load_dataset(load_config(tmp_path / "c.yaml"))
    assert f"{len(ds.schema.columns)} feature columns" in result.stdout
    assert "embed_state" in result.stdout and "onehot_color" in result.stdout


# ------------------------------------------------------------ the date column at every reader

def test_every_reader_makes_the_date_parts_fit_made(tmp_path, monkeypatch):
    """evaluate --data and predict read the training file as fit did: streamed in small chunks (a
    .csv) or whole (a .csv.xz), the derived columns made again from the raw ones."""
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 32)
    df = traits(150)
    df.loc[[4, 77], "when"] = ["", "not a date"]
    df.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.csv.xz").write_bytes(lzma.compress((tmp_path / "t.csv").read_bytes()))
    cfg = cfg_for(tmp_path, {"source": "t.csv", "target": "y", "id": "ticket", "split": {"test": 0, "validation": 0}},
                  preprocessing={"missing": "mean"})
    ds = load_dataset(cfg)
    order = np.argsort(ds.train.row_index)
    for path in (tmp_path / "t.csv", tmp_path / "t.csv.xz"):
        parts = list(file_rows(path, ds.schema, require_target=False))
        assert len(parts) == (5 if path.suffix == ".csv" else 1)
        got = {k: np.concatenate([p.inputs[k] for p in parts]) for k in parts[0].inputs}
        for name, values in ds.train.inputs.items():
            np.testing.assert_array_equal(got[name], values[order], err_msg=f"{path.name}: {name}")


def test_a_stream_types_and_prepares_dates_as_memory_does(tmp_path, monkeypatch):
    from nettrain.data.stream import load_stream

    monkeypatch.setattr(chunks, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 64)
    traits(150).to_csv(tmp_path / "t.csv", index=False)
    data = {"source": "t.csv", "target": "y", "id": "ticket", "split": {"test": 0, "validation": 0}}
    memory = load_dataset(cfg_for(tmp_path, data, preprocessing={"missing": "mean"}))
    stream = load_stream(cfg_for(tmp_path, {**data, "stream": True}, preprocessing={"missing": "mean"}), "test")
    assert [(c.name, c.kind, c.origin) for c in stream.schema.columns] == \
        [(c.name, c.kind, c.origin) for c in memory.schema.columns]


def test_the_schema_keeps_the_derived_columns_through_json(tmp_path):
    from nettrain.data.types import FeatureSchema
    from nettrain.store.meta import check_features

    traits(80).to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(cfg_for(tmp_path, {"source": "t.csv", "target": "y", "id": "ticket"}))
    stored = json.loads(json.dumps(ds.schema.to_dict()))
    assert all("origin" not in c for c in stored["columns"])  # the column entries keep their shape
    assert stored["derived"]["when.hour"] == {"column": "when", "type": "date", "format": "%Y-%m-%dT%H:%M:%SZ",
                                              "part": "hour"}
    checked = check_features({**stored, "label_mode": "binary"}, "features.json")  # as fit writes it
    again = FeatureSchema.from_dict({k: v for k, v in checked.items() if k in FeatureSchema.__dataclass_fields__})
    assert again == ds.schema and again.file_columns[:3] == ["rowid", "when", "day"]


# ---------------------------------------------------------------- a saved model, predict parity

CONFIG = """\
data:
  source: t.csv
  target: y
  id: ticket
  stream: {stream}
preprocessing: {{missing: mean}}
model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
training: {{epochs: 1, batch_size: 16}}
output: {{plots: false}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_saved_model_predicts_from_the_raw_date_column(tmp_path, stream, monkeypatch):
    from nettrain.lifecycle.evaluate import data_rows
    from nettrain.lifecycle.target import batch_size, load_model, model_outputs, resolve_target

    monkeypatch.setattr(chunks, "CHUNK_ROWS", 64)
    df = traits(150)
    df.loc[[4, 77], "when"] = ["", "not a date"]
    df.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "c.yaml").write_text(CONFIG.format(stream=stream))
    fit = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert fit.exit_code == 0, fit.output
    assert "when" in json.loads((tmp_path / "run" / "features.json").read_text())["cell_types"]
    out = tmp_path / "p.csv"
    done = runner.invoke(app, ["predict", str(tmp_path / "run" / "model.h5"), str(tmp_path / "t.csv"),
                               "--output", str(out), "--proba"])
    assert done.exit_code == 0, done.output
    predicted = pd.read_csv(out)
    target = resolve_target(tmp_path / "run" / "model.h5")
    model = load_model(target)
    raw = np.concatenate([model_outputs(model, rows, batch_size(target), "parity")
                          for rows in data_rows(target, tmp_path / "t.csv")])
    positive = target.schema.class_names[1]  # binary: the sigmoid is the second class's probability
    np.testing.assert_array_equal(predicted[f"proba_{positive}"].to_numpy(np.float32), raw[:, 0].astype(np.float32))
    assert predicted["ticket"].tolist() == df["ticket"].tolist()


# ------------------------------------------------- numbers written for people, "?" for unknown

@pytest.mark.parametrize("text, value", [
    ("$1,234.50", 1234.5), ("-$5", -5.0), ("$-5", -5.0), ("+7", 7.0), ("12.5%", 0.125), ("1,234,567", 1234567.0),
    ("12 €", 12.0), ("£ 0.99", 0.99), ("¥1,000", 1000.0), (" 3 ", 3.0), (".5", 0.5), ("1e3", 1000.0)])
def test_a_number_written_for_people_is_the_number_it_means(text, value):
    from nettrain.data.columns import to_numbers

    numbers, bad = to_numbers(pd.Series([text], dtype=object))
    assert not bad[0] and numbers[0] == pytest.approx(value)


@pytest.mark.parametrize("text", ["1,5", "1,23", "12,34,567", "$", "%", "$$5", "5 5", "1.2.3", "five"])
def test_text_that_is_no_number_stays_a_bad_value(text):
    from nettrain.data.columns import to_numbers

    numbers, bad = to_numbers(pd.Series([text, "1"], dtype=object))
    assert bad.tolist() == [True, False] and np.isnan(numbers[0])


@pytest.mark.parametrize("mark", ["?", "-", "--", ".", " ? ", "unknown", "Unknown", "MISSING", "n.a.", "#DIV/0!",
                                  "#value!"])
def test_an_unknown_mark_in_numbers_is_missing(mark):
    from nettrain.data.columns import to_numbers

    numbers, bad = to_numbers(pd.Series(["1.5", mark], dtype=object))
    assert not bad.any() and numbers[0] == 1.5 and np.isnan(numbers[1])


@pytest.mark.parametrize("dtype", [object, "str"])
def test_a_long_column_reads_each_distinct_text_as_one_value_would(dtype):
    """A column longer than a few dozen cells is read through its distinct texts: the same numbers
    and bad values as each cell read alone."""
    from nettrain.data.columns import to_numbers

    cells = ["1", "2.5", "$1,234.50", "12%", "?", "nan", "", "yes", "No", "TRUE", "abc", " 3 ", "-", "#DIV/0!",
             "1,5", None, "Ideal", "1e3", "-0", "+4", "€5"]
    rng = np.random.default_rng(3)
    column = pd.Series([cells[i] for i in rng.integers(0, len(cells), 500)], dtype=dtype)
    numbers, bad = to_numbers(column)
    alone = [to_numbers(pd.Series([v], dtype=object)) for v in column.astype(object)]
    np.testing.assert_array_equal(numbers, [n[0] for n, _ in alone])
    assert bad.tolist() == [bool(b[0]) for _, b in alone] and bad.sum() == column.isin(["yes", "No", "abc", "1,5", "Ideal"]).sum()


def test_columns_of_written_numbers_are_numeric_and_say_how():
    money = typed([f"${v:,.2f}" for v in np.linspace(10, 90_000, N)])
    assert money.kind == "numeric" and "currency signs and thousands separators" in money.reason
    share = typed([f"{v:.1f}%" for v in np.linspace(0, 100, N)])
    assert share.kind == "numeric" and "percent signs" in share.reason
    gaps = typed([str(v / 4) if v % 7 else "?" for v in range(N)])
    assert gaps.kind == "numeric" and "'?' for unknown values" in gaps.reason
    # a decimal comma is not a thousands separator: such text stays text (categories)
    assert typed([f"{v % 9},{v % 7}" for v in range(N)]).kind == "categorical"
    # "?" among words is a category like any other
    assert typed(["a", "b", "?"] * 40).kind == "categorical"
    excel = typed([str(v / 4) if v % 9 else "#DIV/0!" for v in range(N)])
    assert excel.kind == "numeric" and "'#DIV/0!' for unknown values" in excel.reason


def written(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table with numbers written for people (and "?" for unknown), and the same numbers plain."""
    rng = np.random.default_rng(seed)
    price = rng.lognormal(8, 1, n).round(2)
    rate = rng.uniform(0, 100, n).round(1)
    count = rng.integers(1000, 90_000, n)
    score = rng.normal(size=n).round(2)
    unknown = rng.random(n) < 0.1
    y = np.where(np.log(price) / 8 + rate / 100 + score > 1.4, "a", "b")
    people = pd.DataFrame({"price": [f"${v:,.2f}" for v in price], "rate": [f"{v}%" for v in rate],
                           "count": [f"{v:,}" for v in count],
                           "score": np.where(unknown, "?", score.astype(str)), "y": y})
    plain = pd.DataFrame({"price": price, "rate": rate / 100, "count": count,
                          "score": np.where(unknown, np.nan, score), "y": y})
    return people, plain


def test_init_and_fit_read_written_numbers_as_numbers(tmp_path):
    people, plain = written(200)
    people.to_csv(tmp_path / "d.csv", index=False)
    text = suggest_config(tmp_path / "d.csv", "y")
    for line in ("# numeric: price (numbers written with currency signs and thousands separators)",
                 "# numeric: rate (numbers written with percent signs)",
                 "# numeric: count (numbers written with thousands separators)",
                 "# numeric: score (numbers written as text, '?' for unknown values (missing))"):
        assert line in text
    assert "drop:" not in text and "embedding" not in text
    cfg = {"source": "d.csv", "target": "y", "split": {"test": 0, "validation": 0}}
    ds = load_dataset(cfg_for(tmp_path, cfg, preprocessing={"missing": "mean"}))
    assert kinds(ds) == {"price": "numeric", "rate": "numeric", "count": "numeric", "score": "numeric"}
    plain.to_csv(tmp_path / "d.csv", index=False)
    same = load_dataset(cfg_for(tmp_path, cfg, preprocessing={"missing": "mean"}))
    for name in ("price", "rate", "count", "score"):
        np.testing.assert_allclose(column(ds, name), column(same, name), rtol=1e-6, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_model_fit_on_written_numbers_predicts_them_as_plain_numbers(tmp_path, stream, monkeypatch):
    """fit (in memory or streamed) on numbers written for people; predict on that file and on the
    same rows written plainly gives the same probabilities: one parse, whoever reads."""
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 64)
    people, plain = written(300)
    people.to_csv(tmp_path / "t.csv", index=False)
    plain.drop(columns="y").to_csv(tmp_path / "plain.csv", index=False)
    (tmp_path / "c.yaml").write_text(CONFIG.format(stream=stream).replace("  id: ticket\n", ""))
    fit = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert fit.exit_code == 0, fit.output
    schema = json.loads((tmp_path / "run" / "features.json").read_text())
    assert {c["name"]: c["kind"] for c in schema["columns"]} == dict.fromkeys(["price", "rate", "count", "score"],
                                                                              "numeric")
    outputs = []
    for source in ("t.csv", "plain.csv"):
        done = runner.invoke(app, ["predict", str(tmp_path / "run"), str(tmp_path / source), "--proba",
                                   "--output", str(tmp_path / f"p-{source}")])
        assert done.exit_code == 0, done.output
        outputs.append(pd.read_csv(tmp_path / f"p-{source}"))
    assert len(outputs[0]) == 300
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
