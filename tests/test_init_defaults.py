"""Issue 22, training defaults that generalize: what `init` writes for the model and the training
(network width, batch size and learning rate growing with the training rows, a learning-rate
schedule, early stopping that keeps the best weights), each with its reason in a comment, and a
config that trains as written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.data import suggest

runner = CliRunner()


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "y": np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")})


def init_text(folder, n: int, *extra: str) -> str:
    table(n).to_csv(folder / "d.csv", index=False)
    result = runner.invoke(app, ["init", str(folder / "d.csv"), "--target", "y", *extra])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_batch_size_grows_with_the_training_rows():
    sizes = [suggest.batch_size_for(n) for n in (10, 1_000, 3_200, 6_400, 20_000, 35_000, 10**6, 10**8)]
    assert sizes[:3] == [32, 32, 32]                      # small tables keep Keras's 32
    assert sizes == sorted(sizes) and sizes[-1] == suggest.BATCH_MAX
    assert all(s & (s - 1) == 0 for s in sizes)           # powers of two
    assert sizes[4] == 256                                # 20,000 rows: about 80 steps per epoch, not 625
    # the rate follows the batch: Adam's 0.001 at 32, times the square root of the batch's growth
    assert suggest.learning_rate_for(32) == pytest.approx(0.001)
    assert suggest.learning_rate_for(512) == pytest.approx(0.004)


def test_the_network_grows_with_the_training_rows_in_three_bands(tmp_path):
    """Below TINY_ROWS training rows 128-64, up to LARGE_ROWS 64-32, then 128-128-64 (each measured
    on real tables: bench/RESULTS.md), and the comment says which and why."""
    def units(rows: int) -> list[int]:
        return [int(line.split("units: ")[1].split(",")[0]) for line in suggest._model(rows) if "units:" in line]

    assert units(100) == units(suggest.TINY_ROWS - 1) == suggest.TINY_NET == [128, 64]
    assert units(suggest.TINY_ROWS) == units(suggest.LARGE_ROWS - 1) == suggest.SMALL_NET == [64, 32]
    assert units(suggest.LARGE_ROWS) == suggest.LARGE_NET == [128, 128, 64]
    assert "for 999 training rows (on real tables this small it did better)" in suggest._model(999)[0]
    assert "a small network for 1000 training rows" in suggest._model(1000)[0]
    text = init_text(tmp_path, 2_000)             # 2,000 - 20% test - 10% validation: 1,440 training rows
    assert [layer["units"] for layer in yaml.safe_load(text)["model"]["layers"]] == suggest.SMALL_NET


def test_a_small_table_gets_the_small_network_and_batch_32(tmp_path):
    text = init_text(tmp_path, 200)
    config = yaml.safe_load(text)
    assert [layer["units"] for layer in config["model"]["layers"]] == suggest.TINY_NET
    assert config["training"]["batch_size"] == 32
    assert config["training"]["optimizer"] == {"name": "adam", "learning_rate": 0.001}
    # every default with its reason, in the comment on its line
    assert "# Keras's default, for a table this small" in text
    assert config["data"]["split"] == {"test": 0.2, "folds": 5, "refit": "ensemble", "shuffle": True, "stratify": True}
    assert "the model is the mean of 5 models" in text and "one model instead: split: {test: 0.2, " \
        "validation: 0.1, shuffle: true, stratify: true}" in text
    assert "for 128 training rows (on real tables this small" in text    # 200 rows - 20% test: 4/5 of 160
    assert config["callbacks"]["early_stopping"] == {"monitor": "val_loss", "patience": 10,
                                                     "restore_best_weights": True}
    assert config["callbacks"]["lr_schedule"]["type"] == "reduce_on_plateau"
    assert "halve" in text and "keep the best weights" in text
    assert "no dropout or weight decay" in text.lower()              # the regularization it left out, and why


def test_a_large_table_gets_wider_layers_a_larger_batch_and_rate(tmp_path):
    n = 12_000
    table(300, seed=1).to_csv(tmp_path / "t.csv", index=False)
    text = init_text(tmp_path, n, "--test", str(tmp_path / "t.csv"))
    config = yaml.safe_load(text)
    rows = n - round(n * suggest.VALIDATION_SHARE)             # a test file: only validation rows held out
    assert f"for {rows} training rows" in text
    assert [layer["units"] for layer in config["model"]["layers"]] == suggest.LARGE_NET
    batch = suggest.batch_size_for(rows)
    assert config["training"]["batch_size"] == batch > 32
    assert config["training"]["optimizer"]["learning_rate"] == pytest.approx(suggest.learning_rate_for(batch))
    assert f"about {rows // batch} steps per epoch" in text


def test_the_written_defaults_validate_and_train(tmp_path):
    text = init_text(tmp_path, 300)
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.callbacks.lr_schedule.type == "reduce_on_plateau" and cfg.callbacks.early_stopping.restore_best_weights
    fit = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "r"), "--quiet",
                              "--set", "training.epochs=2", "--set", "output.plots=false"])
    assert fit.exit_code == 0, fit.output
    # init's 5-fold ensemble (300 rows): model.h5 is the mean of the 5 fold models, and the baselines
    # fit the rows it was trained on (every non-test row) beside it
    from nettrain.model.ensemble import members
    from nettrain.store import h5

    assert sorted(p.name for p in (tmp_path / "r").glob("fold-*")) == [f"fold-{i}" for i in range(1, 6)]
    assert members(h5.load_model(tmp_path / "r" / "model.h5", restore_optimizer=False)) == 5
    base = runner.invoke(app, ["baseline", str(tmp_path / "r"), "--json"])
    assert base.exit_code == 0, base.output
    import json

    found = json.loads(base.stdout)
    assert found["rows"] == {"train": 240, "test": 60}              # 300 rows - 20% test
    assert set(found["models"]) == {"network", "hist_gradient_boosting", "linear"}
    assert found["models"]["network"]["metrics"]["test"]["accuracy"] == pytest.approx(
        json.loads((tmp_path / "r" / "metrics.json").read_text())["refit"]["test"]["accuracy"])


def test_a_table_under_a_thousand_rows_gets_the_mean_of_five_fold_models():
    """suggest.ensemble_folds: 5 folds (refit: ensemble) from ENSEMBLE_MIN_ROWS non-test rows while one
    model would train on fewer than TINY_ROWS, unless a class has fewer than 5 rows outside the test split."""
    labels = pd.Series(["a", "b"] * 500)
    assert suggest.ensemble_folds(labels, True, suggest.ENSEMBLE_MIN_ROWS, 135) == 5
    assert suggest.ensemble_folds(labels, True, suggest.ENSEMBLE_MIN_ROWS - 1, 134) == 1       # too few rows
    assert suggest.ensemble_folds(labels, False, 1_110, suggest.TINY_ROWS - 1) == 5
    assert suggest.ensemble_folds(labels, False, 1_112, suggest.TINY_ROWS) == 1                # one model's size
    rare = pd.Series(["a"] * 994 + ["b"] * 6)            # 6 rows of b, 4.8 of them outside a 20% test split
    assert suggest.ensemble_folds(rare, True, 800, 720) == 1 and not suggest.folds_hold_classes(rare, True, 800)
    assert suggest.ensemble_folds(rare, False, 800, 720) == 5                                   # a regression


def test_no_folds_are_offered_where_a_class_could_not_be_in_every_fold(tmp_path):
    """A class with fewer than 5 rows outside the test split: one model, and no comment offering folds
    (they could not be stratified)."""
    frame = table(2_000)
    frame.loc[:5, "y"] = "rare"                         # 6 rows: 4.8 of them outside a 20% test split
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = runner.invoke(app, ["init", str(tmp_path / "d.csv"), "--target", "y"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["split"]["validation"] == 0.1
    assert "{folds: 5" not in result.stdout
    frame.loc[:20, "y"] = "rare"                        # 21 rows: the comment is back
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = runner.invoke(app, ["init", str(tmp_path / "d.csv"), "--target", "y"])
    assert "split: {folds: 5, refit: ensemble}" in result.stdout


def test_init_writes_the_fold_ensemble_only_where_the_rule_says(tmp_path):
    small = yaml.safe_load(init_text(tmp_path, 400))["data"]["split"]
    assert small == {"test": 0.2, "folds": 5, "refit": "ensemble", "shuffle": True, "stratify": True}
    tiny = yaml.safe_load(init_text(tmp_path, 150))["data"]["split"]        # 120 rows outside the test split
    assert tiny == {"test": 0.2, "validation": 0.1, "shuffle": True, "stratify": True}
    larger = yaml.safe_load(init_text(tmp_path, 1_500))["data"]["split"]    # 1,080 training rows
    assert larger == {"test": 0.2, "validation": 0.1, "shuffle": True, "stratify": True}
    table(300, seed=1).to_csv(tmp_path / "t.csv", index=False)
    with_test = init_text(tmp_path, 400, "--test", str(tmp_path / "t.csv"))
    assert yaml.safe_load(with_test)["data"]["split"] == {"folds": 5, "refit": "ensemble", "shuffle": True,
                                                          "stratify": True}
    assert "the folds are of the training file" in with_test
    assert "one model instead: split: {validation: 0.1" in with_test
