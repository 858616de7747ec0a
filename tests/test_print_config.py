"""`nettrain validate CONFIG --print-config [--origins]`: the resolved config as YAML (the run's
config.yaml), each value's source beside it with --origins; no TensorFlow, fast."""

import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from tests.test_cli_light import PROBE, heavy

runner = CliRunner()


@pytest.fixture
def team(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "exp").mkdir()
    (tmp_path / "base" / "root.yaml").write_text(
        "data:\n"                                   # 1
        "  source: d.csv\n"                         # 2
        "  target: y\n"                             # 3
        "training:\n"                               # 4
        "  optimizer: {name: adam, learning_rate: 0.01}\n"  # 5
        "  epochs: 5\n"                             # 6
        "model:\n"                                  # 7
        "  layers:\n"                               # 8
        "    - {type: Dense, units: 8}\n")          # 9
    (tmp_path / "exp" / "child.yaml").write_text(
        "extends: ../base/root.yaml\n"              # 1
        "training:\n"                               # 2
        "  optimizer: {learning_rate: 0.1}\n"       # 3
        "  batch_size: 4\n"                         # 4
        "  loss: mse\n")                            # 5
    return tmp_path


def lines_of(text: str) -> dict[str, str]:
    """'key: value  # origin' lines as {stripped 'key: value': origin}."""
    out = {}
    for line in text.splitlines():
        if "  # " in line:
            value, _, origin = line.partition("  # ")
            out[value.strip().lstrip("- ")] = origin
    return out


def test_print_config_is_the_resolved_config(team, monkeypatch):
    monkeypatch.chdir(team)
    result = runner.invoke(app, ["validate", "exp/child.yaml", "--print-config", "--set", "training.epochs=3"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed == load_config("exp/child.yaml", ["training.epochs=3"]).to_dict()  # the run's config.yaml
    assert printed["training"]["epochs"] == 3 and printed["training"]["batch_size"] == 4
    assert printed["training"]["optimizer"] == {"name": "adam", "learning_rate": 0.1}
    assert printed["data"]["source"] == str(team / "base" / "d.csv")  # resolved from the base's folder
    assert printed["callbacks"]["checkpoint"]["keep"] == 5  # defaults filled
    assert "extends" not in printed


def test_origins_name_file_and_line_set_or_default(team, monkeypatch):
    monkeypatch.chdir(team)
    result = runner.invoke(app, ["validate", "exp/child.yaml", "--print-config", "--origins",
                                 "--set", "training.epochs=3"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == load_config("exp/child.yaml", ["training.epochs=3"]).to_dict()
    origin = lines_of(result.stdout)
    assert origin["epochs: 3"] == "--set"
    assert origin["batch_size: 4"] == "exp/child.yaml:4"
    assert origin["learning_rate: 0.1"] == "exp/child.yaml:3"
    assert origin["name: adam"] == "base/root.yaml:5"
    assert origin["target: y"] == "base/root.yaml:3"
    assert origin["units: 8"] == "base/root.yaml:9"
    assert origin["keep: 5"] == "default" and origin["seed: 42"] == "default"
    assert origin["loss: mse"] == "exp/child.yaml:5"
    # every value line has an origin
    values = [ln for ln in result.stdout.splitlines() if ln.strip() and not ln.rstrip().endswith(":")]
    assert all("  # " in ln for ln in values), [ln for ln in values if "  # " not in ln]


def test_origins_alone_prints_the_config_and_build_does_not_mix(team):
    result = runner.invoke(app, ["validate", str(team / "exp" / "child.yaml"), "--origins"])
    assert result.exit_code == 0 and "  # " in result.stdout
    result = runner.invoke(app, ["validate", str(team / "exp" / "child.yaml"), "--print-config", "--build"])
    assert result.exit_code == 2 and "--print-config and --build: give one of them" in result.output
    result = runner.invoke(app, ["validate", str(team / "exp" / "child.yaml"), "--origins", "--build"])
    assert result.exit_code == 2 and "--origins (which prints the config) and --build" in result.output


def test_a_config_error_is_still_exit_2(team):
    result = runner.invoke(app, ["validate", str(team / "exp" / "child.yaml"), "--print-config",
                                 "--set", "training.epochs=0"])
    assert result.exit_code == 2 and "training.epochs" in result.output and "Traceback" not in result.output


def test_print_config_imports_no_tensorflow_and_is_fast(team):
    args = ["validate", str(team / "exp" / "child.yaml"), "--print-config", "--origins"]
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not {"tensorflow", "keras"} & set(heavy(proc)), heavy(proc)
    import nettrain.api as api

    start = time.perf_counter()
    for _ in range(5):
        api.validate(team / "exp" / "child.yaml", print_config=True, origins=True)
    assert (time.perf_counter() - start) / 5 < 0.3  # the work itself (the interpreter's start is apart)
