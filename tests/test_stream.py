"""`data.stream`: which path a config takes, the first pass, hashed splits, window shuffling, errors
in a stream, and streamed training end to end (fit, validate --build, --resume, k-fold).

Files here are small, so most tests make chunks small too (`small_chunks`: a few hundred bytes per
pyarrow block, ~100 rows a chunk) and the streamed code paths run over many chunks and windows.
"""

import dataclasses
import json
import os
import signal
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config.loader import load_config
from nettrain.data import chunks as C
from nettrain.data import load_dataset
from nettrain.data import split as SP
from nettrain.data import stream as S
from nettrain.data.stream import path as stream_path  # where `choose` looks up `available_memory`
from nettrain.data.stats import train_stats
from nettrain.data.types import Split
from nettrain.errors import DataError
from tests.helpers import Proc, mixed_csv, regression_csv

runner = CliRunner()


# ------------------------------------------------------------------------------ helpers

@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of ~100 rows (blocks of 2 kB), so a file of a few thousand rows is many windows."""
    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    monkeypatch.setattr(C, "BLOCK_BYTES", 2048)


def config(folder: Path, text: str, name: str = "c.yaml"):
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_config(path)


def loaded(cfg) -> S.StreamDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return S.load_stream(cfg)


def rich_frame(n: int, seed: int) -> pd.DataFrame:
    """Numbers (with missing values), a boolean column, a category (with missing values), text, an id
    and a 3-class label that depends on them."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n) * 3 + 10
    color = rng.choice(["red", "green", "blue"], size=n)
    words = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"])
    note = [" ".join(rng.choice(words, size=3)) for _ in range(n)]
    score = x1 + (x2 - 10) / 3 + np.where(color == "red", 1.5, 0.0)
    label = np.where(score > 1, "high", np.where(score < -1, "low", "mid"))
    df = pd.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)], "x1": x1, "x2": x2, "color": color, "note": note,
                       "flag": rng.choice([True, False], size=n), "label": label})
    df.loc[::7, "x2"] = np.nan
    df.loc[3::11, "color"] = None
    return df


def explicit_files(folder: Path, n_train: int = 300) -> None:
    """train.csv, val.csv, test.csv: the same rows for both paths (no split to tell them apart)."""
    rich_frame(n_train, 1).to_csv(folder / "train.csv", index=False)
    rich_frame(80, 2).to_csv(folder / "val.csv", index=False)
    rich_frame(80, 3).to_csv(folder / "test.csv", index=False)


EXPLICIT = """
    data: {train: train.csv, validation: val.csv, test: test.csv, target: label, id: id,
           columns: {note: {type: text, max_tokens: 5}}}
    preprocessing: {missing: %s}
    model: {layers: [{type: Dense, units: 4, activation: relu}]}
    training: {epochs: 1}
"""


def same_schema(a, b) -> None:
    """Kinds, task, classes, id column equal; fill values equal up to float rounding (the sums of
    chunks of other sizes)."""
    assert dataclasses.replace(a, imputation={}) == dataclasses.replace(b, imputation={})
    assert a.imputation.keys() == b.imputation.keys()
    for name, value in a.imputation.items():
        other = b.imputation[name]
        assert value == (pytest.approx(other, rel=1e-12) if isinstance(value, float) else other)


def ids_of(ds: S.StreamDataset, split: str, **kw) -> list:
    return [i for part in ds.reader.rows(ds.codes[split], **kw) for i in part.ids.tolist()]


# ------------------------------------------------------------------------------ which path

def test_choose_auto_streams_data_whose_in_memory_estimate_passes_half_the_available_memory(tmp_path, monkeypatch):
    mixed_csv(tmp_path / "m.csv", n=200)
    cfg = config(tmp_path, "data: {source: m.csv, target: label}\nmodel: {layers: []}\n")
    assert cfg.data.stream == "auto"
    cost = S.estimate({"source": str(tmp_path / "m.csv")}).memory
    monkeypatch.setattr(stream_path, "available_memory", lambda: 2 * cost + 4)   # the estimate is under half
    small = S.choose(cfg)
    assert not small.stream and "less than half" in small.why
    monkeypatch.setattr(stream_path, "available_memory", lambda: 2 * cost - 4)   # the estimate is over half
    big = S.choose(cfg)
    assert big.stream and "more than half" in big.why and "m.csv" in big.why
    assert big.describe().startswith("data: streamed (data.stream: auto")
    # a resumed run keeps the path it started on, whatever the memory now
    assert S.choose(cfg, recorded=False).stream is False
    monkeypatch.setattr(stream_path, "available_memory", lambda: None)
    assert not S.choose(cfg).stream


def test_choose_true_and_false_and_what_can_stream(tmp_path):
    mixed_csv(tmp_path / "m.csv", n=50)
    frame = pd.read_csv(tmp_path / "m.csv")
    frame.to_parquet(tmp_path / "m.parquet")
    frame.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "m.csv.gz", index=False)
    frame.to_json(tmp_path / "m.jsonl", orient="records", lines=True)
    for name in ("m.csv", "m.parquet", "m.tsv", "m.csv.gz"):
        cfg = config(tmp_path, f"data: {{source: {name}, target: label, stream: true}}\nmodel: {{layers: []}}\n")
        assert S.choose(cfg) == S.DataPath(True, "data.stream: true"), name
        cfg = config(tmp_path, f"data: {{source: {name}, target: label, stream: false}}\nmodel: {{layers: []}}\n")
        assert not S.choose(cfg).stream
    for source in ("m.jsonl", "sklearn:iris"):
        target = "label" if source.endswith("jsonl") else "target"
        cfg = config(tmp_path, f"data: {{source: {source}, target: {target}}}\nmodel: {{layers: []}}\n")
        path = S.choose(cfg)
        assert not path.stream and "only CSV, TSV and Parquet" in path.why
        cfg = config(tmp_path, f"data: {{source: {source}, target: {target}, stream: true}}\nmodel: {{layers: []}}\n")
        with pytest.raises(Exception, match="data.stream") as err:
            S.choose(cfg)
        assert source in str(err.value)


# ------------------------------------------------------------------------------ hashed splits

def test_hashed_split_is_a_function_of_row_number_and_seed_alone():
    split = SP.HashedSplit(7, test=0.2, validation=0.25)
    rows = np.arange(20_000)
    whole = split.codes(rows)
    pieces = np.concatenate([split.codes(rows[a:a + 333]) for a in range(0, len(rows), 333)])
    np.testing.assert_array_equal(whole, pieces)                       # chunking does not matter
    np.testing.assert_array_equal(whole[::-1], split.codes(rows[::-1]))  # nor the order asked in
    assert not np.array_equal(whole, SP.HashedSplit(8, test=0.2, validation=0.25).codes(rows))
    shares = np.bincount(whole, minlength=3) / len(rows)
    sigma = np.sqrt(0.25 / len(rows))
    assert abs(shares[SP.TEST] - 0.2) < 5 * sigma
    assert abs(shares[SP.VALIDATION] - 0.8 * 0.25) < 5 * sigma
    # shuffle false: the last rows are held out, as in memory
    ordered = SP.HashedSplit(7, test=0.2, validation=0.25, shuffle=False, n=100).codes(np.arange(100))
    assert (ordered[80:] == SP.TEST).all() and (ordered[60:80] == SP.VALIDATION).all() and (ordered[:60] == 0).all()
    for n in (7, 99, 100, 101, 1003):  # the sizes the in-memory split gives, for any n
        ordered = SP.HashedSplit(7, test=0.15, validation=0.2, shuffle=False, n=n).codes(np.arange(n))
        n_test = SP.n_held_out(0.15, n)
        n_val = SP.n_held_out(0.2, n - n_test)
        assert np.bincount(ordered, minlength=3).tolist() == [n - n_test - n_val, n_val, n_test]
        assert (np.diff(ordered) >= 0).all()
        from sklearn.model_selection import KFold

        folded = SP.HashedSplit(7, test=0.15, folds=3, shuffle=False, n=n).codes(np.arange(n))
        for i, (_, held) in enumerate(KFold(3).split(np.zeros(n - n_test))):
            np.testing.assert_array_equal(np.flatnonzero(folded == SP.FOLD0 + i), held)
    # k folds: every non-test row in exactly one fold, folds of about equal size
    folds = SP.HashedSplit(7, test=0.1, folds=4).codes(rows)
    counts = np.bincount(folds)
    assert set(np.unique(folds)) == {SP.TEST} | {SP.FOLD0 + i for i in range(4)}
    assert all(abs(c / (0.9 * len(rows)) - 0.25) < 0.02 for c in counts[SP.FOLD0:])


def test_streamed_splits_do_not_depend_on_the_chunk_size(tmp_path, monkeypatch):
    mixed_csv(tmp_path / "m.csv", n=1500)
    cfg = config(tmp_path, "data: {source: m.csv, target: label, id: id, stream: true}\nmodel: {layers: []}\n")
    big = loaded(cfg)
    monkeypatch.setattr(C, "CHUNK_ROWS", 64)
    monkeypatch.setattr(C, "BLOCK_BYTES", 1024)
    small = loaded(cfg)
    assert len(list(small.reader.parts[0].chunks())) > 10
    assert small.fingerprint == big.fingerprint
    for split in S.SPLIT_NAMES:
        assert ids_of(small, split) == ids_of(big, split)
    assert small.split_rows() == big.split_rows()
    assert sum(big.split_rows().values()) == 1500
    # and again: the same rows (what --resume and evaluate rely on)
    assert ids_of(loaded(cfg), "validation") == ids_of(big, "validation")
    # another seed, other rows
    other = loaded(load_config(tmp_path / "c.yaml", ["seed=1"]))
    assert ids_of(other, "test") != ids_of(big, "test")


def test_unshuffled_streamed_splits_are_the_in_memory_ones(tmp_path, small_chunks):
    mixed_csv(tmp_path / "m.csv", n=997)
    cfg = config(tmp_path, "data: {source: m.csv, target: label, id: id, stream: true, split: {shuffle: false}}\n"
                 "model: {layers: []}\n")
    memory, streamed = load_dataset(cfg), loaded(cfg)
    for split in S.SPLIT_NAMES:
        assert ids_of(streamed, split) == getattr(memory, split).ids.tolist(), split


def test_class_shares_of_a_streamed_split_are_recorded_and_close_to_the_whole(tmp_path):
    mixed_csv(tmp_path / "m.csv", n=3000)
    cfg = config(tmp_path, "data: {source: m.csv, target: label, stream: true}\nmodel: {layers: []}\n")
    ds = loaded(cfg)
    shares = ds.class_shares()
    whole = pd.read_csv(tmp_path / "m.csv")["label"].value_counts(normalize=True)
    assert set(shares) == {"train", "validation", "test"}
    for split, by_class in shares.items():
        assert sum(by_class.values()) == pytest.approx(1.0, abs=1e-3)
        rows = ds.rows(split)
        for name, share in by_class.items():
            assert abs(share - whole[name]) < 5 * np.sqrt(0.25 / rows), (split, name)
    # the shares are those of the rows the reader gives
    labels = [y for part in ds.reader.rows(ds.codes["test"]) for y in part.y.tolist()]
    counts = np.bincount(labels, minlength=3) / len(labels)
    assert [shares["test"][n] for n in ds.schema.class_names] == pytest.approx(counts.tolist(), abs=1e-4)


def test_a_split_that_gets_no_rows_is_an_error(tmp_path):
    mixed_csv(tmp_path / "m.csv", n=3)
    cfg = config(tmp_path, "data: {source: m.csv, target: label, stream: true, split: {test: 0.01, validation: 0}}\n"
                 "model: {layers: []}\n")
    with pytest.raises(Exception, match="data.split.test"):
        loaded(cfg)


# ------------------------------------------------------------------------------ the first pass

@pytest.mark.filterwarnings(r"ignore:.* dropped \d+ of \d+ rows with a missing value:UserWarning")  # drop_rows
@pytest.mark.parametrize("policy", ["mean", "median", "most_frequent", "drop_rows"])
def test_first_pass_statistics_equal_those_of_the_rows_in_memory(tmp_path, small_chunks, policy):
    explicit_files(tmp_path)
    cfg = config(tmp_path, EXPLICIT % policy)
    memory, streamed = load_dataset(cfg), loaded(cfg)
    assert len(list(streamed.reader.parts[0].chunks())) >= 3
    same_schema(streamed.schema, memory.schema)
    a, b = train_stats(memory), streamed.stats
    assert b.rows == a.rows == len(memory.train)
    for field in ("count", "mean", "m2", "min", "max"):
        np.testing.assert_allclose(getattr(b.numeric, field), getattr(a.numeric, field), rtol=1e-12)
    assert b.categories == a.categories
    np.testing.assert_array_equal(b.class_counts, a.class_counts)
    assert b.missing == a.missing
    if policy != "drop_rows":
        assert b.missing == {"x2": 43, "color": 27}
    texts = np.concatenate([np.ravel(t) for t in b.texts["note"]()])
    np.testing.assert_array_equal(texts, np.ravel(memory.train.inputs["note"]))
    assert streamed.split_rows() == {"train": len(memory.train), "validation": len(memory.validation),
                                     "test": len(memory.test)}
    assert streamed.n_rows == memory.n_rows


def test_first_pass_of_a_regression_target(tmp_path, small_chunks):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": x @ [2.0, -1.0] + 5}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"a": x[:50, 0], "b": x[:50, 1], "y": 1.0}).to_csv(tmp_path / "test.csv", index=False)
    cfg = config(tmp_path, "data: {train: train.csv, test: test.csv, target: y, split: {validation: 0}}\n"
                 "model: {layers: []}\n")
    memory, streamed = load_dataset(cfg), loaded(cfg)
    assert streamed.schema.task == memory.schema.task == "regression"
    a, b = train_stats(memory), streamed.stats
    np.testing.assert_allclose(b.target.mean, a.target.mean, rtol=1e-10)
    np.testing.assert_allclose(b.target.variance, a.target.variance, rtol=1e-8)
    np.testing.assert_allclose(b.numeric.variance, a.numeric.variance, rtol=1e-10)


def test_parquet_and_csv_streams_give_the_same_first_pass(tmp_path, small_chunks):
    frame = rich_frame(600, 5)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", row_group_size=64)
    text = ("data: {source: d.%s, target: label, id: id, stream: true}\n"
            "preprocessing: {missing: mean}\nmodel: {layers: []}\n")
    csv = loaded(config(tmp_path, text % "csv", "csv.yaml"))
    parquet = loaded(config(tmp_path, text % "parquet", "parquet.yaml"))
    same_schema(csv.schema, parquet.schema)
    assert csv.split_rows() == parquet.split_rows()
    np.testing.assert_allclose(csv.stats.numeric.mean, parquet.stats.numeric.mean, rtol=1e-12)
    assert csv.stats.categories == parquet.stats.categories
    assert ids_of(csv, "test") == ids_of(parquet, "test")


# ------------------------------------------------------------------------------ shuffling

def test_rows_are_shuffled_within_windows_by_seed_and_epoch(tmp_path, small_chunks):
    n = 3000
    pd.DataFrame({"id": np.arange(n), "x": np.arange(n) % 17, "y": np.arange(n) % 5 * 1.5}).to_csv(tmp_path / "d.csv",
                                                                                                index=False)
    cfg = config(tmp_path, "data: {source: d.csv, target: y, id: id, stream: true, split: {test: 0, validation: 0}}\n"
                 "model: {layers: []}\n")
    ds = loaded(cfg)
    train = ds.codes["train"]
    plain = list(ds.reader.rows(train))
    assert len(plain) > 2 * S.SHUFFLE_WINDOW
    in_order = np.concatenate([p.ids for p in plain]).astype(int)
    np.testing.assert_array_equal(in_order, np.arange(n))
    windows = list(ds.reader.rows(train, shuffle=(42, 1)))
    # each shuffled window holds exactly the rows of SHUFFLE_WINDOW consecutive chunks, permuted
    sizes = [sum(len(p) for p in plain[i:i + S.SHUFFLE_WINDOW]) for i in range(0, len(plain), S.SHUFFLE_WINDOW)]
    assert [len(w) for w in windows] == sizes
    start = 0
    for w in windows:
        ids = w.ids.astype(int)
        assert sorted(ids) == list(range(start, start + len(w)))
        assert not np.array_equal(ids, np.arange(start, start + len(w)))
        start += len(w)
    # the inputs and labels moved with their rows
    first = windows[0]
    np.testing.assert_array_equal(first.inputs["numeric"][:, 0], first.ids.astype(int) % 17)
    np.testing.assert_allclose(np.ravel(first.y), first.ids.astype(int) % 5 * 1.5)
    again = np.concatenate([w.ids for w in ds.reader.rows(train, shuffle=(42, 1))])
    np.testing.assert_array_equal(again, np.concatenate([w.ids for w in windows]))  # seed and epoch only
    epoch2 = np.concatenate([w.ids for w in ds.reader.rows(train, shuffle=(42, 2))])
    seed2 = np.concatenate([w.ids for w in ds.reader.rows(train, shuffle=(7, 1))])
    assert not np.array_equal(epoch2, again) and not np.array_equal(seed2, again)


def test_a_streams_chunks_and_windows_do_not_depend_on_the_block_size(tmp_path, monkeypatch):
    """A stream reads chunks of exactly CHUNK_ROWS rows wherever pyarrow's blocks end: the same
    chunks, the same shuffle windows, the same batches whatever BLOCK_BYTES is (a tuning knob only).
    `iter_chunks` (predict, evaluate --data) keeps ending a chunk with a block."""
    n = 3000
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n) % 17 * 0.5, "c": np.where(np.arange(n) % 3, "a", None),
                          "y": np.arange(n) % 5 * 1.5})
    frame.loc[::13, "x"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    orders, frames = [], []
    for block in (1024, 2048, 1 << 16):
        monkeypatch.setattr(C, "BLOCK_BYTES", block)
        chunks = list(C.exact_chunks(tmp_path / "d.csv", numeric=["x", "y"], rows=100))
        assert [c.start for c in chunks] == list(range(0, n, 100)) and {len(c.frame) for c in chunks} == {100}
        frames.append(pd.concat([c.frame for c in chunks]))
        cfg = config(tmp_path, "data: {source: d.csv, target: y, id: id, stream: true,\n"
                     "       split: {test: 0, validation: 0}, columns: {c: {type: categorical}}}\n"
                     "preprocessing: {missing: mean}\nmodel: {layers: []}\n")
        ds = loaded(cfg)
        orders.append(np.concatenate([w.ids for w in ds.reader.rows(ds.codes["train"], shuffle=(3, 1))]))
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0], check_exact=True)
    blockwise = pd.concat([c.frame for c in C.iter_chunks(tmp_path / "d.csv", numeric=["x", "y"], rows=100)])
    pd.testing.assert_frame_equal(blockwise, frames[0], check_exact=True)  # the same rows, read alike
    assert all(np.array_equal(o, orders[0]) for o in orders[1:]) and sorted(orders[0].tolist()) == list(range(n))


def test_chunk_frames_are_what_pyarrow_gives_for_the_whole_block(tmp_path, monkeypatch):
    """Numeric columns are copied out of each block's batch as it comes (not held twice): the frame
    (values, missing values, dtypes, column order, index) is the one `Table.to_pandas` gives."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    monkeypatch.setattr(C, "BLOCK_BYTES", 1024)
    rng = np.random.default_rng(2)
    n = 700
    frame = pd.DataFrame({"t": rng.choice(["u", "v", ""], size=n), "a": rng.normal(size=n).round(4),
                          "b": rng.integers(0, 9, size=n).astype(float), "w": [f"w{i % 9}" for i in range(n)]})
    frame.loc[::5, "a"] = np.nan
    frame.to_csv(tmp_path / "m.csv", index=False)
    numeric, columns = ["a", "b"], ["w", "a", "t", "b"]
    whole = pcsv.read_csv(tmp_path / "m.csv", convert_options=pcsv.ConvertOptions(
        column_types={c: (pa.float64() if c in numeric else pa.string()) for c in columns}, include_columns=columns,
        strings_can_be_null=True, quoted_strings_can_be_null=False)).to_pandas()
    for reader in (C.iter_chunks, C.exact_chunks):
        chunks = list(reader(tmp_path / "m.csv", numeric=numeric, columns=columns, rows=128))
        assert len(chunks) > 3
        got = pd.concat([c.frame for c in chunks])
        assert list(got.columns) == columns and list(got.dtypes) == list(whole.dtypes)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), whole, check_exact=True)
        assert [c.frame.index[0] for c in chunks] == [c.start for c in chunks]


def test_windows_give_the_rows_of_rows_unpermuted_with_their_order(tmp_path, small_chunks):
    """`windows` holds a shuffle window once, in file order, with the order its rows are served in:
    taken in that order they are `rows`' permuted windows; `bare` leaves ids and row numbers out;
    `joined` joins splits as `Split.concat` does, as they come."""
    n = 2500
    pd.DataFrame({"id": np.arange(n), "x": np.arange(n) % 17, "y": np.arange(n) % 5 * 1.5}).to_csv(tmp_path / "d.csv",
                                                                                                index=False)
    cfg = config(tmp_path, "data: {source: d.csv, target: y, id: id, stream: true, split: {test: 0.2, validation: 0}}\n"
                 "model: {layers: []}\n")
    ds = loaded(cfg)
    train = ds.codes["train"]
    windows = list(ds.reader.windows(train, shuffle=(42, 3)))
    rows = list(ds.reader.rows(train, shuffle=(42, 3)))
    assert len(windows) == len(rows) > 2
    for w, r in zip(windows, rows):
        assert np.all(np.diff(w.split.ids.astype(int)) > 0)           # held in file order
        served = w.split.take(w.order)
        np.testing.assert_array_equal(served.ids, r.ids)
        np.testing.assert_array_equal(served.inputs["numeric"], r.inputs["numeric"])
        np.testing.assert_array_equal(served.y, r.y)
        np.testing.assert_array_equal(w.rows().ids, r.ids)
    bare = list(ds.reader.windows(train, shuffle=(42, 3), bare=True))
    assert all(w.split.ids is None and w.split.row_index is None for w in bare)
    np.testing.assert_array_equal(np.concatenate([w.split.y[w.order] for w in bare]),
                                  np.concatenate([r.y for r in rows]))
    plain = [w.split for w in ds.reader.windows(ds.codes["test"])]
    assert len(plain) > 2 and all(w.order is None for w in ds.reader.windows(ds.codes["test"]))
    together, expected = S.joined(iter(plain)), Split.concat(plain)
    for field in ("y", "ids", "row_index"):
        np.testing.assert_array_equal(getattr(together, field), getattr(expected, field))
    np.testing.assert_array_equal(together.inputs["numeric"], expected.inputs["numeric"])
    assert S.joined(iter(plain[:1])) is plain[0] and S.joined(iter([])) is None
    # ids that change type from one chunk to the next are joined as np.concatenate joins them
    mixed = [Split(inputs={"n": np.zeros((2, 1), np.float32)}, y=None, ids=np.array([1, 2])),
             Split(inputs={"n": np.ones((3, 1), np.float32)}, y=None, ids=np.array(["a", None, "c"], dtype=object))]
    assert S.joined(iter(mixed)).ids.tolist() == Split.concat(mixed).ids.tolist() == [1, 2, "a", None, "c"]


def test_the_training_pass_fills_the_caches_of_the_other_splits(tmp_path, small_chunks):
    """One parse of the file per session: the first training pass writes the validation and test
    rows to their caches on the way (chunk for chunk what their own passes would write), so the
    validation, the final evaluation and the plots' rows are read back, not parsed again. A pass
    stopped early leaves none; a split in a file of its own is left to its own pass."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1500, 3)).round(4)
    pd.DataFrame({"id": np.arange(1500), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                  "label": np.where(x[:, 0] > 0, "up", "down")}).to_csv(tmp_path / "m.csv", index=False)
    cfg = config(tmp_path, "data: {source: m.csv, target: label, id: id, stream: true,\n"
                 "       split: {test: 0.2, validation: 0.2}}\nmodel: {layers: []}\n")
    ds = loaded(cfg)
    caches = {name: S.SplitCache(tmp_path / "cache" / f"{name}.bin") for name in ("train", "validation", "test")}
    side = [(ds.codes[name], caches[name]) for name in ("validation", "test")]
    stopped = ds.reader.windows(ds.codes["train"], shuffle=(1, 1), cache=caches["train"], side=side)
    next(stopped)
    stopped.close()
    assert not any(c.complete or c.path.exists() for c in caches.values())
    trained = list(ds.reader.windows(ds.codes["train"], shuffle=(1, 1), cache=caches["train"], side=side))
    assert all(c.complete for c in caches.values())
    for name in ("validation", "test"):
        parsed = list(ds.reader.rows(ds.codes[name]))
        cached = list(ds.reader.rows(ds.codes[name], cache=caches[name]))
        assert len(parsed) == len(cached) > 3
        for a, b in zip(parsed, cached):
            np.testing.assert_array_equal(a.inputs["numeric"], b.inputs["numeric"])
            np.testing.assert_array_equal(a.y, b.y)
        # a pass with a limit (the plots' rows) reads a complete cache too, cut where the file's would be
        head = S.joined(w.split for w in ds.reader.windows(ds.codes[name], limit=130, bare=True, cache=caches[name]))
        from_file = S.joined(w.split for w in ds.reader.windows(ds.codes[name], limit=130, bare=True))
        assert len(head) == len(from_file) == 130
        np.testing.assert_array_equal(head.inputs["numeric"], from_file.inputs["numeric"])
        np.testing.assert_array_equal(head.y, from_file.y)
    again = list(ds.reader.windows(ds.codes["train"], shuffle=(1, 1), cache=caches["train"], side=side))
    for a, b in zip(trained, again):
        np.testing.assert_array_equal(a.order, b.order)
        np.testing.assert_array_equal(a.split.inputs["numeric"], b.split.inputs["numeric"])
    for cache in caches.values():
        cache.remove()

    explicit_files(tmp_path, 200)
    cfg = config(tmp_path, EXPLICIT % "mean")
    ds = loaded(cfg)
    caches = {name: S.SplitCache(tmp_path / "c2" / f"{name}.bin") for name in ("train", "validation", "test")}
    list(ds.reader.windows(ds.codes["train"], cache=caches["train"], side=[(ds.codes[n], caches[n])
                                                                          for n in ("validation", "test")]))
    assert not caches["validation"].complete and not caches["validation"].path.exists()
    assert not caches["train"].complete  # text inputs: nothing is cached


def test_a_cache_writer_winding_down_late_cannot_spoil_the_pass_that_took_over(tmp_path):
    """A pass stopped early ends on its reading thread while the consumer already reads the split
    again (the validation after a stop within the first epoch): the new pass's writer owns the cache,
    the old one's late writes and its abort change nothing."""
    def part(value: float, n: int = 3) -> Split:
        return Split(inputs={"numeric": np.full((n, 2), value, dtype=np.float32)}, y=np.full(n, value, np.float32))

    cache = S.SplitCache(tmp_path / "c" / "validation.bin")
    old = cache.writer()
    old.write(part(1.0))
    new = cache.writer()
    new.write(part(2.0))
    old.write(part(1.0, 5))       # late, from the thread winding down
    old.abort()
    assert cache.path.exists() and not cache.complete
    new.write(part(3.0))
    new.finish()
    assert cache.complete
    assert [float(s.y[0]) for s in cache.splits()] == [2.0, 3.0]
    np.testing.assert_array_equal(next(cache.splits()).inputs["numeric"], np.full((3, 2), 2.0, np.float32))
    late = S.SplitCache(tmp_path / "c" / "test.bin")
    first, second = late.writer(), late.writer()
    second.abort()                # the newer pass stopped: no cache, and the older one cannot finish it
    first.write(part(1.0))
    first.finish()
    assert not late.complete
    cache.remove()


def test_a_file_ordered_by_its_target_gets_a_note_with_the_fix(tmp_path, small_chunks):
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=2000), "label": np.where(x > 0, "pos", "neg"), "y": x * 2})
    frame.sort_values("label").to_csv(tmp_path / "sorted.csv", index=False)
    frame.sort_values("y").to_csv(tmp_path / "sorted_y.csv", index=False)
    frame.sample(frac=1, random_state=1).to_csv(tmp_path / "shuffled.csv", index=False)

    def notes(source, target):
        other = "y" if target == "label" else "label"
        cfg = config(tmp_path, f"data: {{source: {source}, target: {target}, stream: true, drop: [{other}]}}\n"
                     "model: {layers: []}\n")
        with pytest.warns(UserWarning) if "sorted" in source else warnings.catch_warnings():
            ds = S.load_stream(cfg)
        return [n for n in ds.notes if "ordered by the target" in n]

    for source, target in (("sorted.csv", "label"), ("sorted_y.csv", "y")):
        [note] = notes(source, target)
        assert source in note and f"'{target}'" in note
        assert "Shuffle the file's rows once" in note and "data.stream: false" in note
    assert notes("shuffled.csv", "label") == [] and notes("shuffled.csv", "y") == []


# ------------------------------------------------------------------------------ errors in a stream

@pytest.mark.parametrize("column,value", [("x", "oops"), ("y", "n/a?")])
def test_a_bad_value_after_the_first_chunk_names_its_line_and_column(tmp_path, small_chunks, column, value):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=1000).round(3), "c": rng.choice(["a", "b"], size=1000),
                          "y": rng.normal(size=1000).round(3)}).astype(object)
    frame.loc[700, column] = value       # row 700 is line 702 (line 1 is the header)
    frame.to_csv(tmp_path / "d.csv", index=False)
    cfg = config(tmp_path, "data: {source: d.csv, target: y, stream: true}\nmodel: {layers: []}\n")
    with pytest.raises(DataError) as err:
        loaded(cfg)
    text = str(err.value)
    assert "d.csv" in text and "line 702" in text and f"column '{column}'" in text and value in text


def test_a_bad_value_in_a_parquet_stream_names_its_row(tmp_path, small_chunks):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": [str(v) for v in rng.normal(size=1000).round(3)], "y": rng.normal(size=1000)})
    frame.loc[700, "x"] = "oops"           # the 701st row; a parquet file has no lines
    frame.to_parquet(tmp_path / "d.parquet", row_group_size=100)
    cfg = config(tmp_path, "data: {source: d.parquet, target: y, stream: true}\nmodel: {layers: []}\n")
    with pytest.raises(DataError, match=r"d.parquet: row 701, column 'x': 'oops' is not a number"):
        loaded(cfg)


def _numbers_file(path: Path, sep: str, edit: dict[int, str], last: str | None = None) -> None:
    """1000 rows of x,y,z (line 1 the header) with the lines in `edit` replaced and the last line
    cut to `last`; .gz: compressed."""
    import gzip

    lines = ["x,y,z"] + [f"{i % 97},{i % 13}.5,{i % 7}" for i in range(1000)]
    for number, text in edit.items():
        lines[number - 1] = text
    if last is not None:
        lines[-1] = last
    text = "\n".join(line.replace(",", sep) for line in lines) + ("\n" if last is None else "")
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.csv.gz"])
def test_a_line_with_the_wrong_number_of_fields_is_named_by_its_line(tmp_path, small_chunks, name):
    """Far past the first chunk (chunks of ~100 rows): line 702 holds a field too many, and the last
    line (1001) is cut short; the first pass names line 702, then (702 mended) line 1001."""
    sep = "\t" if ".tsv" in name else ","
    _numbers_file(tmp_path / name, sep, {702: "1,2,3,4"}, last="5,")
    cfg = config(tmp_path, f"data: {{source: {name}, target: z, stream: true}}\nmodel: {{layers: []}}\n")
    with pytest.raises(DataError) as err:
        loaded(cfg)
    shown = repr(sep.join("1234"))
    assert str(err.value) == f"{tmp_path / name}: cannot read it as {name.split('.')[1]}: expected 3 fields in " \
                             f"line 702, saw 4: {shown}"
    _numbers_file(tmp_path / name, sep, {}, last="5,")
    with pytest.raises(DataError) as err:
        loaded(cfg)
    assert f"expected 3 fields in line 1001, saw 2 (the last line: the file looks cut short): {repr('5' + sep)}" \
        in str(err.value)


def test_a_line_that_is_not_utf8_is_named_by_its_line(tmp_path, small_chunks):
    _numbers_file(tmp_path / "d.csv", ",", {})
    lines = (tmp_path / "d.csv").read_bytes().split(b"\n")
    lines[801] = b"1,2\xff,3"    # line 802
    (tmp_path / "d.csv").write_bytes(b"\n".join(lines))
    cfg = config(tmp_path, "data: {source: d.csv, target: z, stream: true}\nmodel: {layers: []}\n")
    with pytest.raises(DataError, match=r"d.csv: line 802 is not UTF-8 text \(invalid start byte at byte 3 "
                                        r"of the line\); save the file as UTF-8"):
        loaded(cfg)


def test_a_damaged_parquet_row_group_is_named(tmp_path):
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"a": np.arange(300) * 1.5, "b": np.arange(300) % 7 * 1.0, "y": np.arange(300) % 3 * 1.0})
    path = tmp_path / "d.parquet"
    frame.to_parquet(path, row_group_size=100, compression=None)
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    start = column.dictionary_page_offset or column.data_page_offset
    data[start:start + 40] = b"\xff" * 40    # the page header of row group 2's first column
    path.write_bytes(bytes(data))
    cfg = config(tmp_path, "data: {source: d.parquet, target: y, stream: true}\nmodel: {layers: []}\n")
    with pytest.raises(DataError, match=r"d.parquet: cannot read row group 2 of 3 \(rows 101-200\): "):
        loaded(cfg)


def test_a_file_changed_after_the_first_pass_is_an_error(tmp_path):
    mixed_csv(tmp_path / "m.csv", n=100)
    cfg = config(tmp_path, "data: {source: m.csv, target: label, stream: true}\nmodel: {layers: []}\n")
    ds = loaded(cfg)
    assert len(list(ds.reader.rows(ds.codes["train"]))) == 1
    with open(tmp_path / "m.csv", "a") as f:
        f.write("r999,0.5,10.0,red,high\n")
    with pytest.raises(DataError, match=r"m.csv changed during the run \(its size went from"):
        list(ds.reader.rows(ds.codes["train"]))


def _cached_pass(tmp_path: Path):
    """A stream of numbers whose training rows were read once into a complete cache."""
    regression_csv(tmp_path / "r.csv", n=120)
    cfg = config(tmp_path, "data: {source: r.csv, target: y, stream: true}\nmodel: {layers: []}\n")
    ds = loaded(cfg)
    cache = S.SplitCache(tmp_path / ".cache" / "train.bin")
    first = list(ds.reader.rows(ds.codes["train"], cache=cache))
    assert cache.complete and len(first) == 1
    return ds, cache


def test_a_file_touched_after_the_first_epoch_is_an_error_also_when_the_epoch_reads_the_cache(tmp_path):
    ds, cache = _cached_pass(tmp_path)
    assert len(list(ds.reader.rows(ds.codes["train"], cache=cache))) == 1   # unchanged: the cache serves it
    st = (tmp_path / "r.csv").stat()
    os.utime(tmp_path / "r.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))   # same bytes, touched
    with pytest.raises(DataError, match=r"r.csv changed during the run \(its modification time changed\)"):
        list(ds.reader.rows(ds.codes["train"], cache=cache))


def test_a_file_replaced_by_one_of_the_same_size_and_time_is_an_error(tmp_path):
    ds, cache = _cached_pass(tmp_path)
    path = tmp_path / "r.csv"
    lines = path.read_text().splitlines(keepends=True)
    new = tmp_path / "new.csv"
    new.write_text(lines[0] + "".join(reversed(lines[1:])))   # the same bytes in another order
    st = path.stat()
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with pytest.raises(DataError) as err:
        list(ds.reader.windows(ds.codes["validation"], cache=cache))
    assert str(err.value).startswith(f"{path} changed during the run (it was replaced by another file)")


def test_kfold_with_a_validation_file_is_refused(tmp_path):
    explicit_files(tmp_path, 100)
    cfg = config(tmp_path, "data: {train: train.csv, validation: val.csv, target: label, stream: true,\n"
                 "       split: {folds: 3}}\nmodel: {layers: []}\n")
    with pytest.raises(Exception, match="k-fold cross-validation makes its own validation folds"):
        loaded(cfg)


# ------------------------------------------------------------------------------ the same model either way

def layer(model, kind):
    [found] = [x for x in model.layers if type(x).__name__ == kind]
    return found


def test_an_untrained_streamed_model_predicts_like_the_in_memory_one(tmp_path, small_chunks):
    """The same training rows (explicit files) and seed: the preprocessing layers hold the same
    statistics and vocabularies (text bounded by max_tokens), and the models predict the same."""
    import keras

    from nettrain.model.build import build_model
    from nettrain.training.feed import model_inputs

    explicit_files(tmp_path)
    cfg = config(tmp_path, EXPLICIT % "mean")
    memory, streamed = load_dataset(cfg), loaded(cfg)
    keras.utils.set_random_seed(cfg.seed)
    a = build_model(cfg, memory, compile=False)
    keras.utils.set_random_seed(cfg.seed)
    b = build_model(cfg, streamed, compile=False)
    na, nb = layer(a, "Normalization").get_config(), layer(b, "Normalization").get_config()
    np.testing.assert_allclose(nb["mean"], na["mean"], rtol=1e-6)
    np.testing.assert_allclose(nb["variance"], na["variance"], rtol=1e-6)
    assert layer(b, "StringLookup").get_vocabulary() == layer(a, "StringLookup").get_vocabulary()
    vocabulary = layer(b, "TextVectorization").get_vocabulary()
    assert vocabulary == layer(a, "TextVectorization").get_vocabulary() and len(vocabulary) <= 5
    # the test rows, read by the stream's reader, through both models
    test = Split.concat(list(streamed.reader.rows(streamed.codes["test"])))
    assert test.ids.tolist() == memory.test.ids.tolist()
    x = model_inputs(a, test.inputs)
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    assert pa.std(axis=0).min() > 1e-3          # not a constant output
    np.testing.assert_allclose(pb, pa, atol=1e-5)
    np.testing.assert_allclose(a.predict(model_inputs(a, memory.test.inputs), verbose=0), pa, atol=1e-6)


def test_an_untrained_streamed_regression_model_predicts_like_the_in_memory_one(tmp_path, small_chunks):
    """The regression head's target scaling comes from the first pass's target statistics."""
    import keras

    from nettrain.model.build import build_model
    from nettrain.training.feed import model_inputs

    rng = np.random.default_rng(2)
    for name, n in (("train", 700), ("val", 100)):
        x = rng.normal(size=(n, 3))
        pd.DataFrame({"a": x[:, 0], "b": x[:, 1] * 10, "c": x[:, 2], "y": x @ [3.0, -2.0, 1.0] * 50 + 1000}).to_csv(
            tmp_path / f"{name}.csv", index=False)
    cfg = config(tmp_path, "data: {train: train.csv, validation: val.csv, target: y}\n"
                 "model: {layers: [{type: Dense, units: 8, activation: relu}]}\n")
    memory, streamed = load_dataset(cfg), loaded(cfg)
    keras.utils.set_random_seed(cfg.seed)
    a = build_model(cfg, memory, compile=False)
    keras.utils.set_random_seed(cfg.seed)
    b = build_model(cfg, streamed, compile=False)
    x = model_inputs(a, memory.validation.inputs)
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    assert abs(float(pa.mean()) - 1000) < 300           # outputs on the target's scale
    np.testing.assert_allclose(pb, pa, rtol=1e-5)


# ------------------------------------------------------------------------------ end to end

def fit(*args):
    result = runner.invoke(app, ["fit", *map(str, args), "--quiet"])
    assert result.exit_code == 0, result.output
    return result


def weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.slow
def test_a_streamed_fit_trains_the_model_the_in_memory_fit_trains(tmp_path):
    """Whole-batch training (batch_size above the training rows) makes the batches' order moot: the
    streamed and in-memory runs of the same files and seed end with the same weights and metrics."""
    explicit_files(tmp_path)
    text = (EXPLICIT % "mean").replace("training: {epochs: 1}", "training: {epochs: 4, batch_size: 512, "
                                                                "optimizer: {name: adam, learning_rate: 0.05}}")
    runs = {}
    for stream in ("true", "false"):
        path = tmp_path / f"{stream}.yaml"
        path.write_text(textwrap.dedent(text).replace("id: id,", f"id: id, stream: {stream},"))
        runs[stream] = tmp_path / f"run-{stream}"
        fit(path, "--run-dir", runs[stream])
    streamed, memory = (json.loads((runs[s] / "run.json").read_text()) for s in ("true", "false"))
    assert streamed["data"]["stream"] is True and memory["data"]["stream"] is False
    assert streamed["data"]["rows"] == memory["data"]["rows"] == {"train": 300, "validation": 80, "test": 80}
    assert max_diff(weights(runs["true"] / "model.h5"), weights(runs["false"] / "model.h5")) < 1e-4
    ma, mb = (json.loads((runs[s] / "metrics.json").read_text()) for s in ("true", "false"))
    for split in ("train", "validation", "test"):
        for name, value in mb[split].items():
            assert ma[split][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (split, name)
    ha, hb = (pd.read_csv(runs[s] / "metrics.csv") for s in ("true", "false"))
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-4)
    assert ha["loss"].iloc[-1] < ha["loss"].iloc[0]   # it did train


STREAMED = """
    data: {source: mixed.csv, target: label, id: id, stream: true}
    model: {layers: [{type: Dense, units: 8, activation: relu}]}
    training: {epochs: 2, batch_size: 16, metrics: [accuracy]}
"""


@pytest.mark.slow
def test_streamed_fit_end_to_end_records_the_path_and_class_shares(tmp_path, small_chunks):
    mixed_csv(tmp_path / "mixed.csv", n=600)
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(STREAMED))
    run = tmp_path / "run"
    result = fit(path, "--run-dir", run)
    assert "epoch 2/2" in result.stderr and "epoch 2/2" not in result.stdout
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    data = record["data"]
    assert data["stream"] is True and sum(data["rows"].values()) == 600
    ds = loaded(load_config(path))
    assert data["rows"] == ds.split_rows() and data["fingerprint"] == ds.fingerprint
    assert data["class_shares"] == ds.class_shares()
    assert set(data["class_shares"]["test"]) == {"high", "low", "mid"}
    for name in ("model.h5", "metrics.json", "checkpoints/last.h5", "plots/confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert set(json.loads((run / "metrics.json").read_text())) == {"train", "validation", "test", "test_interval"}
    # evaluate finds the same test rows: the same numbers as the run's final metrics
    result = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    final = json.loads((run / "metrics.json").read_text())["test"]
    assert report["split"] == "test" and report["rows"] == data["rows"]["test"]
    for name, value in final.items():
        assert report["keras_metrics"][name] == pytest.approx(value, rel=1e-5), name


@pytest.mark.slow
def test_validate_build_says_which_path_the_data_takes(tmp_path, monkeypatch):
    mixed_csv(tmp_path / "mixed.csv", n=120)
    pd.read_csv(tmp_path / "mixed.csv").to_json(tmp_path / "mixed.jsonl", orient="records", lines=True)
    cases = {"stream: true": "data: streamed (data.stream: true)",
             "stream: false": "data: in memory (data.stream: false)",
             "stream: auto": "data: in memory (data.stream: auto; mixed.csv read whole"}
    for setting, line in cases.items():
        path = tmp_path / "v.yaml"
        path.write_text(textwrap.dedent(STREAMED).replace("stream: true", setting))
        result = runner.invoke(app, ["validate", str(path), "--build"])
        assert result.exit_code == 0, result.output
        assert line in result.stdout, (setting, result.stdout)
        assert "data: 120 rows, task multiclass" in result.stdout
    monkeypatch.setattr(stream_path, "available_memory", lambda: 1000)   # as if the file did not fit
    result = runner.invoke(app, ["validate", str(path), "--build"])
    assert "data: streamed (data.stream: auto; mixed.csv read whole" in result.stdout and "more than half" in result.stdout
    jsonl = textwrap.dedent(STREAMED).replace("mixed.csv", "mixed.jsonl")
    path.write_text(jsonl.replace("stream: true", "stream: auto"))
    result = runner.invoke(app, ["validate", str(path), "--build"])
    assert result.exit_code == 0, result.output
    assert "data: in memory (" in result.stdout and "only CSV, TSV and Parquet files are streamed" in result.stdout
    path.write_text(jsonl)
    result = runner.invoke(app, ["validate", str(path), "--build"])
    assert result.exit_code == 2 and "data.stream" in result.stderr and "mixed.jsonl" in result.stderr


@pytest.mark.slow
def test_validate_without_build_does_not_import_tensorflow_for_a_stream(tmp_path):
    import subprocess
    import sys

    mixed_csv(tmp_path / "mixed.csv", n=50)
    (tmp_path / "v.yaml").write_text(textwrap.dedent(STREAMED))
    code = ("import sys; from nettrain.api import validate; print(validate(sys.argv[1])); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "v.yaml")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "valid" in done.stdout


@pytest.mark.slow
def test_a_bad_value_in_a_stream_exits_2_before_any_run_output(tmp_path, small_chunks):
    mixed_csv(tmp_path / "mixed.csv", n=800)
    lines = (tmp_path / "mixed.csv").read_text().splitlines()
    cells = lines[650].split(",")          # line 651 of the file
    cells[2] = "12,5"[:2] + "x"            # x2: "12x", not a number
    lines[650] = ",".join(cells)
    (tmp_path / "mixed.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(STREAMED) + "output: {dir: runs}\n")
    result = runner.invoke(app, ["fit", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "line 651" in result.stderr and "column 'x2'" in result.stderr and "12x" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()              # no run folder was started
    result = runner.invoke(app, ["fit", str(path), "--quiet", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and not (tmp_path / "run").exists()


def _launch(tmp_path: Path, args: list, fault: str):
    """nettrain under tests/inject.py FAULT in a subprocess with the small chunks of `small_chunks`;
    stderr goes to a file. Returns (process, stderr path)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    launcher = tmp_path / "launch.py"
    launcher.write_text(textwrap.dedent(f"""
        import runpy, sys
        sys.path.insert(0, {str(root)!r})
        from nettrain.data import chunks as C
        C.CHUNK_ROWS, C.BLOCK_BYTES = 100, 2048
        sys.argv = [{str(root / "tests" / "inject.py")!r}, *sys.argv[1:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """))
    err = tmp_path / "stderr.txt"
    env = {**__import__("os").environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(root)}
    with open(err, "w") as handle:
        proc = subprocess.Popen([sys.executable, str(launcher), fault, "--", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=handle, env=env)
    return proc, err


def _wait_for(proc, err: Path, text: str, timeout: float = 120) -> bool:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in err.read_text():
            return True
        if proc.poll() is not None:
            return text in err.read_text()
        time.sleep(0.05)
    return False


RESUMABLE = """
    data: {source: data.csv, target: label, stream: true}
    model: {layers: [{type: Dense, units: 16, activation: relu}, {type: Dense, units: 8, activation: relu}]}
    training: {epochs: 4, batch_size: 32, optimizer: {name: adam, learning_rate: 0.01}}
    output: {plots: false}
"""


@pytest.mark.slow
def test_resume_of_a_killed_streamed_run_continues_on_the_same_rows(tmp_path, small_chunks):
    """Killed while it writes epoch 2's checkpoint: resumed, it ends where a straight run ends (the
    same rows in each split, the same window-shuffled batches from epoch 2 on)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1200, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0)
    pd.DataFrame(x, columns=list("abcd")).assign(label=np.where(y, "yes", "no")).to_csv(tmp_path / "data.csv",
                                                                                         index=False)
    config_path = tmp_path / "r.yaml"
    config_path.write_text(textwrap.dedent(RESUMABLE))
    ds = loaded(load_config(config_path))
    assert len(list(ds.reader.rows(ds.codes["train"], shuffle=(42, 1)))) >= 2   # several shuffle windows
    straight = tmp_path / "straight"
    fit(config_path, "--run-dir", straight)
    run = tmp_path / "killed"
    proc, err = _launch(tmp_path, ["fit", config_path, "--run-dir", run, "--quiet"], "slow:last:60")
    try:
        assert _wait_for(proc, err, "writing last"), err.read_text()[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "running" and record["epochs_done"] == 1
    result = runner.invoke(app, ["fit", str(config_path), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2, 3, 4]
    resumed = json.loads((run / "run.json").read_text())
    done = json.loads((straight / "run.json").read_text())
    assert resumed["status"] == "completed" and resumed["resumed"][0]["from_epoch"] == 1
    assert resumed["data"] == done["data"]              # fingerprint, rows per split, class shares
    assert max_diff(weights(run / "model.h5"), weights(straight / "model.h5")) <= 1e-6
    np.testing.assert_allclose(pd.read_csv(run / "metrics.csv")["loss"], pd.read_csv(straight / "metrics.csv")["loss"],
                               rtol=1e-6)


@pytest.mark.slow
def test_a_file_replaced_during_a_streamed_run_fails_it_with_exit_2(tmp_path):
    """Numbers only, so epochs 2 on read the cache of prepared rows: the file is replaced (by one of
    the same size and modification time) while epoch 2's checkpoint is written, and epoch 3's start
    notices. The run ends `failed` with the reason, exit 2, one line, no traceback, epoch 2's
    checkpoint kept, no model.h5, no cache left."""
    regression_csv(tmp_path / "reg.csv", n=300)
    path = tmp_path / "s.yaml"
    path.write_text("data: {source: reg.csv, target: y, stream: true}\n"
                    "model: {layers: [{type: Dense, units: 4, activation: relu}]}\n"
                    "training: {epochs: 4, batch_size: 32}\noutput: {plots: false}\n")
    run = tmp_path / "run"
    proc = Proc(["fit", path, "--run-dir", run, "--quiet"], tmp_path, fault="slow:last:3")
    assert proc.wait_for("writing last"), "".join(proc.err)[-2000:]
    data = tmp_path / "reg.csv"
    lines = data.read_text().splitlines(keepends=True)
    (tmp_path / "new.csv").write_text(lines[0] + "".join(reversed(lines[1:])))
    st = data.stat()
    os.utime(tmp_path / "new.csv", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "new.csv", data)
    rc, out, err = proc.finish(timeout=120)
    assert rc == 2, err[-2000:]
    said = [line for line in err.splitlines() if "changed during the run" in line]
    assert said == [f"error: {data} changed during the run (it was replaced by another file); a streamed run "
                    "reads it again at every epoch: put the file back as it was, or start a new run"], err[-2000:]
    assert "Traceback" not in err and "changed" not in out
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "changed during the run" in record["error"]
    assert record["epochs_done"] == 2 and list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2]
    assert not (run / "model.h5").exists() and (run / "checkpoints" / "last.h5").is_file()
    assert not (run / ".cache").exists()


@pytest.mark.slow
def test_kfold_on_a_stream_trains_every_fold_on_its_hashed_rows(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=400)
    path = tmp_path / "k.yaml"
    path.write_text(textwrap.dedent("""
        data: {source: mixed.csv, target: label, drop: [id], stream: true, split: {folds: 3, test: 0.2}}
        model: {layers: [{type: Dense, units: 4, activation: relu}]}
        training: {epochs: 1, batch_size: 32}
        output: {plots: false}
    """))
    run = tmp_path / "run"
    result = fit(path, "--run-dir", run)
    assert "3-fold mean" in result.stdout
    ds = loaded(load_config(path))
    codes = SP.HashedSplit(42, test=0.2, folds=3).codes(np.arange(400))
    validation = []
    for i in (1, 2, 3):
        record = json.loads((run / f"fold-{i}" / "run.json").read_text())
        assert record["status"] == "completed" and record["fold"] == i
        rows = record["data"]["rows"]
        assert rows["validation"] == int((codes == SP.FOLD0 + i - 1).sum())
        assert rows["train"] + rows["validation"] == int((codes != SP.TEST).sum())
        assert rows["test"] == int((codes == SP.TEST).sum()) == ds.rows("test")
        validation.append(rows["validation"])
    assert sum(validation) == 400 - ds.rows("test")
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3 and set(metrics["mean"]) == {"train", "validation", "test"}
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_read_ahead_keeps_the_order_hands_over_errors_and_stops_with_its_consumer():
    import threading
    import time

    assert list(S.read_ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise DataError("bad line 7")

    got = []
    with pytest.raises(DataError, match="bad line 7"):
        for item in S.read_ahead(failing()):
            got.append(item)
    assert got == [1]
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    reader = S.read_ahead(endless(), depth=2)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()                      # the consumer is gone: the producing thread ends too
    assert closed.wait(5)
    deadline = time.time() + 5
    while any(t.name == "nettrain-read-ahead" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "nettrain-read-ahead" for t in threading.enumerate())


@pytest.mark.parametrize("depth", [1, 2])
def test_read_ahead_runs_depth_items_ahead_of_the_one_the_consumer_holds(depth):
    """At most depth + 1 items are alive: the one the consumer holds and `depth` produced (or being
    produced) ahead of it; the thread produces the next one as soon as the consumer takes one."""
    import time

    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    reader = S.read_ahead(items(), depth=depth)
    for held in range(5):
        assert next(reader) == held
        deadline = time.time() + 2
        while len(made) < held + 1 + depth and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # time enough to run further ahead, if it could
        assert len(made) == held + 1 + depth
    reader.close()


def test_validate_refuses_stream_true_on_a_source_that_cannot_stream(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1, "y": 2}\n{"a": 2, "y": 3}\n')
    (tmp_path / "c.yaml").write_text("data: {source: x.jsonl, target: y, stream: true}\n"
                                     "model: {layers: [{type: Dense, units: 4}]}\n")
    result = runner.invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "data.stream" in result.output and "x.jsonl" in result.output
    (tmp_path / "d.csv").write_text("a,y\n1,2\n2,3\n")
    (tmp_path / "d.yaml").write_text("data: {source: d.csv, target: y, stream: true}\n"
                                     "model: {layers: [{type: Dense, units: 4}]}\n")
    result = runner.invoke(app, ["validate", str(tmp_path / "d.yaml")])
    assert result.exit_code == 0 and "data: streamed" in result.output
