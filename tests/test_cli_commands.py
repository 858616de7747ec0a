"""One CliRunner test per remaining command, and the data mistakes a user makes, end to end."""

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import mixed_csv

runner = CliRunner()


def test_validate_build_prints_the_model_summary(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    cfg = tmp_path / "m.yaml"
    cfg.write_text("data: {source: m.csv, target: label}\nmodel: {layers: [{type: Dense, units: 7}]}\n")
    result = runner.invoke(app, ["validate", str(cfg), "--build"])
    assert result.exit_code == 0, result.output
    assert "task multiclass" in result.stdout and "3 classes" in result.stdout
    assert "Total params" in result.stdout and "dense" in result.stdout.lower()


@pytest.mark.slow
def test_init_prints_a_config_that_trains(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    result = runner.invoke(app, ["init", str(tmp_path / "m.csv"), "--target", "label"])
    assert result.exit_code == 0, result.output
    cfg = tmp_path / "init.yaml"
    cfg.write_text(result.stdout)
    fit = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(tmp_path / "r"), "--quiet",
                              "--set", f"data.source={tmp_path / 'm.csv'}", "--set", "training.epochs=1"])
    assert fit.exit_code == 0, fit.output


def test_init_unknown_target_exits_2(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    result = runner.invoke(app, ["init", str(tmp_path / "m.csv"), "--target", "lable"])
    assert result.exit_code == 2
    assert "label" in result.stderr


def test_runs_lists_finished_runs(mixed_run, tmp_path):
    shutil.copytree(mixed_run, tmp_path / "runs" / "first", ignore=shutil.ignore_patterns(".lock"))
    result = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["first"]]
    assert len(rows) == 1 and rows[0][1:3] == ["mixed", "completed"], result.stdout  # folder, name, status


def test_runs_on_missing_directory_exits_2(tmp_path):
    result = runner.invoke(app, ["runs", str(tmp_path / "nothing")])
    assert result.exit_code == 2


def test_every_command_has_help():
    import typer.main

    for name in typer.main.get_command(app).commands:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout, name


@pytest.fixture
def csv_case(tmp_path):
    def make(df=None, text=None, extra=""):
        path = tmp_path / "d.csv"
        if text is not None:
            path.write_text(text)
        else:
            df.to_csv(path, index=False)
        cfg = tmp_path / "c.yaml"
        cfg.write_text("data: {source: d.csv, target: y}\ntraining: {epochs: 1}\n" + extra)
        return cfg
    return make


def frame(n=50, **cols):
    rng = np.random.default_rng(0)
    base = {"a": rng.normal(size=n), "b": rng.normal(size=n), "y": rng.integers(0, 2, size=n)}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize("case, words", [
    ("missing_file", ["nope.csv"]),
    ("header_only", ["no rows"]),
    ("empty", ["empty"]),
    ("non_numeric", ["'b'", "oops"]),
    ("missing_error", ["'a'", "missing"]),
    ("tiny_split", ["data.split"]),
])
def test_data_mistakes_exit_2_naming_the_culprit(csv_case, tmp_path, case, words):
    if case == "missing_file":
        cfg = csv_case(frame())
        cfg.write_text(cfg.read_text().replace("d.csv", "nope.csv"))
    elif case == "header_only":
        cfg = csv_case(text="a,b,y\n")
    elif case == "empty":
        cfg = csv_case(text="")
    elif case == "non_numeric":
        df = frame()
        df["b"] = df["b"].astype(object)
        df.loc[7, "b"] = "oops"
        cfg = csv_case(df, extra="data: {source: d.csv, target: y, columns: {b: {type: numeric}}}\n")
        cfg.write_text("data: {source: d.csv, target: y, columns: {b: {type: numeric}}}\ntraining: {epochs: 1}\n")
    elif case == "missing_error":
        df = frame()
        df.loc[[3, 9], "a"] = np.nan
        cfg = csv_case(df)
    else:
        cfg = csv_case(frame(n=3, y=[0, 1, 0]))
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w.lower() in result.stderr.lower(), result.stderr
    assert not (tmp_path / "run").exists()
