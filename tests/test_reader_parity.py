"""Issue 21, one reader: a CSV cell is typed by one rule (`data.cells`) whoever reads it.

A file of tricky cells (padded and signed integers, 20-digit integers, NaN/nan/None/empty cells,
booleans, a date column, a mixed column, a UTF-8 BOM, CRLF line ends) is trained on in memory and
streamed (`data.stream: true`, in small chunks); then every reader of the training file must
produce the rows fit trained on: `evaluate --data` and `predict`, streamed (a .csv) and read whole
(a .csv.xz is not streamable), and predict must give exactly the model's outputs on those rows.
"""

import json
import lzma

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.data import chunks

runner = CliRunner()
ROWS = 150
PAD = [" 1", "+1", "-2", "3", "007"]
BIG = ["12345678901234567890", "12345678901234567891", "7"]
GAP = ["NaN", "nan", "", "1.5", "None", "-0.5", "2"]
FLAG = ["true", "false", "True", "false"]
MIXED = ["1", "1.0", "a", "007", " 1", "b"]
SHADE = ["x", "", "NaN", "y", "<NA>", "x", "z"]
SURE = ["", "true", "false", "True"]  # booleans with a gap in the first row (numeric)
LATE = ["1.0", "2", "007"]  # after the first rows (text): numbers only, in whole chunks
LABEL = ["1", " 1", "+1", "2", "-2", "2", "1", "-2", "+2"]


def tricky_csv(path):
    """ROWS rows of tricky cells, with a BOM and CRLF line ends; the label follows `pad`."""
    lines = ["id,pad,big,gap,flag,sure,when,mixed,shade,late,label"]
    for i in range(ROWS):
        cells_ = [f"r{i}", PAD[i % 5], BIG[i % 3], GAP[i % 7], FLAG[i % 4], SURE[i % 4], f"2024-01-{i % 28 + 1:02d}",
                  MIXED[i % 6], SHADE[i % 7], "a" if i < 8 else LATE[i % 3], LABEL[i % 9]]
        lines.append(",".join(cells_))
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    return path


CONFIG = """\
data:
  source: tricky.csv
  target: label
  id: id
  drop: [when]
  stream: {stream}
  columns: {{big: {{type: categorical}}}}
preprocessing: {{missing: most_frequent}}
model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
training: {{epochs: 1, batch_size: 16}}
output: {{plots: false}}
"""


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"memory": run, "stream": run} trained on the same tricky.csv, and the folder holding it."""
    mp = pytest.MonkeyPatch()
    mp.setattr(chunks, "BLOCK_BYTES", 1024)  # many chunks: typing per chunk would show
    mp.setattr(chunks, "CHUNK_ROWS", 32)
    folder = tmp_path_factory.mktemp("parity")
    data = tricky_csv(folder / "tricky.csv")
    (folder / "tricky.csv.xz").write_bytes(lzma.compress(data.read_bytes()))
    out = {}
    for name, stream in (("memory", "false"), ("stream", "true")):
        (folder / f"{name}.yaml").write_text(CONFIG.format(stream=stream))
        cli("fit", folder / f"{name}.yaml", "--run-dir", folder / name, "--quiet")
        out[name] = folder / name
    yield out, folder
    mp.undo()


def features(run):
    return json.loads((run / "features.json").read_text())


@pytest.mark.slow
def test_memory_and_stream_type_every_column_alike(runs):
    a, b = features(runs[0]["memory"]), features(runs[0]["stream"])
    assert a["columns"] == b["columns"]
    assert a["class_names"] == b["class_names"] == ["-2", "1", "2"]
    assert a["cell_types"] == b["cell_types"]
    from nettrain.lifecycle.target import resolve_target

    assert resolve_target(runs[0]["stream"] / "model.h5").schema.cell_types == a["cell_types"]  # in the .h5 too
    assert a["cell_types"]["pad"] == a["cell_types"]["big"] == a["cell_types"]["label"] == "number"
    assert a["cell_types"]["flag"] == a["cell_types"]["sure"] == "bool" and a["cell_types"]["mixed"] == a["cell_types"]["late"] == "str"
    assert {c["name"]: c["kind"] for c in a["columns"]} == {
        "pad": "numeric", "big": "categorical", "gap": "numeric", "flag": "numeric", "sure": "numeric", "mixed": "categorical",
        "shade": "categorical", "late": "categorical"}


def _by_row(splits):
    """{input name: array in row order} of Splits, and the row numbers."""
    splits = list(splits)
    rows = np.concatenate([s.row_index for s in splits])
    order = np.argsort(rows, kind="stable")
    inputs = {k: np.concatenate([s.inputs[k] for s in splits])[order] for k in splits[0].inputs}
    return rows[order], inputs


def _fit_rows(target):
    """The rows fit trained on (every split of the run, as the run's reader re-creates them)."""
    from nettrain.lifecycle.runrows import run_split_rows

    parts = []
    for split in ("train", "validation", "test"):
        try:
            parts.extend(run_split_rows(target, split))
        except Exception:  # noqa: BLE001 - a split the run does not have
            continue
    return _by_row(parts)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 32 rows read in 1 kB blocks: the tricky file spans several chunks."""
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 32)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["memory", "stream"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.xz"])
def test_every_reader_gives_the_rows_fit_trained_on(runs, mode, suffix, small_chunks):
    from nettrain.lifecycle.evaluate import data_rows
    from nettrain.data.rows import file_rows
    from nettrain.lifecycle.target import resolve_target

    by_mode, folder = runs
    target = resolve_target(by_mode[mode])
    path = folder / f"tricky{suffix}"
    rows, fit = _fit_rows(target)
    assert len(rows) == ROWS
    for rows_of in (lambda: data_rows(target, path),  # evaluate --data
                    lambda: file_rows(path, target.schema, require_target=False)):  # predict
        got_rows, got = _by_row(rows_of())
        assert got_rows.tolist() == list(range(ROWS))
        assert got.keys() == fit.keys()
        for name in fit:
            assert got[name].tolist() == fit[name].tolist(), name


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["memory", "stream"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.xz"])
def test_predict_gives_the_models_outputs_on_evaluates_rows(runs, mode, suffix, small_chunks):
    from nettrain.lifecycle.evaluate import data_rows
    from nettrain.lifecycle.target import batch_size, load_model, model_outputs, resolve_target

    by_mode, folder = runs
    path = folder / f"tricky{suffix}"
    out = folder / f"pred-{mode}{suffix.replace('.', '-')}.csv"
    cli("predict", by_mode[mode], path, "--output", out, "--proba")
    predicted = pd.read_csv(out)
    target = resolve_target(by_mode[mode])
    model = load_model(target)
    split = next(iter(data_rows(target, folder / "tricky.csv.xz")))  # one Split: read whole
    raw = model_outputs(model, split, batch_size(target), "parity")
    probs = predicted[[f"proba_{c}" for c in target.schema.class_names]].to_numpy(np.float32)
    np.testing.assert_array_equal(probs, raw.astype(np.float32))
    assert predicted["id"].tolist() == [f"r{i}" for i in range(ROWS)]


@pytest.mark.parametrize("texts, kind, values", [
    ([" 1", "+1", "-2", "007", None], "number", [1, 1, -2, 7, None]),
    (["12345678901234567890", "7"], "number", ["12345678901234567890", "7"]),
    (["1.5", "NaN", "2"], "number", ["1.5", None, "2"]),
    (["true", "False", "TRUE"], "bool", ["True", "False", "True"]),
    (["1", "1.0", "a", " 1"], "str", ["1", "1.0", "a", " 1"]),
])
def test_one_rule_types_a_text_column(texts, kind, values):
    from nettrain.data import cells
    from nettrain.data.columns import as_strings

    series = pd.Series(texts, dtype=object)
    assert cells.text_type(series) == kind
    got = list(as_strings(cells.typed(series, kind)))
    assert got == [None if v is None else str(v) for v in values]
    # the rule is pandas.read_csv's: the same text read whole gives the same strings
    frame = pd.read_csv(pd.io.common.StringIO("a\n" + "\n".join("" if t is None else t for t in texts) + "\n"),
                        skip_blank_lines=False)
    assert list(as_strings(frame["a"])) == got


def test_a_stored_type_wins_over_the_values_of_a_later_chunk():
    from nettrain.data import cells
    from nettrain.data.columns import as_strings

    # a column typed str at training keeps "1.0" as written even where a chunk holds only numbers
    assert list(as_strings(cells.typed(pd.Series(["1.0", "007"], dtype=object), "str"))) == ["1.0", "007"]
    # a column of numbers reads " 1" as 1 and keeps a value it cannot read as it is (an unknown category)
    assert list(as_strings(cells.typed(pd.Series([" 1", "x"], dtype=object), "number"))) == ["1", "x"]


def test_a_model_without_cell_types_reads_files_as_before():
    from nettrain.data.types import ColumnInfo, FeatureSchema
    from nettrain.data.cells import text_columns

    columns = [ColumnInfo("x", "numeric"), ColumnInfo("color", "categorical")]
    old = FeatureSchema(task="binary", target="y", columns=columns, class_names=["a", "b"])
    assert text_columns(old) == []  # read whole, nothing read as text
    new = FeatureSchema(task="binary", target="y", columns=columns, class_names=["a", "b"],
                        cell_types={"x": "number", "color": "number", "y": "str"})
    assert text_columns(new) == ["color", "y"]  # a numeric feature of numbers is parsed by the reader


@pytest.mark.parametrize("late, number", [('"1,234"', 1234.0), ("$5", 5.0), ("12%", 0.12), ("?", None)])
def test_a_number_written_for_people_after_the_first_chunk_is_read_as_in_memory(tmp_path, small_chunks, late,
                                                                                 number):
    """A column of plain numbers whose row 100 is written for people (`1,234`, `$5`, `12%`, `?` for
    unknown): the file read whole reads it as that number (`columns.to_numbers`), but the chunk reader
    (predict, evaluate --data, a stream's later chunks) parsed the column with pyarrow and refused
    the file ("CSV conversion error to double"). It reads that column again as text from the chunk it
    failed in, by the one rule; a value that is no number is still refused naming its line."""
    from nettrain.data.sources import read_table

    lines = ["a,b,y"] + [f"{i / 7:.4f},{i % 3},{i % 2}" for i in range(200)]
    lines[101] = f"{late},1,0"
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    whole = read_table(tmp_path / "d.csv")
    from nettrain.data.columns import to_numbers

    want = to_numbers(whole["a"])[0]
    assert (np.isnan(want[100]) if number is None else want[100] == pytest.approx(number))
    for read in (chunks.iter_chunks, chunks.exact_chunks):
        got = list(read(tmp_path / "d.csv", numeric=["a", "b"], rows=32))  # (rows 96-127: the fourth chunk)
        assert got[0].start == 0 and all(b.start == a.start + len(a.frame) for a, b in zip(got, got[1:]))
        frame = pd.concat([c.frame for c in got])
        assert frame.index.tolist() == list(range(200))
        np.testing.assert_array_equal(frame["a"].to_numpy(np.float64), want)
        np.testing.assert_array_equal(frame["b"].to_numpy(np.float64), whole["b"].to_numpy(np.float64))
    lines[150] = "oops,1,0"
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    from nettrain.errors import DataError

    with pytest.raises(DataError, match=r"line 151, column 'a': 'oops' is not a number"):
        list(chunks.exact_chunks(tmp_path / "d.csv", numeric=["a", "b"], rows=32))
