"""The input contract: signature.json from the training statistics, the drift check of new rows
(`nettrain.data.contract`), and predict / evaluate --data with and without --strict."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.data import contract as K
from nettrain.data.inputs import prepare_inputs
from nettrain.data.stats import stats_of
from nettrain.data.types import ColumnInfo, FeatureSchema
from nettrain.errors import DataError, UsageError
from tests.helpers import copy_run

YEAR = {"column": "when", "type": "date", "format": None, "part": "year"}


def _schema() -> FeatureSchema:
    return FeatureSchema(task="binary", target="y", id_column="id", class_names=["0", "1"], class_type="int",
                         columns=[ColumnInfo("a", "numeric"), ColumnInfo("code", "categorical"),
                                  ColumnInfo("c", "categorical"), ColumnInfo("t", "text"),
                                  ColumnInfo("when.year", "numeric", origin=dict(YEAR))],
                         cell_types={"a": "number", "code": "number", "c": "str", "t": "str", "when": "str"})


def _train_frame(n: int = 100) -> pd.DataFrame:
    a = np.linspace(0.0, 10.0, n)
    a[:10] = np.nan  # 10 % missing
    return pd.DataFrame({"id": range(n), "a": a, "code": [1, 2] * (n // 2),
                         "c": (["red", "green", "blue", "red"] * n)[:n], "t": ["some words"] * n,
                         "when": [f"{2000 + i % 10}-01-15" for i in range(n)], "y": [0, 1] * (n // 2)})


@pytest.fixture(scope="module")
def signature():
    schema = _schema()
    split = prepare_inputs(_train_frame(), schema, require_target=True, keep_missing=True)
    return K.signature_of(schema, stats_of(schema, split))


def _new(n: int = 20, **changes) -> pd.DataFrame:
    frame = _train_frame(100).iloc[10:10 + n].reset_index(drop=True)  # no gaps: the training rows' values
    for name, value in changes.items():
        frame[name] = value
    return frame


def test_signature_describes_each_column_from_the_training_statistics(signature):
    assert (signature["task"], signature["target"], signature["id_column"], signature["rows"]) == ("binary", "y", "id", 100)
    cols = {c["name"]: c for c in signature["columns"]}
    assert list(cols) == ["a", "code", "c", "t", "when"]
    a = cols["a"]
    assert (a["kind"], a["dtype"], a["missing"], a["missing_rate"]) == ("numeric", "number", 10, 0.1)
    assert a["min"] == pytest.approx(10 / 99 * 10, rel=1e-6) and a["max"] == 10.0
    assert a["p01"] is not None and a["min"] <= a["p01"] <= a["p99"] <= a["max"]
    assert cols["c"]["categories"] == ["red", "blue", "green"]  # most frequent first
    assert cols["c"]["category_count"] == 3 and cols["c"]["categories_complete"] is True
    assert cols["t"]["kind"] == "text" and "categories" not in cols["t"]
    when = cols["when"]
    assert when["kind"] == "date" and when["parts"][0]["name"] == "when.year"
    assert (when["parts"][0]["min"], when["parts"][0]["max"]) == (2000.0, 2009.0)
    json.dumps(signature, allow_nan=False)  # plain JSON


def test_signature_lists_at_most_max_categories():
    schema = FeatureSchema(task="regression", target="y", columns=[ColumnInfo("c", "categorical")])
    n = K.MAX_CATEGORIES + 5
    frame = pd.DataFrame({"c": [f"v{i}" for i in range(n)], "y": np.zeros(n)})
    sig = K.signature_of(schema, stats_of(schema, prepare_inputs(frame, schema, require_target=True)))
    col = sig["columns"][0]
    assert len(col["categories"]) == K.MAX_CATEGORIES and col["category_count"] == n
    assert col["categories_complete"] is False
    # past the limit, unseen categories cannot be told from the list: not counted
    assert K.check(sig, pd.DataFrame({"c": ["never seen"], "y": [0.0]})).clean


def test_rows_like_the_training_rows_are_clean(signature):
    report = K.check(signature, _new())
    assert report.clean and report.rows == 20 and report.lines("new.csv") == []
    assert report.to_dict()["drift"] is False and report.to_dict()["columns"] == {}


def test_unseen_categories_are_counted_with_three_examples(signature):
    report = K.check(signature, _new(c=["purple", "pink", "gold", "teal", "red"] * 4))
    col = report.columns["c"]
    assert col.unseen == 16 and col.unseen_examples == ["purple", "pink", "gold"]
    assert [c.name for c in report.drifting] == ["c"]
    assert report.to_dict()["counts"]["unseen_categories"] == 1


def test_range_margin_is_ten_percent_of_the_training_range(signature):
    lo, hi = signature["columns"][0]["min"], signature["columns"][0]["max"]
    span = hi - lo
    inside = K.check(signature, _new(n=2, a=[lo - 0.09 * span, hi + 0.09 * span]))
    assert inside.clean
    outside = K.check(signature, _new(n=2, a=[lo - 0.11 * span, hi + 0.11 * span])).columns["a"]
    assert (outside.below, outside.above) == (1, 1)
    assert outside.low == pytest.approx(lo - 0.1 * span) and outside.high == pytest.approx(hi + 0.1 * span)


def test_a_date_part_outside_its_range_is_drift(signature):
    report = K.check(signature, _new(n=2, when=["2031-05-01", "2004-01-01"]))
    assert report.columns["when.year"].above == 1 and not report.columns["when"].drifting


def test_missing_rate_jump_over_ten_points(signature):
    # training: 10 % missing in a; 20 % is not more than 10 points above, 25 % is
    assert K.check(signature, _new(a=[np.nan] * 4 + [1.0] * 16)).clean
    col = K.check(signature, _new(a=[np.nan] * 5 + [1.0] * 15)).columns["a"]
    assert col.missing == 5 and col.missing_jump and "missing in 25.0% of the rows (training rows: 10.0%)" in col.issues()[0]
    # a date that is no date counts as missing, as fit counted it
    when = K.check(signature, _new(n=4, when=["soon", None, "2001-01-01", "2002-01-01"])).columns["when"]
    assert when.missing == 2 and when.missing_jump


def test_missing_extra_and_retyped_columns(signature):
    frame = _new(code=["1", "x", "2", "y"] * 5).drop(columns=["t"])
    frame["notes"] = "hello"
    report = K.check(signature, frame)
    assert report.columns["t"].absent and report.columns["notes"].extra
    assert report.columns["code"].type_change == 10 and report.columns["code"].type_examples == ["x", "y"]
    assert "id" not in report.columns and "y" not in report.columns  # the id and the target are no extras
    assert report.counts() == {"missing_columns": 1, "extra_columns": 1, "type_changes": 1, "unseen_categories": 1,
                               "out_of_range": 0, "missing_jumps": 0}
    # the header names the columns of a file read in part
    assert K.check(signature, _new(), header=list(_new().columns) + ["more"]).columns["more"].extra


def test_watch_adds_chunks_up_like_one_check(signature):
    frame = _new(n=60, c=["purple", "red", "mauve"] * 20, a=np.r_[np.full(20, np.nan), np.linspace(-50, 50, 40)])
    whole = K.check(signature, frame).to_dict()
    watch = K.Watch(signature)
    watch.header(frame.columns)
    for start in range(0, 60, 7):
        watch.add(frame.iloc[start:start + 7])
    report = watch.close()
    watch.add(frame)  # a second pass over the rows counts nothing
    assert report.to_dict() == whole
    assert report.rows == 60 and report.columns["c"].unseen_examples == ["purple", "mauve"]


def test_summary_is_bounded(signature):
    frame = _new()
    for i in range(15):
        frame[f"extra{i}"] = 1
    lines = K.check(signature, frame).lines("new.csv")
    assert lines[0].startswith("input drift: new.csv: 15 column(s) differ")
    assert len(lines) == 1 + K.SHOWN_COLUMNS + 1 and "5 more column(s)" in lines[-1]


def test_conclude_strict_raises_and_notifies(signature):
    watch = K.Watch(signature)
    watch.add(_new(c="purple"))
    heard = []
    with pytest.raises(DataError, match="--strict is set: nothing was predicted"):
        K.conclude(watch, "new.csv", strict=True, notify=heard.append)
    assert "'purple'" in heard[1]
    clean = K.Watch(signature)
    clean.add(_new())
    assert K.conclude(clean, "new.csv", strict=True, notify=heard.append).clean


def test_read_signature(tmp_path, signature):
    assert K.read_signature(tmp_path) is None and K.read_signature(None) is None
    heard = []
    assert K.watch_for(tmp_path) is None  # the note comes at the end (an error before it comes alone)
    assert K.conclude(None, "new.csv", strict=True, notify=heard.append) is None and heard == []
    K.conclude(None, "new.csv", strict=False, notify=heard.append, run_dir=tmp_path)
    assert "not checked for drift" in heard[0] and str(tmp_path) in heard[0]
    (tmp_path / K.SIGNATURE).write_text("{not json")
    with pytest.raises(UsageError, match="signature.json: cannot read the input signature"):
        K.read_signature(tmp_path)
    (tmp_path / K.SIGNATURE).write_text(json.dumps(signature))
    assert K.read_signature(tmp_path) == signature


# ------------------------------------------------------------------------------ through the CLI

runner = CliRunner()


def cli(*args):
    from nettrain.cli import app

    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def drifted(mixed_run, tmp_path_factory):
    frame = pd.read_csv(mixed_run.parent / "mixed.csv")
    frame.loc[:4, "color"] = "purple"
    frame.loc[:2, "x1"] = 50.0
    path = tmp_path_factory.mktemp("drift") / "drifted.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_writes_the_signature(mixed_run):
    sig = json.loads((mixed_run / K.SIGNATURE).read_text())
    assert [c["name"] for c in sig["columns"]] == ["x1", "x2", "color"]
    assert (sig["target"], sig["id_column"], sig["task"]) == ("label", "id", "multiclass")
    assert sorted(sig["columns"][2]["categories"]) == ["blue", "green", "red"]


def test_predict_reports_drift_and_still_predicts(mixed_run, drifted, tmp_path):
    out = tmp_path / "p.csv"
    result = cli("predict", mixed_run, drifted, "-o", out)
    assert result.exit_code == 0, result.output
    assert "input drift: " in result.stderr and "color: 5 value(s) in categories" in result.stderr
    assert "x1: 3 above the training range" in result.stderr
    assert len(pd.read_csv(out)) == 80


def test_predict_clean_rows_say_nothing(mixed_run, tmp_path):
    result = cli("predict", mixed_run, mixed_run.parent / "mixed.csv", "-o", tmp_path / "p.csv", "--strict")
    assert result.exit_code == 0, result.output
    assert "drift" not in result.stderr


def test_predict_strict_exits_2_before_writing(mixed_run, drifted, tmp_path):
    out = tmp_path / "p.csv"
    result = cli("predict", mixed_run, drifted, "-o", out, "--strict")
    assert result.exit_code == 2, result.output
    assert "--strict is set: nothing was predicted" in result.stderr and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.iterdir())
    to_stdout = cli("predict", mixed_run, drifted, "--strict")
    assert to_stdout.exit_code == 2 and to_stdout.stdout == ""


def test_predict_without_signature_notes_it(mixed_run, drifted, tmp_path):
    run = copy_run(mixed_run, tmp_path / "old")
    (run / K.SIGNATURE).unlink()
    result = cli("predict", run, drifted, "-o", tmp_path / "p.csv", "--strict")
    assert result.exit_code == 0, result.output
    assert "not checked for drift" in result.stderr and "input drift" not in result.stderr


def test_evaluate_data_records_drift_and_strict_stops(mixed_run, drifted, tmp_path):
    run = copy_run(mixed_run, tmp_path / "run")
    result = cli("evaluate", run, "--data", drifted, "--json")
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["input_check"]
    assert check["drift"] is True and check["counts"]["unseen_categories"] == 1
    assert check["columns"]["color"]["unseen"] == 5 and check["columns"]["x1"]["above"] == 3
    assert "input drift" in result.stderr
    (run / "eval-drifted.json").unlink()
    strict = cli("evaluate", run, "--data", drifted, "--strict")
    assert strict.exit_code == 2 and "nothing was evaluated" in strict.stderr
    assert not (run / "eval-drifted.json").exists()
    alone = cli("evaluate", run, "--strict")
    assert alone.exit_code == 2 and "give --data FILE" in alone.stderr


def test_streamed_predict_adds_every_chunk_up(mixed_run, tmp_path, monkeypatch):
    """A file read in many chunks: the report counts every row once, the drift of late chunks included."""
    from nettrain import api
    from nettrain.data import chunks

    monkeypatch.setattr(chunks, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 64)
    frame = pd.concat([pd.read_csv(mixed_run.parent / "mixed.csv")] * 8, ignore_index=True)
    frame.loc[600:, "color"] = "purple"     # only in the last chunks
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    heard: list[str] = []
    written = api.predict(mixed_run, path, output=tmp_path / "p.csv", notify=heard.append)
    assert written.rows == 640 and written.input_check["rows"] == 640
    assert written.input_check["columns"]["color"]["unseen"] == 40
    assert written.input_check == K.check(K.read_signature(mixed_run), frame).to_dict() | {
        "signature": str(mixed_run / K.SIGNATURE)}
    assert any("color: 40 value(s)" in line for line in heard)
    with pytest.raises(DataError, match="--strict"):
        api.predict(mixed_run, path, output=tmp_path / "q.csv", strict=True)
    assert not (tmp_path / "q.csv").exists()


def test_with_missing_of_takes_the_other_signatures_missing_rates(signature):
    filled = {**signature, "columns": [{**c, "missing": 0, "missing_rate": 0.0} for c in signature["columns"]]}
    back = K.with_missing_of(filled, signature)
    assert back["columns"][0]["missing_rate"] == 0.1 and back["columns"][0]["min"] == signature["columns"][0]["min"]
    assert K.check(back, _new(a=[np.nan] * 4 + [1.0] * 16)).clean
    assert not K.check(filled, _new(a=[np.nan] * 4 + [1.0] * 16)).clean


def test_ignored_training_columns_are_no_extras(signature):
    frame = _new()
    frame["dropped"] = 1
    assert not K.check(signature, frame).clean
    assert K.check({**signature, "ignored": ["dropped"]}, frame).clean


def test_kfold_run_keeps_signatures_and_checks_data_once(kfold_run, tmp_path):
    run = copy_run(kfold_run, tmp_path / "k")
    parent = json.loads((run / K.SIGNATURE).read_text())
    assert "id" in parent["ignored"]  # data.drop: [id], a column of the training file
    fold = json.loads((run / "fold-2" / K.SIGNATURE).read_text())
    assert [c["missing_rate"] for c in fold["columns"]] == [c["missing_rate"] for c in parent["columns"]]
    result = cli("evaluate", run, "--data", kfold_run.parent / "mixed.csv", "--json", "--strict")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["input_check"]["drift"] is False and out["input_check"]["rows"] == 150
