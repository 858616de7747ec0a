"""Issue 12: `predict` and `evaluate` read CSV/TSV/Parquet files chunk by chunk.

The chunk reader (`nettrain.data.chunks`) has two knobs, `BLOCK_BYTES` (pyarrow's CSV block) and
`CHUNK_ROWS`; the `small_chunks` fixture turns them down so that a file of a few thousand rows is
read in dozens of chunks and every multi-chunk path (re-cutting to whole batches, the parquet row
groups, the error in a late chunk, the merged metrics) runs on small, quick data.

Most tests use the session's shared tiny runs (tests/conftest.py: a 3-class model with an id
column, a regression model); the runs trained on streamed data are trained here (`slow`).
"""

import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.data import chunks
from tests.helpers import ROOT, copy_run, mixed_csv, regression_csv, slow_fixture

runner = CliRunner()
CLASSES = ["high", "low", "mid"]
ROWS = 3000


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def evaluate_json(*args):
    result = cli("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def small_chunks(monkeypatch):
    """2 kB CSV blocks (about 40 rows each here) and chunks of 64 rows: ~47 chunks for 3000 rows.
    Returns the list of chunk sizes read (the chunk reader of a stream, `chunks.exact_chunks`, which
    `data.rows.file_rows` reads a file with, is spied on)."""
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 64)
    sizes: list[int] = []
    real = chunks.exact_chunks

    def spy(path, *, numeric=None, columns=None, rows=chunks.CHUNK_ROWS, **more):  # (more: e.g. ahead)
        for chunk in real(path, numeric=numeric, columns=columns, rows=rows, **more):
            sizes.append(len(chunk.frame))
            yield chunk

    monkeypatch.setattr(chunks, "exact_chunks", spy)
    return sizes


def set_cell(src: Path, dest: Path, line: int, column: str, value: str) -> Path:
    """A copy of the CSV `src` whose cell on file line `line` (1: the header) in `column` is `value`."""
    lines = src.read_text().splitlines()
    col = lines[0].split(",").index(column)
    cells = lines[line - 1].split(",")
    cells[col] = value
    lines[line - 1] = ",".join(cells)
    dest.write_text("\n".join(lines) + "\n")
    return dest


# ------------------------------------------------------------------------------ the classification run

@pytest.fixture(scope="module")
def run(mixed_run):
    return mixed_run  # predict writes nothing into a run: the shared one is read as it is


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """3000 rows of helpers.mixed_csv in a shuffled order (ids r0... not sorted), with their labels."""
    folder = tmp_path_factory.mktemp("stream-data")
    path = mixed_csv(folder / "big.csv", n=ROWS, seed=5)
    frame = pd.read_csv(path).sample(frac=1.0, random_state=1)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def expected(run, big) -> pd.DataFrame:
    """The reference: plain Keras on the whole file at once (the run's batch size), the classes by name."""
    import keras
    import tensorflow as tf

    frame = pd.read_csv(big)
    model = keras.models.load_model(run / "model.h5")
    x = {"numeric": frame[["x1", "x2"]].to_numpy(dtype="float32"),
         "color": tf.constant(frame[["color"]].to_numpy().astype(str))}
    p = model.predict(x, batch_size=16, verbose=0)
    out = pd.DataFrame({"id": frame["id"].astype(str), "prediction": np.array(CLASSES)[p.argmax(axis=1)]})
    for j, name in enumerate(CLASSES):
        out[f"proba_{name}"] = p[:, j]
    return out


def assert_predictions(got: pd.DataFrame, expected: pd.DataFrame, proba: bool = True) -> None:
    assert list(got.columns) == list(expected.columns if proba else expected.columns[:2])
    assert got["id"].astype(str).tolist() == expected["id"].tolist()  # the input's order, every row once
    assert (got["prediction"].astype(str).to_numpy() == expected["prediction"].to_numpy()).mean() > 0.999
    if proba:
        cols = [f"proba_{c}" for c in CLASSES]
        np.testing.assert_allclose(got[cols].to_numpy(dtype=float), expected[cols].to_numpy(dtype=float), atol=1e-5)
        np.testing.assert_allclose(got[cols].sum(axis=1), 1.0, atol=1e-5)


def test_csv_output_keeps_the_row_order_across_many_chunks(run, big, expected, small_chunks, tmp_path):
    out = tmp_path / "new" / "preds.csv"  # missing folders are made
    result = cli("predict", run, big, "--output", out, "--proba")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {ROWS} predictions to {out}" in result.stderr
    assert len(small_chunks) > 20 and sum(small_chunks) == ROWS  # really read in many chunks
    assert_predictions(pd.read_csv(out), expected)
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.csv"]  # no temporary file left


def test_parquet_output_one_row_group_per_chunk(run, big, expected, small_chunks, tmp_path):
    out = tmp_path / "preds.parquet"
    result = cli("predict", run, big, "--output", out, "--proba")
    assert result.exit_code == 0, result.output
    assert pq.ParquetFile(out).num_row_groups > 10
    got = pd.read_parquet(out)
    assert_predictions(got, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.parquet"]


def test_stdout_is_csv_with_one_header(run, big, expected, small_chunks):
    result = cli("predict", run, big)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("id,prediction") == 1
    assert_predictions(pd.read_csv(io.StringIO(result.stdout)), expected, proba=False)


def test_parquet_and_tsv_inputs_are_streamed(run, big, expected, small_chunks, tmp_path):
    frame = pd.read_csv(big)
    source = tmp_path / "big.parquet"
    frame.to_parquet(source, row_group_size=250, index=False)
    tsv = tmp_path / "big.tsv"
    frame.to_csv(tsv, sep="\t", index=False)
    for src in (source, tsv):
        small_chunks.clear()
        out = tmp_path / f"from-{src.suffix[1:]}.csv"
        result = cli("predict", run, src, "--output", out, "--proba")
        assert result.exit_code == 0, result.output
        assert len(small_chunks) >= 12, src
        assert_predictions(pd.read_csv(out), expected)


def test_api_predict_without_output_returns_every_row(run, big, expected, small_chunks):
    from nettrain import api

    frame = api.predict(run, big, proba=True)
    assert len(small_chunks) > 20
    assert_predictions(frame, expected)


# ------------------------------------------------------------------------------ errors late in the file

LATE = [(".csv", "x1", "oops", ["line 2502", "column 'x1'", "'oops' is not a number"]),
        (".parquet", "x1", "oops", ["line 2502", "column 'x1'", "'oops' is not a number"]),
        (".parquet", "x2", "", ["column 'x2'", "missing value", "line 2502"]),
        (".csv", "x2", "inf", ["column 'x2'", "infinite", "line 2502"])]


@pytest.mark.parametrize("suffix, column, value, needles", LATE,
                         ids=["not-a-number-csv", "not-a-number-parquet", "missing-parquet", "infinite-csv"])
def test_bad_value_in_a_late_chunk_leaves_no_output(run, big, small_chunks, tmp_path, suffix, column, value,
                                                    needles):
    bad = set_cell(big, tmp_path / "bad.csv", 2502, column, value)
    folder = tmp_path / "out"
    out = folder / f"preds{suffix}"
    result = cli("predict", run, bad, "--output", out)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert sum(small_chunks) > 2400  # the error came after many chunks were predicted (and written)
    assert not out.exists()
    assert list(folder.iterdir()) == []  # no temporary file either

    out.write_bytes(b"the previous predictions\n")
    result = cli("predict", run, bad, "--output", out)
    assert result.exit_code == 2, result.output
    assert out.read_bytes() == b"the previous predictions\n"
    assert [p.name for p in folder.iterdir()] == [out.name]


def test_bad_value_in_a_late_chunk_on_stdout_exits_2(run, big, small_chunks, tmp_path):
    """Without --output the rows before the bad one are already printed (a stream); the exit code and
    the message say the output is incomplete."""
    bad = set_cell(big, tmp_path / "bad.csv", 2502, "x1", "oops")
    result = cli("predict", run, bad)
    assert result.exit_code == 2, result.output
    assert "line 2502" in result.stderr and "column 'x1'" in result.stderr
    assert result.stdout.count("\n") < ROWS


def test_bad_value_in_a_late_parquet_row_group(run, big, small_chunks, tmp_path):
    frame = pd.read_csv(big)
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[2500, "x1"] = None
    source = tmp_path / "gap.parquet"
    frame.to_parquet(source, row_group_size=250, index=False)
    out = tmp_path / "preds.csv"
    result = cli("predict", run, source, "--output", out)
    assert result.exit_code == 2, result.output
    assert "column 'x1'" in result.stderr and "row 2501" in result.stderr, result.stderr  # rows count from 1
    assert not out.exists()


def test_a_late_line_with_a_field_too_many_is_named_by_its_line(run, big, small_chunks, tmp_path):
    lines = big.read_text().splitlines()
    lines[2501] += ",extra"    # line 2502
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out" / "preds.csv"
    result = cli("predict", run, bad, "--output", out)
    assert result.exit_code == 2, result.output
    assert f"{bad}: cannot read it as csv: expected 5 fields in line 2502, saw 6: " in result.stderr, result.stderr
    assert "Traceback" not in result.output and not out.exists()


# ------------------------------------------------------------------------------ memory

def _predict_peak(target, model, path: Path, out: Path) -> int:
    """tracemalloc's peak (bytes) while predicting `path` into `out` (the model loaded beforehand)."""
    from nettrain.data.rows import file_rows
    from nettrain.lifecycle import predict as P

    tracemalloc.start()
    try:
        rows = file_rows(path, target.schema, require_target=False)
        written = P.write_file(P.prediction_frames(target, model, rows, proba=True), out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written.rows == sum(1 for _ in open(path)) - 1
    return peak


def _whole_inputs(target, path: Path) -> int:
    """tracemalloc's peak (bytes) while reading `path` as one chunk: the file's rows held as model inputs."""
    from nettrain.data.rows import file_rows

    tracemalloc.start()
    try:
        split = next(iter(file_rows(path, target.schema, require_target=False)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(split) == sum(1 for _ in open(path)) - 1
    return peak


def test_memory_stays_flat_however_long_the_file(run, tmp_path, monkeypatch):
    """Chunks of ~500 rows: a file 6x longer does not raise the peak, and the peak stays under a 1.25 MiB
    budget that the longer file's rows alone, held at once as model inputs, exceed several times."""
    from nettrain.lifecycle import target as T

    target = T.resolve_target(run)
    model = T.load_model(target)
    small = mixed_csv(tmp_path / "small.csv", n=5_000, seed=2)
    large = mixed_csv(tmp_path / "large.csv", n=30_000, seed=3)
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 1 << 26)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 10**9)
    whole = _whole_inputs(target, large)
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 512)
    _predict_peak(target, model, run.parent / "mixed.csv", tmp_path / "warm.csv")  # Keras traces its predict function
    peak_small = _predict_peak(target, model, small, tmp_path / "small-preds.csv")
    peak_large = _predict_peak(target, model, large, tmp_path / "large-preds.csv")
    budget = 5 << 18  # 1.25 MiB
    assert whole > 3 * budget, whole
    assert peak_large < budget, (peak_small, peak_large, whole)
    assert peak_large < 1.2 * peak_small, (peak_small, peak_large)
    assert len(pd.read_csv(tmp_path / "large-preds.csv")) == 30_000


# ------------------------------------------------------------------------------ evaluate --data

@pytest.fixture
def eval_run(mixed_run, tmp_path):
    return copy_run(mixed_run, tmp_path / "mixed")  # evaluate writes eval-*.json into the run


def test_evaluate_data_streamed_equals_in_memory(eval_run, big, small_chunks, monkeypatch):
    from nettrain.lifecycle import evaluate as E

    result = cli("evaluate", eval_run, "--data", big, "--json")
    assert result.exit_code == 0, result.output
    assert "ran out of data" not in result.stderr  # Keras is told how many batches the stream holds
    streamed = json.loads(result.stdout)
    assert len(small_chunks) > 20
    assert streamed["rows"] == ROWS
    monkeypatch.setattr(E, "streamed", lambda path: False)  # the same file read whole
    small_chunks.clear()
    whole = evaluate_json(eval_run, "--data", big)
    assert small_chunks == []
    assert whole["rows"] == ROWS
    assert streamed["confusion_matrix"] == whole["confusion_matrix"]
    assert sum(map(sum, streamed["confusion_matrix"])) == ROWS
    assert streamed["metrics"].keys() == whole["metrics"].keys()
    for name, value in whole["metrics"].items():
        assert streamed["metrics"][name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    for cls in CLASSES:
        assert streamed["per_class"][cls] == pytest.approx(whole["per_class"][cls], rel=1e-9)


def test_evaluate_regression_data_streamed_equals_sklearn(regression_run, tmp_path, small_chunks):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from nettrain import api

    run = copy_run(regression_run, tmp_path / "reg")
    data = regression_csv(tmp_path / "reg-big.csv", n=ROWS, seed=7)
    report = evaluate_json(run, "--data", data)
    assert len(small_chunks) > 20 and report["rows"] == ROWS
    truth = pd.read_csv(data)["y"].to_numpy()
    guess = api.predict(run, data)["prediction"].to_numpy()
    m = report["metrics"]
    assert m["mae"] == pytest.approx(mean_absolute_error(truth, guess), rel=1e-5)
    assert m["mse"] == pytest.approx(mean_squared_error(truth, guess), rel=1e-5)
    assert m["r2"] == pytest.approx(r2_score(truth, guess), rel=1e-6)
    assert report["keras_metrics"]["mae"] == pytest.approx(m["mae"], rel=1e-5)  # Keras's own, streamed


def test_evaluate_regression_data_streamed_equals_in_memory(regression_run, tmp_path, small_chunks, monkeypatch):
    from nettrain.lifecycle import evaluate as E

    run = copy_run(regression_run, tmp_path / "reg")
    data = regression_csv(tmp_path / "reg-big.csv", n=ROWS, seed=7)
    streamed = evaluate_json(run, "--data", data)
    monkeypatch.setattr(E, "streamed", lambda path: False)
    whole = evaluate_json(run, "--data", data)
    assert streamed["keras_metrics"] == whole["keras_metrics"]  # the same batches: the same sums
    for name, value in whole["metrics"].items():
        assert streamed["metrics"][name] == pytest.approx(value, rel=1e-9), name


def test_evaluate_data_bad_value_in_a_late_chunk(eval_run, big, small_chunks, tmp_path):
    bad = set_cell(big, tmp_path / "bad.csv", 2702, "x2", "n/a?")
    result = cli("evaluate", eval_run, "--data", bad)
    assert result.exit_code == 2, result.output
    assert "line 2702" in result.stderr and "column 'x2'" in result.stderr, result.stderr
    assert not (eval_run / "eval-bad.json").exists()


# ------------------------------------------------------------------------------ runs trained on streamed data

STREAM_REG = """
    data: {source: reg.csv, target: y, stream: true}
    training: {epochs: 2, batch_size: 64}
    output: {plots: false}
"""


@pytest.fixture(scope="module")
@slow_fixture
def stream_run(tmp_path_factory):
    """A regression run trained with `data.stream: true` on 2000 rows, read in ~30 chunks."""
    mp = pytest.MonkeyPatch()
    mp.setattr(chunks, "BLOCK_BYTES", 4096)
    mp.setattr(chunks, "CHUNK_ROWS", 64)
    try:
        root = tmp_path_factory.mktemp("stream-run")
        regression_csv(root / "reg.csv", n=2000, seed=3)
        (root / "c.yaml").write_text(textwrap.dedent(STREAM_REG))
        result = cli("fit", root / "c.yaml", "--run-dir", root / "run", "--quiet")
        assert result.exit_code == 0, result.output
    finally:
        mp.undo()
    return root / "run"


@pytest.mark.slow
@pytest.mark.parametrize("split", ["test", "validation", "train"])
def test_evaluate_a_streamed_run_gives_its_fit_metrics(stream_run, split, small_chunks):
    record = json.loads((stream_run / "run.json").read_text())
    assert record["data"]["stream"] is True
    args = [] if split == "test" else ["--split", split]
    report = evaluate_json(stream_run, *args)
    assert report["split"] == split
    assert report["rows"] == record["data"]["rows"][split]
    expected = record["final_metrics"][split]
    for name, value in expected.items():
        assert report["keras_metrics"][name] == pytest.approx(value, rel=1e-6), name
    assert (stream_run / f"eval-{split}.json").is_file()


@pytest.mark.slow
def test_evaluate_a_streamed_run_whose_file_changed_is_refused(stream_run, tmp_path):
    run = copy_run(stream_run, tmp_path / "copy")
    data = Path(json.loads((run / "run.json").read_text())["data"]["source"])
    before = data.read_bytes()
    try:
        data.write_bytes(before + before.splitlines(keepends=True)[1])  # one row more
        result = cli("evaluate", run)
    finally:
        data.write_bytes(before)
    assert result.exit_code == 2, result.output
    assert "the data changed since training" in result.stderr, result.stderr


STREAM_KFOLD = """
    data: {source: labels.csv, target: label, id: id, stream: true, split: {folds: 3, test: 0.2}}
    model: {layers: [{type: Dense, units: 8, activation: relu}]}
    training: {epochs: 1, batch_size: 32, metrics: [accuracy]}
    output: {plots: false}
"""


@pytest.fixture(scope="module")
@slow_fixture
def stream_kfold(tmp_path_factory):
    """A 3-fold run trained on streamed data whose labels are the integers -1, 0 and 10."""
    mp = pytest.MonkeyPatch()
    mp.setattr(chunks, "BLOCK_BYTES", 4096)
    mp.setattr(chunks, "CHUNK_ROWS", 64)
    try:
        root = tmp_path_factory.mktemp("stream-kfold")
        frame = pd.read_csv(mixed_csv(root / "mixed.csv", n=900, seed=4))
        frame["label"] = frame["label"].map({"high": 10, "low": -1, "mid": 0})
        frame["id"] = np.arange(len(frame)) * 7
        frame.to_csv(root / "labels.csv", index=False)
        (root / "c.yaml").write_text(textwrap.dedent(STREAM_KFOLD))
        result = cli("fit", root / "c.yaml", "--run-dir", root / "run", "--quiet")
        assert result.exit_code == 0, result.output
    finally:
        mp.undo()
    return root / "run"


@pytest.mark.slow
def test_evaluate_a_streamed_kfold_run_fold_by_fold(stream_kfold, small_chunks):
    report = evaluate_json(stream_kfold)
    assert report["kfold"] is True and len(report["folds"]) == 3
    for i, fold in enumerate(report["folds"], start=1):
        record = json.loads((stream_kfold / f"fold-{i}" / "run.json").read_text())
        assert fold["rows"] == record["data"]["rows"]["validation"]
        for name, value in record["final_metrics"]["validation"].items():
            assert fold["keras_metrics"][name] == pytest.approx(value, rel=1e-6), (i, name)
    test = evaluate_json(stream_kfold / "fold-2", "--split", "test")
    record = json.loads((stream_kfold / "fold-2" / "run.json").read_text())
    assert test["rows"] == record["data"]["rows"]["test"]
    assert test["keras_metrics"]["loss"] == pytest.approx(record["final_metrics"]["test"]["loss"], rel=1e-6)
    assert test["class_names"] == [-1, 0, 10]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_integer_class_names_decoded(stream_kfold, small_chunks, tmp_path, suffix):
    data = stream_kfold.parent / "labels.csv"
    out = tmp_path / f"preds{suffix}"
    result = cli("predict", stream_kfold / "fold-1", data, "--output", out, "--proba")
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(got.columns) == ["id", "prediction", "proba_-1", "proba_0", "proba_10"]
    assert got["id"].tolist() == list(np.arange(900) * 7)  # integer ids, in order
    assert got["prediction"].dtype == np.int64 and set(got["prediction"]) <= {-1, 0, 10}
    probs = got[["proba_-1", "proba_0", "proba_10"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    classes = np.array([-1, 0, 10])[probs.argmax(axis=1)]
    assert (classes == got["prediction"].to_numpy()).all()


@pytest.mark.slow
def test_late_bad_value_in_a_real_process(stream_run, tmp_path):
    """The default chunks (64k rows): the bad value is in the second chunk, after the first was
    predicted and written; the process exits 2 naming the line, and no output remains."""
    n = chunks.CHUNK_ROWS + 3000
    data = regression_csv(tmp_path / "many.csv", n=n, seed=9)
    line = n  # the second-to-last row
    bad = set_cell(data, tmp_path / "bad.csv", line, "b", "1.5.5")
    out = tmp_path / "out" / "preds.parquet"
    env = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "nettrain", "predict", str(stream_run), str(bad), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"line {line:,}" in proc.stderr or f"line {line}" in proc.stderr, proc.stderr
    assert "column 'b'" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []
