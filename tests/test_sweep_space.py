"""The sweep section and its search space: parsing, checks against the config, direction, Optuna
distributions, storage and study errors. No trial runs here (tests/test_sweep.py runs them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nettrain.config import load_config, parse_override
from nettrain.config.sweep import Param
from nettrain.errors import ConfigError, UsageError
from nettrain.sweep import space as S

BASE = """
data: {source: "sklearn:iris", target: target}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dropout, rate: 0.1}
training: {epochs: 2}
sweep:
  trials: 5
  params:
"""


def config(write_config, params: str, extra: str = "") -> str:
    text = BASE + "".join(f"    {line}\n" for line in params.strip().splitlines()) + extra
    return str(write_config(text))


# ----------------------------------------------------------------------------- the section

@pytest.mark.parametrize("spec, kind, bounds", [
    ({"choice": [32, 64]}, "choice", None),
    ({"uniform": [0.0, 0.5]}, "uniform", (0.0, 0.5)),
    ({"uniform": [0.0, 0.5], "step": 0.1}, "uniform", (0.0, 0.5)),
    ({"log_uniform": [1e-4, 1e-1]}, "log_uniform", (1e-4, 1e-1)),
    ({"int": [16, 128], "step": 16}, "int", (16, 128)),
    ({"int": [1, 1024], "log": True}, "int", (1, 1024)),
])
def test_every_distribution_parses(spec, kind, bounds):
    p = Param.model_validate(spec)
    assert p.kind == kind
    if bounds:
        assert p.bounds == bounds
    assert Param.model_validate(p.model_dump(mode="json")) == p  # config.yaml round trip
    assert "int_" not in p.model_dump() and "integer" not in p.model_dump()


@pytest.mark.parametrize("spec, words", [
    ({"int": [4, 2]}, "low must be below high"),
    ({"uniform": [1, 1]}, "low must be below high"),
    ({"log_uniform": [0, 1]}, "low must be > 0"),
    ({"log_uniform": [-1, 1]}, "low must be > 0"),
    ({"uniform": [0, 1], "choice": [1]}, "exactly one of"),
    ({}, "exactly one of"),
    ({"choice": []}, "at least one value"),
    ({"choice": [[1, 2]]}, "numbers, strings, booleans or null"),
    ({"choice": [1, 1]}, "listed twice"),
    ({"int": [1, 8], "step": 1.5}, "whole step"),
    ({"int": [1, 8], "step": 20}, "larger than the range"),
    ({"log_uniform": [1e-3, 1], "step": 0.1}, "step goes with int or uniform"),
    ({"uniform": [0, 1], "log": True}, "log: true goes with int"),
    ({"int": [0, 8], "log": True}, "low >= 1"),
    ({"uniform": [0, 1, 2]}, "expected [low, high]"),
    ({"uniform": [0, "x"]}, "valid number"),
    ({"foo": [1, 2]}, "extra"),
])
def test_bad_ranges_are_refused_with_the_value(spec, words):
    with pytest.raises(Exception) as info:
        Param.model_validate(spec)
    assert words.lower() in str(info.value).lower()


def test_config_errors_name_the_key_path_and_line(write_config):
    path = config(write_config, "model.layers.0.units: {int: [64, 8]}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sweep.params.model.layers.0.units" in str(info.value)
    assert "[64, 8]" in str(info.value) and f"{path}:" in str(info.value)


@pytest.mark.parametrize("key", ["seed", "name", "output.dir", "sweep.trials", "not a key", "a..b"])
def test_keys_a_sweep_cannot_search(write_config, key):
    path = config(write_config, f"'{key}': {{choice: [1, 2]}}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value)


def test_sweep_section_defaults_and_other_commands_keep_it(write_config):
    cfg = load_config(config(write_config, "training.batch_size: {choice: [16, 32]}"))
    s = cfg.sweep
    assert (s.trials, s.metric, s.direction, s.sampler, s.pruner, s.timeout, s.storage) == \
        (5, "val_loss", "auto", "tpe", "median", None, None)
    assert cfg.to_dict()["sweep"]["params"] == {"training.batch_size": {"choice": [16, 32]}}


def test_a_config_without_sweep_section(write_config):
    cfg = load_config(write_config(BASE.split("sweep:")[0]))
    with pytest.raises(ConfigError) as info:
        S.check_space(cfg, cfg.source.file)
    assert "no sweep section" in str(info.value)


@pytest.mark.parametrize("storage", ["not a url", "sqlite:/x"])
def test_storage_must_be_a_url(write_config, storage):
    path = config(write_config, "training.batch_size: {choice: [16, 32]}", f"  storage: '{storage}'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sweep.storage" in str(info.value)


# ----------------------------------------------------------------------------- against the config

def test_unknown_key_is_refused_before_any_trial(write_config):
    path = config(write_config, "model.layers.0.unitz: {choice: [8, 16]}")
    cfg = load_config(path)
    with pytest.raises(ConfigError) as info:
        S.check_space(cfg, path)
    text = str(info.value)
    assert "sweep.params.model.layers.0.unitz" in text and "unitz" in text


def test_a_value_the_config_refuses(write_config):
    path = config(write_config, "model.layers.1.rate: {uniform: [0.0, 1.5]}")
    cfg = load_config(path)
    with pytest.raises(ConfigError) as info:
        S.check_space(cfg, path)
    assert "sweep.params.model.layers.1.rate" in str(info.value) and "1.5" in str(info.value)


def test_a_layer_index_that_does_not_exist(write_config):
    path = config(write_config, "model.layers.7.units: {choice: [8, 16]}")
    cfg = load_config(path)
    with pytest.raises((ConfigError, UsageError)) as info:
        S.check_space(cfg, path)
    assert "model.layers" in str(info.value)


def test_metric_the_run_does_not_log(write_config):
    path = config(write_config, "training.batch_size: {choice: [16, 32]}", "  metric: val_acuracy\n")
    cfg = load_config(path)
    with pytest.raises(ConfigError) as info:
        S.check_space(cfg, path)
    assert "sweep.metric" in str(info.value) and "val_acuracy" in str(info.value)
    assert "val_accuracy" in str(info.value)  # the suggestion


def test_validation_metric_without_validation_rows(write_config):
    path = config(write_config, "training.batch_size: {choice: [16, 32]}")
    cfg = load_config(path, ["data.split.validation=0"])
    with pytest.raises(ConfigError) as info:
        S.check_space(cfg, path, ["data.split.validation=0"])
    assert "validation" in str(info.value)


def test_a_kfold_config_can_be_swept_even_without_a_validation_fraction(write_config):
    path = config(write_config, "training.batch_size: {choice: [16, 32]}")
    args = ["data.split.folds=3", "data.split.validation=0"]
    cfg = load_config(path, args)
    S.check_space(cfg, path, args)  # the folds' held-out rows give val_ metrics
    with pytest.raises(ConfigError) as info:  # one run without validation rows still cannot give val_loss
        S.check_space(load_config(path, args[1:]), path, args[1:])
    assert "validation" in str(info.value)


def test_a_good_space_passes(write_config):
    path = config(write_config, """
training.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
model.layers.0.units: {int: [16, 128], step: 16}
model.layers.1.rate: {uniform: [0.0, 0.5]}
training.batch_size: {choice: [32, 128]}
model.layers.0.activation: {choice: [relu, tanh]}
""")
    cfg = load_config(path)
    S.check_space(cfg, path)


@pytest.mark.parametrize("value", [0.001, 1e-10, 64, "relu", "1", True, None, "a: b", -3])
def test_set_arg_round_trips_through_the_set_parser(value):
    _, parsed = parse_override(S.set_arg("training.x", value))
    assert parsed == value and type(parsed) is type(value)


# ----------------------------------------------------------------------------- direction, distributions

@pytest.mark.parametrize("metric, direction, expected", [
    ("val_loss", "auto", "minimize"), ("val_accuracy", "auto", "maximize"), ("val_auc", "auto", "maximize"),
    ("mae", "auto", "minimize"), ("val_mean_squared_error", "auto", "minimize"),
    ("val_loss", "maximize", "maximize"), ("val_accuracy", "minimize", "minimize"),
])
def test_direction(write_config, metric, direction, expected):
    path = config(write_config, "training.batch_size: {choice: [16, 32]}",
                  f"  metric: {metric}\n  direction: {direction}\n")
    assert S.direction(load_config(path).sweep) == expected


def test_distributions_and_grid(write_config):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    path = config(write_config, """
training.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
model.layers.0.units: {int: [16, 64], step: 16}
model.layers.1.rate: {uniform: [0.0, 0.5], step: 0.25}
training.batch_size: {choice: [32, 128]}
""")
    sweep = load_config(path).sweep
    d = S.distributions(sweep)
    assert isinstance(d["training.optimizer.learning_rate"], FloatDistribution) and d[
        "training.optimizer.learning_rate"].log
    assert isinstance(d["model.layers.0.units"], IntDistribution) and d["model.layers.0.units"].step == 16
    assert isinstance(d["training.batch_size"], CategoricalDistribution)
    with pytest.raises(ConfigError) as info:
        S.grid_space(sweep)  # the log-uniform range has no grid
    assert "training.optimizer.learning_rate" in str(info.value)
    del sweep.params["training.optimizer.learning_rate"]
    grid = S.grid_space(sweep)
    assert grid == {"model.layers.0.units": [16, 32, 48, 64], "model.layers.1.rate": [0.0, 0.25, 0.5],
                    "training.batch_size": [32, 128]}


# ----------------------------------------------------------------------------- storage and study

def test_unreachable_storage_is_a_usage_error():
    from nettrain.sweep.study import open_storage

    with pytest.raises(UsageError) as info:
        open_storage("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    text = str(info.value)
    assert "cannot reach" in text and "secret" not in text and "127.0.0.1:1" in text


def test_missing_driver_names_what_to_install():
    from nettrain.sweep.study import open_storage

    with pytest.raises(UsageError) as info:
        open_storage("mysql://user@127.0.0.1/db")
    assert "pip install" in str(info.value)
    with pytest.raises(UsageError) as info:
        open_storage("oracle://user@host/db")
    assert "unsupported database" in str(info.value)


def test_a_study_keeps_its_search(write_config, tmp_path):
    from nettrain.sweep.study import open_study

    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = load_config(config(write_config, "training.batch_size: {choice: [16, 32]}"))
    opened = open_study(first, url, "s")
    assert opened.created
    assert not open_study(first, url, "s").created  # the same search continues
    other = load_config(config(write_config, "training.batch_size: {choice: [16, 64]}"))
    with pytest.raises(UsageError) as info:
        open_study(other, url, "s")
    assert "search space" in str(info.value)
    metric = load_config(config(write_config, "training.batch_size: {choice: [16, 32]}",
                                "  metric: val_accuracy\n"))
    with pytest.raises(UsageError) as info:
        open_study(metric, url, "s")
    assert "metric" in str(info.value)


def test_cli_help_and_validate_do_not_import_optuna(write_config):
    path = config(write_config, "training.batch_size: {choice: [16, 32]}")
    code = ("import sys; from nettrain.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, ['validate', {path!r}]); assert r.exit_code == 0, r.output; "
            "r = CliRunner().invoke(app, ['sweep', '--help']); assert r.exit_code == 0; "
            "bad = [m for m in ('optuna', 'tensorflow', 'sqlalchemy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_trial_whose_sweep_process_stopped_beating_is_lost_and_does_not_count(write_config, tmp_path,
                                                                                 monkeypatch):
    """A worker on another machine died: its running trial stops getting heartbeats; past the grace
    period the next sweep process fails it as lost (shown interrupted, not counted)."""
    import time

    from nettrain.sweep import study as ST

    monkeypatch.setattr(ST, "HEARTBEAT", 1)
    monkeypatch.setattr(ST, "GRACE", 1)
    cfg = load_config(config(write_config, "training.batch_size: {choice: [16, 32]}"))
    opened = ST.open_study(cfg, f"sqlite:///{tmp_path / 'study.db'}", "s")
    study = opened.study
    alive = study.ask(S.distributions(cfg.sweep), ST.sampler(cfg.sweep, 0))
    lost = study.ask(S.distributions(cfg.sweep), ST.sampler(cfg.sweep, 1))
    lost.set_user_attr(ST.HOST, "another-machine")
    study.beat([alive.number, lost.number])
    time.sleep(2.5)  # SQLite's clock has whole seconds: a beat 1.5 s ago may read as 1 s
    study.beat([alive.number])  # this worker is still alive; the other one stopped beating
    study.fail_lost()
    rows = {r["number"]: r["state"] for r in study.rows()}
    assert rows == {alive.number: "running", lost.number: "interrupted"}
    assert [ST.counted(t) for t in study.trials()] == [True, False]


# ----------------------------------------------------------------------------- storage that cannot be used

def _cli(*args):
    """The real command line in this process: (exit code, stderr)."""
    from typer.testing import CliRunner

    from nettrain.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.exit_code, result.stderr.strip()


def _tree(root):
    """Every file and folder under `root` with the sha256 of each file."""
    import hashlib
    from pathlib import Path

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(Path(root).rglob("*"))}


@pytest.fixture
def studies(write_config, tmp_path, monkeypatch):
    """tmp_path (the working folder) with data/study.db (a real study), a sweep config, an SQLite
    database of someone else's, a text file, an empty file and a damaged copy of the study."""
    from nettrain.sweep.study import open_study

    monkeypatch.chdir(tmp_path)
    path = config(write_config, "training.batch_size: {choice: [16, 32]}")
    (tmp_path / "data").mkdir()
    open_study(load_config(path), "sqlite:///data/study.db", "s")
    import sqlite3

    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("create table notes (line text)")
    other.commit()
    other.close()
    (tmp_path / "notes.db").write_text("my notes, not a database\n")
    (tmp_path / "empty.db").write_bytes(b"")
    damaged = bytearray((tmp_path / "data" / "study.db").read_bytes())
    for offset in range(4096, len(damaged), 4096):  # every page after the first scribbled over
        damaged[offset:offset + 64] = b"\xa5" * 64
    (tmp_path / "damaged.db").write_bytes(bytes(damaged))
    return tmp_path, path


@pytest.mark.parametrize("url, words", [
    ("sqlite:///typo-folder/stduy.db", [r"no study database at typo-folder/stduy\.db"]),
    ("sqlite:///data/stduy.db", [r"no study database at data/stduy\.db; did you mean .*data/study\.db\?"]),
    ("sqlite:///dat/study.db", [r"did you mean .*data/study\.db\?"]),
    ("sqlite:///other.db", [r"sqlite:///other\.db holds no sweep study"]),
    ("sqlite:///empty.db", [r"empty\.db is an empty file, not a study database"]),
    ("sqlite:///notes.db", [r"notes\.db is not an SQLite database"]),
    ("sqlite:///damaged.db", [r"damaged\.db is a damaged SQLite database \(database disk image is malformed\)"]),
    ("sqlite:///data", [r"data is a folder, not a database file"]),
    ("sqlite:///:memory:", [r"--storage sqlite:///:memory:: an SQLite database without a file holds no study"]),
    ("sqlite://", [r"--storage sqlite://: an SQLite database without a file"]),
])
def test_sweep_status_on_storage_it_cannot_read_is_exit_2_and_writes_nothing(studies, url, words):
    import re

    root, _ = studies
    before = _tree(root)
    code, message = _cli("sweep-status", "--storage", url)
    assert code == 2, message
    assert message.startswith("error: ") and len(message.splitlines()) == 1, message
    for pattern in words:
        assert re.search(pattern, message), (pattern, message)
    assert _tree(root) == before  # no folder, no database, not a byte changed


@pytest.mark.parametrize("url, words", [
    ("sqlite:///notes.db", r"notes\.db is not an SQLite database"),
    ("sqlite:///damaged.db", r"damaged\.db is a damaged SQLite database"),
    ("sqlite:///data", r"data is a folder, not a database file"),
    ("sqlite:///:memory:", r"--storage sqlite:///:memory:: an SQLite database without a file lives inside one "
                           r"process, and every trial runs in a process of its own"),
    ("sqlite://", r"--storage sqlite://: an SQLite database without a file"),
    ("sqlite:///file::memory:?uri=true", r"--storage sqlite:///file::memory:\?uri=true: an SQLite database"),
])
def test_a_sweep_on_storage_it_cannot_use_is_exit_2_before_any_trial(studies, url, words):
    import re

    root, path = studies
    before = _tree(root)
    code, message = _cli("sweep", path, "--storage", url)
    assert code == 2, message
    assert message.startswith("error: ") and len(message.splitlines()) == 1, message
    assert re.search(words, message), message
    assert _tree(root) == before  # the file left byte for byte, no sweep folder made


def test_a_new_sweep_storage_inside_a_run_directory_is_refused(studies):
    """--storage sqlite:///RUN/study.db created the database inside a run, where every other command's
    output is refused (a run is written only while it trains)."""
    root, path = studies
    (root / "arun" / "checkpoints").mkdir(parents=True)
    (root / "arun" / "run.json").write_text("{}")
    before = _tree(root)
    for url in ("sqlite:///arun/study.db", "sqlite:///arun/checkpoints/new/study.db"):
        code, message = _cli("sweep", path, "--storage", url)
        assert code == 2 and "is inside the run directory" in message and "never writes into a run" in message, message
    assert _tree(root) == before


def test_sweep_storage_without_a_file_in_the_config_names_the_key(studies):
    root, path = studies
    for url in ("sqlite:///:memory:", "sqlite://"):
        code, message = _cli("sweep", path, "--set", f"sweep.storage='{url}'")
        assert code == 2 and "sweep.storage: " in message and "lives inside one process" in message, message
    assert not (root / "runs").exists()


def test_a_sweep_of_multi_worker_is_refused_before_any_trial(write_config):
    from nettrain.sweep.run import plan

    path = config(write_config, "training.batch_size: {choice: [16, 32]}")
    with pytest.raises(ConfigError) as info:
        plan(path, ["runtime.distribute=multi_worker"])
    assert info.value.path == "runtime.distribute" and "no other worker joins" in str(info.value)
    swept = config(write_config, "runtime.distribute: {choice: [none, multi_worker]}")
    with pytest.raises(ConfigError) as info:
        plan(swept)
    assert info.value.path == "sweep.params.runtime.distribute" and "multi_worker" in str(info.value)
    assert plan(config(write_config, "runtime.distribute: {choice: [none, mirrored]}")).trials == 5
