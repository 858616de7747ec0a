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

import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
runner = CliRunner()


def test_there_are_example_configs():
    names = {p.stem for p in CONFIGS}
    assert {"iris", "regression", "breast_cancer", "blobs", "wine", "digits", "penguins"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_example_config_is_documented(config):
    text = config.read_text()
    assert text.lstrip().startswith("#"), f"{config.name} needs a comment header saying what it shows"
    spec = yaml.safe_load(text)
    assert spec["output"]["dir"] == "../runs", "examples write their runs to the repository's runs/"
    source = spec["data"]["source"]
    if isinstance(source, str) and not source.startswith(("sklearn:", "keras:")):
        assert (config.parent / source).is_file(), f"{config.name}: data file {source} is missing"


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


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_example_config_trains(config, tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(config), "--set", "training.epochs=2", "--run-dir", str(run_dir),
                                 "--quiet"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert (run_dir / "model.h5").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("train", "test"):
        assert metrics.get(split), f"no {split} metrics in {metrics}"
        for name, value in metrics[split].items():
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{split} {name} = {value!r}"
        assert "loss" in metrics[split]
