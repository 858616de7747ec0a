"""preprocessing.numeric quantile, piecewise and auto (issue 22): the layer math against numpy on
known edges, the quantiles of the training rows (in memory, streamed, missing and constant columns),
auto's choice per column, and every option's model through training, .h5 and nettrain's loader."""

import json
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from nettrain.config.loader import load_config
from nettrain.data import chunks as C
from nettrain.data import load_dataset
from nettrain.data import stats as ST
from nettrain.data.stats import NumericStats, heavy_tailed, normal_quantile

MODES = ["standard", "minmax", "none", "quantile", "piecewise", "auto"]


def stats_of_matrix(x) -> NumericStats:
    x = np.asarray(x, dtype=np.float32)
    return NumericStats.of(x.astype(np.float64), sample=x)


def preprocess(mode: str, stats: NumericStats, points, notes=None) -> np.ndarray:
    """The numeric preprocessing nettrain builds for `mode`, applied to `points` (n, k)."""
    import keras

    from nettrain.model.numeric import numeric_scaling as _numeric_scaling

    inp = keras.Input(shape=(stats.columns,), dtype="float32")
    model = keras.Model(inp, _numeric_scaling(mode, stats, None, notes)(inp))
    return model.predict(np.asarray(points, dtype=np.float32), verbose=0)


def ple(x, edges):
    """Gorishniy et al.'s piecewise-linear encoding, clipped to [0, 1], by numpy."""
    x = np.asarray(x, dtype=np.float64)[:, None]
    lo, hi = edges[:-1][None, :], edges[1:][None, :]
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


# ------------------------------------------------------------------------------ the layer math

def test_piecewise_is_the_standardized_value_and_the_encoding_of_known_edges():
    from nettrain.model.numeric import PIECEWISE_BINS

    assert PIECEWISE_BINS == 16
    # 17 rows: the quantiles at 0, 1/16, ..., 1 are the rows themselves, so the edges are known
    a = np.arange(17.0)                      # edges 0, 1, ..., 16
    b = np.arange(17.0) ** 2 * 10 + 1000     # edges 1000, 1010, 1040, ... (uneven widths)
    stats = stats_of_matrix(np.column_stack([a, b]))
    points = np.array([[-5.0, 0.0], [0.0, 1000.0], [0.5, 1005.0], [3.25, 1100.0], [15.9, 3500.0],
                       [16.0, 3560.0], [100.0, 1e6]])
    out = preprocess("piecewise", stats, points)
    assert out.shape == (len(points), 2 + 2 * 16)
    z = (points - stats.mean) / stats.std
    np.testing.assert_allclose(out[:, :2], z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 2:18], ple(points[:, 0], a), atol=1e-4)
    np.testing.assert_allclose(out[:, 18:], ple(points[:, 1], b), atol=1e-4)
    # inside the range a point lights its lower bins fully, one bin partly and none above
    assert out[3, 2:18].tolist()[:4] == pytest.approx([1.0, 1.0, 1.0, 0.25], abs=1e-4)
    assert out[0, 2:].max() == 0.0 and out[-1, 2:].min() == pytest.approx(1.0)   # outside: clipped


def test_quantile_is_monotone_bounded_and_the_interpolated_normal_scores():
    from nettrain.model.numeric import QUANTILE_BINS

    rng = np.random.default_rng(0)
    x = rng.lognormal(5.4, 1.2, 5000)        # median ~227, max in the thousands
    x[:3] = [14_000, 20_000, 0.5]            # outliers
    stats = stats_of_matrix(x[:, None])
    grid = np.concatenate([[-1e6, 0.0], np.sort(x), [1e5, 1e9]])
    out = preprocess("quantile", stats, grid[:, None])[:, 0]
    assert np.all(np.diff(out) >= -1e-6)                                     # monotone
    bound = float(normal_quantile(np.array([0.5 / QUANTILE_BINS]))[0])
    assert bound == pytest.approx(-2.154, abs=1e-3)
    assert out.min() == pytest.approx(bound, abs=1e-4) and out.max() == pytest.approx(-bound, abs=1e-4)
    assert out[0] == out[1] and out[-1] == out[-2]                           # outside the range: clipped
    # the reference: normal scores of the levels, linear between the quantiles
    levels = np.linspace(0, 1, QUANTILE_BINS + 1)
    edges = np.quantile(x.astype(np.float32).astype(np.float64), levels)
    reference = np.interp(grid, edges, normal_quantile(np.clip(levels, 0.5 / QUANTILE_BINS, 1 - 0.5 / QUANTILE_BINS)))
    np.testing.assert_allclose(out, reference, atol=2e-3)
    mapped = preprocess("quantile", stats, x[:, None])[:, 0]
    assert abs(np.median(mapped)) < 0.05 and 0.8 < mapped.std() < 1.1     # normal-ish, outliers tamed
    assert np.abs(mapped).max() < 2.2


def test_ties_get_their_mid_rank_and_constant_columns_map_to_zero():
    from nettrain.model.numeric import QUANTILE_BINS

    # 50% zeros: the tie sits at the middle of the levels whose quantile it is (about the 23rd
    # percentile, normal score about -0.72), not at the bottom (-2.15)
    x = np.concatenate([np.zeros(500), np.arange(1.0, 501.0)])
    stats = stats_of_matrix(np.column_stack([x, np.full(1000, 7.0)]))
    out = preprocess("quantile", stats, np.array([[0.0, 7.0], [250.0, 7.0], [500.0, 100.0]]))
    levels = np.linspace(0, 1, QUANTILE_BINS + 1)
    tied = levels[np.quantile(x, levels) == 0.0]
    assert len(tied) == 16 and tied.mean() == pytest.approx(0.234, abs=1e-3)
    assert out[0, 0] == pytest.approx(float(normal_quantile(np.array([tied.mean()]))[0]), abs=1e-4)
    assert out[1, 0] == pytest.approx(float(normal_quantile(np.array([0.75]))[0]), abs=0.03)
    assert np.all(out[:, 1] == 0.0)                                          # constant: no division by 0
    pw = preprocess("piecewise", stats, np.array([[0.0, 7.0], [1e4, -1e4]]))
    assert np.isfinite(pw).all()


# ------------------------------------------------------------------------------ statistics

def test_quantiles_of_the_rows_in_memory_are_numpys():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.lognormal(0, 2, 1000), rng.normal(size=1000)]).astype(np.float32)
    levels = np.linspace(0, 1, 9)
    q = stats_of_matrix(x).quantiles(levels)
    for j in range(2):
        np.testing.assert_array_equal(q[j], np.quantile(x[:, j].astype(np.float64), levels).astype(np.float32))


def test_missing_values_take_their_fill_value_and_no_nan_reaches_the_quantiles(tmp_path):
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"x": rng.lognormal(3, 1, 300), "c": 5.0, "y": rng.normal(size=300)})
    df.loc[::3, "x"] = np.nan
    df.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "c.yaml").write_text("data: {source: d.csv, target: y, split: {test: 0, validation: 0}}\n"
                                     "preprocessing: {missing: mean, numeric: quantile}\n")
    ds = load_dataset(load_config(tmp_path / "c.yaml"))
    numeric = ds.stats.numeric
    fill = ds.schema.imputation["x"]
    values = numeric.values(0)
    assert len(values) == 300 and not np.isnan(values).any()
    assert (values == np.float32(fill)).sum() == 100                       # the filled cells, as filled
    np.testing.assert_allclose(numeric.quantiles(np.array([0.0, 0.5, 1.0]))[0],
                               np.quantile(ds.train.inputs["numeric"][:, 0].astype(np.float64), [0, 0.5, 1]),
                               rtol=1e-6)


def test_statistics_stay_finite_for_constant_and_all_missing_columns():
    x = np.column_stack([np.full(50, 3.0), np.full(50, np.nan), np.linspace(0, 1, 50)])
    stats = stats_of_matrix(x)
    q = stats.quantiles(np.linspace(0, 1, 5))
    assert q[0].tolist() == [3.0] * 5 and len(q[1]) == 0 and np.isfinite(q[2]).all()
    assert heavy_tailed(stats).tolist() == [False, False, False]
    for mode in ("quantile", "piecewise", "auto"):
        out = preprocess(mode, stats, np.array([[3.0, 0.0, 0.5], [-1.0, 9.0, 2.0]]))
        assert np.isfinite(out).all(), mode
    merged = stats.merge(stats_of_matrix(np.full((5, 3), np.nan)))
    assert merged.sample_rows == 55 and np.isfinite(merged.quantiles(np.array([0.5]))[0]).all()


def test_merged_chunk_samples_are_the_rows_while_small_and_bounded_past_the_limit(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 1, (3000, 2)).astype(np.float32)
    parts = [x[a:a + 250] for a in range(0, 3000, 250)]
    stats = stats_of_matrix(parts[0])
    for part in parts[1:]:
        stats = stats.merge(stats_of_matrix(part))
    levels = np.linspace(0, 1, 17)
    exact = stats_of_matrix(x).quantiles(levels)
    for got, want in zip(stats.quantiles(levels), exact):
        np.testing.assert_array_equal(got, want)                          # every row kept: exact
    monkeypatch.setattr(ST, "SAMPLE_ROWS", 600)
    monkeypatch.setattr(ST, "MIN_SAMPLE_ROWS", 100)
    small = stats_of_matrix(parts[0])
    for part in parts[1:]:
        small = small.merge(stats_of_matrix(part))
    assert small.sample.shape == (600, 2) and small.sample_rows == 3000
    assert small.count.tolist() == [3000, 3000]                          # the moments stay exact
    # a uniform sample of the rows: its quantiles' levels within a few points of the exact ones
    for j, q in enumerate(small.quantiles(levels[1:-1])):
        np.testing.assert_allclose((x[:, j][:, None] <= q[None, :]).mean(axis=0), levels[1:-1], atol=0.06)
    # the later chunks are in it too, not only the first ones
    later = np.isin(small.sample[:, 0], x[1500:, 0]).mean()
    assert 0.35 < later < 0.65
    again = stats_of_matrix(parts[0])
    for part in parts[1:]:
        again = again.merge(stats_of_matrix(part))
    np.testing.assert_array_equal(again.sample, small.sample)             # seeded: the same sample


def test_streamed_edges_agree_with_the_in_memory_ones(tmp_path, monkeypatch):
    from nettrain.data import stream as S

    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    monkeypatch.setattr(C, "BLOCK_BYTES", 2048)
    rng = np.random.default_rng(4)

    def frame(n):
        df = pd.DataFrame({"income": rng.lognormal(5.4, 1.3, n).round(2), "age": rng.normal(40, 9, n).round(1),
                           "y": rng.choice(["a", "b"], n)})
        df.loc[::9, "income"] = np.nan
        return df
    frame(2000).to_csv(tmp_path / "train.csv", index=False)
    frame(200).to_csv(tmp_path / "val.csv", index=False)
    (tmp_path / "c.yaml").write_text("data: {train: train.csv, validation: val.csv, target: y}\n"
                                     "preprocessing: {missing: mean, numeric: quantile}\n")
    cfg = load_config(tmp_path / "c.yaml")
    memory = load_dataset(cfg).stats.numeric
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streamed = S.load_stream(cfg).stats.numeric
    levels = np.linspace(0, 1, 33)
    assert streamed.sample_rows == memory.sample_rows == 2000
    for a, b in zip(streamed.quantiles(levels), memory.quantiles(levels)):
        np.testing.assert_allclose(a, b, rtol=1e-6)                     # all rows sampled: the same edges
    monkeypatch.setattr(ST, "SAMPLE_ROWS", 500)
    monkeypatch.setattr(ST, "MIN_SAMPLE_ROWS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampled = S.load_stream(cfg).stats.numeric
    assert len(sampled.sample) == 500
    # a stream keeps its sample only for the options built from quantiles
    (tmp_path / "s.yaml").write_text("data: {train: train.csv, validation: val.csv, target: y}\n"
                                     "preprocessing: {missing: mean, numeric: standard}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert S.load_stream(load_config(tmp_path / "s.yaml")).stats.numeric.sample is None
    inner = levels[2:-2]
    for j, q in enumerate(sampled.quantiles(inner)):                     # a sample: close
        column = memory.values(j)
        np.testing.assert_allclose((column[:, None] <= q[None, :]).mean(axis=0), inner, atol=0.07)


# ------------------------------------------------------------------------------ auto

def test_auto_picks_quantile_for_heavy_tails_and_standard_for_the_rest():
    from nettrain.model.numeric import PIECEWISE_BINS

    rng = np.random.default_rng(5)
    n = 3000
    x = np.column_stack([rng.lognormal(5.4, 1.2, n),             # heavy-tailed, skewed
                         rng.normal(50, 10, n),                    # normal
                         rng.integers(0, 2, n),                    # a flag
                         rng.integers(1990, 2021, n),              # year codes
                         rng.uniform(0, 1, n),                     # uniform
                         np.where(rng.random(n) < 0.995, rng.normal(0, 1, n), 500.0),  # rare outliers
                         rng.uniform(1e-3, 10, n) * 10 ** rng.uniform(0, 4, n)])       # decades
    stats = stats_of_matrix(x)
    assert heavy_tailed(stats).tolist() == [True, False, False, False, False, True, True]
    notes: list[str] = []
    points = np.concatenate([x[:200], [[1e7, 200, 1, 2050, 3, -1e4, 1e9]]])
    out = preprocess("auto", stats, points, notes)
    pw = preprocess("piecewise", stats, points)
    assert out.shape == pw.shape and out.shape[1] > 7
    assert "quantile normal score of 3 heavy-tailed or skewed columns" in notes[0] and "other 4" in notes[0]
    # one value per column: the standardized value of the normal ones ...
    z = (points - stats.mean) / stats.std
    np.testing.assert_allclose(out[:, [1, 2, 3, 4]], z[:, [1, 2, 3, 4]], rtol=1e-4, atol=1e-4)
    # ... the quantile normal score of the heavy ones (bounded where z is not: the last row) ...
    levels = np.linspace(0, 1, PIECEWISE_BINS + 1)
    eps = 0.5 / PIECEWISE_BINS
    for j in (0, 5, 6):
        edges = np.quantile(x[:, j].astype(np.float32).astype(np.float64), levels)
        reference = np.interp(points[:, j], edges, normal_quantile(np.clip(levels, eps, 1 - eps)))
        np.testing.assert_allclose(out[:, j], reference, atol=2e-3)
    assert np.abs(out[-1, [0, 5, 6]]).max() < 1.9 and np.abs(z[-1, [0, 5, 6]]).min() > 40
    # ... then the piecewise-linear encoding of every column, as piecewise gives it
    np.testing.assert_allclose(out[:, 7:], pw[:, 7:], atol=1e-6)
    # no heavy column: auto is piecewise
    normal = stats_of_matrix(x[:, 1:3])
    notes = []
    np.testing.assert_allclose(preprocess("auto", normal, x[:5, 1:3], notes),
                               preprocess("piecewise", normal, x[:5, 1:3]), rtol=1e-6)
    assert "standardized value of every numeric column" in notes[0]


def test_auto_above_the_column_limit_is_standard_one_feature_a_column(tmp_path):
    """A table of 20,000 numeric columns and 200 rows: auto's encoding (17 features a column) made a first
    layer of 44M weights (fit 195 s, 7.3 GB). Above PIECEWISE_MAX_COLUMNS auto is standard; at the limit
    it still encodes; init's comment says which."""
    rng = np.random.default_rng(6)
    wide = rng.lognormal(0, 1.5, size=(60, ST.PIECEWISE_MAX_COLUMNS + 1))  # heavy-tailed every one
    stats = stats_of_matrix(wide)
    notes: list[str] = []
    out = preprocess("auto", stats, wide[:4], notes)
    np.testing.assert_allclose(out, preprocess("standard", stats, wide[:4]), rtol=1e-5, atol=1e-5)
    assert f"{ST.PIECEWISE_MAX_COLUMNS + 1} numeric columns, more than {ST.PIECEWISE_MAX_COLUMNS}" in notes[0]
    limit = stats_of_matrix(wide[:, :ST.PIECEWISE_MAX_COLUMNS])
    assert preprocess("auto", limit, wide[:2, :ST.PIECEWISE_MAX_COLUMNS]).shape[1] > ST.PIECEWISE_MAX_COLUMNS
    from nettrain.data import suggest_config

    frame = pd.DataFrame(wide, columns=[f"g{i}" for i in range(wide.shape[1])]).assign(y=rng.integers(0, 2, 60))
    frame.to_csv(tmp_path / "w.csv", index=False)
    assert "(more than 256: each standardized, as numeric: standard" in suggest_config(tmp_path / "w.csv", "y")


# ------------------------------------------------------------------------------ round trip

@pytest.fixture(scope="module")
def heavy_table(tmp_path_factory):
    d = tmp_path_factory.mktemp("heavy")
    rng = np.random.default_rng(6)
    n = 300
    df = pd.DataFrame({"income": rng.lognormal(5.4, 1.3, n), "age": rng.normal(40, 9, n).round(),
                       "visits": rng.poisson(0.3, n).astype(float), "const": 1.0,
                       "plan": rng.choice(["a", "b", "c"], n)})
    df.loc[:2, "income"] = [14_000.0, 9_000.0, 0.3]
    df["churn"] = np.where(np.log(df["income"]) + (df["age"] - 40) / 9 + rng.normal(0, 0.5, n) > 5.4, "yes", "no")
    df.to_csv(d / "t.csv", index=False)
    return d


@pytest.mark.parametrize("mode", MODES)
def test_each_option_trains_saves_and_reloads_to_identical_predictions(heavy_table, tmp_path, mode):
    import keras

    from nettrain.model.build import build_model
    from nettrain.store import h5
    from nettrain.training.feed import model_inputs

    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{source: {heavy_table / 't.csv'}, target: churn}}\n"
                    f"preprocessing: {{numeric: {mode}}}\n"
                    "model: {layers: [{type: Dense, units: 8, activation: relu}]}\n")
    cfg = load_config(path)
    ds = load_dataset(cfg)
    keras.utils.set_random_seed(0)
    model = build_model(cfg, ds)
    x = model_inputs(model, ds.train.inputs)
    fixed = {w.path: w.numpy().copy() for w in model.non_trainable_weights}
    model.fit(x, ds.train.y, epochs=2, batch_size=32, verbose=0)
    for w in model.non_trainable_weights:                      # the fitted statistics never train
        np.testing.assert_array_equal(w.numpy(), fixed[w.path])
    if mode in ("quantile", "piecewise", "auto"):
        assert fixed and {type(layer).__name__ for layer in model.layers} >= {"EinsumDense", "ReLU"}
    before = model.predict(model_inputs(model, ds.test.inputs), verbose=0)
    h5.save_model(model, tmp_path / "model.h5")
    loaded = h5.load_model(tmp_path / "model.h5")              # safe mode: built-in layers only
    after = loaded.predict(model_inputs(loaded, ds.test.inputs), verbose=0)
    np.testing.assert_array_equal(after, before)
    assert before.std() > 0                                     # not a constant output
    config = json.dumps(loaded.get_config())
    assert "Lambda" not in config and "custom" not in config.lower()


@pytest.mark.slow
def test_fit_and_predict_through_the_cli_with_auto(heavy_table, tmp_path):
    from typer.testing import CliRunner

    from nettrain.cli import app

    runner = CliRunner()
    cfg = tmp_path / "auto.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data: {{source: {heavy_table / 't.csv'}, target: churn}}
        preprocessing: {{numeric: auto}}
        training: {{epochs: 2}}
    """))
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(tmp_path / "run"), str(heavy_table / "t.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert len(predictions) == 300 and set(predictions.iloc[:, -1].astype(str)) <= {"yes", "no"}
