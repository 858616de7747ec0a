"""Splits, stratification, k folds, missing values (train-only statistics), fingerprint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nettrain.config import load_config
from nettrain.data import load_dataset
from nettrain.errors import ConfigError, DataError, UsageError


def make_cfg(tmp_path: Path, data: dict, **sections):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": data, **sections}, sort_keys=False))
    return load_config(path)


def classes(n: int = 200, minority: float = 0.2) -> pd.DataFrame:
    n_min = int(n * minority)
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "y": ["rare"] * n_min + ["common"] * (n - n_min)})


def load(tmp_path, frame, split=None, seed=42, **sections):
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = {"source": "d.csv", "target": "y"}
    if split is not None:
        data["split"] = split
    return load_dataset(make_cfg(tmp_path, data, seed=seed, **sections))


def rows(split) -> set[int]:
    return set(split.row_index.tolist())


# ---------------------------------------------------------------------------- ratio split

def test_split_sizes_are_disjoint_and_cover(tmp_path):
    ds = load(tmp_path, classes(100), {"test": 0.2, "validation": 0.25})
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (60, 20, 20)
    assert rows(ds.train) | rows(ds.validation) | rows(ds.test) == set(range(100))
    assert not rows(ds.train) & rows(ds.test) and not rows(ds.train) & rows(ds.validation)


def test_stratified_split_keeps_class_proportions(tmp_path):
    ds = load(tmp_path, classes(200, minority=0.2), {"test": 0.2, "validation": 0.25})
    rare = ds.schema.class_names.index("rare")
    assert int((ds.test.y == rare).sum()) == 8          # 20% of 40
    assert int((ds.validation.y == rare).sum()) == 8    # 20% of 40
    assert int((ds.train.y == rare).sum()) == 24        # 20% of 120


def test_unstratified_split_when_disabled(tmp_path):
    # with the minority all at the top of the file, an unshuffled split holds out no rare rows
    ds = load(tmp_path, classes(100), {"test": 0.2, "shuffle": False, "stratify": False})
    rare = ds.schema.class_names.index("rare")
    assert int((ds.test.y == rare).sum()) == 0


def test_no_shuffle_holds_out_the_last_rows(tmp_path):
    ds = load(tmp_path, classes(50), {"test": 0.2, "validation": 0.25, "shuffle": False})
    assert ds.test.row_index.tolist() == list(range(40, 50))
    assert ds.validation.row_index.tolist() == list(range(30, 40))
    assert ds.train.row_index.tolist() == list(range(30))


def test_zero_fractions_turn_splits_off(tmp_path):
    ds = load(tmp_path, classes(30), {"test": 0, "validation": 0})
    assert ds.validation is None and ds.test is None and len(ds.train) == 30


def test_split_depends_on_seed_only(tmp_path):
    a = load(tmp_path, classes(100), seed=1)
    b = load(tmp_path, classes(100), seed=1)
    c = load(tmp_path, classes(100), seed=2)
    assert a.test.row_index.tolist() == b.test.row_index.tolist()
    assert a.test.row_index.tolist() != c.test.row_index.tolist()


def test_split_too_small_names_key_and_rows(tmp_path):
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.5, 2.5, 3.5]})
    with pytest.raises(ConfigError) as info:
        load(tmp_path, df, {"test": 0.1})
    msg = str(info.value)
    assert info.value.path == "data.split.test" and "3 rows" in msg and "empty" in msg
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    with pytest.raises(ConfigError) as info:
        load(tmp_path, pd.DataFrame({"x": np.arange(5.0), "y": np.arange(5.0) + 0.5}),
             {"test": 0.2, "validation": 0.1})
    assert info.value.path == "data.split.validation" and "4 rows" in str(info.value)


def test_split_that_takes_every_row(tmp_path):
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [1.5, 2.5]})
    with pytest.raises(ConfigError, match=r"data\.split\.validation.*no training rows"):
        load(tmp_path, df, {"test": 0.5, "validation": 0.9})


def test_stratify_falls_back_when_a_class_is_tiny(tmp_path):
    df = pd.DataFrame({"x": np.arange(30.0), "y": ["a"] * 15 + ["b"] * 14 + ["c"]})
    with pytest.warns(UserWarning, match="cannot stratify"):
        ds = load(tmp_path, df, {"test": 0.2})
    assert len(ds.test) == 6 and any("stratif" in note for note in ds.notes)


def test_stratify_without_shuffle_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.split\.stratify: stratify: true needs shuffle: true"):
        load(tmp_path, classes(50), {"shuffle": False, "stratify": True})


# ------------------------------------------------------------------------ missing values

def with_gaps() -> pd.DataFrame:
    n = 40
    df = pd.DataFrame({"x": np.arange(n, dtype=float), "color": ["red", "blue", "red", "green"] * 10,
                       "y": np.linspace(0, 1, n) + 0.01})
    df.loc[[3, 7], "x"] = np.nan
    df.loc[5, "color"] = None
    df.loc[9, "y"] = np.nan
    return df


def test_missing_error_lists_columns_counts_and_policies(tmp_path):
    with pytest.raises(DataError) as info:
        load(tmp_path, with_gaps())
    msg = str(info.value)
    assert "d.csv" in msg and "'x' (2)" in msg and "'color' (1)" in msg and "target 'y' (1)" in msg
    assert "mean, median, most_frequent, drop_rows" in msg and info.value.exit_code == 2


def test_drop_rows(tmp_path):
    with pytest.warns(UserWarning, match="dropped 4 of 40 rows with a missing value"):
        ds = load(tmp_path, with_gaps(), {"test": 0, "validation": 0}, preprocessing={"missing": "drop_rows"})
    assert ds.n_rows == 36 and not {3, 5, 7, 9} & rows(ds.train)
    assert ds.schema.imputation == {}


def test_drop_rows_leaving_nothing(tmp_path):
    df = pd.DataFrame({"x": [np.nan, 1.0], "z": [1.0, np.nan], "y": [1.0, 2.0]})
    with pytest.raises(DataError, match="no rows left"), pytest.warns(UserWarning, match="dropped 2 of 2 rows"):
        load(tmp_path, df, preprocessing={"missing": "drop_rows"})


def test_missing_target_rows_dropped_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="dropped 1 of 40 rows with a missing target 'y'"):
        ds = load(tmp_path, with_gaps(), {"test": 0, "validation": 0}, preprocessing={"missing": "median"})
    assert ds.n_rows == 39 and 9 not in rows(ds.train)
    assert any("missing target" in note for note in ds.notes)


def test_imputation_uses_training_rows_only(tmp_path):
    # the last 10 rows (held out: shuffle false) carry an outlier that would drag the mean up
    df = pd.DataFrame({"x": [1.0, 3.0] * 15 + [1000.0] * 9 + [np.nan], "c": ["a", "b", "a"] * 13 + [None],
                       "y": np.linspace(0, 1, 40)})
    df.loc[2, "x"] = np.nan
    ds = load(tmp_path, df, {"test": 0.25, "validation": 0, "shuffle": False},
              preprocessing={"missing": "mean"})
    assert ds.schema.imputation["x"] == pytest.approx(2.0, abs=0.1)   # mean of 1s and 3s, not ~250
    assert ds.schema.imputation["c"] == "a"                           # categorical: most frequent
    assert ds.train.inputs["numeric"][2, 0] == pytest.approx(ds.schema.imputation["x"])
    assert ds.test.inputs["numeric"][-1, 0] == pytest.approx(ds.schema.imputation["x"])
    assert ds.test.inputs["c"][-1, 0] == "a"
    json.dumps(ds.schema.imputation)  # JSON-able
    assert all(type(v) in (float, str) for v in ds.schema.imputation.values())


@pytest.mark.parametrize("policy,expected", [("median", 2.0), ("most_frequent", 9.0), ("mean", 86 / 18)])
def test_median_most_frequent_and_mean(tmp_path, policy, expected):
    # per copy: three 1s, two 2s, four 9s and a gap: median 2, mode 9, mean 86/18
    df = pd.DataFrame({"x": [1.0, 1, 1, 2, 2, 9, 9, 9, 9, np.nan] * 2, "y": np.linspace(0, 1, 20) + 0.5})
    ds = load(tmp_path, df, {"test": 0, "validation": 0}, preprocessing={"missing": policy})
    assert ds.schema.imputation["x"] == pytest.approx(expected)
    assert ds.train.inputs["numeric"][9, 0] == pytest.approx(expected)
    assert not np.isnan(ds.train.inputs["numeric"]).any()


# -------------------------------------------------------------------------------- folds

def test_folds_cover_the_non_test_rows(tmp_path):
    ds = load(tmp_path, classes(100), {"test": 0.2, "folds": 5})
    assert len(ds.folds) == 5 and len(ds.pool) == 80 and len(ds.test) == 80 // 4
    assert not rows(ds.pool) & rows(ds.test)
    vals = np.concatenate([va for _, va in ds.folds])
    assert sorted(vals.tolist()) == list(range(80))
    for tr, va in ds.folds:
        assert not set(tr.tolist()) & set(va.tolist()) and len(tr) + len(va) == 80
    tr0, va0 = ds.folds[0]
    assert ds.train.row_index.tolist() == ds.pool.row_index[tr0].tolist()
    assert ds.validation.row_index.tolist() == ds.pool.row_index[va0].tolist()
    np.testing.assert_array_equal(ds.validation.inputs["numeric"], ds.pool.inputs["numeric"][va0])
    rare = ds.schema.class_names.index("rare")
    # stratified: 16 rare rows in the pool spread 3 or 4 per fold
    assert int((ds.pool.y == rare).sum()) == 16
    assert all(3 <= int((ds.pool.y[va] == rare).sum()) <= 4 for _, va in ds.folds)


def test_folds_more_than_rows(tmp_path):
    df = pd.DataFrame({"x": np.arange(6.0), "y": np.arange(6.0) + 0.5})
    with pytest.raises(ConfigError, match=r"data\.split\.folds: 10 folds need at least 10 rows.*there are 5"):
        load(tmp_path, df, {"test": 0.2, "folds": 10})


def test_folds_with_a_validation_file(tmp_path):
    classes(40).to_csv(tmp_path / "t.csv", index=False)
    classes(10).to_csv(tmp_path / "v.csv", index=False)
    cfg = make_cfg(tmp_path, {"train": "t.csv", "validation": "v.csv", "target": "y", "split": {"folds": 3}})
    with pytest.raises(ConfigError, match=r"data\.split\.folds.*remove data\.validation"):
        load_dataset(cfg)


# -------------------------------------------------------------------------- fingerprint

def test_fingerprint_tracks_data_and_split(tmp_path):
    base = load(tmp_path, classes(60))
    assert re.fullmatch(r"[0-9a-f]{64}", base.fingerprint), base.fingerprint  # a sha256 in hex
    assert load(tmp_path, classes(60)).fingerprint == base.fingerprint
    assert load(tmp_path, classes(60), seed=7).fingerprint != base.fingerprint
    changed = classes(60)
    changed.loc[0, "x"] += 1e-3
    assert load(tmp_path, changed).fingerprint != base.fingerprint


def test_rows_with_gaps_for_a_model_without_fill_values_say_why(tmp_path):
    """New rows with a gap, for a model trained with drop_rows (no fill value learned): the message says
    so and what would fill it, instead of suggesting the drop_rows the model was trained with."""
    from nettrain.data.inputs import prepare_inputs

    with pytest.warns(UserWarning, match="dropped"):
        ds = load(tmp_path, with_gaps(), {"test": 0, "validation": 0}, preprocessing={"missing": "drop_rows"})
    new = with_gaps().drop(columns=["y"])
    with pytest.raises(DataError) as info:
        prepare_inputs(new, ds.schema, source="new.csv")
    msg = str(info.value)
    assert "new.csv: column 'x' has 2 missing values" in msg and "trained with preprocessing.missing error or " \
        "drop_rows, which learn none" in msg and "mean, median or most_frequent" in msg
