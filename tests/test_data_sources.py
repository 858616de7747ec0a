"""Data sources: files of every kind, sklearn sets, generators, the Keras cache."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nettrain.config import load_config
from nettrain.data import load_dataset, read_table
from nettrain.errors import ConfigError, DataError, UsageError
from nettrain.data.rows import file_rows
from nettrain.data.types import ColumnInfo, FeatureSchema


def make_cfg(tmp_path: Path, data: dict, **sections):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": data, **sections}, sort_keys=False))
    return load_config(path)


def table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.integers(0, 100, size=n),
        "color": rng.choice(["red", "green", "blue"], size=n),
        "label": np.where(np.arange(n) % 2 == 0, "yes", "no"),
    })


def check_same_table(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(expected)
    np.testing.assert_allclose(frame["a"].to_numpy(float), expected["a"].to_numpy(float), rtol=1e-6)
    assert frame["color"].astype(str).tolist() == expected["color"].tolist()


# ---------------------------------------------------------------------------- files

@pytest.mark.parametrize("ext", [".csv", ".tsv", ".parquet", ".jsonl", ".csv.gz"])
def test_read_table_by_extension(tmp_path, ext):
    df = table()
    path = tmp_path / f"data{ext}"
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif ext == ".parquet":
        df.to_parquet(path)
    elif ext == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        with gzip.open(path, "wt") as f:
            df.to_csv(f, index=False)
    check_same_table(read_table(path), df)


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_load_dataset_from_each_file_kind(tmp_path, ext):
    df = table()
    path = tmp_path / f"data{ext}"
    {".csv": lambda: df.to_csv(path, index=False),
     ".tsv": lambda: df.to_csv(path, index=False, sep="\t"),
     ".parquet": lambda: df.to_parquet(path),
     ".jsonl": lambda: df.to_json(path, orient="records", lines=True)}[ext]()
    ds = load_dataset(make_cfg(tmp_path, {"source": path.name, "target": "label"}))
    assert ds.schema.task == "binary"
    assert ds.schema.class_names == ["no", "yes"]
    assert ds.schema.numeric_columns == ["a", "b"]
    assert [c.name for c in ds.schema.other_columns] == ["color"]
    assert ds.train.inputs["numeric"].dtype == np.float32
    assert ds.train.inputs["color"].shape == (len(ds.train), 1)
    assert ds.n_rows == 40
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 40


def test_parquet_with_saved_index_is_numbered_by_position(tmp_path):
    df = table(5).set_index(pd.Index([f"r{i}" for i in range(5)], name="key"))
    df.to_parquet(tmp_path / "d.parquet")
    frame = read_table(tmp_path / "d.parquet")
    assert frame.index.tolist() == [0, 1, 2, 3, 4]
    assert frame["key"].tolist() == [f"r{i}" for i in range(5)]


def test_npz_with_x_and_y_flattens_extra_dimensions(tmp_path):
    x = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1, 1]))
    frame = read_table(tmp_path / "d.npz")
    assert list(frame.columns) == [f"x{i}" for i in range(6)] + ["target"]
    assert frame.iloc[1, :6].tolist() == list(range(6, 12))
    assert frame["target"].tolist() == [0, 1, 0, 1, 1]


def test_npz_train_and_test_parts_are_concatenated(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.ones((4, 2, 2)), y_train=np.zeros(4),
             x_test=np.zeros((3, 2, 2)), y_test=np.ones(3))
    frame = read_table(tmp_path / "d.npz")
    assert frame.shape == (7, 5)
    assert frame["target"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert frame["x3"].tolist() == [1, 1, 1, 1, 0, 0, 0]


def test_npz_dataset_defaults_target(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(30, 3)), y=rng.normal(size=30))
    ds = load_dataset(make_cfg(tmp_path, {"source": "d.npz"}))
    assert ds.schema.target == "target"
    assert ds.schema.task == "regression"
    assert ds.train.inputs["numeric"].shape[1] == 3
    assert ds.train.y.dtype == np.float32


def test_npz_without_expected_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.ones((3, 2)))
    with pytest.raises(DataError, match=r"expected arrays 'x' and 'y'.*holds: features"):
        read_table(tmp_path / "d.npz")


def test_npz_with_pickled_objects_is_refused(tmp_path):
    seqs = np.empty(2, dtype=object)
    seqs[0], seqs[1] = [1, 2], [3]
    np.savez(tmp_path / "d.npz", x=seqs, y=np.array([0, 1]))
    with pytest.raises(DataError, match="Python objects"):
        read_table(tmp_path / "d.npz")


def test_npz_rows_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.ones(4))
    with pytest.raises(DataError, match="3 rows but y has 4"):
        read_table(tmp_path / "d.npz")


def test_missing_file_names_the_path_and_key(tmp_path):
    cfg = make_cfg(tmp_path, {"source": "nope.csv", "target": "y"})
    with pytest.raises(ConfigError) as info:
        load_dataset(cfg)
    msg = str(info.value)
    assert "data.source" in msg and str(tmp_path / "nope.csv") in msg and "exp.yaml:2" in msg
    assert info.value.exit_code == 2


def test_read_table_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found.*nope.csv"):
        read_table(tmp_path / "nope.csv")


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b,y\n")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"header.csv: the file has a header but no rows \(columns: a, b, y\)"):
        read_table(tmp_path / "header.csv")
    cfg = make_cfg(tmp_path, {"source": "header.csv", "target": "y"})
    with pytest.raises(UsageError, match="no rows"):
        load_dataset(cfg)


@pytest.mark.parametrize("header", ["a,,y", "a,,y\n\n  \n", "a,b,y", "a,b,y\r\n"])
def test_a_header_only_file_reads_the_same_with_or_without_a_line_end(tmp_path, header):
    """With an empty header cell (its name given to pyarrow, the header line skipped) and no line end,
    the chunk reader (predict, evaluate --data, a stream) said pyarrow's "Could not skip initial 1 rows
    ... header is larger than block size"; every reader now says the file has a header but no rows."""
    from nettrain.data.stream import load_stream

    (tmp_path / "h.csv").write_text(header)
    want = r"h.csv: the file has a header but no rows \(columns: a, (b|Unnamed: 1), y\)"
    with pytest.raises(DataError, match=want):
        read_table(tmp_path / "h.csv")
    with pytest.raises(DataError, match=want):
        load_stream(make_cfg(tmp_path, {"source": "h.csv", "target": "y", "stream": True}))
    run_schema = FeatureSchema(task="regression", target="y", columns=[ColumnInfo(name="a", kind="numeric")])
    with pytest.raises(DataError, match=want):
        list(file_rows(tmp_path / "h.csv", run_schema, require_target=False))


def test_the_dialect_of_a_file(tmp_path):
    """`.tsv`: tabs; `.csv`: commas, or semicolons when the header holds them and no comma outside
    quotes; decimal commas when a field of the first lines is a number written with one."""
    from nettrain.data.dialect import Dialect, dialect, said

    def of(name: str, text: str) -> Dialect:
        (tmp_path / name).write_text(text)
        return dialect(tmp_path / name)

    assert of("t.tsv", "a;b\tc\n1,5\t2\n") == Dialect("\t", ".")
    assert of("c.csv", "a,b\n1.5,2\n") == Dialect(",", ".")
    assert of("e.csv", "a;b;y\n1;x;0\n2,5;x;1\n") == Dialect(";", ",")         # spreadsheets where 1,5 is 1.5
    assert of("k.csv", "a;y\n1.234,5;0\n") == Dialect(";", ",")                  # thousands dots too
    assert of("w.csv", '"fixed acidity";"quality"\n7.4;5\n') == Dialect(";", ".")  # UCI's wine quality
    assert of("q.csv", '"a;b",y\n"c;d",1\n') == Dialect(",", ".")                  # a semicolon inside quotes
    assert of("one.csv", "y\n1\n") == Dialect(",", ".")
    assert of("tabs.csv", "a\tb c\ty\n1.5\tx\t0\n") == Dialect("\t", ".")     # a tab-separated file named .csv
    assert of("tq.csv", '"a\tb",y\n1,0\n') == Dialect(",", ".")                   # a tab inside quotes
    with gzip.open(tmp_path / "g.csv.gz", "wt") as f:
        f.write("a;y\n0,5;1\n")
    assert dialect(tmp_path / "g.csv.gz") == Dialect(";", ",")
    (tmp_path / "p.parquet").write_bytes(b"PAR1;;\n\x00")           # only a .csv is read by delimiter
    assert dialect(tmp_path / "p.parquet") == Dialect(",", ".")
    # how init says it read the file (its summary line and the config's first comment)
    assert said(tmp_path / "e.csv") == "read as separated by semicolons, with decimal commas"
    assert said(tmp_path / "w.csv") == "read as separated by semicolons, with decimal points"
    assert said(tmp_path / "c.csv") == said(tmp_path / "t.tsv") == ""
    assert said(tmp_path / "tabs.csv") == "read as separated by tabs"
    from typer.testing import CliRunner

    from nettrain.cli import app

    result = CliRunner().invoke(app, ["init", str(tmp_path / "e.csv"), "--target", "y"])
    assert result.exit_code == 0, result.output
    assert "e.csv (read as separated by semicolons, with decimal commas): target 'y'" in result.stderr
    assert "(read as separated by semicolons, with decimal commas); target y" in result.stdout.splitlines()[0]


def test_a_file_with_semicolons_and_decimal_commas_reads_as_its_comma_twin(tmp_path):
    """The same table written with semicolons and decimal commas (`2,380`, `1.088,46`, an empty cell,
    `?`), with semicolons and decimal points, and as plain CSV: the same values from the in-memory
    reader and the chunk reader (numbers asked for as numbers, or read as text)."""
    from nettrain.data import chunks

    rows = [("2.380", "1088.46", "green", "no"), ("9.159", "948.11", "blue", "yes"), ("", "-12.5", "red", "no"),
            ("0.5", "x1", "a,b", "yes")]
    plain = "a,b,c,y\n" + "".join(f'{a},{b},"{c}",{y}\n' for a, b, c, y in rows)

    def euro(v: str) -> str:
        if v.replace(".", "").replace("-", "").isdigit():
            whole, _, frac = v.partition(".")
            return (f"{int(whole):,}".replace(",", ".") if whole not in ("", "-") else whole) + "," + frac
        return v
    (tmp_path / "plain.csv").write_text(plain)
    (tmp_path / "euro.csv").write_text("a;b;c;y\n" + "".join(f"{euro(a)};{euro(b)};{c};{y}\n" for a, b, c, y in rows))
    (tmp_path / "points.csv").write_text("a;b;c;y\n" + "".join(f"{a};{b};{c};{y}\n" for a, b, c, y in rows))
    assert "1.088,46" in (tmp_path / "euro.csv").read_text()
    want = read_table(tmp_path / "plain.csv")
    for name in ("euro.csv", "points.csv"):
        got = read_table(tmp_path / name)
        assert got.columns.tolist() == want.columns.tolist()
        assert got["a"].tolist()[:2] == [2.38, 9.159] and np.isnan(got["a"].iloc[2])
        assert got["b"].astype(str).tolist() == want["b"].astype(str).tolist()
        assert got["c"].tolist() == want["c"].tolist()
        text = next(chunks.iter_chunks(tmp_path / name)).frame
        assert text["b"].tolist() == ["1088.46", "948.11", "-12.5", "x1"]
        numbers = next(chunks.iter_chunks(tmp_path / name, numeric=["a"])).frame
        assert numbers["a"].tolist()[:2] == [2.38, 9.159] and np.isnan(numbers["a"].iloc[2])
    with pytest.raises(DataError, match=r"euro.csv: line 5, column 'b': 'x1' is not a number"):
        list(chunks.iter_chunks(tmp_path / "euro.csv", numeric=["b"]))


@pytest.mark.slow
def test_fit_and_predict_on_a_semicolon_file_equal_its_comma_twin(tmp_path):
    """init, fit (in memory and streamed), predict and evaluate --data on a table written with
    semicolons and decimal commas give what the same table as plain CSV gives."""
    from typer.testing import CliRunner

    from nettrain.cli import app

    runner = CliRunner()
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 10, 400), rng.uniform(0, 2000, 400)
    c = rng.choice(["red", "green", "blue"], 400)
    y = np.where(a + b / 400 + (c == "red") * 2 > 8, "yes", "no")
    plain = pd.DataFrame({"a": a.round(3), "b": b.round(2), "c": c, "y": y})
    plain.to_csv(tmp_path / "plain.csv", index=False)
    euro = plain.assign(a=[f"{v:.3f}".replace(".", ",") for v in plain["a"]],
                        b=[f"{v:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in plain["b"]])
    euro.to_csv(tmp_path / "euro.csv", index=False, sep=";")
    assert "," in euro["b"].iloc[0] and ";" in (tmp_path / "euro.csv").read_text().splitlines()[0]
    configs = {}
    for name in ("plain", "euro"):
        result = runner.invoke(app, ["init", str(tmp_path / f"{name}.csv"), "--target", "y",
                                     "-o", str(tmp_path / f"{name}.yaml")])
        assert result.exit_code == 0, result.output
        configs[name] = [line for line in (tmp_path / f"{name}.yaml").read_text().splitlines()
                         if "csv" not in line]
    assert configs["plain"] == configs["euro"]          # the same columns, kinds and defaults
    probabilities = []
    for name, stream in (("plain", "false"), ("euro", "false"), ("plain", "true"), ("euro", "true")):
        run = tmp_path / f"run-{name}-{stream}"
        fit = runner.invoke(app, ["fit", str(tmp_path / f"{name}.yaml"), "--run-dir", str(run), "--quiet",
                                  "--set", "training.epochs=2", "--set", f"data.stream={stream}",
                                  "--set", "preprocessing.missing=mean", "--set", "output.plots=false",
                                  # one model, not init's 5-fold ensemble of a table this small: the readers are the point
                                  "--set", "data.split.folds=1", "--set", "data.split.refit=false",
                                  "--set", "data.split.validation=0.1"])
        assert fit.exit_code == 0, fit.output
        out = tmp_path / f"p-{name}-{stream}.csv"
        pred = runner.invoke(app, ["predict", str(run), str(tmp_path / "euro.csv"), "--proba", "-o", str(out)])
        assert pred.exit_code == 0, pred.output
        probabilities.append(pd.read_csv(out))
        metrics = json.loads((run / "metrics.json").read_text())["test"]
        if name == "plain":
            twin = metrics
        else:
            assert metrics == twin
    pd.testing.assert_frame_equal(probabilities[0], probabilities[1])
    pd.testing.assert_frame_equal(probabilities[2], probabilities[3])
    ev = runner.invoke(app, ["evaluate", str(tmp_path / "run-plain-false"), "--data", str(tmp_path / "euro.csv"),
                             "--json"])
    ev_plain = runner.invoke(app, ["evaluate", str(tmp_path / "run-plain-false"), "--data",
                                   str(tmp_path / "plain.csv"), "--json"])
    assert ev.exit_code == ev_plain.exit_code == 0
    assert json.loads(ev.stdout)["metrics"] == json.loads(ev_plain.stdout)["metrics"]


def test_unknown_extension_lists_allowed(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"'\.xlsx'.*\.csv, \.tsv, \.parquet, \.jsonl, \.npz"):
        read_table(tmp_path / "d.xlsx")
    cfg = make_cfg(tmp_path, {"source": "d.xlsx", "target": "y"})
    with pytest.raises(ConfigError, match=r"data\.source.*allowed: \.csv"):
        load_dataset(cfg)


def test_unparsable_file_is_one_clear_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{not json\n')
    (tmp_path / "bad.parquet").write_text("this is not parquet")
    with pytest.raises(DataError, match="bad.jsonl: cannot read it as jsonl"):
        read_table(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="bad.parquet: cannot read it as parquet"):
        read_table(tmp_path / "bad.parquet")


def test_target_required_for_files(tmp_path):
    table().to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ConfigError, match=r"data\.target: required.*columns: a, b, color, label"):
        load_dataset(make_cfg(tmp_path, {"source": "d.csv"}))


def test_separate_train_validation_test_files(tmp_path):
    df = table(60)
    df.iloc[:40].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[40:50].to_csv(tmp_path / "val.csv", index=False)
    df.iloc[50:].to_csv(tmp_path / "test.csv", index=False)
    ds = load_dataset(make_cfg(tmp_path, {"train": "train.csv", "validation": "val.csv", "test": "test.csv",
                                          "target": "label"}))
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (40, 10, 10)
    np.testing.assert_allclose(ds.test.inputs["numeric"][:, 0], df["a"].iloc[50:].to_numpy(np.float32))
    assert ds.test.row_index.tolist() == list(range(10))
    assert ds.n_rows == 60


def test_separate_files_are_typed_by_the_training_files_cell_types(tmp_path):
    """A validation or test file is typed by the cell types the training file decided (`data.cells`),
    as predict and a stream type it, not by its own values: a column of "+1"/"-1" (numbers on their
    own) stays the text the training file's column holds, a label "+1" stays the class "+1"."""
    n = 40
    pd.DataFrame({"x": np.arange(n, dtype=float), "code": ["+1", "a", "-1", "b"] * (n // 4),
                  "label": ["+1", "x"] * (n // 2)}).to_csv(tmp_path / "train.csv", index=False)
    for name in ("val.csv", "test.csv"):
        pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5], "code": ["+1", "-1", "+1", "-1"],
                      "label": ["+1"] * 4}).to_csv(tmp_path / name, index=False)
    assert read_table(tmp_path / "val.csv")["code"].tolist() == [1, -1, 1, -1]  # what pandas alone makes of it
    data = {"train": "train.csv", "validation": "val.csv", "test": "test.csv", "target": "label",
            "columns": {"code": {"type": "categorical"}}}
    ds = load_dataset(make_cfg(tmp_path, data))
    assert ds.schema.cell_types["code"] == ds.schema.cell_types["label"] == "str"
    assert ds.schema.class_names == ["+1", "x"]
    for split in (ds.validation, ds.test):
        assert split.inputs["code"][:, 0].tolist() == ["+1", "-1", "+1", "-1"]
        assert split.y.tolist() == [0, 0, 0, 0]
    # the same rows as a stream gives them, and as predict reads the file with the run's schema
    from nettrain.data.rows import file_rows
    from nettrain.data.stream import load_stream

    with pytest.warns(UserWarning, match="hold no row of class 'x'"):  # (all its validation and test rows are "+1")
        streamed = load_stream(make_cfg(tmp_path, {**data, "stream": True}))
    assert streamed.schema.cell_types == ds.schema.cell_types and streamed.schema.class_names == ["+1", "x"]
    for name, split in (("validation", ds.validation), ("test", ds.test)):
        (rows,) = list(streamed.reader.rows(streamed.codes[name]))
        assert rows.inputs["code"].tolist() == split.inputs["code"].tolist() and rows.y.tolist() == split.y.tolist()
    (predicted,) = list(file_rows(tmp_path / "val.csv", ds.schema, require_target=True))
    assert predicted.inputs["code"].tolist() == ds.validation.inputs["code"].tolist()


def test_separate_train_file_carves_validation(tmp_path):
    table(50).to_csv(tmp_path / "train.csv", index=False)
    ds = load_dataset(make_cfg(tmp_path, {"train": "train.csv", "target": "label"}))
    assert (len(ds.train), len(ds.validation), ds.test) == (40, 10, None)


def test_separate_file_missing_column(tmp_path):
    df = table(30)
    df.to_csv(tmp_path / "train.csv", index=False)
    df.drop(columns="color").to_csv(tmp_path / "test.csv", index=False)
    cfg = make_cfg(tmp_path, {"train": "train.csv", "test": "test.csv", "target": "label"})
    with pytest.raises(ConfigError, match=r"data\.test: .*test.csv lacks column 'color'"):
        load_dataset(cfg)


# ------------------------------------------------------------------------ sklearn sets

def test_sklearn_iris_labels_are_names(tmp_path):
    ds = load_dataset(make_cfg(tmp_path, {"source": "sklearn:iris"}))
    assert ds.schema.target == "target"
    assert ds.schema.task == "multiclass"
    assert ds.schema.class_names == ["setosa", "versicolor", "virginica"]
    assert ds.n_rows == 150
    assert ds.train.inputs["numeric"].shape[1] == 4
    assert ds.source == "sklearn:iris"


@pytest.mark.parametrize("name,task,n_classes", [("breast_cancer", "binary", 2), ("wine", "multiclass", 3),
                                                 ("digits", "multiclass", 10), ("diabetes", "regression", 0)])
def test_sklearn_sets(tmp_path, name, task, n_classes):
    ds = load_dataset(make_cfg(tmp_path, {"source": f"sklearn:{name}"}))
    assert ds.schema.task == task
    assert len(ds.schema.class_names or []) == n_classes
    if task == "regression":
        assert ds.train.y.dtype == np.float32
    else:
        assert ds.train.y.dtype == np.int64 and ds.train.y.max() == n_classes - 1


def test_sklearn_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.source: unknown bundled set 'sklearn:irs'; did you mean "
                                          r"'iris'\? allowed: sklearn:iris, sklearn:breast_cancer"):
        load_dataset(make_cfg(tmp_path, {"source": "sklearn:irs"}))


def test_sklearn_wrong_target_name(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.target: target 'tagret'.*did you mean 'target'"):
        load_dataset(make_cfg(tmp_path, {"source": "sklearn:iris", "target": "tagret"}))


# -------------------------------------------------------------------------- generators

def test_make_regression_uses_seed(tmp_path):
    from sklearn.datasets import make_regression

    gen = {"generator": "make_regression", "n_samples": 50, "n_features": 2, "noise": 5.0, "bias": 5.0}
    ds = load_dataset(make_cfg(tmp_path, {"source": gen}, seed=7,))
    assert ds.schema.task == "regression"
    assert ds.schema.numeric_columns == ["x0", "x1"]
    x, y = make_regression(n_samples=50, n_features=2, noise=5.0, bias=5.0, random_state=7)
    rows = ds.train.row_index
    np.testing.assert_allclose(ds.train.inputs["numeric"], x[rows].astype(np.float32))
    np.testing.assert_allclose(ds.train.y, y[rows].astype(np.float32))
    other = load_dataset(make_cfg(tmp_path, {"source": {**gen, "random_state": 3}}, seed=7))
    assert other.fingerprint != ds.fingerprint


def test_make_blobs_with_list_arguments(tmp_path):
    gen = {"generator": "make_blobs", "n_samples": 90, "centers": [[0, 0], [5, 5], [10, 0]],
           "cluster_std": [0.5, 1.0, 1.5]}
    ds = load_dataset(make_cfg(tmp_path, {"source": gen}))
    assert ds.schema.task == "multiclass"
    assert ds.schema.class_names == ["0", "1", "2"]
    assert ds.n_rows == 90


def test_make_classification(tmp_path):
    gen = {"generator": "make_classification", "n_samples": 100, "n_features": 4, "n_informative": 2}
    ds = load_dataset(make_cfg(tmp_path, {"source": gen}))
    assert ds.schema.task == "binary"
    assert ds.train.inputs["numeric"].shape[1] == 4


def test_generator_bad_arguments(tmp_path):
    gen = {"generator": "make_classification", "n_samples": 50, "n_features": 2, "n_informative": 5}
    with pytest.raises(ConfigError, match=r"data\.source: make_classification refused its arguments"):
        load_dataset(make_cfg(tmp_path, {"source": gen}))


def test_generator_several_targets_refused(tmp_path):
    gen = {"generator": "make_regression", "n_samples": 20, "n_targets": 2}
    with pytest.raises(ConfigError, match="n_targets: 1"):
        load_dataset(make_cfg(tmp_path, {"source": gen}))


# ------------------------------------------------------------------------- Keras cache

def fake_keras_home(root: Path) -> Path:
    d = root / "khome" / "datasets"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(d / "mnist.npz", x_train=rng.integers(0, 255, (40, 4, 4), dtype=np.uint8),
             y_train=np.arange(40) % 10, x_test=rng.integers(0, 255, (20, 4, 4), dtype=np.uint8),
             y_test=np.arange(20) % 10)

    def seqs(n):
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = list(rng.integers(1, 50, size=3 + i % 4))
        return out

    np.savez(d / "imdb.npz", x_train=seqs(30), y_train=np.arange(30) % 2, x_test=seqs(10),
             y_test=np.arange(10) % 2)
    np.savez(d / "reuters.npz", x=seqs(60), y=np.arange(60) % 30)
    np.savez(d / "boston_housing.npz", x=rng.normal(size=(50, 13)), y=rng.normal(20, 5, size=50))
    return root / "khome"


@pytest.mark.filterwarnings(r"ignore:data\.split\.\w+. cannot stratify:UserWarning")
def test_keras_mnist_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(fake_keras_home(tmp_path)))
    ds = load_dataset(make_cfg(tmp_path, {"source": "keras:mnist"}))
    assert ds.n_rows == 60
    assert ds.schema.numeric_columns == [f"x{i}" for i in range(16)]
    assert ds.schema.task == "multiclass" and len(ds.schema.class_names) == 10


@pytest.mark.filterwarnings(r"ignore:data\.split\.\w+. cannot stratify:UserWarning")
def test_keras_text_sets_become_text_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(fake_keras_home(tmp_path)))
    ds = load_dataset(make_cfg(tmp_path, {"source": "keras:imdb"}))
    assert [(c.name, c.kind) for c in ds.schema.columns] == [("text", "text")]
    assert ds.schema.task == "binary"
    first = ds.train.inputs["text"][0, 0]
    assert isinstance(first, str) and all(tok.isdigit() for tok in first.split())
    # 30 integer labels would read as regression; the set is known to be topic classification
    reuters = load_dataset(make_cfg(tmp_path, {"source": "keras:reuters"}))
    assert reuters.schema.task == "multiclass" and len(reuters.schema.class_names) == 30
    boston = load_dataset(make_cfg(tmp_path, {"source": "keras:boston_housing"}))
    assert boston.schema.task == "regression" and len(boston.schema.numeric_columns) == 13


def test_keras_cache_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as info:
        load_dataset(make_cfg(tmp_path, {"source": "keras:mnist"}))
    msg = str(info.value)
    assert str(tmp_path / "empty" / "datasets" / "mnist.npz") in msg
    assert "does not download" in msg and "data.source" in msg


def test_keras_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown Keras set 'keras:minst'; did you mean 'mnist'"):
        load_dataset(make_cfg(tmp_path, {"source": "keras:minst"}))


@pytest.mark.slow
def test_data_stage_never_imports_tensorflow_or_keras(tmp_path):
    home = fake_keras_home(tmp_path)
    table().to_csv(tmp_path / "d.csv", index=False)
    code = (
        "import sys, json\n"
        "from nettrain.config import load_config\n"
        "from nettrain.data import load_dataset, suggest_config\n"
        f"load_dataset(load_config(None, data={{'data': {{'source': 'keras:mnist'}}}}))\n"
        f"load_dataset(load_config(None, data={{'data': {{'source': {str(tmp_path / 'd.csv')!r}, "
        "'target': 'label'}}))\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "KERAS_HOME": str(home)})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_column_without_a_name_is_named_alike_by_every_reader(tmp_path):
    """An empty header cell over a feature: pandas (the in-memory reader) names it `Unnamed: 0`, pyarrow
    (the chunk reader of predict and of streams) named it '', so predict of the training file itself was
    refused ("missing column 'Unnamed: 0'"). Every reader names it `Unnamed: <position>` now."""
    from nettrain import api
    from nettrain.data import chunks

    rng = np.random.default_rng(0)
    a = rng.normal(size=120)
    frame = pd.DataFrame({"": a, "b": rng.choice(["x", "y"], 120), "y": np.where(a > 0, "p", "q")})
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert chunks.header(tmp_path / "d.csv") == ["Unnamed: 0", "b", "y"]
    assert list(read_table(tmp_path / "d.csv").columns) == ["Unnamed: 0", "b", "y"]
    (tmp_path / "c.yaml").write_text("data: {source: d.csv, target: y}\ntraining: {epochs: 1}\n"
                                     "output: {plots: false}\n")
    for stream in ("false", "true"):
        api.fit(tmp_path / "c.yaml", [f"data.stream={stream}"], run_dir=tmp_path / f"run-{stream}", quiet=True)
        predicted = api.predict(tmp_path / f"run-{stream}", tmp_path / "d.csv")
        assert len(predicted) == 120


@pytest.mark.parametrize("name,text,line,seen", [
    ("short.csv", "a,b,y\n1.5,x,0\n2.5,z\n3.5,x,0\n", 3, 2),     # pandas filled the missing field with a gap
    ("cut.csv", "a,b,y\n1.5,x,0\n2.5,z,1\n3.5", 4, 1),           # the file cut short
])
def test_a_row_of_another_width_than_the_header_is_refused_by_every_reader(tmp_path, name, text, line, seen):
    """The in-memory reader (pandas) refuses what the chunk reader (pyarrow: predict, streams) refuses,
    naming the line: no reader guesses an index or fills a gap that the file does not hold."""
    from nettrain.data import chunks

    (tmp_path / name).write_text(text)
    said = f"expected 3 fields in line {line}, saw {seen}"
    with pytest.raises(DataError, match=said):
        read_table(tmp_path / name)
    with pytest.raises(DataError, match=said):
        list(chunks.iter_chunks(tmp_path / name, numeric=["a"]))
    (tmp_path / "ok.csv").write_text("a,b,y\n1.5,x,\n2.5,,1\n")   # gaps, the last column's too: read
    assert read_table(tmp_path / "ok.csv").shape == (2, 3)


@pytest.mark.parametrize("name,text,hint", [
    # every data row one field longer, the first field the row number: pandas took it for an index
    # that looked like none (0, 1, 2 ...), and read the file one column short without a word
    ("numbered.csv", "a,b,y\n0,1.5,x,0\n1,2.5,z,1\n2,3.5,x,0\n", ""),
    ("trailing.csv", "a,b,y\n1.5,x,0,\n2.5,z,1,\n", " (or delete the delimiter at the end of each line)"),
])
def test_data_rows_longer_than_the_header_are_refused_by_every_reader(tmp_path, name, text, hint):
    from nettrain.data import chunks

    (tmp_path / name).write_text(text)
    with pytest.raises(DataError) as refused:
        read_table(tmp_path / name)
    assert str(refused.value) == (f"{tmp_path / name}: the data rows have 4 fields (line 2) but the header has 3 "
                                  f"names; give every column a name in the first line{hint}")
    with pytest.raises(DataError, match="expected 3 fields in line 2, saw 4"):
        list(chunks.iter_chunks(tmp_path / name, numeric=["a"]))


def test_a_spreadsheets_sep_line_above_the_header_is_named(tmp_path):
    """Excel's `sep=;` first line stood where the header belongs: the header was read as `sep=`, and
    the message spoke of a header with too few names. It is named, with the fix, by every command."""
    from typer.testing import CliRunner

    from nettrain.cli import app

    (tmp_path / "x.csv").write_text("sep=;\na;b;y\n1,5;x;0\n2,5;z;1\n")
    with pytest.raises(DataError, match=r"x.csv: line 1 is 'sep=;', a note for spreadsheets .* delete that line"):
        read_table(tmp_path / "x.csv")
    result = CliRunner().invoke(app, ["init", str(tmp_path / "x.csv"), "--target", "y"])
    assert result.exit_code == 2 and "delete that line" in result.stderr and "Traceback" not in result.output
    (tmp_path / "x.csv").write_text("a;b;y\n1,5;x;0\n2,5;z;1\n")
    assert read_table(tmp_path / "x.csv")["a"].tolist() == [1.5, 2.5]


def test_a_word_in_a_numeric_column_of_a_later_file_is_named_not_counted_missing(tmp_path):
    """data.validation holding 'x' in a column the training file holds numbers in: under missing: error
    the in-memory load said "missing values in 'k' (3); preprocessing.missing is 'error'", sending the
    user to a fill policy that would have filled the words silently. It names the value, as the stream
    (and the load under any other policy) does."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"a": rng.normal(size=40), "k": rng.integers(0, 5, 40), "y": ["p", "q"] * 20})
    train.to_csv(tmp_path / "t.csv", index=False)
    later = train.iloc[:10].copy()
    later["k"] = later["k"].astype(object)
    later.loc[[1, 2, 5], "k"] = "x"
    later.to_csv(tmp_path / "v.csv", index=False)
    for policy in ("error", "median"):
        cfg = make_cfg(tmp_path, {"train": "t.csv", "validation": "v.csv", "target": "y"},
                       preprocessing={"missing": policy})
        with pytest.raises(DataError, match=r"v.csv: column 'k' must be numeric but row 2 holds 'x' \(3 such"):
            load_dataset(cfg)
    gaps = later.copy()
    gaps.loc[[1, 2, 5], "k"] = None
    gaps.to_csv(tmp_path / "v.csv", index=False)
    with pytest.raises(DataError, match=r"missing values in 'k' \(3\); preprocessing.missing is 'error'"):
        load_dataset(make_cfg(tmp_path, {"train": "t.csv", "validation": "v.csv", "target": "y"}))


def test_a_class_no_training_row_holds_is_said_in_memory_as_a_stream_says_it(tmp_path):
    """A validation file with a label the training file lacks: the stream warned that its training rows
    hold no row of that class; the in-memory load trained without a word."""
    rng = np.random.default_rng(2)
    train = pd.DataFrame({"a": rng.normal(size=40), "y": ["p", "q"] * 20})
    train.to_csv(tmp_path / "t.csv", index=False)
    later = train.iloc[:10].assign(y="maybe")
    later.to_csv(tmp_path / "v.csv", index=False)
    cfg = make_cfg(tmp_path, {"train": "t.csv", "validation": "v.csv", "target": "y"})
    with pytest.warns(UserWarning, match=r"the train rows hold no row of class 'maybe', which the validation rows"):
        ds = load_dataset(cfg)
    assert ds.schema.class_names == ["maybe", "p", "q"] and any("'maybe'" in n for n in ds.notes)


@pytest.mark.parametrize("stream", [False, True])
def test_a_later_file_lacking_a_column_is_told_alike_by_both_readers(tmp_path, stream):
    """The stream's message lacked the in-memory one's "did you mean 'A'?" (one message now)."""
    train = pd.DataFrame({"a": np.arange(30.0), "y": ["p", "q", "r"] * 10})
    train.to_csv(tmp_path / "t.csv", index=False)
    train.rename(columns={"a": "A"}).to_csv(tmp_path / "v.csv", index=False)
    cfg = make_cfg(tmp_path, {"train": "t.csv", "validation": "v.csv", "target": "y", "stream": stream})
    if stream:
        from nettrain.data.stream import load_stream

        load = load_stream
    else:
        load = load_dataset
    with pytest.raises(ConfigError, match=r"data\.validation: .*v.csv lacks column 'a' that data.train has; did you "
                                          r"mean 'A'\? it has: A, y"):
        load(cfg)
