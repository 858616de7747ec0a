"""The first pass's shortcuts give what the long way gives: a target that settles as regression skips
the label tally, plain numbers in the first chunk are typed from pyarrow's parse, CSV blocks are
parsed ahead on a thread, statistics of rows without a missing value skip the masks, text cells are
taken as they are. Each is compared with the long way on the same data."""

import dataclasses
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrain.config.loader import load_config
from nettrain.data import chunks as C
from nettrain.data import stream as S
from nettrain.data.cells import typed_like_read_csv
from nettrain.data.columns import _value_str, as_strings
from nettrain.data.split import TRAIN
from nettrain.data.stats import NumericStats
from nettrain.data.stream import files as F
from nettrain.data.stream import firstpass as FP
from nettrain.data.stream.reader import Part
from nettrain.data.stream.tally import Tally
from nettrain.errors import DataError


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    monkeypatch.setattr(C, "BLOCK_BYTES", 2048)


def write(folder: Path, frame: pd.DataFrame, config: str):
    frame.to_csv(folder / "d.csv", index=False)
    (folder / "c.yaml").write_text(textwrap.dedent(config).lstrip("\n"))
    return load_config(folder / "c.yaml")


def loaded(cfg) -> S.StreamDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return S.load_stream(cfg)


def the_long_way(cfg, monkeypatch) -> S.StreamDataset:
    """The stream's dataset without the shortcuts: every label counted, every first-chunk column typed
    by `typed_like_read_csv`."""
    real = F.first_chunk
    with monkeypatch.context() as m:
        m.setattr(FP._FirstPass, "_tally", lambda self, codes: Tally(codes))
        m.setattr(FP, "first_chunk", lambda p, exact=None: real(p))
        return loaded(cfg)


def same(a: S.StreamDataset, b: S.StreamDataset) -> None:
    assert (a.schema.task, a.schema.class_names, a.schema.cell_types) == \
        (b.schema.task, b.schema.class_names, b.schema.cell_types)
    assert [dataclasses.asdict(c) for c in a.schema.columns] == [dataclasses.asdict(c) for c in b.schema.columns]
    assert (a.fingerprint, a.code_rows, a.n_rows, a.notes) == (b.fingerprint, b.code_rows, b.n_rows, b.notes)
    for name in ("numeric", "target"):
        x, y = getattr(a.stats, name), getattr(b.stats, name)
        assert (x is None) == (y is None)
        if x is not None:
            for field in ("count", "mean", "m2", "min", "max"):
                np.testing.assert_array_equal(getattr(x, field), getattr(y, field))  # bit for bit
    assert a.stats.categories == b.stats.categories and a.stats.missing == b.stats.missing
    np.testing.assert_array_equal(a.stats.class_counts if a.stats.class_counts is not None else [],
                                  b.stats.class_counts if b.stats.class_counts is not None else [])
    assert a.class_counts.keys() == b.class_counts.keys()
    for code in a.class_counts:
        np.testing.assert_array_equal(a.class_counts[code], b.class_counts[code])


def table(n: int, seed: int, target) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": np.round(x[:, 1] * 100), "c": rng.choice(["red", "green", "blue"], n)})
    frame["y"] = target(x, rng)
    return frame


CONTINUOUS = lambda x, rng: x @ [1.5, -2.0, 0.5] + rng.normal(scale=0.1, size=len(x))  # noqa: E731
WHOLE = lambda x, rng: (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)  # noqa: E731
HALVES = lambda x, rng: np.where(x[:, 0] > 0, 1.5, 0.5)  # noqa: E731
LATE = lambda x, rng: np.where(np.arange(len(x)) < 2000, np.round(x[:, 0] * 1000), x[:, 0])  # noqa: E731


@pytest.mark.parametrize("target, training, task", [
    (CONTINUOUS, "{loss: auto}", "regression"),                       # settles at its first fraction
    (CONTINUOUS, "{loss: mean_squared_error}", "regression"),         # regression from the start
    (LATE, "{loss: auto}", "regression"),                             # whole numbers for 20 chunks first
    (WHOLE, "{loss: auto}", "multiclass"),                            # never settles: labels counted
    (HALVES, "{loss: auto}", "binary", ),                             # fractions, but task binary asked
])
def test_the_shortcuts_give_the_dataset_the_long_way_gives(tmp_path, small_chunks, monkeypatch, target, training,
                                                           task):
    frame = table(3000, 1, target)
    asked = "binary" if target is HALVES else "auto"
    cfg = write(tmp_path, frame, f"""
        data: {{source: d.csv, target: y, stream: true, task: {asked}, split: {{validation: 0.2, test: 0.1}}}}
        model: {{layers: []}}
        training: {training}
    """)
    fast = loaded(cfg)
    assert fast.schema.task == task
    same(fast, the_long_way(cfg, monkeypatch))


def test_a_settled_target_counts_no_labels_and_keeps_its_statistics():
    """Tally(settles=True) stops counting labels at the chunk with a fraction; what it keeps of the
    target (statistics, chunk means) and what task inference reads of it (continuous) are the long
    way's."""
    part = Part(name="source", path=Path("d.csv"), splitter=None, fixed=TRAIN)
    rng = np.random.default_rng(0)
    chunks = [pd.Series(rng.integers(0, 5, 100).astype(np.float64)) for _ in range(3)] + \
        [pd.Series(rng.normal(size=100)) for _ in range(3)]
    fast, slow = Tally({TRAIN}, settles=True), Tally({TRAIN})
    for values in chunks:
        codes = np.full(len(values), TRAIN, dtype=np.int8)
        for t in (fast, slow):
            t.target(values, codes, part)
            t.order(values)
    assert sum(fast.labels[TRAIN].values()) == 300 < sum(slow.labels[TRAIN].values()) == 600
    assert fast.regression and len(fast.distinct) == 6  # the five whole numbers and one fraction
    assert fast.target_values().dtype == slow.target_values().dtype == np.float64
    assert (fast.target_values() % 1 != 0).any() and (slow.target_values() % 1 != 0).any()
    for field in ("count", "mean", "m2", "min", "max"):
        np.testing.assert_array_equal(getattr(fast.targets[TRAIN], field), getattr(slow.targets[TRAIN], field))
    assert fast.chunk_means == slow.chunk_means and fast.order_chunks == slow.order_chunks == 6


def test_a_missing_value_under_policy_error_is_still_named(tmp_path, small_chunks):
    frame = table(1000, 2, CONTINUOUS)
    frame.loc[640, "b"] = np.nan
    cfg = write(tmp_path, frame, """
        data: {source: d.csv, target: y, stream: true}
        model: {layers: []}
        preprocessing: {missing: error}
    """)
    with pytest.raises(DataError, match=r"missing values in 'b' \(first: row 641 \(line 642\)\)"):
        loaded(cfg)


@pytest.mark.parametrize("cells, fast", [
    (["1", "2", "3"], True), (["+1", "007", "-0"], True), (["1", None, "NA", "2"], True),
    (["1.5", "-.5", "5.", "1e5", "2E-07"], True), (["0.12345678901234567890123", "3"], True),
    (["1", "1e999"], True), (["inf", "-Infinity", "1"], True), (["12345678901234567"], False),
    ([" 2", "1"], False), (["True", "False"], False), (["", None], False), (["1", "x"], False), (["1_000"], False),
    (["0x10"], False), (["Nan", "1"], False), (["1" * 41], False),
])
def test_plain_numbers_are_typed_as_read_csv_types_them(cells, fast):
    """What `plain_numbers` types has read_csv's dtype, missing cells and (here) values; the rest it
    leaves to `typed_like_read_csv`."""
    text = pd.Series(cells, dtype="str")
    typed, exact = F.plain_numbers(text), typed_like_read_csv(text)
    assert (typed is not None) == fast
    if typed is not None:
        assert typed.dtype == exact.dtype
        np.testing.assert_array_equal(typed.isna().to_numpy(), exact.isna().to_numpy())
        np.testing.assert_array_equal(typed.to_numpy(dtype=np.float64), exact.to_numpy(dtype=np.float64))


def test_the_first_chunk_is_typed_alike_with_and_without_the_shortcut(tmp_path):
    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame({"i": rng.integers(0, 9, n), "f": rng.normal(size=n), "g": rng.normal(size=n),
                          "w": rng.choice(["true", "false"], n), "t": rng.choice(["a", "b"], n),
                          "big": [str(10**17 + i) for i in range(n)], "s": [f" {v}" for v in range(n)]})
    frame.loc[::7, "g"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    fast, raw = F.first_chunk(tmp_path / "d.csv", exact=[])
    exact, _ = F.first_chunk(tmp_path / "d.csv")
    assert list(fast.dtypes) == list(exact.dtypes)
    for name in fast.columns:
        assert fast[name].equals(exact[name]), name


def test_blocks_parsed_ahead_give_the_same_chunks_and_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "BLOCK_BYTES", 1024)
    frame = table(2000, 4, CONTINUOUS)
    frame.to_csv(tmp_path / "d.csv", index=False)
    numeric = ["a", "b", "y"]
    plain = list(C.exact_chunks(tmp_path / "d.csv", numeric=numeric, rows=300))
    ahead = list(C.exact_chunks(tmp_path / "d.csv", numeric=numeric, rows=300, ahead=3))
    assert len(plain) == len(ahead) == 7
    for x, y in zip(plain, ahead):
        assert x.start == y.start
        pd.testing.assert_frame_equal(x.frame, y.frame)
    frame["b"] = frame["b"].astype(object)
    frame.loc[1234, "b"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    errors = []
    for depth in (0, 3):
        with pytest.raises(DataError) as e:
            list(C.exact_chunks(tmp_path / "bad.csv", numeric=numeric, rows=300, ahead=depth))
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "line 1236, column 'b'" in errors[0]


def test_statistics_of_whole_rows_are_numpys_bit_for_bit():
    rng = np.random.default_rng(5)
    for x in (rng.normal(size=(3000, 7)).astype(np.float32) * 1e6 + 1e9, rng.normal(size=(1, 1))):
        s = NumericStats.of(x)
        x64 = np.asarray(x, dtype=np.float64)
        np.testing.assert_array_equal(s.mean, x64.mean(axis=0))
        np.testing.assert_array_equal(s.m2 / len(x64), x64.var(axis=0))
        np.testing.assert_array_equal(s.min, x64.min(axis=0))
        assert s.count.tolist() == [len(x)] * x.shape[1]
    both = NumericStats.of(np.array([[np.inf, 1.0], [-np.inf, np.nan]]))  # a NaN sum: the masked way
    assert both.count.tolist() == [2, 1] and np.isnan(both.mean[0]) and both.mean[1] == 1.0


def test_text_cells_are_taken_as_they_are():
    for series in (pd.Series(["a", None, "b"], dtype="str"), pd.Series(["a", None, np.nan, "c"], dtype=object),
                   pd.Series([np.str_("x"), "y"], dtype=object), pd.Series(["a", 1, 2.0, True, None], dtype=object)):
        expected = [_value_str(v) for v in series.astype(object)]
        got = as_strings(series)
        assert got.tolist() == [None if m else e for e, m in zip(expected, series.isna())]
        assert all(v is None or type(v) is str for v in got)
