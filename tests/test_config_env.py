"""`${env:NAME}` and `${env:NAME,default}`: resolved at load, a missing variable is exit 2 naming it,
and what nettrain writes (config.yaml, .h5 metadata, MLflow params, output) keeps the reference."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.config.env import resolve_text, written
from nettrain.errors import ConfigError
from tests.helpers import regression_csv

runner = CliRunner()
SECRET = "Hush-9f3kq-secret"


def write(folder: Path, text: str, name: str = "c.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_references_are_resolved_in_string_values(tmp_path, monkeypatch):
    monkeypatch.setenv("NT_DIR", str(tmp_path / "ci"))
    monkeypatch.setenv("NT_EPOCHS", "7")
    monkeypatch.delenv("NT_UNSET", raising=False)
    path = write(tmp_path, "data: {source: '${env:NT_DIR}/d.csv', target: '${env:NT_UNSET,y}'}\n"
                           "training: {epochs: '${env:NT_EPOCHS}', optimizer: '${env:NT_UNSET,adam}'}\n")
    cfg = load_config(path)
    assert cfg.data.source == str(tmp_path / "ci" / "d.csv") and cfg.data.target == "y"
    assert cfg.training.epochs == 7 and cfg.training.optimizer == "adam"
    assert cfg.source.env["data.source"] == "${env:NT_DIR}/d.csv"
    saved = cfg.to_dict()  # what config.yaml holds: the references, the rest resolved
    assert saved["data"]["source"] == "${env:NT_DIR}/d.csv" and saved["training"]["epochs"] == "${env:NT_EPOCHS}"
    assert saved["training"]["batch_size"] == cfg.training.batch_size
    # the saved config loads again to the same values (retrain, evaluate read it back)
    again = load_config(None, data=saved, origin=tmp_path / "model.h5")
    assert again.data.source == cfg.data.source and again.training.epochs == 7


def test_a_relative_path_from_a_reference_keeps_the_config_files_folder(tmp_path, monkeypatch):
    """`source: ${env:NT_DATA}` with NT_DATA=reg.csv is read beside the config at fit; the run's
    config.yaml kept the bare reference, so evaluate, retrain and baseline looked for reg.csv in the
    run folder (or the current one) and refused the run. The reference keeps its anchor; an absolute
    value needs none."""
    regression_csv(tmp_path / "reg.csv", n=40)
    monkeypatch.setenv("NT_DATA", "reg.csv")
    monkeypatch.chdir(tmp_path.parent)
    path = write(tmp_path, "data: {source: '${env:NT_DATA}', target: y}\n"
                           "model: {layers: [{type: Dense, units: 2}]}\ntraining: {epochs: 1}\n"
                           "output: {plots: false}\n")
    saved = load_config(path).to_dict()
    assert saved["data"]["source"] == str(tmp_path / "${env:NT_DATA}")
    assert load_config(None, data=saved, origin=tmp_path / "model.h5").data.source == str(tmp_path / "reg.csv")
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(path), "--run-dir", str(run), "--quiet"]).exit_code == 0
    for command in (["evaluate", str(run)], ["retrain", str(run), "--epochs", "1", "--quiet"],
                    ["baseline", str(run)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    monkeypatch.setenv("NT_DATA", str(tmp_path / "reg.csv"))
    assert load_config(path).to_dict()["data"]["source"] == "${env:NT_DATA}"


def test_a_missing_variable_is_exit_2_naming_it_and_the_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NT_NOPE", raising=False)
    path = write(tmp_path, "data: {source: sklearn:iris}\ntracking:\n  mlflow: 'http://u:${env:NT_NOPE}@h:5000'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.line, info.value.path) == (str(path), 3, "tracking.mlflow")
    assert "NT_NOPE is not set" in str(info.value)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "NT_NOPE" in result.output and "Traceback" not in result.output


def test_a_missing_variable_in_a_base_names_the_base(tmp_path, monkeypatch):
    monkeypatch.delenv("NT_NOPE", raising=False)
    base = write(tmp_path, "data: {source: sklearn:iris}\noutput: {dir: '${env:NT_NOPE}'}\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(child)
    assert (info.value.file, info.value.line) == (str(base), 2) and "NT_NOPE" in str(info.value)


def test_a_reference_in_set_is_resolved_and_its_errors_name_the_set(tmp_path, monkeypatch):
    monkeypatch.setenv("NT_BATCH", "8")
    monkeypatch.delenv("NT_NOPE", raising=False)
    path = write(tmp_path, "data: {source: sklearn:iris}\ntraining: {optimizer: '${env:NT_NOPE,sgd}'}\n")
    cfg = load_config(path, ["training.batch_size=${env:NT_BATCH}", "training.optimizer.learning_rate=0.1"])
    assert cfg.training.batch_size == 8 and cfg.training.optimizer == {"name": "sgd", "learning_rate": 0.1}
    saved = cfg.to_dict()
    assert saved["training"]["batch_size"] == "${env:NT_BATCH}"
    assert saved["training"]["optimizer"] == {"name": "${env:NT_NOPE,sgd}", "learning_rate": 0.1}
    with pytest.raises(ConfigError) as info:
        load_config(path, ["training.epochs=${env:NT_NOPE}"])
    assert str(info.value).startswith("--set training.epochs=${env:NT_NOPE}: environment variable NT_NOPE")


@pytest.mark.parametrize("text, words", [("${env:}", "does not name"), ("${env:1A}", "does not name"),
                                         ("x${env:A", "unclosed")])
def test_a_malformed_reference_is_refused(text, words):
    with pytest.raises(ValueError, match=words):
        resolve_text(text, {})


def test_text_around_references_and_literal_dollars():
    env = {"A": "1", "B": ""}
    assert resolve_text("a${env:A}b${env:B}c${env:C,d,e}", env) == "a1bcd,e"
    assert resolve_text("$${env:A} ${other}", env) == "${env:A} ${other}"


def test_a_password_reference_is_written_back_and_a_literal_one_masked():
    assert written("https://bob:${env:PW}@h:5000/x") == "https://bob:${env:PW}@h:5000/x"
    assert written("https://${env:USER}:pw@h") == "https://${env:USER}:***@h"
    assert written("postgresql://h/db?user=u&password=${env:PW}") == "postgresql://h/db?user=u&password=${env:PW}"


def test_the_resolved_secret_is_never_shown_or_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("NT_PW", SECRET)
    path = write(tmp_path, "data: {source: sklearn:iris}\n"
                           "tracking: {mlflow: 'https://bob:${env:NT_PW}@mlflow.example.com'}\n")
    cfg = load_config(path)
    assert cfg.tracking.mlflow == f"https://bob:{SECRET}@mlflow.example.com"  # in memory only
    assert SECRET not in json.dumps(cfg.to_dict())
    assert cfg.to_dict()["tracking"]["mlflow"] == "https://bob:${env:NT_PW}@mlflow.example.com"
    for args in (["validate", str(path)], ["validate", str(path), "--print-config", "--origins"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and SECRET not in result.output


@pytest.mark.slow
def test_a_run_with_a_secret_writes_it_nowhere(tmp_path, monkeypatch):
    """A real fit logged to a (fake) MLflow server whose password is ${env:...}: no file of the run,
    no MLflow request and no output holds the secret; retrain finds it again in the environment."""
    from tests.test_tracking import FakeMlflow

    server = FakeMlflow(tmp_path / "artifacts")
    try:
        monkeypatch.setenv("NT_PW", SECRET)
        regression_csv(tmp_path / "reg.csv", n=40)
        uri = server.url.replace("http://", "http://alice:${env:NT_PW}@")
        path = write(tmp_path, "name: env\ndata: {source: reg.csv, target: y}\n"
                               "model: {layers: [{type: Dense, units: 2}]}\ntraining: {epochs: 2, batch_size: 16}\n"
                               f"tracking: {{mlflow: '{uri}', timeout: 2}}\noutput: {{plots: false}}\n")
        run = tmp_path / "run"
        result = runner.invoke(app, ["fit", str(path), "--run-dir", str(run)])
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
        assert yaml.safe_load((run / "config.yaml").read_text())["tracking"]["mlflow"] == uri
        files = [p for p in run.rglob("*") if p.is_file()]
        assert {"config.yaml", "model.h5", "run.json"} <= {p.name for p in files}
        assert [p for p in files if SECRET.encode() in p.read_bytes()] == []  # .h5 metadata included
        for _, where, body in server.requests:
            assert SECRET not in where and SECRET.encode() not in body
        (mlflow_run,) = server.runs.values()
        params = {p["key"]: p["value"] for p in mlflow_run["data"]["params"]}
        assert params["tracking.mlflow"] == uri
        result = runner.invoke(app, ["retrain", str(run / "model.h5"), "--epochs", "1", "--quiet"])
        assert result.exit_code == 0, result.output  # the reference in model.h5 is resolved again
        assert SECRET not in result.output
        assert [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []
    finally:
        server.close()


def test_hostile_references_are_refused_in_linear_time():
    import time

    for text in ("${env:A," * 130_000, "${env:" * 170_000, ("${env:A," + "b" * 900) * 1100):
        start = time.perf_counter()
        with pytest.raises(ValueError, match="unclosed"):
            resolve_text(text, {})
        assert time.perf_counter() - start < 3
