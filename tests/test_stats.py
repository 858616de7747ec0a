"""Statistics of the training rows (nettrain/data/stats.py): exact chunk merging, fill values, and the
model built from them equal to the one built from the training arrays (the way nettrain built it
before the statistics existed, written out here as the reference)."""

import collections
import dataclasses
import textwrap

import numpy as np
import pandas as pd
import pytest

from nettrain.data.inputs import prepare_inputs
from nettrain.data import stats as stats_module
from nettrain.data.stats import NumericStats, TrainStats, imputation_values, stats_of
from nettrain.data.types import ColumnInfo, FeatureSchema, Split
from nettrain.errors import DataError


def chunks_of(x, sizes):
    out, start = [], 0
    for size in sizes:
        out.append(x[start:start + size])
        start += size
    assert start == len(x)
    return out


def merged(parts):
    stats = NumericStats.of(parts[0])
    for part in parts[1:]:
        stats = stats.merge(NumericStats.of(part))
    return stats


def assert_same_stats(a: NumericStats, b: NumericStats, rel=1e-12):
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.mean, b.mean, rtol=rel, atol=0, equal_nan=True)
    np.testing.assert_allclose(a.variance, b.variance, rtol=rel, atol=0, equal_nan=True)
    np.testing.assert_array_equal(a.min, b.min)
    np.testing.assert_array_equal(a.max, b.max)


def reference(x):
    """count, mean, population variance, min, max per column by numpy, NaN = missing (no empty column)."""
    x = np.asarray(x, dtype=np.float64)
    return ((~np.isnan(x)).sum(axis=0), np.nanmean(x, axis=0), np.nanvar(x, axis=0), np.nanmin(x, axis=0),
            np.nanmax(x, axis=0))


# ------------------------------------------------------------------------------ numeric merge

@pytest.mark.parametrize("sizes", [[500], [250, 250], [1] * 20 + [480], [7, 1, 300, 1, 191], [1] * 500],
                         ids=["whole", "halves", "one-row-chunks-first", "uneven", "all-one-row"])
def test_merged_chunks_equal_the_whole(sizes):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(3, 2, 500), np.full(500, 7.25),            # a constant column
                         rng.exponential(1e-3, 500), rng.integers(-5, 5, 500)]).astype(np.float64)
    x[rng.random(500) < 0.1, 0] = np.nan                                          # missing values
    x[:40, 2] = np.nan                                                            # a run of them
    whole = NumericStats.of(x)
    stats = merged(chunks_of(x, sizes))
    assert_same_stats(stats, whole)
    count, mean, var, lo, hi = reference(x)
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(stats.variance, var, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(stats.min, lo)
    np.testing.assert_array_equal(stats.max, hi)
    assert stats.variance[1] == 0.0 and stats.mean[1] == 7.25      # constant: exactly, not 1e-16


def test_chunks_with_a_column_missing_in_some_of_them():
    x = np.array([[np.nan, 1.0], [np.nan, 2.0], [4.0, 3.0], [6.0, np.nan], [np.nan, 5.0]])
    for sizes in ([2, 3], [1, 1, 1, 1, 1], [3, 2], [4, 1]):
        stats = merged(chunks_of(x, sizes))
        assert stats.count.tolist() == [2, 4]
        assert stats.mean.tolist() == [5.0, 2.75] and stats.variance[0] == 1.0
        assert stats.min.tolist() == [4.0, 1.0] and stats.max.tolist() == [6.0, 5.0]
    empty = NumericStats.of(np.full((3, 2), np.nan))
    assert empty.count.tolist() == [0, 0] and np.isnan(empty.mean).all() and np.isnan(empty.min).all()
    assert np.isnan(empty.variance).all()
    # an empty side changes nothing, bit for bit
    some = NumericStats.of(x)
    for stats in (some.merge(empty), empty.merge(some)):
        for name in ("count", "mean", "m2", "min", "max"):
            np.testing.assert_array_equal(getattr(stats, name), getattr(some, name))


def test_huge_offsets_naive_sum_of_squares_fails_chan_does_not():
    # prices around 1e9 with a spread of about 1: the textbook E[x^2] - E[x]^2 cancels
    rng = np.random.default_rng(3)
    x = 1e9 + rng.normal(0, 1.0, size=(20_000, 1))
    true_var = float(np.var(x - 1e9))             # computed on the small deviations: exact reference
    parts = chunks_of(x, [1] * 10 + [4990, 5000, 10_000])
    # naive: sum, sum of squares per chunk, added up
    n = sum(len(p) for p in parts)
    s1 = sum(float(p.sum()) for p in parts)
    s2 = sum(float((p * p).sum()) for p in parts)
    naive_var = s2 / n - (s1 / n) ** 2
    assert abs(naive_var - true_var) / true_var > 0.5     # wrong in its first digit (or negative)
    stats = merged(parts)
    assert stats.variance[0] == pytest.approx(true_var, rel=1e-9)
    assert stats.mean[0] == pytest.approx(1e9 + float(np.mean(x - 1e9)), rel=1e-15)


def test_of_is_numpy_mean_and_var_bit_for_bit():
    # what makes a model built from statistics identical to one built from the array
    x = np.random.default_rng(5).normal(10, 3, size=(1001, 6)).astype(np.float32)
    stats = NumericStats.of(x)
    x64 = np.asarray(x, dtype=np.float64)
    assert stats.mean.tolist() == x64.mean(axis=0).tolist()
    assert stats.variance.tolist() == x64.var(axis=0).tolist()
    assert stats.min.tolist() == x64.min(axis=0).tolist() and stats.max.tolist() == x64.max(axis=0).tolist()


# ------------------------------------------------------------------------------ TrainStats

SCHEMA = FeatureSchema(task="multiclass", target="label", class_names=["a", "b", "c"],
                       columns=[ColumnInfo("x", "numeric"), ColumnInfo("z", "numeric"),
                                ColumnInfo("color", "categorical"), ColumnInfo("note", "text")])


def frame(n=200, seed=0, gaps=True):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(5, 2, n), "z": rng.integers(0, 4, n).astype(float),
                       "color": rng.choice(["red", "green", "blue", "teal"], n, p=[0.4, 0.3, 0.2, 0.1]),
                       "note": rng.choice(["good day", "bad day", "so so"], n),
                       "label": rng.choice(["a", "b"], n)})  # class "c" never occurs
    if gaps:
        df.loc[df.index[::7], "x"] = np.nan
        df.loc[df.index[3::11], "color"] = None
        df.loc[df.index[5::13], "note"] = None
        df.loc[df.index[2::17], "z"] = np.nan
    return df


def test_chunk_statistics_merge_to_those_of_all_rows():
    df = frame()
    whole = stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True, keep_missing=True), value_counts=True)
    parts = [df.iloc[a:b] for a, b in ((0, 1), (1, 64), (64, 65), (65, 200))]
    stats = None
    for part in parts:
        one = stats_of(SCHEMA, prepare_inputs(part, SCHEMA, require_target=True, keep_missing=True),
                       value_counts=True)
        stats = one if stats is None else stats.merge(one)
    assert stats.rows == whole.rows == 200
    assert_same_stats(stats.numeric, whole.numeric)
    assert stats.categories == whole.categories
    assert stats.categories["color"] == collections.Counter(df["color"].dropna())
    assert stats.class_counts.tolist() == whole.class_counts.tolist() == \
        [int((df["label"] == c).sum()) for c in "abc"]
    assert stats.class_counts.dtype == np.int64 and stats.class_counts[2] == 0
    assert stats.missing == whole.missing == {"x": 29, "z": 12, "color": 18, "note": 15}
    assert stats.values == whole.values and stats.target is None
    # text sources: the merged statistics keep the first chunk's (the stream passes its own)
    assert len(next(iter(stats.texts["note"]()))) == 1


def test_regression_target_statistics():
    schema = FeatureSchema(task="regression", target="y", columns=[ColumnInfo("x", "numeric")])
    df = pd.DataFrame({"x": np.arange(10.0), "y": 5000 + 800 * np.sin(np.arange(10.0))})
    stats = stats_of(schema, prepare_inputs(df, schema, require_target=True))
    assert stats.class_counts is None and stats.target.columns == 1
    y = df["y"].to_numpy(dtype=np.float32).astype(np.float64)
    assert stats.target.mean[0] == y.mean() and stats.target.variance[0] == y.var()
    halves = stats_of(schema, prepare_inputs(df[:3], schema, require_target=True)).merge(
        stats_of(schema, prepare_inputs(df[3:], schema, require_target=True)))
    assert_same_stats(halves.target, stats.target)


def test_filled_statistics_are_those_of_the_filled_rows():
    df = frame()
    raw = stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True, keep_missing=True), value_counts=True)
    fills = imputation_values(SCHEMA, raw, "mean", "d.csv")
    schema = FeatureSchema(**{**SCHEMA.__dict__, "imputation": fills})
    filled_rows = prepare_inputs(df, schema, require_target=True)
    direct = stats_of(schema, filled_rows)
    filled = raw.filled(schema, fills)
    assert_same_stats(filled.numeric, direct.numeric)
    assert filled.categories == direct.categories
    assert filled.missing == raw.missing and direct.missing == {}
    # a numeric column's most frequent value is the one counted most often (ties: the smallest)
    z = df["z"].dropna()
    assert imputation_values(SCHEMA, raw, "most_frequent", "d.csv")["z"] == float(z.mode().iloc[0])


def test_filled_statistics_give_the_quantiles_of_the_filled_rows():
    df = frame()
    raw = stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True, keep_missing=True), value_counts=True)
    fills = imputation_values(SCHEMA, raw, "mean", "d.csv")
    schema = FeatureSchema(**{**SCHEMA.__dict__, "imputation": fills})
    direct = stats_of(schema, prepare_inputs(df, schema, require_target=True)).numeric
    filled = raw.filled(schema, fills).numeric
    levels = np.linspace(0, 1, 17)
    # before filling, a missing cell is left out; after, it counts as its fill value
    assert len(raw.numeric.values(0)) == 200 - 29 and len(filled.values(0)) == 200
    for a, b in zip(filled.quantiles(levels), direct.quantiles(levels)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(raw.numeric.quantiles(levels)[0], filled.quantiles(levels)[0])
    # merged chunks keep every row of the sample (in this order or another: the same quantiles)
    parts = [df.iloc[a:b] for a, b in ((0, 1), (1, 64), (64, 200))]
    merged = None
    for part in parts:
        one = stats_of(SCHEMA, prepare_inputs(part, SCHEMA, require_target=True, keep_missing=True))
        merged = one if merged is None else merged.merge(one)
    assert merged.numeric.sample_rows == 200 and merged.numeric.sample.shape == (200, 2)
    for a, b in zip(merged.numeric.quantiles(levels), raw.numeric.quantiles(levels)):
        np.testing.assert_array_equal(a, b)
    # no sample asked for: none kept, and quantiles say so
    bare = stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True, keep_missing=True), sample=False)
    assert bare.numeric.sample is None
    with pytest.raises(ValueError, match="no sample"):
        bare.numeric.quantiles(levels)


def test_fill_values():
    df = frame()
    raw = stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True, keep_missing=True), value_counts=True)
    x = df["x"].dropna().to_numpy(dtype=np.float32).astype(np.float64)
    mean = imputation_values(SCHEMA, raw, "mean", "d.csv")
    assert mean["x"] == pytest.approx(x.mean(), rel=1e-12) and mean["color"] == "red" and mean["note"] == ""
    assert all(type(v) in (float, str) for v in mean.values())
    median = imputation_values(SCHEMA, raw, "median", "d.csv", column=lambda name: df[name].to_numpy())
    assert median["x"] == float(np.nanmedian(x)) and median["color"] == "red"  # of the values as the model sees them
    # ties between categories: the first in sort order
    tie = stats_of(SCHEMA, prepare_inputs(frame(gaps=False).assign(color=["b", "a"] * 100), SCHEMA,
                                          require_target=True), value_counts=True)
    assert imputation_values(SCHEMA, tie, "most_frequent", "d.csv")["color"] == "a"


def test_a_streams_median_is_the_median_of_its_sample_of_rows(monkeypatch):
    """A stream has no column in hand: its median is that of the rows its statistics sample, which
    are every training row while they fit the sample (the fill value of the rows in memory), else a
    seeded uniform sample of them."""
    df = frame(n=2000, seed=4)

    def streamed(rows):
        merged = None
        for start in range(0, len(rows), 100):
            one = stats_of(SCHEMA, prepare_inputs(rows.iloc[start:start + 100], SCHEMA, require_target=True,
                                                  keep_missing=True))
            merged = one if merged is None else merged.merge(one)
        return merged

    memory = imputation_values(SCHEMA, stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True,
                                                                        keep_missing=True)),
                               "median", "d.csv", column=lambda name: df[name].to_numpy())
    whole = streamed(df)
    assert whole.numeric.sample_rows == len(whole.numeric.sample) == 2000
    assert imputation_values(SCHEMA, whole, "median", "big.csv") == memory
    # more rows than the sample holds: the median of the sample, the same every time
    monkeypatch.setattr(stats_module, "SAMPLE_ROWS", 300)
    monkeypatch.setattr(stats_module, "MIN_SAMPLE_ROWS", 300)
    sampled = streamed(df)
    assert sampled.numeric.sample.shape == (300, 2) and sampled.numeric.sample_rows == 2000
    fills = imputation_values(SCHEMA, sampled, "median", "big.csv")
    x = sampled.numeric.sample[:, 0].astype(np.float64)
    assert fills["x"] == float(np.median(x[~np.isnan(x)])) != memory["x"]
    assert fills == imputation_values(SCHEMA, streamed(df), "median", "big.csv")
    whole_x = np.sort(df["x"].dropna().to_numpy())
    rank = np.searchsorted(whole_x, fills["x"]) / len(whole_x)
    assert 0.4 < rank < 0.6
    # statistics without a sample (and no column): the median cannot be made up
    bare = stats_of(SCHEMA, prepare_inputs(df, SCHEMA, require_target=True, keep_missing=True), sample=False)
    with pytest.raises(ValueError, match="no sample of the rows"):
        imputation_values(SCHEMA, bare, "median", "big.csv")


def test_numeric_most_frequent_past_the_limit_is_refused_clearly():
    df = frame(n=300, gaps=False)
    stats = None
    for a in range(0, 300, 100):
        one = stats_of(SCHEMA, prepare_inputs(df[a:a + 100], SCHEMA, require_target=True), value_counts=True,
                       value_limit=150)
        stats = one if stats is None else stats.merge(one)
    assert stats.values["x"] is None and stats.values["z"] is not None   # 300 distinct x, 4 distinct z
    with pytest.raises(DataError, match="'x' has more than 150 distinct values.*preprocessing.missing: mean"):
        imputation_values(SCHEMA, stats, "most_frequent", "big.csv")


def test_load_dataset_gives_the_statistics_of_the_training_rows(tmp_path):
    from nettrain.config import load_config
    from nettrain.data import load_dataset

    frame(400).to_csv(tmp_path / "d.csv", index=False)
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: d.csv, target: label, columns: {note: {type: text}}}\n"
                    "preprocessing: {missing: mean}\n")
    ds = load_dataset(load_config(path))
    direct = stats_of(ds.schema, ds.train)       # of the filled training rows
    assert ds.stats.rows == len(ds.train)
    assert_same_stats(ds.stats.numeric, direct.numeric)
    assert ds.stats.categories == direct.categories
    assert ds.stats.class_counts.tolist() == direct.class_counts.tolist()
    assert set(ds.stats.missing) == {"x", "z", "color", "note"}
    [texts] = ds.stats.texts["note"]()
    assert texts is ds.train.inputs["note"]      # the training array itself, not a copy


def test_each_fold_carries_the_statistics_of_its_own_training_rows(tmp_path):
    from nettrain.config import load_config
    from nettrain.data import load_dataset
    from nettrain.data.load import fold_dataset

    frame(300, gaps=False).to_csv(tmp_path / "d.csv", index=False)
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: d.csv, target: label, split: {folds: 3, test: 0.2}}\n")
    ds = load_dataset(load_config(path))
    means = []
    for train_pos, val_pos in ds.folds:
        fold = fold_dataset(ds, train_pos, val_pos)
        assert fold.stats.rows == len(fold.train) == len(train_pos)
        x = np.asarray(fold.train.inputs["numeric"], dtype=np.float64)
        assert fold.stats.numeric.mean.tolist() == x.mean(axis=0).tolist()
        assert fold.stats.class_counts.tolist() == np.bincount(fold.train.y, minlength=len(ds.schema.class_names)).tolist()
        means.append(fold.stats.numeric.mean[0])
    assert len(set(means)) == 3                  # three different sets of rows
    assert ds.stats.numeric.mean[0] == means[0]  # the parent: the first fold's


# ------------------------------------------------------------------------------ the model

def old_numeric_scaling(mode, x):
    """build.py's `_numeric_scaling` before the statistics: from the training array."""
    x = np.asarray(x, dtype=np.float64)
    if mode == "standard":
        mean, var = x.mean(axis=0), x.var(axis=0)
    else:
        lo, hi = x.min(axis=0), x.max(axis=0)
        mean, var = lo, (hi - lo) ** 2
    var = np.where(var > 0, var, 1.0)
    return mean.tolist(), var.tolist()


def old_vocabulary(values):
    uniq, counts = np.unique(values.astype(str).ravel(), return_counts=True)
    order = np.lexsort((uniq, -counts))
    return [str(u) for u in uniq[order]]


def old_text_vocabulary(values, mode, max_tokens=10_000):
    import keras

    probe = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode=mode)
    probe.adapt(values.astype(str).ravel())
    return probe


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory):
    from nettrain.config import load_config
    from nettrain.data import load_dataset

    d = tmp_path_factory.mktemp("stats-model")
    rng = np.random.default_rng(2)
    n = 300
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    df = frame(n, seed=4, gaps=False).assign(
        note=[" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(n)],
        w=np.full(n, 3.0))                       # a constant column
    df.to_csv(d / "d.csv", index=False)

    def load(numeric, mode):
        path = d / f"{numeric}-{mode}.yaml"
        path.write_text(textwrap.dedent(f"""
            data: {{source: d.csv, target: label, columns: {{note: {{type: text, output_mode: {mode}}}}}}}
            preprocessing: {{numeric: {numeric}}}
            model: {{layers: [{{type: Dense, units: 4}}]}}
        """))
        cfg = load_config(path)
        return cfg, load_dataset(cfg)
    return load


def layer(model, kind):
    [found] = [x for x in model.layers if type(x).__name__ == kind]
    return found


@pytest.mark.parametrize("numeric,mode", [("standard", "multi_hot"), ("minmax", "tf_idf"), ("standard", "count")])
def test_the_model_built_from_statistics_is_the_one_built_from_the_arrays(mixed_dataset, numeric, mode):
    from nettrain.model.build import build_model

    cfg, ds = mixed_dataset(numeric, mode)
    model = build_model(cfg, ds, compile=False)
    train = ds.train
    norm = layer(model, "Normalization").get_config()
    mean, var = old_numeric_scaling(numeric, train.inputs["numeric"])
    assert norm["mean"] == mean and norm["variance"] == var          # bit for bit
    assert layer(model, "StringLookup").get_vocabulary()[1:] == old_vocabulary(train.inputs["color"])
    text = layer(model, "TextVectorization")
    probe = old_text_vocabulary(train.inputs["note"], mode)
    assert text.get_vocabulary() == probe.get_vocabulary()
    if mode == "tf_idf":
        from nettrain import keras_compat

        np.testing.assert_array_equal(text.get_config()["idf_weights"], keras_compat.adapted_idf_weights(probe))
    # the same model again from statistics gathered chunk by chunk (the streamed path) and
    # a text source that yields the chunks
    parts = [(0, 1), (1, 100), (100, 101), (101, len(train))]
    rows = [Split(inputs={k: v[a:b] for k, v in train.inputs.items()}, y=train.y[a:b]) for a, b in parts]
    stats = stats_of(ds.schema, rows[0])
    for part in rows[1:]:
        stats = stats.merge(stats_of(ds.schema, part))
    stats.texts = {"note": lambda: (r.inputs["note"] for r in rows)}
    streamed = build_model(cfg, dataclasses.replace(ds, stats=stats), compile=False)
    s_norm = layer(streamed, "Normalization").get_config()
    np.testing.assert_allclose(s_norm["mean"], norm["mean"], rtol=1e-12)
    np.testing.assert_allclose(s_norm["variance"], norm["variance"], rtol=1e-12)
    assert layer(streamed, "StringLookup").get_vocabulary() == layer(model, "StringLookup").get_vocabulary()
    assert layer(streamed, "TextVectorization").get_vocabulary() == text.get_vocabulary()
    if mode == "tf_idf":
        np.testing.assert_allclose(layer(streamed, "TextVectorization").get_config()["idf_weights"],
                                   text.get_config()["idf_weights"], rtol=1e-6)


def test_balanced_class_weights_from_the_class_counts(mixed_dataset):
    from nettrain.model.compile import class_weights

    from types import SimpleNamespace

    _, ds = mixed_dataset("standard", "multi_hot")
    cfg = SimpleNamespace(training=SimpleNamespace(class_weight="balanced"))
    y = ds.train.y
    n = len(ds.schema.class_names)
    counts = np.bincount(y, minlength=n).astype(np.float64)
    counts[counts == 0] = 1.0
    old = {i: float(len(y) / (n * counts[i])) for i in range(n)}     # from the labels, as before
    assert class_weights(cfg, ds.schema, ds.stats) == old


def test_train_stats_merge_refuses_mismatched_statistics():
    a = TrainStats(rows=1, numeric=NumericStats.of(np.ones((1, 2))), categories={}, texts={}, class_counts=None,
                   target=NumericStats.of(np.ones((1, 1))), missing={})
    b = TrainStats(rows=1, numeric=None, categories={}, texts={}, class_counts=np.array([1]), target=None, missing={})
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        NumericStats.of(np.ones((2, 2))).merge(NumericStats.of(np.ones((2, 3))))
