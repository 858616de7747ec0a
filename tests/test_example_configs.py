"""Every example config in configs/ trains end to end through the CLI (2 epochs each).

The full-length runs and their quality goals live in bench/quality.py (`make quality`); here we
only check that each shipped example is a valid, runnable spec whose run directory holds the
final model and finite train/test metrics.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
runner = CliRunner()


def test_there_are_example_configs():
    names = {p.stem for p in CONFIGS}
    assert {"iris", "regression", "breast_cancer", "blobs", "wine", "digits", "penguins",
            "mnist", "imdb", "boston_kfold"} <= names  # the Keras tutorials: text, MNIST, Boston k-fold


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_example_config_is_documented(config):
    text = config.read_text()
    assert text.lstrip().startswith("#"), f"{config.name} needs a comment header saying what it shows"
    spec = yaml.safe_load(text)
    assert spec["output"]["dir"] == "../runs", "examples write their runs to the repository's runs/"
    source = spec["data"]["source"]
    if isinstance(source, str) and not source.startswith(("sklearn:", "keras:")):
        where = config.parent / source  # a data file, or an image folder (data/shapes/)
        assert where.is_file() or where.is_dir(), f"{config.name}: data file {source} is missing"


def test_every_example_has_a_quality_goal():
    spec = importlib.util.spec_from_file_location("quality", ROOT / "bench" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    sys.modules["quality"] = quality  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(quality)
    finally:
        sys.modules.pop("quality", None)
    missing = [p.stem for p in CONFIGS if p.stem not in quality.GOALS]
    assert not missing, f"add a goal to bench/quality.py for: {missing}"


@pytest.fixture(scope="module")
def keras_cache(tmp_path_factory):
    """Small stand-ins for Keras's cached datasets, in the layout keras.datasets leaves on disk
    (nettrain never downloads, and the tests run offline)."""
    home = tmp_path_factory.mktemp("keras-home")
    cache = home / "datasets"
    cache.mkdir()
    rng = np.random.default_rng(0)

    def digits(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):  # a bright stripe whose row says the digit
            x[i, 2 + 2 * label, :] = 250
        return x, y.astype(np.uint8)

    (x_train, y_train), (x_test, y_test) = digits(400), digits(100)
    np.savez(cache / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    def reviews(n):
        y = rng.integers(0, 2, n)
        seqs = [list(rng.integers(4, 60, 30)) + [2 if label else 3] * 5 for label in y]
        out = np.empty(n, dtype=object)
        out[:] = [[int(t) for t in s] for s in seqs]
        return out, y

    (x_train, y_train), (x_test, y_test) = reviews(300), reviews(100)
    np.savez(cache / "imdb.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    x = rng.normal(size=(150, 13))
    np.savez(cache / "boston_housing.npz", x=x, y=(x @ rng.normal(size=13) + 22).astype(np.float64))
    return home


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_example_config_trains(config, tmp_path, keras_cache, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(keras_cache))
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(config), "--set", "training.epochs=2", "--run-dir", str(run_dir),
                                 "--quiet"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    folds = (yaml.safe_load(config.read_text())["data"].get("split") or {}).get("folds", 1)
    assert ("folds" in metrics) == (folds > 1), sorted(metrics)
    if folds > 1:  # k-fold: every fold is a run with its model, the parent holds their mean and std
        assert len(metrics["folds"]) == folds
        assert all((run_dir / f"fold-{i + 1}" / "model.h5").is_file() for i in range(len(metrics["folds"])))
        metrics = metrics["mean"]
    else:
        assert (run_dir / "model.h5").is_file()
    for split in ("train", "test"):
        assert metrics.get(split), f"no {split} metrics in {metrics}"
        for name, value in metrics[split].items():
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{split} {name} = {value!r}"
        assert "loss" in metrics[split]
    record = json.loads((run_dir / "run.json").read_text())
    if config.stem in ("mnist", "imdb"):  # the official split: the cache's test part is the test split
        assert record["data"]["rows"]["test"] == 100
    if config.stem == "boston_kfold":
        fold = json.loads((run_dir / "fold-1" / "run.json").read_text())
        assert fold["data"]["rows"]["test"] == 30  # Keras's own split of boston_housing: the last 20%
    if config.stem == "imdb":  # the user's Embedding first: nettrain adds none and fills in input_dim
        assert any("Embedding: input_dim" in note for note in record["notes"])
        assert (run_dir / "summary.txt").read_text().count("(Embedding)") == 1
